//! Finite-difference gradient checking, shared by `gradcheck.rs` and
//! `autodiff.rs`: build a loss function, differentiate it with
//! `dlc_passes::gradient`, run both on the reference interpreter and compare
//! the analytic gradient with central differences of the loss.

#![allow(dead_code)]

use dlc_backends::{Tensor, run};
use dlc_ir::{Attrs, Builder, DType, Dim, Function, OpKind, TensorType, ValueId, attrs, verify_function};
use dlc_passes::gradient;

/// The concrete size every `?` takes in a check.
pub const BATCH: usize = 3;

/// SplitMix64: a tiny deterministic generator, so failures reproduce.
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A random permutation of 0..n.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            p.swap(i, (self.next() % (i as u64 + 1)) as usize);
        }
        p
    }
}

/// How an argument's random values are drawn; each keeps away from the points
/// where the op under test is not differentiable.
#[derive(Copy, Clone, Debug)]
pub enum Gen {
    /// Uniform in [-1, 1].
    Normal,
    /// Uniform in [0.5, 2] (log, sqrt, pow bases).
    Positive,
    /// ±[0.2, 1] (abs, relu, divisors).
    AwayFromZero,
    /// Distinct values at least 0.1 apart, shifted by the offset (max ties).
    Spaced(f64),
    /// Integers in [0, n) (indices, booleans with n = 2).
    Below(i64),
}

/// One argument of a checked function.
#[derive(Clone, Debug)]
pub struct Arg {
    /// Its type (`?` dims become [`BATCH`]).
    pub ty: TensorType,
    /// How its values are drawn.
    pub draw: Gen,
}

impl Arg {
    /// A float argument of `shape` (`-1` is `?`) and `dtype`.
    pub fn new(shape: &[i64], dtype: DType, draw: Gen) -> Self {
        Arg { ty: TensorType::new(dims(shape), dtype), draw }
    }

    /// An f64 argument.
    pub fn f64(shape: &[i64], draw: Gen) -> Self {
        Arg::new(shape, DType::F64, draw)
    }
}

/// Dims from integers, `-1` for `?`.
pub fn dims(shape: &[i64]) -> Vec<Dim> {
    shape.iter().map(|&n| Dim::from_attr_int(n).expect("a valid dim")).collect()
}

/// The concrete shape of `ty`, `?` taken as [`BATCH`].
pub fn concrete(ty: &TensorType) -> Vec<usize> {
    ty.shape.iter().map(|d| d.as_static().map_or(BATCH, |n| n as usize)).collect()
}

/// Random values for `arg`.
pub fn random(rng: &mut Rng, arg: &Arg) -> Tensor {
    let shape = concrete(&arg.ty);
    let n: usize = shape.iter().product();
    let values: Vec<f64> = match arg.draw {
        Gen::Normal => (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect(),
        Gen::Positive => (0..n).map(|_| rng.uniform(0.5, 2.0)).collect(),
        Gen::AwayFromZero => (0..n).map(|_| rng.uniform(0.2, 1.0) * if rng.next().is_multiple_of(2) { 1.0 } else { -1.0 }).collect(),
        Gen::Spaced(offset) => {
            let p = rng.permutation(n);
            (0..n).map(|i| (p[i] as f64 - n as f64 / 2.0) * 0.1 + offset + rng.uniform(-0.01, 0.01)).collect()
        }
        Gen::Below(k) => (0..n).map(|_| (rng.next() % k as u64) as f64).collect(),
    };
    Tensor::from_f64_values(&shape, &values, arg.ty.dtype).expect("shape and data agree")
}

/// A function `@f(x0, …, r) = reduce_sum(body(x…) * r)`: a scalar loss whose
/// gradient with respect to body's result is the random tensor `r`, so every
/// element of the op's Jacobian is exercised.
pub fn loss_of(args: &[Arg], body: &dyn Fn(&mut Builder<'_>, &[ValueId]) -> ValueId) -> Function {
    let mut f = Function::new("f");
    let xs: Vec<ValueId> = args.iter().enumerate().map(|(i, a)| f.add_arg(a.ty.clone().into(), Some(&format!("x{i}")), Attrs::new())).collect();
    let mut b = Builder::at_entry(&mut f);
    let y = body(&mut b, &xs);
    let yt = b.func.ty(y).as_tensor().expect("a tensor result").clone();
    let r = b.func.add_arg(yt.clone().into(), Some("r"), Attrs::new());
    let weighted = b.op(OpKind::Mul, &[y, r], Attrs::new()).unwrap();
    let all: Vec<i64> = (0..yt.rank() as i64).collect();
    let loss = b.op(OpKind::ReduceSum, &[weighted], attrs! {"axes" => dlc_ir::Attr::ints(&all)}).unwrap();
    b.ret(&[loss]);
    f
}

/// Evaluates the loss (result 0) of `f` on `inputs`.
fn loss_value(f: &Function, inputs: &[Tensor]) -> f64 {
    run(f, inputs).unwrap_or_else(|e| panic!("running @{}: {e}", f.name))[0].to_f64_vec()[0]
}

/// Checks the gradient of `f`'s result 0 with respect to every float argument
/// in `wrt` against central differences. `inputs` are f's arguments.
/// Differences are taken over the perturbed values as stored (an f32 argument
/// rounds `x ± h`), so the quotient is exact for a function linear in `x`.
pub fn check_gradient(label: &str, f: &Function, wrt: &[usize], inputs: &[Tensor]) {
    verify_function(f).unwrap_or_else(|e| panic!("{label}: the loss function does not verify: {e:?}"));
    let g = gradient(f, 0, wrt).unwrap_or_else(|e| panic!("{label}: gradient failed: {e}"));
    let out = run(&g, inputs).unwrap_or_else(|e| panic!("{label}: running the gradient: {e}\n{g}"));
    let loss = loss_value(f, inputs);
    assert!((out[0].to_f64_vec()[0] - loss).abs() <= 1e-12 * loss.abs().max(1.0), "{label}: the gradient function changed the loss");
    for (k, &i) in wrt.iter().enumerate() {
        let analytic = out[f.result_types.len() + k].to_f64_vec();
        let x = &inputs[i];
        assert_eq!(out[f.result_types.len() + k].shape(), x.shape(), "{label}: gradient of x{i} has the wrong shape");
        let h = if x.dtype() == DType::F32 { 1e-2 } else { 1e-6 };
        let base = x.to_f64_vec();
        for (e, &an) in analytic.iter().enumerate() {
            let at = |delta: f64| {
                let mut v = base.clone();
                v[e] += delta;
                let t = Tensor::from_f64_values(x.shape(), &v, x.dtype()).unwrap();
                let stored = t.to_f64_vec()[e];
                let mut args = inputs.to_vec();
                args[i] = t;
                (stored, loss_value(f, &args))
            };
            let ((xp, fp), (xm, fm)) = (at(h), at(-h));
            let numeric = (fp - fm) / (xp - xm);
            let tol = 1e-7 + 1e-5 * numeric.abs();
            assert!(
                (an - numeric).abs() <= tol,
                "{label}: d loss / d x{i}[{e}] is {an} analytically, {numeric} by central differences\n{g}"
            );
        }
    }
}

/// Draws inputs for `args` plus the weight `r` of the loss, then checks the
/// gradient with respect to every float argument of `args`.
pub fn check_case(label: &str, seed: u64, args: &[Arg], body: &dyn Fn(&mut Builder<'_>, &[ValueId]) -> ValueId) {
    let f = loss_of(args, body);
    let mut rng = Rng::new(seed);
    let mut inputs: Vec<Tensor> = args.iter().map(|a| random(&mut rng, a)).collect();
    let r_ty = f.ty(*f.args().last().unwrap()).as_tensor().unwrap().clone();
    inputs.push(random(&mut rng, &Arg { ty: r_ty, draw: Gen::Normal }));
    let wrt: Vec<usize> = (0..args.len()).filter(|&i| args[i].ty.dtype.is_float()).collect();
    check_gradient(label, &f, &wrt, &inputs);
}
