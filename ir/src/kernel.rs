//! A `kernel.generic` as plain data: what the lowering builds, the fusion
//! pass rewrites and the code generators compile.
//!
//! The IR form (an op with attributes and a body region, see
//! [`crate::registry::kernel`]) is what prints, parses and verifies; this form
//! is what is convenient to compute with: the body as a list of scalar nodes
//! in SSA order, operands by position. [`Generic::read`] and [`Generic::emit`]
//! convert between the two, so every transformation is written once, here or
//! in a pass, never on raw regions.

use crate::affine::AffineMap;
use crate::attr::{Attr, Attrs};
use crate::module::{Function, OpId, Region, ValueId};
use crate::registry::kernel::{GenericAttrs, PARALLEL, REDUCTION};
use crate::registry::{AttrView, OpKind};
use crate::types::{DType, Dim, Type};

/// One scalar computation of a kernel body; its index is its id.
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    /// Operand `i`'s element at the current point.
    Operand(usize),
    /// The accumulator (reductions): the result element's current value.
    Acc,
    /// A constant of `dtype`.
    Const {
        /// Its value (nonzero is true for i1).
        value: f64,
        /// Its element type.
        dtype: DType,
    },
    /// An elementwise registry op on earlier nodes.
    Op {
        /// Which op.
        kind: OpKind,
        /// Its attributes.
        attrs: Attrs,
        /// Earlier nodes.
        args: Vec<usize>,
    },
}

/// One result of a kernel: where it is written, its element type, and the
/// body node whose value it takes.
#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    /// Its map (a projection: every parallel dim once).
    pub map: AffineMap,
    /// Its element type.
    pub dtype: DType,
    /// The body node yielded for it.
    pub node: usize,
}

/// A structured kernel: iteration space, operand maps, result map, body.
/// A kernel with several results (no reductions) keeps the first in
/// `out_map`, `dtype` and `result`, the others in `extra`.
#[derive(Clone, Debug, PartialEq)]
pub struct Generic {
    /// True for each reduction dim.
    pub reduction: Vec<bool>,
    /// The iteration space; `None` for the batch `?`.
    pub sizes: Vec<Option<u64>>,
    /// One map per operand.
    pub maps: Vec<AffineMap>,
    /// The result's map (a projection: every parallel dim once).
    pub out_map: AffineMap,
    /// The result's element type.
    pub dtype: DType,
    /// The accumulator's start (reductions).
    pub init: f64,
    /// Operands that read `pad` outside their bounds.
    pub padded: Vec<usize>,
    /// The value they read there.
    pub pad: f64,
    /// The `dl` ops this kernel computes, in order, for readers.
    pub fused: Vec<String>,
    /// The body, in SSA order.
    pub body: Vec<Scalar>,
    /// The node whose value is yielded (for the first result).
    pub result: usize,
    /// The results after the first, in order (all-parallel kernels only).
    pub extra: Vec<Output>,
}

impl Generic {
    /// True when some dim is a reduction.
    pub fn reduces(&self) -> bool {
        self.reduction.contains(&true)
    }

    /// The iteration space's rank.
    pub fn rank(&self) -> usize {
        self.sizes.len()
    }

    /// Every result, the first included, in order.
    pub fn outputs(&self) -> Vec<Output> {
        let first = Output { map: self.out_map.clone(), dtype: self.dtype, node: self.result };
        std::iter::once(first).chain(self.extra.iter().cloned()).collect()
    }

    /// Replaces every result by `outs` (at least one).
    pub fn set_outputs(&mut self, mut outs: Vec<Output>) {
        let first = outs.remove(0);
        self.out_map = first.map;
        self.dtype = first.dtype;
        self.result = first.node;
        self.extra = outs;
    }

    /// Reads the `kernel.generic` `o` of `f`; also returns its operands.
    pub fn read(f: &Function, o: OpId) -> Result<(Generic, Vec<ValueId>), String> {
        let op = f.op(o);
        if op.kind != OpKind::Generic {
            return Err(format!("'{}' is not a kernel.generic", op.kind.name()));
        }
        let view = AttrView::new(op.kind, &op.attrs);
        let g = GenericAttrs::read(&view, op.operands.len())?;
        let block = op.regions.first().and_then(|r| r.blocks.first()).ok_or("kernel.generic has no body")?;
        let block = f.block(*block);
        let mut ids: std::collections::HashMap<ValueId, usize> = std::collections::HashMap::new();
        let mut body = Vec::new();
        for (i, &a) in block.args.iter().enumerate() {
            ids.insert(a, body.len());
            body.push(if i < op.operands.len() { Scalar::Operand(i) } else { Scalar::Acc });
        }
        let mut yielded = Vec::new();
        for &b in &block.ops {
            let d = f.op(b);
            let args = d.operands.iter().map(|v| ids.get(v).copied().ok_or_else(|| format!("body value %{} is not defined", v.0))).collect::<Result<Vec<_>, _>>()?;
            match d.kind {
                OpKind::Yield => yielded = args,
                OpKind::ScalarConstant => {
                    let v = AttrView::new(d.kind, &d.attrs);
                    body.push(Scalar::Const { value: v.float("value")?, dtype: v.dtype("dtype")? });
                }
                k => body.push(Scalar::Op { kind: k, attrs: d.attrs.clone(), args }),
            }
            if let Some(&r) = d.results.first() {
                ids.insert(r, body.len() - 1);
            }
        }
        if yielded.len() != g.results() {
            return Err(format!("the body yields {} value(s) for {} result(s)", yielded.len(), g.results()));
        }
        let mut maps = g.maps;
        let outs: Vec<Output> = maps.split_off(op.operands.len()).into_iter().zip(&g.dtypes).zip(yielded).map(|((map, &dtype), node)| Output { map, dtype, node }).collect();
        let mut generic = Generic {
            reduction: g.reduction,
            sizes: g.sizes,
            maps,
            out_map: outs[0].map.clone(),
            dtype: g.dtype,
            init: g.init,
            padded: g.padded,
            pad: g.pad,
            fused: view.strings("fused")?,
            body,
            result: outs[0].node,
            extra: Vec::new(),
        };
        generic.set_outputs(outs);
        Ok((generic, op.operands.clone()))
    }

    /// The op's attribute dictionary (defaults left out).
    pub fn attrs(&self) -> Attrs {
        let mut a = Attrs::new();
        let iters = self.reduction.iter().map(|&r| Attr::Str(if r { REDUCTION } else { PARALLEL }.into())).collect();
        a.insert("iterators".into(), Attr::Array(iters));
        let maps = self.maps.iter().chain([&self.out_map]).chain(self.extra.iter().map(|o| &o.map)).map(|m| Attr::Map(m.clone())).collect();
        a.insert("indexing_maps".into(), Attr::Array(maps));
        a.insert("sizes".into(), Attr::ints(&self.sizes.iter().map(|s| s.map_or(-1, |n| n as i64)).collect::<Vec<_>>()));
        a.insert("dtype".into(), Attr::from(self.dtype));
        if !self.extra.is_empty() {
            let dtypes = self.outputs().iter().map(|o| Attr::from(o.dtype)).collect();
            a.insert("dtypes".into(), Attr::Array(dtypes));
        }
        if self.reduces() {
            a.insert("init".into(), Attr::Float(self.init));
        }
        if !self.padded.is_empty() {
            a.insert("padded".into(), Attr::ints(&self.padded.iter().map(|&i| i as i64).collect::<Vec<_>>()));
            a.insert("pad".into(), Attr::Float(self.pad));
        }
        if !self.fused.is_empty() {
            a.insert("fused".into(), Attr::Array(self.fused.iter().map(|s| Attr::Str(s.clone())).collect()));
        }
        a
    }

    /// Appends the kernel to `f`'s entry block reading `operands`; returns
    /// its (first) result. The result type comes from the registry's rule,
    /// so a kernel that does not fit its operands is an error, not bad IR.
    pub fn emit(&self, f: &mut Function, operands: &[ValueId]) -> Result<ValueId, String> {
        self.emit_all(f, operands).map(|r| r[0])
    }

    /// [`Generic::emit`], returning every result.
    pub fn emit_all(&self, f: &mut Function, operands: &[ValueId]) -> Result<Vec<ValueId>, String> {
        if operands.len() != self.maps.len() {
            return Err(format!("{} operands for {} maps", operands.len(), self.maps.len()));
        }
        let attrs = self.attrs();
        let types: Vec<Type> = operands.iter().map(|&v| f.ty(v).clone()).collect();
        let result_types = OpKind::Generic.infer(&types, &attrs)?;
        let block = f.new_block();
        let mut vals: Vec<ValueId> = Vec::with_capacity(self.body.len());
        let scalar = |t: &Type| Type::Scalar(t.dtype().unwrap_or(DType::F32));
        for t in &types {
            f.add_block_arg(block, scalar(t), None);
        }
        if self.reduces() {
            f.add_block_arg(block, Type::Scalar(self.dtype), None);
        }
        let args = f.block(block).args.clone();
        for node in &self.body {
            let v = match node {
                Scalar::Operand(i) => *args.get(*i).ok_or_else(|| format!("body reads operand #{i}, which does not exist"))?,
                Scalar::Acc => *args.get(operands.len()).ok_or("the body reads an accumulator, but nothing is reduced")?,
                Scalar::Const { value, dtype } => {
                    let mut a = Attrs::new();
                    a.insert("value".into(), Attr::Float(*value));
                    a.insert("dtype".into(), Attr::from(*dtype));
                    let o = f.append_op(block, OpKind::ScalarConstant, Vec::new(), a, vec![Type::Scalar(*dtype)], Vec::new());
                    f.op(o).results[0]
                }
                Scalar::Op { kind, attrs, args: ins } => {
                    let ins: Vec<ValueId> = ins.iter().map(|&k| vals[k]).collect();
                    let tys: Vec<Type> = ins.iter().map(|&v| f.ty(v).clone()).collect();
                    let out = kind.infer(&tys, attrs).map_err(|m| format!("{} in a kernel body: {m}", kind.name()))?;
                    let o = f.append_op(block, *kind, ins, attrs.clone(), out, Vec::new());
                    *f.op(o).results.first().ok_or_else(|| format!("{} has no result", kind.name()))?
                }
            };
            vals.push(v);
        }
        let mut ys = Vec::new();
        for out in self.outputs() {
            let y = *vals.get(out.node).ok_or("the result node does not exist")?;
            if *f.ty(y) != Type::Scalar(out.dtype) {
                return Err(format!("the body yields {}, the kernel's element type is {}", f.ty(y), out.dtype));
            }
            ys.push(y);
        }
        f.append_op(block, OpKind::Yield, ys, Attrs::new(), Vec::new(), Vec::new());
        let entry = f.entry();
        let o = f.append_op(entry, OpKind::Generic, operands.to_vec(), attrs, result_types, vec![Region { blocks: vec![block] }]);
        Ok(f.op(o).results.clone())
    }

    /// Size `k` as a type dim.
    pub fn dim(&self, k: usize) -> Dim {
        self.sizes[k].map_or(Dim::Dynamic, Dim::Static)
    }

    /// Nodes reachable from the results (dead ones are dropped on emit by
    /// the caller, see [`Generic::compact`]).
    pub fn live(&self) -> Vec<bool> {
        let mut live = vec![false; self.body.len()];
        live[self.result] = true;
        for o in &self.extra {
            live[o.node] = true;
        }
        for i in (0..self.body.len()).rev() {
            if let (true, Scalar::Op { args, .. }) = (live[i], &self.body[i]) {
                for &a in args {
                    live[a] = true;
                }
            }
        }
        live
    }

    /// Drops dead body nodes and operands no live node reads (returning the
    /// kept operand positions), so the kernel reads only what it uses, and
    /// merges equal nodes (fusion inlines a producer once per read, so two
    /// reads of one value computed the same way become one computation).
    pub fn compact(&mut self) -> Vec<usize> {
        let live = self.live();
        let used: Vec<bool> = (0..self.maps.len()).map(|i| self.body.iter().enumerate().any(|(n, s)| live[n] && *s == Scalar::Operand(i))).collect();
        let keep: Vec<usize> = (0..self.maps.len()).filter(|&i| used[i]).collect();
        let new_pos = |i: usize| keep.iter().position(|&k| k == i);
        let mut remap = vec![usize::MAX; self.body.len()];
        let mut body = Vec::new();
        for (n, s) in self.body.iter().enumerate() {
            if !live[n] && !matches!(s, Scalar::Operand(_) | Scalar::Acc) {
                continue;
            }
            let s = match s {
                Scalar::Operand(i) => match new_pos(*i) {
                    Some(p) => Scalar::Operand(p),
                    None => continue,
                },
                Scalar::Op { kind, attrs, args } => Scalar::Op { kind: *kind, attrs: attrs.clone(), args: args.iter().map(|&a| remap[a]).collect() },
                other => other.clone(),
            };
            if let Some(same) = body.iter().position(|b| *b == s) {
                remap[n] = same;
                continue;
            }
            remap[n] = body.len();
            body.push(s);
        }
        self.result = remap[self.result];
        for o in &mut self.extra {
            o.node = remap[o.node];
        }
        self.body = body;
        self.maps = keep.iter().map(|&i| self.maps[i].clone()).collect();
        self.padded = self.padded.iter().filter_map(|&i| new_pos(i)).collect();
        keep
    }
}
