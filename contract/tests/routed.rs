//! `conv2d_grad_input_routed` and `conv2d_grad_weight_routed` against
//! naive sums (written in `common`, independently of the crate) of the
//! dense gradients of the full-size output gradient that a max-pooling
//! gradient, written here by PyTorch's rule, routes. On every machine, and
//! on AVX-512 machines with both the AVX-512 and the portable kernels:
//! within rounding of those sums (the routed sums skip the zero terms and
//! run in another order), with padding, odd output sizes (a row and column
//! no window covers), one to four register blocks of input channels, ties,
//! ±inf, NaN and -0 in `y` and `g`, with and without ReLU's mask, and the
//! same bits at 1 and 2 threads; a non-finite weight or input is reported
//! instead. Other shapes are refused, and the routines say so.

mod common;

use common::{ConvCase, assert_bits_eq, assert_close, avx512, naive_conv_grad_input, naive_conv_grad_weight, random, reference_pool_grad, rng, values};
use dlc_contract::{
    Conv2d, MaxPool2d, View, conv2d_grad_input_routed, conv2d_grad_input_routed_scratch_len, conv2d_grad_weight_routed, conv2d_grad_weight_routed_scratch_len,
    ROUTED_AVX512, conv2d_routed_grads_apply,
};
use std::sync::atomic::Ordering;

const WINDOW: MaxPool2d = MaxPool2d { kernel: [2, 2], stride: [2, 2], padding: [0, 0] };

fn conv(p: usize) -> Conv2d {
    Conv2d { padding: [p, p], ..Conv2d::default() }
}

/// The routed input gradient, or None where it reports a non-finite weight.
fn grad_input(y: &[f32], g: &[f32], w: &[f32], relu: bool, cc: &ConvCase, threads: usize) -> Option<Vec<f32>> {
    let mut dx = vec![f32::NAN; cc.x.iter().product()];
    let mut scratch = vec![f32::NAN; conv2d_grad_input_routed_scratch_len::<f32>(&cc.x, &cc.w, cc.conv(), WINDOW, threads).unwrap()];
    let [n, o, oh, ow] = cc.out();
    let (ys, gs) = ([n, o, oh, ow], [n, o, oh / 2, ow / 2]);
    let done = conv2d_grad_input_routed(View::new(y, &ys), View::new(g, &gs), View::new(w, &cc.w), relu, &mut dx, &cc.x, cc.conv(), WINDOW, &mut scratch, threads).unwrap();
    done.then_some(dx)
}

/// The routed weight gradient, or None where it reports a non-finite input.
fn grad_weight(x: &[f32], y: &[f32], g: &[f32], relu: bool, cc: &ConvCase, threads: usize) -> Option<Vec<f32>> {
    let mut dw = vec![f32::NAN; cc.w.iter().product()];
    let mut scratch = vec![f32::NAN; conv2d_grad_weight_routed_scratch_len::<f32>(&cc.x, &cc.w, cc.conv(), WINDOW, threads).unwrap()];
    let [n, o, oh, ow] = cc.out();
    let (ys, gs) = ([n, o, oh, ow], [n, o, oh / 2, ow / 2]);
    let done = conv2d_grad_weight_routed(View::new(x, &cc.x), View::new(y, &ys), View::new(g, &gs), relu, &mut dw, &cc.w, cc.conv(), WINDOW, &mut scratch, threads).unwrap();
    done.then_some(dw)
}

fn case(x: [usize; 4], w: [usize; 4], pad: usize) -> ConvCase {
    ConvCase { x, w, stride: [1, 1], pad: [pad, pad], dil: [1, 1] }
}

#[test]
fn the_routed_gradients_equal_the_dense_gradients_of_the_routed_output_gradient() {
    // The Keras CNN's second layer (an 11×11 output: its last row and
    // column in no window; large enough to split over two threads), 16
    // channels (one vector per block) with an even output, 48 (three
    // blocks of one) with an odd width, 64 (two blocks of two) with one
    // window, and 32 channels on a 12×12 output that splits over threads.
    let cases = [
        case([3, 32, 13, 13], [64, 32, 3, 3], 0),
        case([3, 16, 8, 8], [5, 16, 3, 3], 1),
        case([2, 48, 6, 7], [3, 48, 3, 3], 1),
        case([2, 64, 5, 5], [4, 64, 3, 3], 0),
        case([8, 32, 12, 12], [32, 32, 3, 3], 1),
        // Rows of 10 and 19 windows: a full vector of 8 and a partial one,
        // and two full ones and a partial one.
        case([2, 16, 20, 21], [3, 16, 3, 3], 1),
        case([1, 32, 38, 40], [2, 32, 3, 3], 0),
    ];
    let specials = [f32::INFINITY, f32::NEG_INFINITY, f32::NAN, -0.0, 0.0];
    let mut checked = 0;
    // The only test here that switches kernels (the others' values are
    // exact on either), so the switch cannot race with a comparison; the
    // guard switches back, also when an assertion fails.
    struct Restore;
    impl Drop for Restore {
        fn drop(&mut self) {
            ROUTED_AVX512.store(true, Ordering::Relaxed);
        }
    }
    let _restore = Restore;
    for (wide, i, cc) in [true, false].iter().flat_map(|&wide| cases.iter().enumerate().map(move |(i, cc)| (wide, i, cc))) {
        if wide && !avx512() {
            continue;
        }
        ROUTED_AVX512.store(wide, Ordering::Relaxed);
        assert!(conv2d_routed_grads_apply::<f32>(&cc.x, &cc.w, cc.conv(), WINDOW).unwrap(), "{cc:?}");
        let mut r = rng(i as u64);
        let (x, w): (Vec<f32>, Vec<f32>) = (random(&mut r, cc.x.iter().product()), random(&mut r, cc.w.iter().product()));
        let ys = cc.out();
        let gs = [ys[0], ys[1], ys[2] / 2, ys[3] / 2];
        // Gradients in [-3, 3] with -0 and 0.5 among them.
        let g = values(gs.iter().product(), 4, 11, &[-0.0, 0.5]);
        // Small integers in y: ties are common; then specials as well, and
        // in g too (without padding: the dense routines multiply a padding
        // zero by an infinite gradient, and so do these, where the naive
        // sums skip the padding).
        let g_specials = values(gs.iter().product(), 6, 5, &[f32::NAN, f32::INFINITY, -0.0, f32::NEG_INFINITY]);
        for (every, special_g) in [(0, false), (7, false), (7, true)] {
            if special_g && cc.pad != [0, 0] {
                continue;
            }
            let g = if special_g { &g_specials } else { &g };
            let y = values(ys.iter().product(), 5, every, &specials);
            for relu in [true, false] {
                let dy = reference_pool_grad(&y, g, ys, relu);
                let what = format!("{cc:?} specials={} in g={special_g} relu={relu} avx512={wide}", every > 0);
                let (dx1, dw1) = (grad_input(&y, g, &w, relu, cc, 1).unwrap(), grad_weight(&x, &y, g, relu, cc, 1).unwrap());
                assert_close_or_special(&format!("dx {what}"), &dx1, &naive_conv_grad_input(cc, &dy, &w));
                assert_close_or_special(&format!("dw {what}"), &dw1, &naive_conv_grad_weight(cc, &x, &dy));
                assert!(dw1.iter().any(|v| *v != 0.0) && dx1.iter().any(|v| *v != 0.0), "{what}: nothing routed");
                let (dx2, dw2) = (grad_input(&y, g, &w, relu, cc, 2).unwrap(), grad_weight(&x, &y, g, relu, cc, 2).unwrap());
                assert_bits_eq(&format!("dx at 2 threads {what}"), &dx2, &dx1);
                assert_bits_eq(&format!("dw at 2 threads {what}"), &dw2, &dw1);
                checked += 1;
            }
        }
    }
    assert_eq!(checked, if avx512() { 2 } else { 1 } * (7 * 4 + 3 * 2));
}

/// One window whose argmax is known, against sums written out by hand.
#[test]
fn a_window_gradient_reaches_the_taps_its_argmax_read() {
    let cc = case([1, 16, 4, 4], [1, 16, 3, 3], 0);
    // y's one 2×2 window has its maximum, 5, at (1, 0); its gradient 2
    // lands there, where the convolution read x[c, 1 + a, b] · w[0, c, a, b].
    let y = [1.0f32, 2.0, 5.0, 4.0];
    let g = [2.0f32];
    let x: Vec<f32> = (0..256).map(|v| v as f32).collect();
    let w: Vec<f32> = (0..144).map(|v| (v % 9) as f32 - 4.0).collect();
    let dx = grad_input(&y, &g, &w, true, &cc, 1).unwrap();
    let dw = grad_weight(&x, &y, &g, true, &cc, 1).unwrap();
    for c in 0..16 {
        for r in 0..4 {
            for s in 0..4 {
                let want = if (1..4).contains(&r) && s < 3 { 2.0 * w[c * 9 + (r - 1) * 3 + s] } else { 0.0 };
                assert_eq!(dx[c * 16 + r * 4 + s], want, "dx[{c}, {r}, {s}]");
            }
        }
        for a in 0..3 {
            for b in 0..3 {
                assert_eq!(dw[c * 9 + a * 3 + b], 2.0 * x[c * 16 + (1 + a) * 4 + b], "dw[0, {c}, {a}, {b}]");
            }
        }
    }
    // ReLU's mask: a window whose maximum is not positive passes nothing.
    let negative = y.map(|v| v - 5.0);
    assert!(grad_input(&negative, &g, &w, true, &cc, 1).unwrap().iter().all(|&v| v == 0.0));
    assert!(grad_weight(&x, &negative, &g, true, &cc, 1).unwrap().iter().all(|&v| v == 0.0));
    assert_eq!(grad_weight(&x, &negative, &g, false, &cc, 1).unwrap(), dw, "without the mask the sign does not matter");
}

/// Where the dense gradients would multiply an infinity or a NaN by a zero
/// of the full-size gradient (a NaN the routed sums never form), the
/// routines say so, and the caller runs the dense ones.
#[test]
fn a_non_finite_weight_or_input_is_reported() {
    let cc = case([2, 16, 6, 6], [2, 16, 3, 3], 1);
    let mut r = rng(9);
    let (x, w): (Vec<f32>, Vec<f32>) = (random(&mut r, cc.x.iter().product()), random(&mut r, cc.w.iter().product()));
    let ys = cc.out();
    let y: Vec<f32> = random(&mut r, ys.iter().product());
    let g: Vec<f32> = random(&mut r, ys[0] * ys[1] * (ys[2] / 2) * (ys[3] / 2));
    assert!(grad_input(&y, &g, &w, false, &cc, 1).is_some() && grad_weight(&x, &y, &g, false, &cc, 1).is_some());
    for bad in [f32::INFINITY, f32::NEG_INFINITY, f32::NAN] {
        let (mut wb, mut xb) = (w.clone(), x.clone());
        wb[w.len() - 1] = bad;
        xb[x.len() - 1] = bad;
        assert!(grad_input(&y, &g, &wb, false, &cc, 1).is_none(), "weight {bad}");
        assert!(grad_weight(&xb, &y, &g, false, &cc, 2).is_none(), "input {bad}");
    }
    // Specials in y and g are routed like any value.
    let (mut ys_, mut gs_) = (y.clone(), g.clone());
    (ys_[3], ys_[40], gs_[2], gs_[7]) = (f32::NAN, f32::INFINITY, f32::NAN, f32::NEG_INFINITY);
    assert!(grad_input(&ys_, &gs_, &w, false, &cc, 1).is_some() && grad_weight(&x, &ys_, &gs_, false, &cc, 1).is_some());
}

/// A batch of no images: nothing to read, an input gradient of no
/// elements and a zero weight gradient.
#[test]
fn an_empty_batch_gives_a_zero_weight_gradient() {
    let cc = case([0, 16, 6, 6], [2, 16, 3, 3], 1);
    let w = vec![0.5f32; 288];
    assert_eq!(grad_input(&[], &[], &w, true, &cc, 2).unwrap(), Vec::<f32>::new());
    assert_eq!(grad_weight(&[], &[], &[], true, &cc, 2).unwrap(), vec![0.0; 288]);
}

/// [`assert_close`], except that where the naive sum is not finite (an
/// infinite or NaN gradient reached it) the result must be the same
/// infinity, or NaN.
fn assert_close_or_special(what: &str, got: &[f32], want: &[common::Ref]) {
    let finite: Vec<common::Ref> = want.iter().map(|r| if r.value.is_finite() { *r } else { common::Ref::default() }).collect();
    let got_finite: Vec<f32> = got.iter().zip(want).map(|(&g, r)| if r.value.is_finite() { g } else { 0.0 }).collect();
    assert_close(what, &got_finite, &finite);
    for (i, (&g, r)) in got.iter().zip(want).enumerate() {
        if !r.value.is_finite() {
            assert!(f64::from(g) == r.value || g.is_nan() && r.value.is_nan(), "{what}: element {i}: got {g}, want {}", r.value);
        }
    }
}

#[test]
fn other_shapes_are_refused() {
    let refused = |xs: [usize; 4], ws: [usize; 4], conv: Conv2d, pool: MaxPool2d| !conv2d_routed_grads_apply::<f32>(&xs, &ws, conv, pool).unwrap();
    assert!(refused([1, 8, 8, 8], [4, 8, 3, 3], conv(0), WINDOW), "8 input channels");
    assert!(refused([1, 16, 8, 8], [4, 16, 5, 5], conv(0), WINDOW), "a 5x5 kernel");
    assert!(refused([1, 16, 9, 9], [4, 16, 3, 3], Conv2d { stride: [2, 2], ..conv(0) }, WINDOW), "stride 2");
    assert!(refused([1, 16, 9, 9], [4, 16, 3, 3], Conv2d { dilation: [2, 2], ..conv(0) }, WINDOW), "dilation 2");
    assert!(refused([1, 16, 8, 8], [4, 16, 3, 3], conv(0), MaxPool2d { kernel: [3, 3], stride: [2, 2], padding: [0, 0] }), "a 3x3 window");
    assert!(refused([1, 16, 8, 8], [4, 16, 3, 3], conv(0), MaxPool2d { padding: [1, 1], ..WINDOW }), "a padded window");
    assert!(!conv2d_routed_grads_apply::<f64>(&[1, 16, 8, 8], &[4, 16, 3, 3], conv(0), WINDOW).unwrap(), "f64");
    // A refused shape is an error, not a wrong result.
    let (x, w) = (vec![0.0f32; 512], vec![0.0f32; 288]);
    let (y, g) = (vec![0.0f32; 144], vec![0.0f32; 36]);
    let mut out = vec![0.0f32; 512];
    let err = conv2d_grad_input_routed(View::new(&y, &[1, 4, 6, 6]), View::new(&g, &[1, 4, 3, 3]), View::new(&w, &[4, 8, 3, 3]), false, &mut out, &[1, 8, 8, 8], conv(0), WINDOW, &mut [], 1);
    assert!(err.is_err());
    let mut dw = vec![0.0f32; 288];
    let err = conv2d_grad_weight_routed(View::new(&x, &[1, 8, 8, 8]), View::new(&y, &[1, 4, 6, 6]), View::new(&g, &[1, 4, 3, 3]), false, &mut dw, &[4, 8, 3, 3], conv(0), WINDOW, &mut [], 1);
    assert!(err.is_err());
}
