//! Vectorizable approximations of `exp`, `log`, `tanh` and `sigmoid`:
//! Cranelift has no instructions for them, and a libm call per lane would
//! cost more than the rest of a fused kernel.
//!
//! Each is range reduction + a polynomial (or rational) approximation on the
//! reduced range, in straight-line code with no branches, so that it works
//! lane by lane; the special values (NaN, ±inf, ±0, denormals, negative
//! logarithms) are fixed up with selects so that they come out as libm's.
//! The coefficients are Cephes' (`expf`, `logf`, `tanhf`, `tanh`) and
//! fdlibm's (`log`); f64 `exp` uses the Taylor series, which at degree 13 is
//! below half an ulp on the reduced range |r| <= ln2/2.
//!
//! Errors against f64 libm over dense sweeps (`tests/accuracy.rs`, which
//! asserts the bounds in brackets): f32 exp 1.00 ulp [2], log 0.82 ulp [2],
//! tanh 1.24 ulp and 7.4e-8 absolute [2 ulp, 3e-7], sigmoid 2.26 ulp and
//! 8.9e-8 absolute [3 ulp, 3e-7]; f64 exp and log 1 ulp from libm [2],
//! tanh and sigmoid 2 ulp, 2.2e-16 absolute [3 ulp, 1e-15].

// The coefficients are written as published, digits beyond f64 included.
#![allow(clippy::excessive_precision)]

use crate::lanes::Fx;
use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{InstBuilder, Value};

/// Cephes `expf`: e^r - 1 - r = r²·P(r) on |r| <= ln2/2.
const EXP_F32: [f64; 6] = [1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1];

/// `1/k!` for k = 13 down to 2: the same form in f64.
const EXP_F64: [f64; 12] = [
    1.0 / 6_227_020_800.0,
    1.0 / 479_001_600.0,
    1.0 / 39_916_800.0,
    1.0 / 3_628_800.0,
    1.0 / 362_880.0,
    1.0 / 40_320.0,
    1.0 / 5_040.0,
    1.0 / 720.0,
    1.0 / 120.0,
    1.0 / 24.0,
    1.0 / 6.0,
    0.5,
];

/// Cephes `logf`: log(1+f) = f - f²/2 + f³·P(f) on f in [√½-1, √2-1].
const LOG_F32: [f64; 9] = [
    7.0376836292e-2,
    -1.1514610310e-1,
    1.1676998740e-1,
    -1.2420140846e-1,
    1.4249322787e-1,
    -1.6668057665e-1,
    2.0000714765e-1,
    -2.4999993993e-1,
    3.3333331174e-1,
];

/// fdlibm `log`: the odd and even halves of R(s²) = log(1+f) - 2s + … in s = f/(2+f).
const LOG_F64_ODD: [f64; 4] = [1.479819860511658591e-01, 1.818357216161805012e-01, 2.857142874366239149e-01, 6.666666666666735130e-01];
const LOG_F64_EVEN: [f64; 3] = [1.531383769920937332e-01, 2.222219843214978396e-01, 3.999999999940941908e-01];

/// Cephes `tanhf` below |x| = 0.625: tanh x = x + x·s·P(s), s = x².
const TANH_F32: [f64; 5] = [-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2, 1.33314422036e-1, -3.33332819422e-1];
/// Cephes `tanh`: tanh x = x + x·s·P(s)/Q(s).
const TANH_F64_P: [f64; 3] = [-9.64399179425052238628e-1, -9.92877231001918586564e1, -1.61468768441708447952e3];
const TANH_F64_Q: [f64; 4] = [1.0, 1.12811678491632931402e2, 2.23548839060100448583e3, 4.84406305325125486048e3];

/// e^x. Reduction x = n·ln2 + r with n = round(x/ln2) (by the 1.5·2^p
/// trick, which also gives n's bits), r computed with a two-part ln2; the
/// result scaled by 2^n in two halves so that denormal results are rounded
/// once and overflow gives inf. NaN stays NaN (the clamps keep it).
pub(crate) fn exp(fx: &mut Fx<'_, '_>, x: Value) -> Value {
    let f64_ = fx.is_f64();
    let (lo, hi, magic, c1, c2, bias, shift) = if f64_ {
        (-746.0, 710.0, 6_755_399_441_055_744.0, 6.93145751953125e-1, 1.42860682030941723212e-6, 1023, 52)
    } else {
        (-104.0, 89.0, 12_582_912.0, 0.693359375, -2.12194440e-4, 127, 23)
    };
    // Clamp with selects, which keep NaN (compares with NaN are false) and
    // are shorter on x86 than Cranelift's NaN-propagating fmax/fmin.
    let (lo, hi) = (fx.c(lo), fx.c(hi));
    let below = fx.fmask(FloatCC::LessThan, x, lo);
    let x = fx.select(below, lo, x);
    let above = fx.fmask(FloatCC::GreaterThan, x, hi);
    let x = fx.select(above, hi, x);
    let m = fx.c(magic);
    let log2e = fx.c(std::f64::consts::LOG2_E);
    let t = fx.b.ins().fmul(x, log2e);
    let s = fx.b.ins().fadd(t, m);
    let n = fx.b.ins().fsub(s, m);
    let (sb, mb) = (fx.bits(s), fx.bits(m));
    let ni = fx.b.ins().isub(sb, mb);
    let r = fx.mul_add_c(n, -c1, x);
    let r = fx.mul_add_c(n, -c2, r);
    let p = fx.horner(r, if f64_ { &EXP_F64 } else { &EXP_F32 });
    let z = fx.b.ins().fmul(r, r);
    let y = fx.mul_add(p, z, r);
    let one = fx.c(1.0);
    let y = fx.b.ins().fadd(y, one);
    let n1 = fx.b.ins().sshr_imm_u(ni, 1);
    let n2 = fx.b.ins().isub(ni, n1);
    let bias = fx.ci(bias);
    let mut out = y;
    for k in [n1, n2] {
        let e = fx.b.ins().iadd(k, bias);
        let e = fx.b.ins().ishl_imm_u(e, shift);
        let scale = fx.float(e);
        out = fx.b.ins().fmul(out, scale);
    }
    out
}

/// ln x. Splits x = m·2^e (denormals first scaled up into the normal range),
/// then approximates log m on [√½, √2]; fixups give -inf at ±0, +inf at
/// +inf and NaN below zero or at NaN.
pub(crate) fn log(fx: &mut Fx<'_, '_>, x: Value) -> Value {
    let f64_ = fx.is_f64();
    let (min_normal, up, mant_mask, exp_mask, shift) = if f64_ {
        (f64::MIN_POSITIVE, 54.0, 0x000F_FFFF_FFFF_FFFF, 0x7FF, 52)
    } else {
        (f32::MIN_POSITIVE as f64, 23.0, 0x007F_FFFF, 0xFF, 23)
    };
    let mn = fx.c(min_normal);
    let tiny = fx.fmask(FloatCC::LessThan, x, mn);
    let k = fx.c(2f64.powf(up));
    let scaled = fx.b.ins().fmul(x, k);
    let xs = fx.select(tiny, scaled, x);
    // f32 takes m in [0.5, 1) as Cephes does; f64 m in [1, 2) as fdlibm does.
    let (one_bits, base) = if f64_ { (0x3FF0_0000_0000_0000, 1023.0) } else { (0x3F00_0000, 126.0) };
    let (b0, b1) = (fx.c(base), fx.c(base + up));
    let bias = fx.select(tiny, b1, b0);
    let bits = fx.bits(xs);
    let field = fx.b.ins().ushr_imm_u(bits, shift);
    let em = fx.ci(exp_mask);
    let field = fx.b.ins().band(field, em);
    let ef = fx.small_int_to_float(field);
    let e = fx.b.ins().fsub(ef, bias);
    let mm = fx.ci(mant_mask);
    let mant = fx.b.ins().band(bits, mm);
    let ob = fx.ci(one_bits);
    let mant = fx.b.ins().bor(mant, ob);
    let m = fx.float(mant);
    let r = if f64_ { log_f64_core(fx, m, e) } else { log_f32_core(fx, m, e) };
    let zero = fx.c(0.0);
    let is_zero = fx.fmask(FloatCC::Equal, x, zero);
    let ninf = fx.c(f64::NEG_INFINITY);
    let r = fx.select(is_zero, ninf, r);
    let inf = fx.c(f64::INFINITY);
    let is_inf = fx.fmask(FloatCC::Equal, x, inf);
    let r = fx.select(is_inf, inf, r);
    let bad = fx.fmask(FloatCC::UnorderedOrLessThan, x, zero);
    let nan = fx.c(f64::NAN);
    fx.select(bad, nan, r)
}

/// Cephes `logf` on m in [0.5, 1), x = m·2^e.
fn log_f32_core(fx: &mut Fx<'_, '_>, m: Value, e: Value) -> Value {
    let sqrth = fx.c(std::f64::consts::FRAC_1_SQRT_2);
    let small = fx.fmask(FloatCC::LessThan, m, sqrth);
    let one = fx.c(1.0);
    let zero = fx.c(0.0);
    let dec = fx.select(small, one, zero);
    let e = fx.b.ins().fsub(e, dec);
    let m2 = fx.b.ins().fadd(m, m);
    let m = fx.select(small, m2, m);
    let f = fx.b.ins().fsub(m, one);
    let z = fx.b.ins().fmul(f, f);
    let p = fx.horner(f, &LOG_F32);
    let pf = fx.b.ins().fmul(p, f);
    let y = fx.b.ins().fmul(pf, z);
    let y = fx.mul_add_c(e, -2.12194440e-4, y);
    let y = fx.mul_add_c(z, -0.5, y);
    let r = fx.b.ins().fadd(f, y);
    fx.mul_add_c(e, 0.693359375, r)
}

/// fdlibm `log` on m in [1, 2), x = m·2^e.
fn log_f64_core(fx: &mut Fx<'_, '_>, m: Value, e: Value) -> Value {
    let sqrt2 = fx.c(std::f64::consts::SQRT_2);
    let big = fx.fmask(FloatCC::GreaterThan, m, sqrt2);
    let (one, zero, half) = (fx.c(1.0), fx.c(0.0), fx.c(0.5));
    let inc = fx.select(big, one, zero);
    let e = fx.b.ins().fadd(e, inc);
    let mh = fx.b.ins().fmul(m, half);
    let m = fx.select(big, mh, m);
    let f = fx.b.ins().fsub(m, one);
    let two = fx.c(2.0);
    let d = fx.b.ins().fadd(f, two);
    let s = fx.b.ins().fdiv(f, d);
    let z = fx.b.ins().fmul(s, s);
    let w = fx.b.ins().fmul(z, z);
    let t1 = fx.horner(w, &LOG_F64_EVEN);
    let t1 = fx.b.ins().fmul(t1, w);
    let t2 = fx.horner(w, &LOG_F64_ODD);
    let t2 = fx.b.ins().fmul(t2, z);
    let r = fx.b.ins().fadd(t2, t1);
    let ff = fx.b.ins().fmul(f, f);
    let hfsq = fx.b.ins().fmul(ff, half);
    // e·ln2_hi - ((hfsq - (s·(hfsq + R) + e·ln2_lo)) - f)
    let hr = fx.b.ins().fadd(hfsq, r);
    let lo = fx.c(1.90821492927058770002e-10);
    let elo = fx.b.ins().fmul(e, lo);
    let inner = fx.mul_add(s, hr, elo);
    let a = fx.b.ins().fsub(hfsq, inner);
    let a = fx.b.ins().fsub(a, f);
    let hi = fx.c(6.93147180369123816490e-01);
    let ehi = fx.b.ins().fmul(e, hi);
    fx.b.ins().fsub(ehi, a)
}

/// tanh x: the odd polynomial (rational for f64) below |x| = 0.625, where
/// `1 - 2/(e^2|x| + 1)` would cancel; that form above it; x's sign on both. It
/// saturates to ±1 when e^2|x| overflows; NaN takes the second form and stays NaN.
pub(crate) fn tanh(fx: &mut Fx<'_, '_>, x: Value) -> Value {
    let s = fx.b.ins().fmul(x, x);
    let q = if fx.is_f64() {
        let p = fx.horner(s, &TANH_F64_P);
        let q = fx.horner(s, &TANH_F64_Q);
        fx.b.ins().fdiv(p, q)
    } else {
        fx.horner(s, &TANH_F32)
    };
    let xs = fx.b.ins().fmul(x, s);
    let small = fx.mul_add(xs, q, x);
    let ax = fx.b.ins().fabs(x);
    let ax2 = fx.b.ins().fadd(ax, ax);
    let e = exp(fx, ax2);
    let one = fx.c(1.0);
    let two = fx.c(2.0);
    let d = fx.b.ins().fadd(e, one);
    let q = fx.b.ins().fdiv(two, d);
    let big = fx.b.ins().fsub(one, q);
    let k = fx.c(0.625);
    let near0 = fx.fmask(FloatCC::LessThan, ax, k);
    let r = fx.select(near0, small, big);
    // tanh is odd: |r| with x's sign, which also keeps tanh(-0) = -0 (the
    // polynomial form gives -0 + (+0) = +0), as libm does.
    let r = fx.b.ins().fabs(r);
    fx.with_sign_of(r, x)
}

/// The logistic function in the interpreter's stable form: with
/// e = e^-|x| (which never overflows), 1/(1+e) for x >= 0 and e/(1+e)
/// below, as one division. NaN takes the second form and stays NaN.
pub(crate) fn sigmoid(fx: &mut Fx<'_, '_>, x: Value) -> Value {
    let ax = fx.b.ins().fabs(x);
    let nax = fx.b.ins().fneg(ax);
    let e = exp(fx, nax);
    let one = fx.c(1.0);
    let d = fx.b.ins().fadd(one, e);
    let zero = fx.c(0.0);
    let pos = fx.fmask(FloatCC::GreaterThanOrEqual, x, zero);
    let num = fx.select(pos, one, e);
    fx.b.ins().fdiv(num, d)
}
