//! A second code generator for one narrow, hot form of structured kernel:
//! flat f32 maps (the optimizer updates), on 256-bit AVX vectors.
//!
//! Why: Cranelift's x86-64 SIMD is 128-bit only (DESIGN.md), and that
//! halves the throughput of exactly the instructions that do not get
//! cheaper per lane when they are narrower. On Zen 4 a 4-lane `divps` or
//! `sqrtps` occupies the divider about as long as an 8-lane one does, so
//! Adam's update (two divisions and a square root per element) is bound by
//! the divider, not by memory. Measured on the reference Zen 4, 1 thread,
//! the mlp's 256×784 weight: 0.161 against 0.109 ms in `cargo bench -p
//! dlc-jit --bench wide` (a memory-bound SGD update: 0.028 against 0.025),
//! and in the train step (`cargo bench --bench models -- --profile`) that
//! weight's update went 0.165 → 0.091 ms, all six updates 0.210 → 0.125 ms,
//! the step 0.95 → 0.87 ms. Hand-written intrinsics of the same update
//! measured 0.158 (SSE), 0.082 (AVX) and 0.077 ms (AVX-512), and 0.059 ms
//! without its divisions: AVX-512 would add little, and dynasm, the
//! assembler used here, does not encode it.
//!
//! What qualifies (anything else, and every CPU without AVX2, keeps the
//! Cranelift code; the broadcasts from a register are AVX2):
//! - no reduction dim; every input and output f32, unpadded;
//! - each input read through the identity map (a stream) or through a map
//!   with no results (a rank-0 scalar: an optimizer's step size); each
//!   output written through the identity map;
//! - a body of `add`, `sub`, `mul`, `div`, `sqrt`, `neg` and constants (and
//!   the `fma`s the plan contracts, on CPUs with FMA), all f32;
//! - registers enough for it: every stream and output pointer in a
//!   general-purpose register, every distinct constant and every scalar in
//!   a vector register of its own, and the body's values in the rest.
//!
//! The code runs one flat loop over `n` elements: 8 per iteration on
//! `ymm` registers, then the same body on scalars (`…ss`) for the tail.
//! It computes each element with the same IEEE operations, in the same
//! order, as the Cranelift code and the interpreter, so results are
//! bit-identical (NaN payloads aside). A call takes it only when the
//! launch (`launch.rs`) merged the loops into one contiguous run (the
//! identity maps of row-major operands always merge); `abi.rs` says why
//! the call is sound.

use crate::dag::{Node, NodeId};
use crate::generic::schedule::Schedule;
use crate::generic::spec::GenericSpec;
use dlc_ir::{AffineMap, DType, OpKind};

/// How the wide code reads one input.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Read {
    /// Not at all (dead in the body).
    Unused,
    /// One element per point, contiguous.
    Stream,
    /// One element for the whole call, broadcast.
    Scalar,
}

/// Wide machine code for one structured kernel.
pub(crate) struct Wide {
    /// The code; its entry point is at `entry`.
    #[cfg(target_arch = "x86_64")]
    pub code: dynasmrt::ExecutableBuffer,
    #[cfg(target_arch = "x86_64")]
    pub entry: dynasmrt::AssemblyOffset,
    /// Per input.
    pub reads: Vec<Read>,
}

impl Wide {
    /// The machine code as hex, for [`crate::CompiledGeneric::listing`]
    /// (dynasm keeps no text): `xxd -r -p` turns it back into bytes, which
    /// `objdump -D -b binary -mi386:x86-64` disassembles.
    pub fn listing(&self) -> String {
        #[cfg(target_arch = "x86_64")]
        {
            let bytes: &[u8] = &self.code;
            let hex: Vec<String> = bytes.chunks(32).map(|c| c.iter().map(|b| format!("{b:02x}")).collect::<String>()).collect();
            format!("; wide code (generic/wide.rs, 256-bit AVX): {} bytes, constants first, entry at byte {}\n{}", bytes.len(), self.entry.0, hex.join("\n"))
        }
        #[cfg(not(target_arch = "x86_64"))]
        String::new()
    }
}

impl std::fmt::Debug for Wide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wide").field("reads", &self.reads).finish_non_exhaustive()
    }
}

/// How each input is read, if the spec's form qualifies (module docs).
fn reads(spec: &GenericSpec, sched: &Schedule) -> Option<Vec<Read>> {
    let rank = spec.rank();
    let identity = AffineMap::identity(rank);
    if spec.has_reduction() || spec.outputs().iter().any(|o| o.dtype != DType::F32 || o.map != identity) {
        return None;
    }
    spec.inputs()
        .iter()
        .enumerate()
        .map(|(i, input)| {
            if !sched.live[i] {
                Some(Read::Unused)
            } else if input.dtype != DType::F32 || input.pad.is_some() {
                None
            } else if input.map == identity {
                Some(Read::Stream)
            } else if input.map.results.is_empty() {
                Some(Read::Scalar)
            } else {
                None
            }
        })
        .collect()
}

/// Compiles `spec` to wide code, or `None` where it does not qualify or
/// the CPU lacks AVX2 (or FMA, for a body the plan contracts).
pub(crate) fn compile(spec: &GenericSpec, sched: &Schedule) -> Option<Wide> {
    let reads = reads(spec, sched)?;
    #[cfg(target_arch = "x86_64")]
    {
        let fused = sched.plan.fused.iter().any(Option::is_some);
        // AVX2 for `vbroadcastss ymm, xmm` (AVX has only the memory form).
        if !std::arch::is_x86_feature_detected!("avx2") || (fused && !std::arch::is_x86_feature_detected!("fma")) {
            return None;
        }
        let alloc = x86::Alloc::new(spec, sched, &reads)?;
        let (code, entry) = x86::emit(spec, sched, &reads, &alloc)?;
        Some(Wide { code, entry, reads })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = reads;
        None
    }
}

/// The body's operations, as the wide code sees them.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Inst {
    Add,
    Sub,
    Mul,
    Div,
    Sqrt,
    Neg,
    /// `±(a·b) ± c` in one rounding: (negate the product, negate the addend).
    Fma(bool, bool),
}

/// Node `i`'s operation and operands, or `None` for anything outside the
/// form (module docs).
fn inst(spec: &GenericSpec, sched: &Schedule, i: usize) -> Option<(Inst, Vec<NodeId>)> {
    if let Some(f) = sched.plan.fused[i] {
        return Some((Inst::Fma(f.neg_product, f.neg_addend), vec![f.a, f.b, f.c]));
    }
    let Node::Op { kind, args, .. } = &spec.body()[i] else { return None };
    let inst = match kind {
        OpKind::Add => Inst::Add,
        OpKind::Sub => Inst::Sub,
        OpKind::Mul => Inst::Mul,
        OpKind::Div => Inst::Div,
        OpKind::Sqrt => Inst::Sqrt,
        OpKind::Neg => Inst::Neg,
        _ => return None,
    };
    Some((inst, args.clone()))
}

// dynasm's macro converts every dynamic register number with `.into()`.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::useless_conversion)]
mod x86 {
    use super::{Inst, Read, inst};
    use crate::dag::{Node, NodeId};
    use crate::generic::schedule::Schedule;
    use crate::generic::spec::GenericSpec;
    use dlc_ir::DType;
    use dynasmrt::{AssemblyOffset, DynasmApi, DynasmLabelApi, ExecutableBuffer, dynasm};

    /// Vector registers (ymm0–15 with AVX).
    const VREGS: u8 = 16;

    /// General-purpose registers for stream and output pointers, in the
    /// order they are taken: `rdi` (the pointer array) last, as it is
    /// overwritten last. The callee-saved ones are pushed and popped.
    /// `rcx` (the index), `rdx` (the vector loop's end) and `rsi` (`n`)
    /// are not among them.
    const GPRS: [u8; 12] = [0, 8, 9, 10, 11, 3, 5, 12, 13, 14, 15, 7];

    /// True for the callee-saved registers of the System V ABI.
    fn callee_saved(r: u8) -> bool {
        matches!(r, 3 | 5 | 12 | 13 | 14 | 15)
    }

    /// Where everything lives.
    pub(super) struct Alloc {
        /// Per node: its vector register (emitted nodes, constants and
        /// scalar inputs that are live).
        pub reg: Vec<Option<u8>>,
        /// Per operand (inputs, then outputs): its pointer register.
        pub ptr: Vec<Option<u8>>,
        /// Constants: (register, bits), loaded once.
        pub consts: Vec<(u8, u32)>,
        /// The sign mask's register, when the body negates.
        pub sign: Option<u8>,
    }

    impl Alloc {
        pub fn new(spec: &GenericSpec, sched: &Schedule, reads: &[Read]) -> Option<Alloc> {
            let plan = &sched.plan;
            let n = spec.body().len();
            let n_in = spec.inputs().len();
            let outputs: Vec<NodeId> = spec.outputs().iter().map(|o| o.node).collect();
            // Pointers.
            let mut gprs = GPRS.iter().copied();
            let mut ptr = vec![None; n_in + outputs.len()];
            for (o, slot) in ptr.iter_mut().enumerate() {
                if o >= n_in || reads[o] == Read::Stream {
                    *slot = Some(gprs.next()?);
                }
            }
            // Loop-invariant values take registers from the top.
            let mut reg = vec![None; n];
            let mut top = VREGS;
            let mut take_top = || {
                top = top.checked_sub(1)?;
                Some(top)
            };
            let mut consts: Vec<(u8, u32)> = Vec::new();
            let mut sign = None;
            for (i, node) in spec.body().iter().enumerate() {
                if !plan.emitted(i) {
                    continue;
                }
                if spec.dtype(NodeId(i as u32)) != DType::F32 {
                    return None;
                }
                match node {
                    Node::Const { value, .. } => {
                        let bits = (*value as f32).to_bits();
                        reg[i] = Some(match consts.iter().find(|c| c.1 == bits) {
                            Some(c) => c.0,
                            None => {
                                let r = take_top()?;
                                consts.push((r, bits));
                                r
                            }
                        });
                    }
                    Node::Input(k) if reads[*k] == Read::Scalar => reg[i] = Some(take_top()?),
                    Node::Input(_) => {}
                    Node::Acc => return None,
                    Node::Op { .. } => {
                        let (op, _) = inst(spec, sched, i)?;
                        if op == Inst::Neg && sign.is_none() {
                            sign = Some(take_top()?);
                        }
                    }
                }
            }
            // Last uses: outputs are stored after the body, so they live to its end.
            let mut last = vec![None::<usize>; n];
            for i in (0..n).filter(|&i| plan.emitted(i)) {
                if let Some((_, args)) = inst(spec, sched, i) {
                    for a in args {
                        last[a.0 as usize] = Some(i);
                    }
                }
            }
            for o in &outputs {
                last[o.0 as usize] = Some(usize::MAX);
            }
            // The body's values, in order, from the registers below.
            let mut free: Vec<u8> = (0..top).rev().collect();
            let invariant = |k: usize, reg: &[Option<u8>]| reg[k].is_some_and(|r| r >= top);
            for i in (0..n).filter(|&i| plan.emitted(i)) {
                if invariant(i, &reg) {
                    continue;
                }
                let (op, args) = match inst(spec, sched, i) {
                    Some((op, args)) => (Some(op), args),
                    None => (None, Vec::new()),
                };
                let mut dying: Vec<u8> = Vec::new();
                for a in &args {
                    let k = a.0 as usize;
                    if last[k] == Some(i) && !invariant(k, &reg) {
                        let r = reg[k]?;
                        if !dying.contains(&r) {
                            dying.push(r);
                        }
                    }
                }
                let d = match op {
                    // The 231 forms accumulate into the destination: the
                    // addend's register if it dies here, else a register
                    // holding none of the operands (the addend is copied in).
                    Some(Inst::Fma(..)) => {
                        let c = reg[args[2].0 as usize]?;
                        if dying.contains(&c) {
                            dying.retain(|&r| r != c);
                            free.extend(dying.iter().copied());
                            c
                        } else {
                            let d = free.pop()?;
                            free.extend(dying.iter().copied());
                            d
                        }
                    }
                    // Otherwise an operand's register may hold the result:
                    // the sources are read before the destination is written.
                    _ => {
                        free.extend(dying.iter().copied());
                        free.pop()?
                    }
                };
                reg[i] = Some(d);
                // A value nothing reads (dead but for the plan) frees at once.
                if last[i].is_none() {
                    free.push(d);
                }
            }
            Some(Alloc { reg, ptr, consts, sign })
        }
    }

    /// Emits the function `extern "sysv64" fn(ptrs: *const *const u8, n: i64)`
    /// (`abi.rs`): `ptrs` holds one pointer per input (null for unused
    /// ones), then one per output; `n >= 1`.
    pub(super) fn emit(spec: &GenericSpec, sched: &Schedule, reads: &[Read], a: &Alloc) -> Option<(ExecutableBuffer, AssemblyOffset)> {
        let mut ops = dynasmrt::x64::Assembler::new().ok()?;
        let n_in = spec.inputs().len();
        // Constant data before the code.
        let mut labels = Vec::new();
        for &(_, bits) in &a.consts {
            let l = ops.new_dynamic_label();
            dynasm!(ops ; .arch x64 ; .align 4 ; =>l ; .u32 bits);
            labels.push(l);
        }
        let sign_label = ops.new_dynamic_label();
        dynasm!(ops ; .arch x64 ; .align 4 ; =>sign_label ; .u32 0x8000_0000u32);
        dynasm!(ops ; .arch x64 ; .align 16);
        let entry = ops.offset();
        let saved: Vec<u8> = a.ptr.iter().flatten().copied().filter(|&r| callee_saved(r)).collect();
        for &r in &saved {
            dynasm!(ops ; .arch x64 ; push Rq(r));
        }
        // Invariants. `vbroadcastss ymm, m32` is loaded as a scalar and
        // broadcast from a register: dynasm encodes the memory form with
        // 128-bit length.
        for (&(r, _), &l) in a.consts.iter().zip(&labels) {
            dynasm!(ops ; .arch x64 ; vmovss Rx(r), DWORD [=>l] ; vbroadcastss Ry(r), Rx(r));
        }
        if let Some(r) = a.sign {
            dynasm!(ops ; .arch x64 ; vmovss Rx(r), DWORD [=>sign_label] ; vbroadcastss Ry(r), Rx(r));
        }
        for (i, node) in spec.body().iter().enumerate() {
            if let (true, Node::Input(k)) = (sched.plan.emitted(i), node)
                && reads[*k] == Read::Scalar
            {
                let (r, off) = (a.reg[i]?, 8 * *k as i32);
                dynasm!(ops ; .arch x64 ; mov rax, QWORD [rdi + off] ; vmovss Rx(r), DWORD [rax] ; vbroadcastss Ry(r), Rx(r));
            }
        }
        // Pointers, `rdi` itself last (GPRS ends with it).
        for (o, p) in a.ptr.iter().enumerate() {
            if let Some(p) = *p {
                let off = 8 * o as i32;
                dynasm!(ops ; .arch x64 ; mov Rq(p), QWORD [rdi + off]);
            }
        }
        let (vloop, tail, sloop, done) = (ops.new_dynamic_label(), ops.new_dynamic_label(), ops.new_dynamic_label(), ops.new_dynamic_label());
        dynasm!(ops
            ; .arch x64
            ; xor ecx, ecx
            ; mov rdx, rsi
            ; and rdx, -8
            ; cmp rcx, rdx
            ; jge =>tail
            ; =>vloop
        );
        body(&mut ops, spec, sched, a, n_in, true)?;
        dynasm!(ops
            ; .arch x64
            ; add rcx, 8
            ; cmp rcx, rdx
            ; jl =>vloop
            ; =>tail
            ; cmp rcx, rsi
            ; jge =>done
            ; =>sloop
        );
        body(&mut ops, spec, sched, a, n_in, false)?;
        dynasm!(ops
            ; .arch x64
            ; add rcx, 1
            ; cmp rcx, rsi
            ; jl =>sloop
            ; =>done
            ; vzeroupper
        );
        for &r in saved.iter().rev() {
            dynasm!(ops ; .arch x64 ; pop Rq(r));
        }
        dynasm!(ops ; .arch x64 ; ret);
        let code = ops.finalize().ok()?;
        Some((code, entry))
    }

    /// One iteration: the body on 8 lanes (`wide`) or on one, then the stores.
    fn body(ops: &mut dynasmrt::x64::Assembler, spec: &GenericSpec, sched: &Schedule, a: &Alloc, n_in: usize, wide: bool) -> Option<()> {
        for (i, node) in spec.body().iter().enumerate() {
            if !sched.plan.emitted(i) {
                continue;
            }
            let d = a.reg[i]?;
            match node {
                Node::Input(k) => {
                    // Scalars were broadcast before the loop.
                    if let Some(p) = a.ptr[*k] {
                        if wide {
                            dynasm!(ops ; .arch x64 ; vmovups Ry(d), [Rq(p) + rcx * 4]);
                        } else {
                            dynasm!(ops ; .arch x64 ; vmovss Rx(d), DWORD [Rq(p) + rcx * 4]);
                        }
                    }
                }
                Node::Const { .. } | Node::Acc => {}
                Node::Op { .. } => {
                    let (op, args) = inst(spec, sched, i)?;
                    let r = |k: usize| a.reg[args[k].0 as usize];
                    match op {
                        Inst::Add | Inst::Sub | Inst::Mul | Inst::Div => {
                            let (x, y) = (r(0)?, r(1)?);
                            binary(ops, op, d, x, y, wide);
                        }
                        Inst::Sqrt => {
                            let x = r(0)?;
                            if wide {
                                dynasm!(ops ; .arch x64 ; vsqrtps Ry(d), Ry(x));
                            } else {
                                dynasm!(ops ; .arch x64 ; vsqrtss Rx(d), Rx(x), Rx(x));
                            }
                        }
                        Inst::Neg => {
                            let (x, s) = (r(0)?, a.sign?);
                            if wide {
                                dynasm!(ops ; .arch x64 ; vxorps Ry(d), Ry(x), Ry(s));
                            } else {
                                dynasm!(ops ; .arch x64 ; vxorps Rx(d), Rx(x), Rx(s));
                            }
                        }
                        Inst::Fma(neg_product, neg_addend) => {
                            let (x, y, c) = (r(0)?, r(1)?, r(2)?);
                            // The 231 forms accumulate into the destination,
                            // which holds the addend or none of the operands
                            // (`Alloc::new`).
                            if d != c {
                                dynasm!(ops ; .arch x64 ; vmovaps Ry(d), Ry(c));
                            }
                            fma(ops, (neg_product, neg_addend), d, x, y, wide);
                        }
                    }
                }
            }
        }
        for (r, o) in spec.outputs().iter().enumerate() {
            let (p, v) = (a.ptr[n_in + r]?, a.reg[o.node.0 as usize]?);
            if wide {
                dynasm!(ops ; .arch x64 ; vmovups [Rq(p) + rcx * 4], Ry(v));
            } else {
                dynasm!(ops ; .arch x64 ; vmovss DWORD [Rq(p) + rcx * 4], Rx(v));
            }
        }
        Some(())
    }

    fn binary(ops: &mut dynasmrt::x64::Assembler, op: Inst, d: u8, x: u8, y: u8, wide: bool) {
        match (op, wide) {
            (Inst::Add, true) => dynasm!(ops ; .arch x64 ; vaddps Ry(d), Ry(x), Ry(y)),
            (Inst::Add, false) => dynasm!(ops ; .arch x64 ; vaddss Rx(d), Rx(x), Rx(y)),
            (Inst::Sub, true) => dynasm!(ops ; .arch x64 ; vsubps Ry(d), Ry(x), Ry(y)),
            (Inst::Sub, false) => dynasm!(ops ; .arch x64 ; vsubss Rx(d), Rx(x), Rx(y)),
            (Inst::Mul, true) => dynasm!(ops ; .arch x64 ; vmulps Ry(d), Ry(x), Ry(y)),
            (Inst::Mul, false) => dynasm!(ops ; .arch x64 ; vmulss Rx(d), Rx(x), Rx(y)),
            (Inst::Div, true) => dynasm!(ops ; .arch x64 ; vdivps Ry(d), Ry(x), Ry(y)),
            (Inst::Div, false) => dynasm!(ops ; .arch x64 ; vdivss Rx(d), Rx(x), Rx(y)),
            _ => unreachable!("binary() takes add, sub, mul and div"),
        }
    }

    /// `d = ±(x·y) ± d`, one rounding.
    fn fma(ops: &mut dynasmrt::x64::Assembler, neg: (bool, bool), d: u8, x: u8, y: u8, wide: bool) {
        match (neg, wide) {
            ((false, false), true) => dynasm!(ops ; .arch x64 ; vfmadd231ps Ry(d), Ry(x), Ry(y)),
            ((false, false), false) => dynasm!(ops ; .arch x64 ; vfmadd231ss Rx(d), Rx(x), Rx(y)),
            ((true, false), true) => dynasm!(ops ; .arch x64 ; vfnmadd231ps Ry(d), Ry(x), Ry(y)),
            ((true, false), false) => dynasm!(ops ; .arch x64 ; vfnmadd231ss Rx(d), Rx(x), Rx(y)),
            ((false, true), true) => dynasm!(ops ; .arch x64 ; vfmsub231ps Ry(d), Ry(x), Ry(y)),
            ((false, true), false) => dynasm!(ops ; .arch x64 ; vfmsub231ss Rx(d), Rx(x), Rx(y)),
            ((true, true), true) => dynasm!(ops ; .arch x64 ; vfnmsub231ps Ry(d), Ry(x), Ry(y)),
            ((true, true), false) => dynasm!(ops ; .arch x64 ; vfnmsub231ss Rx(d), Rx(x), Rx(y)),
        }
    }
}
