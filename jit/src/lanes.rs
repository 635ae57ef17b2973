//! One value shape for emission: a scalar (`f32`, `f64`) or a 128-bit
//! vector (`f32x4`, `f64x2`), so that the body, the polynomials and the
//! fixups are written once and emitted for both the vector loop and its
//! scalar tail.
//!
//! Masks (the `i1` values of `dl.cmp`) are `i8` 0/1 for scalars, as
//! Cranelift's `fcmp` gives them, and all-ones/all-zeros integer lanes of the
//! float's width for vectors, as `fcmp` on vectors gives them; [`Fx::select`]
//! hides the difference. Masks that only feed selects ([`Fx::fmask`]) are
//! all-ones/all-zeros floats for scalars too: x86 lowers a scalar float
//! `select` to a branch, which a data-dependent compare (`maximum` over
//! random data, `relu`, sigmoid's sign) mispredicts half the time, while a
//! bitwise select of a float mask is three branch-free instructions.

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, Type, Value, types};
use cranelift_frontend::FunctionBuilder;

/// An emitter of float code at one value shape.
pub(crate) struct Fx<'a, 'f> {
    /// Where instructions go.
    pub b: &'a mut FunctionBuilder<'f>,
    /// The float type: `F32`, `F64`, `F32X4` or `F64X2`.
    pub ty: Type,
    /// Whether the CPU has fused multiply-add (then `mul_add` is one rounding).
    pub fma: bool,
}

impl<'a, 'f> Fx<'a, 'f> {
    /// True for f64 and f64x2.
    pub fn is_f64(&self) -> bool {
        self.ty.lane_type() == types::F64
    }

    /// The integer type with the float type's lanes (`I32X4` for `F32X4`).
    pub fn int(&self) -> Type {
        self.ty.as_int()
    }

    fn splat(&mut self, lane_ty: Type, s: Value) -> Value {
        if self.ty.is_vector() {
            let vt = lane_ty.by(self.ty.lane_count()).expect("a 128-bit vector type");
            self.b.ins().splat(vt, s)
        } else {
            s
        }
    }

    /// A float constant, rounded to the lane type.
    pub fn c(&mut self, v: f64) -> Value {
        let s = if self.is_f64() { self.b.ins().f64const(v) } else { self.b.ins().f32const(v as f32) };
        self.splat(self.ty.lane_type(), s)
    }

    /// An integer constant in the integer type of the float's width.
    pub fn ci(&mut self, v: i64) -> Value {
        let lane = self.int().lane_type();
        let masked = if lane == types::I32 { v & 0xFFFF_FFFF } else { v };
        let s = self.b.ins().iconst(lane, masked);
        self.splat(lane, s)
    }

    /// The mask constant `true` or `false`.
    pub fn mask_const(&mut self, v: bool) -> Value {
        if self.ty.is_vector() { self.ci(if v { -1 } else { 0 }) } else { self.b.ins().iconst(types::I8, v as i64) }
    }

    /// The float's bits as an integer.
    pub fn bits(&mut self, v: Value) -> Value {
        let t = self.int();
        self.b.ins().bitcast(t, MemFlagsData::new(), v)
    }

    /// An integer's bits as a float.
    pub fn float(&mut self, i: Value) -> Value {
        self.b.ins().bitcast(self.ty, MemFlagsData::new(), i)
    }

    /// `a cc b` as a mask.
    pub fn fcmp(&mut self, cc: FloatCC, a: Value, b: Value) -> Value {
        self.b.ins().fcmp(cc, a, b)
    }

    /// `a cc b` as a mask for [`Fx::select`] alone (not an `i1` value): on
    /// scalars, the compare runs on vector lanes and lane 0's all-ones or
    /// all-zeros bits come back as a float, so the select is bitwise.
    pub fn fmask(&mut self, cc: FloatCC, a: Value, b: Value) -> Value {
        if self.ty.is_vector() {
            return self.b.ins().fcmp(cc, a, b);
        }
        let vt = self.ty.by(128 / self.ty.bits()).expect("a 128-bit vector type");
        let va = self.b.ins().scalar_to_vector(vt, a);
        let vb = self.b.ins().scalar_to_vector(vt, b);
        let m = self.b.ins().fcmp(cc, va, vb);
        let m = self.b.ins().bitcast(vt, MemFlagsData::new(), m);
        self.b.ins().extractlane(m, 0)
    }

    /// `m ? a : b` for floats or masks (`m` from [`Fx::fcmp`] or [`Fx::fmask`]).
    pub fn select(&mut self, m: Value, a: Value, b: Value) -> Value {
        let t = self.b.func.dfg.value_type(a);
        let mt = self.b.func.dfg.value_type(m);
        if self.ty.is_vector() {
            let m = if mt == t { m } else { self.b.ins().bitcast(t, MemFlagsData::new(), m) };
            self.b.ins().bitselect(m, a, b)
        } else if mt.is_float() && mt == t {
            self.b.ins().bitselect(m, a, b)
        } else {
            self.b.ins().select(m, a, b)
        }
    }

    /// The negation of a mask.
    pub fn not(&mut self, m: Value) -> Value {
        let t = self.mask_const(true);
        self.b.ins().bxor(m, t)
    }

    /// `a * b + c`, fused when the CPU can.
    pub fn mul_add(&mut self, a: Value, b: Value, c: Value) -> Value {
        if self.fma {
            self.b.ins().fma(a, b, c)
        } else {
            let p = self.b.ins().fmul(a, b);
            self.b.ins().fadd(p, c)
        }
    }

    /// `a * k + c` for a constant `k`.
    pub fn mul_add_c(&mut self, a: Value, k: f64, c: Value) -> Value {
        let k = self.c(k);
        self.mul_add(a, k, c)
    }

    /// Horner's rule: `coeffs[0]·x^(n-1) + … + coeffs[n-1]`.
    pub fn horner(&mut self, x: Value, coeffs: &[f64]) -> Value {
        let mut p = self.c(coeffs[0]);
        for &k in &coeffs[1..] {
            let k = self.c(k);
            p = self.mul_add(p, x, k);
        }
        p
    }

    /// A small non-negative integer (below 2^22 for f32, 2^51 for f64) as a
    /// float, exactly: OR it into the mantissa of 2^23 (2^52) and subtract.
    /// Cheaper than a conversion, and there is no `i64x2 → f64x2` conversion
    /// on x86 before AVX-512.
    pub fn small_int_to_float(&mut self, i: Value) -> Value {
        let magic = if self.is_f64() { 4_503_599_627_370_496.0 } else { 8_388_608.0 };
        let m = self.c(magic);
        let mb = self.bits(m);
        let ored = self.b.ins().bor(i, mb);
        let f = self.float(ored);
        self.b.ins().fsub(f, m)
    }

    /// `|x|` with the sign of `s` (for `|x|` non-negative): ORs in the sign bit.
    pub fn with_sign_of(&mut self, x: Value, s: Value) -> Value {
        let sign = self.ci(if self.is_f64() { i64::MIN } else { 0x8000_0000 });
        let sb = self.bits(s);
        let sb = self.b.ins().band(sb, sign);
        let xb = self.bits(x);
        let r = self.b.ins().bor(xb, sb);
        self.float(r)
    }
}
