//! Every initializer, written in a model, reduces to the numbers PyTorch's
//! `torch.nn.init` formulas give for the parameter's shape (computed here by
//! hand), with argument expressions evaluated at compile time.

mod common;

use common::*;
use dlc_ir::Init;

fn inits(params: &str) -> Vec<(String, Init)> {
    let src = format!("model M {{\n    input x: f32[batch, 4]\n{params}\n    output y = x\n}}\n");
    compiled("init.dl", &src).model.params.into_iter().map(|(n, _, i)| (n, i)).collect()
}

fn uniform(b: f64) -> Init {
    Init::Uniform { low: -b, high: b }
}

fn assert_close(got: &Init, want: &Init) {
    let pair = |i: &Init| match *i {
        Init::Uniform { low, high } => (low, high),
        Init::Normal { mean, std } => (mean, std),
        Init::Constant(v) => (v, v),
        Init::Zeros => (0.0, 0.0),
        Init::Ones => (1.0, 1.0),
    };
    assert_eq!(std::mem::discriminant(got), std::mem::discriminant(want), "{got:?} vs {want:?}");
    let ((a, b), (c, d)) = (pair(got), pair(want));
    assert!(
        (a - c).abs() <= 1e-15 * c.abs().max(1.0) && (b - d).abs() <= 1e-15 * d.abs().max(1.0),
        "{got:?} vs {want:?}"
    );
}

#[test]
fn each_initializer_matches_pytorchs_formula() {
    let got = inits(
        "    param a: f32[3] = zeros()
    param b: f32[3] = ones()
    param c: f32[3] = constant(0.25)
    param d: f32[3] = uniform(-0.1, 0.1)
    param e: f32[3] = normal(0, 0.02)
    param f: f32[20, 30] = xavier_uniform()
    param g: f32[20, 30] = glorot_uniform(gain: 2)
    param h: f32[20, 30, 3, 3] = xavier_normal()
    param i: f32[20, 30] = kaiming_uniform(a: sqrt(5))
    param j: f32[20, 30, 5, 5] = kaiming_uniform(a: sqrt(5))
    param k: f32[20, 30] = kaiming_uniform(nonlinearity: \"relu\")
    param l: f32[20, 30] = he_uniform(mode: \"fan_out\")
    param m: f32[20, 30] = kaiming_normal(a: 0.2)
    param n: f32[20, 30] = he_normal(nonlinearity: \"tanh\", mode: \"fan_out\")
    param o: f32[20, 30] = kaiming_normal(0, \"fan_in\", \"linear\")
    param p: f32[20] = uniform(-1 / sqrt(30), 1 / sqrt(30))",
    );
    let s = f64::sqrt;
    let want = [
        ("a", Init::Zeros),
        ("b", Init::Ones),
        ("c", Init::Constant(0.25)),
        ("d", Init::Uniform { low: -0.1, high: 0.1 }),
        ("e", Init::Normal { mean: 0.0, std: 0.02 }),
        // xavier: gain * sqrt(6 / (fan_in + fan_out)); fan_in = 30, fan_out = 20.
        ("f", uniform(s(6.0 / 50.0))),
        ("g", uniform(2.0 * s(6.0 / 50.0))),
        // receptive field 9: fan_in 270, fan_out 180; std = sqrt(2 / 450).
        (
            "h",
            Init::Normal {
                mean: 0.0,
                std: s(2.0 / 450.0),
            },
        ),
        // PyTorch's Linear/Conv default: kaiming_uniform(a = sqrt(5)) = U(±1/sqrt(fan_in)).
        ("i", uniform(1.0 / s(30.0))),
        ("j", uniform(1.0 / s(30.0 * 25.0))),
        // relu gain sqrt(2): bound sqrt(3) * sqrt(2) / sqrt(fan_in) = sqrt(6 / fan_in).
        ("k", uniform(s(6.0 / 30.0))),
        ("l", uniform(s(6.0 / 20.0))),
        // leaky_relu gain sqrt(2 / (1 + a^2)).
        (
            "m",
            Init::Normal {
                mean: 0.0,
                std: s(2.0 / 1.04) / s(30.0),
            },
        ),
        (
            "n",
            Init::Normal {
                mean: 0.0,
                std: (5.0 / 3.0) / s(20.0),
            },
        ),
        ("o", Init::Normal { mean: 0.0, std: 1.0 / s(30.0) }),
        ("p", uniform(1.0 / s(30.0))),
    ];
    assert_eq!(got.len(), want.len());
    for ((gn, gi), (wn, wi)) in got.iter().zip(&want) {
        assert_eq!(gn, wn);
        assert_close(gi, wi);
    }
}

#[test]
fn layer_defaults_use_the_layers_fan_in() {
    let src = "model M {\n input x: f32[batch, 3, 16, 16]\n c = Conv2d(3, 8, kernel: 5)\n f = Flatten\n l = Linear(8 * 12 * 12, 7)\n output y = l(f(c(x)))\n}";
    let p = compiled("t.dl", src).model.params;
    let fan_conv = 3.0f64 * 25.0;
    let fan_lin = 8.0f64 * 144.0;
    for (i, fan) in [fan_conv, fan_conv, fan_lin, fan_lin].into_iter().enumerate() {
        assert_close(&p[i].2, &uniform(1.0 / fan.sqrt()));
    }
}

#[test]
fn initializer_errors() {
    let pre = "model M {\n input x: f32[batch, 4]\n";
    for (param, code) in [
        ("param w: f32[4] = kaiming_uniform()", dlc_frontend::codes::INIT_FAN),
        ("param w: f32[4, 0] = xavier_normal()", dlc_frontend::codes::INIT_FAN),
        ("param w: f32[4] = normal(0, -1)", dlc_frontend::codes::BAD_INIT),
        ("param w: f32[4, 4] = kaiming_normal(nonlinearity: \"swish\")", dlc_frontend::codes::BAD_INIT),
        ("param w: f32[4, 4] = kaiming_normal(mode: 3)", dlc_frontend::codes::BAD_INIT),
        ("param w: f32[4] = constant()", dlc_frontend::codes::BAD_INIT),
        ("param w: f32[4] = constant(true)", dlc_frontend::codes::BAD_INIT),
        ("param w: f32[4] = zeros(1)", dlc_frontend::codes::ARITY),
        ("param w: f32[4] = uniform(lo: 1)", dlc_frontend::codes::UNKNOWN_KEYWORD),
        ("param w: f32[4] = glorot()", dlc_frontend::codes::UNKNOWN_INIT),
        ("param w: f32[4] = 0.5", dlc_frontend::codes::UNKNOWN_INIT),
        ("param w: f32[batch, 4] = zeros()", dlc_frontend::codes::BAD_ARGUMENT),
    ] {
        let src = format!("{pre} {param}\n output y = x\n}}");
        assert_eq!(codes(&src), [code], "{param}:\n{}", rendered(&src));
    }
}
