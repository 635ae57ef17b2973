//! The reference interpreter: plain, obviously correct evaluation of every
//! `dl` op on the CPU. It is the oracle that every other backend and every
//! pass is tested against, so it favours clarity over speed and checks what a
//! faster backend would trust: argument types, the batch size, every index,
//! and that each op's result has the type the IR declares.
//!
//! Semantics are PyTorch's (see each kernel's file). Precision: elementwise
//! ops run in the operands' own dtype, as PyTorch does; every *sum* (reductions,
//! means, matmul and conv dot products, softmax denominators, average pools)
//! accumulates in f64 and rounds once, so the oracle is more accurate than the
//! backends it judges, never less.

mod contraction;
pub(crate) mod elementwise;
mod error;
mod generic;
mod movement;
mod normalize;
mod reduce;
pub(crate) mod scalar;
mod source;
mod window;

pub use error::InterpError;

use crate::tensor::Tensor;
use contraction::Window2d;
use dlc_ir::{Attrs, AttrView, DType, DenseAttr, Dim, Function, OpKind, TensorType, Type};
use elementwise::{BinFn, FloatFn, NumFn};
use normalize::Norm;
use std::borrow::Cow;
use window::Pool;

/// The batch size, bound by the first argument with a `?` dim.
#[derive(Default)]
struct Batch {
    size: Option<usize>,
    bound_by: String,
}

/// Runs `func` on `args` and returns the values of its `func.return`.
///
/// Each argument must match its declared type: dtype, rank and every static
/// dim; all `?` dims, across all arguments, are one batch size.
///
/// Arguments may be owned tensors or references (`&[&Tensor]`), so a caller
/// holding parameters need not copy them for a call.
pub fn run<T: std::borrow::Borrow<Tensor>>(func: &Function, args: &[T]) -> Result<Vec<Tensor>, InterpError> {
    let params = func.args();
    let typed: Vec<(String, &Type)> =
        params.iter().enumerate().map(|(i, &v)| (func.value(v).name.clone().unwrap_or_else(|| format!("arg{i}")), func.ty(v))).collect();
    let mut batch = Batch { size: check_args(&func.name, &typed, args)?, bound_by: String::new() };
    if let Some((n, _)) = typed.iter().zip(args).find(|((_, ty), _)| ty.as_tensor().is_some_and(|t| t.shape.contains(&Dim::Dynamic))) {
        batch.bound_by = n.0.clone();
    }
    let mut env: Vec<Option<Cow<'_, Tensor>>> = (0..func.num_values()).map(|_| None).collect();
    for (&v, t) in params.iter().zip(args) {
        env[v.0 as usize] = Some(Cow::Borrowed(t.borrow()));
    }
    // Values are dropped after their last use, so a long function (a training
    // step) holds only what is still live.
    let body = func.body_ops();
    let mut last_use = vec![usize::MAX; func.num_values()];
    for (pos, &o) in body.iter().enumerate() {
        let op = func.op(o);
        // Ids from another function's arena would index out of bounds below.
        if let Some(v) = op.operands.iter().chain(&op.results).find(|v| v.0 as usize >= last_use.len()) {
            return Err(InterpError::malformed(op.kind.name(), format!("value %{} does not belong to @{}", v.0, func.name)));
        }
        for &v in &op.operands {
            last_use[v.0 as usize] = pos;
        }
    }
    for (pos, &o) in body.iter().enumerate() {
        let op = func.op(o);
        let name = op.kind.name();
        if op.kind == OpKind::Return {
            return returned(name, &op.operands, &mut env);
        }
        let out = {
            let inputs = op
                .operands
                .iter()
                .map(|&v| {
                    env[v.0 as usize].as_deref().ok_or_else(|| {
                        InterpError::malformed(name, format!("operand %{} is used before it is defined", v.0))
                    })
                })
                .collect::<Result<Vec<&Tensor>, _>>()?;
            if op.kind == OpKind::Generic {
                generic::eval(func, o, &inputs, batch.size)?
            } else {
                vec![eval_op(op.kind, &op.attrs, &inputs, batch.size)?]
            }
        };
        if out.len() != op.results.len() {
            let expected = if out.len() == 1 { "one result".to_string() } else { format!("{} results", out.len()) };
            return Err(InterpError::malformed(name, format!("expected {expected}, the IR declares {}", op.results.len())));
        }
        for (&r, y) in op.results.iter().zip(&out) {
            check_result(name, func.ty(r), y, &mut batch)?;
        }
        for &v in &op.operands {
            if last_use[v.0 as usize] == pos {
                env[v.0 as usize] = None;
            }
        }
        for (&r, y) in op.results.iter().zip(out) {
            env[r.0 as usize] = Some(Cow::Owned(y));
        }
    }
    Err(InterpError::malformed("func.return", format!("@{} does not end with func.return", func.name)))
}

/// A contraction's fused epilogue: `relu(y + bias)`, each part optional.
fn epilogue(op: &str, y: Tensor, bias: Option<&Tensor>, relu: bool) -> Result<Tensor, InterpError> {
    let y = match bias {
        Some(b) if b.len() > y.shape().get(if op.contains("conv2d") { 1 } else { y.rank().saturating_sub(1) }).copied().unwrap_or(0) => {
            return Err(InterpError::malformed(op, format!("the bias {} holds more than one value per channel of {}", b.describe(), y.describe())));
        }
        Some(b) => elementwise::binary(op, &y, b, BinFn::Add)?,
        None => y,
    };
    if relu { elementwise::map_float(op, &y, FloatFn::Relu) } else { Ok(y) }
}

/// Moves the returned values out of the environment (cloning a value that is
/// returned twice, or an argument returned as is).
fn returned(name: &str, operands: &[dlc_ir::ValueId], env: &mut [Option<Cow<'_, Tensor>>]) -> Result<Vec<Tensor>, InterpError> {
    let mut out = Vec::with_capacity(operands.len());
    for (i, &v) in operands.iter().enumerate() {
        let slot = &mut env[v.0 as usize];
        let value = if operands[i + 1..].contains(&v) { slot.clone() } else { slot.take() };
        let value = value.ok_or_else(|| InterpError::malformed(name, format!("operand %{} is not defined", v.0)))?;
        out.push(value.into_owned());
    }
    Ok(out)
}

/// True when `t` has the dtype, rank and static dims of `ty`.
fn conforms(ty: &TensorType, t: &Tensor) -> bool {
    ty.dtype == t.dtype()
        && ty.rank() == t.rank()
        && ty.shape.iter().zip(t.shape()).all(|(d, &n)| d.as_static().is_none_or(|s| s == n as u64))
}

/// Checks arguments against a function's parameter names and types: the count,
/// each dtype, rank and static dim, and that every `?` dim has one size. Returns
/// that batch size, if any `?` occurs. Every backend checks its arguments with
/// this, so a mistake reads the same whichever backend runs the model.
pub fn check_args<T: std::borrow::Borrow<Tensor>>(func: &str, params: &[(String, &Type)], args: &[T]) -> Result<Option<usize>, InterpError> {
    if args.len() != params.len() {
        return Err(InterpError::ArgCount { func: func.to_string(), expected: params.len(), found: args.len() });
    }
    let mut batch = Batch::default();
    for ((name, ty), t) in params.iter().zip(args) {
        check_arg(name, ty, t.borrow(), &mut batch)?;
    }
    Ok(batch.size)
}

fn check_arg(name: &str, ty: &Type, t: &Tensor, batch: &mut Batch) -> Result<(), InterpError> {
    let mismatch = || InterpError::ArgType { name: name.to_string(), expected: ty.to_string(), found: t.describe() };
    let tt = ty.as_tensor().ok_or_else(mismatch)?;
    if !conforms(tt, t) {
        return Err(mismatch());
    }
    for (dim, (d, &n)) in tt.shape.iter().zip(t.shape()).enumerate() {
        if *d != Dim::Dynamic {
            continue;
        }
        match batch.size {
            None => *batch = Batch { size: Some(n), bound_by: name.to_string() },
            Some(b) if b != n => {
                return Err(InterpError::BatchMismatch {
                    name: name.to_string(),
                    dim,
                    found: n,
                    batch: b,
                    bound_by: batch.bound_by.clone(),
                });
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// An op's result must have its declared type (with `?` = the batch): a
/// mismatch means the IR or the interpreter is wrong, never the caller.
fn check_result(op: &str, ty: &Type, t: &Tensor, batch: &mut Batch) -> Result<(), InterpError> {
    let batch_ok = |tt: &TensorType, b: Option<usize>| {
        tt.shape.iter().zip(t.shape()).all(|(d, &n)| *d != Dim::Dynamic || b.is_none_or(|b| b == n))
    };
    match ty.as_tensor() {
        Some(tt) if conforms(tt, t) && batch_ok(tt, batch.size) => {
            if batch.size.is_none()
                && let Some(i) = tt.shape.iter().position(|d| *d == Dim::Dynamic)
            {
                *batch = Batch { size: Some(t.shape()[i]), bound_by: format!("the result of {op}") };
            }
            Ok(())
        }
        _ => Err(InterpError::malformed(op, format!("produced {} but its declared type is {ty}", t.describe()))),
    }
}

/// Reads an op's attributes through the registry's defaults, turning a
/// missing or ill-typed attribute into [`InterpError::Malformed`].
struct AttrReader<'a> {
    op: &'static str,
    view: AttrView<'a>,
}

impl AttrReader<'_> {
    fn wrap<T>(&self, r: Result<T, String>) -> Result<T, InterpError> {
        r.map_err(|m| InterpError::malformed(self.op, m))
    }
    fn int(&self, name: &str) -> Result<i64, InterpError> {
        self.wrap(self.view.int(name))
    }
    fn float(&self, name: &str) -> Result<f64, InterpError> {
        self.wrap(self.view.float(name))
    }
    fn bool(&self, name: &str) -> Result<bool, InterpError> {
        self.wrap(self.view.bool(name))
    }
    fn str(&self, name: &str) -> Result<String, InterpError> {
        self.wrap(self.view.str(name))
    }
    fn ints(&self, name: &str) -> Result<Vec<i64>, InterpError> {
        self.wrap(self.view.ints(name))
    }
    fn dtype(&self, name: &str) -> Result<DType, InterpError> {
        self.wrap(self.view.dtype(name))
    }
    fn dense(&self, name: &str) -> Result<DenseAttr, InterpError> {
        self.wrap(self.view.dense(name))
    }
    /// One axis, negative counting from the end, resolved against `rank`.
    fn axis(&self, name: &str, rank: usize) -> Result<usize, InterpError> {
        let a = self.int(name)?;
        self.wrap(dlc_ir::registry::shape::axis(a, rank))
    }
    /// Two integers, each at least `min` (a window's `[h, w]`).
    fn pair(&self, name: &str, min: i64) -> Result<[usize; 2], InterpError> {
        match self.ints(name)?.as_slice() {
            &[h, w] if h >= min && w >= min => Ok([h as usize, w as usize]),
            other => self.wrap(Err(format!("attribute '{name}' must be two integers >= {min}, got {other:?}"))),
        }
    }
    /// A shape attribute with `-1` standing for the batch size.
    fn shape(&self, name: &str, batch: Option<usize>) -> Result<Vec<usize>, InterpError> {
        self.ints(name)?
            .into_iter()
            .map(|d| match d {
                -1 => batch.ok_or_else(|| InterpError::BatchUnbound { op: self.op.to_string() }),
                d => usize::try_from(d).map_err(|_| InterpError::malformed(self.op, format!("invalid dim {d} in '{name}'"))),
            })
            .collect()
    }
}

/// Evaluates one op on already-computed operands. `batch` is the size that
/// `-1` in a shape attribute stands for. This is the whole dispatch: one
/// exhaustive `match` on [`OpKind`], so a new registry op does not compile
/// until the interpreter handles it.
pub fn eval_op(kind: OpKind, attrs: &Attrs, inputs: &[&Tensor], batch: Option<usize>) -> Result<Tensor, InterpError> {
    let op = kind.name();
    if !kind.def().operands.accepts(inputs.len()) {
        return Err(InterpError::malformed(op, format!("{} operand(s) do not fit its arity {:?}", inputs.len(), kind.def().operands)));
    }
    let a = AttrReader { op, view: AttrView::new(kind, attrs) };
    let x = inputs.first().copied();
    let x = || x.ok_or_else(|| InterpError::malformed(op, "missing operand"));
    let pool = |p: Pool| -> Result<Tensor, InterpError> {
        let win = Window2d { kernel: a.pair("kernel", 1)?, stride: a.pair("stride", 1)?, padding: a.pair("padding", 0)?, dilation: [1, 1] };
        window::pool2d(op, x()?, p, win)
    };
    // A convolution's window; the kernel size is the weight's (or the
    // `kernel` attribute's), and the kernels read it from there.
    let conv_window = || -> Result<Window2d, InterpError> {
        Ok(Window2d { kernel: [1, 1], stride: a.pair("stride", 1)?, padding: a.pair("padding", 0)?, dilation: a.pair("dilation", 1)? })
    };
    // The max-pool window a pooled-gradient kernel op requires.
    let required_pool = || -> Result<Window2d, InterpError> {
        let Some(p) = dlc_ir::registry::kernel::fused_max_pool(&a.view).map_err(|m| InterpError::malformed(op, m))? else {
            return Err(InterpError::malformed(op, "max_pool is required"));
        };
        let p = AttrReader { op, view: AttrView::new(OpKind::MaxPool2d, &p) };
        Ok(Window2d { kernel: p.pair("kernel", 1)?, stride: p.pair("stride", 1)?, padding: p.pair("padding", 0)?, dilation: [1, 1] })
    };
    let reduce_axes = || -> Result<(Vec<usize>, bool), InterpError> {
        Ok((reduce::resolve_axes(op, &a.ints("axes")?, x()?.rank())?, a.bool("keepdims")?))
    };
    use OpKind as K;
    match kind {
        K::Neg => elementwise::map_num(op, x()?, NumFn::Neg),
        K::Abs => elementwise::map_num(op, x()?, NumFn::Abs),
        K::Exp => elementwise::map_float(op, x()?, FloatFn::Exp),
        K::Log => elementwise::map_float(op, x()?, FloatFn::Log),
        K::Sqrt => elementwise::map_float(op, x()?, FloatFn::Sqrt),
        K::Rsqrt => elementwise::map_float(op, x()?, FloatFn::Rsqrt),
        K::Tanh => elementwise::map_float(op, x()?, FloatFn::Tanh),
        K::Sigmoid => elementwise::map_float(op, x()?, FloatFn::Sigmoid),
        K::Relu => elementwise::map_float(op, x()?, FloatFn::Relu),
        K::LeakyRelu => elementwise::map_float(op, x()?, FloatFn::LeakyRelu(a.float("alpha")?)),
        K::Cast => Ok(elementwise::cast(x()?, a.dtype("dtype")?)),
        K::Add => elementwise::binary(op, inputs[0], inputs[1], BinFn::Add),
        K::Sub => elementwise::binary(op, inputs[0], inputs[1], BinFn::Sub),
        K::Mul => elementwise::binary(op, inputs[0], inputs[1], BinFn::Mul),
        K::Div => elementwise::binary(op, inputs[0], inputs[1], BinFn::Div),
        K::Pow => elementwise::pow(op, inputs[0], inputs[1]),
        K::Maximum => elementwise::binary(op, inputs[0], inputs[1], BinFn::Maximum),
        K::Minimum => elementwise::binary(op, inputs[0], inputs[1], BinFn::Minimum),
        K::Cmp => elementwise::cmp(op, inputs[0], inputs[1], &a.str("predicate")?),
        K::Select => elementwise::select(op, inputs[0], inputs[1], inputs[2]),
        K::ReduceSum => {
            let (axes, keep) = reduce_axes()?;
            reduce::reduce_sum(op, x()?, &axes, keep)
        }
        K::ReduceMean => {
            let (axes, keep) = reduce_axes()?;
            reduce::reduce_mean(op, x()?, &axes, keep)
        }
        K::ReduceMax => {
            let (axes, keep) = reduce_axes()?;
            reduce::reduce_max(op, x()?, &axes, keep)
        }
        K::Argmax => reduce::argmax(op, x()?, a.axis("axis", x()?.rank())?, a.bool("keepdims")?),
        K::Matmul => contraction::matmul(op, inputs[0], inputs[1], a.bool("transpose_a")?, a.bool("transpose_b")?),
        K::Conv2d => contraction::conv2d(op, inputs[0], inputs[1], conv_window()?),
        K::Conv2dGradInput => contraction::conv2d_grad_input(op, inputs[0], inputs[1], conv_window()?, a.pair("input_size", 0)?),
        K::Conv2dGradWeight => contraction::conv2d_grad_weight(op, inputs[0], inputs[1], conv_window()?, a.pair("kernel", 1)?),
        K::MaxPool2d => pool(Pool::Max),
        K::MaxPool2dGrad => {
            let win = Window2d { kernel: a.pair("kernel", 1)?, stride: a.pair("stride", 1)?, padding: a.pair("padding", 0)?, dilation: [1, 1] };
            window::max_pool2d_grad(op, inputs[0], inputs[1], win, a.bool("relu")?)
        }
        K::AvgPool2d => pool(Pool::Avg),
        K::Softmax => normalize::normalize(op, x()?, a.axis("axis", x()?.rank())?, Norm::Softmax),
        K::LogSoftmax => normalize::normalize(op, x()?, a.axis("axis", x()?.rank())?, Norm::LogSoftmax),
        K::Reshape => movement::reshape(op, x()?, &a.shape("shape", batch)?),
        K::Transpose => movement::transpose(op, x()?, &a.ints("perm")?),
        K::BroadcastTo => movement::broadcast_to(op, x()?, &a.shape("shape", batch)?),
        K::Concat => movement::concat(op, inputs, a.axis("axis", x()?.rank())?),
        K::Slice => {
            let axis = a.axis("axis", x()?.rank())?;
            movement::slice(op, x()?, axis, a.int("start")?, a.int("end")?, a.int("step")?)
        }
        K::Gather => movement::gather(op, inputs[0], inputs[1], a.axis("axis", x()?.rank())?),
        K::OneHot => movement::one_hot(op, x()?, a.int("num_classes")?, a.dtype("dtype")?),
        K::Constant => source::constant(op, &a.dense("value")?),
        K::Return => Err(InterpError::malformed(op, "func.return has no value: it ends the function")),
        K::Generic => Err(InterpError::malformed(op, "a kernel.generic runs with its body: run the function that holds it")),
        K::Yield => Err(InterpError::malformed(op, "kernel.yield has no value: it ends a kernel body")),
        K::ScalarConstant => Err(InterpError::malformed(op, "kernel.constant is a scalar inside a kernel body, not a tensor")),
        K::KernelMatmul | K::KernelConv2d if inputs.len() > 3 => Err(InterpError::malformed(op, format!("takes 2 operands and an optional bias, got {}", inputs.len()))),
        K::KernelMatmul => {
            let y = contraction::matmul(op, inputs[0], inputs[1], a.bool("transpose_a")?, a.bool("transpose_b")?)?;
            epilogue(op, y, inputs.get(2).copied(), a.bool("relu")?)
        }
        K::KernelConv2d => {
            let y = contraction::conv2d(op, inputs[0], inputs[1], conv_window()?)?;
            let y = epilogue(op, y, inputs.get(2).copied(), a.bool("relu")?)?;
            match dlc_ir::registry::kernel::fused_max_pool(&a.view).map_err(|m| InterpError::malformed(op, m))? {
                Some(p) => {
                    let p = AttrReader { op, view: AttrView::new(K::MaxPool2d, &p) };
                    let win = Window2d { kernel: p.pair("kernel", 1)?, stride: p.pair("stride", 1)?, padding: p.pair("padding", 0)?, dilation: [1, 1] };
                    window::pool2d(op, &y, Pool::Max, win)
                }
                None => Ok(y),
            }
        }
        K::KernelConv2dGradWeight => {
            // By its definition: the convolution, the pooling's gradient,
            // the weight gradient.
            let [x, g, w, rest @ ..] = inputs else {
                return Err(InterpError::malformed(op, format!("takes x, the pooled gradient, w and an optional bias, got {} operands", inputs.len())));
            };
            if rest.len() > 1 {
                return Err(InterpError::malformed(op, format!("takes x, the pooled gradient, w and an optional bias, got {} operands", inputs.len())));
            }
            let y = contraction::conv2d(op, x, w, conv_window()?)?;
            let y = epilogue(op, y, rest.first().copied(), false)?;
            let dy = window::max_pool2d_grad(op, &y, g, required_pool()?, a.bool("relu")?)?;
            let kernel = w.shape().get(2..4).map_or([1, 1], |k| [k[0], k[1]]);
            contraction::conv2d_grad_weight(op, x, &dy, conv_window()?, kernel)
        }
        // By their definitions: the pooling's gradient, then the dense one.
        K::KernelRoutedConv2dGradInput => {
            let dy = window::max_pool2d_grad(op, inputs[0], inputs[1], required_pool()?, a.bool("relu")?)?;
            contraction::conv2d_grad_input(op, &dy, inputs[2], conv_window()?, a.pair("input_size", 0)?)
        }
        K::KernelRoutedConv2dGradWeight => {
            let dy = window::max_pool2d_grad(op, inputs[1], inputs[2], required_pool()?, a.bool("relu")?)?;
            contraction::conv2d_grad_weight(op, inputs[0], &dy, conv_window()?, a.pair("kernel", 1)?)
        }
    }
}
