//! Bad input never panics: every op, fed random operands (any dtype, rank 0–3,
//! dims 0–3, sometimes the wrong count) and random attributes of the declared
//! kinds (or missing ones), returns a value or an `InterpError`.

use dlc_backends::{Tensor, eval_op};
use dlc_ir::registry::{Arity, AttrKind};
use dlc_ir::{Attr, Attrs, DType, DenseAttr, DenseData, OpKind, TensorType};
use proptest::prelude::*;

fn dtype() -> impl Strategy<Value = DType> {
    prop::sample::select(DType::ALL.to_vec())
}

/// A tensor of `dtype` with the given shape and small integral values.
fn filled(dtype: DType, shape: Vec<usize>) -> impl Strategy<Value = Tensor> {
    let n: usize = shape.iter().product();
    prop::collection::vec(-4i8..5, n).prop_map(move |v| {
        let v: Vec<f64> = v.into_iter().map(f64::from).collect();
        Tensor::from_f64_values(&shape, &v, dtype).unwrap()
    })
}

/// A tensor of rank 0–4, usually of the case's common dtype, dims mostly 1–4.
fn tensor(common: DType) -> impl Strategy<Value = Tensor> {
    let dim = prop::sample::select(vec![1usize, 1, 2, 2, 3, 4, 0]);
    let dt = prop_oneof![6 => Just(common), 1 => dtype()];
    (dt, prop::collection::vec(dim, 0..5)).prop_flat_map(|(d, shape)| filled(d, shape))
}

fn attr(kind: AttrKind) -> BoxedStrategy<Attr> {
    match kind {
        AttrKind::Int => (-3i64..6).prop_map(Attr::Int).boxed(),
        AttrKind::Float => (-2.0f64..2.0).prop_map(Attr::Float).boxed(),
        AttrKind::Bool => any::<bool>().prop_map(Attr::Bool).boxed(),
        AttrKind::Enum(choices) => {
            let mut c: Vec<String> = choices.iter().map(|s| s.to_string()).collect();
            c.push("bogus".into());
            prop::sample::select(c).prop_map(Attr::Str).boxed()
        }
        AttrKind::Ints => prop::collection::vec(-2i64..4, 0..4).prop_map(|v| Attr::ints(&v)).boxed(),
        AttrKind::DType => dtype().prop_map(Attr::from).boxed(),
        AttrKind::Dense => (dtype(), prop::collection::vec(0u64..3, 0..3), prop::collection::vec(-3i64..3, 0..5))
            .prop_map(|(d, shape, v)| {
                let data = match d {
                    DType::F32 | DType::F64 => DenseData::Float(v.iter().map(|&x| x as f64).collect()),
                    DType::I32 | DType::I64 => DenseData::Int(v),
                    DType::I1 => DenseData::Bool(v.iter().map(|&x| x != 0).collect()),
                };
                Attr::Dense(DenseAttr { ty: TensorType::fixed(&shape, d), data })
            })
            .boxed(),
    }
}

/// An op, its attributes (each present with probability 3/4) and operands.
fn op_case() -> impl Strategy<Value = (OpKind, Attrs, Vec<Tensor>)> {
    prop::sample::select(OpKind::ALL.to_vec()).prop_flat_map(|kind| {
        let def = kind.def();
        let attrs: Vec<BoxedStrategy<Option<(String, Attr)>>> = def
            .attrs
            .iter()
            .map(|s| prop::option::weighted(0.75, attr(s.kind).prop_map(move |a| (s.name.to_string(), a))).boxed())
            .collect();
        let count = match def.operands {
            Arity::Exact(n) => prop_oneof![8 => Just(n), 1 => 0usize..4].boxed(),
            Arity::AtLeast(n) => (n..n + 3).boxed(),
        };
        let inputs = (count, dtype()).prop_flat_map(|(n, d)| prop::collection::vec(tensor(d), n));
        (Just(kind), attrs, inputs).prop_map(|(k, a, i)| (k, a.into_iter().flatten().collect(), i))
    })
}

/// Conv and pool operands of rank 4 whose channels usually agree, so that
/// the window arithmetic itself runs (random operands rarely get that far).
fn window_case() -> impl Strategy<Value = (OpKind, Attrs, Vec<Tensor>)> {
    let kind = prop::sample::select(vec![OpKind::Conv2d, OpKind::MaxPool2d, OpKind::AvgPool2d]);
    let pair = || prop::collection::vec(-1i64..4, 2..=2).prop_map(|v| Attr::ints(&v));
    let dims = prop::collection::vec(1usize..6, 4..=4);
    let float = prop::sample::select(vec![DType::F32, DType::F64]);
    (kind, pair(), pair(), pair(), pair(), dims, 1usize..4, 1usize..4, float).prop_flat_map(
        |(kind, kernel, stride, padding, dilation, x, kh, kw, d)| {
            let mut attrs = Attrs::new();
            attrs.insert("stride".into(), stride);
            attrs.insert("padding".into(), padding);
            if kind == OpKind::Conv2d {
                attrs.insert("dilation".into(), dilation);
            } else {
                attrs.insert("kernel".into(), kernel);
            }
            let w = vec![2, x[1], kh, kw];
            let inputs = if kind == OpKind::Conv2d { vec![filled(d, x), filled(d, w)] } else { vec![filled(d, x)] };
            (Just(kind), Just(attrs), inputs)
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn windows_never_panic((kind, attrs, inputs) in window_case()) {
        let refs: Vec<&Tensor> = inputs.iter().collect();
        let _ = eval_op(kind, &attrs, &refs, None);
    }

    #[test]
    fn eval_op_never_panics((kind, attrs, inputs) in op_case(), batch in prop::option::of(0usize..3)) {
        let refs: Vec<&Tensor> = inputs.iter().collect();
        let _ = eval_op(kind, &attrs, &refs, batch);
    }
}
