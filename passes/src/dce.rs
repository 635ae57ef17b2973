//! Dead-code elimination: drops ops none of whose results are used.
//!
//! Every `dl` op is pure, so an op whose results nobody reads can go; only the
//! terminator is kept unconditionally. One backward sweep suffices within a
//! block because uses always follow definitions.

use crate::Pass;
use dlc_ir::{Category, Function, Region};

/// The dead-code elimination pass.
pub struct Dce;

impl Pass for Dce {
    fn name(&self) -> &'static str {
        "dce"
    }

    fn summary(&self) -> &'static str {
        "remove ops whose results are never used"
    }

    fn run(&self, f: &mut Function) -> bool {
        let mut used = vec![false; f.num_values()];
        let mut dead = Vec::new();
        let body = f.body.clone();
        sweep(f, &body, &mut used, &mut dead);
        for &op in &dead {
            f.remove_op(op);
        }
        !dead.is_empty()
    }
}

fn sweep(f: &Function, region: &Region, used: &mut [bool], dead: &mut Vec<dlc_ir::OpId>) {
    for &b in region.blocks.iter().rev() {
        for &op in f.block(b).ops.iter().rev() {
            let data = f.op(op);
            let live = data.kind.category() == Category::Terminator || data.results.iter().any(|r| used[r.0 as usize]);
            if !live {
                dead.push(op);
                continue;
            }
            for r in data.regions.iter().rev() {
                sweep(f, r, used, dead);
            }
            for &v in &data.operands {
                used[v.0 as usize] = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dlc_ir::{Attrs, Builder, DType, OpKind, TensorType};

    #[test]
    fn removes_unused_chains_and_keeps_what_the_return_reads() {
        let mut f = Function::new("f");
        let x = f.add_arg(TensorType::fixed(&[4], DType::F32).into(), Some("x"), Attrs::new());
        let mut b = Builder::at_entry(&mut f);
        let e = b.op(OpKind::Exp, &[x], Attrs::new()).unwrap();
        let _dead = b.op(OpKind::Neg, &[e], Attrs::new()).unwrap();
        let dead2 = b.op(OpKind::Log, &[x], Attrs::new()).unwrap();
        let _dead3 = b.op(OpKind::Abs, &[dead2], Attrs::new()).unwrap();
        let r = b.op(OpKind::Relu, &[e], Attrs::new()).unwrap();
        b.ret(&[r]);
        assert!(Dce.run(&mut f));
        let kinds: Vec<_> = f.body_ops().iter().map(|&o| f.op(o).kind).collect();
        assert_eq!(kinds, [OpKind::Exp, OpKind::Relu, OpKind::Return]);
        assert!(!Dce.run(&mut f), "a second run finds nothing");
    }
}
