//! Accuracy of the vectorized exp, log, tanh and sigmoid against f64 libm.
//!
//! f32: every 509th bit pattern of the whole f32 range (8.4M values, all
//! signs, denormals, infinities and NaNs among them), a dense uniform sweep
//! of each function's interesting range, and a list of special values.
//! Bounds asserted: exp and log within 2 ulp of the exact value; tanh and
//! sigmoid within 3e-7 absolute (the max ulp is printed too). NaN must give
//! NaN and infinities must match exactly.
//!
//! Also: tanh within 2 ulp and sigmoid within 3 ulp.
//!
//! f64: 1M random bit patterns plus dense sweeps, against f64 libm (itself
//! within about half an ulp): exp and log within 2 ulp of libm's result,
//! tanh and sigmoid within 1e-15 absolute and 3 ulp.
//!
//! Every sweep also runs through the scalar tail, which must give the
//! vector loop's bits.

mod common;
use common::*;
use dlc_ir::{Attrs, DType, OpKind};
use dlc_jit::{Access, Buffer, BufferMut, KernelBuilder};

fn exact_sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// The f32 inputs of every sweep: strided bit patterns, the dense range, specials.
fn f32_inputs(lo: f32, hi: f32) -> Vec<f32> {
    let mut xs: Vec<f32> = (0..=u32::MAX / 509).map(|i| f32::from_bits(i * 509)).collect();
    let n = 1 << 20;
    xs.extend((0..=n).map(|i| lo + (hi - lo) * (i as f32 / n as f32)));
    xs.extend([
        0.0,
        -0.0,
        1.0,
        -1.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::MIN_POSITIVE,
        f32::MIN_POSITIVE / 3.0,
        1e-45,
        -1e-45,
        f32::MAX,
        f32::MIN,
        f32::EPSILON,
        88.72283,
        88.72284,
        89.0,
        -87.33654,
        -103.0,
        -103.97208,
        -104.0,
        0.625,
        -0.625,
        0.62499994,
        9.0,
        20.0,
        -20.0,
        1e-30,
        -1e-30,
    ]);
    xs
}

/// The scalar tail runs the same instructions as the vector loop, lane by
/// lane, so it must give the same bits: a rank-2 kernel over `[n/3, 3]`
/// never enters the vector loop (3 < 4 lanes).
fn same_in_scalar_tail<T: Copy + Default + PartialEq + std::fmt::Debug + Into<f64>>(kind: OpKind, dtype: DType, xs: &[T], ys: &[T])
where
    for<'a> &'a [T]: Into<Buffer<'a>>,
    for<'a> &'a mut [T]: Into<BufferMut<'a>>,
{
    let mut k = KernelBuilder::new(2).unwrap();
    let x = k.input(dtype, &[Access::Full, Access::Full]).unwrap();
    let y = k.op(kind, &[x], Attrs::new()).unwrap();
    let k = jit().compile(&k.finish(y).unwrap()).unwrap();
    let n = xs.len() / 3 * 3;
    let mut out = vec![T::default(); n];
    k.run_buffers(&[xs[..n].into()], (&mut out[..]).into(), &[n / 3, 3]).unwrap();
    for i in 0..n {
        let (a, b): (f64, f64) = (out[i].into(), ys[i].into());
        assert!(a == b || (a.is_nan() && b.is_nan()), "{kind:?}: scalar tail gives {:?}, vector loop {:?} at {:?}", out[i], ys[i], xs[i]);
    }
}

struct Stats {
    max_ulp: f64,
    at_ulp: f32,
    max_abs: f64,
    at_abs: f32,
}

fn measure(kind: OpKind, lo: f32, hi: f32, exact: fn(f64) -> f64) -> Stats {
    let k = unary(kind, Attrs::new(), DType::F32);
    assert_eq!(k.vector_lanes(), 4);
    let xs = f32_inputs(lo, hi);
    let ys = map_f32(&k, &xs);
    same_in_scalar_tail(kind, DType::F32, &xs, &ys);
    let mut s = Stats { max_ulp: 0.0, at_ulp: 0.0, max_abs: 0.0, at_abs: 0.0 };
    for (&x, &y) in xs.iter().zip(&ys) {
        let want = exact(x as f64);
        if want.is_nan() || want.is_infinite() || (want as f32).is_infinite() {
            assert!(
                y.is_nan() == want.is_nan() && (want.is_nan() || y == want as f32),
                "{kind:?}({x:e}) = {y:e}, want {want:e}"
            );
            continue;
        }
        let u = ulp_f32(y, want);
        if u > s.max_ulp {
            (s.max_ulp, s.at_ulp) = (u, x);
        }
        let a = (y as f64 - want).abs();
        if a > s.max_abs || a.is_nan() {
            (s.max_abs, s.at_abs) = (a, x);
        }
    }
    println!(
        "{kind:?} f32 over {} inputs: max {:.3} ulp (at {:e}), max abs {:.3e} (at {:e})",
        xs.len(),
        s.max_ulp,
        s.at_ulp,
        s.max_abs,
        s.at_abs
    );
    s
}

#[test]
fn exp_f32_is_within_2_ulp() {
    let s = measure(OpKind::Exp, -104.0, 89.0, f64::exp);
    assert!(s.max_ulp <= 2.0, "exp: {:.3} ulp at {:e}", s.max_ulp, s.at_ulp);
}

#[test]
fn log_f32_is_within_2_ulp() {
    let s = measure(OpKind::Log, 0.0, 4.0, f64::ln);
    assert!(s.max_ulp <= 2.0, "log: {:.3} ulp at {:e}", s.max_ulp, s.at_ulp);
}

#[test]
fn tanh_f32_is_within_3e_7() {
    let s = measure(OpKind::Tanh, -10.0, 10.0, f64::tanh);
    assert!(s.max_abs <= 3e-7, "tanh: {:.3e} at {:e}", s.max_abs, s.at_abs);
    assert!(s.max_ulp <= 2.0, "tanh: {:.3} ulp at {:e}", s.max_ulp, s.at_ulp);
}

#[test]
fn sigmoid_f32_is_within_3e_7() {
    let s = measure(OpKind::Sigmoid, -30.0, 30.0, exact_sigmoid);
    assert!(s.max_abs <= 3e-7, "sigmoid: {:.3e} at {:e}", s.max_abs, s.at_abs);
    assert!(s.max_ulp <= 3.0, "sigmoid: {:.3} ulp at {:e}", s.max_ulp, s.at_ulp);
}

#[test]
fn special_values_f32() {
    let cases: &[(OpKind, f32, f32)] = &[
        (OpKind::Exp, f32::NEG_INFINITY, 0.0),
        (OpKind::Exp, f32::INFINITY, f32::INFINITY),
        (OpKind::Exp, 0.0, 1.0),
        (OpKind::Exp, 100.0, f32::INFINITY),
        (OpKind::Exp, -200.0, 0.0),
        (OpKind::Log, 0.0, f32::NEG_INFINITY),
        (OpKind::Log, -0.0, f32::NEG_INFINITY),
        (OpKind::Log, 1.0, 0.0),
        (OpKind::Log, f32::INFINITY, f32::INFINITY),
        (OpKind::Tanh, f32::INFINITY, 1.0),
        (OpKind::Tanh, f32::NEG_INFINITY, -1.0),
        (OpKind::Tanh, 0.0, 0.0),
        (OpKind::Tanh, 1e-30, 1e-30),
        (OpKind::Tanh, -50.0, -1.0),
        (OpKind::Sigmoid, f32::NEG_INFINITY, 0.0),
        (OpKind::Sigmoid, f32::INFINITY, 1.0),
        (OpKind::Sigmoid, 0.0, 0.5),
        (OpKind::Sigmoid, 200.0, 1.0),
    ];
    for &(kind, x, want) in cases {
        let got = map_f32(&unary(kind, Attrs::new(), DType::F32), &[x])[0];
        assert_eq!(got, want, "{kind:?}({x:e})");
    }
    let t = map_f32(&unary(OpKind::Tanh, Attrs::new(), DType::F32), &[-0.0, 0.0, -1e-30]);
    assert!(t[0] == 0.0 && t[0].is_sign_negative() && t[1].is_sign_positive() && t[2] == -1e-30, "tanh keeps signed zeros: {t:?}");
    for kind in [OpKind::Exp, OpKind::Log, OpKind::Tanh, OpKind::Sigmoid] {
        let got = map_f32(&unary(kind, Attrs::new(), DType::F32), &[f32::NAN, 1.0, 2.0, 3.0, f32::NAN]);
        assert!(got[0].is_nan() && got[4].is_nan(), "{kind:?}(NaN) = {got:?}");
    }
    for x in [-1.0f32, -1e-45, f32::NEG_INFINITY, f32::MIN] {
        assert!(map_f32(&unary(OpKind::Log, Attrs::new(), DType::F32), &[x])[0].is_nan(), "log({x:e})");
    }
    // Denormal results keep their digits (within an ulp of 2^-149).
    let d = map_f32(&unary(OpKind::Sigmoid, Attrs::new(), DType::F32), &[-100.0])[0];
    assert!(ulp_f32(d, exact_sigmoid(-100.0)) <= 1.0, "sigmoid(-100) = {d:e}");
}

/// A deterministic stream of f64 bit patterns (xorshift64*).
fn random_f64s(n: usize) -> Vec<f64> {
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            f64::from_bits(s.wrapping_mul(0x2545_F491_4F6C_DD1D))
        })
        .collect()
}

fn measure_f64(kind: OpKind, lo: f64, hi: f64, exact: fn(f64) -> f64) -> (f64, f64) {
    let k = unary(kind, Attrs::new(), DType::F64);
    assert_eq!(k.vector_lanes(), 2);
    let mut xs = random_f64s(1 << 20);
    let n = 1 << 20;
    xs.extend((0..=n).map(|i| lo + (hi - lo) * (i as f64 / n as f64)));
    xs.extend([0.0, -0.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, f64::MIN_POSITIVE, 5e-324, 709.78, 710.0, -745.0, -746.0]);
    let ys = map_f64(&k, &xs);
    same_in_scalar_tail(kind, DType::F64, &xs, &ys);
    let (mut max_ulp, mut max_abs) = (0f64, 0f64);
    for (&x, &y) in xs.iter().zip(&ys) {
        let want = exact(x);
        if want.is_nan() || want.is_infinite() {
            assert!(y.is_nan() == want.is_nan() && (want.is_nan() || y == want), "{kind:?}({x:e}) = {y:e}, want {want:e}");
            continue;
        }
        let u = if want.abs() < f64::MIN_POSITIVE { ((y - want).abs() / 5e-324).round() } else { ulp_f64(y, want) };
        assert!(u.is_finite(), "{kind:?}({x:e}) = {y:e}, want {want:e}");
        max_ulp = max_ulp.max(u);
        max_abs = max_abs.max((y - want).abs());
    }
    println!("{kind:?} f64 over {} inputs: max {max_ulp} ulp from libm, max abs {max_abs:.3e}", xs.len());
    (max_ulp, max_abs)
}

#[test]
fn f64_functions_match_libm() {
    let (u, _) = measure_f64(OpKind::Exp, -746.0, 710.0, f64::exp);
    assert!(u <= 2.0, "exp f64: {u} ulp");
    let (u, _) = measure_f64(OpKind::Log, 0.0, 4.0, f64::ln);
    assert!(u <= 2.0, "log f64: {u} ulp");
    let (u, a) = measure_f64(OpKind::Tanh, -20.0, 20.0, f64::tanh);
    assert!(a <= 1e-15 && u <= 3.0, "tanh f64: {a:e}, {u} ulp");
    let (u, a) = measure_f64(OpKind::Sigmoid, -40.0, 40.0, exact_sigmoid);
    assert!(a <= 1e-15 && u <= 3.0, "sigmoid f64: {a:e}, {u} ulp");
}
