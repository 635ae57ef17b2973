//! conv2d's two gradients (`dl.conv2d_grad_input`, `dl.conv2d_grad_weight`)
//! through the CPU backend (dlc-contract's im2col/col2im + gemm, scratch in
//! the arena) against the reference interpreter: strides, padding, dilation,
//! strides that leave input rows unread, a 1x1 kernel, f32 and f64, batch 1
//! and 5 of a `?` batch, on 1 and 2 threads (one shape large enough to
//! split). Each gradient is doubled by an elementwise step, so it lives in
//! the arena rather than being returned; the memory plan must hold a scratch
//! block for both steps (empty for a 1x1 kernel over one image, which reads
//! and writes in place). Agreement: within 1e-5 (f32) or 1e-13 (f64) of the
//! result's largest magnitude.

use dlc_backends::Tensor;
use dlc_cpu::{CpuExecutable, CpuOptions};
use dlc_ir::{DType, Function, parse_module};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One convolution's geometry: input `[?, c, h, w]`, weight `[o, c, k0, k1]`.
#[derive(Clone, Copy, Debug)]
struct Geo {
    c: usize,
    size: [usize; 2],
    o: usize,
    k: [usize; 2],
    stride: [usize; 2],
    pad: [usize; 2],
    dil: [usize; 2],
}

impl Geo {
    fn out(&self, d: usize) -> usize {
        (self.size[d] + 2 * self.pad[d] - self.dil[d] * (self.k[d] - 1) - 1) / self.stride[d] + 1
    }
}

/// `@grads(g, w, x) -> (2·conv2d_grad_input(g, w), 2·conv2d_grad_weight(x, g))`.
fn grads_fn(geo: &Geo, dt: &str) -> Function {
    let Geo { c, size: [h, w], o, k: [k0, k1], stride: s, pad: p, dil: d } = *geo;
    let (oh, ow) = (geo.out(0), geo.out(1));
    let win = format!("stride = [{}, {}], padding = [{}, {}], dilation = [{}, {}]", s[0], s[1], p[0], p[1], d[0], d[1]);
    let (gt, wt, xt) = (format!("tensor<?x{o}x{oh}x{ow}x{dt}>"), format!("tensor<{o}x{c}x{k0}x{k1}x{dt}>"), format!("tensor<?x{c}x{h}x{w}x{dt}>"));
    let text = format!(
        r#"module {{
  func.func @grads(%g: {gt}, %w: {wt}, %x: {xt}) -> ({xt}, {wt}) {{
    %dx = "dl.conv2d_grad_input"(%g, %w) {{{win}, input_size = [{h}, {w}]}} : ({gt}, {wt}) -> {xt}
    %dw = "dl.conv2d_grad_weight"(%x, %g) {{{win}, kernel = [{k0}, {k1}]}} : ({xt}, {gt}) -> {wt}
    %dx2 = "dl.add"(%dx, %dx) : ({xt}, {xt}) -> {xt}
    %dw2 = "dl.add"(%dw, %dw) : ({wt}, {wt}) -> {wt}
    return %dx2, %dw2 : {xt}, {wt}
  }}
}}"#
    );
    parse_module(&text).unwrap_or_else(|e| panic!("{e}\n{text}")).functions.remove(0)
}

fn random(shape: &[usize], dtype: DType, rng: &mut ChaCha8Rng) -> Tensor {
    let v: Vec<f64> = (0..shape.iter().product()).map(|_| rng.random_range(-1.0..1.0)).collect();
    Tensor::from_f64_values(shape, &v, dtype).unwrap()
}

#[test]
fn conv2d_gradients_match_the_interpreter() {
    let g = |c, size, o, k, stride, pad, dil| Geo { c, size, o, k, stride, pad, dil };
    let geos = [
        g(3, [9, 7], 4, [3, 3], [1, 1], [1, 1], [1, 1]),
        g(2, [9, 7], 3, [3, 3], [2, 2], [1, 1], [2, 2]),
        g(2, [8, 7], 3, [2, 2], [3, 3], [0, 0], [1, 1]),
        g(1, [6, 5], 2, [2, 3], [2, 1], [1, 0], [1, 2]),
        g(5, [4, 3], 2, [1, 1], [1, 1], [0, 0], [1, 1]),
        // 5 · 16 · 16·16 · 8·3·3 = 2.9 M multiply-adds: split on two threads.
        g(8, [16, 16], 16, [3, 3], [1, 1], [1, 1], [1, 1]),
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut cases = 0;
    for geo in &geos {
        for (dtype, dt) in [(DType::F32, "f32"), (DType::F64, "f64")] {
            let f = grads_fn(geo, dt);
            let mut lowered = f.clone();
            dlc_passes::to_kernels(&mut lowered).unwrap();
            for threads in [1, 2] {
                let exe = CpuExecutable::compile(&lowered, &CpuOptions { threads }).unwrap();
                assert!(exe.plan_summary().iter().any(|s| s == "conv2d_grad_input") && exe.plan_summary().iter().any(|s| s == "conv2d_grad_weight"), "{:?}", exe.plan_summary());
                for n in [1, 5] {
                    let what = format!("{geo:?} {dt}, batch {n}, {threads} thread(s)");
                    let plan = exe.memory_plan(Some(n));
                    assert_eq!(plan.buffers.iter().filter(|b| b.scratch_of_step.is_some()).count(), 2, "{what}: {plan:?}");
                    let args = [
                        random(&[n, geo.o, geo.out(0), geo.out(1)], dtype, &mut rng),
                        random(&[geo.o, geo.c, geo.k[0], geo.k[1]], dtype, &mut rng),
                        random(&[n, geo.c, geo.size[0], geo.size[1]], dtype, &mut rng),
                    ];
                    let want = dlc_backends::run(&f, &args).unwrap();
                    let got = exe.run(&args).unwrap();
                    for (r, (a, b)) in got.iter().zip(&want).enumerate() {
                        assert_eq!(a.shape(), b.shape(), "{what}: result {r}");
                        // Sums of up to 1280 products, each rounded in f32 by gemm:
                        // measured against the result's scale, not each element's.
                        let (a, b) = (a.to_f64_vec(), b.to_f64_vec());
                        let scale = b.iter().fold(1.0f64, |m, y| m.max(y.abs()));
                        let tol = if dtype == DType::F32 { 1e-5 } else { 1e-13 } * scale;
                        for (j, (x, y)) in a.iter().zip(&b).enumerate() {
                            assert!((x - y).abs() <= tol, "{what}: result {r} element {j}: {x} vs {y} (scale {scale})");
                        }
                    }
                    cases += 1;
                }
            }
        }
    }
    assert_eq!(cases, geos.len() * 2 * 2 * 2);
}

/// `kernel.conv2d_grad_weight` (the weight gradient of a max-pooled
/// convolution from the pooled gradient, the convolution recomputed)
/// against the interpreter: the one-channel 3×3 shape with a 2×2 window
/// that AVX-512 machines run in one pass (with and without bias and ReLU's
/// mask, 16 channels: large enough to split over 2 threads), and shapes
/// every machine runs as the convolution, the pooling gradient and the
/// weight gradient on chunks of images in the step's scratch (two channels
/// with padding, an overlapping padded window, f64, and planes large enough
/// that batch 5 takes two chunks), on 1 and 2 threads. Random inputs: no
/// window holds a tie.
#[test]
fn recomputing_pooled_weight_gradients_match_the_interpreter() {
    // (channels, plane, outputs, padding, window [k, s, p], bias, relu, dtype)
    type Case = (usize, [usize; 2], usize, usize, [usize; 3], bool, bool, DType);
    let cases: [Case; 7] = [
        (1, [28, 28], 16, 0, [2, 2, 0], true, true, DType::F32),
        (1, [10, 12], 3, 1, [2, 2, 0], false, true, DType::F32),
        (1, [10, 12], 3, 1, [2, 2, 0], true, false, DType::F32),
        (2, [9, 8], 3, 1, [2, 2, 0], true, true, DType::F32),
        (1, [9, 9], 2, 0, [3, 2, 1], true, true, DType::F32),
        (2, [8, 8], 3, 1, [2, 2, 0], true, true, DType::F64),
        (2, [64, 64], 8, 1, [2, 2, 0], true, true, DType::F32),
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut checked = 0;
    for (c, [h, w], o, pad, [k, s, p], bias, relu, dtype) in cases {
        let dt = if dtype == DType::F32 { "f32" } else { "f64" };
        let (oh, ow) = (h + 2 * pad - 2, w + 2 * pad - 2);
        let (qh, qw) = ((oh + 2 * p - k) / s + 1, (ow + 2 * p - k) / s + 1);
        let (xt, gt, wt, bt) = (format!("tensor<?x{c}x{h}x{w}x{dt}>"), format!("tensor<?x{o}x{qh}x{qw}x{dt}>"), format!("tensor<{o}x{c}x3x3x{dt}>"), format!("tensor<{o}x1x1x{dt}>"));
        let (bias_arg, bias_op, bias_ty) = if bias { (format!(", %b: {bt}"), ", %b", format!(", {bt}")) } else { (String::new(), "", String::new()) };
        let text = format!(
            r#"module {{
  func.func @dw(%x: {xt}, %g: {gt}, %w: {wt}{bias_arg}) -> {wt} {{
    %dw = "kernel.conv2d_grad_weight"(%x, %g, %w{bias_op}) {{padding = [{pad}, {pad}], relu = {relu}, max_pool = [{k}, {k}, {s}, {s}, {p}, {p}]}} : ({xt}, {gt}, {wt}{bias_ty}) -> {wt}
    %dw2 = "dl.add"(%dw, %dw) : ({wt}, {wt}) -> {wt}
    return %dw2 : {wt}
  }}
}}"#
        );
        let (f, lowered) = parsed_and_lowered(&text);
        for threads in [1, 2] {
            let exe = CpuExecutable::compile(&lowered, &CpuOptions { threads }).unwrap();
            let label = format!("conv2d_grad_weight+maxpool{}", if relu { "+relu" } else { "" });
            assert!(exe.plan_summary().contains(&label), "{:?}", exe.plan_summary());
            for n in [1, 5] {
                let what = format!("c={c} {h}x{w} o={o} pad={pad} window {k}/{s}/{p} bias={bias} relu={relu} {dt}, batch {n}, {threads} thread(s)");
                let mut args = vec![random(&[n, c, h, w], dtype, &mut rng), random(&[n, o, qh, qw], dtype, &mut rng), random(&[o, c, 3, 3], dtype, &mut rng)];
                if bias {
                    args.push(random(&[o, 1, 1], dtype, &mut rng));
                }
                let want = dlc_backends::run(&f, &args).unwrap().remove(0).to_f64_vec();
                let got = exe.run(&args).unwrap().remove(0).to_f64_vec();
                assert!(want.iter().any(|v| *v != 0.0), "{what}: nothing routed");
                assert_near(&got, &want, dtype, &what);
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 7 * 2 * 2);
}

/// `kernel.routed_conv2d_grad_input` and `kernel.routed_conv2d_grad_weight`
/// (a convolution's gradients through a max-pool's gradient, from the
/// pooled gradient and the convolution's output `y`) against the
/// interpreter: the shapes every machine runs routed (the Keras CNN's
/// second layer, large enough to split over 2 threads; 16 channels with
/// padding, without ReLU's mask), and shapes every machine runs as the
/// pooling gradient and the dense gradient on chunks of images in the
/// step's scratch (an infinite weight and input, whose `0 · inf` products
/// the routed sums would skip, on planes large enough that batch 5 takes
/// two chunks; an overlapping padded window; 8 channels; f64), on 1 and 2
/// threads. Random inputs: no window holds a tie.
#[test]
fn routed_convolution_gradients_match_the_interpreter() {
    // (channels, plane, outputs, padding, window [k, s, p], relu, an infinity, dtype)
    type Case = (usize, [usize; 2], usize, usize, [usize; 3], bool, bool, DType);
    let cases: [Case; 6] = [
        (32, [13, 13], 64, 0, [2, 2, 0], true, false, DType::F32),
        (16, [8, 8], 4, 1, [2, 2, 0], false, false, DType::F32),
        (16, [64, 64], 8, 1, [2, 2, 0], true, true, DType::F32),
        (16, [8, 8], 4, 1, [3, 2, 1], true, false, DType::F32),
        (8, [7, 7], 3, 0, [2, 2, 0], true, false, DType::F32),
        (16, [8, 8], 4, 1, [2, 2, 0], true, false, DType::F64),
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let (mut checked, mut routed) = (0, 0);
    for (c, [h, w], o, pad, [k, s, p], relu, inf, dtype) in cases {
        let dt = if dtype == DType::F32 { "f32" } else { "f64" };
        let (oh, ow) = (h + 2 * pad - 2, w + 2 * pad - 2);
        let (qh, qw) = ((oh + 2 * p - k) / s + 1, (ow + 2 * p - k) / s + 1);
        let (xt, yt, gt, wt) = (format!("tensor<?x{c}x{h}x{w}x{dt}>"), format!("tensor<?x{o}x{oh}x{ow}x{dt}>"), format!("tensor<?x{o}x{qh}x{qw}x{dt}>"), format!("tensor<{o}x{c}x3x3x{dt}>"));
        let attrs = format!("padding = [{pad}, {pad}], relu = {relu}, max_pool = [{k}, {k}, {s}, {s}, {p}, {p}]");
        let text = format!(
            r#"module {{
  func.func @grads(%y: {yt}, %g: {gt}, %w: {wt}, %x: {xt}) -> ({xt}, {wt}) {{
    %dx = "kernel.routed_conv2d_grad_input"(%y, %g, %w) {{{attrs}, input_size = [{h}, {w}]}} : ({yt}, {gt}, {wt}) -> {xt}
    %dw = "kernel.routed_conv2d_grad_weight"(%x, %y, %g) {{{attrs}, kernel = [3, 3]}} : ({xt}, {yt}, {gt}) -> {wt}
    %dx2 = "dl.add"(%dx, %dx) : ({xt}, {xt}) -> {xt}
    %dw2 = "dl.add"(%dw, %dw) : ({wt}, {wt}) -> {wt}
    return %dx2, %dw2 : {xt}, {wt}
  }}
}}"#
        );
        let (f, lowered) = parsed_and_lowered(&text);
        for threads in [1, 2] {
            let exe = CpuExecutable::compile(&lowered, &CpuOptions { threads }).unwrap();
            let suffix = if relu { "+relu" } else { "" };
            for label in [format!("conv2d_grad_input+routed{suffix}"), format!("conv2d_grad_weight+routed{suffix}")] {
                assert!(exe.plan_summary().contains(&label), "{:?}", exe.plan_summary());
            }
            for n in [1, 5] {
                let what = format!("c={c} {h}x{w} o={o} pad={pad} window {k}/{s}/{p} relu={relu} inf={inf} {dt}, batch {n}, {threads} thread(s)");
                let mut args = vec![random(&[n, o, oh, ow], dtype, &mut rng), random(&[n, o, qh, qw], dtype, &mut rng), random(&[o, c, 3, 3], dtype, &mut rng), random(&[n, c, h, w], dtype, &mut rng)];
                if inf {
                    for a in &mut args[2..] {
                        let mut v = a.to_f64_vec();
                        v[1] = f64::INFINITY;
                        *a = Tensor::from_f64_values(a.shape(), &v, dtype).unwrap();
                    }
                }
                let want = dlc_backends::run(&f, &args).unwrap();
                let got = exe.run(&args).unwrap();
                for (i, (got, want)) in got.iter().zip(&want).enumerate() {
                    let (got, want) = (got.to_f64_vec(), want.to_f64_vec());
                    assert!(want.iter().any(|v| *v != 0.0 && v.is_finite()), "{what}: nothing routed to result {i}");
                    assert_eq!(want.iter().any(|v| v.is_nan()), inf, "{what}: result {i}: 0 · inf makes NaN only with an infinity");
                    assert_near(&got, &want, dtype, &format!("{what}: result {i}"));
                }
                // Where the routed routines serve, the step ran them: the same
                // bits (doubled) as a direct call.
                let pool = dlc_contract::MaxPool2d { kernel: [k, k], stride: [s, s], padding: [p, p] };
                let conv = dlc_contract::Conv2d { padding: [pad, pad], ..dlc_contract::Conv2d::default() };
                let (xs, ws) = ([n, c, h, w], [o, c, 3, 3]);
                if dtype == DType::F32 && !inf && dlc_contract::conv2d_routed_grads_apply::<f32>(&xs, &ws, conv, pool).unwrap() {
                    let v: Vec<Vec<f32>> = args.iter().map(|a| a.to_f64_vec().iter().map(|&v| v as f32).collect()).collect();
                    let view = |i: usize| dlc_contract::View::new(&v[i], args[i].shape());
                    let mut scratch = vec![0.0f32; 1 << 22];
                    let (mut dx, mut dw) = (vec![0.0f32; xs.iter().product()], vec![0.0f32; ws.iter().product()]);
                    assert!(dlc_contract::conv2d_grad_input_routed(view(0), view(1), view(2), relu, &mut dx, &xs, conv, pool, &mut scratch, 1).unwrap());
                    assert!(dlc_contract::conv2d_grad_weight_routed(view(3), view(0), view(1), relu, &mut dw, &ws, conv, pool, &mut scratch, 1).unwrap());
                    for (i, direct) in [dx, dw].iter().enumerate() {
                        let doubled: Vec<f64> = direct.iter().map(|&v| f64::from(v + v)).collect();
                        assert!(got[i].to_f64_vec().iter().zip(&doubled).all(|(a, b)| a.to_bits() == b.to_bits()), "{what}: result {i} is not the routed routine's");
                    }
                    routed += 1;
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 6 * 2 * 2);
    assert_eq!(routed, 2 * 2 * 2);
}

/// The function of `text`, and it lowered to the kernel level.
fn parsed_and_lowered(text: &str) -> (Function, Function) {
    let f = parse_module(text).unwrap_or_else(|e| panic!("{e}\n{text}")).functions.remove(0);
    let mut lowered = f.clone();
    dlc_passes::to_kernels(&mut lowered).unwrap();
    (f, lowered)
}

/// `got` within 1e-5 (f32) or 1e-13 (f64) of `want`'s largest finite
/// magnitude, elementwise, with the same infinities and NaN.
fn assert_near(got: &[f64], want: &[f64], dtype: DType, what: &str) {
    let scale = want.iter().filter(|v| v.is_finite()).fold(1e-30f64, |m, y| m.max(y.abs()));
    let tol = if dtype == DType::F32 { 1e-5 } else { 1e-13 } * scale;
    assert_eq!(got.len(), want.len(), "{what}");
    for (j, (x, y)) in got.iter().zip(want).enumerate() {
        assert!(x == y || x.is_nan() && y.is_nan() || (x - y).abs() <= tol, "{what}: element {j}: {x} vs {y} (scale {scale})");
    }
}
