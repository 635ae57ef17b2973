//! One small source per kind of mistake, with its rendered diagnostic
//! (color off) snapshotted: the text a user reads is the contract.

mod common;

use common::*;
use dlc_frontend::codes;

/// Renders the diagnostics of `src`, checks their codes, and snapshots the text.
macro_rules! case {
    ($name:ident, [$($code:expr),+], $src:expr) => {
        #[test]
        fn $name() {
            let src: &str = $src;
            assert_eq!(codes(src), [$($code),+], "{}", rendered(src));
            insta::assert_snapshot!(stringify!($name), rendered(src));
        }
    };
}

case!(
    syntax_errors_recover_and_say_what_was_expected,
    [codes::SYNTAX, codes::SYNTAX],
    "\
model M {
    input x f32[batch, 3]
    output y = relu(x
    output z = x +
}
"
);

case!(
    keyword_argument_written_with_equals,
    [codes::SYNTAX],
    "\
model M {
    input x: f32[batch, 1, 28, 28]
    conv = Conv2d(1, 8, kernel_size = 3)
    output y = conv(x)
}
"
);

case!(
    invalid_character_and_unterminated_string,
    [codes::INVALID_CHAR, codes::UNTERMINATED_STRING],
    "\
model M {
    input x: f32[batch, 3]
    output y = x € 2
    train { data: csv(\"data.csv) }
}
"
);

case!(
    nesting_too_deep,
    [codes::TOO_DEEP],
    &format!(
        "model M {{\n    input x: f32[batch, 3]\n    output y = {}x{}\n}}\n",
        "relu(\n".repeat(200),
        ")".repeat(200)
    )
);

case!(
    continued_line_hint,
    [codes::SYNTAX],
    "\
model M {
    input x: f32[batch, 3]
    let y = x
        + 1
    output z = y
}
"
);

case!(
    unknown_name_with_suggestion,
    [codes::UNKNOWN_NAME, codes::UNKNOWN_NAME],
    "\
model M {
    input x: f32[batch, 784]
    fc1 = Linaer(784, 10)
    output y = softmx(fc1(x), axis: 1)
}
"
);

case!(
    unknown_name_with_module_prefix,
    [codes::UNKNOWN_NAME],
    "\
model M {
    input x: f32[batch, 784]
    fc = nn.Linear(784, 10)
    output y = fc(x)
}
"
);

case!(
    used_before_its_definition,
    [codes::UNKNOWN_NAME],
    "\
model M {
    input x: f32[batch, 4]
    output y = fc(x)
    fc = Linear(4, 2)
}
"
);

case!(
    duplicate_definitions_point_at_both,
    [codes::DUPLICATE, codes::DUPLICATE],
    "\
layer Block(n: int) {
    fn forward(x) { x }
}
layer Block(n: int) {
    fn forward(x) { relu(x) }
}
model M {
    input x: f32[batch, 4]
    output y = x
    output y = relu(x)
}
"
);

case!(
    missing_argument,
    [codes::ARITY],
    "\
model M {
    input x: f32[batch, 784]
    fc = Linear(784)
    output y = fc(x)
}
"
);

case!(
    too_many_arguments,
    [codes::ARITY],
    "\
model M {
    input x: f32[batch, 4]
    output y = relu(x, 1)
}
"
);

case!(
    unknown_keyword_argument,
    [codes::UNKNOWN_KEYWORD],
    "\
model M {
    input x: f32[batch, 1, 28, 28]
    conv = Conv2d(1, 8, kernel_size: 3)
    output y = conv(x)
}
"
);

case!(
    argument_given_twice,
    [codes::DUPLICATE_ARG],
    "\
model M {
    input x: f32[batch, 4]
    fc = Linear(4, 2, in: 4)
    output y = fc(x)
}
"
);

case!(
    shape_mismatch_in_sequential_after_flatten,
    [codes::SHAPE_MISMATCH],
    "\
model MnistCnn {
    input image: f32[batch, 1, 28, 28]
    net = Sequential(
        Conv2d(1, 32, kernel: 3), ReLU, MaxPool2d(2),
        Conv2d(32, 64, kernel: 3), ReLU, MaxPool2d(2),
        Conv2d(64, 64, kernel: 3), ReLU,
        Flatten, Linear(500, 64), ReLU, Linear(64, 10),
    )
    output logits = net(image)
}
"
);

case!(
    shape_mismatch_calling_a_layer,
    [codes::SHAPE_MISMATCH],
    "\
model M {
    input x: f32[batch, 784]
    fc1 = Linear(784, 128)
    fc2 = Linear(100, 10)
    let h = relu(fc1(x))
    output y = fc2(h)
}
"
);

case!(
    shape_mismatch_rank_into_conv,
    [codes::SHAPE_MISMATCH],
    "\
model M {
    input x: f32[batch, 784]
    conv = Conv2d(1, 8, kernel: 3)
    output y = conv(x)
}
"
);

case!(
    shape_mismatch_against_a_declared_type,
    [codes::SHAPE_MISMATCH],
    "\
model M {
    input x: f32[batch, 4]
    let y: f32[batch, 5] = x * 2
    output z = y
}
"
);

case!(
    op_rejects_operands,
    [codes::OP_SHAPE, codes::OP_SHAPE],
    "\
model M {
    input x: f32[batch, 4]
    param w: f32[5, 3] = zeros()
    param b: f32[5] = zeros()
    output y = x @ w
    output z = x + b
}
"
);

case!(
    op_error_inside_the_prelude_points_at_the_user_call,
    [codes::OP_SHAPE],
    "\
model M {
    input x: f32[batch, 1, 4, 4]
    pool = MaxPool2d(5)
    output y = pool(x)
}
"
);

case!(
    dtype_mismatch,
    [codes::DTYPE_MISMATCH, codes::DTYPE_MISMATCH],
    "\
model M {
    input x: f32[batch, 4]
    input n: i64[batch, 4]
    output y = x + n
    output z = n * 0.5
}
"
);

case!(
    dtype_mismatch_against_a_declared_type,
    [codes::DTYPE_MISMATCH],
    "\
fn classes(x: i64[batch]) { x }
model M {
    input x: f32[batch, 10]
    output c = classes(argmax(x, axis: 1) + 0)
    output d = classes(sum(x, axis: 1))
}
"
);

case!(
    wrong_kind_of_value,
    [codes::WRONG_KIND, codes::WRONG_KIND],
    "\
model M {
    input x: f32[batch, 4]
    fc = Linear(4, 2)
    let n = 3
    output y = n(x)
    output z = relu(fc)
}
"
);

case!(
    misplaced_statements,
    [codes::MISPLACED, codes::MISPLACED],
    "\
layer L {
    input x: f32[batch, 4]
    fn forward(x) {
        param w: f32[4] = zeros()
        x
    }
}
model M {
    input x: f32[batch, 4]
    output y = x
}
"
);

case!(
    layer_with_parameters_needs_a_name,
    [codes::UNNAMED_LAYER],
    "\
model M {
    input x: f32[batch, 4]
    output y = Linear(4, 2)(x)
}
"
);

case!(
    unknown_member,
    [codes::UNKNOWN_FIELD],
    "\
model M {
    input x: f32[batch, 4]
    fc = Linear(4, 2)
    output w = fc.weights
}
"
);

case!(
    no_model,
    [codes::MODEL_COUNT],
    "\
layer L {
    fn forward(x) { x }
}
"
);

case!(
    model_without_outputs,
    [codes::MODEL_INCOMPLETE],
    "\
model M {
    input x: f32[batch, 4]
}
"
);

case!(
    recursion_is_reported,
    [codes::TOO_DEEP],
    "\
fn f(x) { f(x) + 1 }
model M {
    input x: f32[batch, 4]
    output y = f(x)
}
"
);

case!(
    compile_time_arithmetic_error,
    [codes::CONST_EVAL],
    "\
model M {
    input x: f32[batch, 4]
    output y = x * (1 / (2 - 2))
}
"
);

case!(
    unknown_initializer,
    [codes::UNKNOWN_INIT],
    "\
model M {
    input x: f32[batch, 4]
    param w: f32[4] = zero()
    output y = x * w
}
"
);

case!(
    bad_initializer_arguments,
    [codes::BAD_INIT, codes::UNKNOWN_KEYWORD],
    "\
model M {
    input x: f32[batch, 4]
    param w: f32[4] = uniform(1, -1)
    param v: f32[4, 4] = kaiming_normal(mode: \"fan_out\", gain: 2)
    output y = x * w
}
"
);

case!(
    initializer_fan_cannot_be_computed,
    [codes::INIT_FAN],
    "\
model M {
    input x: f32[batch, 4]
    param w: f32[4] = xavier_uniform()
    output y = x * w
}
"
);

case!(
    unknown_loss,
    [codes::UNKNOWN_LOSS],
    "\
model M {
    input x: f32[batch, 4]
    fc = Linear(4, 3)
    output logits = fc(x)
    train {
        data: csv(\"d.csv\", label: \"label\")
        loss: crossentropy(logits, label)
        optimizer: adam()
    }
}
"
);

case!(
    unknown_optimizer,
    [codes::UNKNOWN_OPTIMIZER],
    "\
model M {
    input x: f32[batch, 4]
    fc = Linear(4, 3)
    output logits = fc(x)
    train {
        data: csv(\"d.csv\", label: \"label\")
        loss: cross_entropy(logits, label)
        optimizer: Adam(lr: 1e-3)
    }
}
"
);

case!(
    unknown_hyper_parameter_and_option,
    [codes::UNKNOWN_OPTION, codes::UNKNOWN_OPTION],
    "\
model M {
    input x: f32[batch, 4]
    fc = Linear(4, 3)
    output logits = fc(x)
    train {
        data: csv(\"d.csv\", label: \"label\")
        loss: cross_entropy(logits, label)
        optimizer: adam(learning_rate: 1e-3)
        epoch: 5
    }
}
"
);

case!(
    invalid_train_values,
    [
        codes::BAD_TRAIN_VALUE,
        codes::BAD_TRAIN_VALUE,
        codes::BAD_TRAIN_VALUE,
        codes::BAD_TRAIN_VALUE,
        codes::BAD_TRAIN_VALUE
    ],
    "\
model M {
    input x: f32[batch, 4]
    fc = Linear(4, 3)
    output logits = fc(x)
    train {
        data: csv(\"d.csv\", label: \"label\", split: 1.5)
        loss: cross_entropy(logits, label)
        optimizer: sgd(lr: -0.1, nesterov: true)
        epochs: 2.5, batch_size: 0
    }
}
"
);

case!(
    loss_names_unknown_output_and_label,
    [codes::LOSS_TARGET, codes::LOSS_TARGET],
    "\
model M {
    input x: f32[batch, 4]
    fc = Linear(4, 3)
    output logits = fc(x)
    train {
        data: csv(\"d.csv\", label: \"label\")
        loss: cross_entropy(logit, labels)
        optimizer: adam()
    }
}
"
);

case!(
    loss_label_type_mismatch,
    [codes::SHAPE_MISMATCH],
    "\
model M {
    input x: f32[batch, 4]
    input y: f32[batch]
    fc = Linear(4, 1)
    output p = fc(x)
    train {
        loss: mse(p, y)
        optimizer: sgd(lr: 0.1)
    }
}
"
);

case!(
    train_block_missing_loss,
    [codes::TRAIN_INCOMPLETE],
    "\
model M {
    input x: f32[batch, 4]
    output y = x
    train {
        optimizer: adam()
    }
}
"
);

case!(
    model_expands_past_the_budget,
    [codes::TOO_LARGE],
    "\
fn twice(x) { x + x }
fn f1(x) { twice(twice(twice(twice(x)))) }
fn f2(x) { f1(f1(f1(f1(x)))) }
fn f3(x) { f2(f2(f2(f2(x)))) }
fn f4(x) { f3(f3(f3(f3(x)))) }
fn f5(x) { f4(f4(f4(f4(x)))) }
fn f6(x) { f5(f5(f5(f5(x)))) }
fn f7(x) { f6(f6(f6(f6(x)))) }
fn f8(x) { f7(f7(f7(f7(x)))) }
fn f9(x) { f8(f8(f8(f8(x)))) }
model M {
    input x: f32[batch, 4]
    output y = f9(x)
}
"
);
