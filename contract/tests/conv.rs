//! `conv2d` and its gradients against naive loops and the interpreter.

mod common;

use std::sync::atomic::Ordering;

use common::*;
use dlc_contract::{
    Conv2d, ContractError, DIRECT, Epilogue, MIN_DIRECT_TAPS, MIN_WINO_CHANNELS, MONO, View, WINOGRAD, conv2d_is_mono, conv2d_grad_input_is_winograd, conv2d_is_winograd, conv2d, conv2d_grad_input, conv2d_grad_input_scratch_len, conv2d_grad_weight, conv2d_is_direct,
    conv2d_grad_weight_scratch_len, conv2d_scratch_len,
};

fn case(x: [usize; 4], w: [usize; 4], stride: [usize; 2], pad: [usize; 2], dil: [usize; 2]) -> ConvCase {
    ConvCase { x, w, stride, pad, dil }
}

/// Odd sizes, batch 1, stride 2, padding 1, dilation 2 and mixes, the 1×1
/// direct path, images grouped side by side (small outputs) with a partial
/// last group, and a kernel bigger than the unpadded input.
fn cases() -> Vec<ConvCase> {
    vec![
        case([1, 1, 7, 7], [1, 1, 3, 3], [1, 1], [0, 0], [1, 1]),
        case([1, 3, 9, 9], [65, 3, 3, 3], [1, 1], [0, 0], [1, 1]),
        case([3, 3, 7, 7], [7, 3, 3, 3], [2, 2], [0, 0], [1, 1]),
        case([2, 3, 7, 7], [3, 3, 3, 3], [1, 1], [1, 1], [1, 1]),
        case([2, 1, 9, 9], [3, 1, 3, 3], [1, 1], [0, 0], [2, 2]),
        case([3, 2, 8, 7], [3, 2, 3, 2], [2, 1], [1, 2], [2, 1]),
        case([2, 3, 7, 7], [3, 3, 3, 3], [2, 2], [1, 1], [2, 2]),
        case([3, 5, 7, 7], [7, 5, 1, 1], [1, 1], [0, 0], [1, 1]),
        case([2, 3, 7, 7], [3, 3, 1, 1], [2, 2], [0, 0], [1, 1]),
        case([5, 2, 10, 10], [3, 2, 3, 3], [1, 1], [1, 1], [1, 1]),
        case([7, 3, 5, 5], [4, 3, 3, 3], [1, 1], [0, 0], [1, 1]),
        case([65, 1, 3, 3], [3, 1, 3, 3], [1, 1], [0, 0], [1, 1]),
        case([1, 1, 3, 3], [1, 1, 5, 5], [1, 1], [1, 1], [1, 1]),
        case([2, 1, 7, 7], [2, 1, 1, 1], [1, 1], [0, 0], [1, 1]),
        case([2, 16, 13, 13], [32, 16, 3, 3], [1, 1], [0, 0], [1, 1]),
        // The direct path's channel tiles: 3 vectors (40 channels), exactly
        // 4 (64), and 4 then 1 (65, above); a padded 5×5 kernel.
        case([2, 3, 9, 8], [40, 3, 3, 3], [1, 1], [0, 0], [1, 1]),
        case([3, 8, 6, 6], [64, 8, 3, 3], [1, 1], [2, 1], [1, 1]),
        case([2, 2, 7, 7], [5, 2, 5, 5], [1, 1], [2, 2], [1, 1]),
        // Enough images that the direct weight gradient runs in groups.
        case([12, 2, 40, 40], [3, 2, 3, 3], [1, 1], [0, 0], [1, 1]),
        // Groups of 21 images and a partial one of 19, narrow output rows:
        // the input gradient's position-major col2im, padded.
        case([40, 2, 5, 5], [3, 2, 3, 3], [1, 1], [1, 1], [1, 1]),
        // One input channel (the mono path): a 26-wide row (16 + 10 lanes),
        // a padded 39-wide row (two segments), a narrow padded one.
        case([3, 1, 28, 28], [32, 1, 3, 3], [1, 1], [0, 0], [1, 1]),
        case([2, 1, 11, 37], [5, 1, 3, 3], [1, 1], [1, 2], [1, 1]),
        case([1, 1, 5, 20], [3, 1, 3, 3], [1, 1], [1, 1], [1, 1]),
    ]
}

/// The f32 tests run on every path: Winograd F(4×4, 3×3) for every 3×3,
/// stride-1 shape however few its channels, the direct AVX-512 kernels for
/// every shape however few its taps (both where the machine has AVX-512),
/// and im2col + gemm. The switches are process-wide, so every test that
/// depends on them holds this lock.
static PATH: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[derive(Clone, Copy, PartialEq, Debug)]
enum Path {
    Winograd,
    Direct,
    Mono,
    Im2col,
}

fn on_every_path(f: impl Fn(Path)) {
    let _guard = PATH.lock().unwrap_or_else(|e| e.into_inner());
    let (min_taps, min_ch) = (MIN_DIRECT_TAPS.load(Ordering::Relaxed), MIN_WINO_CHANNELS.load(Ordering::Relaxed));
    for path in [Path::Winograd, Path::Direct, Path::Mono, Path::Im2col] {
        MONO.store(path == Path::Mono, Ordering::Relaxed);
        WINOGRAD.store(path == Path::Winograd, Ordering::Relaxed);
        MIN_WINO_CHANNELS.store(if path == Path::Winograd { 0 } else { min_ch }, Ordering::Relaxed);
        DIRECT.store(path == Path::Direct, Ordering::Relaxed);
        MIN_DIRECT_TAPS.store(if path == Path::Direct { 0 } else { min_taps }, Ordering::Relaxed);
        f(path);
    }
    WINOGRAD.store(true, Ordering::Relaxed);
    DIRECT.store(true, Ordering::Relaxed);
    MONO.store(true, Ordering::Relaxed);
    MIN_DIRECT_TAPS.store(min_taps, Ordering::Relaxed);
    MIN_WINO_CHANNELS.store(min_ch, Ordering::Relaxed);
}

/// Winograd's tolerance relative to `Σ|x·w|` (`tests/winograd.rs` measures
/// the error; its worst elements are edge outputs with few terms, whose
/// tile still mixes the larger values around them).
const WINO_RTOL: f64 = 1e-4;

/// The relative tolerance for a result of `T` that took `path` (`wino`:
/// whether this shape took the Winograd path).
fn rtol<T: Float>(wino: bool) -> f64 {
    if wino { WINO_RTOL } else { T::RTOL }
}

fn run_conv<T: Float>(cc: &ConvCase, x: &[T], w: &[T], epi: Epilogue<'_, T>, threads: usize) -> Vec<T> {
    let mut scratch = vec![T::ZERO; conv2d_scratch_len::<T>(&cc.x, &cc.w, cc.conv(), threads).unwrap()];
    let mut out = vec![T::ZERO; cc.out().iter().product()];
    conv2d(View::new(x, &cc.x), View::new(w, &cc.w), &mut out, cc.conv(), epi, &mut scratch, threads).unwrap();
    out
}

fn run_grad_input<T: Float>(cc: &ConvCase, dy: &[T], w: &[T], threads: usize) -> Vec<T> {
    let mut scratch = vec![T::ZERO; conv2d_grad_input_scratch_len::<T>(&cc.x, &cc.w, cc.conv(), threads).unwrap()];
    // Garbage in dx: the gradient must overwrite, not accumulate.
    let mut dx = vec![T::of(7.0); cc.x.iter().product()];
    conv2d_grad_input(View::new(dy, &cc.out()), View::new(w, &cc.w), &mut dx, &cc.x, cc.conv(), &mut scratch, threads).unwrap();
    dx
}

fn run_grad_weight<T: Float>(cc: &ConvCase, x: &[T], dy: &[T], threads: usize) -> Vec<T> {
    let mut scratch = vec![T::ZERO; conv2d_grad_weight_scratch_len::<T>(&cc.x, &cc.w, cc.conv(), threads).unwrap()];
    let mut dw = vec![T::of(7.0); cc.w.iter().product()];
    conv2d_grad_weight(View::new(x, &cc.x), View::new(dy, &cc.out()), &mut dw, &cc.w, cc.conv(), &mut scratch, threads).unwrap();
    dw
}

fn forward<T: Float>(path: Path) {
    for (i, cc) in cases().iter().enumerate() {
        let mut r = rng(100 + i as u64);
        let x: Vec<T> = random(&mut r, cc.x.iter().product());
        let w: Vec<T> = random(&mut r, cc.w.iter().product());
        let wino = conv2d_is_winograd::<T>(&cc.x, &cc.w, cc.conv()).unwrap();
        let what = format!("{cc:?} ({path:?} where it applies; Winograd: {wino})");
        assert_eq!(cc.conv().out_shape(&cc.x, &cc.w).unwrap(), cc.out(), "{what}: shape");
        let want = naive_conv(cc, &x, &w);
        let got = run_conv(cc, &x, &w, Epilogue::NONE, 1);
        assert_close_rtol(&format!("{what} vs naive"), &got, &want, rtol::<T>(wino));
        let (shape, interp) = interp_conv(&x, &cc.x, &w, &cc.w, cc.stride, cc.pad, cc.dil);
        assert_eq!(shape, cc.out());
        assert_close_to_rtol(&format!("{what} vs interpreter"), &got, &interp, &want, rtol::<T>(wino));
        let two = run_conv(cc, &x, &w, Epilogue::NONE, 2);
        assert_bits_eq(&format!("{what}: 1 vs 2 threads"), &got, &two);
        assert_bits_eq(&format!("{what}: run to run"), &two, &run_conv(cc, &x, &w, Epilogue::NONE, 2));

        // Bias per output channel, then ReLU.
        let bias: Vec<T> = random(&mut r, cc.w[0]);
        let p = cc.out()[2] * cc.out()[3];
        let mut want_epi = want.clone();
        for (j, rf) in want_epi.iter_mut().enumerate() {
            let b: f64 = bias[(j / p) % cc.w[0]].into();
            rf.value = (rf.value + b).max(0.0);
            rf.scale += b.abs();
        }
        for threads in [1, 2] {
            let got = run_conv(cc, &x, &w, Epilogue::NONE.with_bias(&bias).with_relu(), threads);
            assert_close_rtol(&format!("{what} bias+relu, {threads} threads"), &got, &want_epi, rtol::<T>(wino));
        }
    }
}

#[test]
fn conv2d_f32() {
    on_every_path(forward::<f32>);
}

#[test]
fn conv2d_f64() {
    forward::<f64>(Path::Im2col);
}

/// `dx` from the interpreter: the transposed convolution, written as the
/// registry's VJP writes it — `dy` spread by the stride into a zero tensor
/// offset by `dilation·(k-1) - pad`, correlated with the flipped,
/// channel-swapped weight at the same dilation.
fn interp_grad_input<T: Float>(cc: &ConvCase, dy: &[T], w: &[T]) -> Vec<T> {
    let [n, c, h, wd] = cc.x;
    let [o, _, kh, kw] = cc.w;
    let [_, _, oh, ow] = cc.out();
    let span = |d: usize, k: usize| cc.dil[d] * (k - 1);
    let (zh, zw) = (h + span(0, kh), wd + span(1, kw));
    let mut z = vec![T::ZERO; n * o * zh * zw];
    for b in 0..n * o {
        for y in 0..oh {
            for x in 0..ow {
                let zy = (span(0, kh) + y * cc.stride[0]) as isize - cc.pad[0] as isize;
                let zx = (span(1, kw) + x * cc.stride[1]) as isize - cc.pad[1] as isize;
                if zy >= 0 && zx >= 0 && (zy as usize) < zh && (zx as usize) < zw {
                    z[(b * zh + zy as usize) * zw + zx as usize] = dy[(b * oh + y) * ow + x];
                }
            }
        }
    }
    let mut wt = vec![T::ZERO; w.len()];
    for oi in 0..o {
        for ci in 0..c {
            for i in 0..kh {
                for j in 0..kw {
                    wt[((ci * o + oi) * kh + kh - 1 - i) * kw + kw - 1 - j] = w[((oi * c + ci) * kh + i) * kw + j];
                }
            }
        }
    }
    let (shape, dx) = interp_conv(&z, &[n, o, zh, zw], &wt, &[c, o, kh, kw], [1, 1], [0, 0], cc.dil);
    assert_eq!(shape, cc.x);
    dx
}

/// `dW` from the interpreter: the conv of `xᵀ` `[C,N,H,W]` with `dyᵀ`
/// `[O,N,OH,OW]`, stride and dilation exchanged, cropped to the kernel and
/// transposed back (the registry's static-batch VJP).
fn interp_grad_weight<T: Float>(cc: &ConvCase, x: &[T], dy: &[T]) -> Vec<T> {
    let [n, c, h, wd] = cc.x;
    let [o, _, kh, kw] = cc.w;
    let so = cc.out();
    let xs = swap01(x, cc.x);
    let gs = swap01(dy, so);
    let (shape, r) = interp_conv(&xs, &[c, n, h, wd], &gs, &[o, n, so[2], so[3]], cc.dil, cc.pad, cc.stride);
    let (rh, rw) = (shape[2], shape[3]);
    let mut dw = vec![T::ZERO; o * c * kh * kw];
    for ci in 0..c {
        for oi in 0..o {
            for i in 0..kh {
                for j in 0..kw {
                    dw[((oi * c + ci) * kh + i) * kw + j] = r[((ci * o + oi) * rh + i) * rw + j];
                }
            }
        }
    }
    dw
}

fn gradients<T: Float>(path: Path) {
    for (i, cc) in cases().iter().enumerate() {
        let mut r = rng(200 + i as u64);
        let x: Vec<T> = random(&mut r, cc.x.iter().product());
        let w: Vec<T> = random(&mut r, cc.w.iter().product());
        let dy: Vec<T> = random(&mut r, cc.out().iter().product());
        let wino = conv2d_grad_input_is_winograd::<T>(&cc.x, &cc.w, cc.conv()).unwrap();
        let what = format!("{cc:?} ({path:?} where it applies; Winograd dx: {wino})");

        let want = naive_conv_grad_input(cc, &dy, &w);
        let got = run_grad_input(cc, &dy, &w, 1);
        assert_close_rtol(&format!("{what} dx vs naive"), &got, &want, rtol::<T>(wino));
        assert_close_to_rtol(&format!("{what} dx vs interpreter"), &got, &interp_grad_input(cc, &dy, &w), &want, rtol::<T>(wino));
        let two = run_grad_input(cc, &dy, &w, 2);
        assert_bits_eq(&format!("{what} dx: 1 vs 2 threads"), &got, &two);
        assert_bits_eq(&format!("{what} dx: run to run"), &two, &run_grad_input(cc, &dy, &w, 2));

        let want = naive_conv_grad_weight(cc, &x, &dy);
        let got = run_grad_weight(cc, &x, &dy, 1);
        assert_close(&format!("{what} dW vs naive"), &got, &want);
        assert_close_to(&format!("{what} dW vs interpreter"), &got, &interp_grad_weight(cc, &x, &dy), &want);
        // Two jobs sum partials in another order: equal within tolerance,
        // and bit-equal run to run.
        let two = run_grad_weight(cc, &x, &dy, 2);
        assert_close_to(&format!("{what} dW: 2 threads vs 1"), &two, &got, &want);
        assert_bits_eq(&format!("{what} dW: run to run"), &two, &run_grad_weight(cc, &x, &dy, 2));
    }
}

#[test]
fn conv2d_gradients_f32() {
    on_every_path(gradients::<f32>);
}

#[test]
fn conv2d_gradients_f64() {
    gradients::<f64>(Path::Im2col);
}

/// The gradients are the adjoints of the forward map:
/// `<conv(x, w), dy> = <x, dx(dy, w)> = <w, dW(x, dy)>`.
#[test]
fn gradients_are_adjoints() {
    for (i, cc) in cases().iter().enumerate() {
        let mut r = rng(300 + i as u64);
        let x: Vec<f64> = random(&mut r, cc.x.iter().product());
        let w: Vec<f64> = random(&mut r, cc.w.iter().product());
        let dy: Vec<f64> = random(&mut r, cc.out().iter().product());
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        let y = run_conv(cc, &x, &w, Epilogue::NONE, 2);
        let lhs = dot(&y, &dy);
        let via_x = dot(&x, &run_grad_input(cc, &dy, &w, 2));
        let via_w = dot(&w, &run_grad_weight(cc, &x, &dy, 2));
        let tol = 1e-10 * (1.0 + lhs.abs()) * y.len() as f64;
        assert!((lhs - via_x).abs() < tol && (lhs - via_w).abs() < tol, "{cc:?}: {lhs} {via_x} {via_w}");
    }
}

#[test]
fn bad_calls_are_errors() {
    let _guard = PATH.lock().unwrap_or_else(|e| e.into_inner());
    let x = [0.0f32; 2 * 3 * 5 * 5];
    let w = [0.0f32; 4 * 3 * 3 * 3];
    let conv = Conv2d::default();
    let (sx, sw) = ([2, 3, 5, 5], [4, 3, 3, 3]);
    let mut out = vec![0.0f32; 2 * 4 * 3 * 3];
    let need = conv2d_scratch_len::<f32>(&sx, &sw, conv, 1).unwrap();
    assert!(need > 0);
    let mut scratch = vec![0.0f32; need];
    // Scratch too short.
    let r = conv2d(View::new(&x, &sx), View::new(&w, &sw), &mut out, conv, Epilogue::NONE, &mut scratch[..need - 1], 1);
    assert_eq!(r, Err(ContractError::Scratch { needed: need, found: need - 1 }));
    // Channel mismatch.
    let w2 = [0.0f32; 4 * 2 * 3 * 3];
    let r = conv2d(View::new(&x, &sx), View::new(&w2, &[4, 2, 3, 3]), &mut out, conv, Epilogue::NONE, &mut scratch, 1);
    assert!(matches!(r, Err(ContractError::Shape(_))));
    // Kernel larger than the input.
    assert!(matches!(conv2d_scratch_len::<f32>(&[1, 1, 2, 2], &[1, 1, 3, 3], conv, 1), Err(ContractError::Shape(_))));
    // Zero stride.
    let bad = Conv2d { stride: [0, 1], ..conv };
    assert!(matches!(bad.out_shape(&sx, &sw), Err(ContractError::Shape(_))));
    // Wrong output length, wrong bias length, wrong dy shape.
    let r = conv2d(View::new(&x, &sx), View::new(&w, &sw), &mut out[1..], conv, Epilogue::NONE, &mut scratch, 1);
    assert!(matches!(r, Err(ContractError::Len { what: "out", .. })));
    let bias = [0.0f32; 3];
    let r = conv2d(View::new(&x, &sx), View::new(&w, &sw), &mut out, conv, Epilogue::NONE.with_bias(&bias), &mut scratch, 1);
    assert!(matches!(r, Err(ContractError::Len { what: "bias", .. })));
    let mut dx = vec![0.0f32; x.len()];
    let mut s = vec![0.0f32; conv2d_grad_input_scratch_len::<f32>(&sx, &sw, conv, 1).unwrap()];
    let r = conv2d_grad_input(View::new(&out[..36], &[1, 4, 3, 3]), View::new(&w, &sw), &mut dx, &sx, conv, &mut s, 1);
    assert!(matches!(r, Err(ContractError::Shape(_))));
}

/// The direct kernels are only tested where they run: on a machine with
/// AVX-512 the default threshold keeps a 9-tap convolution on im2col and
/// sends a 288-tap one direct (its forward pass goes to Winograd first:
/// see `tests/winograd.rs`), and `DIRECT` turns the path off; elsewhere
/// nothing goes direct. Scratch sizes never depend on the machine: they
/// cover every path.
#[test]
fn the_direct_path_is_taken_where_it_applies() {
    let _guard = PATH.lock().unwrap_or_else(|e| e.into_inner());
    let c = Conv2d::default();
    let (small, big) = (([64, 1, 28, 28], [32, 1, 3, 3]), ([64, 32, 13, 13], [64, 32, 3, 3]));
    let direct = |(x, w): ([usize; 4], [usize; 4]), on: bool| {
        DIRECT.store(on, Ordering::Relaxed);
        let d = conv2d_is_direct::<f32>(&x, &w, c).unwrap();
        let len = conv2d_scratch_len::<f32>(&x, &w, c, 1).unwrap();
        DIRECT.store(true, Ordering::Relaxed);
        (d, len)
    };
    #[cfg(target_arch = "x86_64")]
    let avx512 = std::arch::is_x86_feature_detected!("avx512f");
    #[cfg(not(target_arch = "x86_64"))]
    let avx512 = false;
    if !avx512 {
        eprintln!("this machine has no AVX-512: the direct kernels do not run here");
    }
    assert!(!direct(small, true).0, "9 taps stay on im2col");
    assert_eq!(direct(big, true).0, avx512, "288 taps go direct where the machine has AVX-512");
    assert!(!direct(big, false).0, "DIRECT off keeps im2col");
    assert_eq!(direct(big, true).1, direct(big, false).1, "the scratch covers either path");
    assert!(!conv2d_is_direct::<f64>(&big.0, &big.1, c).unwrap(), "f64 has no direct kernels");
    // The one-channel path: the CNN's first layer, where the machine has AVX-512.
    assert_eq!(conv2d_is_mono::<f32>(&small.0, &small.1, c).unwrap(), avx512);
    assert!(!conv2d_is_mono::<f32>(&big.0, &big.1, c).unwrap(), "32 input channels");
    assert!(!conv2d_is_mono::<f64>(&small.0, &small.1, c).unwrap(), "f64");
    let strided = Conv2d { stride: [2, 2], ..c };
    assert!(!conv2d_is_mono::<f32>(&small.0, &small.1, strided).unwrap(), "stride 2");
    MONO.store(false, Ordering::Relaxed);
    let off = (conv2d_is_mono::<f32>(&small.0, &small.1, c).unwrap(), conv2d_scratch_len::<f32>(&small.0, &small.1, c, 1).unwrap());
    MONO.store(true, Ordering::Relaxed);
    assert_eq!(off, (false, conv2d_scratch_len::<f32>(&small.0, &small.1, c, 1).unwrap()), "MONO off keeps im2col, same scratch");
}
