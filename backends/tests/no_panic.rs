//! Bad input never panics: every op, fed random operands (any dtype, rank 0–3,
//! dims 0–3, sometimes the wrong count) and random attributes of the declared
//! kinds (or missing ones), returns a value or an `InterpError`.
//!
//! `kernel.generic` only runs inside a function (its body is a region), so
//! it gets its own property: random kernels, mostly well-formed and built
//! without the shape rule or the verifier (maps that leave their operand,
//! wrong dims, bodies with wrong arguments, non-elementwise ops, a missing
//! yield), run through `run`; the verifier and printer see them too.

use dlc_backends::{Tensor, eval_op, run};
use dlc_ir::registry::{Arity, AttrKind};
use dlc_ir::{AffineExpr, AffineMap, Attr, Attrs, DType, DenseAttr, DenseData, Dim, Function, OpKind, Region, TensorType, Type, ValueId};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

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
        AttrKind::Strings => {
            let words = prop::sample::select(vec!["parallel", "parallel", "reduction", "bogus", "", "dl.add"]);
            prop::collection::vec(words.prop_map(|w| Attr::Str(w.into())), 0..4).prop_map(Attr::Array).boxed()
        }
        AttrKind::DTypes => {
            let item = prop_oneof![9 => dtype().prop_map(Attr::from), 1 => Just(Attr::Int(0))];
            prop::collection::vec(item, 0..4).prop_map(Attr::Array).boxed()
        }
        // Maps of 0–3 dims whose terms may name one dim too many, and now
        // and then an element that is no map at all.
        AttrKind::Maps => {
            let map = (0usize..4).prop_flat_map(|dims| {
                let term = (0..=dims, -2i64..4);
                let expr = (prop::collection::vec(term, 0..3), -2i64..3)
                    .prop_map(|(terms, c)| terms.into_iter().fold(AffineExpr::constant(c), |e, (k, c)| e.plus_dim(k, c)));
                prop::collection::vec(expr, 0..4).prop_map(move |results| Attr::Map(AffineMap { dims, results }))
            });
            let item = prop_oneof![9 => map, 1 => Just(Attr::Int(0))];
            prop::collection::vec(item, 0..4).prop_map(Attr::Array).boxed()
        }
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
/// the window arithmetic itself runs (random operands rarely get that far);
/// conv2d's gradients get a gradient of the input's spatial size and the
/// `kernel` pair as their `input_size` / `kernel`.
fn window_case() -> impl Strategy<Value = (OpKind, Attrs, Vec<Tensor>)> {
    use OpKind::{AvgPool2d, Conv2d, Conv2dGradInput, Conv2dGradWeight, MaxPool2d};
    let kind = prop::sample::select(vec![Conv2d, MaxPool2d, AvgPool2d, Conv2dGradInput, Conv2dGradWeight]);
    let pair = || prop::collection::vec(-1i64..4, 2..=2).prop_map(|v| Attr::ints(&v));
    let dims = prop::collection::vec(1usize..6, 4..=4);
    let float = prop::sample::select(vec![DType::F32, DType::F64]);
    (kind, pair(), pair(), pair(), pair(), dims, 1usize..4, 1usize..4, float).prop_flat_map(
        |(kind, kernel, stride, padding, dilation, x, kh, kw, d)| {
            let mut attrs = Attrs::new();
            attrs.insert("stride".into(), stride);
            attrs.insert("padding".into(), padding);
            if matches!(kind, Conv2d | Conv2dGradInput | Conv2dGradWeight) {
                attrs.insert("dilation".into(), dilation);
            }
            match kind {
                MaxPool2d | AvgPool2d => attrs.insert("kernel".into(), kernel),
                Conv2dGradInput => attrs.insert("input_size".into(), kernel),
                Conv2dGradWeight => attrs.insert("kernel".into(), kernel),
                _ => None,
            };
            let w = vec![2, x[1], kh, kw];
            let g = vec![x[0], 2, x[2], x[3]];
            let inputs = match kind {
                Conv2d => vec![filled(d, x), filled(d, w)],
                Conv2dGradInput => vec![filled(d, g), filled(d, w)],
                Conv2dGradWeight => vec![filled(d, x), filled(d, g)],
                _ => vec![filled(d, x)],
            };
            (Just(kind), Just(attrs), inputs)
        },
    )
}

const GENERIC_DTYPES: [DType; 5] = [DType::F32, DType::F32, DType::F64, DType::I32, DType::I1];

/// One random result of an indexing map over `n` dims: mostly a plain dim,
/// else a constant or a sum with offset and stride.
fn index_expr(rng: &mut ChaCha8Rng, n: usize) -> AffineExpr {
    match rng.random_range(0..7) {
        0..4 if n > 0 => AffineExpr::dim(rng.random_range(0..n)),
        4 => AffineExpr::constant(rng.random_range(-1..2)),
        _ => {
            let mut e = AffineExpr::constant(rng.random_range(-2..3));
            for _ in 0..rng.random_range(1..3) {
                // One dim past the space now and then.
                e = e.plus_dim(rng.random_range(0..=n), rng.random_range(-2..4));
            }
            e
        }
    }
}

/// `[lo, hi]` of `e` over the space, `-1` sizes taken as the batch 2.
fn span(e: &AffineExpr, sizes: &[i64]) -> Option<(i64, i64)> {
    let sizes: Vec<usize> = sizes.iter().map(|&s| if s < 0 { 2 } else { s as usize }).collect();
    e.range(&sizes)
}

/// A random `kernel.generic` in a function of its operands, and the
/// operand values (`?` dims are 2). Each part goes wrong now and then (a
/// map with a dim too many, an operand one short, a wrong dtype, a missing
/// attribute, accumulator or yield): about one case in eight verifies and
/// one in seven runs, the rest fail at some check on the way.
fn generic_case(seed: u64) -> (Function, Vec<Tensor>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let rng = &mut rng;
    let odd = |rng: &mut ChaCha8Rng| rng.random_bool(0.08);
    let n = rng.random_range(0..4usize);
    let reduction: Vec<bool> = (0..n).map(|_| rng.random_bool(0.3)).collect();
    let sizes: Vec<i64> = (0..n).map(|_| if rng.random_bool(0.15) { -1 } else { rng.random_range(0..4) }).collect();
    let dtype = GENERIC_DTYPES[rng.random_range(0..GENERIC_DTYPES.len())];
    let n_ops = rng.random_range(0..4usize);
    let mut maps = Vec::new();
    let mut padded = Vec::new();
    let mut f = Function::new("k");
    let mut args = Vec::new();
    let mut values = Vec::new();
    for i in 0..n_ops {
        let rank = rng.random_range(0..4usize);
        let map = AffineMap { dims: if odd(rng) { n + 1 } else { n }, results: (0..rank).map(|_| index_expr(rng, n)).collect() };
        let pad = rng.random_bool(0.25);
        if pad {
            padded.push(i as i64);
        }
        // Dims that hold what the map reads (or, now and then, one less).
        let mut shape = Vec::new();
        let mut ty = Vec::new();
        for e in &map.results {
            let fit = span(e, &sizes).map_or(1, |(_, hi)| (hi + 1).max(1) as usize);
            let d = if odd(rng) || (pad && rng.random_bool(0.5)) { fit.saturating_sub(1) } else { fit };
            let batch = e.as_dim().is_some_and(|k| sizes.get(k).is_some_and(|&s| s < 0)) && d == 2;
            shape.push(d);
            ty.push(if batch { Dim::Dynamic } else { Dim::Static(d as u64) });
        }
        let dt = if odd(rng) { GENERIC_DTYPES[rng.random_range(0..GENERIC_DTYPES.len())] } else { dtype };
        let count: usize = shape.iter().product();
        let data: Vec<f64> = (0..count).map(|_| rng.random_range(-3..4) as f64).collect();
        values.push(Tensor::from_f64_values(&shape, &data, dt).unwrap());
        args.push(f.add_arg(Type::Tensor(TensorType::new(ty, dt)), None, Attrs::new()));
        maps.push(map);
    }
    let parallel: Vec<usize> = (0..n).filter(|&k| !reduction[k]).collect();
    let mut out = AffineMap::projection(n, &parallel);
    if odd(rng) {
        out.results.reverse();
    }
    if odd(rng) {
        out = AffineMap { dims: n, results: (0..rng.random_range(0..3)).map(|_| index_expr(rng, n)).collect() };
    }
    maps.push(out.clone());
    let reduces = reduction.contains(&true);

    let mut attrs = Attrs::new();
    let iterators = reduction.iter().map(|&r| Attr::Str(if r { "reduction" } else { "parallel" }.into())).collect();
    attrs.insert("iterators".into(), Attr::Array(iterators));
    attrs.insert("indexing_maps".into(), Attr::Array(maps.into_iter().map(Attr::Map).collect()));
    attrs.insert("sizes".into(), Attr::ints(&sizes));
    attrs.insert("dtype".into(), Attr::from(dtype));
    attrs.insert("init".into(), Attr::Float(rng.random_range(-2..3) as f64));
    attrs.insert("padded".into(), Attr::ints(&padded));
    attrs.insert("pad".into(), Attr::Float(if rng.random_bool(0.5) { f64::NEG_INFINITY } else { 0.0 }));
    for key in ["iterators", "indexing_maps", "sizes", "dtype"] {
        if odd(rng) {
            attrs.remove(key);
        }
    }

    // The body: one scalar per operand (+ the accumulator), a few ops on
    // earlier values, a yield.
    let block = f.new_block();
    let mut scalars: Vec<ValueId> = Vec::new();
    for v in &values {
        let dt = if odd(rng) { DType::I64 } else { v.dtype() };
        scalars.push(f.add_block_arg(block, Type::Scalar(dt), None));
    }
    if reduces != odd(rng) {
        scalars.push(f.add_block_arg(block, Type::Scalar(dtype), None));
    }
    for _ in 0..rng.random_range(0..4) {
        let pick = |rng: &mut ChaCha8Rng, s: &[ValueId]| s[rng.random_range(0..s.len())];
        let (kind, ins, a) = match rng.random_range(0..10) {
            _ if scalars.is_empty() => (OpKind::ScalarConstant, vec![], Attrs::new()),
            0 => (OpKind::ScalarConstant, vec![], Attrs::new()),
            1 => (OpKind::Neg, vec![pick(rng, &scalars)], Attrs::new()),
            2 => (OpKind::Exp, vec![pick(rng, &scalars)], Attrs::new()),
            3 => (OpKind::Cmp, vec![pick(rng, &scalars), pick(rng, &scalars)], dlc_ir::attrs! {"predicate" => "lt"}),
            4 => (OpKind::Select, vec![pick(rng, &scalars), pick(rng, &scalars), pick(rng, &scalars)], Attrs::new()),
            5 => (OpKind::Maximum, vec![pick(rng, &scalars), pick(rng, &scalars)], Attrs::new()),
            6 => (OpKind::Cast, vec![pick(rng, &scalars)], dlc_ir::attrs! {"dtype" => dtype}),
            // Not elementwise: the verifier refuses it in a body. (Ops that
            // change the element count panic the interpreter today, see
            // `generic_body_values_of_another_shape_are_an_error` below.)
            7 if odd(rng) => (OpKind::Softmax, vec![pick(rng, &scalars)], dlc_ir::attrs! {"axis" => 0i64}),
            _ => (OpKind::Add, vec![pick(rng, &scalars), pick(rng, &scalars)], Attrs::new()),
        };
        let (a, tys) = if kind == OpKind::ScalarConstant {
            let dt = GENERIC_DTYPES[rng.random_range(0..GENERIC_DTYPES.len())];
            (dlc_ir::attrs! {"value" => rng.random_range(-2..3) as f64, "dtype" => dt}, vec![Type::Scalar(dt)])
        } else {
            let types: Vec<Type> = ins.iter().map(|&v| f.ty(v).clone()).collect();
            let tys = kind.infer(&types, &a).unwrap_or_else(|_| vec![Type::Scalar(dtype)]);
            (a, tys)
        };
        let o = f.append_op(block, kind, ins, a, tys, Vec::new());
        scalars.extend(f.op(o).results.clone());
    }
    if !scalars.is_empty() && !odd(rng) {
        let y = scalars[scalars.len() - 1 - rng.random_range(0..scalars.len().min(2))];
        f.append_op(block, OpKind::Yield, vec![y], Attrs::new(), Vec::new(), Vec::new());
    }

    let result = if out.is_projection() {
        let dims = out.results.iter().map(|e| e.as_dim().and_then(|k| sizes.get(k)).map_or(Dim::Static(1), |&s| Dim::from_attr_int(s).unwrap())).collect();
        TensorType::new(dims, dtype)
    } else {
        TensorType::new(vec![Dim::Static(2)], dtype)
    };
    let entry = f.entry();
    let o = f.append_op(entry, OpKind::Generic, args, attrs, vec![Type::Tensor(result.clone())], vec![Region { blocks: vec![block] }]);
    let y = f.op(o).results[0];
    f.append_op(entry, OpKind::Return, vec![y], Attrs::new(), Vec::new(), Vec::new());
    f.result_types = vec![Type::Tensor(result)];
    (f, values)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn generic_kernels_never_panic(seed in any::<u64>()) {
        let (f, inputs) = generic_case(seed);
        let verified = dlc_ir::verify_function(&f);
        let _ = dlc_ir::print_function(&f);
        let ran = run(&f, &inputs);
        // A kernel the verifier accepts, over a static space, runs.
        let static_space = f.walk().iter().all(|&o| f.op(o).attrs.get("sizes").and_then(Attr::as_ints).is_none_or(|s| !s.contains(&-1)));
        if verified.is_ok() && static_space {
            prop_assert!(ran.is_ok(), "verified kernel fails to run: {}\n{}", ran.unwrap_err(), dlc_ir::print_function(&f));
        }
    }

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

/// Runs the one function of `src` on zeros (`?` dims are 2).
fn run_text(src: &str) -> Result<Vec<Tensor>, dlc_backends::InterpError> {
    let m = dlc_ir::parse_module(src).unwrap_or_else(|e| panic!("{e}"));
    let f = &m.functions[0];
    let inputs: Vec<Tensor> = f
        .args()
        .iter()
        .map(|&a| {
            let t = f.ty(a).as_tensor().unwrap();
            let shape: Vec<usize> = t.shape.iter().map(|d| d.as_static().map_or(2, |n| n as usize)).collect();
            Tensor::zeros(&shape, t.dtype)
        })
        .collect();
    run(f, &inputs)
}

/// An unverified body whose value is not one element per point (a
/// `dl.slice` to nothing): `generic::broadcast` reads element 0 of it.
#[test]
fn generic_body_values_of_another_shape_are_an_error() {
    let src = r#"func.func @k(%x: tensor<2xf32>) -> tensor<2xf32> {
  %y = "kernel.generic"(%x) ({
  ^bb0(%a: f32):
    %s = "dl.slice"(%a) {axis = 0, end = 0, start = 0} : (f32) -> f32
    "kernel.yield"(%s) : (f32) -> ()
  }) {dtype = f32, indexing_maps = [affine_map<(d0) -> (d0)>, affine_map<(d0) -> (d0)>], iterators = ["parallel"], sizes = [2]} : (tensor<2xf32>) -> tensor<2xf32>
  return %y : tensor<2xf32>
}"#;
    let e = run_text(src).unwrap_err().to_string();
    assert!(e.contains("kernel.generic"), "{e}");
}

/// Verified kernels whose padded operand's index is beyond i64: the
/// verifier skips the bounds of padded operands and `AffineExpr::eval`
/// multiplies and adds unchecked.
#[test]
fn generic_index_overflow_is_an_error() {
    for map in ["d0 * 4611686018427387904", "d0 + 9223372036854775807"] {
        let src = format!(
            r#"func.func @k(%x: tensor<2xf32>) -> tensor<3xf32> {{
  %y = "kernel.generic"(%x) ({{
  ^bb0(%a: f32):
    "kernel.yield"(%a) : (f32) -> ()
  }}) {{dtype = f32, indexing_maps = [affine_map<(d0) -> ({map})>, affine_map<(d0) -> (d0)>], iterators = ["parallel"], pad = 1.0, padded = [0], sizes = [3]}} : (tensor<2xf32>) -> tensor<3xf32>
  return %y : tensor<3xf32>
}}"#
        );
        dlc_ir::verify_module(&dlc_ir::parse_module(&src).unwrap()).unwrap();
        // Every read but the first leaves the operand: pad, or an error.
        match run_text(&src) {
            Ok(y) => assert_eq!(y[0], Tensor::from_f32(&[3], vec![if map.contains('*') { 0.0 } else { 1.0 }, 1.0, 1.0]).unwrap(), "{map}"),
            Err(e) => assert!(e.to_string().contains("kernel.generic"), "{e}"),
        }
    }
}

/// A verified reduction over 2^62 points to one element: too much to run,
/// which must be an error (`run` allocates every reduction point up front).
#[test]
fn generic_huge_iteration_spaces_are_an_error() {
    let src = r#"func.func @k() -> tensor<f32> {
  %y = "kernel.generic"() ({
  ^bb0(%acc: f32):
    "kernel.yield"(%acc) : (f32) -> ()
  }) {dtype = f32, indexing_maps = [affine_map<(d0) -> ()>], iterators = ["reduction"], sizes = [4611686018427387904]} : () -> tensor<f32>
  return %y : tensor<f32>
}"#;
    dlc_ir::verify_module(&dlc_ir::parse_module(src).unwrap()).unwrap();
    assert!(run_text(src).is_err());
}
