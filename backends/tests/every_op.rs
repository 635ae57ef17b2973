//! Every op of the registry runs on the interpreter. The inputs come from one
//! exhaustive `match` on `OpKind`, so a new op does not compile until it has
//! a case here too. `run` itself checks each result against the type the
//! registry's shape rule declares, with the batch size substituted.

mod common;

use common::{f32t, f64t, i64t, ty};
use dlc_backends::{Tensor, run};
use dlc_ir::{Attr, Attrs, Builder, DType, DenseAttr, DenseData, Function, OpKind, TensorType, attrs};

/// Attributes and inputs for a small run of `kind`; input `?` dims are the batch (2).
fn example(kind: OpKind) -> (Attrs, Vec<(TensorType, Tensor)>) {
    let batch = |shape: &[i64], dtype: DType| ty(shape, dtype);
    let m = || (batch(&[-1, 3], DType::F32), f32t(&[2, 3], &[0.5, -1.0, 2.0, 0.0, 3.0, -4.0]));
    let pos = || (batch(&[-1, 3], DType::F64), f64t(&[2, 3], &[0.5, 1.0, 2.0, 4.0, 3.0, 9.0]));
    let img = || (batch(&[-1, 2, 4, 4], DType::F32), f32t(&[2, 2, 4, 4], &(0..64).map(|v| v as f32).collect::<Vec<_>>()));
    let none = Attrs::new;
    use OpKind as K;
    match kind {
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
        K::MaxPool2d | K::AvgPool2d => (attrs! {"kernel" => Attr::ints(&[2, 2]), "stride" => Attr::ints(&[2, 2])}, vec![img()]),
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
    }
}

#[test]
fn every_registry_op_runs() {
    for &kind in OpKind::ALL {
        let (attrs, inputs) = example(kind);
        let mut f = Function::new(kind.name().replace('.', "_"));
        let args: Vec<_> = inputs.iter().enumerate().map(|(i, (t, _))| f.add_arg(t.clone().into(), Some(&format!("a{i}")), Attrs::new())).collect();
        let mut b = Builder::at_entry(&mut f);
        let result = match kind {
            OpKind::Return => args[0],
            // broadcast_to's second input only binds the batch.
            OpKind::BroadcastTo => b.op(kind, &args[..1], attrs).unwrap(),
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
    }
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
    let out = run(&f, &[]).unwrap();
    assert_eq!(out[0], f32t(&[2, 2], &[1.5; 4]));
    assert_eq!(out[1], Tensor::from_bool(&[], vec![true]).unwrap());
    assert_eq!(out[2], f64t(&[3], &[1.0, -2.0, 0.25]));
}
