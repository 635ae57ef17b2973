//! The outer loop both code generators emit (`codegen.rs` for elementwise
//! kernels, `generic/codegen.rs` for loop nests): a bottom-tested counted
//! loop that carries operand pointers in variables and steps each by its
//! stride after every iteration. Bottom-tested because the callers never
//! run an empty dim (`abi.rs` returns before the call).

use crate::error::JitError;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{InstBuilder, Value, types};
use cranelift_frontend::{FunctionBuilder, Variable};

/// Emits `for j in 0..n` (n ≥ 1). `ptrs` are the operands' pointers at the
/// loop's start; those with a `Some` step are carried in variables and
/// advanced by `step(b, i)` (bytes, emitted at the end of each iteration)
/// after `body(b, j, cur)` has emitted the iteration, `cur` the pointers at
/// index `j`; the others are passed through unchanged.
pub(crate) fn counted(
    b: &mut FunctionBuilder<'_>,
    n: Value,
    ptrs: &[Option<Value>],
    steps: &[bool],
    mut step: impl FnMut(&mut FunctionBuilder<'_>, usize) -> Value,
    body: impl FnOnce(&mut FunctionBuilder<'_>, Value, &[Option<Value>]) -> Result<(), JitError>,
) -> Result<(), JitError> {
    let vars: Vec<Option<Variable>> = ptrs
        .iter()
        .zip(steps)
        .map(|(p, &moves)| {
            let p = (*p)?;
            moves.then(|| {
                let v = b.declare_var(types::I64);
                b.def_var(v, p);
                v
            })
        })
        .collect();
    let j = b.declare_var(types::I64);
    let zero = b.ins().iconst(types::I64, 0);
    b.def_var(j, zero);
    let (head, exit) = (b.create_block(), b.create_block());
    b.ins().jump(head, &[]);
    b.switch_to_block(head);
    let cur: Vec<Option<Value>> = ptrs.iter().zip(&vars).map(|(p, v)| v.map(|v| b.use_var(v)).or(*p)).collect();
    let jv = b.use_var(j);
    body(b, jv, &cur)?;
    for (i, v) in vars.iter().enumerate() {
        if let Some(v) = *v {
            let s = step(b, i);
            let p = b.use_var(v);
            let p = b.ins().iadd(p, s);
            b.def_var(v, p);
        }
    }
    let jv = b.use_var(j);
    let jn = b.ins().iadd_imm_s(jv, 1);
    b.def_var(j, jn);
    let more = b.ins().icmp(IntCC::UnsignedLessThan, jn, n);
    b.ins().brif(more, head, &[], exit, &[]);
    b.seal_block(head);
    b.switch_to_block(exit);
    b.seal_block(exit);
    Ok(())
}
