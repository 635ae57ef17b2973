//! From a [`KernelSpec`] to machine code: the Cranelift setup (shared with
//! structured kernels, `generic/codegen.rs`, through [`Jit::build`]) and the
//! elementwise loop nest around the body.
//!
//! The nest has one scalar loop per outer dim of the iteration space and,
//! for the innermost dim, a vector loop (`f32x4`/`f64x2`) over the largest
//! multiple of the lane count followed by a scalar tail. Along the innermost
//! dim an input is contiguous (`Access::Full`: a vector load) or constant
//! (`Access::Broadcast`: loaded and splatted once, before the inner loops).
//! Outer loops step each input's pointer by its run-time stride; the output
//! is contiguous, so its pointer advances by one row per inner loop. All
//! loops are bottom-tested (`abi.rs` never calls with an empty dim). Pointer
//! arithmetic stays in bounds because of the checks in `abi.rs`.

use crate::abi::{self, Code};
use crate::body::{Body, value_type};
use crate::error::JitError;
use crate::kernel::CompiledKernel;
use crate::dag::{Dag, Node, NodeId};
use crate::plan::Plan;
use crate::spec::{Access, KernelSpec};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{AbiParam, FuncRef, InstBuilder, MemFlagsData, Type, Value, types};
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{FuncId, Linkage, Module, default_libcall_names};
use dlc_ir::{DType, OpKind};
use std::time::Instant;

/// How the JIT compiles.
#[derive(Clone, Debug)]
pub struct JitOptions {
    /// Run Cranelift's IR verifier on every function (slower compiles; on
    /// by default in debug builds, where a JIT bug should fail loudly).
    pub verify: bool,
    /// Contract a multiply feeding an add into one `fma` when the CPU has it.
    /// Off by default: PyTorch (eager and onnxruntime alike) rounds every op,
    /// and a contraction changes results near cancellation — `p - y` in a
    /// loss gradient, a tiny Adam moment — by enough that Adam's division by
    /// `sqrt(v)` amplifies it: with it on, the digits replay's weights drift
    /// 4e-3 from PyTorch's after 20 epochs; off, 1.3e-7. The kernels are
    /// memory-bound, so it costs next to nothing.
    pub fma: bool,
    /// Keep the Cranelift IR and the machine code's disassembly of every
    /// kernel (see [`CompiledKernel::listing`]), for debugging and tuning.
    pub listing: bool,
    /// Also compile flat f32 maps (optimizer updates) to 256-bit AVX code
    /// where the CPU has AVX2 (`generic/wide.rs`: Cranelift's vectors are
    /// 128-bit, which halves the divider's throughput). The results are
    /// the same bits; off, for the tests that compare the two.
    pub wide: bool,
}

impl Default for JitOptions {
    fn default() -> Self {
        JitOptions { verify: cfg!(debug_assertions), fma: false, listing: false, wide: true }
    }
}

/// The compiler: Cranelift's target for this host, created once (CPU feature
/// detection and flag parsing are not free) and shared by every kernel.
pub struct Jit {
    isa: OwnedTargetIsa,
    fma: bool,
    listing: bool,
    pub(crate) wide: bool,
}

impl Jit {
    /// A JIT for the host CPU with default options.
    pub fn new() -> Result<Jit, JitError> {
        Jit::with_options(JitOptions::default())
    }

    /// A JIT for the host CPU.
    pub fn with_options(options: JitOptions) -> Result<Jit, JitError> {
        let mut flags = settings::builder();
        let set = |f: &mut settings::Builder, k: &str, v: &str| f.set(k, v).map_err(JitError::codegen);
        set(&mut flags, "opt_level", "speed")?;
        set(&mut flags, "is_pic", "false")?;
        set(&mut flags, "use_colocated_libcalls", "false")?;
        set(&mut flags, "enable_verifier", if options.verify { "true" } else { "false" })?;
        let isa = cranelift_native::builder()
            .map_err(|m| JitError::Host(m.to_string()))?
            .finish(settings::Flags::new(flags))
            .map_err(JitError::codegen)?;
        if isa.pointer_type() != types::I64 {
            return Err(JitError::Host(format!("pointers of type {} (the JIT needs a 64-bit host)", isa.pointer_type())));
        }
        let has_fma = isa.isa_flags().iter().any(|f| f.name == "has_fma" && f.as_bool() == Some(true));
        Ok(Jit { isa, fma: options.fma && has_fma, listing: options.listing, wide: options.wide })
    }

    /// True when kernels contract multiply-adds into `fma`.
    pub fn uses_fma(&self) -> bool {
        self.fma
    }

    /// Compiles `spec` to machine code.
    pub fn compile(&self, spec: &KernelSpec) -> Result<CompiledKernel, JitError> {
        let start = Instant::now();
        let plan = Plan::new(spec.dag(), spec.output(), self.fma);
        let (code, listing) = self.build(spec.dag(), spec.output(), &plan, |b, body| Nest { spec, body, vector: plan.vector }.build(b))?;
        Ok(CompiledKernel {
            code,
            spec: spec.clone(),
            lanes: plan.vector.map_or(1, |v| v.lane_count()),
            compile_time: start.elapsed(),
            listing,
        })
    }

    /// Compiles one kernel function of the four-pointer ABI (`abi.rs`):
    /// the Cranelift module, the imports the body needs, and `nest`, which
    /// emits the loop nest around the body of `dag` yielding `output`.
    pub(crate) fn build(
        &self,
        dag: &Dag,
        output: NodeId,
        plan: &Plan,
        nest: impl FnOnce(&mut FunctionBuilder<'_>, &Body<'_>) -> Result<(), JitError>,
    ) -> Result<(Code, Option<String>), JitError> {
        let mut jb = JITBuilder::with_isa(self.isa.clone(), default_libcall_names());
        jb.symbol("dlc_jit_pow_f32", abi::pow_f32 as *const u8);
        jb.symbol("dlc_jit_pow_f64", abi::pow_f64 as *const u8);
        let mut module = JITModule::new(jb);
        let (id, listing) = match self.define(dag, output, plan, &mut module, nest) {
            Ok(defined) => defined,
            Err(e) => {
                abi::discard(module);
                return Err(e);
            }
        };
        Ok((Code::new(module, id)?, listing))
    }

    /// Generates the kernel function into `module` (not yet finalized).
    fn define(
        &self,
        dag: &Dag,
        output: NodeId,
        plan: &Plan,
        module: &mut JITModule,
        nest: impl FnOnce(&mut FunctionBuilder<'_>, &Body<'_>) -> Result<(), JitError>,
    ) -> Result<(FuncId, Option<String>), JitError> {
        let mut sig = module.make_signature();
        sig.params.extend([AbiParam::new(types::I64); 4]);
        let id = module.declare_function("dlc_kernel", Linkage::Local, &sig).map_err(JitError::codegen)?;
        let mut ctx = module.make_context();
        ctx.func.signature = sig;
        let mut pow: [Option<FuncRef>; 2] = [None, None];
        for (k, (name, t, dtype)) in [("dlc_jit_pow_f32", types::F32, DType::F32), ("dlc_jit_pow_f64", types::F64, DType::F64)].into_iter().enumerate() {
            let used = dag.nodes.iter().enumerate().any(|(i, n)| {
                plan.emitted(i) && matches!(n, Node::Op { kind: OpKind::Pow, .. }) && dag.dtype(NodeId(i as u32)) == dtype
            });
            if used {
                let mut ps = module.make_signature();
                ps.params.extend([AbiParam::new(t); 2]);
                ps.returns.push(AbiParam::new(t));
                let f = module.declare_function(name, Linkage::Import, &ps).map_err(JitError::codegen)?;
                pow[k] = Some(module.declare_func_in_func(f, &mut ctx.func));
            }
        }
        let mut fbc = FunctionBuilderContext::new();
        let target = module.target_config();
        {
            let mut b = FunctionBuilder::new(&mut ctx.func, &mut fbc);
            let body = Body { dag, output, plan, fma: self.fma, pow };
            nest(&mut b, &body)?;
            b.finalize(target);
        }
        let clif = self.listing.then(|| ctx.func.display().to_string());
        ctx.set_disasm(self.listing);
        module.define_function(id, &mut ctx).map_err(|e| JitError::Codegen(format!("{e:?}")))?;
        let listing = clif.map(|c| {
            let asm = ctx.compiled_code().and_then(|c| c.vcode.clone()).unwrap_or_default();
            format!("{c}\n{asm}")
        });
        module.clear_context(&mut ctx);
        Ok((id, listing))
    }
}

/// Bytes per element of a buffer of `d`.
pub(crate) fn elem_size(d: DType) -> i64 {
    match d {
        DType::F64 | DType::I64 => 8,
        DType::F32 | DType::I32 => 4,
        DType::I1 => 1,
    }
}

/// The scalar memory type of a buffer element.
pub(crate) fn mem_type(d: DType) -> Type {
    value_type(d, None)
}

/// Loads of input data: they never trap (bounds are checked before the
/// call) and structured kernels' inputs are not written while the kernel
/// runs.
pub(crate) fn data_flags() -> MemFlagsData {
    MemFlagsData::new().with_notrap().with_readonly()
}

/// Loads of an elementwise kernel's input data: never trapping, but not
/// `readonly`, because an input may be the output itself
/// ([`CompiledKernel::run_in_place`]): each element is then loaded in the
/// iteration that stores it, before the store, and the flag must not let
/// Cranelift assume the memory never changes.
pub(crate) fn input_flags() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

/// The loop nest generator.
struct Nest<'a> {
    spec: &'a KernelSpec,
    body: &'a Body<'a>,
    vector: Option<Type>,
}

impl Nest<'_> {
    fn build(&self, b: &mut FunctionBuilder<'_>) -> Result<(), JitError> {
        let spec = self.spec;
        let r = spec.rank();
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        b.seal_block(entry);
        let &[ins, strides, out, shape] = b.block_params(entry) else {
            return Err(JitError::Codegen("the kernel signature has four parameters".into()));
        };
        let meta = MemFlagsData::trusted().with_readonly();
        let n: Vec<Value> = (0..r).map(|d| b.ins().load(types::I64, meta, shape, 8 * d as i32)).collect();
        let mut live = vec![false; spec.inputs().len()];
        for (i, node) in spec.body().iter().enumerate() {
            if let (true, Node::Input(k)) = (self.body.plan.live[i], node) {
                live[*k] = true;
            }
        }
        let mut base = Vec::new();
        let mut step = Vec::new();
        for (i, input) in spec.inputs().iter().enumerate() {
            if !live[i] {
                base.push(None);
                step.push(Vec::new());
                continue;
            }
            base.push(Some(b.ins().load(types::I64, meta, ins, 8 * i as i32)));
            let bytes = (0..r.saturating_sub(1))
                .map(|d| {
                    let s = b.ins().load(types::I64, meta, strides, 8 * (i * r + d) as i32);
                    b.ins().imul_imm_s(s, elem_size(input.dtype))
                })
                .collect();
            step.push(bytes);
        }
        let ov = b.declare_var(types::I64);
        b.def_var(ov, out);
        self.level(b, 0, &base, &n, &step, ov)?;
        b.ins().return_(&[]);
        Ok(())
    }

    /// The loop over dim `d`, with `ptrs` the inputs' pointers at its start.
    fn level(&self, b: &mut FunctionBuilder<'_>, d: usize, ptrs: &[Option<Value>], n: &[Value], step: &[Vec<Value>], ov: Variable) -> Result<(), JitError> {
        if d + 1 == n.len() {
            return self.inner(b, ptrs, n[d], ov);
        }
        let moves: Vec<bool> = ptrs.iter().map(Option::is_some).collect();
        crate::loops::counted(b, n[d], ptrs, &moves, |_, i| step[i][d], |b, _, cur| self.level(b, d + 1, cur, n, step, ov))
    }

    /// The innermost dim: hoisted broadcast loads, the vector loop, the
    /// scalar tail. Both loops address `row + j·size` from one index `j`,
    /// which x86 folds into each load's addressing mode, so an iteration
    /// updates one register however many inputs there are.
    fn inner(&self, b: &mut FunctionBuilder<'_>, ptrs: &[Option<Value>], n: Value, ov: Variable) -> Result<(), JitError> {
        let inputs = self.spec.inputs();
        let inner_full = |i: usize| inputs[i].access.last() == Some(&Access::Full);
        let mut hoisted_s = vec![None; inputs.len()];
        let mut hoisted_v = vec![None; inputs.len()];
        let mut rows = vec![None; inputs.len()];
        for (i, p) in ptrs.iter().enumerate() {
            let Some(p) = *p else { continue };
            if inner_full(i) {
                rows[i] = Some(p);
            } else {
                let s = b.ins().load(mem_type(inputs[i].dtype), input_flags(), p, 0);
                hoisted_s[i] = Some(s);
                if let Some(vt) = self.vector {
                    hoisted_v[i] = Some(b.ins().splat(value_type(inputs[i].dtype, Some(vt)), s));
                }
            }
        }
        let out_row = b.use_var(ov);
        let j = b.declare_var(types::I64);
        let zero = b.ins().iconst(types::I64, 0);
        b.def_var(j, zero);
        let (tail_head, tail, exit) = (b.create_block(), b.create_block(), b.create_block());
        if let Some(vt) = self.vector {
            let lanes = vt.lane_count() as i64;
            let nv = b.ins().band_imm_s(n, !(lanes - 1));
            let vloop = b.create_block();
            b.ins().brif(nv, vloop, &[], tail_head, &[]);
            b.switch_to_block(vloop);
            self.step(b, Some(vt), &rows, &hoisted_v, out_row, j, lanes)?;
            let jv = b.use_var(j);
            let more = b.ins().icmp(IntCC::UnsignedLessThan, jv, nv);
            b.ins().brif(more, vloop, &[], tail_head, &[]);
            b.seal_block(vloop);
        } else {
            b.ins().jump(tail_head, &[]);
        }
        b.switch_to_block(tail_head);
        let jv = b.use_var(j);
        let left = b.ins().icmp(IntCC::UnsignedLessThan, jv, n);
        b.ins().brif(left, tail, &[], exit, &[]);
        b.seal_block(tail_head);
        b.switch_to_block(tail);
        self.step(b, None, &rows, &hoisted_s, out_row, j, 1)?;
        let jv = b.use_var(j);
        let more = b.ins().icmp(IntCC::UnsignedLessThan, jv, n);
        b.ins().brif(more, tail, &[], exit, &[]);
        b.seal_block(tail);
        b.switch_to_block(exit);
        b.seal_block(exit);
        // The output is contiguous: the next row starts right after this one.
        let bytes = b.ins().imul_imm_s(n, elem_size(self.spec.output_dtype()));
        let next = b.ins().iadd(out_row, bytes);
        b.def_var(ov, next);
        Ok(())
    }

    /// One iteration of an inner loop: `lanes` elements at index `j`.
    #[allow(clippy::too_many_arguments)]
    fn step(
        &self,
        b: &mut FunctionBuilder<'_>,
        vector: Option<Type>,
        rows: &[Option<Value>],
        hoisted: &[Option<Value>],
        out_row: Value,
        j: Variable,
        lanes: i64,
    ) -> Result<(), JitError> {
        let inputs = self.spec.inputs();
        let jv = b.use_var(j);
        let at = |b: &mut FunctionBuilder<'_>, row: Value, d: DType| {
            let off = b.ins().ishl_imm_u(jv, elem_size(d).trailing_zeros() as i64);
            b.ins().iadd(row, off)
        };
        let mut vals = hoisted.to_vec();
        for (i, row) in rows.iter().enumerate() {
            if let Some(row) = *row {
                let p = at(b, row, inputs[i].dtype);
                vals[i] = Some(b.ins().load(value_type(inputs[i].dtype, vector), input_flags(), p, 0));
            }
        }
        let y = self.body.emit(b, vector, &vals, None)?;
        let o = at(b, out_row, self.spec.output_dtype());
        b.ins().store(MemFlagsData::new().with_notrap(), y, o, 0);
        let jn = b.ins().iadd_imm_s(jv, lanes);
        b.def_var(j, jn);
        Ok(())
    }
}
