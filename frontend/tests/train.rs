//! The train block: PyTorch's defaults filled in, every option read, the
//! label found (an input or the data's label column) with the type the loss
//! implies, and bad values rejected.

mod common;

use common::*;
use dlc_frontend::*;
use dlc_ir::{DType, Dim, TensorType};

fn spec(train: &str) -> TrainSpec {
    let src = format!(
        "model M {{\n    input x: f32[batch, 4]\n    fc = Linear(4, 3)\n    output logits = fc(x)\n    output p = sigmoid(fc(x))\n    train {{\n{train}\n    }}\n}}\n"
    );
    compiled("t.dl", &src).model.train.expect("a train spec")
}

fn errs(train: &str) -> Vec<&'static str> {
    codes(&format!(
        "model M {{\n    input x: f32[batch, 4]\n    input y: f32[batch, 3]\n    input z: f32[batch]\n    fc = Linear(4, 3)\n    output logits = fc(x)\n    train {{\n{train}\n    }}\n}}\n"
    ))
}

#[test]
fn defaults_follow_pytorch_and_keras() {
    let s = spec("loss: mse(p, t)\n data: csv(\"d.csv\", label: \"t\")\n optimizer: sgd");
    assert_eq!((s.epochs, s.batch_size, s.seed, s.shuffle), (1, 32, 0, true));
    assert_eq!(
        s.optimizer.kind,
        Optimizer::Sgd {
            lr: 1e-3,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0
        }
    );
    assert_eq!(s.loss.reduction, Reduction::Mean);
    assert_eq!(s.features, ["x"]);
    let d = s.data.unwrap();
    assert_eq!(
        (d.format, d.split, d.scale, d.stratify, d.standardize),
        (DataFormat::Csv, None, None, false, false)
    );
    let opt = |o: &str| {
        spec(&format!("loss: mse(p, t)\n data: csv(\"d.csv\", label: \"t\")\n optimizer: {o}"))
            .optimizer
            .kind
    };
    assert_eq!(
        opt("adam()"),
        Optimizer::Adam {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: false
        }
    );
    assert_eq!(
        opt("adamw()"),
        Optimizer::AdamW {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 1e-2,
            amsgrad: false
        }
    );
    assert_eq!(
        opt("adagrad()"),
        Optimizer::Adagrad {
            lr: 1e-2,
            lr_decay: 0.0,
            weight_decay: 0.0,
            initial_accumulator_value: 0.0,
            eps: 1e-10
        }
    );
    assert_eq!(
        opt("rmsprop()"),
        Optimizer::RmsProp {
            lr: 1e-2,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false
        }
    );
    assert_eq!(
        opt("sgd(0.1, momentum: 0.9, nesterov: true, weight_decay: 5e-4)"),
        Optimizer::Sgd {
            lr: 0.1,
            momentum: 0.9,
            dampening: 0.0,
            nesterov: true,
            weight_decay: 5e-4
        }
    );
    assert_eq!(
        opt("adam(lr: 3e-4, betas: (0.8, 0.99), eps: 1e-6, amsgrad: true)"),
        Optimizer::Adam {
            lr: 3e-4,
            beta1: 0.8,
            beta2: 0.99,
            eps: 1e-6,
            weight_decay: 0.0,
            amsgrad: true
        }
    );
    assert_eq!(opt("rmsprop(alpha: 0.9, centered: true)").lr(), 1e-2);
}

#[test]
fn every_example_reads_as_intended() {
    let t = |n: &str| compiled(n, &example(n)).model.train.unwrap();
    let digits = t("digits_mlp");
    assert_eq!((digits.epochs, digits.batch_size, digits.seed), (20, 32, 0));
    let d = digits.data.as_ref().unwrap();
    assert_eq!(
        (d.path.as_str(), d.label.as_deref(), d.stratify, d.scale),
        ("data/digits.csv", Some("label"), true, Some(1.0 / 16.0))
    );
    assert!((d.split.unwrap() - 0.8).abs() < 1e-12, "test: 0.2 holds out 20%");
    assert_eq!(digits.loss.kind, LossKind::CrossEntropy);
    assert_eq!(
        digits.loss.label,
        Label {
            name: "label".into(),
            source: LabelSource::Column,
            ty: TensorType::new(vec![Dim::Dynamic], DType::I64)
        }
    );
    assert_eq!(digits.optimizer.kind.lr(), 1e-3);
    let mlp = t("mlp");
    assert_eq!((mlp.batch_size, mlp.data.unwrap().scale), (64, Some(1.0 / 255.0)));
    let logistic = t("logistic");
    assert_eq!(logistic.loss.kind, LossKind::BceWithLogits);
    assert_eq!(logistic.loss.label.ty, TensorType::new(vec![Dim::Dynamic, Dim::Static(1)], DType::F32));
    assert!(logistic.data.unwrap().standardize);
    assert!(matches!(logistic.optimizer.kind, Optimizer::Sgd { lr: 0.01, .. }));
    let keras = t("keras_dense");
    assert_eq!(
        (keras.loss.kind, keras.loss.label.source, keras.features.clone()),
        (LossKind::Bce, LabelSource::Column, vec!["x".to_string()])
    );
    let fcn = t("fcn");
    assert_eq!(
        (fcn.loss.kind, fcn.loss.output.as_str(), fcn.loss.label.name.as_str()),
        (LossKind::Mse, "y", "target")
    );
    assert_eq!(fcn.data.unwrap().label_scale, Some(1.0 / 100.0));
}

#[test]
fn spans_point_at_the_source() {
    let src = example("mlp");
    let s = compiled("mlp", &src).model.train.unwrap();
    let d = s.data.unwrap();
    assert_eq!(&src[d.path_span.clone()], "\"data/mnist_5k.csv.gz\"");
    assert_eq!(&src[s.loss.span.clone()], "cross_entropy(logits, label)");
    assert_eq!(&src[s.optimizer.span.clone()], "adam(lr: 1e-3)");
    let keys: Vec<&str> = s.entry_spans.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["data", "loss", "optimizer", "epochs", "batch_size", "seed"]);
}

#[test]
fn data_options() {
    let d = |o: &str| spec(&format!("loss: mse(p, t)\n optimizer: sgd\n data: {o}")).data.unwrap();
    let n = d("npz(\"d.npz\", features: \"x\", label: \"t\", split: 0.75, standardize: true)");
    assert_eq!((n.format, n.features.as_deref(), n.split), (DataFormat::Npz, Some("x"), Some(0.75)));
    let i = d("idx(\"images.idx\", label: \"t\", scale: 1 / 255)");
    assert_eq!((i.format, i.label.as_deref(), i.scale), (DataFormat::Idx, Some("t"), Some(1.0 / 255.0)));
}

#[test]
fn labels_and_losses_are_checked_against_the_model() {
    use codes::*;
    // A declared label input of the right type.
    assert!(compile("t.dl", "model M {\n input x: f32[batch, 4]\n input y: i64[batch]\n fc = Linear(4, 3)\n output l = fc(x)\n train { loss: cross_entropy(l, y, reduction: \"sum\")\n optimizer: adam }\n}").is_ok());
    assert_eq!(errs("loss: cross_entropy(logits, y)\n optimizer: adam"), [SHAPE_MISMATCH]);
    assert_eq!(errs("loss: cross_entropy(logits, z)\n optimizer: adam"), [DTYPE_MISMATCH]);
    assert_eq!(errs("loss: mse(logits, z)\n optimizer: adam"), [SHAPE_MISMATCH]);
    assert_eq!(errs("loss: mse(logits, y, reduction: \"max\")\n optimizer: adam"), [BAD_TRAIN_VALUE]);
    assert_eq!(errs("loss: mse(logits, logits)\n optimizer: adam"), [LOSS_TARGET]);
    assert_eq!(errs("loss: mse(logits)\n optimizer: adam"), [ARITY]);
    assert_eq!(errs("loss: mse\n optimizer: adam"), [ARITY]);
    assert_eq!(errs("loss: 3\n optimizer: adam"), [BAD_TRAIN_VALUE]);
    // Two inputs besides the label: which one do the features feed?
    assert_eq!(errs("loss: mse(logits, y)\n optimizer: adam\n data: csv(\"d.csv\")"), [TRAIN_INCOMPLETE]);
    assert_eq!(errs("loss: mse(logits, y)\n optimizer: adam\n data: parquet(\"d\")"), [BAD_TRAIN_VALUE]);
    assert_eq!(errs("loss: mse(logits, y)\n optimizer: adam\n data: csv(label: \"y\")"), [ARITY]);
    assert_eq!(
        errs("loss: mse(logits, y)\n optimizer: adam\n data: csv(\"a\", split: 0.8, test: 0.2)"),
        [BAD_TRAIN_VALUE]
    );
    assert_eq!(errs("loss: mse(logits, y)\n optimizer: adam(betas: (0.9, 1.5))"), [BAD_TRAIN_VALUE]);
    assert_eq!(errs("loss: mse(logits, y)\n optimizer: adam(betas: 0.9)"), [BAD_TRAIN_VALUE]);
    assert_eq!(errs("loss: mse(logits, y)\n optimizer: adam(eps: -1)"), [BAD_TRAIN_VALUE]);
    assert_eq!(errs("loss: mse(logits, y)\n optimizer: adam\n shuffle: 1"), [BAD_TRAIN_VALUE]);
    assert_eq!(errs("loss: mse(logits, y)\n optimizer: adam\n seed: -1"), [BAD_TRAIN_VALUE]);
    assert_eq!(errs("loss: mse(logits, y)\n optimizer: adam\n epochs: 1\n epochs: 2"), [DUPLICATE]);
    assert_eq!(errs("loss: mse(logits, y)\n optimizer: adam\n seed: x"), [BAD_TRAIN_VALUE]);
    assert_eq!(errs("loss: mse(logits, y)"), [TRAIN_INCOMPLETE]);
}

#[test]
fn cross_entropy_needs_class_scores() {
    let src = "model M {\n input x: f32[batch, 4]\n fc = Linear(4, 3)\n output s = sum(fc(x), axis: 1)\n train { data: csv(\"d\", label: \"label\")\n loss: cross_entropy(s, label)\n optimizer: adam }\n}";
    assert_eq!(codes(src), [codes::SHAPE_MISMATCH]);
}

#[test]
fn a_model_without_train_block_has_no_spec() {
    assert!(compiled("t.dl", "model M {\n input x: f32[batch, 4]\n output y = x\n}").model.train.is_none());
}
