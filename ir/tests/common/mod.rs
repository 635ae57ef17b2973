//! Modules shared by the round-trip, mlir-opt and robustness tests, and a
//! structural comparison of modules that is exact about floats (bitwise, so
//! NaN equals itself and -0.0 differs from 0.0).
#![allow(dead_code)]

use dlc_ir::attrs;
use dlc_ir::kernel::{Generic, Output, Scalar};
use dlc_ir::signature::{input_attrs, param_attrs, set_output_names};
use dlc_ir::*;
use std::collections::HashMap;

/// A named module; `verifies` is false for cases that exercise syntax the
/// registry has no valid op for (multi-result ops; regions of several blocks
/// or of tensor-typed arguments, which only `kernel.generic` would own).
pub struct Case {
    pub name: &'static str,
    pub module: Module,
    pub verifies: bool,
}

pub fn t(shape: &[i64], dtype: DType) -> Type {
    let dims = shape.iter().map(|&d| if d < 0 { Dim::Dynamic } else { Dim::Static(d as u64) }).collect();
    Type::Tensor(TensorType::new(dims, dtype))
}

pub fn tt(shape: &[i64], dtype: DType) -> TensorType {
    t(shape, dtype).as_tensor().cloned().expect("a tensor")
}

/// Every case, each a different corner of the syntax.
pub fn cases() -> Vec<Case> {
    vec![
        Case { name: "mlp", module: Module { functions: vec![mlp()] }, verifies: true },
        Case { name: "every_op", module: Module { functions: vec![every_op()] }, verifies: true },
        Case { name: "attributes", module: Module { functions: vec![attributes(), empty_fn()] }, verifies: true },
        Case { name: "regions", module: Module { functions: vec![regions()] }, verifies: false },
        Case { name: "multi_result", module: Module { functions: vec![multi_result()] }, verifies: false },
        Case { name: "empty_module", module: Module::new(), verifies: true },
    ]
}

/// The README's model: a linear layer and softmax, with signature conventions.
pub fn mlp() -> Function {
    let mut f = Function::new("forward");
    let x = f.add_arg(t(&[-1, 784], DType::F32), Some("x"), input_attrs());
    let w = f.add_arg(t(&[256, 784], DType::F32), Some("fc1.weight"), param_attrs(&Init::Uniform { low: -0.0357, high: 0.0357 }));
    let b = f.add_arg(t(&[256], DType::F32), Some("fc1.bias"), param_attrs(&Init::Zeros));
    let mut bld = Builder::at_entry(&mut f);
    let h = bld.op(OpKind::Matmul, &[x, w], attrs! {"transpose_b" => true}).unwrap();
    let y = bld.op(OpKind::Add, &[h, b], Attrs::new()).unwrap();
    let logits = bld.op(OpKind::Relu, &[y], Attrs::new()).unwrap();
    bld.name(logits, "logits");
    let p = bld.op(OpKind::Softmax, &[logits], attrs! {"axis" => 1i64}).unwrap();
    bld.ret(&[logits, p]);
    set_output_names(&mut f, &["logits", "probs"]);
    f
}

/// One function using every registered op at least once.
pub fn every_op() -> Function {
    use OpKind::*;
    let mut f = Function::new("every_op");
    let x = f.add_arg(t(&[-1, 4], DType::F32), Some("x"), input_attrs());
    let v = f.add_arg(t(&[4], DType::F32), Some("v"), param_attrs(&Init::Normal { mean: 0.0, std: 0.02 }));
    let w = f.add_arg(t(&[3, 4], DType::F32), Some("w"), param_attrs(&Init::Constant(0.5)));
    let img = f.add_arg(t(&[-1, 1, 8, 8], DType::F32), Some("img"), input_attrs());
    let k = f.add_arg(t(&[2, 1, 3, 3], DType::F32), Some("k"), param_attrs(&Init::Ones));
    let emb = f.add_arg(t(&[10, 4], DType::F32), Some("emb"), param_attrs(&Init::Zeros));
    let tokens = f.add_arg(t(&[-1, 5], DType::I64), Some("tokens"), input_attrs());
    let labels = f.add_arg(t(&[-1], DType::I64), None, Attrs::new());
    let mut b = Builder::at_entry(&mut f);
    let mut out = Vec::new();
    for kind in [Neg, Abs, Exp, Log, Sqrt, Rsqrt, Tanh, Sigmoid, Relu] {
        out.push(b.op(kind, &[x], Attrs::new()).unwrap());
    }
    out.push(b.op(LeakyRelu, &[x], attrs! {"alpha" => 0.2}).unwrap());
    let xi = b.op(Cast, &[x], attrs! {"dtype" => DType::I64}).unwrap();
    out.push(b.op(Cast, &[xi], attrs! {"dtype" => DType::F32}).unwrap());
    for kind in [Add, Sub, Mul, Div, Pow, Maximum, Minimum] {
        out.push(b.op(kind, &[x, v], Attrs::new()).unwrap());
    }
    let m = b.op(Cmp, &[x, v], attrs! {"predicate" => "gt"}).unwrap();
    out.push(b.op(Select, &[m, x, v], Attrs::new()).unwrap());
    out.push(b.op(ReduceSum, &[x], attrs! {"axes" => Attr::ints(&[1])}).unwrap());
    out.push(b.op(ReduceMean, &[x], attrs! {"axes" => Attr::ints(&[0, 1])}).unwrap());
    out.push(b.op(ReduceMax, &[x], attrs! {"axes" => Attr::ints(&[1]), "keepdims" => true}).unwrap());
    out.push(b.op(Argmax, &[x], attrs! {"axis" => -1i64}).unwrap());
    out.push(b.op(Matmul, &[x, w], attrs! {"transpose_b" => true}).unwrap());
    let c = b.op(Conv2d, &[img, k], attrs! {"padding" => Attr::ints(&[1, 1])}).unwrap();
    out.push(b.op(Conv2dGradInput, &[c, k], attrs! {"padding" => Attr::ints(&[1, 1]), "input_size" => Attr::ints(&[8, 8])}).unwrap());
    out.push(b.op(Conv2dGradWeight, &[img, c], attrs! {"padding" => Attr::ints(&[1, 1]), "kernel" => Attr::ints(&[3, 3])}).unwrap());
    let pooled = b.op(MaxPool2d, &[c], attrs! {"kernel" => Attr::ints(&[2, 2]), "stride" => Attr::ints(&[2, 2])}).unwrap();
    out.push(pooled);
    out.push(b.op(MaxPool2dGrad, &[c, pooled], attrs! {"kernel" => Attr::ints(&[2, 2]), "stride" => Attr::ints(&[2, 2])}).unwrap());
    out.push(b.op(AvgPool2d, &[c], attrs! {"kernel" => Attr::ints(&[2, 2]), "stride" => Attr::ints(&[2, 2])}).unwrap());
    out.push(b.op(Softmax, &[x], attrs! {"axis" => 1i64}).unwrap());
    out.push(b.op(LogSoftmax, &[x], attrs! {"axis" => 1i64}).unwrap());
    out.push(b.op(Reshape, &[c], attrs! {"shape" => Attr::ints(&[-1, 128])}).unwrap());
    out.push(b.op(Transpose, &[w], attrs! {"perm" => Attr::ints(&[1, 0])}).unwrap());
    out.push(b.op(BroadcastTo, &[v], attrs! {"shape" => Attr::ints(&[-1, 4])}).unwrap());
    out.push(b.op(Concat, &[x, x, x], attrs! {"axis" => 1i64}).unwrap());
    out.push(b.op(Slice, &[x], attrs! {"axis" => 1i64, "start" => 1i64, "end" => 4i64, "step" => 2i64}).unwrap());
    out.push(b.op(Gather, &[emb, tokens], Attrs::new()).unwrap());
    out.push(b.op(OneHot, &[labels], attrs! {"num_classes" => 10i64}).unwrap());
    out.push(b.scalar(2.5, DType::F32));
    kernel_ops(&mut b, x, v, w, img, k, &mut out);
    b.ret(&out);
    f
}

fn op(kind: OpKind, args: &[usize]) -> Scalar {
    Scalar::Op { kind, attrs: Attrs::new(), args: args.to_vec() }
}

/// An empty all-parallel kernel over `sizes` (identity result map).
fn kernel(sizes: &[Option<u64>], dtype: DType) -> Generic {
    Generic {
        reduction: vec![false; sizes.len()],
        sizes: sizes.to_vec(),
        maps: Vec::new(),
        out_map: AffineMap::identity(sizes.len()),
        dtype,
        init: 0.0,
        padded: Vec::new(),
        pad: 0.0,
        fused: Vec::new(),
        body: Vec::new(),
        result: 0,
        extra: Vec::new(),
    }
}

/// The structured-kernel level: `kernel.generic` with broadcast maps, body
/// constants and i1 values, a permuted result, reductions to a rank-0 and
/// over a padded strided window; `kernel.matmul` and `kernel.conv2d` with
/// their bias and ReLU epilogue, and max-pooled; `kernel.conv2d_grad_weight`
/// from that pooled result, and the routed gradients from it and the
/// unpooled output. `kernel.yield` ends every body.
fn kernel_ops(b: &mut Builder<'_>, x: ValueId, v: ValueId, w: ValueId, img: ValueId, k: ValueId, out: &mut Vec<ValueId>) {
    // relu((x + v) * 0.5) spelled with cmp and select: f32 and i1 scalars.
    let mut g = kernel(&[None, Some(4)], DType::F32);
    g.maps = vec![AffineMap::identity(2), AffineMap::projection(2, &[1])];
    g.fused = vec!["dl.add".into(), "dl.mul".into(), "dl.relu".into()];
    g.body = vec![
        Scalar::Operand(0),
        Scalar::Operand(1),
        op(OpKind::Add, &[0, 1]),
        Scalar::Const { value: 0.5, dtype: DType::F32 },
        op(OpKind::Mul, &[2, 3]),
        Scalar::Const { value: 0.0, dtype: DType::F32 },
        Scalar::Op { kind: OpKind::Cmp, attrs: attrs! {"predicate" => "gt"}, args: vec![4, 5] },
        op(OpKind::Select, &[6, 4, 5]),
    ];
    g.result = 7;
    out.push(g.emit(b.func, &[x, v]).unwrap());
    // A transpose: the result map permutes the iteration dims.
    let mut g = kernel(&[Some(4), Some(3)], DType::F32);
    g.maps = vec![AffineMap::projection(2, &[1, 0])];
    g.out_map = AffineMap::identity(2);
    g.body = vec![Scalar::Operand(0)];
    out.push(g.emit(b.func, &[w]).unwrap());
    // sum(v * v): everything reduced, a rank-0 result `(d0) -> ()`.
    let mut g = kernel(&[Some(4)], DType::F32);
    g.reduction = vec![true];
    g.maps = vec![AffineMap::identity(1)];
    g.out_map = AffineMap::projection(1, &[]);
    g.body = vec![Scalar::Operand(0), Scalar::Acc, op(OpKind::Mul, &[0, 0]), op(OpKind::Add, &[1, 2])];
    g.result = 3;
    out.push(g.emit(b.func, &[v]).unwrap());
    // Max over windows of 3, stride 2, padding 1 along x's columns:
    // y[n, o] = max_j x[n, o * 2 + j - 1], -inf outside x.
    let mut g = kernel(&[None, Some(2), Some(3)], DType::F32);
    g.reduction = vec![false, false, true];
    let window = AffineExpr::constant(-1).plus_dim(1, 2).plus_dim(2, 1);
    g.maps = vec![AffineMap { dims: 3, results: vec![AffineExpr::dim(0), window] }];
    g.out_map = AffineMap::projection(3, &[0, 1]);
    g.init = f64::NEG_INFINITY;
    g.padded = vec![0];
    g.pad = f64::NEG_INFINITY;
    g.fused = vec!["dl.max_pool2d".into()];
    g.body = vec![Scalar::Operand(0), Scalar::Acc, op(OpKind::Maximum, &[1, 0])];
    g.result = 2;
    out.push(g.emit(b.func, &[x]).unwrap());
    // Several results from one loop nest: x + v, and (x > 0) written
    // transposed, of another element type.
    let mut g = kernel(&[None, Some(4)], DType::F32);
    g.maps = vec![AffineMap::identity(2), AffineMap::projection(2, &[1])];
    g.fused = vec!["dl.add".into(), "dl.cmp".into()];
    g.body = vec![
        Scalar::Operand(0),
        Scalar::Operand(1),
        op(OpKind::Add, &[0, 1]),
        Scalar::Const { value: 0.0, dtype: DType::F32 },
        Scalar::Op { kind: OpKind::Cmp, attrs: attrs! {"predicate" => "gt"}, args: vec![0, 3] },
    ];
    g.result = 2;
    g.extra = vec![Output { map: AffineMap::projection(2, &[1, 0]), dtype: DType::I1, node: 4 }];
    out.extend(g.emit_all(b.func, &[x, v]).unwrap());
    // The contractions with their epilogue: a bias per output channel, ReLU.
    let bias = b.op(OpKind::Slice, &[v], attrs! {"axis" => 0i64, "start" => 0i64, "end" => 3i64}).unwrap();
    out.push(b.op(OpKind::KernelMatmul, &[x, w, bias], attrs! {"transpose_b" => true, "relu" => true}).unwrap());
    out.push(b.op(OpKind::KernelMatmul, &[x, w], attrs! {"transpose_b" => true}).unwrap());
    let cbias = b.op(OpKind::Reshape, &[bias], attrs! {"shape" => Attr::ints(&[3, 1, 1])}).unwrap();
    let cbias = b.op(OpKind::Slice, &[cbias], attrs! {"axis" => 0i64, "start" => 0i64, "end" => 2i64}).unwrap();
    out.push(b.op(OpKind::KernelConv2d, &[img, k, cbias], attrs! {"padding" => Attr::ints(&[1, 1]), "relu" => true}).unwrap());
    out.push(b.op(OpKind::KernelConv2d, &[img, k], attrs! {"stride" => Attr::ints(&[2, 2]), "dilation" => Attr::ints(&[2, 1])}).unwrap());
    let nchw = b.op(OpKind::Reshape, &[cbias], attrs! {"shape" => Attr::ints(&[1, 2, 1, 1])}).unwrap();
    out.push(b.op(OpKind::KernelConv2d, &[img, k, nchw], attrs! {"stride" => Attr::ints(&[2, 2])}).unwrap());
    // A max-pooled convolution's weight gradient from the pooled gradient:
    // the padded 8x8 output pooled 2x2 is [?, 2, 4, 4].
    let pooled = b.op(OpKind::KernelConv2d, &[img, k, cbias], attrs! {"padding" => Attr::ints(&[1, 1]), "max_pool" => Attr::ints(&[2, 2, 2, 2, 0, 0])}).unwrap();
    out.push(b.op(OpKind::KernelConv2dGradWeight, &[img, pooled, k, cbias], attrs! {"padding" => Attr::ints(&[1, 1]), "relu" => true, "max_pool" => Attr::ints(&[2, 2, 2, 2, 0, 0])}).unwrap());
    out.push(b.op(OpKind::KernelConv2dGradWeight, &[img, pooled, k], attrs! {"padding" => Attr::ints(&[1, 1]), "max_pool" => Attr::ints(&[2, 2, 2, 2, 0, 0])}).unwrap());
    // The routed gradients from the unpooled output and that pooled gradient.
    let y = b.op(OpKind::KernelConv2d, &[img, k, cbias], attrs! {"padding" => Attr::ints(&[1, 1])}).unwrap();
    let routed = attrs! {"padding" => Attr::ints(&[1, 1]), "relu" => true, "max_pool" => Attr::ints(&[2, 2, 2, 2, 0, 0])};
    let mut gi = routed.clone();
    gi.insert("input_size".into(), Attr::ints(&[8, 8]));
    out.push(b.op(OpKind::KernelRoutedConv2dGradInput, &[y, pooled, k], gi).unwrap());
    let mut gw = routed;
    gw.insert("kernel".into(), Attr::ints(&[3, 3]));
    out.push(b.op(OpKind::KernelRoutedConv2dGradWeight, &[img, y, pooled], gw).unwrap());
}

/// Constants and function attributes at the edges of number and string syntax.
pub fn attributes() -> Function {
    let mut f = Function::new("attributes");
    let floats = vec![0.1f32 as f64, 1e-8, 1e21, -0.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 3.0];
    let mut b = Builder::at_entry(&mut f);
    let consts = [
        DenseAttr { ty: tt(&[2, 4], DType::F32), data: DenseData::Float(floats.clone()) },
        DenseAttr { ty: tt(&[8], DType::F64), data: DenseData::Float(floats) },
        DenseAttr { ty: tt(&[2, 2], DType::F64), data: DenseData::Float(vec![f64::from_bits(0x7FF8_0000_0000_0001), 1.0, 2.0, 3.0]) },
        DenseAttr { ty: tt(&[3], DType::I32), data: DenseData::Int(vec![i32::MIN as i64, 0, i32::MAX as i64]) },
        DenseAttr { ty: tt(&[2], DType::I64), data: DenseData::Int(vec![i64::MIN, i64::MAX]) },
        DenseAttr { ty: tt(&[2, 1], DType::I1), data: DenseData::Bool(vec![true, false]) },
        DenseAttr { ty: tt(&[4, 5], DType::F32), data: DenseData::Float(vec![0.25]) },
        DenseAttr { ty: tt(&[], DType::I1), data: DenseData::Bool(vec![true]) },
        DenseAttr { ty: tt(&[0], DType::F32), data: DenseData::Float(vec![]) },
        DenseAttr { ty: tt(&[2, 0, 3], DType::I64), data: DenseData::Int(vec![]) },
    ];
    let mut outs = Vec::new();
    for c in consts {
        outs.push(b.constant(c).unwrap());
    }
    b.ret(&outs);
    f.attrs = attrs! {
        "tiny" => 1e-8, "huge" => 1e21, "negzero" => -0.0, "nan" => f64::NAN, "inf" => f64::NEG_INFINITY,
        "int" => -1i64, "min" => i64::MIN, "flag" => false, "text" => "quote\" back\\ nl\n tab\t bell\x07 del\x7f é ✓",
        "quoted-key" => 1i64, "dtype" => DType::I1
    };
    f.attrs.insert("shape".into(), Attr::Type(t(&[-1, 3], DType::F64)));
    f.attrs.insert("index".into(), Attr::Type(Type::Index));
    f.attrs.insert("nested".into(), Attr::Array(vec![Attr::Array(vec![]), Attr::Dict(Attrs::new()), Attr::Dict(attrs! {"a b" => 2.5})]));
    f.attrs.insert("dense".into(), Attr::Dense(DenseAttr { ty: tt(&[2], DType::F32), data: DenseData::Float(vec![1.5, -2.0]) }));
    f
}

/// No arguments, no results, a symbol name that needs quotes.
pub fn empty_fn() -> Function {
    let mut f = Function::new("no args, no results");
    Builder::at_entry(&mut f).ret(&[]);
    f
}

/// Nested regions with labeled blocks, block arguments, unnamed values and
/// uses of values from enclosing scopes.
pub fn regions() -> Function {
    let mut f = Function::new("regions");
    let x = f.add_arg(t(&[4], DType::F32), None, Attrs::new());
    let y = f.add_arg(t(&[4], DType::F32), Some("y"), Attrs::new());
    let ty = t(&[4], DType::F32);
    // Region 0: two blocks; region 1: one block whose op has its own region.
    let b0 = f.new_block();
    let a0 = f.add_block_arg(b0, ty.clone(), Some("a"));
    let s = f.append_op(b0, OpKind::Add, vec![a0, x], Attrs::new(), vec![ty.clone()], vec![]);
    let s = f.op(s).results[0];
    f.append_op(b0, OpKind::Neg, vec![s], Attrs::new(), vec![ty.clone()], vec![]);
    let b1 = f.new_block();
    f.add_block_arg(b1, Type::Index, None);
    f.add_block_arg(b1, Type::Scalar(DType::F64), Some("s"));
    f.append_op(b1, OpKind::Relu, vec![y], Attrs::new(), vec![ty.clone()], vec![]);
    let inner = f.new_block();
    let n = f.add_block_arg(inner, ty.clone(), None);
    f.append_op(inner, OpKind::Mul, vec![n, y], Attrs::new(), vec![ty.clone()], vec![]);
    let b2 = f.new_block();
    let outer = f.append_op(b2, OpKind::Exp, vec![x], Attrs::new(), vec![ty.clone()], vec![Region { blocks: vec![inner] }]);
    let outer = f.op(outer).results[0];
    f.set_name(outer, "inner.exp");
    let op = f.append_op(f.entry(), OpKind::Tanh, vec![x], Attrs::new(), vec![ty.clone()], vec![Region { blocks: vec![b0, b1] }, Region { blocks: vec![b2] }]);
    let r = f.op(op).results[0];
    let mut b = Builder::at_entry(&mut f);
    let z = b.op(OpKind::Sub, &[r, y], Attrs::new()).unwrap();
    b.ret(&[z]);
    f
}

/// Ops with several results (none is registered yet, so this does not verify):
/// one printed as a group `%0:2`, one as a list `%p, %q` because its second
/// result has its own name.
pub fn multi_result() -> Function {
    let mut f = Function::new("multi");
    let x = f.add_arg(t(&[4], DType::F32), Some("x"), Attrs::new());
    let ty = t(&[4], DType::F32);
    let e = f.entry();
    let g = f.append_op(e, OpKind::Neg, vec![x], Attrs::new(), vec![ty.clone(), ty.clone()], vec![]);
    let g = f.op(g).results.clone();
    let h = f.append_op(e, OpKind::Add, vec![g[1], g[0]], Attrs::new(), vec![ty.clone(), ty.clone(), ty.clone()], vec![]);
    let h = f.op(h).results.clone();
    f.set_name(h[0], "p");
    f.set_name(h[2], "q");
    let k = f.append_op(e, OpKind::Abs, vec![h[2]], Attrs::new(), vec![ty.clone(), ty.clone()], vec![]);
    let k = f.op(k).results.clone();
    f.set_name(k[0], "named.group");
    f.append_op(e, OpKind::Return, vec![h[1], k[1]], Attrs::new(), vec![], vec![]);
    f.result_types = vec![ty.clone(), ty];
    f
}

/// Asserts that two modules are the same up to value and op ids.
pub fn assert_same(a: &Module, b: &Module) {
    assert_eq!(a.functions.len(), b.functions.len(), "function count");
    for (f, g) in a.functions.iter().zip(&b.functions) {
        let ctx = format!("@{}", f.name);
        assert_eq!(f.name, g.name);
        assert_eq!(f.result_types, g.result_types, "{ctx}: result types");
        assert_eq!(f.arg_attrs.len(), g.arg_attrs.len(), "{ctx}: arg attrs");
        for (x, y) in f.arg_attrs.iter().zip(&g.arg_attrs) {
            assert!(dict_eq(x, y), "{ctx}: arg attrs {x:?} vs {y:?}");
        }
        assert!(dict_eq(&f.attrs, &g.attrs), "{ctx}: function attrs {:?} vs {:?}", f.attrs, g.attrs);
        let mut map = HashMap::new();
        same_region(f, &f.body, g, &g.body, &mut map, &ctx);
    }
}

fn same_value(f: &Function, v: ValueId, g: &Function, w: ValueId, map: &mut HashMap<ValueId, ValueId>, ctx: &str) {
    assert_eq!(f.ty(v), g.ty(w), "{ctx}: value type");
    assert_eq!(f.value(v).name, g.value(w).name, "{ctx}: value name");
    map.insert(v, w);
}

fn same_region(f: &Function, r: &Region, g: &Function, s: &Region, map: &mut HashMap<ValueId, ValueId>, ctx: &str) {
    assert_eq!(r.blocks.len(), s.blocks.len(), "{ctx}: block count");
    for (&b, &c) in r.blocks.iter().zip(&s.blocks) {
        let (bd, cd) = (f.block(b), g.block(c));
        assert_eq!(bd.args.len(), cd.args.len(), "{ctx}: block arg count");
        for (&v, &w) in bd.args.iter().zip(&cd.args) {
            same_value(f, v, g, w, map, ctx);
        }
        assert_eq!(bd.ops.len(), cd.ops.len(), "{ctx}: op count");
        for (&o, &p) in bd.ops.iter().zip(&cd.ops) {
            let (x, y) = (f.op(o), g.op(p));
            let ctx = format!("{ctx}, {}", x.kind.name());
            assert_eq!(x.kind, y.kind, "{ctx}: kind");
            let mapped: Vec<Option<ValueId>> = x.operands.iter().map(|v| map.get(v).copied()).collect();
            assert_eq!(mapped, y.operands.iter().map(|&w| Some(w)).collect::<Vec<_>>(), "{ctx}: operands");
            assert!(dict_eq(&x.attrs, &y.attrs), "{ctx}: attrs {:?} vs {:?}", x.attrs, y.attrs);
            assert_eq!(x.regions.len(), y.regions.len(), "{ctx}: region count");
            for (r2, s2) in x.regions.iter().zip(&y.regions) {
                same_region(f, r2, g, s2, map, &ctx);
            }
            assert_eq!(x.results.len(), y.results.len(), "{ctx}: result count");
            for (&v, &w) in x.results.iter().zip(&y.results) {
                same_value(f, v, g, w, map, &ctx);
            }
        }
    }
}

fn dict_eq(a: &Attrs, b: &Attrs) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|((k, x), (l, y))| k == l && attr_eq(x, y))
}

/// Attribute equality with floats compared bitwise; f32 tensor elements are
/// compared as the f32 they denote.
pub fn attr_eq(a: &Attr, b: &Attr) -> bool {
    match (a, b) {
        (Attr::Float(x), Attr::Float(y)) => x.to_bits() == y.to_bits(),
        (Attr::Array(x), Attr::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| attr_eq(p, q)),
        (Attr::Dict(x), Attr::Dict(y)) => dict_eq(x, y),
        (Attr::Dense(x), Attr::Dense(y)) => {
            x.ty == y.ty
                && match (&x.data, &y.data) {
                    (DenseData::Float(p), DenseData::Float(q)) => {
                        let bits = |v: &f64| if x.ty.dtype == DType::F32 { (*v as f32).to_bits() as u64 } else { v.to_bits() };
                        p.len() == q.len() && p.iter().zip(q).all(|(u, v)| bits(u) == bits(v))
                    }
                    (p, q) => p == q,
                }
        }
        (x, y) => x == y,
    }
}
