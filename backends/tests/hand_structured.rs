//! Hand-worked cases for reductions, contractions, windows, normalizations and
//! movement: every expected value was worked out on paper (the comments show
//! the arithmetic), independently of the interpreter's code.

mod common;

use common::{assert_close, bt, f32t, f64t, i32t, i64t, run_op};
use dlc_backends::{InterpError, Tensor};
use dlc_ir::{Attr, Attrs, DType, OpKind, attrs};

const NAN: f32 = f32::NAN;
const INF: f32 = f32::INFINITY;

fn ok(what: &str, op: OpKind, attrs: Attrs, inputs: &[Tensor], want: Tensor) {
    let got = run_op(op, attrs, inputs).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_close(what, &got, &want);
}

fn axes(a: &[i64], keep: bool) -> Attrs {
    let mut m = attrs! {"keepdims" => keep};
    m.insert("axes".into(), Attr::ints(a));
    m
}

/// [[1, 2, 3], [4, 5, 6]]
fn x23() -> Tensor {
    f32t(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
}

#[test]
fn reductions() {
    use OpKind::*;
    ok("sum axis 0", ReduceSum, axes(&[0], false), &[x23()], f32t(&[3], &[5.0, 7.0, 9.0]));
    ok("sum axis 1 keepdims", ReduceSum, axes(&[1], true), &[x23()], f32t(&[2, 1], &[6.0, 15.0]));
    ok("sum axis -1", ReduceSum, axes(&[-1], false), &[x23()], f32t(&[2], &[6.0, 15.0]));
    ok("sum all to a scalar", ReduceSum, axes(&[0, 1], false), &[x23()], f32t(&[], &[21.0]));
    ok("sum over no axes is the identity", ReduceSum, axes(&[], false), &[x23()], x23());
    // x[i][j][k] = 4i + 2j + k; summing i and k: j=0 -> 0+1+4+5 = 10, j=1 -> 2+3+6+7 = 18.
    let x3 = f64t(&[2, 2, 2], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
    ok("sum axes [0, 2]", ReduceSum, axes(&[2, 0], false), &[x3], f64t(&[2], &[10.0, 18.0]));
    ok("sum i32", ReduceSum, axes(&[0], false), &[i32t(&[2, 2], &[1, 2, 3, 4])], i32t(&[2], &[4, 6]));
    ok("sum propagates NaN and inf", ReduceSum, axes(&[1], false), &[f32t(&[3, 2], &[1.0, NAN, INF, -INF, INF, 1.0])], f32t(&[3], &[NAN, NAN, INF]));
    // 1e8 + 1 - 1e8 + 1 = 2 exactly; a left-to-right f32 sum rounds 1e8 + 1
    // back to 1e8 and gives 1. The oracle accumulates in f64.
    ok("sum is accurate", ReduceSum, axes(&[0], false), &[f32t(&[4], &[1e8, 1.0, -1e8, 1.0])], f32t(&[], &[2.0]));
    ok("mean axis 1", ReduceMean, axes(&[1], false), &[x23()], f32t(&[2], &[2.0, 5.0]));
    ok("mean all keepdims", ReduceMean, axes(&[0, 1], true), &[x23()], f32t(&[1, 1], &[3.5]));
    ok("mean of nothing is NaN", ReduceMean, axes(&[0], false), &[f32t(&[0, 2], &[])], f32t(&[2], &[NAN, NAN]));
    // Rows: [1, NaN, 3] -> NaN, [4, 5, -inf] -> 5. Columns: [1,4] -> 4, [NaN,5] -> NaN, [3,-inf] -> 3.
    let xn = || f32t(&[2, 3], &[1.0, NAN, 3.0, 4.0, 5.0, -INF]);
    ok("max propagates NaN (rows)", ReduceMax, axes(&[1], false), &[xn()], f32t(&[2], &[NAN, 5.0]));
    ok("max propagates NaN (columns)", ReduceMax, axes(&[0], false), &[xn()], f32t(&[3], &[4.0, NAN, 3.0]));
    ok("max i64 keepdims", ReduceMax, axes(&[1], true), &[i64t(&[2, 2], &[-1, -5, 2, 0])], i64t(&[2, 1], &[-1, 2]));
    let err = run_op(ReduceMax, axes(&[1], false), &[f32t(&[2, 0], &[])]).unwrap_err();
    assert!(matches!(err, InterpError::EmptyReduction { .. }), "{err}");
}

#[test]
fn argmax_takes_the_first_maximum_and_nan_wins() {
    use OpKind::Argmax;
    // Row 0: 3 first at index 1. Row 1: the first NaN, index 0. Row 2: NaN at index 2 beats 2.
    let x = || f32t(&[3, 3], &[1.0, 3.0, 3.0, NAN, 2.0, NAN, 2.0, 1.0, NAN]);
    ok("argmax axis 1", Argmax, attrs! {"axis" => 1i64}, &[x()], i64t(&[3], &[1, 0, 2]));
    ok("argmax axis -1", Argmax, attrs! {"axis" => -1i64}, &[x()], i64t(&[3], &[1, 0, 2]));
    // Columns: [1, NaN, 2] -> 1; [3, 2, 1] -> 0; [3, NaN, NaN] -> 1.
    ok("argmax axis 0 keepdims", Argmax, attrs! {"axis" => 0i64, "keepdims" => true}, &[x()], i64t(&[1, 3], &[1, 0, 1]));
    ok("argmax i1", Argmax, attrs! {"axis" => 0i64}, &[bt(&[3], &[0, 1, 1])], i64t(&[], &[1]));
    ok("argmax i32 ties", Argmax, attrs! {"axis" => 0i64}, &[i32t(&[4], &[-1, 7, 7, 2])], i64t(&[], &[1]));
}

#[test]
fn matmul() {
    use OpKind::Matmul;
    // [[1,2,3],[4,5,6]] @ [[7,8],[9,10],[11,12]]:
    // 1*7+2*9+3*11 = 58, 1*8+2*10+3*12 = 64, 4*7+5*9+6*11 = 139, 4*8+5*10+6*12 = 154.
    let want = || f32t(&[2, 2], &[58.0, 64.0, 139.0, 154.0]);
    let b = f32t(&[3, 2], &[7.0, 8.0, 9.0, 10.0, 11.0, 12.0]);
    ok("2-D", Matmul, Attrs::new(), &[x23(), b], want());
    let at = f32t(&[3, 2], &[1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    let bt_ = f32t(&[2, 3], &[7.0, 9.0, 11.0, 8.0, 10.0, 12.0]);
    ok("transpose_a", Matmul, attrs! {"transpose_a" => true}, &[at.clone(), f32t(&[3, 2], &[7.0, 8.0, 9.0, 10.0, 11.0, 12.0])], want());
    ok("transpose_b", Matmul, attrs! {"transpose_b" => true}, &[x23(), bt_.clone()], want());
    ok("both transposed", Matmul, attrs! {"transpose_a" => true, "transpose_b" => true}, &[at, bt_], want());
    // a[i] = [[i+1, 1]] (batch [2,1]), b[j] = [[j],[10]] (batch [3]): out[i][j] = (i+1)*j + 10.
    let a = f64t(&[2, 1, 1, 2], &[1.0, 1.0, 2.0, 1.0]);
    let b = f64t(&[3, 2, 1], &[0.0, 10.0, 1.0, 10.0, 2.0, 10.0]);
    ok("batch dims broadcast", Matmul, Attrs::new(), &[a, b], f64t(&[2, 3, 1, 1], &[10.0, 11.0, 12.0, 10.0, 12.0, 14.0]));
}

#[test]
fn conv2d_with_stride_padding_and_dilation() {
    // x[i][j] = 5i + j + 1 on a 5x5 input; stride 2, padding 1, dilation 2.
    // Padded size 7, dilated kernel span 5: output (7 - 5)/2 + 1 = 2 per side.
    // Output (o) reads input index 2o - 1 + 2k for taps k = 0, 1, 2:
    // o = 0 -> -1 (padding), 1, 3; o = 1 -> 1, 3, 5 (padding).
    // Channel 0 has w[k][l] = 3k + l + 1:
    //   (0,0): 5*x[1][1] + 6*x[1][3] + 8*x[3][1] + 9*x[3][3] = 35 + 54 + 136 + 171 = 396
    //   (0,1): 4*7 + 5*9 + 7*17 + 8*19 = 28 + 45 + 119 + 152 = 344
    //   (1,0): 2*7 + 3*9 + 5*17 + 6*19 = 14 + 27 + 85 + 114 = 240
    //   (1,1): 1*7 + 2*9 + 4*17 + 5*19 = 7 + 18 + 68 + 95 = 188
    // Channel 1 has w = 1 everywhere: each output sees 7 + 9 + 17 + 19 = 52.
    let x = f32t(&[1, 1, 5, 5], &(1..=25).map(|v| v as f32).collect::<Vec<_>>());
    let mut w: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    w.extend([1.0; 9]);
    let w = f32t(&[2, 1, 3, 3], &w);
    let a = attrs! {"stride" => Attr::ints(&[2, 2]), "padding" => Attr::ints(&[1, 1]), "dilation" => Attr::ints(&[2, 2])};
    let want = f32t(&[1, 2, 2, 2], &[396.0, 344.0, 240.0, 188.0, 52.0, 52.0, 52.0, 52.0]);
    ok("conv2d s2 p1 d2", OpKind::Conv2d, a, &[x, w], want);
    // Two input channels and a 1x1 kernel [2, 3]: out = 2*x0 + 3*x1.
    let x = f64t(&[1, 2, 1, 2], &[1.0, 2.0, 10.0, 20.0]);
    let w = f64t(&[1, 2, 1, 1], &[2.0, 3.0]);
    ok("conv2d sums channels", OpKind::Conv2d, Attrs::new(), &[x, w], f64t(&[1, 1, 1, 2], &[32.0, 64.0]));
}

/// The window of the conv2d case above: stride 2, padding 1, dilation 2 on
/// a 5x5 input, a 2x2 output. Along each axis output `o`, tap `k` reads input
/// `2o - 1 + 2k`: (o, k) = (0, 1) and (1, 0) read 1, (0, 2) and (1, 1) read 3,
/// the rest padding. So only rows and columns 1 and 3 are ever read.
fn s2_p1_d2(extra: &str, v: [i64; 2]) -> Attrs {
    let mut a = attrs! {"stride" => Attr::ints(&[2, 2]), "padding" => Attr::ints(&[1, 1]), "dilation" => Attr::ints(&[2, 2])};
    a.insert(extra.into(), Attr::ints(&v));
    a
}

#[test]
fn conv2d_grad_input_spreads_each_output_back_over_its_taps() {
    // g = [[1, 2], [3, 4]], w[i][j] = 3i + j + 1. dx[h][w] sums g[a][b]·w[i][j]
    // over the (a, i) reading row h and the (b, j) reading column w:
    //   dx[1][1]: g00·w11 + g01·w10 + g10·w01 + g11·w00 = 5 + 8 + 6 + 4 = 23
    //   dx[1][3]: g00·w12 + g01·w11 + g10·w02 + g11·w01 = 6 + 10 + 9 + 8 = 33
    //   dx[3][1]: g00·w21 + g01·w20 + g10·w11 + g11·w10 = 8 + 14 + 15 + 16 = 53
    //   dx[3][3]: g00·w22 + g01·w21 + g10·w12 + g11·w11 = 9 + 16 + 18 + 20 = 63
    // and zero wherever no tap reads. (Check: <x, dx> with x[i][j] = 5i + j + 1
    // is 7·23 + 9·33 + 17·53 + 19·63 = 2556 = <conv2d(x, w), g> above,
    // 396·1 + 344·2 + 240·3 + 188·4.)
    let g = f32t(&[1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let w = f32t(&[1, 1, 3, 3], &(1..=9).map(|v| v as f32).collect::<Vec<_>>());
    let mut want = vec![0.0f32; 25];
    for (h, w, v) in [(1, 1, 23.0), (1, 3, 33.0), (3, 1, 53.0), (3, 3, 63.0)] {
        want[5 * h + w] = v;
    }
    ok("conv2d_grad_input s2 p1 d2", OpKind::Conv2dGradInput, s2_p1_d2("input_size", [5, 5]), &[g, w], f32t(&[1, 1, 5, 5], &want));
    // Two output channels into one input channel, 1x1 kernel [2, 3]: dx = 2·g0 + 3·g1.
    let g = f64t(&[1, 2, 1, 2], &[1.0, 2.0, 10.0, 20.0]);
    let w = f64t(&[2, 1, 1, 1], &[2.0, 3.0]);
    let a = attrs! {"input_size" => Attr::ints(&[1, 2])};
    ok("conv2d_grad_input sums output channels", OpKind::Conv2dGradInput, a, &[g, w], f64t(&[1, 1, 1, 2], &[32.0, 64.0]));
}

#[test]
fn conv2d_grad_weight_correlates_input_with_gradient() {
    // x[i][j] = 5i + j + 1 (read at (1,1) = 7, (1,3) = 9, (3,1) = 17, (3,3) = 19),
    // g = [[1, 2], [3, 4]]. dW[i][j] = Σ_ab g[a][b]·x[2a-1+2i][2b-1+2j]:
    //   dW[0][*]: only a = 1 reads a row (1): 4·7 = 28, 3·7 + 4·9 = 57, 3·9 = 27
    //   dW[1][*]: a = 0 reads row 1, a = 1 row 3: 2·7 + 4·17 = 82,
    //             7 + 2·9 + 3·17 + 4·19 = 152, 9 + 3·19 = 66
    //   dW[2][*]: only a = 0 reads a row (3): 2·17 = 34, 17 + 2·19 = 55, 19
    // (Check: <dW, w> with w[i][j] = 3i + j + 1 is 2556 again.)
    let x = f32t(&[1, 1, 5, 5], &(1..=25).map(|v| v as f32).collect::<Vec<_>>());
    let g = f32t(&[1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let want = f32t(&[1, 1, 3, 3], &[28.0, 57.0, 27.0, 82.0, 152.0, 66.0, 34.0, 55.0, 19.0]);
    ok("conv2d_grad_weight s2 p1 d2", OpKind::Conv2dGradWeight, s2_p1_d2("kernel", [3, 3]), &[x, g], want);
    // A 1x1 kernel over a batch of 2: dW[0][c] = Σ_n g[n]·x[n][c] = 3·1 + 5·10, 3·2 + 5·20.
    let x = f64t(&[2, 2, 1, 1], &[1.0, 2.0, 10.0, 20.0]);
    let g = f64t(&[2, 1, 1, 1], &[3.0, 5.0]);
    let a = attrs! {"kernel" => Attr::ints(&[1, 1])};
    ok("conv2d_grad_weight sums the batch", OpKind::Conv2dGradWeight, a, &[x, g], f64t(&[1, 2, 1, 1], &[53.0, 106.0]));
}

#[test]
fn conv2d_gradients_refuse_a_gradient_of_the_wrong_shape() {
    use dlc_backends::eval_op;
    let attrs = |k: &str, v: &[i64]| attrs! {k => Attr::ints(v)};
    let (x, w) = (f32t(&[1, 1, 4, 4], &[1.0; 16]), f32t(&[2, 1, 3, 3], &[1.0; 18]));
    // A 3x3 kernel over 4x4 gives 2x2; a 3x3 gradient is refused, not cropped.
    let g = f32t(&[1, 2, 3, 3], &[1.0; 18]);
    for (kind, a, ins) in [
        (OpKind::Conv2dGradInput, attrs("input_size", &[4, 4]), [&g, &w]),
        (OpKind::Conv2dGradWeight, attrs("kernel", &[3, 3]), [&x, &g]),
    ] {
        let e = eval_op(kind, &a, &ins, None).unwrap_err().to_string();
        assert!(e.contains(kind.name()) && e.contains("[1, 2, 3, 3]"), "{e}");
    }
    // The gradient's channels must be the weight's outputs.
    let g = f32t(&[1, 3, 2, 2], &[1.0; 12]);
    let e = eval_op(OpKind::Conv2dGradInput, &attrs("input_size", &[4, 4]), &[&g, &w], None).unwrap_err().to_string();
    assert!(e.contains("[1, 3, 2, 2]"), "{e}");
    // Mixed dtypes.
    let g = f64t(&[1, 2, 2, 2], &[1.0; 8]);
    assert!(eval_op(OpKind::Conv2dGradWeight, &attrs("kernel", &[3, 3]), &[&x, &g], None).is_err());
}

fn pool_attrs(k: i64, s: i64, p: i64) -> Attrs {
    attrs! {"kernel" => Attr::ints(&[k, k]), "stride" => Attr::ints(&[s, s]), "padding" => Attr::ints(&[p, p])}
}

#[test]
fn pools() {
    use OpKind::{AvgPool2d, MaxPool2d};
    // x[i][j] = 4i + j + 1 on 4x4.
    let x = || f32t(&[1, 1, 4, 4], &(1..=16).map(|v| v as f32).collect::<Vec<_>>());
    let neg = f32t(&[1, 1, 4, 4], &(1..=16).map(|v| -(v as f32)).collect::<Vec<_>>());
    // 2x2 windows: maxima 6, 8, 14, 16; means (1+2+5+6)/4 = 3.5, 5.5, 11.5, 13.5.
    ok("max k2 s2", MaxPool2d, pool_attrs(2, 2, 0), &[x()], f32t(&[1, 1, 2, 2], &[6.0, 8.0, 14.0, 16.0]));
    ok("avg k2 s2", AvgPool2d, pool_attrs(2, 2, 0), &[x()], f32t(&[1, 1, 2, 2], &[3.5, 5.5, 11.5, 13.5]));
    // k3 s2 p1: output o covers input rows 2o-1 .. 2o+1 (row -1 is padding).
    // On -x the padding (-inf) never wins: maxima -1, -2, -5, -6 (zero padding would give 0).
    ok("max pads with -inf", MaxPool2d, pool_attrs(3, 2, 1), &[neg], f32t(&[1, 1, 2, 2], &[-1.0, -2.0, -5.0, -6.0]));
    // Sums over the real cells / 9: (1+2+5+6)/9, (2+3+4+6+7+8)/9, (5+6+9+10+13+14)/9, (6+7+8+10+11+12+14+15+16)/9.
    let want = f32t(&[1, 1, 2, 2], &[14.0 / 9.0, 30.0 / 9.0, 57.0 / 9.0, 99.0 / 9.0]);
    ok("avg counts padding", AvgPool2d, pool_attrs(3, 2, 1), &[x()], want);
    ok("max propagates NaN", MaxPool2d, pool_attrs(2, 2, 0), &[f32t(&[1, 1, 2, 2], &[1.0, NAN, 3.0, 2.0])], f32t(&[1, 1, 1, 1], &[NAN]));
}

#[test]
fn softmax_and_log_softmax() {
    use OpKind::{LogSoftmax, Softmax};
    let (l2, l3) = (2f64.ln(), 3f64.ln());
    // exp of [0, ln 2, ln 3] is [1, 2, 3]: softmax [1/6, 1/3, 1/2], log of those.
    let x = || f64t(&[1, 3], &[0.0, l2, l3]);
    ok("softmax", Softmax, attrs! {"axis" => 1i64}, &[x()], f64t(&[1, 3], &[1.0 / 6.0, 1.0 / 3.0, 0.5]));
    let want = f64t(&[1, 3], &[-(6f64.ln()), -l3, -l2]);
    ok("log_softmax", LogSoftmax, attrs! {"axis" => -1i64}, &[x()], want);
    // Large logits do not overflow: [1000, 1000 + ln 3] -> [1/4, 3/4].
    ok("softmax is stable", Softmax, attrs! {"axis" => 0i64}, &[f64t(&[2], &[1000.0, 1000.0 + l3])], f64t(&[2], &[0.25, 0.75]));
    // Along axis 0 of [[0, 0], [ln 3, 0]]: columns [1/4, 3/4] and [1/2, 1/2].
    let x = f32t(&[2, 2], &[0.0, 0.0, 3f32.ln(), 0.0]);
    ok("softmax axis 0", Softmax, attrs! {"axis" => 0i64}, &[x], f32t(&[2, 2], &[0.25, 0.5, 0.75, 0.5]));
    // -inf gets probability 0; a row of only -inf has no distribution: NaN (as torch).
    let x = f32t(&[2, 2], &[0.0, -INF, -INF, -INF]);
    ok("softmax with -inf", Softmax, attrs! {"axis" => 1i64}, &[x], f32t(&[2, 2], &[1.0, 0.0, NAN, NAN]));
}

#[test]
fn movement() {
    use OpKind::*;
    let six = || f32t(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    ok("reshape", Reshape, attrs! {"shape" => Attr::ints(&[3, 2])}, &[six()], f32t(&[3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
    ok("transpose 2-D", Transpose, attrs! {"perm" => Attr::ints(&[1, 0])}, &[six()], f32t(&[3, 2], &[1.0, 4.0, 2.0, 5.0, 3.0, 6.0]));
    // x[i][0][k] (shape [2,1,3]) -> out[k][i][0] (shape [3,2,1]).
    let x = i64t(&[2, 1, 3], &[1, 2, 3, 4, 5, 6]);
    ok("transpose 3-D", Transpose, attrs! {"perm" => Attr::ints(&[2, 0, 1])}, &[x], i64t(&[3, 2, 1], &[1, 4, 2, 5, 3, 6]));
    let a = attrs! {"shape" => Attr::ints(&[2, 3])};
    ok("broadcast_to adds a dim", BroadcastTo, a.clone(), &[f32t(&[3], &[1.0, 2.0, 3.0])], f32t(&[2, 3], &[1.0, 2.0, 3.0, 1.0, 2.0, 3.0]));
    ok("broadcast_to stretches a 1", BroadcastTo, a, &[bt(&[2, 1], &[1, 0])], bt(&[2, 3], &[1, 1, 1, 0, 0, 0]));
    let (p, q) = (f32t(&[1, 2], &[1.0, 2.0]), f32t(&[2, 2], &[3.0, 4.0, 5.0, 6.0]));
    ok("concat axis 0", Concat, attrs! {"axis" => 0i64}, &[p, q], f32t(&[3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
    let (p, q) = (i32t(&[2, 1], &[1, 2]), i32t(&[2, 2], &[3, 4, 5, 6]));
    ok("concat axis -1", Concat, attrs! {"axis" => -1i64}, &[p, q], i32t(&[2, 3], &[1, 3, 4, 2, 5, 6]));
    // 0..10 from 1 to 8 by 3: 1, 4, 7.
    let r = f64t(&[10], &(0..10).map(|v| v as f64).collect::<Vec<_>>());
    ok("slice with step", Slice, attrs! {"axis" => 0i64, "start" => 1i64, "end" => 8i64, "step" => 3i64}, &[r], f64t(&[3], &[1.0, 4.0, 7.0]));
    ok("slice inner axis", Slice, attrs! {"axis" => 1i64, "start" => 1i64, "end" => 3i64}, &[six()], f32t(&[2, 2], &[2.0, 3.0, 5.0, 6.0]));
}

#[test]
fn gather_and_one_hot() {
    use OpKind::{Gather, OneHot};
    // Rows 2, 0 / 1, 1 of [[1,2],[3,4],[5,6]].
    let table = || f32t(&[3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let idx = i64t(&[2, 2], &[2, 0, 1, 1]);
    ok("gather rows", Gather, Attrs::new(), &[table(), idx], f32t(&[2, 2, 2], &[5.0, 6.0, 1.0, 2.0, 3.0, 4.0, 3.0, 4.0]));
    // Columns 2, 0 of [[1,2,3],[4,5,6]] with i32 indices.
    ok("gather columns", Gather, attrs! {"axis" => 1i64}, &[x23(), i32t(&[2], &[2, 0])], f32t(&[2, 2], &[3.0, 1.0, 6.0, 4.0]));
    for bad in [3i64, -1] {
        let err = run_op(Gather, Attrs::new(), &[table(), i64t(&[2], &[0, bad])]).unwrap_err();
        assert_eq!(err, InterpError::IndexOutOfRange { op: "dl.gather".into(), index: bad, bound: 3 });
    }
    let err = run_op(Gather, Attrs::new(), &[table(), i64t(&[1], &[3])]).unwrap_err();
    assert_eq!(err.to_string(), "'dl.gather': index 3 is out of range [0, 3)");

    let want = f32t(&[2, 3], &[0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
    ok("one_hot f32", OneHot, attrs! {"num_classes" => 3i64}, &[i64t(&[2], &[2, 0])], want);
    let a = attrs! {"num_classes" => 2i64, "dtype" => DType::I64};
    ok("one_hot i64", OneHot, a, &[i32t(&[1, 2], &[1, 1])], i64t(&[1, 2, 2], &[0, 1, 0, 1]));
    for bad in [3i64, -1] {
        let err = run_op(OneHot, attrs! {"num_classes" => 3i64}, &[i64t(&[1], &[bad])]).unwrap_err();
        assert_eq!(err, InterpError::IndexOutOfRange { op: "dl.one_hot".into(), index: bad, bound: 3 });
    }
}
