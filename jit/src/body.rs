//! Emits a kernel body for one element, or one vector of elements: the one
//! exhaustive `match` from registry ops ([`OpKind`]) to machine operations.
//! Semantics are the interpreter's (`backends/src/interp/elementwise.rs`):
//! `relu` and `leaky_relu` let NaN and -0.0 through, `cmp` is IEEE (only
//! `ne` is true on NaN), casts to i1 test `!= 0` (NaN is true), `maximum`
//! and `minimum` propagate NaN and return the first operand on a tie. One
//! documented difference: an add or sub fed by a single-use multiply is one
//! `fma` (one rounding instead of two) when the CPU has it and
//! [`crate::JitOptions::fma`] is on.

use crate::error::JitError;
use crate::lanes::Fx;
use crate::math;
use crate::plan::Plan;
use crate::dag::{Dag, Node, NodeId};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{FuncRef, InstBuilder, Type, Value, types};
use cranelift_frontend::FunctionBuilder;
use dlc_ir::{AttrView, Attrs, DType, OpKind};

/// What body emission needs besides the instruction builder.
pub(crate) struct Body<'a> {
    pub dag: &'a Dag,
    /// The node whose value the body yields.
    pub output: NodeId,
    pub plan: &'a Plan,
    /// Whether the CPU has fused multiply-add.
    pub fma: bool,
    /// `pow_f32` and `pow_f64`, imported when the body uses `dl.pow`.
    pub pow: [Option<FuncRef>; 2],
}

/// The Cranelift type of a value of `d` at the current shape (`vector` is
/// the loop's vector type, `None` in the scalar tail).
pub(crate) fn value_type(d: DType, vector: Option<Type>) -> Type {
    match (d, vector) {
        (DType::I1, Some(v)) => v.as_int(),
        (DType::I1, None) => types::I8,
        // Read only in scalar loops (plan.rs).
        (DType::I64, _) => types::I64,
        (DType::F64, None) => types::F64,
        (_, Some(v)) => v,
        _ => types::F32,
    }
}

impl Body<'_> {
    /// Emits every live node and returns the output's value. `inputs[i]` is
    /// input `i`'s element at the current index (loaded or splatted by the
    /// loop nest), `acc` the accumulator's value where the body reads it.
    pub fn emit(&self, b: &mut FunctionBuilder<'_>, vector: Option<Type>, inputs: &[Option<Value>], acc: Option<Value>) -> Result<Value, JitError> {
        Ok(self.emit_outputs(b, vector, inputs, acc, &[self.output])?[0])
    }

    /// [`Body::emit`] for several outputs: every live node once, then each
    /// output's value (the plan must cover them all: [`Plan::for_outputs`]).
    pub fn emit_outputs(&self, b: &mut FunctionBuilder<'_>, vector: Option<Type>, inputs: &[Option<Value>], acc: Option<Value>, outputs: &[NodeId]) -> Result<Vec<Value>, JitError> {
        let dag = self.dag;
        let mut vals: Vec<Option<Value>> = vec![None; dag.nodes.len()];
        let get = |vals: &[Option<Value>], n: NodeId| {
            vals[n.0 as usize].ok_or_else(|| JitError::Codegen(format!("node {} used before it was emitted", n.0)))
        };
        for (i, node) in dag.nodes.iter().enumerate() {
            if !self.plan.emitted(i) {
                continue;
            }
            let dtype = dag.dtype(NodeId(i as u32));
            let v = match node {
                Node::Input(k) => inputs[*k].ok_or_else(|| JitError::Codegen(format!("input {k} was not loaded")))?,
                Node::Acc => acc.ok_or_else(|| JitError::Codegen("the accumulator was not loaded".into()))?,
                Node::Const { value, dtype } => {
                    let mut fx = self.fx(b, vector, &[*dtype]);
                    if *dtype == DType::I1 { fx.mask_const(*value != 0.0) } else { fx.c(*value) }
                }
                Node::Op { kind, attrs, args } => {
                    let arg_types: Vec<DType> = args.iter().map(|&a| dag.dtype(a)).collect();
                    let mut all = arg_types.clone();
                    all.push(dtype);
                    let fx = self.fx(b, vector, &all);
                    let fused = match self.plan.fused[i] {
                        Some(f) => Some((get(&vals, f.a)?, get(&vals, f.b)?, get(&vals, f.c)?, f.neg_product, f.neg_addend)),
                        None => None,
                    };
                    let xs = if fused.is_some() { Vec::new() } else { args.iter().map(|&a| get(&vals, a)).collect::<Result<_, _>>()? };
                    self.op(fx, *kind, attrs, &xs, &arg_types, dtype, fused)?
                }
            };
            vals[i] = Some(v);
        }
        outputs
            .iter()
            .map(|&o| {
                let out = get(&vals, o)?;
                // The ABI promises bytes of 0 or 1 (Rust bools); masks are already, but make it local.
                Ok(if dag.dtype(o) == DType::I1 { b.ins().band_imm_u(out, 1) } else { out })
            })
            .collect()
    }

    /// An emitter at the float type of the first float among `dtypes`.
    fn fx<'b, 'f>(&self, b: &'b mut FunctionBuilder<'f>, vector: Option<Type>, dtypes: &[DType]) -> Fx<'b, 'f> {
        let float = dtypes.iter().copied().find(|d| !matches!(d, DType::I1 | DType::I64)).unwrap_or(DType::F32);
        Fx { b, ty: value_type(float, vector), fma: self.fma }
    }

    /// The one dispatch from registry op to machine operations.
    #[allow(clippy::too_many_arguments)]
    fn op(
        &self,
        mut fx: Fx<'_, '_>,
        kind: OpKind,
        attrs: &Attrs,
        x: &[Value],
        arg_types: &[DType],
        out: DType,
        fused: Option<(Value, Value, Value, bool, bool)>,
    ) -> Result<Value, JitError> {
        let view = AttrView::new(kind, attrs);
        let attr_err = |m: String| JitError::Registry { op: kind.name(), message: m };
        if let Some((a, b, c, neg_product, neg_addend)) = fused {
            // Only adds and subs are planned as fused (see plan.rs).
            let a = if neg_product { fx.b.ins().fneg(a) } else { a };
            let c = if neg_addend { fx.b.ins().fneg(c) } else { c };
            return Ok(fx.b.ins().fma(a, b, c));
        }
        use OpKind as K;
        Ok(match kind {
            K::Neg => fx.b.ins().fneg(x[0]),
            K::Abs => fx.b.ins().fabs(x[0]),
            K::Exp => math::exp(&mut fx, x[0]),
            K::Log => math::log(&mut fx, x[0]),
            K::Sqrt => fx.b.ins().sqrt(x[0]),
            K::Rsqrt => {
                // 1/sqrt(x) with two roundings, as the interpreter computes it.
                let s = fx.b.ins().sqrt(x[0]);
                let one = fx.c(1.0);
                fx.b.ins().fdiv(one, s)
            }
            K::Tanh => math::tanh(&mut fx, x[0]),
            K::Sigmoid => math::sigmoid(&mut fx, x[0]),
            K::Relu => {
                let zero = fx.c(0.0);
                let neg = fx.fmask(FloatCC::LessThan, x[0], zero);
                fx.select(neg, zero, x[0])
            }
            K::LeakyRelu => {
                let alpha = view.float("alpha").map_err(attr_err)?;
                let zero = fx.c(0.0);
                let pos = fx.fmask(FloatCC::GreaterThan, x[0], zero);
                let k = fx.c(alpha);
                let scaled = fx.b.ins().fmul(x[0], k);
                fx.select(pos, x[0], scaled)
            }
            K::Cast => cast(&mut fx, x[0], arg_types[0], out),
            K::Add => fx.b.ins().fadd(x[0], x[1]),
            K::Sub => fx.b.ins().fsub(x[0], x[1]),
            K::Mul => fx.b.ins().fmul(x[0], x[1]),
            K::Div => fx.b.ins().fdiv(x[0], x[1]),
            K::Pow => self.pow(&mut fx, x[0], x[1])?,
            K::Maximum => extremum(&mut fx, FloatCC::GreaterThan, x[0], x[1]),
            K::Minimum => extremum(&mut fx, FloatCC::LessThan, x[0], x[1]),
            K::Cmp => {
                let p = view.str("predicate").map_err(attr_err)?;
                match arg_types[0] {
                    DType::I1 => mask_cmp(&mut fx, &p, x[0], x[1])?,
                    // Scalar only: a 0/1 i8, as a scalar float compare gives.
                    DType::I64 => fx.b.ins().icmp(int_cc(&p)?, x[0], x[1]),
                    _ => fx.fcmp(float_cc(&p)?, x[0], x[1]),
                }
            }
            K::Select => fx.select(x[0], x[1], x[2]),
            // KernelBuilder admits only the elementwise categories.
            K::ReduceSum
            | K::ReduceMean
            | K::ReduceMax
            | K::Argmax
            | K::Matmul
            | K::Conv2d
            | K::Conv2dGradInput
            | K::Conv2dGradWeight
            | K::MaxPool2d
            | K::MaxPool2dGrad
            | K::AvgPool2d
            | K::Softmax
            | K::LogSoftmax
            | K::Reshape
            | K::Transpose
            | K::BroadcastTo
            | K::Concat
            | K::Slice
            | K::Gather
            | K::OneHot
            | K::Constant
            | K::Return
            | K::Generic
            | K::Yield
            | K::ScalarConstant
            | K::KernelMatmul
            | K::KernelConv2d
            | K::KernelConv2dGradWeight
            | K::KernelRoutedConv2dGradInput
            | K::KernelRoutedConv2dGradWeight => return Err(JitError::unsupported(kind.name(), "not an elementwise op")),
        })
    }

    /// `x^y` through the host's `powf`/`pow`, lane by lane: Cranelift has no
    /// pow, and the call gives exactly the interpreter's values (special
    /// cases included). Slow, but pow is rare in models.
    fn pow(&self, fx: &mut Fx<'_, '_>, x: Value, y: Value) -> Result<Value, JitError> {
        let f = self.pow[fx.is_f64() as usize].ok_or_else(|| JitError::Codegen("pow was not imported".into()))?;
        let call = |fx: &mut Fx<'_, '_>, a: Value, b: Value| {
            let c = fx.b.ins().call(f, &[a, b]);
            fx.b.inst_results(c)[0]
        };
        if !fx.ty.is_vector() {
            return Ok(call(fx, x, y));
        }
        let mut r = x;
        for lane in 0..fx.ty.lane_count() as u8 {
            let a = fx.b.ins().extractlane(x, lane);
            let b = fx.b.ins().extractlane(y, lane);
            let p = call(fx, a, b);
            r = fx.b.ins().insertlane(r, p, lane);
        }
        Ok(r)
    }
}

/// The interpreter's `maximum` (`cc` = GreaterThan) or `minimum`
/// (LessThan): `b` if `b cc a` or `b` is NaN, else `a`. So NaN propagates and
/// a tie (±0 included) gives the first operand. Cranelift's `fmax`/`fmin`
/// would give +0 for max(-0, +0), which `1/x` downstream turns into a sign
/// flip. The first select is written as a `<` compare, the form x86 lowers
/// to one `maxps`/`minps` (which picks exactly the same operand, NaN
/// included), and scalars run on lane 0 of a vector: on x86 a scalar float
/// select is a branch, and in a max-reduction over data it mispredicts.
pub(crate) fn extremum(fx: &mut Fx<'_, '_>, cc: FloatCC, a: Value, b: Value) -> Value {
    if !fx.ty.is_vector() {
        let vt = fx.ty.by(128 / fx.ty.bits()).expect("a 128-bit vector type");
        let va = fx.b.ins().scalar_to_vector(vt, a);
        let vb = fx.b.ins().scalar_to_vector(vt, b);
        let r = extremum(&mut Fx { b: &mut *fx.b, ty: vt, fma: fx.fma }, cc, va, vb);
        return fx.b.ins().extractlane(r, 0);
    }
    let wins = if cc == FloatCC::GreaterThan { fx.fmask(FloatCC::LessThan, a, b) } else { fx.fmask(FloatCC::LessThan, b, a) };
    let r = fx.select(wins, b, a);
    let nan = fx.fmask(FloatCC::Unordered, b, b);
    fx.select(nan, b, r)
}

/// `dl.cmp`'s predicate on signed integers.
fn int_cc(p: &str) -> Result<IntCC, JitError> {
    Ok(match p {
        "eq" => IntCC::Equal,
        "ne" => IntCC::NotEqual,
        "lt" => IntCC::SignedLessThan,
        "le" => IntCC::SignedLessThanOrEqual,
        "gt" => IntCC::SignedGreaterThan,
        "ge" => IntCC::SignedGreaterThanOrEqual,
        other => return Err(JitError::Registry { op: "dl.cmp", message: format!("unknown predicate \"{other}\"") }),
    })
}

/// Predicates of `dl.cmp` on floats: ordered, except `ne` (true on NaN), as IEEE and the interpreter.
fn float_cc(p: &str) -> Result<FloatCC, JitError> {
    Ok(match p {
        "eq" => FloatCC::Equal,
        "ne" => FloatCC::NotEqual,
        "lt" => FloatCC::LessThan,
        "le" => FloatCC::LessThanOrEqual,
        "gt" => FloatCC::GreaterThan,
        "ge" => FloatCC::GreaterThanOrEqual,
        other => return Err(JitError::Registry { op: "dl.cmp", message: format!("unknown predicate \"{other}\"") }),
    })
}

/// `dl.cmp` on i1 operands (false < true), with bit operations: masks are
/// 0/1 bytes or all-ones lanes, which no one integer compare orders alike.
fn mask_cmp(fx: &mut Fx<'_, '_>, p: &str, a: Value, b: Value) -> Result<Value, JitError> {
    Ok(match p {
        "eq" => {
            let x = fx.b.ins().bxor(a, b);
            fx.not(x)
        }
        "ne" => fx.b.ins().bxor(a, b),
        "lt" => {
            let na = fx.not(a);
            fx.b.ins().band(na, b)
        }
        "le" => {
            let na = fx.not(a);
            fx.b.ins().bor(na, b)
        }
        "gt" => {
            let nb = fx.not(b);
            fx.b.ins().band(a, nb)
        }
        "ge" => {
            let nb = fx.not(b);
            fx.b.ins().bor(a, nb)
        }
        other => return Err(JitError::Registry { op: "dl.cmp", message: format!("unknown predicate \"{other}\"") }),
    })
}

/// `dl.cast` between f32, f64 and i1 (the interpreter's rules: nonzero,
/// NaN included, is true; true is 1). Width changes happen only in scalar
/// code (the plan does not vectorize mixed widths).
fn cast(fx: &mut Fx<'_, '_>, v: Value, from: DType, to: DType) -> Value {
    match (from, to) {
        _ if from == to => v,
        // i64 (scalar only): nonzero is true; to a float rounding to nearest.
        (DType::I64, DType::I1) => fx.b.ins().icmp_imm_s(IntCC::NotEqual, v, 0),
        (DType::I64, DType::F64) => fx.b.ins().fcvt_from_sint(types::F64, v),
        (DType::I64, _) => fx.b.ins().fcvt_from_sint(types::F32, v),
        (DType::I1, _) => {
            let (one, zero) = (fx.c(1.0), fx.c(0.0));
            fx.select(v, one, zero)
        }
        (_, DType::I1) => {
            let zero = fx.c(0.0);
            fx.fcmp(FloatCC::NotEqual, v, zero)
        }
        (DType::F32, _) => fx.b.ins().fpromote(types::F64, v),
        _ => fx.b.ins().fdemote(types::F32, v),
    }
}
