//! Max and average pooling through the CPU backend (unrolled windows of up
//! to 16 taps, window reductions beyond) against the reference interpreter
//! at the `dl` level: windows with and without padding, strides below,
//! equal to and above the window, odd sizes, batch 1 and 5, on 1 and 2
//! threads; inputs with NaN, ±inf, -0.0 and ties. Max pooling must agree
//! exactly (it only selects); average pooling within 1e-6 relative.

use dlc_backends::Tensor;
use dlc_cpu::{CpuExecutable, CpuOptions};
use dlc_ir::{Function, parse_module};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A one-op function `@name(args) -> result` whose body is `op_line` (which
/// defines `%y`), parsed.
fn one_op(name: &str, args: &str, result: &str, op_line: &str) -> Function {
    let text = format!("module {{\n  func.func @{name}({args}) -> {result} {{\n    {op_line}\n    return %y : {result}\n  }}\n}}");
    parse_module(&text).unwrap_or_else(|e| panic!("{e}\n{text}")).functions.remove(0)
}

/// The window attributes of a pool, as IR text.
fn window(k: [usize; 2], s: [usize; 2], p: [usize; 2]) -> String {
    format!("kernel = [{}, {}], stride = [{}, {}], padding = [{}, {}]", k[0], k[1], s[0], s[1], p[0], p[1])
}

fn pool_fn(kind: &str, c: usize, h: usize, w: usize, k: [usize; 2], s: [usize; 2], p: [usize; 2]) -> Function {
    let oh = (h + 2 * p[0] - k[0]) / s[0] + 1;
    let ow = (w + 2 * p[1] - k[1]) / s[1] + 1;
    let (x, y) = (format!("tensor<?x{c}x{h}x{w}xf32>"), format!("tensor<?x{c}x{oh}x{ow}xf32>"));
    one_op("pool", &format!("%x: {x}"), &y, &format!(r#"%y = "dl.{kind}"(%x) {{{}}} : ({x}) -> {y}"#, window(k, s, p)))
}

fn input(n: usize, c: usize, h: usize, w: usize, seed: u64) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let specials = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0, 0.0, 1.0, 1.0];
    let values: Vec<f32> = (0..n * c * h * w)
        .map(|_| if rng.random_range(0..10) == 0 { specials[rng.random_range(0..specials.len())] } else { rng.random_range(-2i32..3) as f32 * 0.5 })
        .collect();
    Tensor::from_f32(&[n, c, h, w], values).unwrap()
}

#[test]
fn pools_match_the_interpreter() {
    let windows: &[([usize; 2], [usize; 2], [usize; 2])] = &[
        ([2, 2], [2, 2], [0, 0]),
        ([3, 3], [2, 2], [0, 0]),
        ([3, 3], [2, 2], [1, 1]),
        ([3, 3], [1, 1], [1, 1]),
        ([2, 3], [3, 1], [1, 0]),
        ([1, 1], [2, 2], [0, 0]),
        ([4, 4], [1, 1], [0, 0]),
        ([5, 5], [1, 1], [2, 2]),
        ([5, 3], [2, 1], [2, 1]),
    ];
    let mut cases = 0;
    for (i, &(k, s, p)) in windows.iter().enumerate() {
        // Stride-2 rows also wide enough for whole vectors of windows and a
        // tail (the JIT reads such taps as pairs of vectors, shuffled).
        let planes: &[[usize; 2]] = if s[1] == 2 { &[[9, 7], [6, 23]] } else { &[[9, 7]] };
        for (kind, &[h, w]) in ["max_pool2d", "avg_pool2d"].into_iter().flat_map(|k| planes.iter().map(move |p| (k, p))) {
            let f = pool_fn(kind, 3, h, w, k, s, p);
            let mut lowered = f.clone();
            dlc_passes::to_kernels(&mut lowered).unwrap();
            for threads in [1, 2] {
                let exe = CpuExecutable::compile(&lowered, &CpuOptions { threads }).unwrap().with_min_parallel_cost(0);
                for n in [1, 5] {
                    let x = input(n, 3, h, w, i as u64 * 31 + n as u64);
                    let want = dlc_backends::run(&f, &[&x]).unwrap().remove(0);
                    let got = exe.run(&[&x]).unwrap().remove(0);
                    let what = format!("{kind} {h}x{w} kernel {k:?} stride {s:?} padding {p:?}, batch {n}, {threads} thread(s)");
                    let (g, w) = (got.to_f64_vec(), want.to_f64_vec());
                    assert_eq!(got.shape(), want.shape(), "{what}");
                    for (j, (a, b)) in g.iter().zip(&w).enumerate() {
                        let same = if kind == "max_pool2d" {
                            a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
                        } else {
                            (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-6 * b.abs().max(1.0)
                        };
                        assert!(same, "{what}: element {j}: {a} vs {b}");
                    }
                    cases += 1;
                }
            }
        }
    }
    assert_eq!(cases, (windows.len() + windows.iter().filter(|w| w.1[1] == 2).count()) * 2 * 2 * 2);
}

/// `dl.max_pool2d_grad`, with `relu` fused (`fused`), or composed as
/// autodiff writes it before the e-graph fuses it: `select(x > 0,
/// max_pool2d_grad(x, g), 0)` (`composed`), the oracle for the fused op.
fn pool_grad_fn(dtype: &str, [c, h, w]: [usize; 3], k: [usize; 2], s: [usize; 2], p: [usize; 2], relu: Relu) -> Function {
    let oh = (h + 2 * p[0] - k[0]) / s[0] + 1;
    let ow = (w + 2 * p[1] - k[1]) / s[1] + 1;
    let (x, g) = (format!("tensor<?x{c}x{h}x{w}x{dtype}>"), format!("tensor<?x{c}x{oh}x{ow}x{dtype}>"));
    let attrs = window(k, s, p);
    let body = match relu {
        Relu::No => format!(r#"%y = "dl.max_pool2d_grad"(%x, %g) {{{attrs}}} : ({x}, {g}) -> {x}"#),
        Relu::Fused => format!(r#"%y = "dl.max_pool2d_grad"(%x, %g) {{{attrs}, relu = true}} : ({x}, {g}) -> {x}"#),
        Relu::Composed => {
            let mask = x.replace(dtype, "i1");
            format!(
                r#"%d = "dl.max_pool2d_grad"(%x, %g) {{{attrs}}} : ({x}, {g}) -> {x}
    %z = "dl.constant"() {{value = dense<0.0> : tensor<{dtype}>}} : () -> tensor<{dtype}>
    %m = "dl.cmp"(%x, %z) {{predicate = "gt"}} : ({x}, tensor<{dtype}>) -> {mask}
    %y = "dl.select"(%m, %d, %z) : ({mask}, {x}, tensor<{dtype}>) -> {x}"#
            )
        }
    };
    one_op("pool_grad", &format!("%x: {x}, %g: {g}"), &x, &body)
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Relu {
    No,
    Fused,
    Composed,
}

/// Max-pooling's gradient (`dl.max_pool2d_grad`, the CPU's own routine)
/// against the interpreter, bit for bit: both add each window's share in
/// window order in the tensor's type. Tiling windows (which write every
/// element once) and overlapping or padded ones (which add), inputs full of
/// ties, NaN and ±inf, f32 and f64, batch 1 and 5, 1 and 2 threads; with
/// and without ReLU's mask fused (checked against the interpreter's
/// composition of the unfused op, a compare and a select, and the
/// interpreter's fused op against that too); the 2×2 window on planes with
/// several vectors of windows, a partial one, and a column and row no
/// window covers, with its AVX-512 path on and off.
#[test]
fn max_pool_gradient_matches_the_interpreter() {
    let windows: &[([usize; 2], [usize; 2], [usize; 2])] = &[
        ([2, 2], [2, 2], [0, 0]),
        ([3, 3], [3, 3], [0, 0]),
        ([3, 3], [2, 2], [1, 1]),
        ([3, 3], [1, 1], [1, 1]),
        ([2, 3], [3, 1], [1, 0]),
        ([1, 1], [2, 2], [0, 0]),
        ([5, 3], [2, 1], [2, 1]),
    ];
    let mut cases = 0;
    for (i, &(k, s, p)) in windows.iter().enumerate() {
        let planes: &[[usize; 3]] = if k == [2, 2] { &[[3, 9, 7], [2, 27, 71]] } else { &[[3, 9, 7]] };
        for &[c, h, w] in planes {
            let (oh, ow) = ((h + 2 * p[0] - k[0]) / s[0] + 1, (w + 2 * p[1] - k[1]) / s[1] + 1);
            for dtype in ["f32", "f64"] {
                for relu in [Relu::No, Relu::Fused] {
                    let f = pool_grad_fn(dtype, [c, h, w], k, s, p, relu);
                    let oracle = if relu == Relu::Fused { pool_grad_fn(dtype, [c, h, w], k, s, p, Relu::Composed) } else { f.clone() };
                    let mut lowered = f.clone();
                    dlc_passes::to_kernels(&mut lowered).unwrap();
                    for (threads, simd) in [(1, true), (2, true), (1, false)] {
                        dlc_cpu::POOL_SIMD.store(simd, std::sync::atomic::Ordering::Relaxed);
                        let exe = CpuExecutable::compile(&lowered, &CpuOptions { threads }).unwrap().with_min_parallel_cost(0);
                        for n in [1, 5] {
                            let seed = i as u64 * 31 + n as u64 + w as u64;
                            let (mut x, mut g) = (input(n, c, h, w, seed), input(n, c, oh, ow, seed + 1000));
                            if dtype == "f64" {
                                (x, g) = (Tensor::from_f64(x.shape(), x.to_f64_vec()).unwrap(), Tensor::from_f64(g.shape(), g.to_f64_vec()).unwrap());
                            }
                            let want = dlc_backends::run(&oracle, &[&x, &g]).unwrap().remove(0);
                            let interp = dlc_backends::run(&f, &[&x, &g]).unwrap().remove(0);
                            let got = exe.run(&[&x, &g]).unwrap().remove(0);
                            let what = format!("max_pool2d_grad {dtype} {c}x{h}x{w} kernel {k:?} stride {s:?} padding {p:?} {relu:?}, batch {n}, {threads} thread(s), simd {simd}");
                            for (name, got) in [("cpu", &got), ("interpreter", &interp)] {
                                assert_eq!(got.shape(), want.shape(), "{name} {what}");
                                assert_eq!(got.dtype(), want.dtype(), "{name} {what}");
                                for (j, (a, b)) in got.to_f64_vec().iter().zip(&want.to_f64_vec()).enumerate() {
                                    assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()), "{name} {what}: element {j}: {a} vs {b}");
                                }
                            }
                            cases += 1;
                        }
                    }
                }
            }
        }
    }
    dlc_cpu::POOL_SIMD.store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(cases, (windows.len() + 1) * 2 * 2 * 3 * 2);
}
