//! Hand-worked cases for the elementwise ops: every expected value below was
//! worked out on paper (the comment says how), not produced by the code.

mod common;

use common::{assert_close, bt, f32t, f64t, i32t, i64t, run_op};
use dlc_backends::{InterpError, Tensor};
use dlc_ir::{Attrs, DType, OpKind, attrs};

const NAN: f32 = f32::NAN;
const INF: f32 = f32::INFINITY;

struct Case {
    what: &'static str,
    op: OpKind,
    attrs: Attrs,
    inputs: Vec<Tensor>,
    want: Tensor,
}

fn case(what: &'static str, op: OpKind, attrs: Attrs, inputs: Vec<Tensor>, want: Tensor) -> Case {
    Case { what, op, attrs, inputs, want }
}

fn check(cases: Vec<Case>) {
    for c in cases {
        let got = run_op(c.op, c.attrs, &c.inputs).unwrap_or_else(|e| panic!("{}: {e}", c.what));
        assert_close(c.what, &got, &c.want);
    }
}

#[test]
fn unary_ops() {
    use OpKind::*;
    let n = Attrs::new;
    check(vec![
        case("neg f32", Neg, n(), vec![f32t(&[3], &[1.0, -2.5, 0.0])], f32t(&[3], &[-1.0, 2.5, 0.0])),
        // i32::MIN has no positive counterpart: it wraps to itself, as in PyTorch.
        case("neg i32 wraps", Neg, n(), vec![i32t(&[3], &[i32::MAX, -4, i32::MIN])], i32t(&[3], &[-i32::MAX, 4, i32::MIN])),
        case("abs f64 keeps NaN", Abs, n(), vec![f64t(&[3], &[-1.5, 2.0, f64::NAN])], f64t(&[3], &[1.5, 2.0, f64::NAN])),
        case("abs i64", Abs, n(), vec![i64t(&[3], &[-7, 0, 3])], i64t(&[3], &[7, 0, 3])),
        // e^0 = 1, e^1 = e, e^-inf = 0, NaN stays NaN.
        case("exp", Exp, n(), vec![f32t(&[4], &[0.0, 1.0, -INF, NAN])], f32t(&[4], &[1.0, std::f32::consts::E, 0.0, NAN])),
        // ln 1 = 0, ln e = 1, ln 0 = -inf, ln(-1) = NaN.
        case("log", Log, n(), vec![f32t(&[4], &[1.0, std::f32::consts::E, 0.0, -1.0])], f32t(&[4], &[0.0, 1.0, -INF, NAN])),
        case("sqrt", Sqrt, n(), vec![f64t(&[3], &[4.0, 2.25, -1.0])], f64t(&[3], &[2.0, 1.5, f64::NAN])),
        // 1/sqrt(4) = 0.5, 1/sqrt(0.25) = 2, 1/sqrt(0) = inf.
        case("rsqrt", Rsqrt, n(), vec![f32t(&[3], &[4.0, 0.25, 0.0])], f32t(&[3], &[0.5, 2.0, INF])),
        // tanh(ln 3) = (3 - 1/3) / (3 + 1/3) = 0.8; tanh(100) = 1.
        case("tanh", Tanh, n(), vec![f64t(&[3], &[0.0, 3f64.ln(), 100.0])], f64t(&[3], &[0.0, 0.8, 1.0])),
        // σ(ln 3) = 1/(1 + 1/3) = 0.75, σ(-ln 3) = 0.25; ±1000 saturate without overflow.
        case(
            "sigmoid",
            Sigmoid,
            n(),
            vec![f32t(&[6], &[0.0, 3f32.ln(), -(3f32.ln()), -1000.0, 1000.0, NAN])],
            f32t(&[6], &[0.5, 0.75, 0.25, 0.0, 1.0, NAN]),
        ),
        case("sigmoid f64 far tail", Sigmoid, n(), vec![f64t(&[1], &[-800.0])], f64t(&[1], &[0.0])),
        case("relu keeps NaN", Relu, n(), vec![f32t(&[4], &[-2.0, 0.0, 3.0, NAN])], f32t(&[4], &[0.0, 0.0, 3.0, NAN])),
        case(
            "leaky_relu alpha 0.5",
            LeakyRelu,
            attrs! {"alpha" => 0.5},
            vec![f32t(&[3], &[-2.0, 4.0, NAN])],
            f32t(&[3], &[-1.0, 4.0, NAN]),
        ),
        // The registry default is PyTorch's negative_slope = 0.01.
        case("leaky_relu default", LeakyRelu, n(), vec![f64t(&[2], &[-100.0, 5.0])], f64t(&[2], &[-1.0, 5.0])),
    ]);
}

#[test]
fn casts() {
    use OpKind::Cast;
    check(vec![
        // Truncation toward zero: -2.7 -> -2, 2.7 -> 2, -0.5 -> 0.
        case("f32 -> i32", Cast, attrs! {"dtype" => DType::I32}, vec![f32t(&[3], &[-2.7, 2.7, -0.5])], i32t(&[3], &[-2, 2, 0])),
        // Nonzero is true, NaN included; -0.0 is zero.
        case("f64 -> i1", Cast, attrs! {"dtype" => DType::I1}, vec![f64t(&[4], &[0.0, -0.0, 0.1, f64::NAN])], bt(&[4], &[0, 0, 1, 1])),
        case("i1 -> f64", Cast, attrs! {"dtype" => DType::F64}, vec![bt(&[2], &[1, 0])], f64t(&[2], &[1.0, 0.0])),
        // 2^32 + 5 keeps its low 32 bits: 5.
        case("i64 -> i32 wraps", Cast, attrs! {"dtype" => DType::I32}, vec![i64t(&[2], &[(1 << 32) + 5, -3])], i32t(&[2], &[5, -3])),
        case("i32 -> f32", Cast, attrs! {"dtype" => DType::F32}, vec![i32t(&[2], &[-7, 16_777_216])], f32t(&[2], &[-7.0, 16_777_216.0])),
        case("f32 -> f64 is exact", Cast, attrs! {"dtype" => DType::F64}, vec![f32t(&[1], &[0.1])], f64t(&[1], &[0.1f32 as f64])),
    ]);
}

#[test]
fn broadcasting_binary_ops() {
    use OpKind::*;
    let n = Attrs::new;
    check(vec![
        // A missing leading dim: [2,3] + [3] adds the row to each row.
        case(
            "add [2,3] + [3]",
            Add,
            n(),
            vec![f32t(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), f32t(&[3], &[10.0, 20.0, 30.0])],
            f32t(&[2, 3], &[11.0, 22.0, 33.0, 14.0, 25.0, 36.0]),
        ),
        // Size-1 dims on both sides: [3,1] + [1,2] -> [3,2], out[i][j] = a[i] + b[j].
        case(
            "add [3,1] + [1,2]",
            Add,
            n(),
            vec![f64t(&[3, 1], &[1.0, 2.0, 3.0]), f64t(&[1, 2], &[10.0, 20.0])],
            f64t(&[3, 2], &[11.0, 21.0, 12.0, 22.0, 13.0, 23.0]),
        ),
        case("sub tensor - scalar", Sub, n(), vec![f32t(&[2], &[5.0, 7.0]), f32t(&[], &[2.0])], f32t(&[2], &[3.0, 5.0])),
        case("sub scalar - tensor", Sub, n(), vec![f32t(&[], &[2.0]), f32t(&[2], &[5.0, 7.0])], f32t(&[2], &[-3.0, -5.0])),
        // 65536 * 65536 = 2^32, which wraps to 0 in i32.
        case("mul i32 wraps", Mul, n(), vec![i32t(&[2], &[65536, -3]), i32t(&[2], &[65536, 4])], i32t(&[2], &[0, -12])),
        // 1/0 = inf, -1/0 = -inf, 0/0 = NaN, 1/-0 = -inf.
        case(
            "div f32 by zero",
            Div,
            n(),
            vec![f32t(&[4], &[1.0, -1.0, 0.0, 1.0]), f32t(&[4], &[0.0, 0.0, 0.0, -0.0])],
            f32t(&[4], &[INF, -INF, NAN, -INF]),
        ),
        // Truncation toward zero: 7/2 = 3, -7/2 = -3, 7/-2 = -3, -7/-2 = 3.
        case(
            "div i32 truncates",
            Div,
            n(),
            vec![i32t(&[4], &[7, -7, 7, -7]), i32t(&[4], &[2, 2, -2, -2])],
            i32t(&[4], &[3, -3, -3, 3]),
        ),
        case("div i64 broadcast", Div, n(), vec![i64t(&[2, 1], &[9, -9]), i64t(&[2], &[4, -5])], i64t(&[2, 2], &[2, -1, -2, 1])),
        // 2^3 = 8, 4^0.5 = 2, (-8)^(1/3) = NaN (powf), 0^0 = 1.
        case(
            "pow",
            Pow,
            n(),
            vec![f32t(&[4], &[2.0, 4.0, -8.0, 0.0]), f32t(&[4], &[3.0, 0.5, 1.0 / 3.0, 0.0])],
            f32t(&[4], &[8.0, 2.0, NAN, 1.0]),
        ),
        case("pow broadcast exponent", Pow, n(), vec![f64t(&[2, 2], &[1.0, 2.0, 3.0, 4.0]), f64t(&[], &[2.0])], f64t(&[2, 2], &[1.0, 4.0, 9.0, 16.0])),
        case(
            "maximum propagates NaN",
            Maximum,
            n(),
            vec![f32t(&[3], &[1.0, NAN, 3.0]), f32t(&[3], &[2.0, 0.0, NAN])],
            f32t(&[3], &[2.0, NAN, NAN]),
        ),
        case(
            "minimum propagates NaN",
            Minimum,
            n(),
            vec![f32t(&[3], &[1.0, NAN, 3.0]), f32t(&[3], &[2.0, 0.0, NAN])],
            f32t(&[3], &[1.0, NAN, NAN]),
        ),
        // out[i][j] = max(a[i], b[j]): max(1,3)=3, max(1,4)=4, max(5,3)=5, max(5,4)=5.
        case("maximum i64 broadcast", Maximum, n(), vec![i64t(&[2, 1], &[1, 5]), i64t(&[2], &[3, 4])], i64t(&[2, 2], &[3, 4, 5, 5])),
        case("minimum i32", Minimum, n(), vec![i32t(&[2], &[-1, 8]), i32t(&[2], &[0, 2])], i32t(&[2], &[-1, 2])),
    ]);
}

#[test]
fn comparisons_and_select() {
    use OpKind::*;
    let a = || f32t(&[3], &[1.0, 2.0, NAN]);
    let b = || f32t(&[3], &[2.0, 2.0, NAN]);
    // 1 vs 2, 2 vs 2, NaN vs NaN (every comparison with NaN is false, except ne).
    let want = [("eq", [0, 1, 0]), ("ne", [1, 0, 1]), ("lt", [1, 0, 0]), ("le", [1, 1, 0]), ("gt", [0, 0, 0]), ("ge", [0, 1, 0])];
    let mut cases: Vec<Case> = want
        .iter()
        .map(|(p, w)| case("cmp f32", Cmp, attrs! {"predicate" => *p}, vec![a(), b()], bt(&[3], w)))
        .collect();
    cases.extend([
        // false < true.
        case("cmp i1 lt", Cmp, attrs! {"predicate" => "lt"}, vec![bt(&[2], &[0, 1]), bt(&[2], &[1, 1])], bt(&[2], &[1, 0])),
        case(
            "cmp i64 ge broadcast",
            Cmp,
            attrs! {"predicate" => "ge"},
            vec![i64t(&[2, 1], &[1, 3]), i64t(&[2], &[2, 3])],
            bt(&[2, 2], &[0, 0, 1, 1]),
        ),
        // Row 0 takes a, row 1 takes the scalar 9.
        case(
            "select broadcasts all three",
            Select,
            Attrs::new(),
            vec![bt(&[2, 1], &[1, 0]), f32t(&[2, 2], &[1.0, 2.0, 3.0, 4.0]), f32t(&[], &[9.0])],
            f32t(&[2, 2], &[1.0, 2.0, 9.0, 9.0]),
        ),
        case(
            "select i64",
            Select,
            Attrs::new(),
            vec![bt(&[3], &[0, 1, 0]), i64t(&[3], &[1, 2, 3]), i64t(&[3], &[-1, -2, -3])],
            i64t(&[3], &[-1, 2, -3]),
        ),
    ]);
    check(cases);
}

#[test]
fn integer_division_by_zero_is_an_error() {
    let err = run_op(OpKind::Div, Attrs::new(), &[i32t(&[2], &[1, 2]), i32t(&[2], &[1, 0])]).unwrap_err();
    assert_eq!(err, InterpError::DivisionByZero { op: "dl.div".into() });
    assert_eq!(err.to_string(), "'dl.div': integer division by zero");
    // Float division by zero is not an error.
    assert!(run_op(OpKind::Div, Attrs::new(), &[f64t(&[1], &[1.0]), f64t(&[1], &[0.0])]).is_ok());
}
