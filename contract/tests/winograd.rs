//! The Winograd path against an f64 reference: its error bound, edge
//! tiles, padding, epilogues, bit-identity across thread counts, and where
//! it is dispatched.
//!
//! The bound. Winograd's transforms scale and cancel, so an output's
//! rounding error follows the magnitudes of its whole input tile, not only
//! of its own terms: an edge output with few nonzero terms still carries
//! the error of the larger values around it. So the bound is absolute,
//! scaled by the length of the channel sum: `|y - y_exact| ≤ B · K ·
//! max|x| · max|w|` with `K = C·9` (the products per output of the
//! convolution the routine computes: `C` input channels forward, `O` for
//! the input gradient). Measured here (uniform ±1 inputs, Kaiming-uniform
//! weights ±sqrt(6/K)), `B` reached 6.8e-7 forward and 5.8e-7 for the input
//! gradient with F(4×4) (about 11 f32 ulps of 1), 4.3e-8 and 3.1e-8 with
//! F(2×2); [`F4_BOUND`] and [`F2_BOUND`] keep about 3× margin. Relative to
//! `Σ|x·w|` of each output, the worst elements measured 3.2e-6 (forward)
//! and 1.8e-5 (input gradient, whose padding of 2 makes many edge outputs)
//! for F(4×4), 2.1e-7 and 1.9e-6 for F(2×2) — against about 1e-7 for a
//! direct sum.

mod common;

use std::sync::atomic::Ordering;

use common::*;
use dlc_contract::{
    Conv2d, DIRECT, Epilogue, MIN_WINO_CHANNELS, View, WINO_TILE, WINOGRAD, conv2d, conv2d_grad_input, conv2d_grad_input_is_winograd,
    conv2d_grad_input_scratch_len, conv2d_is_direct, conv2d_is_winograd, conv2d_scratch_len,
};

/// F(4×4, 3×3)'s `B` (see the module docs).
const F4_BOUND: f64 = 2e-6;
/// F(2×2, 3×3)'s `B`.
const F2_BOUND: f64 = 1.5e-7;

fn case(x: [usize; 4], w: [usize; 4], pad: [usize; 2]) -> ConvCase {
    ConvCase { x, w, stride: [1, 1], pad, dil: [1, 1] }
}

/// Odd sizes, maps smaller than a tile (1×1 with padding), padding 0/1/2
/// (mixed per axis), batch 1 and several, channel counts not multiples of
/// 16, more tiles than one block and than one 16-tile lane group, and the
/// Keras CNN's two deeper layers at batch 2.
fn cases() -> Vec<ConvCase> {
    vec![
        case([1, 1, 3, 3], [1, 1, 3, 3], [0, 0]),
        case([1, 3, 4, 5], [2, 3, 3, 3], [0, 0]),
        case([2, 5, 7, 9], [3, 5, 3, 3], [1, 1]),
        case([3, 7, 5, 5], [9, 7, 3, 3], [2, 2]),
        case([1, 17, 11, 6], [19, 17, 3, 3], [0, 2]),
        case([2, 4, 1, 1], [5, 4, 3, 3], [1, 1]),
        case([2, 4, 2, 3], [5, 4, 3, 3], [2, 1]),
        case([5, 33, 13, 13], [20, 33, 3, 3], [0, 0]),
        case([4, 8, 10, 10], [40, 8, 3, 3], [1, 0]),
        case([70, 3, 6, 6], [4, 3, 3, 3], [0, 0]),
        case([2, 32, 13, 13], [64, 32, 3, 3], [0, 0]),
        case([2, 64, 5, 5], [64, 64, 3, 3], [0, 0]),
    ]
}

/// Kaiming-uniform weights: ±sqrt(6 / fan_in).
fn kaiming(r: &mut rand_chacha::ChaCha8Rng, w: [usize; 4]) -> Vec<f32> {
    let bound = (6.0 / (w[1] * 9) as f64).sqrt();
    random::<f64>(r, w.iter().product()).into_iter().map(|v| (v * bound) as f32).collect()
}

static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `f` with the Winograd path on for every 3×3 stride-1 shape, tile
/// `m` (0: the default).
fn with_tile<R>(m: usize, f: impl FnOnce() -> R) -> R {
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let min = MIN_WINO_CHANNELS.swap(0, Ordering::Relaxed);
    WINO_TILE.store(m, Ordering::Relaxed);
    WINOGRAD.store(true, Ordering::Relaxed);
    let r = f();
    WINO_TILE.store(0, Ordering::Relaxed);
    MIN_WINO_CHANNELS.store(min, Ordering::Relaxed);
    r
}

fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx512f");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Scratch and output start as NaN: every element must be written.
fn run_conv(cc: &ConvCase, x: &[f32], w: &[f32], epi: Epilogue<'_, f32>, threads: usize) -> Vec<f32> {
    let mut scratch = vec![f32::NAN; conv2d_scratch_len::<f32>(&cc.x, &cc.w, cc.conv(), threads).unwrap()];
    let mut out = vec![f32::NAN; cc.out().iter().product()];
    conv2d(View::new(x, &cc.x), View::new(w, &cc.w), &mut out, cc.conv(), epi, &mut scratch, threads).unwrap();
    out
}

fn run_grad_input(cc: &ConvCase, dy: &[f32], w: &[f32], threads: usize) -> Vec<f32> {
    let mut scratch = vec![f32::NAN; conv2d_grad_input_scratch_len::<f32>(&cc.x, &cc.w, cc.conv(), threads).unwrap()];
    let mut dx = vec![f32::NAN; cc.x.iter().product()];
    conv2d_grad_input(View::new(dy, &cc.out()), View::new(w, &cc.w), &mut dx, &cc.x, cc.conv(), &mut scratch, threads).unwrap();
    dx
}

fn max_abs(v: &[f32]) -> f64 {
    v.iter().fold(0.0f64, |m, &a| m.max((a as f64).abs()))
}

/// The largest `|got - ref| / (K · max|x| · max|w|)`, and the largest
/// `|got - ref| / Σ|terms|`.
fn errors(got: &[f32], want: &[Ref], k: usize, x: &[f32], w: &[f32]) -> (f64, f64) {
    assert_eq!(got.len(), want.len());
    let scale = k as f64 * max_abs(x) * max_abs(w);
    got.iter().zip(want).fold((0.0f64, 0.0f64), |(a, r), (&g, rf)| {
        let e = (g as f64 - rf.value).abs();
        assert!(e.is_finite(), "an output was not written");
        (a.max(e / scale), r.max(e / (rf.scale + 1e-30)))
    })
}

/// Forward pass and input gradient on F(2×2) and F(4×4) against the f64
/// reference, within the stated bound; the same results at 1 and 2 threads,
/// bit for bit; the epilogue applied to the rounded result exactly.
#[test]
fn winograd_within_its_error_bound() {
    if !avx512() {
        eprintln!("this machine has no AVX-512: the Winograd path does not run here");
        return;
    }
    for (m, bound) in [(2, F2_BOUND), (4, F4_BOUND)] {
        let (mut fwd, mut bwd, mut fwd_rel, mut bwd_rel) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
        for (i, cc) in cases().iter().enumerate() {
            let mut r = rng(500 + i as u64);
            let x: Vec<f32> = random(&mut r, cc.x.iter().product());
            let w = kaiming(&mut r, cc.w);
            let dy: Vec<f32> = random(&mut r, cc.out().iter().product());
            let bias: Vec<f32> = random(&mut r, cc.w[0]);
            let what = format!("F({m}x{m}) {cc:?}");
            with_tile(m, || {
                assert!(conv2d_is_winograd::<f32>(&cc.x, &cc.w, cc.conv()).unwrap(), "{what}");
                assert!(conv2d_grad_input_is_winograd::<f32>(&cc.x, &cc.w, cc.conv()).unwrap(), "{what}");
                let y = run_conv(cc, &x, &w, Epilogue::NONE, 1);
                let (a, rel) = errors(&y, &naive_conv(cc, &x, &w), cc.x[1] * 9, &x, &w);
                assert!(a <= bound, "{what}: forward error {a:e} · K·max|x|·max|w| over the bound {bound:e}");
                (fwd, fwd_rel) = (fwd.max(a), fwd_rel.max(rel));
                assert_bits_eq(&format!("{what}: 1 vs 2 threads"), &y, &run_conv(cc, &x, &w, Epilogue::NONE, 2));
                // The epilogue: bias added to the rounded result, then ReLU.
                let p = cc.out()[2] * cc.out()[3];
                let want: Vec<f32> = y.iter().enumerate().map(|(j, &v)| (v + bias[(j / p) % cc.w[0]]).max(0.0)).collect();
                for threads in [1, 2] {
                    let got = run_conv(cc, &x, &w, Epilogue::NONE.with_bias(&bias).with_relu(), threads);
                    assert_bits_eq(&format!("{what}: bias+relu, {threads} threads"), &got, &want);
                }

                let dx = run_grad_input(cc, &dy, &w, 1);
                let (a, rel) = errors(&dx, &naive_conv_grad_input(cc, &dy, &w), cc.w[0] * 9, &dy, &w);
                assert!(a <= bound, "{what}: input gradient error {a:e} · K·max|dy|·max|w| over the bound {bound:e}");
                (bwd, bwd_rel) = (bwd.max(a), bwd_rel.max(rel));
                assert_bits_eq(&format!("{what}: dx 1 vs 2 threads"), &dx, &run_grad_input(cc, &dy, &w, 2));
                assert_bits_eq(&format!("{what}: dx run to run"), &dx, &run_grad_input(cc, &dy, &w, 1));
            });
        }
        eprintln!("F({m}x{m},3x3) error / (K·max|x|·max|w|): forward {fwd:.2e}, input gradient {bwd:.2e}; / Σ|x·w|: {fwd_rel:.2e}, {bwd_rel:.2e}");
    }
}

/// The dispatch on an AVX-512 machine with the default thresholds: the
/// Keras CNN's two deeper layers go to Winograd forward (ahead of the
/// direct kernels), the 13×13 layer's input gradient too, but not the 5×5
/// layer's (its 5×5 output wastes too much of 4×4 tiles), nor the 1-channel
/// first layer, nor other kernels or strides. `WINOGRAD` turns it off, and
/// scratch sizes do not depend on it.
#[test]
fn the_winograd_path_is_taken_where_it_pays() {
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let c = Conv2d::default();
    let on = avx512();
    let (first, mid, last) = (([64, 1, 28, 28], [32, 1, 3, 3]), ([64, 32, 13, 13], [64, 32, 3, 3]), ([64, 64, 5, 5], [64, 64, 3, 3]));
    let fwd = |(x, w): ([usize; 4], [usize; 4])| conv2d_is_winograd::<f32>(&x, &w, c).unwrap();
    let bwd = |(x, w): ([usize; 4], [usize; 4])| conv2d_grad_input_is_winograd::<f32>(&x, &w, c).unwrap();
    assert!(!fwd(first) && !bwd(first), "1 input channel");
    assert_eq!(fwd(mid), on);
    assert_eq!(bwd(mid), on);
    assert_eq!(fwd(last), on);
    assert!(!bwd(last), "a 5x5 input gradient on 4x4 tiles");
    assert!(!conv2d_is_winograd::<f64>(&mid.0, &mid.1, c).unwrap(), "f64 has no Winograd path");
    let strided = Conv2d { stride: [2, 2], ..c };
    assert!(!conv2d_is_winograd::<f32>(&mid.0, &mid.1, strided).unwrap());
    assert!(!conv2d_is_winograd::<f32>(&[64, 32, 13, 13], &[64, 32, 5, 5], c).unwrap());
    let lens = || {
        (conv2d_scratch_len::<f32>(&mid.0, &mid.1, c, 2).unwrap(), conv2d_grad_input_scratch_len::<f32>(&mid.0, &mid.1, c, 2).unwrap())
    };
    let with = lens();
    WINOGRAD.store(false, Ordering::Relaxed);
    let (off, without) = (fwd(mid), lens());
    let direct = conv2d_is_direct::<f32>(&mid.0, &mid.1, c).unwrap();
    WINOGRAD.store(true, Ordering::Relaxed);
    assert!(!off, "WINOGRAD off");
    assert_eq!(direct, on && DIRECT.load(Ordering::Relaxed), "with Winograd off the direct kernels take the forward pass");
    assert_eq!(with, without, "the scratch covers every path");
}
