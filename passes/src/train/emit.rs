//! Shorthand for appending registry ops, shared by the loss and optimizer
//! builders: one method per op they use, so each formula reads as its math.

use dlc_ir::{Attr, Attrs, BuildError, Builder, DType, OpKind, ValueId, attrs};

/// A builder plus the dtype that [`Emit::c`] makes constants in.
pub(crate) struct Emit<'a, 'f> {
    pub b: &'a mut Builder<'f>,
    pub dtype: DType,
}

impl<'a, 'f> Emit<'a, 'f> {
    pub fn new(b: &'a mut Builder<'f>, dtype: DType) -> Self {
        Emit { b, dtype }
    }

    /// A rank-0 constant of the working dtype: a Python float meeting a
    /// tensor, rounded to the tensor's dtype as PyTorch's `Scalar` is.
    pub fn c(&mut self, v: f64) -> ValueId {
        self.b.scalar(v, self.dtype)
    }

    /// A rank-0 f64 constant, for coefficients PyTorch computes in Python floats.
    pub fn c64(&mut self, v: f64) -> ValueId {
        self.b.scalar(v, DType::F64)
    }

    fn bin(&mut self, k: OpKind, x: ValueId, y: ValueId) -> Result<ValueId, BuildError> {
        self.b.op(k, &[x, y], Attrs::new())
    }

    fn un(&mut self, k: OpKind, x: ValueId) -> Result<ValueId, BuildError> {
        self.b.op(k, &[x], Attrs::new())
    }

    pub fn add(&mut self, x: ValueId, y: ValueId) -> Result<ValueId, BuildError> {
        self.bin(OpKind::Add, x, y)
    }

    pub fn sub(&mut self, x: ValueId, y: ValueId) -> Result<ValueId, BuildError> {
        self.bin(OpKind::Sub, x, y)
    }

    pub fn mul(&mut self, x: ValueId, y: ValueId) -> Result<ValueId, BuildError> {
        self.bin(OpKind::Mul, x, y)
    }

    pub fn div(&mut self, x: ValueId, y: ValueId) -> Result<ValueId, BuildError> {
        self.bin(OpKind::Div, x, y)
    }

    pub fn pow(&mut self, x: ValueId, y: ValueId) -> Result<ValueId, BuildError> {
        self.bin(OpKind::Pow, x, y)
    }

    pub fn maximum(&mut self, x: ValueId, y: ValueId) -> Result<ValueId, BuildError> {
        self.bin(OpKind::Maximum, x, y)
    }

    pub fn neg(&mut self, x: ValueId) -> Result<ValueId, BuildError> {
        self.un(OpKind::Neg, x)
    }

    pub fn abs(&mut self, x: ValueId) -> Result<ValueId, BuildError> {
        self.un(OpKind::Abs, x)
    }

    pub fn exp(&mut self, x: ValueId) -> Result<ValueId, BuildError> {
        self.un(OpKind::Exp, x)
    }

    pub fn log(&mut self, x: ValueId) -> Result<ValueId, BuildError> {
        self.un(OpKind::Log, x)
    }

    pub fn sqrt(&mut self, x: ValueId) -> Result<ValueId, BuildError> {
        self.un(OpKind::Sqrt, x)
    }

    pub fn relu(&mut self, x: ValueId) -> Result<ValueId, BuildError> {
        self.un(OpKind::Relu, x)
    }

    /// `x <predicate> y` as `i1`.
    pub fn cmp(&mut self, predicate: &str, x: ValueId, y: ValueId) -> Result<ValueId, BuildError> {
        self.b.op(OpKind::Cmp, &[x, y], attrs! {"predicate" => predicate})
    }

    /// `cond ? x : y`.
    pub fn select(&mut self, cond: ValueId, x: ValueId, y: ValueId) -> Result<ValueId, BuildError> {
        self.b.op(OpKind::Select, &[cond, x, y], Attrs::new())
    }

    /// `x` converted to `dtype`; no op when it already has it.
    pub fn cast(&mut self, x: ValueId, dtype: DType) -> Result<ValueId, BuildError> {
        if self.b.func.ty(x).dtype() == Some(dtype) {
            return Ok(x);
        }
        self.b.op(OpKind::Cast, &[x], attrs! {"dtype" => dtype})
    }

    /// Sum or mean over `axes`, dropping them.
    pub fn reduce(&mut self, k: OpKind, x: ValueId, axes: &[i64]) -> Result<ValueId, BuildError> {
        let mut a = Attrs::new();
        a.insert("axes".into(), Attr::ints(axes));
        self.b.op(k, &[x], a)
    }

    /// `log(1 + y)`, accurate for tiny `y` where `log(1 + y)` rounds to 0.
    /// The registry has no `log1p`, and PyTorch's BCE and log-sigmoid use
    /// it, so this is Goldberg's composite: with `u = 1 + y` rounded,
    /// `log1p(y) = y · log(u) / (u - 1)` (within a few ulps), and `y` itself
    /// when `u == 1`. The divisor is made 1 in that branch so that neither
    /// branch produces inf or NaN, which a gradient through `select` would
    /// otherwise multiply by zero into NaN.
    pub fn log1p(&mut self, y: ValueId) -> Result<ValueId, BuildError> {
        let one = self.c(1.0);
        let u = self.add(one, y)?;
        let is_one = self.cmp("eq", u, one)?;
        let um1 = self.sub(u, one)?;
        let safe = self.select(is_one, one, um1)?;
        let log_u = self.log(u)?;
        let num = self.mul(y, log_u)?;
        let q = self.div(num, safe)?;
        self.select(is_one, y, q)
    }
}
