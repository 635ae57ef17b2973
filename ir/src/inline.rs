//! Inlining one function's body into another: how passes compose functions
//! (a loss appended to a forward pass, an optimizer update appended to a
//! gradient) without a call op.

use crate::module::{BlockId, Function, Region, ValueId};
use crate::registry::OpKind;
use std::collections::HashMap;

/// Copies `src`'s body into `block` of `dst`, with `args` standing for `src`'s
/// arguments, and returns the values `src` returns. Value names are kept
/// (made unique in `dst`); nested regions are copied too. `src` must verify.
pub fn inline(dst: &mut Function, block: BlockId, src: &Function, args: &[ValueId]) -> Vec<ValueId> {
    assert_eq!(args.len(), src.args().len(), "inline: argument count differs from the inlined function's");
    let mut map: HashMap<ValueId, ValueId> = src.args().iter().copied().zip(args.iter().copied()).collect();
    let mut returned = Vec::new();
    copy_block(dst, block, src, src.entry(), &mut map, &mut returned);
    returned
}

fn copy_block(dst: &mut Function, block: BlockId, src: &Function, from: BlockId, map: &mut HashMap<ValueId, ValueId>, returned: &mut Vec<ValueId>) {
    for &op in &src.block(from).ops {
        let data = src.op(op);
        let operands: Vec<ValueId> = data.operands.iter().map(|v| map[v]).collect();
        if data.kind == OpKind::Return && from == src.entry() {
            *returned = operands;
            continue;
        }
        let regions: Vec<Region> = data
            .regions
            .iter()
            .map(|r| {
                let blocks = r
                    .blocks
                    .iter()
                    .map(|&b| {
                        let nb = dst.new_block();
                        for &a in &src.block(b).args {
                            let v = src.value(a);
                            let na = dst.add_block_arg(nb, v.ty.clone(), v.name.as_deref());
                            map.insert(a, na);
                        }
                        copy_block(dst, nb, src, b, map, returned);
                        nb
                    })
                    .collect();
                Region { blocks }
            })
            .collect();
        let types = data.results.iter().map(|&r| src.ty(r).clone()).collect();
        let new = dst.append_op(block, data.kind, operands, data.attrs.clone(), types, regions);
        let results = dst.op(new).results.clone();
        for (&old, &newv) in data.results.iter().zip(&results) {
            if let Some(n) = &src.value(old).name {
                dst.set_name(newv, n);
            }
            map.insert(old, newv);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Attrs, Builder, DType, TensorType, print_function, verify_function};

    #[test]
    fn inlining_twice_composes_and_keeps_names_unique() {
        let t: crate::Type = TensorType::fixed(&[3], DType::F32).into();
        let mut sq = Function::new("sq");
        let x = sq.add_arg(t.clone(), Some("x"), Attrs::new());
        let mut b = Builder::at_entry(&mut sq);
        let y = b.op(OpKind::Mul, &[x, x], Attrs::new()).unwrap();
        b.name(y, "y");
        b.ret(&[y]);

        let mut f = Function::new("f");
        let a = f.add_arg(t, Some("a"), Attrs::new());
        let entry = f.entry();
        let r1 = inline(&mut f, entry, &sq, &[a]);
        let r2 = inline(&mut f, entry, &sq, &r1);
        Builder::at_entry(&mut f).ret(&r2);
        verify_function(&f).unwrap();
        let text = print_function(&f);
        assert!(text.contains("%y = \"dl.mul\"(%a, %a)") && text.contains("%y_1 = \"dl.mul\"(%y, %y)"), "{text}");
    }
}
