//! The IR the frontend builds, checked by structure (independently of the
//! printer): op kinds and flags, argument names and roles, output names,
//! inferred types, parameter names (PyTorch's state_dict) and initializers.

mod common;

use common::*;
use dlc_ir::{Attr, DType, Dim, Init, OpKind, Role, Signature, TensorType};

fn shape(t: &TensorType) -> String {
    t.shape_string()
}

fn bound(i: &Init) -> f64 {
    match i {
        Init::Uniform { low, high } => {
            assert_eq!(*low, -*high);
            *high
        }
        other => panic!("expected a symmetric uniform, got {other:?}"),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-15 * b.abs().max(1.0)
}

#[test]
fn mlp_is_three_linear_layers_with_transpose_b() {
    let c = compiled("mlp", &example("mlp"));
    let f = forward(&c);
    use OpKind::*;
    assert_eq!(kinds(f), [Matmul, Add, Relu, Matmul, Add, Relu, Matmul, Add, Softmax, Return]);
    for i in 0..3 {
        assert_eq!(bool_attr(f, Matmul, i, "transpose_b"), Some(true));
        assert_eq!(bool_attr(f, Matmul, i, "transpose_a"), None, "default flags are left out");
    }
    let sig = Signature::of(f).unwrap();
    let args: Vec<(&str, String, bool)> = sig.args.iter().map(|a| (a.name.as_str(), shape(&a.ty), a.role == Role::Input)).collect();
    assert_eq!(
        args,
        [
            ("x", "?x784".into(), true),
            ("fc1.weight", "256x784".into(), false),
            ("fc1.bias", "256".into(), false),
            ("fc2.weight", "128x256".into(), false),
            ("fc2.bias", "128".into(), false),
            ("fc3.weight", "10x128".into(), false),
            ("fc3.bias", "10".into(), false),
        ]
    );
    let outs: Vec<(&str, String)> = sig.outputs.iter().map(|(n, t)| (n.as_str(), t.to_string())).collect();
    assert_eq!(outs, [("logits", "tensor<?x10xf32>".into()), ("probs", "tensor<?x10xf32>".into())]);
    assert_eq!(c.model.outputs[0].1, TensorType::new(vec![Dim::Dynamic, Dim::Static(10)], DType::F32));
    assert_eq!(
        c.model.inputs,
        [("x".to_string(), TensorType::new(vec![Dim::Dynamic, Dim::Static(784)], DType::F32))]
    );

    // PyTorch's default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias.
    for (name, _, init) in &c.model.params {
        let fan_in = match name.as_str() {
            "fc1.weight" | "fc1.bias" => 784.0f64,
            "fc2.weight" | "fc2.bias" => 256.0,
            _ => 128.0,
        };
        assert!(close(bound(init), 1.0 / fan_in.sqrt()), "{name}: {init:?}");
    }
    // The same initializers are in the IR, where `dlc run` reads them.
    let ir: Vec<Init> = sig.params().map(|(_, i)| i.clone()).collect();
    assert_eq!(ir, c.model.params.iter().map(|p| p.2.clone()).collect::<Vec<_>>());

    // Named intermediates: `let` and `output` bindings.
    let named: Vec<String> = f
        .body_ops()
        .iter()
        .flat_map(|&o| f.op(o).results.clone())
        .filter_map(|v| f.value(v).name.clone())
        .collect();
    assert_eq!(named, ["h1", "h2", "logits", "probs"]);
}

#[test]
fn cnn_follows_sequential_naming_and_keras_shapes() {
    let c = compiled("mnist_cnn", &example("mnist_cnn"));
    let names: Vec<(&str, String)> = c.model.params.iter().map(|(n, t, _)| (n.as_str(), shape(t))).collect();
    assert_eq!(
        names,
        [
            ("net.0.weight", "32x1x3x3".into()),
            ("net.0.bias", "32".into()),
            ("net.3.weight", "64x32x3x3".into()),
            ("net.3.bias", "64".into()),
            ("net.6.weight", "64x64x3x3".into()),
            ("net.6.bias", "64".into()),
            ("net.9.weight", "64x576".into()),
            ("net.9.bias", "64".into()),
            ("net.11.weight", "10x64".into()),
            ("net.11.bias", "10".into()),
        ]
    );
    let f = forward(&c);
    let k = kinds(f);
    assert_eq!(k.iter().filter(|&&k| k == OpKind::Conv2d).count(), 3);
    assert_eq!(k.iter().filter(|&&k| k == OpKind::MaxPool2d).count(), 2);
    assert!(!k.contains(&OpKind::Transpose), "`.T` feeding a matmul is a flag, not an op");
    // Flatten is one reshape to [-1, 576].
    let flat: Vec<_> = f
        .body_ops()
        .iter()
        .map(|&o| f.op(o))
        .filter(|o| o.kind == OpKind::Reshape && o.attrs["shape"] == Attr::ints(&[-1, 576]))
        .collect();
    assert_eq!(flat.len(), 1);
    // Conv fan_in is in * kh * kw.
    let w3 = &c.model.params[2];
    assert!(close(bound(&w3.2), 1.0 / (32.0f64 * 9.0).sqrt()));
    assert!(close(bound(&c.model.params[3].2), 1.0 / (32.0f64 * 9.0).sqrt()));
    assert_eq!(
        c.model.outputs.iter().map(|(n, t)| format!("{n}:{}", shape(t))).collect::<Vec<_>>(),
        ["logits:?x10", "probs:?x10"]
    );
}

#[test]
fn digits_mlp_matches_the_reference_state_dict() {
    let c = compiled("digits_mlp", &example("digits_mlp"));
    let names: Vec<&str> = c.model.params.iter().map(|(n, ..)| n.as_str()).collect();
    assert_eq!(names, ["net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias"]);
    assert!(close(bound(&c.model.params[0].2), 1.0 / 8.0));
    assert!(close(bound(&c.model.params[2].2), 1.0 / 32f64.sqrt()));
}

const PRE: &str = "model M {\n    input x: f32[batch, 4]\n";

fn model(body: &str) -> dlc_frontend::Compiled {
    compiled("t.dl", &format!("{PRE}{body}\n}}\n"))
}

#[test]
fn scalars_are_shared_rank0_constants_and_numbers_fold() {
    // `2`, `1 + 1` and `sqrt(4)` are all the number 2 at compile time: one rank-0 constant.
    let c = model("let a = x * 2 + 2\n output y = a / (1 + 1) + sqrt(4)");
    let f = forward(&c);
    use OpKind::*;
    assert_eq!(kinds(f), [Constant, Mul, Add, Div, Add, Return]);
    let k = f.op(f.body_ops()[0]);
    assert_eq!(f.ty(k.results[0]).to_string(), "tensor<f32>");
    assert_eq!(dlc_ir::print_attr(&k.attrs["value"]), "dense<2.0> : tensor<f32>");
}

#[test]
fn linear_without_bias_has_no_add_and_no_param() {
    let c = model("fc = Linear(4, 3, bias: false)\n output y = fc(x)");
    assert_eq!(kinds(forward(&c)), [OpKind::Matmul, OpKind::Return]);
    assert_eq!(c.model.params.iter().map(|p| p.0.as_str()).collect::<Vec<_>>(), ["fc.weight"]);
}

#[test]
fn user_layers_nest_prefixes_and_share_weights() {
    let src = "layer Block(n: int) {\n    fc1 = Linear(n, n)\n    inner = Sequential(ReLU, Linear(n, 2))\n    fn forward(x) { inner(fc1(x)) }\n}\nmodel M {\n    input x: f32[batch, 4]\n    block = Block(4)\n    same = block\n    output y = block(x) + same(x)\n}";
    let c = compiled("t.dl", src);
    let names: Vec<&str> = c.model.params.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(names, ["block.fc1.weight", "block.fc1.bias", "block.inner.1.weight", "block.inner.1.bias"]);
    assert_eq!(kinds(forward(&c)).iter().filter(|&&k| k == OpKind::Matmul).count(), 4);
}

#[test]
fn model_params_fields_and_transposes() {
    let c = model(
        "param w: f32[3, 4] = xavier_uniform()\n param s: f32[3] = ones()\n fc = Linear(4, 3)\n output a = x @ w.T * s\n output b = w.T\n output c = fc.weight.T @ fc.weight",
    );
    let f = forward(&c);
    assert_eq!(bool_attr(f, OpKind::Matmul, 0, "transpose_b"), Some(true));
    assert_eq!(bool_attr(f, OpKind::Matmul, 1, "transpose_a"), Some(true));
    assert_eq!(
        kinds(f).iter().filter(|&&k| k == OpKind::Transpose).count(),
        1,
        "only the `.T` not feeding a matmul"
    );
    assert_eq!(
        c.model.params[0].2,
        Init::Uniform {
            low: -(6.0f64 / 7.0).sqrt(),
            high: (6.0f64 / 7.0).sqrt()
        }
    );
    assert_eq!(c.model.params[1].2, Init::Ones);
    assert_eq!(shape(&c.model.outputs[2].1), "4x4");
}

#[test]
fn builtins_map_to_their_ops_with_lean_attributes() {
    let c = model(
        "let p = softmax(x, axis: 1)\n output a = sum(x, axis: 1)\n output b = mean(x)\n output m = max(x, axis: [0, 1], keepdims: true)\n output i = argmax(p, axis: 1)\n output r = reshape(x, [-1, 2, 2])\n output t = transpose(r, perm: [0, 2, 1])\n output w = where(x > 0, x, 0.0)\n output l = leaky_relu(x, negative_slope: 0.2)\n output k = leaky_relu(x)\n output e = concat([x, x], axis: 1)\n output s = slice(x, axis: 1, end: 2)\n output o = one_hot(argmax(x, axis: 1), num_classes: 3)",
    );
    let f = forward(&c);
    let attrs = |k: OpKind| -> Vec<String> {
        f.body_ops()
            .iter()
            .map(|&o| f.op(o))
            .filter(|o| o.kind == k)
            .map(|o| dlc_ir::print::print_attr_dict(&o.attrs))
            .collect()
    };
    assert_eq!(attrs(OpKind::ReduceSum), ["{axes = [1]}"]);
    assert_eq!(attrs(OpKind::ReduceMean), ["{axes = [0, 1]}"]);
    assert_eq!(attrs(OpKind::ReduceMax), ["{axes = [0, 1], keepdims = true}"]);
    assert_eq!(attrs(OpKind::LeakyRelu), ["{alpha = 0.2}", "{}"]);
    assert_eq!(attrs(OpKind::Cmp), ["{predicate = \"gt\"}"]);
    assert_eq!(attrs(OpKind::Slice), ["{axis = 1, end = 2, start = 0}"]);
    let outs: Vec<String> = c.model.outputs.iter().map(|(n, t)| format!("{n}:{}", t)).collect();
    assert_eq!(
        outs,
        [
            "a:tensor<?xf32>",
            "b:tensor<f32>",
            "m:tensor<1x1xf32>",
            "i:tensor<?xi64>",
            "r:tensor<?x2x2xf32>",
            "t:tensor<?x2x2xf32>",
            "w:tensor<?x4xf32>",
            "l:tensor<?x4xf32>",
            "k:tensor<?x4xf32>",
            "e:tensor<?x8xf32>",
            "s:tensor<?x2xf32>",
            "o:tensor<?x3xf32>",
        ]
    );
}

#[test]
fn conv_pool_and_embedding_layers() {
    let src = "model M {\n input img: f32[batch, 3, 8, 8]\n input tok: i64[batch, 5]\n c = Conv2d(3, 4, kernel: 3, stride: 2, padding: 1, bias: false)\n p = AvgPool2d(2, stride: 1)\n emb = Embedding(10, 6)\n output y = p(c(img))\n output e = emb(tok)\n}";
    let c = compiled("t.dl", src);
    let f = forward(&c);
    let conv = f.body_ops().iter().map(|&o| f.op(o)).find(|o| o.kind == OpKind::Conv2d).unwrap();
    assert_eq!(conv.attrs.get("stride"), Some(&Attr::ints(&[2, 2])));
    assert_eq!(conv.attrs.get("padding"), Some(&Attr::ints(&[1, 1])));
    assert_eq!(conv.attrs.get("dilation"), None);
    let outs: Vec<String> = c.model.outputs.iter().map(|(n, t)| format!("{n}:{}", shape(t))).collect();
    assert_eq!(outs, ["y:?x4x3x3", "e:?x5x6"]);
    assert_eq!(c.model.params.iter().map(|p| p.0.as_str()).collect::<Vec<_>>(), ["c.weight", "emb.weight"]);
    assert_eq!(c.model.params[1].2, Init::Normal { mean: 0.0, std: 1.0 });
}

#[test]
fn functions_defaults_and_absent_parameters() {
    let src = "fn scale(x, by: float = 2) { x * by }\nlayer Affine(n: int, shift: bool = false) {\n param w: f32[n] = ones()\n param b: f32[n] = zeros() if shift\n fn forward(x: f32[batch, n]) -> f32[batch, n] { x * w + b }\n}\nmodel M {\n input x: f32[batch, 4]\n a = Affine(4)\n b = Affine(4, shift: true)\n fn twice(v) { a(a(v)) }\n output y = scale(twice(x))\n output z = b(x)\n}";
    let c = compiled("t.dl", src);
    assert_eq!(c.model.params.iter().map(|p| p.0.as_str()).collect::<Vec<_>>(), ["a.w", "b.w", "b.b"]);
    use OpKind::*;
    assert_eq!(kinds(forward(&c)), [Mul, Mul, Constant, Mul, Mul, Add, Return]);
}

#[test]
fn inputs_of_other_dtypes_and_comparisons() {
    let src = "model M {\n input x: f32[batch, 4]\n input mask: bool[batch, 4]\n input n: i32[batch]\n output y = where(mask, x, -x)\n output c = cast(n, f32) + 1\n output k = n * 2 == 4\n}";
    let c = compiled("t.dl", src);
    let outs: Vec<String> = c.model.outputs.iter().map(|(n, t)| format!("{n}:{t}")).collect();
    assert_eq!(outs, ["y:tensor<?x4xf32>", "c:tensor<?xf32>", "k:tensor<?xi1>"]);
    dlc_ir::verify_module(&c.module).unwrap();
}

#[test]
fn aliases_and_user_layers_shadowing_the_prelude() {
    let src = "layer Fc = Dense2\nlayer Dense2 = Linear\nlayer ReLU {\n fn forward(x) { sigmoid(x) }\n}\nmodel M {\n input x: f32[batch, 4]\n fc = Fc(4, 2)\n act = ReLU\n output y = act(fc(x))\n}";
    let c = compiled("t.dl", src);
    assert_eq!(
        kinds(forward(&c)),
        [OpKind::Matmul, OpKind::Add, OpKind::Sigmoid, OpKind::Return],
        "the user's ReLU wins"
    );
    assert_eq!(c.model.params.iter().map(|p| p.0.as_str()).collect::<Vec<_>>(), ["fc.weight", "fc.bias"]);
}
