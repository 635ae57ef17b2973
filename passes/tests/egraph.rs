//! The `egraph` pass's rules, one line each in egg's style: under the given
//! leaf types, the start term and the expected term end up in one e-class
//! when the rule alone runs (`=>`), or do not (`!=>`: the rule must not
//! fire). Every rule has a line; `every_rule_has_a_test` fails otherwise.
//! Then the language, the analysis (types, constant folding) and the pass on
//! small functions.
//!
//! Leaf types are written as the inside of `tensor<…>`: `3x4xf32`, `?x10xf32`,
//! `f32`. `c(v)` below is an f32 rank-0 splat constant. The loss lines name
//! their long sub-terms (`$u`, `$p`, …; see `DEFS`).

mod egraph_common;

use egraph_common::bce_of_sigmoid_with_gradient;
use dlc_backends::{Tensor, run};
use dlc_ir::{DType, Dim, Function, OpKind, TensorType, Type, parse_module, print_function, verify_function};
use dlc_passes::egraph::analysis::{DlAnalysis, Graph};
use dlc_passes::egraph::lang::Dl;
use dlc_passes::egraph::{optimize, rules};
use egg::{RecExpr, Runner};
use std::collections::BTreeSet;

/// One line: rule, leaf types, start term, `=>` or `!=>`, expected term.
type Case = (&'static str, &'static str, &'static str, &'static str, &'static str);

const C1: &str = "constant{value=dense<1.0>:tensor<f32>}";

#[rustfmt::skip]
const CASES: &[Case] = &[
    // --- algebra
    ("mul_one",      "3xf32",          "(mul %0 constant{value=dense<1.0>:tensor<f32>})",          "=>",  "%0"),
    ("mul_one",      "3xf32",          "(mul constant{value=dense<1.0>:tensor<f32>} %0)",          "=>",  "%0"),
    ("mul_one",      "3xi64",          "(mul %0 constant{value=dense<1>:tensor<i64>})",            "=>",  "%0"),
    ("mul_one",      "f32",            "(mul %0 constant{value=dense<1.0>:tensor<3xf32>})",        "!=>", "%0"),
    ("mul_one",      "3xf32",          "(mul %0 constant{value=dense<1.0000001>:tensor<f32>})",    "!=>", "%0"),
    ("div_one",      "3xf32",          "(div %0 constant{value=dense<1.0>:tensor<f32>})",          "=>",  "%0"),
    ("div_one",      "3xf32",          "(div constant{value=dense<1.0>:tensor<f32>} %0)",          "!=>", "%0"),
    ("add_zero",     "3xf32",          "(add %0 constant{value=dense<-0.0>:tensor<f32>})",         "=>",  "%0"),
    ("add_zero",     "3xf32",          "(add constant{value=dense<-0.0>:tensor<f32>} %0)",         "=>",  "%0"),
    ("add_zero",     "3xf32",          "(add %0 constant{value=dense<0.0>:tensor<f32>})",          "!=>", "%0"),
    ("add_zero",     "3xi32",          "(add constant{value=dense<0>:tensor<i32>} %0)",            "=>",  "%0"),
    ("sub_zero",     "3xf32",          "(sub %0 constant{value=dense<0.0>:tensor<f32>})",          "=>",  "%0"),
    ("sub_zero",     "3xf32",          "(sub %0 constant{value=dense<-0.0>:tensor<f32>})",         "!=>", "%0"),
    ("sub_zero",     "3xf32",          "(sub constant{value=dense<0.0>:tensor<f32>} %0)",          "!=>", "%0"),
    ("mul_neg_one",  "3xf32",          "(mul constant{value=dense<-1.0>:tensor<f32>} %0)",         "=>",  "(neg %0)"),
    ("div_pow2",     "3xf32",          "(div %0 constant{value=dense<4.0>:tensor<f32>})",          "=>",  "(mul %0 constant{value=dense<0.25>:tensor<f32>})"),
    ("div_pow2",     "3xf64",          "(div %0 constant{value=dense<-0.5>:tensor<f64>})",         "=>",  "(mul %0 constant{value=dense<-2.0>:tensor<f64>})"),
    ("div_pow2",     "3xf32",          "(div %0 constant{value=dense<3.0>:tensor<f32>})",          "!=>", "(mul %0 constant{value=dense<0.3333333432674408>:tensor<f32>})"),
    ("div_pow2",     "3xf32",          "(div %0 constant{value=dense<1.0e38>:tensor<f32>})",       "!=>", "(mul %0 constant{value=dense<1.0e-38>:tensor<f32>})"),
    ("neg_neg",      "3xf32",          "(neg (neg %0))",                                           "=>",  "%0"),
    ("sub_neg",      "3xf32, f32",     "(sub %0 (neg %1))",                                        "=>",  "(add %0 %1)"),
    ("add_neg",      "3xf32, f32",     "(add (neg %1) %0)",                                        "=>",  "(sub %0 %1)"),
    ("abs_neg",      "3xf32",          "(abs (neg %0))",                                           "=>",  "(abs %0)"),
    ("abs_abs",      "3xi64",          "(abs (abs %0))",                                           "=>",  "(abs %0)"),
    ("relu_relu",    "3xf32",          "(relu (relu %0))",                                         "=>",  "(relu %0)"),
    ("max_same",     "3xf32",          "(maximum %0 %0)",                                          "=>",  "%0"),
    ("min_same",     "3xf32",          "(minimum %0 %0)",                                          "=>",  "%0"),
    ("select_true",  "3xf32, 3xf32",   "(select constant{value=dense<true>:tensor<i1>} %0 %1)",    "=>",  "%0"),
    ("select_true",  "3xf32, 3xf32",   "(select constant{value=dense<false>:tensor<i1>} %0 %1)",   "!=>", "%0"),
    ("select_false", "3xf32, 3xf32",   "(select constant{value=dense<false>:tensor<3xi1>} %0 %1)", "=>",  "%1"),
    ("select_false", "3xf32, f32",     "(select constant{value=dense<false>:tensor<3xi1>} %0 %1)", "!=>", "%1"),
    ("select_same",  "3xi1, 3xf32",    "(select %0 %1 %1)",                                        "=>",  "%1"),
    // --- layout
    ("transpose_transpose", "2x3x4xf32", "(transpose{perm=[0,2,1]} (transpose{perm=[1,2,0]} %0))", "=>", "(transpose{perm=[1,0,2]} %0)"),
    ("transpose_identity",  "3x3xf32",   "(transpose{perm=[0,1]} %0)",                              "=>",  "%0"),
    ("transpose_identity",  "3x3xf32",   "(transpose{perm=[1,0]} %0)",                              "!=>", "%0"),
    ("matmul_transpose_a",  "3x2xf32, 3x4xf32", "(matmul (transpose{perm=[1,0]} %0) %1)",           "=>",  "(matmul{transpose_a=true} %0 %1)"),
    ("matmul_transpose_a",  "5x3x2xf32, 3x4xf32", "(matmul (transpose{perm=[0,2,1]} %0) %1)",       "=>",  "(matmul{transpose_a=true} %0 %1)"),
    ("matmul_transpose_a",  "3x2x4xf32, 4x5xf32", "(matmul (transpose{perm=[1,0,2]} %0) %1)",       "!=>", "(matmul{transpose_a=true} %0 %1)"),
    ("matmul_transpose_b",  "2x3xf32, 4x3xf32", "(matmul %0 (transpose{perm=[1,0]} %1))",           "=>",  "(matmul{transpose_b=true} %0 %1)"),
    ("matmul_transpose_b",  "2x3xf32, 3x4xf32", "(matmul{transpose_b=true} %0 (transpose{perm=[1,0]} %1))", "=>", "(matmul %0 %1)"),
    ("transpose_matmul",    "?x3xf32, 3x4xf32", "(transpose{perm=[1,0]} (matmul %0 %1))",           "=>",  "(matmul{transpose_a=true,transpose_b=true} %1 %0)"),
    ("reshape_reshape",     "2x6xf32",   "(reshape{shape=[3,4]} (reshape{shape=[12]} %0))",        "=>",  "(reshape{shape=[3,4]} %0)"),
    ("reshape_reshape",     "?x6xf32",   "(reshape{shape=[-1,6]} (reshape{shape=[-1,2,3]} %0))",   "=>",  "(reshape{shape=[-1,6]} %0)"),
    ("broadcast_broadcast", "3xf32",     "(broadcast_to{shape=[4,2,3]} (broadcast_to{shape=[2,3]} %0))", "=>", "(broadcast_to{shape=[4,2,3]} %0)"),
    ("reshape_noop",        "2x3xf32",   "(reshape{shape=[2,3]} %0)",                               "=>",  "%0"),
    ("reshape_noop",        "2x3xf32",   "(reshape{shape=[3,2]} %0)",                               "!=>", "%0"),
    ("broadcast_noop",      "?x3xf32",   "(broadcast_to{shape=[-1,3]} %0)",                         "=>",  "%0"),
    ("cast_noop",           "3xf32",     "(cast{dtype=f32} %0)",                                    "=>",  "%0"),
    ("cast_noop",           "3xf32",     "(cast{dtype=f64} (cast{dtype=f64} %0))",                  "!=>", "%0"),
    ("relu_pool_grad",      "?x2x4x4xf32, ?x2x2x2xf32", "(select (cmp{predicate=\"gt\"} %0 $zero) (max_pool2d_grad{kernel=[2,2],stride=[2,2]} (relu %0) %1) $zero)", "=>", "(select (cmp{predicate=\"gt\"} %0 $zero) (max_pool2d_grad{kernel=[2,2],stride=[2,2]} %0 %1) $zero)"),
    ("relu_pool_grad",      "?x2x4x4xf32, ?x2x2x2xf32", "(select (cmp{predicate=\"gt\"} %0 constant{value=dense<-1.0>:tensor<f32>}) (max_pool2d_grad{kernel=[2,2],stride=[2,2]} (relu %0) %1) $zero)", "!=>", "(select (cmp{predicate=\"gt\"} %0 constant{value=dense<-1.0>:tensor<f32>}) (max_pool2d_grad{kernel=[2,2],stride=[2,2]} %0 %1) $zero)"),
    ("relu_pool_grad",      "?x2x4x4xf32, ?x2x2x2xf32", "(select (cmp{predicate=\"ge\"} %0 $zero) (max_pool2d_grad{kernel=[2,2],stride=[2,2]} (relu %0) %1) $zero)", "!=>", "(select (cmp{predicate=\"ge\"} %0 $zero) (max_pool2d_grad{kernel=[2,2],stride=[2,2]} %0 %1) $zero)"),
    // --- loss
    ("log_softmax",         "?x10xf32",  "(log (softmax{axis=1} %0))",                              "=>",  "(log_softmax{axis=1} %0)"),
    ("exp_log_softmax",     "?x10xf32",  "(exp (log_softmax{axis=-1} %0))",                         "=>",  "(softmax{axis=-1} %0)"),
    ("softmax_log_softmax", "?x10xf32",  "(softmax{axis=-1} (log_softmax{axis=1} %0))",             "=>",  "(softmax{axis=-1} %0)"),
    ("softmax_log_softmax", "4x10xf32",  "(softmax{axis=0} (log_softmax{axis=1} %0))",              "!=>", "(softmax{axis=0} %0)"),
    ("log1p_vjp",           "?x1xf32, ?x1xf32",           "$log1p_vjp",                             "=>",  "(div %1 $u)"),
    ("log1p_vjp",           "?x1xf32, ?x1xf32, ?x1xf32",  "(add (add (select $s %1 $zero) (mul $d (log $u))) (add (div (mul $d %2) $u) (select $s $zero (neg (mul $d $q)))))", "!=>", "(div %1 $u)"),
    ("bce_floor",           "?x1xf32",                    "(maximum (select $b $l_p $floor) $floor)", "=>", "(select $b $l_p $floor)"),
    ("bce_floor",           "?x1xf32",                    "(maximum (select $b $l_p $floor10) $floor10)", "!=>", "(select $b $l_p $floor10)"),
    ("bce_floor",           "?x1xf32",                    "(maximum (select $b $l_y $floor) $floor)", "!=>", "(select $b $l_y $floor)"),
    ("bce_floor_grad",      "?x1xf32, ?x1xf32",           "(select $b (select (cmp{predicate=\"gt\"} (select $b $l_p $floor) $floor) %1 (select (cmp{predicate=\"eq\"} (select $b $l_p $floor) $floor) (mul %1 $half) $zero)) $zero)",
                                                          "=>",  "(select $b %1 $zero)"),
    ("bce_floor_grad",      "?x1xf32, ?x1xf32",           "(select $b (select (cmp{predicate=\"gt\"} (select $b $l_p $floor10) $floor10) %1 $zero) $zero)", "!=>", "(select $b %1 $zero)"),
    ("bce_sigmoid_grad",    "?x1xf32, ?x1xf32, ?x1xf32",  "(mul (sub $db $da) (mul $p (sub $one $p)))", "=>",  "(sub (mul $gb (sub $one $p)) (mul $ga $p))"),
    ("bce_sigmoid_grad",    "?x1xf32, ?x1xf32, ?x1xf32",  "(mul (sub (select $a (div %1 (select $a $p $one)) $zero) (select $b (div %2 $u_p) $zero)) (mul (sub $one $p) $p))",
                                                          "=>",  "(sub (select $a (mul %1 (sub $one $p)) $zero) (select $b (mul %2 $p) $zero))"),
    ("bce_sigmoid_grad",    "?x1xf32, ?x1xf32, ?x1xf32",  "(mul (sub (select $a_ge (div $gb (select $a_ge $p $one)) $zero) $da) (mul $p (sub $one $p)))",
                                                          "!=>", "(sub (mul $gb (sub $one $p)) (mul $ga $p))"),
    // --- scalar
    ("matmul_scale_a",      "2x3xf32, 3x4xf32", "(matmul (mul %0 constant{value=dense<2.0>:tensor<f32>}) %1)", "=>", "(mul (matmul %0 %1) constant{value=dense<2.0>:tensor<f32>})"),
    ("matmul_scale_a",      "2x3xf32, 3x4xf32, f32", "(matmul (mul %2 %0) %1)",                       "=>",  "(mul (matmul %0 %1) %2)"),
    ("matmul_scale_a",      "2x3xf32, 3x4xf32, 3xf32", "(matmul (mul %0 %2) %1)",                     "!=>", "(mul (matmul %0 %1) %2)"),
    ("matmul_scale_b",      "2x3xf32, 3x4xf32", "(matmul{transpose_a=false} %0 (mul constant{value=dense<2.0>:tensor<f32>} %1))", "=>", "(mul (matmul %0 %1) constant{value=dense<2.0>:tensor<f32>})"),
    ("scale_matmul_a",      "2x3xf32, 4x3xf32", "(mul (matmul{transpose_b=true} %0 %1) constant{value=dense<2.0>:tensor<f32>})", "=>", "(matmul{transpose_b=true} (mul %0 constant{value=dense<2.0>:tensor<f32>}) %1)"),
    ("scale_matmul_b",      "2x3xf32, 3x4xf32", "(mul constant{value=dense<2.0>:tensor<f32>} (matmul %0 %1))", "=>", "(matmul %0 (mul %1 constant{value=dense<2.0>:tensor<f32>}))"),
    ("matmul_neg_a",        "2x3xf32, 3x4xf32", "(matmul (neg %0) %1)",                             "=>",  "(neg (matmul %0 %1))"),
    ("matmul_neg_b",        "2x3xf32, 3x4xf32", "(matmul %0 (neg %1))",                             "=>",  "(neg (matmul %0 %1))"),
    ("reduce_sum_scale",    "?x3xf32",   "(reduce_sum{axes=[1]} (mul %0 constant{value=dense<2.0>:tensor<f32>}))", "=>", "(mul (reduce_sum{axes=[1]} %0) constant{value=dense<2.0>:tensor<f32>})"),
    ("reduce_mean_scale",   "?x3xf32",   "(reduce_mean{axes=[0,1]} (mul constant{value=dense<2.0>:tensor<f32>} %0))", "=>", "(mul (reduce_mean{axes=[0,1]} %0) constant{value=dense<2.0>:tensor<f32>})"),
    ("scale_scale",         "3xf32",     "(mul (mul %0 constant{value=dense<2.0>:tensor<f32>}) constant{value=dense<3.0>:tensor<f32>})", "=>", "(mul %0 constant{value=dense<6.0>:tensor<f32>})"),
    ("scale_scale",         "3xf32, f32", "(mul (mul %0 %1) constant{value=dense<3.0>:tensor<f32>})", "!=>", "(mul %0 (mul %1 constant{value=dense<3.0>:tensor<f32>}))"),
    // --- fusion
    ("matmul_bias",         "?x3xf32, 4x3xf32, 4xf32",   "(add (matmul{transpose_b=true} %0 %1) %2)",        "=>",  "(kernel.matmul{transpose_b=true} %0 %1 %2)"),
    ("matmul_bias",         "?x3xf32, 3x4xf32, 1x4xf32", "(add %2 (matmul %0 %1))",                          "=>",  "(kernel.matmul %0 %1 %2)"),
    ("matmul_bias",         "?x3xf32, 3x4xf32, ?x4xf32", "(add (matmul %0 %1) %2)",                          "!=>", "(kernel.matmul %0 %1 %2)"),
    ("matmul_bias",         "2x3xf32, 3x4xf32, 2x1xf32", "(add (matmul %0 %1) %2)",                          "!=>", "(kernel.matmul %0 %1 %2)"),
    ("conv2d_bias",         "?x2x5x5xf32, 3x2x3x3xf32, 3x1x1xf32", "(add (conv2d %0 %1) %2)",                "=>",  "(kernel.conv2d %0 %1 %2)"),
    ("conv2d_bias",         "?x2x5x5xf32, 3x2x3x3xf32, 3xf32",     "(add (conv2d %0 %1) %2)",                "!=>", "(kernel.conv2d %0 %1 %2)"),
    ("matmul_bias_relu",    "?x3xf32, 3x4xf32, 4xf32",   "(relu (kernel.matmul %0 %1 %2))",                  "=>",  "(kernel.matmul{relu=true} %0 %1 %2)"),
    ("matmul_bias_relu",    "?x3xf32, 3x4xf32, 4xf32",   "(relu (add (matmul %0 %1) %2))",                   "!=>", "(kernel.matmul{relu=true} %0 %1 %2)"),
    ("conv2d_bias_relu",    "?x2x5x5xf32, 3x2x3x3xf32, 3x1x1xf32", "(relu (kernel.conv2d{padding=[1,1]} %0 %1 %2))", "=>", "(kernel.conv2d{padding=[1,1],relu=true} %0 %1 %2)"),
    ("matmul_relu",         "?x3xf32, 3x4xf32",          "(relu (matmul %0 %1))",                            "=>",  "(kernel.matmul{relu=true} %0 %1)"),
    ("matmul_relu",         "?x3xf32, 3x4xf32",          "(relu (neg (matmul %0 %1)))",                      "!=>", "(kernel.matmul{relu=true} %0 %1)"),
    ("conv2d_relu",         "?x2x5x5xf32, 3x2x3x3xf32",  "(relu (conv2d{stride=[2,2]} %0 %1))",              "=>",  "(kernel.conv2d{relu=true,stride=[2,2]} %0 %1)"),
    ("conv2d_max_pool",     "?x2x6x6xf32, 3x2x3x3xf32, 3x1x1xf32", "(max_pool2d{kernel=[2,2],stride=[2,2]} (kernel.conv2d{relu=true} %0 %1 %2))", "=>", "(kernel.conv2d{max_pool=[2,2,2,2,0,0],relu=true} %0 %1 %2)"),
    ("conv2d_max_pool",     "?x2x6x6xf32, 3x2x3x3xf32, 3x1x1xf32", "(max_pool2d{kernel=[2,2],stride=[2,2]} (add (kernel.conv2d{relu=true} %0 %1 %2) %2))", "!=>", "(kernel.conv2d{max_pool=[2,2,2,2,0,0],relu=true} %0 %1 %2)"),
    ("conv2d_max_pool_nobias", "?x2x6x6xf32, 3x2x3x3xf32", "(max_pool2d{kernel=[2,2],stride=[2,2]} (kernel.conv2d{relu=true} %0 %1))", "=>", "(kernel.conv2d{max_pool=[2,2,2,2,0,0],relu=true} %0 %1)"),
    ("conv2d_plain_max_pool", "?x2x7x7xf32, 3x2x3x3xf32",  "(max_pool2d{kernel=[3,3],padding=[1,1],stride=[2,2]} (conv2d %0 %1))", "=>", "(kernel.conv2d{max_pool=[3,3,2,2,1,1]} %0 %1)"),
    ("conv2d_plain_max_pool", "?x2x7x7xf32, 3x2x3x3xf32",  "(max_pool2d{kernel=[2,2],stride=[2,2]} (neg (conv2d %0 %1)))", "!=>", "(kernel.conv2d{max_pool=[2,2,2,2,0,0]} %0 %1)"),
    ("conv2d_pool_grad_weight", "?x1x8x8xf32, ?x3x3x3xf32, 3x1x3x3xf32, 3x1x1xf32", "(conv2d_grad_weight{kernel=[3,3]} %0 (max_pool2d_grad{kernel=[2,2],relu=true,stride=[2,2]} (kernel.conv2d %0 %2 %3) %1))", "=>", "(kernel.conv2d_grad_weight{max_pool=[2,2,2,2,0,0],relu=true} %0 %1 %2 %3)"),
    ("conv2d_pool_grad_weight", "?x2x7x7xf32, ?x3x4x4xf32, 3x2x3x3xf32, 3x1x1xf32", "(conv2d_grad_weight{kernel=[3,3],padding=[1,1]} %0 (max_pool2d_grad{kernel=[3,3],padding=[1,1],stride=[2,2]} (kernel.conv2d{padding=[1,1]} %0 %2 %3) %1))", "=>", "(kernel.conv2d_grad_weight{max_pool=[3,3,2,2,1,1],padding=[1,1],relu=false} %0 %1 %2 %3)"),
    // the gradient of another input's convolution, another window, a convolution with its own ReLU or pool: not the fused op
    ("conv2d_pool_grad_weight", "?x1x8x8xf32, ?x3x3x3xf32, 3x1x3x3xf32, 3x1x1xf32, ?x1x8x8xf32", "(conv2d_grad_weight{kernel=[3,3]} %4 (max_pool2d_grad{kernel=[2,2],stride=[2,2]} (kernel.conv2d %0 %2 %3) %1))", "!=>", "(kernel.conv2d_grad_weight{max_pool=[2,2,2,2,0,0],relu=false} %4 %1 %2 %3)"),
    ("conv2d_pool_grad_weight", "?x1x8x8xf32, ?x3x4x4xf32, 3x1x3x3xf32, 3x1x1xf32", "(conv2d_grad_weight{dilation=[2,2],kernel=[3,3],padding=[2,2]} %0 (max_pool2d_grad{kernel=[2,2],stride=[2,2]} (kernel.conv2d{padding=[1,1]} %0 %2 %3) %1))", "!=>", "(kernel.conv2d_grad_weight{max_pool=[2,2,2,2,0,0],padding=[1,1],relu=false} %0 %1 %2 %3)"),
    ("conv2d_pool_grad_weight", "?x1x8x8xf32, ?x3x3x3xf32, 3x1x3x3xf32, 3x1x1xf32", "(conv2d_grad_weight{kernel=[3,3]} %0 (max_pool2d_grad{kernel=[2,2],stride=[2,2]} (kernel.conv2d{relu=true} %0 %2 %3) %1))", "!=>", "(kernel.conv2d_grad_weight{max_pool=[2,2,2,2,0,0],relu=false} %0 %1 %2 %3)"),
    ("conv2d_pool_grad_weight_nobias", "?x1x8x8xf32, ?x3x3x3xf32, 3x1x3x3xf32", "(conv2d_grad_weight{kernel=[3,3]} %0 (max_pool2d_grad{kernel=[2,2],stride=[2,2]} (kernel.conv2d %0 %2) %1))", "=>", "(kernel.conv2d_grad_weight{max_pool=[2,2,2,2,0,0],relu=false} %0 %1 %2)"),
    ("conv2d_plain_pool_grad_weight", "?x1x9x8xf32, ?x3x3x3xf32, 3x1x3x3xf32", "(conv2d_grad_weight{kernel=[3,3],stride=[1,1]} %0 (max_pool2d_grad{kernel=[2,2],relu=true,stride=[2,2]} (conv2d %0 %2) %1))", "=>", "(kernel.conv2d_grad_weight{max_pool=[2,2,2,2,0,0],relu=true} %0 %1 %2)"),
    ("conv2d_plain_pool_grad_weight", "?x1x9x8xf32, ?x3x3x3xf32, 3x1x3x3xf32", "(conv2d_grad_weight{kernel=[3,3]} %0 (max_pool2d_grad{kernel=[2,2],stride=[2,2]} (neg (conv2d %0 %2)) %1))", "!=>", "(kernel.conv2d_grad_weight{max_pool=[2,2,2,2,0,0],relu=false} %0 %1 %2)"),
    ("routed_grad_input",   "?x4x6x6xf32, ?x4x3x3xf32, 4x16x3x3xf32", "(conv2d_grad_input{input_size=[8,8]} (max_pool2d_grad{kernel=[2,2],relu=true,stride=[2,2]} %0 %1) %2)", "=>", "(kernel.routed_conv2d_grad_input{input_size=[8,8],max_pool=[2,2,2,2,0,0],relu=true} %0 %1 %2)"),
    ("routed_grad_input",   "?x4x7x7xf32, ?x4x3x3xf32, 4x32x3x3xf32", "(conv2d_grad_input{input_size=[7,7],padding=[1,1]} (max_pool2d_grad{kernel=[2,2],stride=[2,2]} %0 %1) %2)", "=>", "(kernel.routed_conv2d_grad_input{input_size=[7,7],max_pool=[2,2,2,2,0,0],padding=[1,1],relu=false} %0 %1 %2)"),
    ("routed_grad_input",   "?x4x6x6xf32, ?x4x3x3xf32, 4x8x3x3xf32",  "(conv2d_grad_input{input_size=[8,8]} (max_pool2d_grad{kernel=[2,2],stride=[2,2]} %0 %1) %2)", "!=>", "(kernel.routed_conv2d_grad_input{input_size=[8,8],max_pool=[2,2,2,2,0,0],relu=false} %0 %1 %2)"),
    ("routed_grad_input",   "?x4x6x6xf32, ?x4x2x2xf32, 4x16x3x3xf32", "(conv2d_grad_input{input_size=[8,8]} (max_pool2d_grad{kernel=[3,3],stride=[2,2]} %0 %1) %2)", "!=>", "(kernel.routed_conv2d_grad_input{input_size=[8,8],max_pool=[3,3,2,2,0,0],relu=false} %0 %1 %2)"),
    ("routed_grad_input",   "?x4x4x4xf32, ?x4x2x2xf32, 4x16x5x5xf32", "(conv2d_grad_input{input_size=[8,8]} (max_pool2d_grad{kernel=[2,2],stride=[2,2]} %0 %1) %2)", "!=>", "(kernel.routed_conv2d_grad_input{input_size=[8,8],max_pool=[2,2,2,2,0,0],relu=false} %0 %1 %2)"),
    ("routed_grad_input",   "?x4x6x6xf64, ?x4x3x3xf64, 4x16x3x3xf64", "(conv2d_grad_input{input_size=[8,8]} (max_pool2d_grad{kernel=[2,2],stride=[2,2]} %0 %1) %2)", "!=>", "(kernel.routed_conv2d_grad_input{input_size=[8,8],max_pool=[2,2,2,2,0,0],relu=false} %0 %1 %2)"),
    ("routed_grad_weight",  "?x16x8x8xf32, ?x4x6x6xf32, ?x4x3x3xf32", "(conv2d_grad_weight{kernel=[3,3]} %0 (max_pool2d_grad{kernel=[2,2],relu=true,stride=[2,2]} %1 %2))", "=>", "(kernel.routed_conv2d_grad_weight{kernel=[3,3],max_pool=[2,2,2,2,0,0],relu=true} %0 %1 %2)"),
    ("routed_grad_weight",  "?x48x5x5xf32, ?x4x5x5xf32, ?x4x2x2xf32", "(conv2d_grad_weight{kernel=[3,3],padding=[1,1]} %0 (max_pool2d_grad{kernel=[2,2],stride=[2,2]} %1 %2))", "=>", "(kernel.routed_conv2d_grad_weight{kernel=[3,3],max_pool=[2,2,2,2,0,0],padding=[1,1],relu=false} %0 %1 %2)"),
    ("routed_grad_weight",  "?x16x9x9xf32, ?x4x4x4xf32, ?x4x2x2xf32", "(conv2d_grad_weight{kernel=[3,3],stride=[2,2]} %0 (max_pool2d_grad{kernel=[2,2],stride=[2,2]} %1 %2))", "!=>", "(kernel.routed_conv2d_grad_weight{kernel=[3,3],max_pool=[2,2,2,2,0,0],relu=false,stride=[2,2]} %0 %1 %2)"),
    ("routed_grad_weight",  "?x16x8x8xf32, ?x4x6x6xf32, ?x4x4x4xf32", "(conv2d_grad_weight{kernel=[3,3]} %0 (max_pool2d_grad{kernel=[2,2],padding=[1,1],stride=[2,2]} %1 %2))", "!=>", "(kernel.routed_conv2d_grad_weight{kernel=[3,3],max_pool=[2,2,2,2,1,1],relu=false} %0 %1 %2)"),
    ("pool_grad_relu",      "?x2x4x4xf32, ?x2x2x2xf32", "(select (cmp{predicate=\"gt\"} %0 $zero) (max_pool2d_grad{kernel=[2,2],stride=[2,2]} %0 %1) $zero)", "=>", "(max_pool2d_grad{kernel=[2,2],relu=true,stride=[2,2]} %0 %1)"),
    ("pool_grad_relu",      "?x2x4x4xf32, ?x2x4x4xf32", "(select (cmp{predicate=\"gt\"} %0 constant{value=dense<-0.0>:tensor<f32>}) (max_pool2d_grad{kernel=[3,3],padding=[1,1],stride=[1,1]} %0 %1) $zero)", "=>", "(max_pool2d_grad{kernel=[3,3],padding=[1,1],relu=true,stride=[1,1]} %0 %1)"),
    // a mask that is not `x > 0`, an else-value that is not +0, or a mask by another tensor: not the fused op
    ("pool_grad_relu",      "?x2x4x4xf32, ?x2x2x2xf32", "(select (cmp{predicate=\"gt\"} %0 constant{value=dense<0.5>:tensor<f32>}) (max_pool2d_grad{kernel=[2,2],stride=[2,2]} %0 %1) $zero)", "!=>", "(max_pool2d_grad{kernel=[2,2],relu=true,stride=[2,2]} %0 %1)"),
    ("pool_grad_relu",      "?x2x4x4xf32, ?x2x2x2xf32", "(select (cmp{predicate=\"ge\"} %0 $zero) (max_pool2d_grad{kernel=[2,2],stride=[2,2]} %0 %1) $zero)", "!=>", "(max_pool2d_grad{kernel=[2,2],relu=true,stride=[2,2]} %0 %1)"),
    ("pool_grad_relu",      "?x2x4x4xf32, ?x2x2x2xf32", "(select (cmp{predicate=\"gt\"} %0 $zero) (max_pool2d_grad{kernel=[2,2],stride=[2,2]} %0 %1) constant{value=dense<-0.0>:tensor<f32>})", "!=>", "(max_pool2d_grad{kernel=[2,2],relu=true,stride=[2,2]} %0 %1)"),
    ("pool_grad_relu",      "?x2x4x4xf32, ?x2x2x2xf32, ?x2x4x4xf32", "(select (cmp{predicate=\"gt\"} %2 $zero) (max_pool2d_grad{kernel=[2,2],stride=[2,2]} %0 %1) $zero)", "!=>", "(max_pool2d_grad{kernel=[2,2],relu=true,stride=[2,2]} %0 %1)"),
    // --- pooling
    ("pool_grad_sum_relu",  "?x2x5x4xf32, ?x2x2x2xf32", "(reduce_sum{axes=[0,2,3],keepdims=true} (select (cmp{predicate=\"gt\"} %0 $zero) (max_pool2d_grad{kernel=[2,2],stride=[2,2]} %0 %1) $zero))", "=>", "(reduce_sum{axes=[0,2,3],keepdims=true} (select (cmp{predicate=\"gt\"} (max_pool2d{kernel=[2,2],stride=[2,2]} (relu %0)) $zero) %1 $zero))"),
    ("pool_grad_sum_relu",  "?x2x6x6xf32, ?x2x2x2xf32", "(reduce_sum{axes=[-1,-2]} (select (cmp{predicate=\"gt\"} %0 constant{value=dense<-0.0>:tensor<f32>}) (max_pool2d_grad{kernel=[2,3],stride=[3,3]} %0 %1) $zero))", "=>", "(reduce_sum{axes=[-1,-2]} (select (cmp{predicate=\"gt\"} (max_pool2d{kernel=[2,3],stride=[3,3]} (relu %0)) constant{value=dense<-0.0>:tensor<f32>}) %1 $zero))"),
    // overlapping windows, padding, a sum that keeps a spatial axis the window spans (the types differ), a mask that is not `x > 0`, a mask by another tensor: not a sum over the windows
    ("pool_grad_sum_relu",  "?x2x5x5xf32, ?x2x2x2xf32", "(reduce_sum{axes=[0,2,3]} (select (cmp{predicate=\"gt\"} %0 $zero) (max_pool2d_grad{kernel=[3,3],stride=[2,2]} %0 %1) $zero))", "!=>", "(reduce_sum{axes=[0,2,3]} (select (cmp{predicate=\"gt\"} (max_pool2d{kernel=[3,3],stride=[2,2]} (relu %0)) $zero) %1 $zero))"),
    ("pool_grad_sum_relu",  "?x2x4x4xf32, ?x2x3x3xf32", "(reduce_sum{axes=[0,2,3]} (select (cmp{predicate=\"gt\"} %0 $zero) (max_pool2d_grad{kernel=[2,2],padding=[1,1],stride=[2,2]} %0 %1) $zero))", "!=>", "(reduce_sum{axes=[0,2,3]} (select (cmp{predicate=\"gt\"} (max_pool2d{kernel=[2,2],padding=[1,1],stride=[2,2]} (relu %0)) $zero) %1 $zero))"),
    ("pool_grad_sum_relu",  "?x2x4x4xf32, ?x2x2x2xf32", "(reduce_sum{axes=[0,3]} (select (cmp{predicate=\"gt\"} %0 $zero) (max_pool2d_grad{kernel=[2,2],stride=[2,2]} %0 %1) $zero))", "!=>", "(reduce_sum{axes=[0,3]} (select (cmp{predicate=\"gt\"} (max_pool2d{kernel=[2,2],stride=[2,2]} (relu %0)) $zero) %1 $zero))"),
    ("pool_grad_sum_relu",  "?x2x4x4xf32, ?x2x2x2xf32", "(reduce_sum{axes=[0,2,3]} (select (cmp{predicate=\"gt\"} %0 $half) (max_pool2d_grad{kernel=[2,2],stride=[2,2]} %0 %1) $zero))", "!=>", "(reduce_sum{axes=[0,2,3]} (select (cmp{predicate=\"gt\"} (max_pool2d{kernel=[2,2],stride=[2,2]} (relu %0)) $half) %1 $zero))"),
    ("pool_grad_sum_relu",  "?x2x4x4xf32, ?x2x2x2xf32, ?x2x4x4xf32", "(reduce_sum{axes=[0,2,3]} (select (cmp{predicate=\"gt\"} %2 $zero) (max_pool2d_grad{kernel=[2,2],stride=[2,2]} %0 %1) $zero))", "!=>", "(reduce_sum{axes=[0,2,3]} (select (cmp{predicate=\"gt\"} (max_pool2d{kernel=[2,2],stride=[2,2]} (relu %0)) $zero) %1 $zero))"),
    // a full-size zero as the else-value would broadcast the 1x1 pooled gradient back to 3x3
    ("pool_grad_sum_relu",  "2x2x3x3xf32, 2x2x1x1xf32", "(reduce_sum{axes=[0,2,3]} (select (cmp{predicate=\"gt\"} %0 $zero) (max_pool2d_grad{kernel=[2,2],stride=[2,2]} %0 %1) constant{value=dense<0.0>:tensor<2x2x3x3xf32>}))", "!=>", "(reduce_sum{axes=[0,2,3]} (select (cmp{predicate=\"gt\"} (max_pool2d{kernel=[2,2],stride=[2,2]} (relu %0)) $zero) %1 constant{value=dense<0.0>:tensor<2x2x3x3xf32>}))"),
    // dynamic spatial sizes: a sum that keeps a spatial axis the window spans has one type on both sides, and is still not a sum over the windows
    ("pool_grad_sum",       "?x2x?x4xf32, ?x2x?x2xf32", "(reduce_sum{axes=[0,3]} (max_pool2d_grad{kernel=[2,2],stride=[2,2]} %0 %1))", "!=>", "(reduce_sum{axes=[0,3]} %1)"),
    ("pool_grad_sum",       "?x2x5x4xf32, ?x2x2x2xf32", "(reduce_sum{axes=[0,2,3],keepdims=true} (max_pool2d_grad{kernel=[2,2],stride=[2,2]} %0 %1))", "=>", "(reduce_sum{axes=[0,2,3],keepdims=true} %1)"),
    // a window 1 wide: the sum over rows holds column by column
    ("pool_grad_sum",       "?x2x4x3xf32, ?x2x2x3xf32", "(reduce_sum{axes=[0,2]} (max_pool2d_grad{kernel=[2,1],stride=[2,1]} %0 %1))", "=>", "(reduce_sum{axes=[0,2]} %1)"),
    // the masked gradient as one op is left alone, as is a sum over one spatial axis
    ("pool_grad_sum",       "?x2x4x4xf32, ?x2x2x2xf32", "(reduce_sum{axes=[0,2,3]} (max_pool2d_grad{kernel=[2,2],relu=true,stride=[2,2]} %0 %1))", "!=>", "(reduce_sum{axes=[0,2,3]} %1)"),
    ("pool_grad_sum",       "?x2x4x4xf32, ?x2x2x2xf32", "(reduce_sum{axes=[2]} (max_pool2d_grad{kernel=[2,2],stride=[2,2]} %0 %1))", "!=>", "(reduce_sum{axes=[2]} %1)"),
];

/// Named sub-terms for the loss lines, whose terms are what `train/loss.rs`
/// and autodiff emit: `$name` in a term stands for its definition. `%0` is
/// `y` (log1p) or `z` (BCE), `%1` and `%2` cotangents.
#[rustfmt::skip]
const DEFS: &[(&str, &str)] = &[
    ("$zero",     "constant{value=dense<0.0>:tensor<f32>}"),
    ("$one",      "constant{value=dense<1.0>:tensor<f32>}"),
    ("$half",     "constant{value=dense<0.5>:tensor<f32>}"),
    ("$floor",    "constant{value=dense<-100.0>:tensor<f32>}"),
    ("$floor10",  "constant{value=dense<-10.0>:tensor<f32>}"),
    // Emit::log1p(%0) (`$l_y`) and its gradient for cotangent %1
    ("$u",        "(add $one %0)"),
    ("$s",        "(cmp{predicate=\"eq\"} $u $one)"),
    ("$safe",     "(select $s $one (sub $u $one))"),
    ("$q",        "(div (mul %0 (log $u)) $safe)"),
    ("$l_y",      "(select $s %0 $q)"),
    ("$d",        "(div (select $s $zero %1) $safe)"),
    ("$log1p_vjp", "(add (add (select $s %1 $zero) (mul $d (log $u))) (add (div (mul $d %0) $u) (select $s $zero (neg (mul $d $q)))))"),
    // BCE of p = sigmoid(%0): its guards, log1p(-p) as BCE writes it, and
    // the cotangents %1 (of log p) and %2 (of log1p(-p)) behind the guards
    ("$p",        "(sigmoid %0)"),
    ("$a",        "(cmp{predicate=\"gt\"} $p $zero)"),
    ("$a_ge",     "(cmp{predicate=\"ge\"} $p $zero)"),
    ("$b",        "(cmp{predicate=\"lt\"} $p $one)"),
    ("$y_p",      "(select $b (neg $p) $zero)"),
    ("$u_p",      "(add $one $y_p)"),
    ("$s_p",      "(cmp{predicate=\"eq\"} $u_p $one)"),
    ("$l_p",      "(select $s_p $y_p (div (mul $y_p (log $u_p)) (select $s_p $one (sub $u_p $one))))"),
    ("$gb",       "(select $a %1 $zero)"),
    ("$ga",       "(select $b %2 $zero)"),
    ("$db",       "(select $a (div $gb (select $a $p $one)) $zero)"),
    ("$da",       "(select $b (div $ga $u_p) $zero)"),
];

/// `term` with every `$name` of [`DEFS`] replaced by its expanded definition.
fn expand(term: &str) -> String {
    let mut out = String::new();
    let mut rest = term;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let len = rest[i + 1..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len() - i - 1);
        let name = &rest[i..i + 1 + len];
        let def = DEFS.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("unknown {name} in {term}")).1;
        out.push_str(&expand(def));
        rest = &rest[i + 1 + len..];
    }
    out + rest
}

/// A type written as the inside of `tensor<…>`.
fn ty(s: &str) -> Type {
    let mut parts: Vec<&str> = s.trim().split('x').collect();
    let dtype = DType::from_name(parts.pop().unwrap()).unwrap_or_else(|| panic!("bad dtype in {s}"));
    let dims = parts.iter().map(|d| if *d == "?" { Dim::Dynamic } else { Dim::Static(d.parse().unwrap()) }).collect();
    TensorType::new(dims, dtype).into()
}

fn graph(leaves: &str) -> Graph {
    let leaf_types = if leaves.is_empty() { Vec::new() } else { leaves.split(',').map(ty).collect() };
    Graph::new(DlAnalysis { leaf_types })
}

fn rule(name: &str) -> &'static rules::Rule {
    rules::TOPICS.iter().flat_map(|(_, rs)| rs.iter()).find(|r| r.name == name).unwrap_or_else(|| panic!("no rule {name}"))
}

/// Runs one case; the error says what went wrong.
fn check(&(name, leaves, start, arrow, expected): &Case) -> Result<(), String> {
    let mut g = graph(leaves);
    let start_expr: RecExpr<Dl> = expand(start).parse().map_err(|e| format!("start: {e}"))?;
    let expected_expr: RecExpr<Dl> = expand(expected).parse().map_err(|e| format!("expected: {e}"))?;
    let root = g.add_expr(&start_expr);
    let runner = Runner::default().with_egraph(g).with_iter_limit(4).run(&rules::rewrites(std::slice::from_ref(rule(name))));
    let g = runner.egraph;
    let found = g.lookup_expr(&expected_expr).is_some_and(|e| g.find(e) == g.find(root));
    match (arrow, found) {
        ("=>", true) | ("!=>", false) => Ok(()),
        ("=>", false) => Err("did not rewrite to the expected term".into()),
        ("!=>", true) => Err("rewrote, and must not".into()),
        _ => Err(format!("bad arrow {arrow}")),
    }
}

#[test]
fn every_rule_rewrites_as_its_line_says() {
    let failures: Vec<String> = CASES.iter().filter_map(|c| check(c).err().map(|e| format!("{}: {} {} {}: {e}", c.0, c.2, c.3, c.4))).collect();
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), CASES.len(), failures.join("\n"));
}

#[test]
fn every_rule_has_a_test() {
    let tested: BTreeSet<&str> = CASES.iter().filter(|c| c.3 == "=>").map(|c| c.0).collect();
    let all: Vec<&str> = rules::TOPICS.iter().flat_map(|(_, rs)| rs.iter().map(|r| r.name)).collect();
    let untested: Vec<&&str> = all.iter().filter(|r| !tested.contains(*r)).collect();
    assert!(untested.is_empty(), "rules without a `=>` line: {untested:?}");
    let mut seen = BTreeSet::new();
    for r in &all {
        assert!(seen.insert(r), "rule {r} is declared twice");
    }
    for t in &tested {
        assert!(all.contains(t), "a line names unknown rule {t}");
    }
}

#[test]
fn every_rule_parses_and_right_sides_name_bound_variables() {
    for (_, rs) in rules::TOPICS {
        // Panics with the rule's name on a bad pattern or an unbound variable.
        let _ = rules::rewrites(rs);
    }
}

// --- the language ------------------------------------------------------------

#[test]
fn terms_print_and_parse_with_canonical_attributes() {
    for (text, canonical) in [
        ("(matmul{transpose_b=true} %0 %1)", "(matmul{transpose_b=true} %0 %1)"),
        ("(matmul{transpose_a=false} %0 %1)", "(matmul %0 %1)"),
        ("(reduce_sum{keepdims=false,axes=[0]} %0)", "(reduce_sum{axes=[0]} %0)"),
        ("(cmp{predicate=\"lt\"} %0 %1)", "(cmp{predicate=\"lt\"} %0 %1)"),
        (C1, C1),
    ] {
        let e: RecExpr<Dl> = text.parse().unwrap_or_else(|err| panic!("{text}: {err}"));
        assert_eq!(dlc_passes::egraph::lang::term(&e), canonical);
    }
    for bad in ["(frobnicate %0)", "(add %0)", "(relu{alpha=1.0} %0)", "(%0 %1)"] {
        assert!(bad.parse::<RecExpr<Dl>>().is_err(), "{bad} parsed");
    }
}

// --- the analysis ------------------------------------------------------------

fn class_of(g: &mut Graph, term: &str) -> egg::Id {
    let e: RecExpr<Dl> = term.parse().unwrap();
    let id = g.add_expr(&e);
    g.rebuild();
    g.find(id)
}

#[test]
fn classes_know_their_types_and_constants_fold_as_the_interpreter_computes() {
    let mut g = graph("?x3xf32, 3xf32");
    let x = class_of(&mut g, "(add %0 %1)");
    assert_eq!(g[x].data.ty, ty("?x3xf32"));
    // 1 + 2 folds to 3, a splat of the broadcast type.
    let folded = class_of(&mut g, "(add constant{value=dense<1.0>:tensor<f32>} constant{value=dense<2.0>:tensor<2x2xf32>})");
    assert_eq!(g[folded].data.splat_f64(), Some(3.0));
    assert_eq!(folded, class_of(&mut g, "constant{value=dense<3.0>:tensor<2x2xf32>}"));
    // f32 rounding: 0.1 + 0.2 in f32 is not the f64 sum.
    let r = class_of(&mut g, "(add constant{value=dense<0.1>:tensor<f32>} constant{value=dense<0.2>:tensor<f32>})");
    assert_eq!(g[r].data.splat_f64(), Some((0.1f32 + 0.2f32) as f64));
    // A splat of a `?` shape is the rank-0 constant broadcast to it.
    let dynamic = class_of(&mut g, "(broadcast_to{shape=[-1,3]} (reshape{shape=[1,1]} constant{value=dense<1.0>:tensor<f32>}))");
    assert_eq!(dynamic, class_of(&mut g, "(broadcast_to{shape=[-1,3]} constant{value=dense<1.0>:tensor<f32>})"));
    // Comparisons and selects fold to their own dtypes.
    let c = class_of(&mut g, "(cmp{predicate=\"lt\"} constant{value=dense<1.0>:tensor<f32>} constant{value=dense<2.0>:tensor<f32>})");
    assert_eq!((g[c].data.ty.clone(), g[c].data.splat_f64()), (ty("i1"), Some(1.0)));
    // Not folded: a reduction of a splat (it depends on the size).
    let s = class_of(&mut g, "(reduce_sum{axes=[0]} constant{value=dense<1.0>:tensor<3xf32>})");
    assert_eq!(g[s].data.splat_f64(), None);
}

// --- the pass on small functions ---------------------------------------------

fn opt(src: &str) -> (Function, dlc_passes::egraph::Report) {
    let m = parse_module(src).unwrap();
    let mut f = m.functions[0].clone();
    let report = optimize(&mut f).unwrap();
    verify_function(&f).unwrap();
    (f, report)
}

/// A layer's matmul, bias and ReLU become one `kernel.matmul` (the fusion
/// stage); with the pre-activation returned too, the ReLU stays apart,
/// since fusing it would compute the matmul twice.
#[test]
fn a_contraction_takes_its_epilogue_unless_the_intermediate_is_needed() {
    let layer = |ret: &str, tys: &str| {
        format!(
            r#"func.func @f(%x: tensor<?x4xf32>, %w: tensor<3x4xf32>, %b: tensor<3xf32>) -> ({tys}) {{
  %y = "dl.matmul"(%x, %w) {{transpose_b = true}} : (tensor<?x4xf32>, tensor<3x4xf32>) -> tensor<?x3xf32>
  %z = "dl.add"(%y, %b) : (tensor<?x3xf32>, tensor<3xf32>) -> tensor<?x3xf32>
  %r = "dl.relu"(%z) : (tensor<?x3xf32>) -> tensor<?x3xf32>
  return {ret}
}}"#
        )
    };
    let (f, report) = opt(&layer("%r : tensor<?x3xf32>", "tensor<?x3xf32>"));
    let text = print_function(&f);
    assert!(text.contains(r#"%r = "kernel.matmul"(%x, %w, %b) {relu = true, transpose_b = true}"#), "{text}");
    assert_eq!(f.body_ops().len(), 2, "{text}");
    assert_eq!((report.fired.get("matmul_bias"), report.fired.get("matmul_bias_relu")), (Some(&1), Some(&1)), "{report}");
    let (f, _) = opt(&layer("%r, %z : tensor<?x3xf32>, tensor<?x3xf32>", "tensor<?x3xf32>, tensor<?x3xf32>"));
    let text = print_function(&f);
    assert!(text.contains(r#"%z = "kernel.matmul"(%x, %w, %b) {transpose_b = true}"#), "{text}");
    assert!(text.contains(r#"%r = "dl.relu"(%z)"#), "{text}");
}

/// The fusion rules preserve values bit for bit (the kernel ops are the
/// composition): conv2d with and without a bias, with a ReLU, strided and
/// padded, and a matmul layer, on the interpreter before and after, with
/// NaN and ±inf among the inputs. The random-graph property test does not
/// build convolutions or channel biases, so this is those rules' value test.
#[test]
fn fused_contractions_compute_the_same_bits() {
    let src = r#"func.func @f(%x: tensor<?x2x6x5xf32>, %w: tensor<3x2x3x3xf32>, %c: tensor<3x1x1xf32>, %a: tensor<?x7xf32>, %m: tensor<4x7xf32>, %b: tensor<4xf32>) -> (tensor<?x3x3x3xf32>, tensor<?x3x4x3xf32>, tensor<?x4xf32>) {
  %0 = "dl.conv2d"(%x, %w) {stride = [2, 2], padding = [1, 1]} : (tensor<?x2x6x5xf32>, tensor<3x2x3x3xf32>) -> tensor<?x3x3x3xf32>
  %1 = "dl.add"(%0, %c) : (tensor<?x3x3x3xf32>, tensor<3x1x1xf32>) -> tensor<?x3x3x3xf32>
  %2 = "dl.relu"(%1) : (tensor<?x3x3x3xf32>) -> tensor<?x3x3x3xf32>
  %3 = "dl.conv2d"(%x, %w) : (tensor<?x2x6x5xf32>, tensor<3x2x3x3xf32>) -> tensor<?x3x4x3xf32>
  %4 = "dl.relu"(%3) : (tensor<?x3x4x3xf32>) -> tensor<?x3x4x3xf32>
  %5 = "dl.matmul"(%a, %m) {transpose_b = true} : (tensor<?x7xf32>, tensor<4x7xf32>) -> tensor<?x4xf32>
  %6 = "dl.add"(%b, %5) : (tensor<4xf32>, tensor<?x4xf32>) -> tensor<?x4xf32>
  %7 = "dl.relu"(%6) : (tensor<?x4xf32>) -> tensor<?x4xf32>
  return %2, %4, %7 : tensor<?x3x3x3xf32>, tensor<?x3x4x3xf32>, tensor<?x4xf32>
}"#;
    let before = parse_module(src).unwrap().functions.remove(0);
    let (after, report) = opt(src);
    for rule in ["conv2d_bias", "conv2d_bias_relu", "conv2d_relu", "matmul_bias", "matmul_bias_relu"] {
        assert!(report.fired.contains_key(rule), "{rule} did not fire: {report}");
    }
    let text = print_function(&after);
    assert_eq!(text.matches("kernel.").count(), 3, "{text}");
    assert!(!text.contains("dl.relu") && !text.contains("dl.add"), "{text}");
    let specials = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0];
    let fill = |shape: &[usize], seed: usize| {
        let n: usize = shape.iter().product();
        let v = (0..n).map(|i| if (i + seed).is_multiple_of(17) { specials[(i / 17) % 4] } else { ((i * 7 + seed * 3) % 11) as f32 * 0.25 - 1.25 }).collect();
        Tensor::from_f32(shape, v).unwrap()
    };
    let args = [fill(&[3, 2, 6, 5], 1), fill(&[3, 2, 3, 3], 2), fill(&[3, 1, 1], 3), fill(&[3, 7], 4), fill(&[4, 7], 5), fill(&[4], 6)];
    let (want, got) = (run(&before, &args).unwrap(), run(&after, &args).unwrap());
    assert_same_bits(&want, &got);
}

/// `conv2d_max_pool`'s value test: a convolution with its bias and ReLU,
/// max-pooled (tiling, overlapping and padded windows), is the composition
/// bit for bit on the interpreter, NaN and ±inf among the inputs.
#[test]
fn a_pooled_convolution_computes_the_same_bits() {
    let src = r#"func.func @f(%x: tensor<?x2x7x6xf32>, %w: tensor<3x2x3x3xf32>, %c: tensor<3x1x1xf32>) -> (tensor<?x3x2x2xf32>, tensor<?x3x4x3xf32>, tensor<?x3x4x3xf32>) {
  %0 = "dl.conv2d"(%x, %w) : (tensor<?x2x7x6xf32>, tensor<3x2x3x3xf32>) -> tensor<?x3x5x4xf32>
  %1 = "dl.add"(%0, %c) : (tensor<?x3x5x4xf32>, tensor<3x1x1xf32>) -> tensor<?x3x5x4xf32>
  %2 = "dl.relu"(%1) : (tensor<?x3x5x4xf32>) -> tensor<?x3x5x4xf32>
  %3 = "dl.max_pool2d"(%2) {kernel = [2, 2], stride = [2, 2]} : (tensor<?x3x5x4xf32>) -> tensor<?x3x2x2xf32>
  %4 = "dl.conv2d"(%x, %w) {padding = [1, 1]} : (tensor<?x2x7x6xf32>, tensor<3x2x3x3xf32>) -> tensor<?x3x7x6xf32>
  %5 = "dl.max_pool2d"(%4) {kernel = [3, 3], stride = [2, 2], padding = [1, 1]} : (tensor<?x3x7x6xf32>) -> tensor<?x3x4x3xf32>
  %6 = "dl.relu"(%0) : (tensor<?x3x5x4xf32>) -> tensor<?x3x5x4xf32>
  %7 = "dl.max_pool2d"(%6) {kernel = [2, 2], stride = [1, 1]} : (tensor<?x3x5x4xf32>) -> tensor<?x3x4x3xf32>
  return %3, %5, %7 : tensor<?x3x2x2xf32>, tensor<?x3x4x3xf32>, tensor<?x3x4x3xf32>
}"#;
    let before = parse_module(src).unwrap().functions.remove(0);
    let (after, report) = opt(src);
    for rule in ["conv2d_max_pool", "conv2d_max_pool_nobias", "conv2d_plain_max_pool"] {
        assert!(report.fired.contains_key(rule), "{rule} did not fire: {report}");
    }
    let text = print_function(&after);
    assert!(!text.contains("dl.max_pool2d") && text.matches("max_pool = ").count() == 3, "{text}");
    let specials = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0];
    let fill = |shape: &[usize], seed: usize| {
        let n: usize = shape.iter().product();
        let v = (0..n).map(|i| if (i + seed).is_multiple_of(19) { specials[(i / 19) % 4] } else { ((i * 7 + seed * 3) % 11) as f32 * 0.25 - 1.25 }).collect();
        Tensor::from_f32(shape, v).unwrap()
    };
    let args = [fill(&[3, 2, 7, 6], 1), fill(&[3, 2, 3, 3], 2), fill(&[3, 1, 1], 3)];
    let (want, got) = (run(&before, &args).unwrap(), run(&after, &args).unwrap());
    assert_same_bits(&want, &got);
}

/// `conv2d_pool_grad_weight`'s (and its variants') value test: a weight
/// gradient through max-pooling's gradient, routed by the pooled
/// convolution's own output (with and without its bias and ReLU's mask,
/// padded, with an overlapping padded window), becomes one
/// `kernel.conv2d_grad_weight` with the same bits on the interpreter, NaN
/// and ±inf among the inputs. The convolutions are cheap beside their
/// outputs (one input channel), so extraction takes the recomputing form.
#[test]
fn a_recomputing_pooled_weight_gradient_computes_the_same_bits() {
    let src = r#"func.func @f(%x: tensor<?x1x8x8xf32>, %w: tensor<3x1x3x3xf32>, %c: tensor<3x1x1xf32>, %g: tensor<?x3x3x3xf32>, %h: tensor<?x3x4x4xf32>) -> (tensor<3x1x3x3xf32>, tensor<3x1x3x3xf32>, tensor<3x1x3x3xf32>) {
  %0 = "dl.conv2d"(%x, %w) : (tensor<?x1x8x8xf32>, tensor<3x1x3x3xf32>) -> tensor<?x3x6x6xf32>
  %1 = "dl.add"(%0, %c) : (tensor<?x3x6x6xf32>, tensor<3x1x1xf32>) -> tensor<?x3x6x6xf32>
  %2 = "dl.max_pool2d_grad"(%1, %g) {kernel = [2, 2], stride = [2, 2], relu = true} : (tensor<?x3x6x6xf32>, tensor<?x3x3x3xf32>) -> tensor<?x3x6x6xf32>
  %3 = "dl.conv2d_grad_weight"(%x, %2) {kernel = [3, 3]} : (tensor<?x1x8x8xf32>, tensor<?x3x6x6xf32>) -> tensor<3x1x3x3xf32>
  %4 = "dl.max_pool2d_grad"(%0, %g) {kernel = [2, 2], stride = [2, 2]} : (tensor<?x3x6x6xf32>, tensor<?x3x3x3xf32>) -> tensor<?x3x6x6xf32>
  %5 = "dl.conv2d_grad_weight"(%x, %4) {kernel = [3, 3]} : (tensor<?x1x8x8xf32>, tensor<?x3x6x6xf32>) -> tensor<3x1x3x3xf32>
  %6 = "dl.conv2d"(%x, %w) {padding = [1, 1]} : (tensor<?x1x8x8xf32>, tensor<3x1x3x3xf32>) -> tensor<?x3x8x8xf32>
  %7 = "dl.add"(%6, %c) : (tensor<?x3x8x8xf32>, tensor<3x1x1xf32>) -> tensor<?x3x8x8xf32>
  %8 = "dl.max_pool2d_grad"(%7, %h) {kernel = [3, 3], stride = [2, 2], padding = [1, 1], relu = true} : (tensor<?x3x8x8xf32>, tensor<?x3x4x4xf32>) -> tensor<?x3x8x8xf32>
  %9 = "dl.conv2d_grad_weight"(%x, %8) {kernel = [3, 3], padding = [1, 1]} : (tensor<?x1x8x8xf32>, tensor<?x3x8x8xf32>) -> tensor<3x1x3x3xf32>
  return %3, %5, %9 : tensor<3x1x3x3xf32>, tensor<3x1x3x3xf32>, tensor<3x1x3x3xf32>
}"#;
    let before = parse_module(src).unwrap().functions.remove(0);
    let (after, report) = opt(src);
    for rule in ["conv2d_pool_grad_weight", "conv2d_plain_pool_grad_weight"] {
        assert!(report.fired.contains_key(rule), "{rule} did not fire: {report}");
    }
    let text = print_function(&after);
    assert!(text.matches("kernel.conv2d_grad_weight").count() == 3 && !text.contains("dl.max_pool2d_grad"), "{text}");
    // Specials in the gradients only, and in the image too.
    for every in [0, 23] {
        let args = [with_specials(&[2, 1, 8, 8], 1, every), with_specials(&[3, 1, 3, 3], 2, 0), with_specials(&[3, 1, 1], 3, 0), with_specials(&[2, 3, 3, 3], 4, 13), with_specials(&[2, 3, 4, 4], 5, 13)];
        let (want, got) = (run(&before, &args).unwrap(), run(&after, &args).unwrap());
        assert_same_bits(&want, &got);
    }
}

/// `routed_grad_input`'s and `routed_grad_weight`'s value test: a
/// convolution's gradients through max-pooling's gradient (with and
/// without ReLU's mask, padded, a window that leaves a row and column of
/// an odd-sized output uncovered) become the routed kernel ops, with the
/// same bits on the interpreter, NaN and ±inf among the inputs; the
/// pooling gradient is no longer computed.
#[test]
fn routed_convolution_gradients_compute_the_same_bits() {
    let src = r#"func.func @f(%x: tensor<?x16x7x7xf32>, %w: tensor<4x16x3x3xf32>, %y: tensor<?x4x7x7xf32>, %g: tensor<?x4x3x3xf32>) -> (tensor<?x16x7x7xf32>, tensor<4x16x3x3xf32>, tensor<?x16x7x7xf32>, tensor<4x16x3x3xf32>) {
  %0 = "dl.max_pool2d_grad"(%y, %g) {kernel = [2, 2], stride = [2, 2], relu = true} : (tensor<?x4x7x7xf32>, tensor<?x4x3x3xf32>) -> tensor<?x4x7x7xf32>
  %1 = "dl.conv2d_grad_input"(%0, %w) {input_size = [7, 7], padding = [1, 1]} : (tensor<?x4x7x7xf32>, tensor<4x16x3x3xf32>) -> tensor<?x16x7x7xf32>
  %2 = "dl.conv2d_grad_weight"(%x, %0) {kernel = [3, 3], padding = [1, 1]} : (tensor<?x16x7x7xf32>, tensor<?x4x7x7xf32>) -> tensor<4x16x3x3xf32>
  %3 = "dl.max_pool2d_grad"(%y, %g) {kernel = [2, 2], stride = [2, 2]} : (tensor<?x4x7x7xf32>, tensor<?x4x3x3xf32>) -> tensor<?x4x7x7xf32>
  %4 = "dl.conv2d_grad_input"(%3, %w) {input_size = [7, 7], padding = [1, 1]} : (tensor<?x4x7x7xf32>, tensor<4x16x3x3xf32>) -> tensor<?x16x7x7xf32>
  %5 = "dl.conv2d_grad_weight"(%x, %3) {kernel = [3, 3], padding = [1, 1]} : (tensor<?x16x7x7xf32>, tensor<?x4x7x7xf32>) -> tensor<4x16x3x3xf32>
  return %1, %2, %4, %5 : tensor<?x16x7x7xf32>, tensor<4x16x3x3xf32>, tensor<?x16x7x7xf32>, tensor<4x16x3x3xf32>
}"#;
    let before = parse_module(src).unwrap().functions.remove(0);
    let (after, report) = opt(src);
    for rule in ["routed_grad_input", "routed_grad_weight"] {
        assert!(report.fired.contains_key(rule), "{rule} did not fire: {report}");
    }
    let text = print_function(&after);
    let routed = |op: &str| text.matches(op).count();
    assert!(routed("kernel.routed_conv2d_grad_input") == 2 && routed("kernel.routed_conv2d_grad_weight") == 2 && !text.contains("dl.max_pool2d_grad"), "{text}");
    // Specials in y and the gradients only, and in x and w too.
    for every in [0, 23] {
        let args = [with_specials(&[2, 16, 7, 7], 1, every), with_specials(&[4, 16, 3, 3], 2, every), with_specials(&[2, 4, 7, 7], 3, 13), with_specials(&[2, 4, 3, 3], 4, 13)];
        let (want, got) = (run(&before, &args).unwrap(), run(&after, &args).unwrap());
        assert_same_bits(&want, &got);
    }
}

/// `relu_pool_grad`'s and `pool_grad_relu`'s value test (random graphs
/// build no pooling): ReLU's gradient over max-pooling's, as autodiff
/// writes `max_pool2d(relu(z))`, gives the same bits when the pooling
/// gradient routes by `z`, and when it is then one `max_pool2d_grad
/// {relu}`: inputs full of ties, zeros of both signs, negatives, NaN and
/// ±inf, over tiling and overlapping windows.
#[test]
fn relu_pool_grad_routes_by_the_pre_activation() {
    // A tiling window pools 5x6 to 2x3; the overlapping one keeps 5x6.
    for (window, pooled) in [("kernel = [2, 2], stride = [2, 2]", [2, 3]), ("kernel = [3, 3], stride = [1, 1], padding = [1, 1]", [5, 6])] {
        let (z, g) = ("tensor<?x2x5x6xf32>".to_string(), format!("tensor<?x2x{}x{}xf32>", pooled[0], pooled[1]));
        let src = format!(
            r#"func.func @f(%z: {z}, %g: {g}) -> {z} {{
  %0 = "dl.constant"() {{value = dense<0.0> : tensor<f32>}} : () -> tensor<f32>
  %r = "dl.relu"(%z) : ({z}) -> {z}
  %d = "dl.max_pool2d_grad"(%r, %g) {{{window}}} : ({z}, {g}) -> {z}
  %m = "dl.cmp"(%z, %0) {{predicate = "gt"}} : ({z}, tensor<f32>) -> tensor<?x2x5x6xi1>
  %s = "dl.select"(%m, %d, %0) : (tensor<?x2x5x6xi1>, {z}, tensor<f32>) -> {z}
  return %s : {z}
}}"#
        );
        let before = parse_module(&src).unwrap_or_else(|e| panic!("{e}\n{src}")).functions.remove(0);
        let (after, report) = opt(&src);
        assert!(report.fired.contains_key("relu_pool_grad") && report.fired.contains_key("pool_grad_relu"), "{report}");
        let text = print_function(&after);
        assert!(!text.contains("dl.relu") && !text.contains("dl.select") && text.contains("relu = true"), "the gradient is not one fused max_pool2d_grad:\n{text}");
        let specials = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0, 0.0];
        let fill = |shape: &[usize], seed: usize| {
            let n: usize = shape.iter().product();
            let v = (0..n).map(|i| if (i + seed).is_multiple_of(7) { specials[(i / 7) % 5] } else { ((i * 5 + seed) % 7) as f32 - 3.0 }).collect();
            Tensor::from_f32(shape, v).unwrap()
        };
        let args = [fill(&[3, 2, 5, 6], 1), fill(&[3, 2, pooled[0], pooled[1]], 2)];
        let (want, got) = (run(&before, &args).unwrap(), run(&after, &args).unwrap());
        let same = want[0].to_f64_vec().iter().zip(got[0].to_f64_vec()).all(|(a, b)| a.to_bits() == b.to_bits() || a.is_nan() && b.is_nan());
        assert!(same, "{window}: {} vs {}", want[0].describe(), got[0].describe());
    }
}

/// `pool_grad_sum_relu`'s and `pool_grad_sum`'s value test: a bias
/// gradient under max-pooling (the sum of the masked pooling gradient over
/// the batch and both spatial axes) and the plain sum give the same bits
/// as the rules' right sides, over a tiling window: integer data, so every
/// sum is exact; ties, zeros of both signs, NaN and ±inf in `z`; an
/// uncovered row and column (5x7 pooled 2x2).
#[test]
fn pool_gradient_sums_are_sums_over_the_pooled_grid() {
    let (z, g) = ("tensor<?x2x5x7xf32>", "tensor<?x2x2x3xf32>");
    let head = format!(
        r#"func.func @f(%z: {z}, %g: {g}) -> (tensor<1x2x1x1xf32>, tensor<2xf32>) {{
  %0 = "dl.constant"() {{value = dense<0.0> : tensor<f32>}} : () -> tensor<f32>
  %r = "dl.relu"(%z) : ({z}) -> {z}"#
    );
    let before = format!(
        r#"{head}
  %d = "dl.max_pool2d_grad"(%r, %g) {{kernel = [2, 2], stride = [2, 2]}} : ({z}, {g}) -> {z}
  %m = "dl.cmp"(%z, %0) {{predicate = "gt"}} : ({z}, tensor<f32>) -> tensor<?x2x5x7xi1>
  %s = "dl.select"(%m, %d, %0) : (tensor<?x2x5x7xi1>, {z}, tensor<f32>) -> {z}
  %b = "dl.reduce_sum"(%s) {{axes = [0, 2, 3], keepdims = true}} : ({z}) -> tensor<1x2x1x1xf32>
  %e = "dl.max_pool2d_grad"(%z, %g) {{kernel = [2, 2], stride = [2, 2]}} : ({z}, {g}) -> {z}
  %c = "dl.reduce_sum"(%e) {{axes = [0, -1, -2]}} : ({z}) -> tensor<2xf32>
  return %b, %c : tensor<1x2x1x1xf32>, tensor<2xf32>
}}"#
    );
    let after = format!(
        r#"{head}
  %p = "dl.max_pool2d"(%r) {{kernel = [2, 2], stride = [2, 2]}} : ({z}) -> {g}
  %m = "dl.cmp"(%p, %0) {{predicate = "gt"}} : ({g}, tensor<f32>) -> tensor<?x2x2x3xi1>
  %s = "dl.select"(%m, %g, %0) : (tensor<?x2x2x3xi1>, {g}, tensor<f32>) -> {g}
  %b = "dl.reduce_sum"(%s) {{axes = [0, 2, 3], keepdims = true}} : ({g}) -> tensor<1x2x1x1xf32>
  %c = "dl.reduce_sum"(%g) {{axes = [0, -1, -2]}} : ({g}) -> tensor<2xf32>
  return %b, %c : tensor<1x2x1x1xf32>, tensor<2xf32>
}}"#
    );
    let parse = |src: &str| parse_module(src).unwrap_or_else(|e| panic!("{e}\n{src}")).functions.remove(0);
    let (before, after) = (parse(&before), parse(&after));
    let specials = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0, 0.0];
    for seed in 0..4 {
        let fill = |shape: &[usize], salt: usize, special: bool| {
            let n: usize = shape.iter().product();
            let v = (0..n).map(|i| if special && (i + seed + salt).is_multiple_of(7) { specials[(i / 7 + seed) % 5] } else { ((i * 5 + seed * 3 + salt) % 7) as f32 - 3.0 }).collect();
            Tensor::from_f32(shape, v).unwrap()
        };
        // NaN and inf in `g` too, from the second seed on.
        let args = [fill(&[3, 2, 5, 7], 1, true), fill(&[3, 2, 2, 3], 2, seed > 1)];
        let (want, got) = (run(&before, &args).unwrap(), run(&after, &args).unwrap());
        for (w, g) in want.iter().zip(&got) {
            let same = w.to_f64_vec().iter().zip(g.to_f64_vec()).all(|(a, b)| a.to_bits() == b.to_bits() || a.is_nan() && b.is_nan());
            assert!(same, "seed {seed}: {} vs {}", w.describe(), g.describe());
        }
    }
}

/// In a train step's shape, where the pooled activation comes from a
/// convolution with bias and ReLU: the bias gradient is summed over the
/// pooled grid and the full-size gradient is no longer computed at all
/// when nothing else needs it (here, no weight gradient); with
/// overlapping windows it stays.
#[test]
fn a_bias_gradient_under_max_pooling_reads_the_pooled_grid() {
    for (window, pooled, fires) in [("kernel = [2, 2], stride = [2, 2]", [3, 3], true), ("kernel = [3, 3], stride = [2, 2]", [2, 2], false)] {
        let (z, g) = ("tensor<?x4x6x6xf32>".to_string(), format!("tensor<?x4x{}x{}xf32>", pooled[0], pooled[1]));
        let src = format!(
            r#"func.func @f(%x: tensor<?x3x8x8xf32>, %w: tensor<4x3x3x3xf32>, %c: tensor<4x1x1xf32>, %g: {g}) -> ({g}, tensor<1x4x1x1xf32>) {{
  %0 = "dl.constant"() {{value = dense<0.0> : tensor<f32>}} : () -> tensor<f32>
  %y = "dl.conv2d"(%x, %w) : (tensor<?x3x8x8xf32>, tensor<4x3x3x3xf32>) -> {z}
  %z = "dl.add"(%y, %c) : ({z}, tensor<4x1x1xf32>) -> {z}
  %r = "dl.relu"(%z) : ({z}) -> {z}
  %p = "dl.max_pool2d"(%r) {{{window}}} : ({z}) -> {g}
  %d = "dl.max_pool2d_grad"(%r, %g) {{{window}}} : ({z}, {g}) -> {z}
  %m = "dl.cmp"(%z, %0) {{predicate = "gt"}} : ({z}, tensor<f32>) -> tensor<?x4x6x6xi1>
  %s = "dl.select"(%m, %d, %0) : (tensor<?x4x6x6xi1>, {z}, tensor<f32>) -> {z}
  %b = "dl.reduce_sum"(%s) {{axes = [0, 2, 3], keepdims = true}} : ({z}) -> tensor<1x4x1x1xf32>
  return %p, %b : {g}, tensor<1x4x1x1xf32>
}}"#
        );
        let before = parse_module(&src).unwrap_or_else(|e| panic!("{e}\n{src}")).functions.remove(0);
        let (after, report) = opt(&src);
        let text = print_function(&after);
        assert_eq!(report.fired.contains_key("pool_grad_sum_relu"), fires, "{window}\n{report}");
        assert_eq!(!text.contains("max_pool2d_grad"), fires, "{window}:\n{text}");
        let fill = |shape: &[usize], seed: usize| {
            let n: usize = shape.iter().product();
            Tensor::from_f32(shape, (0..n).map(|i| ((i * 5 + seed) % 7) as f32 - 3.0).collect()).unwrap()
        };
        let args = [fill(&[2, 3, 8, 8], 1), fill(&[4, 3, 3, 3], 2), fill(&[4, 1, 1], 3), fill(&[2, 4, pooled[0], pooled[1]], 4)];
        let (want, got) = (run(&before, &args).unwrap(), run(&after, &args).unwrap());
        for (w, g) in want.iter().zip(&got) {
            assert!(w.to_f64_vec().iter().zip(g.to_f64_vec()).all(|(a, b)| a.to_bits() == b.to_bits()), "{window}: {} vs {}", w.describe(), g.describe());
        }
    }
}

#[test]
fn transposes_fold_into_matmul_flags_and_names_are_kept() {
    // %y is returned too, so the ReLU is not fused into the matmul.
    let (f, report) = opt(
        r#"func.func @f(%x: tensor<?x4xf32>, %w: tensor<3x4xf32>) -> (tensor<?x3xf32>, tensor<?x3xf32>) {
  %wt = "dl.transpose"(%w) {perm = [1, 0]} : (tensor<3x4xf32>) -> tensor<4x3xf32>
  %y = "dl.matmul"(%x, %wt) : (tensor<?x4xf32>, tensor<4x3xf32>) -> tensor<?x3xf32>
  %r = "dl.relu"(%y) : (tensor<?x3xf32>) -> tensor<?x3xf32>
  return %r, %y : tensor<?x3xf32>, tensor<?x3xf32>
}"#,
    );
    let text = print_function(&f);
    assert!(text.contains(r#"%y = "dl.matmul"(%x, %w) {transpose_b = true}"#), "{text}");
    assert!(!text.contains("dl.transpose"), "{text}");
    assert!(text.contains(r#"%r = "dl.relu"(%y)"#), "{text}");
    assert!(report.changed && report.cost_after < report.cost_before, "{report}");
    assert_eq!(report.fired.get("matmul_transpose_b"), Some(&1), "{report}");
}

#[test]
fn an_unchanged_function_is_left_byte_for_byte() {
    let src = r#"func.func @f(%x: tensor<?x4xf32>, %w: tensor<3x4xf32>) -> tensor<?x3xf32> {
  %y = "dl.matmul"(%x, %w) {transpose_b = true} : (tensor<?x4xf32>, tensor<3x4xf32>) -> tensor<?x3xf32>
  %s = "dl.softmax"(%y) {axis = 1} : (tensor<?x3xf32>) -> tensor<?x3xf32>
  return %s : tensor<?x3xf32>
}"#;
    let before = print_function(&parse_module(src).unwrap().functions[0]);
    let (f, report) = opt(src);
    assert!(!report.changed, "{report}");
    assert_eq!(print_function(&f), before);
}

#[test]
fn ops_the_egraph_does_not_model_stay_in_order_with_operands_remapped() {
    // A non-splat constant is a leaf; `neg(neg(x))` feeding it collapses.
    let (f, _) = opt(
        r#"func.func @f(%x: tensor<3xf32>) -> (tensor<3xf32>, tensor<3xf32>) {
  %0 = "dl.neg"(%x) : (tensor<3xf32>) -> tensor<3xf32>
  %1 = "dl.neg"(%0) : (tensor<3xf32>) -> tensor<3xf32>
  %k = "dl.constant"() {value = dense<[1.0, 2.0, 3.0]> : tensor<3xf32>} : () -> tensor<3xf32>
  %2 = "dl.add"(%1, %k) : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
  return %2, %k : tensor<3xf32>, tensor<3xf32>
}"#,
    );
    let text = print_function(&f);
    assert!(!text.contains("dl.neg"), "{text}");
    assert!(text.contains(r#""dl.add"(%x, %k)"#), "{text}");
}

#[test]
fn a_shared_value_is_reused_rather_than_recomputed_another_way() {
    // exp(log_softmax(x)) is softmax(x), but log_softmax(x) is returned anyway:
    // one exp is cheaper than a second normalization, so the exp stays.
    let (f, report) = opt(
        r#"func.func @f(%x: tensor<?x10xf32>) -> (tensor<?x10xf32>, tensor<?x10xf32>) {
  %l = "dl.log_softmax"(%x) {axis = 1} : (tensor<?x10xf32>) -> tensor<?x10xf32>
  %p = "dl.exp"(%l) : (tensor<?x10xf32>) -> tensor<?x10xf32>
  return %l, %p : tensor<?x10xf32>, tensor<?x10xf32>
}"#,
    );
    assert_eq!(report.fired.get("exp_log_softmax"), Some(&1), "{report}");
    assert!(!report.changed, "{report}\n{f}");
    // Alone, the softmax wins.
    let (f, report) = opt(
        r#"func.func @f(%x: tensor<?x10xf32>) -> tensor<?x10xf32> {
  %l = "dl.log_softmax"(%x) {axis = 1} : (tensor<?x10xf32>) -> tensor<?x10xf32>
  %p = "dl.exp"(%l) : (tensor<?x10xf32>) -> tensor<?x10xf32>
  return %p : tensor<?x10xf32>
}"#,
    );
    let text = print_function(&f);
    assert!(report.changed && text.contains(r#"%p = "dl.softmax"(%x) {axis = 1}"#), "{report}\n{text}");
}

// --- the BCE of a sigmoid at extreme logits ------------------------------------

/// The interpreter's f32 sigmoid.
fn sigmoid_f32(z: f32) -> f32 {
    if z >= 0.0 { 1.0 / (1.0 + (-z).exp()) } else { z.exp() / (1.0 + z.exp()) }
}

/// Logits from 0 to past both ends of f32's sigmoid (it rounds to 1 from
/// z ≈ 16.6, to 0 below z ≈ -104), against targets 0, 1 and 0.3: the loss
/// is unchanged, and the gradient, now `g·(p - t)` with `g = 1/N`, agrees
/// with the input's within 1e-6 relative (a few ulps of its two terms) and
/// is exactly 0 where `p` rounds to 0 or 1, as the input's is. At z = -95
/// the input divides `g` by `p ≈ 5.5e-42` and gets `-inf` (t > 0); the
/// rewrite gets the finite `g·(p - t)`.
#[test]
fn bce_of_a_sigmoid_keeps_its_loss_and_gets_the_logits_gradient() {
    let f = bce_of_sigmoid_with_gradient();
    let mut g = f.clone();
    let report = optimize(&mut g).unwrap();
    verify_function(&g).unwrap();
    for rule in ["log1p_vjp", "bce_sigmoid_grad", "bce_floor", "bce_floor_grad"] {
        assert!(report.fired.contains_key(rule), "{rule} did not fire:\n{report}");
    }
    assert!(report.changed && report.cost_after < report.cost_before, "{report}");
    // The gradient's divisions by p and by 1 - p (three, in log1p's
    // gradient) are gone; the loss's and the count's remain.
    let divisions = |f: &Function| f.body_ops().iter().filter(|&&o| f.op(o).kind == OpKind::Div).count();
    assert!(divisions(&g) < divisions(&f), "{}", print_function(&g));

    let zs = [0.0f32, 5.0, -5.0, 16.5, -16.5, 20.0, -20.0, 50.0, -50.0, 120.0, -120.0, -95.0];
    let rows: Vec<(f32, f32)> = zs.iter().flat_map(|&z| [0.0f32, 1.0, 0.3].map(|t| (z, t))).collect();
    let n = rows.len();
    let args = [Tensor::from_f32(&[n, 1], rows.iter().map(|r| r.0).collect()).unwrap(), Tensor::from_f32(&[n, 1], rows.iter().map(|r| r.1).collect()).unwrap()];
    let want = run(&f, &args).unwrap();
    let got = run(&g, &args).unwrap();
    assert_eq!(got[0].to_f64_vec(), want[0].to_f64_vec(), "the loss");
    let (want, got) = (want[1].to_f64_vec(), got[1].to_f64_vec());
    let scale = 1.0 / n as f64;
    for (i, &(z, t)) in rows.iter().enumerate() {
        let p = sigmoid_f32(z) as f64;
        let logits = if p > 0.0 && p < 1.0 { scale * (p - t as f64) } else { 0.0 };
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-6 * a.abs().max(b.abs()) + 1e-12 * scale;
        assert!(close(got[i], logits), "z = {z}, t = {t}: the rewrite gives {}, g·(p - t) is {logits}", got[i]);
        if want[i].is_finite() {
            assert!(close(got[i], want[i]), "z = {z}, t = {t}: {} after, {} before", got[i], want[i]);
            assert_eq!(got[i] == 0.0, want[i] == 0.0, "z = {z}, t = {t}: {} after, {} before", got[i], want[i]);
        } else {
            assert!(z == -95.0 && t > 0.0, "z = {z}, t = {t}: the input's gradient is {}", want[i]);
        }
    }
}

/// Each result the same bits (NaN matching any NaN).
fn assert_same_bits(want: &[Tensor], got: &[Tensor]) {
    for (w, g) in want.iter().zip(got) {
        let same = w.to_f64_vec().iter().zip(g.to_f64_vec()).all(|(a, b)| a.to_bits() == b.to_bits() || a.is_nan() && b.is_nan());
        assert!(same, "{} vs {}", w.describe(), g.describe());
    }
}

/// Quarter steps in [-1.25, 1.25] (ties are common), with NaN, ±inf and -0
/// every `every` elements (none for 0).
fn with_specials(shape: &[usize], seed: usize, every: usize) -> Tensor {
    let specials = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0];
    let n: usize = shape.iter().product();
    let v = (0..n).map(|i| if every > 0 && (i + seed).is_multiple_of(every) { specials[(i / every) % 4] } else { ((i * 7 + seed * 3) % 11) as f32 * 0.25 - 1.25 }).collect();
    Tensor::from_f32(shape, v).unwrap()
}
