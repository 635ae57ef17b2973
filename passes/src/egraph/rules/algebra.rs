//! Arithmetic identities, exact in IEEE arithmetic (the policy of
//! `canonicalize`): no `x * 0 → 0` for floats (`NaN * 0` is NaN, `-3 * 0` is
//! `-0`), `x + 0 → x` only for integers or `-0.0`, `x - 0 → x` only for
//! integers or `+0.0`; `exp(log x) → x` is not a rule (it rounds, and is NaN
//! for negative x). Integer arithmetic wraps in dlc, so the integer cases are
//! exact too. Constants fold in the analysis, not here.

use super::{Match, Rhs, Rule, is_float, splat_is};
use dlc_backends::Tensor;
use dlc_ir::{DType, DenseAttr, DenseData, OpKind};
use egg::Id;

/// The algebra rules.
#[rustfmt::skip]
pub const RULES: &[Rule] = &[
    // x * 1 → x   (and 1 * x: mul is commutative)
    Rule { name: "mul_one",      lhs: "(mul ?x ?c)",            rhs: Rhs::TermIf("?x", |m| splat_is(m, "?c", 1.0)) },
    // x / 1 → x
    Rule { name: "div_one",      lhs: "(div ?x ?c)",            rhs: Rhs::TermIf("?x", |m| splat_is(m, "?c", 1.0)) },
    // x + 0 → x   (integers; floats only for -0.0: -0.0 + +0.0 is +0.0)
    Rule { name: "add_zero",     lhs: "(add ?x ?c)",            rhs: Rhs::TermIf("?x", |m| zero_of_sign(m, true)) },
    // x - 0 → x   (integers; floats only for +0.0: -0.0 - -0.0 is +0.0)
    Rule { name: "sub_zero",     lhs: "(sub ?x ?c)",            rhs: Rhs::TermIf("?x", |m| zero_of_sign(m, false)) },
    // x * -1 → neg(x)   (a sign flip either way; exposes neg(neg x))
    Rule { name: "mul_neg_one",  lhs: "(mul ?x ?c)",            rhs: Rhs::TermIf("(neg ?x)", |m| splat_is(m, "?c", -1.0)) },
    // x / 2^k → x * 2^-k   (floats, |k| <= 126: the reciprocal is exact and both round the same real)
    Rule { name: "div_pow2",     lhs: "(div ?x ?c)",            rhs: Rhs::Build(div_pow2) },
    // neg(neg(x)) → x
    Rule { name: "neg_neg",      lhs: "(neg (neg ?x))",         rhs: Rhs::Term("?x") },
    // a - neg(b) → a + b   (IEEE defines a - b as a + (-b))
    Rule { name: "sub_neg",      lhs: "(sub ?a (neg ?b))",      rhs: Rhs::Term("(add ?a ?b)") },
    // a + neg(b) → a - b   (and neg(b) + a)
    Rule { name: "add_neg",      lhs: "(add ?a (neg ?b))",      rhs: Rhs::Term("(sub ?a ?b)") },
    // abs(neg(x)) → abs(x)
    Rule { name: "abs_neg",      lhs: "(abs (neg ?x))",         rhs: Rhs::Term("(abs ?x)") },
    // abs(abs(x)) → abs(x)
    Rule { name: "abs_abs",      lhs: "(abs (abs ?x))",         rhs: Rhs::Term("(abs ?x)") },
    // relu(relu(x)) → relu(x)
    Rule { name: "relu_relu",    lhs: "(relu (relu ?x))",       rhs: Rhs::Term("(relu ?x)") },
    // maximum(x, x) → x   (NaN too: max(NaN, NaN) is NaN)
    Rule { name: "max_same",     lhs: "(maximum ?x ?x)",        rhs: Rhs::Term("?x") },
    // minimum(x, x) → x
    Rule { name: "min_same",     lhs: "(minimum ?x ?x)",        rhs: Rhs::Term("?x") },
    // select(true, a, b) → a
    Rule { name: "select_true",  lhs: "(select ?c ?a ?b)",      rhs: Rhs::TermIf("?a", |m| splat_is(m, "?c", 1.0)) },
    // select(false, a, b) → b
    Rule { name: "select_false", lhs: "(select ?c ?a ?b)",      rhs: Rhs::TermIf("?b", |m| splat_is(m, "?c", 0.0)) },
    // select(c, a, a) → a
    Rule { name: "select_same",  lhs: "(select ?c ?a ?a)",      rhs: Rhs::Term("?a") },
    // select(z > c, max_pool2d_grad(relu(z), g), e) → select(z > c, max_pool2d_grad(z, g), e), c a constant ≥ 0   (exact: see relu_pool_grad)
    Rule { name: "relu_pool_grad", lhs: "(select (cmp{predicate=\"gt\"} ?z ?c) (max_pool2d_grad{*} (relu ?z) ?g) ?e)", rhs: Rhs::Build(relu_pool_grad) },
];

/// `?c` is an integer zero, or a float zero of the given sign.
fn zero_of_sign(m: &Match<'_>, negative: bool) -> bool {
    let Some(t) = &m.data("?c").splat else { return false };
    match t {
        Tensor::F32(_) | Tensor::F64(_) => {
            let v = t.to_f64_vec()[0];
            v == 0.0 && v.is_sign_negative() == negative
        }
        Tensor::I32(_) | Tensor::I64(_) => t.to_f64_vec()[0] == 0.0,
        Tensor::I1(_) => false,
    }
}

fn div_pow2(m: &mut Match<'_>) -> Option<Id> {
    let c = m.splat("?c")?;
    let ty = m.data("?c").tensor()?.clone();
    if !is_float(m, "?c") || !ty.is_static() || c == 0.0 || !c.is_finite() {
        return None;
    }
    let (mantissa, exp) = frexp(c.abs());
    // c = 2^k; both c and 1/c must be normal numbers of the dtype.
    let k = exp - 1;
    let limit = if ty.dtype == DType::F32 { 126 } else { 1022 };
    if mantissa != 0.5 || k.abs() > limit {
        return None;
    }
    let value = DenseAttr { ty, data: DenseData::Float(vec![1.0 / c]) };
    let recip = m.add(OpKind::Constant, &dlc_ir::Attrs::from([("value".to_string(), dlc_ir::Attr::Dense(value))]), &[])?;
    let x = m.var("?x");
    m.add(OpKind::Mul, &dlc_ir::Attrs::new(), &[x, recip])
}

/// `v = mantissa · 2^exp` with the mantissa in [0.5, 1), for a finite positive `v`.
fn frexp(v: f64) -> (f64, i32) {
    let bits = v.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    if biased == 0 {
        // Subnormal: scale into the normal range first.
        let (m, e) = frexp(v * 2f64.powi(64));
        return (m, e - 64);
    }
    let mantissa = f64::from_bits((bits & !(0x7ff << 52)) | (1022 << 52));
    (mantissa, biased - 1022)
}

/// ReLU's gradient mask over max-pooling's gradient, as autodiff writes
/// `pool(relu(z))`: the pooling gradient may route by `z` itself, so the
/// backward pass need not compute `relu(z)` again. Exact where the mask
/// holds, which is all that is read: there `z > c ≥ 0`, so every window
/// holding that element has a positive maximum; relu keeps the order of
/// positive values and sends the others to 0, below it, and keeps NaN, so
/// the window's argmax (first maximum, or last NaN) is the same element.
fn relu_pool_grad(m: &mut Match<'_>) -> Option<Id> {
    if m.splat("?c").is_none_or(|c| c.is_nan() || c < 0.0) {
        return None;
    }
    let (pool, cond) = (m.attrs(2).clone(), m.attrs(1).clone());
    let (z, c, g, e) = (m.var("?z"), m.var("?c"), m.var("?g"), m.var("?e"));
    let dz = m.add(OpKind::MaxPool2dGrad, &pool, &[z, g])?;
    let mask = m.add(OpKind::Cmp, &cond, &[z, c])?;
    m.add(OpKind::Select, &dlc_ir::Attrs::new(), &[mask, dz, e])
}
