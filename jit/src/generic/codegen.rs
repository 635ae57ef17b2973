//! From a [`GenericSpec`] to machine code: the loop nest around the shared
//! body (`body.rs`), as the schedule (`schedule.rs`) decided it.
//!
//! One bottom-tested loop per dim of the iteration space, outermost first,
//! so points are visited in the row-major order the semantics fix. Each
//! operand has a pointer that the loop over dim `k` steps by the operand's
//! stride along `k` (passed per call, in bytes), unless the schedule knows
//! the stride is 0. Bounds checks (padded inputs only) carry their index
//! the same way: each loop adds its coefficient times its index.
//!
//! The accumulator lives in a register over the trailing reduction loops:
//! set (to `init`, or to the output element when the output was pre-filled)
//! before the outermost of them and stored after it. When the innermost dim
//! is parallel, the body reads and writes the output element in place
//! instead, one element or one vector at a time.
//!
//! The innermost loop is the only one that vectorizes: a parallel dim as
//! `f32x4`/`f64x2` loads and stores at `row + j·size` (stride-1 operands),
//! lane-by-lane gathers at `row + (j + l)·stride` (run-time strides, when
//! the body computes enough to pay for them; a strided output is scattered
//! the same way), two vector loads and a shuffle for a stride known to be
//! two elements (a 2×2 pooling tap: 1.46× faster than gathers on the Keras
//! CNN's first pooling, batch 64, as ReLU + max-pool) or splats hoisted
//! before the loop (stride-0 operands); a
//! reduction dim
//! as a vector of partial accumulators, combined lane by lane after the
//! loop. A scalar tail takes the last `n mod lanes` elements.
//!
//! A kernel with several outputs (no reductions) has one pointer per output
//! stepped like an operand's; each point evaluates the body once and stores
//! every output's value (a vector store, or a lane-by-lane scatter for a
//! strided output).

use crate::body::{Body, extremum, value_type};
use crate::plan::Plan;
use crate::codegen::{Jit, data_flags, elem_size, input_flags, mem_type};
use crate::error::JitError;
use crate::generic::kernel::CompiledGeneric;
use crate::generic::schedule::{Fold, Inner, Schedule, Step};
use crate::generic::spec::{GenericSpec, IterKind};
use crate::generic::wide;
use crate::lanes::Fx;
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{Endianness, InstBuilder, MemFlagsData, Type, Value, types};
use cranelift_frontend::{FunctionBuilder, Variable};
use dlc_ir::DType;
use std::time::Instant;

impl Jit {
    /// Compiles a structured kernel to machine code.
    pub fn compile_generic(&self, spec: &GenericSpec) -> Result<CompiledGeneric, JitError> {
        let start = Instant::now();
        let sched = Schedule::new(spec, self.uses_fma());
        let (code, listing) = self.build(spec.dag(), spec.result(), &sched.plan, |b, body| Nest { spec, s: &sched, body }.build(b))?;
        let wide = if self.wide { wide::compile(spec, &sched) } else { None };
        let listing = match (listing, &wide) {
            (Some(l), Some(w)) => Some(format!("{l}\n{}", w.listing())),
            (l, _) => l,
        };
        Ok(CompiledGeneric { code, wide, spec: spec.clone(), sched, compile_time: start.elapsed(), listing })
    }
}

/// Output loads and stores: in bounds (checked before the call), but not
/// read-only, since the kernel writes the output.
fn out_flags() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

/// Values every loop uses, defined in the entry block.
struct Ctx {
    params: Value,
    sizes: Value,
    /// The safe block padded reads load from when out of bounds.
    safe: Value,
    /// Per check: the operand dim's size.
    bounds: Vec<Value>,
    /// The scalar accumulator (kernels with a reduction).
    acc: Option<Variable>,
    /// The vector of partial accumulators (`Inner::Reduce`).
    vacc: Option<Variable>,
    /// The term's plan of `Inner::MapWiden`.
    wterm: Option<Plan>,
    /// The two `f64x2` partial sums of `Inner::ReduceWiden` (the low and the
    /// high halves of each `f32x4` term), and the term's own plan.
    wacc: Option<(Variable, Variable, Plan)>,
}

/// How the innermost loop reads one input.
#[derive(Clone, Default)]
struct Row {
    /// Stride-0 inputs: the value, loaded once per row (scalar, and splat).
    hoisted: Option<(Value, Option<Value>)>,
    /// Other inputs: the row's start.
    start: Option<Value>,
    /// Runtime-stride inputs: the stride in bytes.
    stride: Option<Value>,
    /// The conjunction of the checks that do not depend on the inner index.
    inb: Option<Value>,
    /// The checks that do: (check index, its partial index at the row).
    step_checks: Vec<(usize, Value)>,
}

/// The loop nest generator.
struct Nest<'a> {
    spec: &'a GenericSpec,
    s: &'a Schedule,
    body: &'a Body<'a>,
}

impl Nest<'_> {
    fn n_in(&self) -> usize {
        self.spec.inputs().len()
    }

    fn n_out(&self) -> usize {
        self.spec.outputs().len()
    }

    /// Index into `params` of operand `o`'s slot (0: offset, 1 + k: stride along k).
    fn slot(&self, o: usize, slot: usize) -> usize {
        o * (self.spec.rank() + 1) + slot
    }

    fn param(&self, b: &mut FunctionBuilder<'_>, ctx: &Ctx, idx: usize) -> Value {
        b.ins().load(types::I64, MemFlagsData::trusted().with_readonly(), ctx.params, 8 * idx as i32)
    }

    fn build(&self, b: &mut FunctionBuilder<'_>) -> Result<(), JitError> {
        let n_in = self.n_in();
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        b.seal_block(entry);
        let &[ins, params, outs, sizes] = b.block_params(entry) else {
            return Err(JitError::Codegen("the kernel signature has four parameters".into()));
        };
        let meta = MemFlagsData::trusted().with_readonly();
        let safe = if self.s.checks.is_empty() { ins } else { b.ins().load(types::I64, meta, ins, 8 * n_in as i32) };
        let mut ctx = Ctx { params, sizes, safe, bounds: Vec::new(), acc: None, vacc: None, wacc: None, wterm: None };
        let mut ptrs = vec![None; n_in + self.n_out()];
        for (o, p) in ptrs.iter_mut().enumerate() {
            if o < n_in && !self.s.live[o] {
                continue;
            }
            let (array, at) = if o >= n_in { (outs, o - n_in) } else { (ins, o) };
            let base = b.ins().load(types::I64, meta, array, 8 * at as i32);
            let off = self.param(b, &ctx, self.slot(o, 0));
            *p = Some(b.ins().iadd(base, off));
        }
        let base = self.slot(n_in + self.n_out(), 0);
        let partials: Vec<Value> = (0..self.s.checks.len()).map(|q| self.param(b, &ctx, base + 2 * q)).collect();
        ctx.bounds = (0..self.s.checks.len()).map(|q| self.param(b, &ctx, base + 2 * q + 1)).collect();
        if self.spec.has_reduction() {
            ctx.acc = Some(b.declare_var(value_type(self.spec.out_dtype(), None)));
        }
        if let Inner::Reduce(v, _) = self.s.inner {
            ctx.vacc = Some(b.declare_var(v));
        }
        if let Inner::ReduceWiden(t) = self.s.inner {
            ctx.wacc = Some((b.declare_var(types::F64X2), b.declare_var(types::F64X2), Plan::new(self.spec.dag(), t, self.body.fma)));
        }
        if let Inner::MapWiden(t) = self.s.inner {
            ctx.wterm = Some(Plan::new(self.spec.dag(), t, self.body.fma));
        }
        self.level(b, &ctx, 0, &ptrs, &partials)?;
        b.ins().return_(&[]);
        Ok(())
    }

    /// A constant of an element type, splat for vectors.
    fn constant(&self, b: &mut FunctionBuilder<'_>, d: DType, vector: Option<Type>, v: f64) -> Value {
        let s = match (d, vector) {
            (DType::F64, _) => b.ins().f64const(v),
            (DType::I1, None) => b.ins().iconst(types::I8, (v != 0.0) as i64),
            (DType::I1, Some(vt)) => b.ins().iconst(vt.lane_type().as_int(), if v != 0.0 { -1 } else { 0 }),
            _ => b.ins().f32const(v as f32),
        };
        match vector {
            Some(vt) => b.ins().splat(value_type(d, Some(vt)), s),
            None => s,
        }
    }

    /// The loop over dim `d`, with `ptrs` the operands' pointers and
    /// `partials` the checks' indices at its start.
    fn level(&self, b: &mut FunctionBuilder<'_>, ctx: &Ctx, d: usize, ptrs: &[Option<Value>], partials: &[Value]) -> Result<(), JitError> {
        let rank = self.spec.rank();
        let n_in = self.n_in();
        let out_ptr = ptrs[n_in].ok_or_else(|| JitError::Codegen("no output pointer".into()))?;
        let n = b.ins().load(types::I64, MemFlagsData::trusted().with_readonly(), ctx.sizes, 8 * d as i32);
        let accumulates_here = d == self.s.trailing && self.spec.has_reduction();
        if let (true, Some(acc)) = (accumulates_here, ctx.acc) {
            let od = self.spec.out_dtype();
            let a0 = if self.s.prefill {
                b.ins().load(mem_type(od), out_flags(), out_ptr, 0)
            } else {
                self.constant(b, od, None, self.spec.init().unwrap_or(0.0))
            };
            b.def_var(acc, a0);
        }
        if d + 1 == rank {
            self.inner(b, ctx, ptrs, partials, n)?;
        } else {
            let moves: Vec<bool> = (0..ptrs.len()).map(|o| self.s.steps[o][d] != Step::Zero).collect();
            let step = |b: &mut FunctionBuilder<'_>, o: usize| self.param(b, ctx, self.slot(o, 1 + d));
            crate::loops::counted(b, n, ptrs, &moves, step, |b, jv, cur| {
                let sub: Vec<Value> = self
                    .s
                    .checks
                    .iter()
                    .zip(partials)
                    .map(|(c, &p)| match c.coeffs[d] {
                        0 => p,
                        k => {
                            let t = b.ins().imul_imm_s(jv, k);
                            b.ins().iadd(p, t)
                        }
                    })
                    .collect();
                self.level(b, ctx, d + 1, cur, &sub)
            })?;
        }
        if let (true, Some(acc)) = (accumulates_here, ctx.acc) {
            let a = b.use_var(acc);
            b.ins().store(out_flags(), a, out_ptr, 0);
        }
        Ok(())
    }

    /// `index <u bound` for check `q`: unsigned, so negative indices fail too.
    fn in_bounds(&self, b: &mut FunctionBuilder<'_>, ctx: &Ctx, q: usize, index: Value) -> Value {
        b.ins().icmp(IntCC::UnsignedLessThan, index, ctx.bounds[q])
    }

    /// Loads input `i` at `addr`, or its pad value where `inb` is false
    /// (reading the safe block instead of the wild address). A vector of an
    /// input with a run-time `stride` (bytes) is gathered: one scalar load
    /// per lane, at `addr + lane·stride`, each an index of the box.
    #[allow(clippy::too_many_arguments)]
    fn load_input(&self, b: &mut FunctionBuilder<'_>, ctx: &Ctx, i: usize, vector: Option<Type>, addr: Value, stride: Option<Value>, inb: Option<Value>) -> Value {
        let input = &self.spec.inputs()[i];
        let ty = value_type(input.dtype, vector);
        // An all-parallel kernel's input may be one of its outputs (an
        // in-place call, `abi.rs`): its loads must not be `readonly`.
        let flags = if self.spec.has_reduction() { data_flags() } else { input_flags() };
        let guarded = |b: &mut FunctionBuilder<'_>, a: Value| match inb {
            Some(m) => b.ins().select(m, a, ctx.safe),
            None => a,
        };
        let v = match (vector, stride) {
            // Every other element (`pairs`): lanes 0, 2, … of the vector at
            // `addr`, and lanes 1, 3, … of the one starting `lanes - 1`
            // elements on, which ends at the last element read (so nothing
            // past it is touched). x86: shufps.
            (Some(vt), Some(_)) if self.s.pairs[i] && inb.is_none() => {
                let vty = value_type(input.dtype, Some(vt));
                let lanes = vt.lane_count() as usize;
                let width = elem_size(input.dtype) as usize;
                let lo = b.ins().load(vty, flags, addr, 0);
                let hi = b.ins().load(vty, flags, addr, ((lanes - 1) * width) as i32);
                let le = MemFlagsData::new().with_endianness(Endianness::Little);
                let (lo, hi) = (b.ins().bitcast(types::I8X16, le, lo), b.ins().bitcast(types::I8X16, le, hi));
                // Byte `q` of the result: lane `q / width` takes element 2·lane.
                let mask: Vec<u8> = (0..16)
                    .map(|q| {
                        let (lane, byte) = (q / width, q % width);
                        let src = if 2 * lane < lanes { 2 * lane * width } else { 16 + (2 * lane + 1 - lanes) * width };
                        (src + byte) as u8
                    })
                    .collect();
                let mask = b.func.dfg.immediates.push(mask.as_slice().into());
                let even = b.ins().shuffle(lo, hi, mask);
                b.ins().bitcast(vty, le, even)
            }
            (Some(vt), Some(stride)) => {
                let lane_ty = mem_type(input.dtype);
                let mut at = addr;
                let first = guarded(b, at);
                let x = b.ins().load(lane_ty, flags, first, 0);
                let mut v = b.ins().scalar_to_vector(value_type(input.dtype, Some(vt)), x);
                for lane in 1..vt.lane_count() as u8 {
                    at = b.ins().iadd(at, stride);
                    let a = guarded(b, at);
                    let x = b.ins().load(lane_ty, flags, a, 0);
                    v = b.ins().insertlane(v, x, lane);
                }
                v
            }
            _ => {
                let a = guarded(b, addr);
                b.ins().load(ty, flags, a, 0)
            }
        };
        match inb {
            None => v,
            Some(m) => {
                let pad = self.constant(b, input.dtype, vector, input.pad.unwrap_or(0.0));
                b.ins().select(m, v, pad)
            }
        }
    }

    /// The innermost loop: per-row setup, the vector loop, the scalar tail.
    fn inner(&self, b: &mut FunctionBuilder<'_>, ctx: &Ctx, ptrs: &[Option<Value>], partials: &[Value], n: Value) -> Result<(), JitError> {
        let k = self.spec.rank() - 1;
        let n_in = self.n_in();
        let vector = match self.s.inner {
            Inner::Scalar => None,
            Inner::Map(v) | Inner::Reduce(v, _) => Some(v),
            Inner::ReduceWiden(_) | Inner::MapWiden(_) => Some(types::F32X4),
        };
        let mut rows = vec![Row::default(); n_in + self.n_out()];
        for (i, row) in rows.iter_mut().enumerate() {
            let Some(p) = ptrs[i] else { continue };
            if i < n_in {
                for (q, c) in self.s.checks.iter().enumerate().filter(|(_, c)| c.input == i) {
                    if c.coeffs[k] == 0 {
                        let ok = self.in_bounds(b, ctx, q, partials[q]);
                        row.inb = Some(match row.inb {
                            Some(m) => b.ins().band(m, ok),
                            None => ok,
                        });
                    } else {
                        row.step_checks.push((q, partials[q]));
                    }
                }
            }
            match self.s.steps[i][k] {
                Step::Zero if i < n_in => {
                    let s = self.load_input(b, ctx, i, None, p, None, row.inb);
                    let v = vector.map(|vt| b.ins().splat(value_type(self.spec.inputs()[i].dtype, Some(vt)), s));
                    row.hoisted = Some((s, v));
                }
                Step::Zero | Step::One => row.start = Some(p),
                Step::Runtime => {
                    row.start = Some(p);
                    row.stride = Some(self.param(b, ctx, self.slot(i, 1 + k)));
                }
            }
        }
        let j = b.declare_var(types::I64);
        let zero = b.ins().iconst(types::I64, 0);
        b.def_var(j, zero);
        let (tail_head, tail, exit) = (b.create_block(), b.create_block(), b.create_block());
        if let Some(vt) = vector {
            let lanes = vt.lane_count() as i64;
            let nv = b.ins().band_imm_s(n, !(lanes - 1));
            let (pre, vloop, post) = (b.create_block(), b.create_block(), b.create_block());
            b.ins().brif(nv, pre, &[], tail_head, &[]);
            b.switch_to_block(pre);
            b.seal_block(pre);
            if let (Inner::Reduce(_, fold), Some(vacc)) = (self.s.inner, ctx.vacc) {
                let id = self.constant(b, self.spec.out_dtype(), Some(vt), fold.identity());
                b.def_var(vacc, id);
            }
            if let Some((lo, hi, _)) = &ctx.wacc {
                let id = self.constant(b, DType::F64, Some(types::F64X2), Fold::Add.identity());
                b.def_var(*lo, id);
                b.def_var(*hi, id);
            }
            b.ins().jump(vloop, &[]);
            b.switch_to_block(vloop);
            self.step(b, ctx, Some(vt), &rows, j)?;
            let jv = b.use_var(j);
            let more = b.ins().icmp(IntCC::UnsignedLessThan, jv, nv);
            b.ins().brif(more, vloop, &[], post, &[]);
            b.seal_block(vloop);
            b.switch_to_block(post);
            b.seal_block(post);
            if let Inner::Reduce(_, fold) = self.s.inner {
                self.combine(b, ctx, vt, fold)?;
            }
            if ctx.wacc.is_some() {
                self.combine_widened(b, ctx)?;
            }
            b.ins().jump(tail_head, &[]);
        } else {
            b.ins().jump(tail_head, &[]);
        }
        b.switch_to_block(tail_head);
        let jv = b.use_var(j);
        let left = b.ins().icmp(IntCC::UnsignedLessThan, jv, n);
        b.ins().brif(left, tail, &[], exit, &[]);
        b.seal_block(tail_head);
        b.switch_to_block(tail);
        self.step(b, ctx, None, &rows, j)?;
        let jv = b.use_var(j);
        let more = b.ins().icmp(IntCC::UnsignedLessThan, jv, n);
        b.ins().brif(more, tail, &[], exit, &[]);
        b.seal_block(tail);
        b.switch_to_block(exit);
        b.seal_block(exit);
        Ok(())
    }

    /// `row + j·stride` in bytes, for an operand of element type `d`.
    fn address(b: &mut FunctionBuilder<'_>, row: &Row, d: DType, jv: Value) -> Option<Value> {
        let start = row.start?;
        let off = match row.stride {
            Some(s) => b.ins().imul(jv, s),
            None => b.ins().ishl_imm_u(jv, elem_size(d).trailing_zeros() as i64),
        };
        Some(b.ins().iadd(start, off))
    }

    /// One iteration of the innermost loop: `lanes` elements at index `j`.
    fn step(&self, b: &mut FunctionBuilder<'_>, ctx: &Ctx, vector: Option<Type>, rows: &[Row], j: Variable) -> Result<(), JitError> {
        let n_in = self.n_in();
        let k = self.spec.rank() - 1;
        let jv = b.use_var(j);
        let mut vals = vec![None; n_in];
        for (i, row) in rows[..n_in].iter().enumerate() {
            if let Some((s, v)) = row.hoisted {
                vals[i] = if vector.is_some() { v } else { Some(s) };
                continue;
            }
            let Some(addr) = Self::address(b, row, self.spec.inputs()[i].dtype, jv) else { continue };
            let mut inb = row.inb;
            for &(q, partial) in &row.step_checks {
                let t = b.ins().imul_imm_s(jv, self.s.checks[q].coeffs[k]);
                let e = b.ins().iadd(partial, t);
                let ok = self.in_bounds(b, ctx, q, e);
                inb = Some(match inb {
                    Some(m) => b.ins().band(m, ok),
                    None => ok,
                });
            }
            vals[i] = Some(self.load_input(b, ctx, i, vector, addr, row.stride, inb));
        }
        let od = self.spec.out_dtype();
        let lanes = vector.map_or(1, |v| v.lane_count() as i64);
        if let (Some(_), Some(plan), Inner::MapWiden(t)) = (vector, &ctx.wterm, self.s.inner) {
            // The f32 term on 4 lanes, its halves promoted and added to the
            // four f64 output elements at `j` (two `f64x2` loads and stores).
            let addr = Self::address(b, &rows[n_in], od, jv).ok_or_else(|| JitError::Codegen("the output has no row".into()))?;
            let term = Body { dag: self.body.dag, output: t, plan, fma: self.body.fma, pow: self.body.pow };
            let t = term.emit(b, vector, &vals, None)?;
            let (low, high) = Self::promote_halves(b, t);
            for (at, part) in [(0, low), (16, high)] {
                let a = b.ins().load(types::F64X2, out_flags(), addr, at);
                let s = b.ins().fadd(a, part);
                b.ins().store(out_flags(), s, addr, at);
            }
        } else if self.spec.iterators()[k] == IterKind::Parallel {
            let outs = self.spec.outputs();
            let addrs = outs
                .iter()
                .enumerate()
                .map(|(r, o)| Self::address(b, &rows[n_in + r], o.dtype, jv).ok_or_else(|| JitError::Codegen("an output has no row".into())))
                .collect::<Result<Vec<_>, _>>()?;
            // Only a single-output kernel has an accumulator (spec.rs).
            let acc = (self.spec.has_reduction() && self.s.acc_live).then(|| b.ins().load(value_type(od, vector), out_flags(), addrs[0], 0));
            let nodes: Vec<_> = outs.iter().map(|o| o.node).collect();
            let ys = self.body.emit_outputs(b, vector, &vals, acc, &nodes)?;
            for (r, (y, addr)) in ys.into_iter().zip(addrs).enumerate() {
                match (vector, rows[n_in + r].stride) {
                    // A strided output (no reduction: the schedule allows it
                    // only then): one store per lane at `addr + lane·stride`.
                    (Some(vt), Some(stride)) => {
                        let mut at = addr;
                        for lane in 0..vt.lane_count() as u8 {
                            if lane > 0 {
                                at = b.ins().iadd(at, stride);
                            }
                            let x = b.ins().extractlane(y, lane);
                            b.ins().store(out_flags(), x, at, 0);
                        }
                    }
                    _ => {
                        b.ins().store(out_flags(), y, addr, 0);
                    }
                }
            }
        } else if let (Some(_), Some((lo, hi, plan)), Inner::ReduceWiden(t)) = (vector, &ctx.wacc, self.s.inner) {
            // The f32 term on 4 lanes, each half promoted and added to its
            // f64 partial sums (x86: cvtps2pd of the low half, then of the
            // high half moved down as one 64-bit lane).
            let term = Body { dag: self.body.dag, output: t, plan, fma: self.body.fma, pow: self.body.pow };
            let t = term.emit(b, vector, &vals, None)?;
            let (low, high) = Self::promote_halves(b, t);
            for (var, part) in [(*lo, low), (*hi, high)] {
                let a = b.use_var(var);
                let s = b.ins().fadd(a, part);
                b.def_var(var, s);
            }
        } else {
            let var = if vector.is_some() { ctx.vacc } else { ctx.acc };
            let var = var.ok_or_else(|| JitError::Codegen("no accumulator".into()))?;
            let acc = b.use_var(var);
            let y = self.body.emit(b, vector, &vals, Some(acc))?;
            b.def_var(var, y);
        }
        let jn = b.ins().iadd_imm_s(jv, lanes);
        b.def_var(j, jn);
        Ok(())
    }

    /// The low and the high half of an `f32x4` as two `f64x2` (x86:
    /// cvtps2pd of the low half, then of the high half moved down as one
    /// 64-bit lane).
    fn promote_halves(b: &mut FunctionBuilder<'_>, t: Value) -> (Value, Value) {
        let low = b.ins().fvpromote_low(t);
        let lanes = MemFlagsData::new().with_endianness(Endianness::Little);
        let pairs = b.ins().bitcast(types::I64X2, lanes, t);
        let upper = b.ins().extractlane(pairs, 1);
        let upper = b.ins().scalar_to_vector(types::I64X2, upper);
        let upper = b.ins().bitcast(types::F32X4, lanes, upper);
        (low, b.ins().fvpromote_low(upper))
    }

    /// Adds the two `f64x2` partial sums of a widened reduction into the
    /// accumulator: lanes in order 0, 1 of the low half, then of the high.
    fn combine_widened(&self, b: &mut FunctionBuilder<'_>, ctx: &Ctx) -> Result<(), JitError> {
        let (Some((lo, hi, _)), Some(acc)) = (&ctx.wacc, ctx.acc) else {
            return Err(JitError::Codegen("a widened reduction without accumulators".into()));
        };
        let mut t = b.use_var(acc);
        for var in [*lo, *hi] {
            let v = b.use_var(var);
            for lane in 0..2 {
                let x = b.ins().extractlane(v, lane);
                t = b.ins().fadd(t, x);
            }
        }
        b.def_var(acc, t);
        Ok(())
    }

    /// Folds the partial accumulators into the accumulator, lane 0 first.
    fn combine(&self, b: &mut FunctionBuilder<'_>, ctx: &Ctx, vt: Type, fold: Fold) -> Result<(), JitError> {
        let (Some(vacc), Some(acc)) = (ctx.vacc, ctx.acc) else {
            return Err(JitError::Codegen("a vector reduction without accumulators".into()));
        };
        let v = b.use_var(vacc);
        let a = b.use_var(acc);
        let mut fx = Fx { b, ty: vt.lane_type(), fma: self.body.fma };
        let apply = |fx: &mut Fx<'_, '_>, x: Value, y: Value| match fold {
            Fold::Add => fx.b.ins().fadd(x, y),
            Fold::Max => extremum(fx, FloatCC::GreaterThan, x, y),
            Fold::Min => extremum(fx, FloatCC::LessThan, x, y),
        };
        let mut t = fx.b.ins().extractlane(v, 0);
        for lane in 1..vt.lane_count() as u8 {
            let x = fx.b.ins().extractlane(v, lane);
            t = apply(&mut fx, t, x);
        }
        let r = apply(&mut fx, a, t);
        b.def_var(acc, r);
        Ok(())
    }
}
