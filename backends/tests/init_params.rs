//! Parameter initialization: deterministic per seed, independent per
//! parameter, exact for the constant initializers, and with the right
//! distribution for the random ones (checked against standard errors).

use dlc_backends::{Tensor, init_params};
use dlc_ir::signature::{input_attrs, param_attrs};
use dlc_ir::{Builder, DType, Function, Init, Signature, TensorType};

/// A signature with one input and the given parameters `(name, shape, dtype, init)`.
fn signature(params: &[(&str, &[u64], DType, Init)]) -> Signature {
    let mut f = Function::new("model");
    let x = f.add_arg(TensorType::fixed(&[1], DType::F32).into(), Some("x"), input_attrs());
    for (name, shape, dtype, init) in params {
        f.add_arg(TensorType::fixed(shape, *dtype).into(), Some(name), param_attrs(init));
    }
    Builder::at_entry(&mut f).ret(&[x]);
    Signature::of(&f).unwrap()
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

#[test]
fn constant_initializers_are_exact() {
    let sig = signature(&[
        ("z", &[2, 3], DType::F32, Init::Zeros),
        ("o", &[4], DType::F64, Init::Ones),
        ("c", &[3], DType::F32, Init::Constant(0.25)),
        ("k", &[2], DType::I64, Init::Constant(-3.0)),
    ]);
    let p = init_params(&sig, 7);
    let names: Vec<&str> = p.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["z", "o", "c", "k"], "only parameters, in argument order");
    assert_eq!(p[0].1, Tensor::zeros(&[2, 3], DType::F32));
    assert_eq!(p[1].1, Tensor::from_f64(&[4], vec![1.0; 4]).unwrap());
    assert_eq!(p[2].1, Tensor::from_f32(&[3], vec![0.25; 3]).unwrap());
    assert_eq!(p[3].1, Tensor::from_i64(&[2], vec![-3; 2]).unwrap());
}

#[test]
fn draws_are_deterministic_and_independent_per_parameter() {
    let u = Init::Uniform { low: -1.0, high: 1.0 };
    let sig = signature(&[("a", &[64, 32], DType::F32, u.clone()), ("b", &[64, 32], DType::F32, u.clone())]);
    let first = init_params(&sig, 42);
    assert_eq!(first, init_params(&sig, 42), "same seed, same values");
    assert_ne!(first[0].1, init_params(&sig, 43)[0].1, "another seed, other values");
    assert_ne!(first[0].1, first[1].1, "two parameters with one initializer still differ");
    assert_eq!((first[0].1.dtype(), first[0].1.shape()), (DType::F32, &[64usize, 32][..]));
    // A parameter's values depend on its name, not its position: adding a
    // parameter before it changes nothing.
    let more = signature(&[("new", &[5], DType::F32, u.clone()), ("a", &[64, 32], DType::F32, u)]);
    assert_eq!(init_params(&more, 42)[1].1, first[0].1);
}

#[test]
fn uniform_draws_have_the_uniform_mean_and_spread() {
    let (low, high, n) = (-1.0, 3.0, 100_000usize);
    let sig = signature(&[("u", &[n as u64], DType::F64, Init::Uniform { low, high })]);
    let v = init_params(&sig, 1)[0].1.to_f64_vec();
    assert!(v.iter().all(|&x| (low..high).contains(&x)));
    // U(-1, 3): mean 1, std 4/sqrt(12) = 1.1547; the sample mean's standard error is std/sqrt(n) = 0.0037.
    let (mean, std) = mean_std(&v);
    let sd = (high - low) / 12f64.sqrt();
    assert!((mean - 1.0).abs() < 5.0 * sd / (n as f64).sqrt(), "mean {mean}");
    assert!((std - sd).abs() < 0.01 * sd, "std {std}");
    // Each quarter of the range holds a quarter of the draws (binomial standard error 0.0014).
    for q in 0..4 {
        let lo = low + q as f64;
        let frac = v.iter().filter(|&&x| x >= lo && x < lo + 1.0).count() as f64 / n as f64;
        assert!((frac - 0.25).abs() < 5.0 * (0.25f64 * 0.75 / n as f64).sqrt(), "quarter {q}: {frac}");
    }
}

#[test]
fn normal_draws_have_the_normal_mean_spread_and_shape() {
    let (mean0, std0, n) = (1.0, 2.0, 100_001usize);
    let sig = signature(&[("w", &[n as u64], DType::F64, Init::Normal { mean: mean0, std: std0 })]);
    let v = init_params(&sig, 3)[0].1.to_f64_vec();
    assert_eq!(v.len(), n, "an odd count is fine");
    let (mean, std) = mean_std(&v);
    let nf = n as f64;
    assert!((mean - mean0).abs() < 5.0 * std0 / nf.sqrt(), "mean {mean}");
    // The sample std of a normal has standard error std/sqrt(2n).
    assert!((std - std0).abs() < 5.0 * std0 / (2.0 * nf).sqrt(), "std {std}");
    // P(|z| < 1) = 0.6827 and P(|z| < 2) = 0.9545 for a normal (not for a uniform of the same std).
    for (k, p) in [(1.0, 0.682_689), (2.0, 0.954_500)] {
        let frac = v.iter().filter(|&&x| ((x - mean0) / std0).abs() < k).count() as f64 / nf;
        assert!((frac - p).abs() < 5.0 * (p * (1.0 - p) / nf).sqrt(), "within {k} std: {frac}");
    }
}

#[test]
fn f32_parameters_are_drawn_in_f64_and_rounded() {
    let init = Init::Uniform { low: 0.0, high: 1.0 };
    let p32 = init_params(&signature(&[("p", &[100], DType::F32, init.clone())]), 9);
    let p64 = init_params(&signature(&[("p", &[100], DType::F64, init)]), 9);
    let rounded: Vec<f64> = p64[0].1.to_f64_vec().iter().map(|&x| x as f32 as f64).collect();
    assert_eq!(p32[0].1.to_f64_vec(), rounded);
}
