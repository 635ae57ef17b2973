//! `conv2d_max_pool_grad_weight` against the three routines it stands
//! for: `conv2d` (plus the bias), a max-pooling gradient written here by
//! PyTorch's rule, and `conv2d_grad_weight`. On AVX-512 machines the one
//! pass gives the same bits as those three (which run their one-channel
//! paths there), at 1 and 2 threads, with padding, an odd number of
//! windows per row, ties, zeros of both signs, ±inf and NaN in the
//! convolution's output; elsewhere it refuses, and says so.

mod common;

use common::{avx512, reference_pool_grad, values};
use dlc_contract::{
    Conv2d, Epilogue, MaxPool2d, View, conv2d, conv2d_grad_weight, conv2d_grad_weight_scratch_len, conv2d_max_pool_grad_weight,
    conv2d_max_pool_grad_weight_applies, conv2d_max_pool_grad_weight_scratch_len, conv2d_scratch_len,
};

const WINDOW: MaxPool2d = MaxPool2d { kernel: [2, 2], stride: [2, 2], padding: [0, 0] };

/// The three routines in turn.
fn unfused(x: View<'_, f32>, w: View<'_, f32>, bias: Option<&[f32]>, relu: bool, g: &[f32], conv: Conv2d, threads: usize) -> Vec<f32> {
    let y_shape = conv.out_shape(x.shape, w.shape).unwrap();
    let mut y = vec![0.0f32; y_shape.iter().product()];
    let mut scratch = vec![0.0f32; conv2d_scratch_len::<f32>(x.shape, w.shape, conv, threads).unwrap()];
    conv2d(x, w, &mut y, conv, Epilogue { bias, relu: false }, &mut scratch, threads).unwrap();
    let dy = reference_pool_grad(&y, g, y_shape, relu);
    let mut dw = vec![0.0f32; w.data.len()];
    let mut scratch = vec![0.0f32; conv2d_grad_weight_scratch_len::<f32>(x.shape, w.shape, conv, threads).unwrap()];
    conv2d_grad_weight(x, View::new(&dy, &y_shape), &mut dw, w.shape, conv, &mut scratch, threads).unwrap();
    dw
}

#[test]
fn the_one_pass_equals_the_convolution_the_pooling_gradient_and_the_weight_gradient() {
    let pad = |p: usize| Conv2d { padding: [p, p], ..Conv2d::default() };
    // (x, w, convolution): the Keras CNN's first layer (13 windows a row:
    // a full and a partial vector), a row of 5 windows with padding, one of
    // 17 windows (three vectors), a single window, and planes so wide that
    // the routed rows of only two channels fit the buffer at once.
    let cases = [
        ([5, 1, 28, 28], [32, 1, 3, 3], pad(0)),
        ([3, 1, 10, 10], [4, 1, 3, 3], pad(1)),
        ([2, 1, 8, 34], [3, 1, 3, 3], pad(1)),
        ([1, 1, 4, 4], [2, 1, 3, 3], pad(0)),
        ([1, 1, 66, 1026], [3, 1, 3, 3], pad(0)),
    ];
    let specials = [f32::INFINITY, f32::NEG_INFINITY, f32::NAN, -0.0, 0.0];
    let mut checked = 0;
    for ((xs, ws, conv), every) in cases.iter().flat_map(|c| [(*c, 0), (*c, 37)]) {
        // Without specials, and with them (which reach every weight's sum).
        let x = values(xs.iter().product(), 1, every, &specials);
        let w = values(ws.iter().product(), 2, 0, &specials);
        let bias = values(ws[0], 3, 0, &specials);
        let y = conv.out_shape(&xs, &ws).unwrap();
        let gs = [y[0], y[1], y[2] / 2, y[3] / 2];
        let g = values(gs.iter().product(), 4, 11, &[-0.0, 0.5]);
        assert!(conv2d_max_pool_grad_weight_applies::<f32>(&xs, &ws, conv, WINDOW).unwrap() == avx512(), "{xs:?}");
        for (with_bias, relu) in [(true, true), (true, false), (false, true), (false, false)] {
            let b = with_bias.then_some(&bias[..]);
            for threads in [1, 2] {
                let (xv, wv) = (View::new(&x, &xs), View::new(&w, &ws));
                let mut dw = vec![f32::NAN; w.len()];
                let mut scratch = vec![0.0f32; conv2d_max_pool_grad_weight_scratch_len::<f32>(&xs, &ws, conv, WINDOW).unwrap()];
                let got = conv2d_max_pool_grad_weight(xv, wv, b, relu, View::new(&g, &gs), &mut dw, conv, WINDOW, &mut scratch, threads);
                if !avx512() {
                    assert!(got.is_err(), "served without AVX-512");
                    continue;
                }
                got.unwrap();
                let want = unfused(xv, wv, b, relu, &g, conv, threads);
                let what = format!("{xs:?} {conv:?} bias={with_bias} relu={relu} threads={threads}");
                assert!(want.iter().zip(&dw).all(|(a, b)| a.to_bits() == b.to_bits() || a.is_nan() && b.is_nan()), "{what}:\n{want:?}\n{dw:?}");
                assert!(every > 0 || dw.iter().all(|v| v.is_finite()) && dw.iter().any(|v| *v != 0.0), "{what}: nothing routed");
                checked += 1;
            }
        }
    }
    assert_eq!(checked, if avx512() { 80 } else { 0 });
}

/// The routed gradient reaches the weights: one window, whose argmax is
/// known, against a sum written out by hand.
#[test]
fn a_window_routes_its_gradient_to_its_argmax() {
    if !avx512() {
        assert!(!conv2d_max_pool_grad_weight_applies::<f32>(&[1, 1, 4, 4], &[1, 1, 3, 3], Conv2d::default(), WINDOW).unwrap());
        return;
    }
    // x = 0..16 as 4×4; w picks the centre tap, so the convolution is x's
    // inner 2×2 [[5, 6], [9, 10]], whose maximum is the 10 at (1, 1). Its
    // gradient 2 lands there: dw[a, b] = 2 · x[1 + a, 1 + b].
    let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
    let mut w = vec![0.0f32; 9];
    w[4] = 1.0;
    let g = [2.0f32];
    let run = |bias: f32, relu: bool| {
        let mut dw = vec![0.0f32; 9];
        let b = [bias];
        conv2d_max_pool_grad_weight(View::new(&x, &[1, 1, 4, 4]), View::new(&w, &[1, 1, 3, 3]), Some(&b), relu, View::new(&g, &[1, 1, 1, 1]), &mut dw, Conv2d::default(), WINDOW, &mut [], 1).unwrap();
        dw
    };
    let want: Vec<f32> = [5, 6, 7, 9, 10, 11, 13, 14, 15].iter().map(|&v| 2.0 * v as f32).collect();
    assert_eq!(run(0.0, true), want);
    assert_eq!(run(-10.0, false), want, "without the mask the bias does not matter");
    assert_eq!(run(-10.0, true), vec![0.0; 9], "10 - 10 is not > 0");
}

#[test]
fn other_shapes_are_refused() {
    let conv = Conv2d::default();
    let refused = |xs: [usize; 4], ws: [usize; 4], pool: MaxPool2d| !conv2d_max_pool_grad_weight_applies::<f32>(&xs, &ws, conv, pool).unwrap();
    assert!(refused([1, 2, 8, 8], [3, 2, 3, 3], WINDOW), "two input channels");
    assert!(refused([1, 1, 9, 8], [3, 1, 3, 3], WINDOW), "an odd output height: a row no window covers");
    assert!(refused([1, 1, 8, 8], [3, 1, 3, 3], MaxPool2d { kernel: [3, 3], stride: [2, 2], padding: [0, 0] }), "a 3x3 window");
    assert!(!conv2d_max_pool_grad_weight_applies::<f64>(&[1, 1, 8, 8], &[3, 1, 3, 3], conv, WINDOW).unwrap(), "f64");
    let (x, w, g) = (vec![0.0f32; 64], vec![0.0f32; 27], vec![0.0f32; 3 * 4]);
    let mut dw = vec![0.0f32; 27];
    let e = conv2d_max_pool_grad_weight(View::new(&x, &[1, 1, 8, 8]), View::new(&w, &[3, 1, 3, 3]), None, false, View::new(&g, &[1, 3, 2, 2]), &mut dw, conv, WINDOW, &mut [], 1);
    assert!(e.is_err(), "a gradient of the wrong shape: the pooled output is 3x3");
}
