//! Every op of the registry runs on the interpreter. The inputs come from one
//! exhaustive `match` on `OpKind`, so a new op does not compile until it has
//! a case here too. `run` itself checks each result against the type the
//! registry's shape rule declares, with the batch size substituted.
//!
//! The kernel-level ops also get their values checked here: `kernel.generic`
//! against hand-computed results (broadcast operands, body constants,
//! reductions with an `init`, padded windows, permuted results, i1 values in
//! a body), `kernel.matmul` / `kernel.conv2d` by hand and against
//! `dl.matmul` / `dl.conv2d` + `dl.add` + `dl.relu` on the interpreter.

mod common;

use common::{assert_close, f32t, f64t, i64t, ty};
use dlc_backends::{Tensor, eval_op, run};
use dlc_ir::kernel::{Generic, Scalar};
use dlc_ir::{AffineExpr, AffineMap, Attr, Attrs, Builder, DType, DenseAttr, DenseData, Function, OpKind, TensorType, ValueId, attrs};
use std::collections::HashSet;

/// `y[i, j] = (x[i, j] + v[j]) * 2` over `[?, 3]`: an operand broadcast by
/// its map, a `kernel.constant` and `kernel.yield` in the body.
fn add_scale_kernel() -> Generic {
    Generic {
        reduction: vec![false, false],
        sizes: vec![None, Some(3)],
        maps: vec![AffineMap::identity(2), AffineMap::projection(2, &[1])],
        out_map: AffineMap::identity(2),
        dtype: DType::F32,
        init: 0.0,
        padded: Vec::new(),
        pad: 0.0,
        fused: vec!["dl.add".into(), "dl.mul".into()],
        body: vec![
            Scalar::Operand(0),
            Scalar::Operand(1),
            Scalar::Op { kind: OpKind::Add, attrs: Attrs::new(), args: vec![0, 1] },
            Scalar::Const { value: 2.0, dtype: DType::F32 },
            Scalar::Op { kind: OpKind::Mul, attrs: Attrs::new(), args: vec![2, 3] },
        ],
        result: 4,
        extra: Vec::new(),
    }
}

/// Attributes and inputs for a small run of `kind`; input `?` dims are the
/// batch (2). `None` for the ops that only exist inside a `kernel.generic`
/// body: `kernel.yield` has no result and `kernel.constant` a scalar one, so
/// neither can stand alone in a function; the `kernel.generic` case's body
/// holds both, and [`every_registry_op_runs`] checks that they ran there.
fn example(kind: OpKind) -> Option<(Attrs, Vec<(TensorType, Tensor)>)> {
    let batch = |shape: &[i64], dtype: DType| ty(shape, dtype);
    let m = || (batch(&[-1, 3], DType::F32), f32t(&[2, 3], &[0.5, -1.0, 2.0, 0.0, 3.0, -4.0]));
    let pos = || (batch(&[-1, 3], DType::F64), f64t(&[2, 3], &[0.5, 1.0, 2.0, 4.0, 3.0, 9.0]));
    let img = || (batch(&[-1, 2, 4, 4], DType::F32), f32t(&[2, 2, 4, 4], &(0..64).map(|v| v as f32).collect::<Vec<_>>()));
    let none = Attrs::new;
    use OpKind as K;
    Some(match kind {
        K::Neg | K::Abs | K::Exp | K::Tanh | K::Sigmoid | K::Relu | K::LeakyRelu => (none(), vec![m()]),
        K::Log | K::Sqrt | K::Rsqrt => (none(), vec![pos()]),
        K::Cast => (attrs! {"dtype" => DType::I32}, vec![m()]),
        K::Add | K::Sub | K::Mul | K::Div | K::Maximum | K::Minimum => {
            (none(), vec![m(), (batch(&[3], DType::F32), f32t(&[3], &[1.0, 2.0, 4.0]))])
        }
        K::Pow => (none(), vec![pos(), (batch(&[], DType::F64), f64t(&[], &[0.5]))]),
        K::Cmp => (attrs! {"predicate" => "le"}, vec![m(), m()]),
        K::Select => {
            let c = (batch(&[-1, 1], DType::I1), Tensor::from_bool(&[2, 1], vec![true, false]).unwrap());
            (none(), vec![c, m(), m()])
        }
        K::ReduceSum | K::ReduceMean | K::ReduceMax => (attrs! {"axes" => Attr::ints(&[0])}, vec![m()]),
        K::Argmax => (attrs! {"axis" => -1i64}, vec![m()]),
        K::Matmul => (attrs! {"transpose_b" => true}, vec![m(), (batch(&[4, 3], DType::F32), f32t(&[4, 3], &[0.25; 12]))]),
        K::Conv2d => {
            let w = (batch(&[3, 2, 3, 3], DType::F32), f32t(&[3, 2, 3, 3], &[0.1; 54]));
            (attrs! {"padding" => Attr::ints(&[1, 1])}, vec![img(), w])
        }
        // The gradients of that convolution: g is its [?, 3, 4, 4] output.
        K::Conv2dGradInput | K::Conv2dGradWeight => {
            let g = (batch(&[-1, 3, 4, 4], DType::F32), f32t(&[2, 3, 4, 4], &(0..96).map(|v| (v % 7) as f32 - 3.0).collect::<Vec<_>>()));
            if kind == K::Conv2dGradInput {
                let w = (batch(&[3, 2, 3, 3], DType::F32), f32t(&[3, 2, 3, 3], &[0.1; 54]));
                (attrs! {"padding" => Attr::ints(&[1, 1]), "input_size" => Attr::ints(&[4, 4])}, vec![g, w])
            } else {
                (attrs! {"padding" => Attr::ints(&[1, 1]), "kernel" => Attr::ints(&[3, 3])}, vec![img(), g])
            }
        }
        K::MaxPool2d | K::AvgPool2d => (attrs! {"kernel" => Attr::ints(&[2, 2]), "stride" => Attr::ints(&[2, 2])}, vec![img()]),
        // The gradient of that max-pooling: g is its [?, 2, 2, 2] output.
        K::MaxPool2dGrad => {
            let g = (batch(&[-1, 2, 2, 2], DType::F32), f32t(&[2, 2, 2, 2], &(0..16).map(|v| v as f32 - 8.0).collect::<Vec<_>>()));
            (attrs! {"kernel" => Attr::ints(&[2, 2]), "stride" => Attr::ints(&[2, 2])}, vec![img(), g])
        }
        K::Softmax | K::LogSoftmax => (attrs! {"axis" => 1i64}, vec![m()]),
        K::Reshape => (attrs! {"shape" => Attr::ints(&[-1, 32])}, vec![img()]),
        K::Transpose => (attrs! {"perm" => Attr::ints(&[1, 0])}, vec![m()]),
        K::BroadcastTo => (attrs! {"shape" => Attr::ints(&[-1, 3])}, vec![(batch(&[3], DType::F32), f32t(&[3], &[1.0, 2.0, 3.0])), m()]),
        K::Concat => (attrs! {"axis" => 1i64}, vec![m(), m()]),
        K::Slice => (attrs! {"axis" => 1i64, "start" => 1i64, "end" => 3i64}, vec![m()]),
        K::Gather => {
            let table = (batch(&[5, 2], DType::F32), f32t(&[5, 2], &[0.0; 10]));
            (none(), vec![table, (batch(&[-1, 2], DType::I64), i64t(&[2, 2], &[4, 0, 1, 1]))])
        }
        K::OneHot => (attrs! {"num_classes" => 4i64}, vec![(batch(&[-1], DType::I64), i64t(&[2], &[3, 0]))]),
        K::Constant => {
            let value = DenseAttr { ty: TensorType::fixed(&[2], DType::I32), data: DenseData::Int(vec![7, -1]) };
            (attrs! {"value" => Attr::Dense(value)}, vec![])
        }
        K::Return => (none(), vec![m()]),
        // Built with `Generic::emit` below: these attributes plus a body.
        K::Generic => (add_scale_kernel().attrs(), vec![m(), (batch(&[3], DType::F32), f32t(&[3], &[1.0, 2.0, 4.0]))]),
        K::Yield | K::ScalarConstant => return None,
        K::KernelMatmul => {
            let w = (batch(&[4, 3], DType::F32), f32t(&[4, 3], &[0.25; 12]));
            let bias = (batch(&[4], DType::F32), f32t(&[4], &[1.0, -1.0, 0.5, -0.5]));
            (attrs! {"transpose_b" => true, "relu" => true}, vec![m(), w, bias])
        }
        K::KernelConv2d => {
            let w = (batch(&[3, 2, 3, 3], DType::F32), f32t(&[3, 2, 3, 3], &[0.1; 54]));
            let bias = (batch(&[3, 1, 1], DType::F32), f32t(&[3, 1, 1], &[-1.0, 0.0, 1.0]));
            (attrs! {"padding" => Attr::ints(&[1, 1]), "relu" => true}, vec![img(), w, bias])
        }
        // That convolution max-pooled 2x2: g is the pooled [?, 3, 2, 2] gradient.
        K::KernelConv2dGradWeight => {
            let g = (batch(&[-1, 3, 2, 2], DType::F32), f32t(&[2, 3, 2, 2], &(0..24).map(|v| (v % 5) as f32 - 2.0).collect::<Vec<_>>()));
            let w = (batch(&[3, 2, 3, 3], DType::F32), f32t(&[3, 2, 3, 3], &(0..54).map(|v| (v % 7) as f32 * 0.1 - 0.3).collect::<Vec<_>>()));
            let bias = (batch(&[3, 1, 1], DType::F32), f32t(&[3, 1, 1], &[-1.0, 0.0, 1.0]));
            (attrs! {"padding" => Attr::ints(&[1, 1]), "relu" => true, "max_pool" => Attr::ints(&[2, 2, 2, 2, 0, 0])}, vec![img(), g, w, bias])
        }
        // The convolution's [?, 3, 4, 4] output y, max-pooled 2x2: g is the
        // pooled [?, 3, 2, 2] gradient.
        K::KernelRoutedConv2dGradInput | K::KernelRoutedConv2dGradWeight => {
            let y = (batch(&[-1, 3, 4, 4], DType::F32), f32t(&[2, 3, 4, 4], &(0..96).map(|v| ((v * 37) % 11) as f32 - 5.0).collect::<Vec<_>>()));
            let g = (batch(&[-1, 3, 2, 2], DType::F32), f32t(&[2, 3, 2, 2], &(0..24).map(|v| (v % 5) as f32 - 2.0).collect::<Vec<_>>()));
            let pool = Attr::ints(&[2, 2, 2, 2, 0, 0]);
            if kind == K::KernelRoutedConv2dGradInput {
                let w = (batch(&[3, 2, 3, 3], DType::F32), f32t(&[3, 2, 3, 3], &(0..54).map(|v| (v % 7) as f32 * 0.1 - 0.3).collect::<Vec<_>>()));
                (attrs! {"padding" => Attr::ints(&[1, 1]), "input_size" => Attr::ints(&[4, 4]), "relu" => true, "max_pool" => pool}, vec![y, g, w])
            } else {
                (attrs! {"padding" => Attr::ints(&[1, 1]), "kernel" => Attr::ints(&[3, 3]), "relu" => true, "max_pool" => pool}, vec![img(), y, g])
            }
        }
    })
}

#[test]
fn every_registry_op_runs() {
    let mut ran = HashSet::new();
    for &kind in OpKind::ALL {
        let Some((attrs, inputs)) = example(kind) else { continue };
        let mut f = Function::new(kind.name().replace('.', "_"));
        let args: Vec<_> = inputs.iter().enumerate().map(|(i, (t, _))| f.add_arg(t.clone().into(), Some(&format!("a{i}")), Attrs::new())).collect();
        let mut b = Builder::at_entry(&mut f);
        let result = match kind {
            OpKind::Return => args[0],
            // broadcast_to's second input only binds the batch.
            OpKind::BroadcastTo => b.op(kind, &args[..1], attrs).unwrap(),
            OpKind::Generic => {
                assert_eq!(attrs, add_scale_kernel().attrs());
                add_scale_kernel().emit(b.func, &args).unwrap()
            }
            _ => b.op(kind, &args, attrs).unwrap_or_else(|e| panic!("{e}")),
        };
        b.ret(&[result]);
        let values: Vec<Tensor> = inputs.into_iter().map(|(_, v)| v).collect();
        let out = run(&f, &values).unwrap_or_else(|e| panic!("{}: {e}", kind.name()));
        assert_eq!(out.len(), 1, "{}", kind.name());
        // The declared type with ? = 2, independently of run's own check.
        let declared = f.result_types[0].as_tensor().unwrap();
        let want: Vec<usize> = declared.shape.iter().map(|d| d.as_static().map_or(2, |n| n as usize)).collect();
        assert_eq!((out[0].dtype(), out[0].shape()), (declared.dtype, want.as_slice()), "{}", kind.name());
        dlc_ir::verify_function(&f).unwrap_or_else(|e| panic!("{}: {e:?}", kind.name()));
        ran.extend(f.walk().into_iter().map(|o| f.op(o).kind));
    }
    let missing: Vec<&str> = OpKind::ALL.iter().filter(|k| !ran.contains(k)).map(|k| k.name()).collect();
    assert!(missing.is_empty(), "ops no example ran, at the top level or in a kernel body: {missing:?}");
}

#[test]
fn constants_expand_splats() {
    let mut f = Function::new("consts");
    let mut b = Builder::at_entry(&mut f);
    let s = b.constant(DenseAttr::splat_f(TensorType::fixed(&[2, 2], DType::F32), 1.5)).unwrap();
    let t = b.scalar(1.0, DType::I1);
    let d = b
        .constant(DenseAttr { ty: TensorType::fixed(&[3], DType::F64), data: DenseData::Float(vec![1.0, -2.0, 0.25]) })
        .unwrap();
    b.ret(&[s, t, d]);
    let out = run::<Tensor>(&f, &[]).unwrap();
    assert_eq!(out[0], f32t(&[2, 2], &[1.5; 4]));
    assert_eq!(out[1], Tensor::from_bool(&[], vec![true]).unwrap());
    assert_eq!(out[2], f64t(&[3], &[1.0, -2.0, 0.25]));
}

/// A function of arguments typed `types` returning `g` applied to them; it
/// must verify (the region check included).
fn generic_fn(g: &Generic, types: &[TensorType]) -> Function {
    let mut f = Function::new("kernel");
    let args: Vec<ValueId> = types.iter().enumerate().map(|(i, t)| f.add_arg(t.clone().into(), Some(&format!("a{i}")), Attrs::new())).collect();
    let y = g.emit(&mut f, &args).unwrap_or_else(|e| panic!("emitting {g:?}: {e}"));
    Builder::at_entry(&mut f).ret(&[y]);
    dlc_ir::verify_function(&f).unwrap_or_else(|e| panic!("{e:?}\n{}", dlc_ir::print_function(&f)));
    f
}

fn run_generic(g: &Generic, args: &[(TensorType, Tensor)]) -> Tensor {
    let types: Vec<TensorType> = args.iter().map(|(t, _)| t.clone()).collect();
    let values: Vec<Tensor> = args.iter().map(|(_, v)| v.clone()).collect();
    run(&generic_fn(g, &types), &values).unwrap_or_else(|e| panic!("{e}")).remove(0)
}

fn op(kind: OpKind, args: &[usize]) -> Scalar {
    Scalar::Op { kind, attrs: Attrs::new(), args: args.to_vec() }
}

/// `c0 * d_k0 + c1 * d_k1 + … + constant`.
fn affine(terms: &[(usize, i64)], constant: i64) -> AffineExpr {
    terms.iter().fold(AffineExpr::constant(constant), |e, &(k, c)| e.plus_dim(k, c))
}

#[test]
fn generic_kernels_broadcast_operands_and_read_body_constants() {
    let x = f32t(&[2, 3], &[0.5, -1.0, 2.0, 0.0, 3.0, -4.0]);
    let v = f32t(&[3], &[1.0, 2.0, 4.0]);
    let y = run_generic(&add_scale_kernel(), &[(ty(&[-1, 3], DType::F32), x), (ty(&[3], DType::F32), v)]);
    assert_eq!(y, f32t(&[2, 3], &[3.0, 2.0, 12.0, 2.0, 10.0, 0.0]));
}

/// Max over a window of 3, stride 2, padding 1 on each side: `y[n, o] =
/// max_k x[n, 2o + k - 1]`, the pooling form, padded with -inf.
#[test]
fn generic_kernels_reduce_padded_windows() {
    let g = Generic {
        reduction: vec![false, false, true],
        sizes: vec![None, Some(3), Some(3)],
        maps: vec![AffineMap { dims: 3, results: vec![AffineExpr::dim(0), affine(&[(1, 2), (2, 1)], -1)] }],
        out_map: AffineMap::projection(3, &[0, 1]),
        dtype: DType::F64,
        init: f64::NEG_INFINITY,
        padded: vec![0],
        pad: f64::NEG_INFINITY,
        fused: Vec::new(),
        body: vec![Scalar::Operand(0), Scalar::Acc, op(OpKind::Maximum, &[1, 0])],
        result: 2,
        extra: Vec::new(),
    };
    let x = f64t(&[2, 5], &[1.0, 5.0, 2.0, -3.0, 4.0, -1.0, -2.0, -3.0, -4.0, -5.0]);
    let y = run_generic(&g, &[(ty(&[-1, 5], DType::F64), x.clone())]);
    assert_eq!(y, f64t(&[2, 3], &[5.0, 5.0, 4.0, -1.0, -2.0, -4.0]));
    // The same reads unpadded leave the operand: an error, not a read of junk.
    let unpadded = Generic { padded: Vec::new(), sizes: vec![Some(2), Some(3), Some(3)], ..g.clone() };
    let mut f = Function::new("f");
    let a = f.add_arg(ty(&[2, 5], DType::F64).into(), None, Attrs::new());
    let err = unpadded.emit(&mut f, &[a]).unwrap_err();
    assert_eq!(err, "operand #0 tensor<2x5xf64>: its map's result 1 (d1 * 2 + d2 - 1) ranges over [-1, 5], outside [0, 5)");
    // Built without the shape rule, the interpreter refuses it too.
    let mut f = generic_fn(&g, &[ty(&[-1, 5], DType::F64)]);
    let o = f.body_ops()[0];
    f.op_mut(o).attrs.remove("padded");
    let err = run(&f, &[x]).unwrap_err().to_string();
    assert!(err.contains("kernel.generic") && err.contains("outside dim 1 of size 5"), "{err}");
}

/// `y[k, i] = init + sum_j x[i, j, k]^2`: a reduction dim in the middle, a
/// result map that permutes the parallel dims, a nonzero `init`.
#[test]
fn generic_kernels_reduce_into_permuted_results_from_init() {
    let g = Generic {
        reduction: vec![false, true, false],
        sizes: vec![Some(2), Some(3), Some(2)],
        maps: vec![AffineMap::identity(3)],
        out_map: AffineMap::projection(3, &[2, 0]),
        dtype: DType::F32,
        init: 1.0,
        padded: Vec::new(),
        pad: 0.0,
        fused: Vec::new(),
        body: vec![Scalar::Operand(0), Scalar::Acc, op(OpKind::Mul, &[0, 0]), op(OpKind::Add, &[1, 2])],
        result: 3,
        extra: Vec::new(),
    };
    let x: Vec<f32> = (0..12).map(|v| v as f32).collect();
    let y = run_generic(&g, &[(ty(&[2, 3, 2], DType::F32), f32t(&[2, 3, 2], &x))]);
    // i = 0: rows (0, 2, 4) and (1, 3, 5); i = 1: (6, 8, 10) and (7, 9, 11).
    assert_eq!(y, f32t(&[2, 2], &[21.0, 201.0, 36.0, 252.0]));
}

/// ReLU spelled with an i1 compare and a select, an offset read
/// `x[i, j + 1]` (a slice), and a body that ignores its operands.
#[test]
fn generic_kernels_compute_with_i1_offsets_and_constants() {
    let relu = Generic {
        reduction: vec![false, false],
        sizes: vec![Some(2), Some(2)],
        maps: vec![AffineMap { dims: 2, results: vec![AffineExpr::dim(0), affine(&[(1, 1)], 1)] }],
        out_map: AffineMap::identity(2),
        dtype: DType::F32,
        init: 0.0,
        padded: Vec::new(),
        pad: 0.0,
        fused: Vec::new(),
        body: vec![
            Scalar::Operand(0),
            Scalar::Const { value: 0.0, dtype: DType::F32 },
            Scalar::Op { kind: OpKind::Cmp, attrs: attrs! {"predicate" => "gt"}, args: vec![0, 1] },
            op(OpKind::Select, &[2, 0, 1]),
        ],
        result: 3,
        extra: Vec::new(),
    };
    let x = f32t(&[2, 3], &[9.0, -1.0, 2.0, 9.0, 3.0, -4.0]);
    assert_eq!(run_generic(&relu, &[(ty(&[2, 3], DType::F32), x)]), f32t(&[2, 2], &[0.0, 2.0, 3.0, 0.0]));
    let fill = Generic {
        maps: Vec::new(),
        sizes: vec![Some(2), Some(3)],
        dtype: DType::I64,
        body: vec![Scalar::Const { value: 7.0, dtype: DType::I64 }],
        result: 0,
        extra: Vec::new(),
        ..relu
    };
    assert_eq!(run_generic(&fill, &[]), i64t(&[2, 3], &[7; 6]));
}

/// The contraction kernels' epilogue is `relu(y + bias)`, each part optional.
#[test]
fn kernel_matmul_adds_the_bias_then_applies_relu() {
    // x @ w = [[5, 0], [-5, -5]]; + [-1, 3] = [[4, 3], [-6, -2]].
    let x = f32t(&[2, 2], &[1.0, 2.0, 3.0, -4.0]);
    let w = f32t(&[2, 2], &[1.0, -1.0, 2.0, 0.5]);
    let bias = f32t(&[2], &[-1.0, 3.0]);
    let mm = |a: Attrs, ins: &[&Tensor]| eval_op(OpKind::KernelMatmul, &a, ins, None).unwrap();
    assert_eq!(mm(Attrs::new(), &[&x, &w]), f32t(&[2, 2], &[5.0, 0.0, -5.0, -5.0]));
    assert_eq!(mm(Attrs::new(), &[&x, &w, &bias]), f32t(&[2, 2], &[4.0, 3.0, -6.0, -2.0]));
    assert_eq!(mm(attrs! {"relu" => true}, &[&x, &w, &bias]), f32t(&[2, 2], &[4.0, 3.0, 0.0, 0.0]));
    assert_eq!(mm(attrs! {"relu" => true}, &[&x, &w]), f32t(&[2, 2], &[5.0, 0.0, 0.0, 0.0]));
    // transpose_b reads w as [n, k], the layout of a linear layer's weight.
    let wt = f32t(&[2, 2], &[1.0, 2.0, -1.0, 0.5]);
    assert_eq!(mm(attrs! {"transpose_b" => true, "relu" => true}, &[&x, &wt, &bias]), f32t(&[2, 2], &[4.0, 3.0, 0.0, 0.0]));
}

#[test]
fn kernel_conv2d_adds_the_channel_bias_then_applies_relu() {
    // x = 1..9 as [1, 1, 3, 3]; channel 0 sums each 2x2 window, channel 1
    // is x[i, j] - x[i + 1, j + 1] = -4 everywhere.
    let x = f32t(&[1, 1, 3, 3], &(1..=9).map(|v| v as f32).collect::<Vec<_>>());
    let w = f32t(&[2, 1, 2, 2], &[1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, -1.0]);
    let conv = |a: Attrs, ins: &[&Tensor]| eval_op(OpKind::KernelConv2d, &a, ins, None).unwrap();
    assert_eq!(conv(Attrs::new(), &[&x, &w]), f32t(&[1, 2, 2, 2], &[12.0, 16.0, 24.0, 28.0, -4.0, -4.0, -4.0, -4.0]));
    for bias in [f32t(&[2, 1, 1], &[-20.0, 5.0]), f32t(&[1, 2, 1, 1], &[-20.0, 5.0])] {
        assert_eq!(conv(Attrs::new(), &[&x, &w, &bias]), f32t(&[1, 2, 2, 2], &[-8.0, -4.0, 4.0, 8.0, 1.0, 1.0, 1.0, 1.0]));
        assert_eq!(conv(attrs! {"relu" => true}, &[&x, &w, &bias]), f32t(&[1, 2, 2, 2], &[0.0, 0.0, 4.0, 8.0, 1.0, 1.0, 1.0, 1.0]));
    }
}

#[test]
fn kernel_conv2d_grad_weight_routes_the_pooled_gradient_through_the_recomputed_convolution() {
    // x = 1..9 as [1, 1, 3, 3] and w picks the window's top-left tap, so the
    // convolution is [[1, 2], [4, 5]]; one 2x2 window, whose argmax is the 5
    // at (1, 1). Its gradient 3 lands there, so dw[a, b] = 3 · x[1 + a, 1 + b].
    let x = f32t(&[1, 1, 3, 3], &(1..=9).map(|v| v as f32).collect::<Vec<_>>());
    let w = f32t(&[1, 1, 2, 2], &[1.0, 0.0, 0.0, 0.0]);
    let g = f32t(&[1, 1, 1, 1], &[3.0]);
    let pool = Attr::ints(&[2, 2, 2, 2, 0, 0]);
    let dw = |a: Attrs, ins: &[&Tensor]| eval_op(OpKind::KernelConv2dGradWeight, &a, ins, None).unwrap();
    let routed = f32t(&[1, 1, 2, 2], &[15.0, 18.0, 24.0, 27.0]);
    assert_eq!(dw(attrs! {"max_pool" => pool.clone()}, &[&x, &g, &w]), routed);
    // With ReLU's mask the gradient passes where the biased maximum is
    // positive (5 - 4 = 1) and not where it is not (5 - 5 = 0).
    let b = |v: f32| f32t(&[1, 1, 1], &[v]);
    assert_eq!(dw(attrs! {"max_pool" => pool.clone(), "relu" => true}, &[&x, &g, &w, &b(-4.0)]), routed);
    assert_eq!(dw(attrs! {"max_pool" => pool.clone(), "relu" => true}, &[&x, &g, &w, &b(-5.0)]), f32t(&[1, 1, 2, 2], &[0.0; 4]));
    // Without the mask the bias does not move the argmax.
    assert_eq!(dw(attrs! {"max_pool" => pool.clone()}, &[&x, &g, &w, &b(-5.0)]), routed);
    // The pooled gradient's shape is checked, and the window is required.
    assert!(eval_op(OpKind::KernelConv2dGradWeight, &attrs! {"max_pool" => pool}, &[&x, &f32t(&[1, 1, 2, 2], &[1.0; 4]), &w], None).is_err());
    assert!(eval_op(OpKind::KernelConv2dGradWeight, &Attrs::new(), &[&x, &g, &w], None).is_err());
}

#[test]
fn routed_gradients_take_each_window_gradient_at_its_argmax() {
    // y: one 2x2 window over a [1, 1, 2, 2] output whose maximum, 5, is at
    // (1, 0); the window's gradient 3 lands there and nowhere else.
    let y = f32t(&[1, 1, 2, 2], &[1.0, 2.0, 5.0, 4.0]);
    let g = f32t(&[1, 1, 1, 1], &[3.0]);
    let pool = Attr::ints(&[2, 2, 2, 2, 0, 0]);
    // A 2x2 kernel over a 3x3 input: dx[1 + a, b] = 3 · w[a, b], zero elsewhere.
    let w = f32t(&[1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let gi = |a: Attrs, y: &Tensor| eval_op(OpKind::KernelRoutedConv2dGradInput, &a, &[y, &g, &w], None).unwrap();
    let dx = f32t(&[1, 1, 3, 3], &[0.0, 0.0, 0.0, 3.0, 6.0, 0.0, 9.0, 12.0, 0.0]);
    assert_eq!(gi(attrs! {"input_size" => Attr::ints(&[3, 3]), "max_pool" => pool.clone()}, &y), dx);
    // x = 1..9: dw[a, b] = 3 · x[1 + a, b].
    let x = f32t(&[1, 1, 3, 3], &(1..=9).map(|v| v as f32).collect::<Vec<_>>());
    let gw = |a: Attrs, y: &Tensor| eval_op(OpKind::KernelRoutedConv2dGradWeight, &a, &[&x, y, &g], None).unwrap();
    let dw = f32t(&[1, 1, 2, 2], &[12.0, 15.0, 21.0, 24.0]);
    assert_eq!(gw(attrs! {"kernel" => Attr::ints(&[2, 2]), "max_pool" => pool.clone()}, &y), dw);
    // ReLU's mask: a window whose maximum is not positive passes nothing.
    let negative = f32t(&[1, 1, 2, 2], &[-1.0, -2.0, -5.0, -4.0]);
    let relu = |extra: (&str, Attr)| attrs! {"max_pool" => pool.clone(), "relu" => true, extra.0 => extra.1};
    assert_eq!(gi(relu(("input_size", Attr::ints(&[3, 3]))), &negative), f32t(&[1, 1, 3, 3], &[0.0; 9]));
    assert_eq!(gw(relu(("kernel", Attr::ints(&[2, 2]))), &negative), f32t(&[1, 1, 2, 2], &[0.0; 4]));
    assert_eq!(gi(relu(("input_size", Attr::ints(&[3, 3]))), &y), dx);
    // The window is required, and g must be y pooled by it.
    assert!(eval_op(OpKind::KernelRoutedConv2dGradInput, &attrs! {"input_size" => Attr::ints(&[3, 3])}, &[&y, &g, &w], None).is_err());
    assert!(eval_op(OpKind::KernelRoutedConv2dGradWeight, &attrs! {"kernel" => Attr::ints(&[2, 2]), "max_pool" => pool}, &[&x, &y, &y], None).is_err());
}

/// The routed gradients against the `dl` ops they stand for
/// (`conv2d_grad_input(max_pool2d_grad(y, g), w)` and
/// `conv2d_grad_weight(x, max_pool2d_grad(y, g))`) on the interpreter, with
/// a `?` batch, strides, padding, overlapping windows and windows that do
/// not cover the whole output: bit-identical.
#[test]
fn routed_gradients_equal_the_dl_ops_they_fuse() {
    type Case = ([i64; 2], [i64; 2], [i64; 6], [i64; 4], [i64; 4]);
    let cases: Vec<Case> = vec![
        // stride, padding, the pooling window, x, w; y and g follow.
        ([1, 1], [1, 1], [2, 2, 2, 2, 0, 0], [-1, 2, 6, 6], [3, 2, 3, 3]),
        ([2, 1], [0, 0], [3, 3, 2, 2, 1, 1], [-1, 1, 9, 7], [2, 1, 3, 3]),
        ([1, 1], [0, 0], [2, 2, 2, 2, 0, 0], [-1, 16, 7, 7], [4, 16, 3, 3]),
    ];
    for (stride, pad, pool, xs, ws) in cases {
        let conv = attrs! {"stride" => Attr::ints(&stride), "padding" => Attr::ints(&pad)};
        let out = |d: usize| (xs[2 + d] + 2 * pad[d] - ws[2 + d]) / stride[d] + 1;
        let pooled = |d: usize| (out(d) + 2 * pool[4 + d] - pool[d]) / pool[2 + d] + 1;
        let ys = [-1, ws[0], out(0), out(1)];
        let gs = [-1, ws[0], pooled(0), pooled(1)];
        let types = [ty(&xs, DType::F32), ty(&ys, DType::F32), ty(&gs, DType::F32), ty(&ws, DType::F32)];
        let concrete = |s: &[i64]| s.iter().map(|&d| if d < 0 { 2 } else { d as usize }).collect::<Vec<_>>();
        let values: Vec<Tensor> = [&xs[..], &ys, &gs, &ws].iter().enumerate().map(|(i, s)| wavy(&concrete(s), i + 5)).collect();
        let pool_attrs = attrs! {"kernel" => Attr::ints(&pool[..2]), "stride" => Attr::ints(&pool[2..4]), "padding" => Attr::ints(&pool[4..])};
        for relu in [true, false] {
            for input in [true, false] {
                let (size, dense, routed) = if input {
                    (("input_size", Attr::ints(&xs[2..])), OpKind::Conv2dGradInput, OpKind::KernelRoutedConv2dGradInput)
                } else {
                    (("kernel", Attr::ints(&ws[2..])), OpKind::Conv2dGradWeight, OpKind::KernelRoutedConv2dGradWeight)
                };
                let mut reference = Function::new("dl");
                let args: Vec<ValueId> = types.iter().map(|t| reference.add_arg(t.clone().into(), None, Attrs::new())).collect();
                let mut b = Builder::at_entry(&mut reference);
                let mut pa = pool_attrs.clone();
                pa.insert("relu".into(), Attr::Bool(relu));
                let dy = b.op(OpKind::MaxPool2dGrad, &[args[1], args[2]], pa).unwrap();
                let mut ga = conv.clone();
                ga.insert(size.0.into(), size.1.clone());
                let d = b.op(dense, &if input { [dy, args[3]] } else { [args[0], dy] }, ga.clone()).unwrap();
                b.ret(&[d]);
                let mut fused = Function::new("kernel");
                let args: Vec<ValueId> = types.iter().map(|t| fused.add_arg(t.clone().into(), None, Attrs::new())).collect();
                ga.insert("relu".into(), Attr::Bool(relu));
                ga.insert("max_pool".into(), Attr::ints(&pool));
                let mut b = Builder::at_entry(&mut fused);
                let d = b.op(routed, &if input { [args[1], args[2], args[3]] } else { [args[0], args[1], args[2]] }, ga).unwrap();
                b.ret(&[d]);
                dlc_ir::verify_function(&fused).unwrap();
                let want = run(&reference, &values).unwrap().remove(0);
                let got = run(&fused, &values).unwrap().remove(0);
                let what = format!("{} relu={relu} {conv:?} {pool:?}", routed.name());
                assert_eq!(got, want, "{what}: not bit-identical");
                assert!(got.to_f64_vec().iter().any(|&v| v != 0.0), "{what}: the gradient vanished");
            }
        }
    }
}

/// `kernel.conv2d_grad_weight` against the `dl` ops it stands for
/// (`conv2d_grad_weight(x, max_pool2d_grad(conv2d(x, w) + b, g))`) on the
/// interpreter, with a `?` batch, strides, padding, overlapping windows and
/// windows that do not cover the whole output: bit-identical.
#[test]
fn kernel_conv2d_grad_weight_equals_the_dl_ops_it_fuses() {
    type Case = ([i64; 2], [i64; 2], [i64; 6], [i64; 4], [i64; 4]);
    let cases: Vec<Case> = vec![
        // stride, padding, the pooling window, x, w; g follows.
        ([1, 1], [1, 1], [2, 2, 2, 2, 0, 0], [-1, 2, 6, 6], [3, 2, 3, 3]),
        ([2, 1], [0, 0], [3, 3, 2, 2, 1, 1], [-1, 1, 9, 7], [2, 1, 3, 3]),
        ([1, 1], [0, 0], [2, 2, 2, 2, 0, 0], [-1, 1, 8, 9], [4, 1, 3, 3]),
    ];
    for (stride, pad, pool, xs, ws) in cases {
        let conv = attrs! {"stride" => Attr::ints(&stride), "padding" => Attr::ints(&pad)};
        let out = |d: usize| ((xs[2 + d] + 2 * pad[d] - ws[2 + d]) / stride[d] + 1) as usize;
        let pooled = |d: usize, n: usize| (n + 2 * pool[4 + d] as usize - pool[d] as usize) / pool[2 + d] as usize + 1;
        let gs = [2, ws[0] as usize, pooled(0, out(0)), pooled(1, out(1))];
        let pool_attrs = attrs! {"kernel" => Attr::ints(&pool[..2]), "stride" => Attr::ints(&pool[2..4]), "padding" => Attr::ints(&pool[4..])};
        let types = [ty(&xs, DType::F32), ty(&[-1, gs[1] as i64, gs[2] as i64, gs[3] as i64], DType::F32), ty(&ws, DType::F32), ty(&[ws[0], 1, 1], DType::F32)];
        let shapes = [vec![2, xs[1] as usize, xs[2] as usize, xs[3] as usize], gs.to_vec(), ws.iter().map(|&d| d as usize).collect(), vec![ws[0] as usize, 1, 1]];
        let values: Vec<Tensor> = shapes.iter().enumerate().map(|(i, s)| wavy(s, i + 3)).collect();
        for (bias, relu) in [(true, true), (true, false), (false, true), (false, false)] {
            let n = if bias { 4 } else { 3 };
            let mut reference = Function::new("dl");
            let args: Vec<ValueId> = types[..n].iter().map(|t| reference.add_arg(t.clone().into(), None, Attrs::new())).collect();
            let mut b = Builder::at_entry(&mut reference);
            let mut y = b.op(OpKind::Conv2d, &[args[0], args[2]], conv.clone()).unwrap();
            if bias {
                y = b.op(OpKind::Add, &[y, args[3]], Attrs::new()).unwrap();
            }
            let mut pa = pool_attrs.clone();
            pa.insert("relu".into(), Attr::Bool(relu));
            let dy = b.op(OpKind::MaxPool2dGrad, &[y, args[1]], pa).unwrap();
            let mut ga = conv.clone();
            ga.insert("kernel".into(), Attr::ints(&[ws[2], ws[3]]));
            let dw = b.op(OpKind::Conv2dGradWeight, &[args[0], dy], ga).unwrap();
            b.ret(&[dw]);
            let mut fused = Function::new("kernel");
            let args: Vec<ValueId> = types[..n].iter().map(|t| fused.add_arg(t.clone().into(), None, Attrs::new())).collect();
            let mut ka = conv.clone();
            ka.insert("relu".into(), Attr::Bool(relu));
            ka.insert("max_pool".into(), Attr::ints(&pool));
            let mut b = Builder::at_entry(&mut fused);
            let y = b.op(OpKind::KernelConv2dGradWeight, &args, ka).unwrap();
            b.ret(&[y]);
            dlc_ir::verify_function(&fused).unwrap();
            let want = run(&reference, &values[..n]).unwrap().remove(0);
            let got = run(&fused, &values[..n]).unwrap().remove(0);
            let what = format!("bias={bias} relu={relu} {conv:?} {pool:?}");
            assert_eq!(got, want, "{what}: not bit-identical");
            assert!(got.to_f64_vec().iter().any(|&v| v != 0.0), "{what}: the gradient vanished");
        }
    }
}

/// A `values` tensor of `shape` in [-1, 1), deterministic and irregular.
fn wavy(shape: &[usize], seed: usize) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|i| (((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.5) - 1.0).collect();
    f32t(shape, &v)
}

/// `kernel.matmul` / `kernel.conv2d` with a bias and ReLU against the `dl`
/// ops they fuse (`relu(add(matmul(x, w), b))`), on the interpreter, with a
/// `?` batch, transposes, strides, padding and dilation: bit-identical.
#[test]
fn kernel_contractions_equal_the_dl_ops_they_fuse() {
    type Case = (OpKind, Attrs, Vec<(Vec<i64>, Vec<usize>)>);
    let cases: Vec<Case> = vec![
        (OpKind::Matmul, attrs! {"transpose_b" => true}, vec![(vec![-1, 5], vec![3, 5]), (vec![4, 5], vec![4, 5]), (vec![4], vec![4])]),
        (OpKind::Matmul, attrs! {"transpose_a" => true}, vec![(vec![5, 3], vec![5, 3]), (vec![5, 2], vec![5, 2]), (vec![2], vec![2])]),
        (OpKind::Matmul, Attrs::new(), vec![(vec![2, -1, 3], vec![2, 4, 3]), (vec![3, 6], vec![3, 6]), (vec![6], vec![6])]),
        (
            OpKind::Conv2d,
            attrs! {"stride" => Attr::ints(&[2, 1]), "padding" => Attr::ints(&[1, 1])},
            vec![(vec![-1, 2, 6, 5], vec![2, 2, 6, 5]), (vec![3, 2, 3, 3], vec![3, 2, 3, 3]), (vec![3, 1, 1], vec![3, 1, 1])],
        ),
        (
            OpKind::Conv2d,
            attrs! {"dilation" => Attr::ints(&[2, 2])},
            vec![(vec![2, 1, 7, 7], vec![2, 1, 7, 7]), (vec![4, 1, 2, 2], vec![4, 1, 2, 2]), (vec![1, 4, 1, 1], vec![1, 4, 1, 1])],
        ),
    ];
    for (dl, dl_attrs, shapes) in cases {
        let kernel = if dl == OpKind::Matmul { OpKind::KernelMatmul } else { OpKind::KernelConv2d };
        let types: Vec<TensorType> = shapes.iter().map(|(t, _)| ty(t, DType::F32)).collect();
        let values: Vec<Tensor> = shapes.iter().enumerate().map(|(i, (_, s))| wavy(s, i)).collect();
        for (bias, relu) in [(true, true), (true, false), (false, true), (false, false)] {
            let n = if bias { 3 } else { 2 };
            let mut reference = Function::new("dl");
            let args: Vec<ValueId> = types[..n].iter().map(|t| reference.add_arg(t.clone().into(), None, Attrs::new())).collect();
            let mut b = Builder::at_entry(&mut reference);
            let mut y = b.op(dl, &args[..2], dl_attrs.clone()).unwrap();
            if bias {
                y = b.op(OpKind::Add, &[y, args[2]], Attrs::new()).unwrap();
            }
            if relu {
                y = b.op(OpKind::Relu, &[y], Attrs::new()).unwrap();
            }
            b.ret(&[y]);
            let mut fused = Function::new("kernel");
            let args: Vec<ValueId> = types[..n].iter().map(|t| fused.add_arg(t.clone().into(), None, Attrs::new())).collect();
            let mut ka = dl_attrs.clone();
            ka.insert("relu".into(), Attr::Bool(relu));
            let mut b = Builder::at_entry(&mut fused);
            let y = b.op(kernel, &args, ka).unwrap();
            b.ret(&[y]);
            dlc_ir::verify_function(&fused).unwrap();
            let want = run(&reference, &values[..n]).unwrap().remove(0);
            let got = run(&fused, &values[..n]).unwrap().remove(0);
            let what = format!("{} bias={bias} relu={relu} {dl_attrs:?}", kernel.name());
            assert_close(&what, &got, &want);
            assert_eq!(got, want, "{what}: not bit-identical");
            if relu {
                assert!(got.to_f64_vec().iter().all(|&v| v >= 0.0), "{what}");
            }
        }
    }
}

/// What the interpreter cannot run on its own, it refuses with a message.
#[test]
fn body_only_ops_are_refused_by_eval_op() {
    let x = f32t(&[2], &[1.0, 2.0]);
    let a = attrs! {"value" => 1.0, "dtype" => DType::F32};
    for (kind, attrs, inputs) in [(OpKind::Generic, add_scale_kernel().attrs(), vec![&x, &x]), (OpKind::Yield, Attrs::new(), vec![&x]), (OpKind::ScalarConstant, a, vec![])] {
        let e = eval_op(kind, &attrs, &inputs, None).unwrap_err().to_string();
        assert!(e.contains(kind.name()), "{e}");
    }
}
