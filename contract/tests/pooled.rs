//! `conv2d_max_pool` against the convolution it fuses followed by a
//! max-pool written here: over tiling, overlapping and padded windows,
//! batches that split into several chunks or none, with and without the
//! epilogue, NaN among the inputs; bit-identical at any thread count.

use dlc_contract::{Conv2d, Epilogue, MaxPool2d, View, conv2d, conv2d_max_pool, conv2d_max_pool_is_mono, conv2d_max_pool_is_winograd, conv2d_max_pool_scratch_len, conv2d_max_pool_shape, conv2d_scratch_len};

/// Deterministic values in [-1, 1), with a NaN every `nan_every` elements.
fn values(n: usize, seed: usize, nan_every: usize) -> Vec<f32> {
    (0..n)
        .map(|i| if nan_every > 0 && (i * 13 + seed).is_multiple_of(nan_every) { f32::NAN } else { (((i * 7919 + seed * 104729) % 2003) as f32 / 1001.5) - 1.0 })
        .collect()
}

/// Max-pools `[n, c, h, w]` as PyTorch does (padding never wins, a NaN in
/// the window is the result), written independently of the crate.
fn reference_pool(y: &[f32], [n, c, h, w]: [usize; 4], pool: MaxPool2d) -> Vec<f32> {
    let out = |d: usize, size: usize| (size + 2 * pool.padding[d] - pool.kernel[d]) / pool.stride[d] + 1;
    let (ph, pw) = (out(0, h), out(1, w));
    let mut r = Vec::new();
    for plane in y.chunks(h * w).take(n * c) {
        for i in 0..ph {
            for j in 0..pw {
                let mut vals = Vec::new();
                for ki in 0..pool.kernel[0] {
                    for kj in 0..pool.kernel[1] {
                        let (ii, jj) = ((i * pool.stride[0] + ki) as isize - pool.padding[0] as isize, (j * pool.stride[1] + kj) as isize - pool.padding[1] as isize);
                        if ii >= 0 && jj >= 0 && (ii as usize) < h && (jj as usize) < w {
                            vals.push(plane[ii as usize * w + jj as usize]);
                        }
                    }
                }
                r.push(if vals.iter().any(|v| v.is_nan()) { f32::NAN } else { vals.iter().copied().fold(f32::NEG_INFINITY, f32::max) });
            }
        }
    }
    r
}

#[derive(Debug)]
struct Case {
    x: [usize; 4],
    w: [usize; 4],
    conv: Conv2d,
    pool: MaxPool2d,
}

fn pool(k: usize, s: usize, p: usize) -> MaxPool2d {
    MaxPool2d { kernel: [k, k], stride: [s, s], padding: [p, p] }
}

fn cases() -> Vec<Case> {
    let c = |stride: usize, padding: usize| Conv2d { stride: [stride, stride], padding: [padding, padding], ..Conv2d::default() };
    vec![
        // The Keras CNN's first layer: many chunks of a few images.
        Case { x: [13, 1, 28, 28], w: [32, 1, 3, 3], conv: c(1, 0), pool: pool(2, 2, 0) },
        // Its second (direct path on AVX-512: 288 taps), odd plane, odd batch.
        Case { x: [9, 32, 13, 13], w: [64, 32, 3, 3], conv: c(1, 0), pool: pool(2, 2, 0) },
        // Overlapping and padded windows, a strided padded conv.
        Case { x: [5, 3, 11, 9], w: [7, 3, 3, 3], conv: c(2, 1), pool: pool(3, 2, 1) },
        Case { x: [2, 2, 8, 8], w: [5, 2, 1, 1], conv: c(1, 0), pool: pool(3, 1, 1) },
        Case { x: [1, 4, 6, 7], w: [3, 4, 2, 2], conv: c(1, 0), pool: pool(2, 1, 0) },
        // One channel, padded, odd sizes (the last row and column are not
        // pooled), wider than one 16-lane step, NaN among the inputs.
        Case { x: [3, 1, 13, 41], w: [4, 1, 3, 3], conv: c(1, 1), pool: pool(2, 2, 0) },
        // Winograd-sized (32 channels and more), pooled in its output
        // tiles on AVX-512: a padded 14×14 output (its last tiles half
        // outside), an 8×8 one (whole tiles), NaN among the inputs.
        Case { x: [4, 32, 14, 14], w: [32, 32, 3, 3], conv: c(1, 1), pool: pool(2, 2, 0) },
        Case { x: [3, 32, 10, 10], w: [33, 32, 3, 3], conv: c(1, 0), pool: pool(2, 2, 0) },
    ]
}

/// The pooled result; the elements just past it must stay untouched (the
/// kernels write through raw pointers and masked scatters).
fn run_pooled(case: &Case, x: &[f32], w: &[f32], epi: Epilogue<'_, f32>, threads: usize) -> Vec<f32> {
    let shape = conv2d_max_pool_shape(&case.x, &case.w, case.conv, case.pool).unwrap();
    let len = shape.iter().product();
    let mut out = vec![-7.5f32; len + 256];
    let mut scratch = vec![0.0f32; conv2d_max_pool_scratch_len::<f32>(&case.x, &case.w, case.conv, case.pool, threads).unwrap()];
    conv2d_max_pool(View::new(x, &case.x), View::new(w, &case.w), &mut out[..len], case.conv, epi, case.pool, &mut scratch, threads).unwrap();
    assert!(out[len..].iter().all(|&v| v == -7.5), "{case:?}: written past the result");
    out.truncate(len);
    out
}

#[test]
fn a_pooled_convolution_is_the_convolution_then_the_pool() {
    for (k, case) in cases().iter().enumerate() {
        let x = values(case.x.iter().product(), k, if [2, 5, 7].contains(&k) { 97 } else { 0 });
        let w = values(case.w.iter().product(), k + 50, 0);
        let bias = values(case.w[0], k + 100, 0);
        for epi in [Epilogue::NONE, Epilogue::NONE.with_bias(&bias).with_relu()] {
            let y_shape = case.conv.out_shape(&case.x, &case.w).unwrap();
            let mut y = vec![0.0f32; y_shape.iter().product()];
            let mut scratch = vec![0.0f32; conv2d_scratch_len::<f32>(&case.x, &case.w, case.conv, 1).unwrap()];
            conv2d(View::new(&x, &case.x), View::new(&w, &case.w), &mut y, case.conv, epi, &mut scratch, 1).unwrap();
            let want = reference_pool(&y, y_shape, case.pool);
            let got = run_pooled(case, &x, &w, epi, 1);
            assert_eq!(got.len(), want.len(), "case {k}");
            for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                let ok = (g.is_nan() && e.is_nan()) || (g - e).abs() <= 1e-5 * (1.0 + e.abs());
                assert!(ok, "case {k} element {i}: {g} against {e}");
            }
            for threads in [2, 3] {
                let other = run_pooled(case, &x, &w, epi, threads);
                assert!(other.iter().zip(&got).all(|(a, b)| a.to_bits() == b.to_bits()), "case {k}: {threads} threads differ from 1");
            }
        }
    }
}

/// Where the machine has AVX-512, a one-channel 3×3 convolution with a
/// 2×2/2 window (cases 0 and 5 above) pools in the kernel's registers, and
/// a Winograd-sized one (cases 1, 6 and 7) in the output transform; other
/// windows and channel counts go through the chunks.
#[test]
fn one_channel_convolutions_pool_in_registers() {
    #[cfg(target_arch = "x86_64")]
    let avx512 = std::arch::is_x86_feature_detected!("avx512f");
    #[cfg(not(target_arch = "x86_64"))]
    let avx512 = false;
    let taken: Vec<bool> = cases().iter().map(|c| conv2d_max_pool_is_mono::<f32>(&c.x, &c.w, c.conv, c.pool).unwrap()).collect();
    assert_eq!(taken, vec![avx512, false, false, false, false, avx512, false, false]);
    // The 32-channel 3×3 cases with a 2×2/2 window pool inside the
    // Winograd output transform (the 13×13 layer's too).
    let wino: Vec<bool> = cases().iter().map(|c| conv2d_max_pool_is_winograd::<f32>(&c.x, &c.w, c.conv, c.pool).unwrap()).collect();
    assert_eq!(wino, vec![false, avx512, false, false, false, false, avx512, avx512]);
    let c = &cases()[0];
    assert!(!conv2d_max_pool_is_mono::<f64>(&c.x, &c.w, c.conv, c.pool).unwrap(), "f64");
    assert!(!conv2d_max_pool_is_mono::<f32>(&c.x, &c.w, c.conv, pool(3, 2, 1)).unwrap(), "a 3x3 window");
}

#[test]
fn shapes_that_do_not_fit_are_errors() {
    let conv = Conv2d::default();
    assert!(conv2d_max_pool_shape(&[1, 1, 4, 4], &[1, 1, 3, 3], conv, pool(3, 1, 0)).is_err(), "a 3x3 window on a 2x2 plane");
    assert!(conv2d_max_pool_shape(&[1, 1, 6, 6], &[1, 1, 3, 3], conv, pool(2, 2, 2)).is_err(), "padding over half the window");
    assert_eq!(conv2d_max_pool_shape(&[4, 1, 28, 28], &[32, 1, 3, 3], conv, pool(2, 2, 0)).unwrap(), [4, 32, 13, 13]);
    let mut out = vec![0.0f32; 3];
    let (x, w) = (vec![0.0f32; 36], vec![0.0f32; 9]);
    let e = conv2d_max_pool(View::new(&x, &[1, 1, 6, 6]), View::new(&w, &[1, 1, 3, 3]), &mut out, conv, Epilogue::NONE, pool(2, 2, 0), &mut [], 1);
    assert!(e.is_err(), "the output holds 3 elements, 4 are needed");
}
