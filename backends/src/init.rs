//! Parameter initialization from a model signature's `dl.init` attributes.
//!
//! Every parameter draws from its own ChaCha8 stream: the key is the run's
//! seed, the stream number a hash of the parameter's name. So a parameter's
//! values depend only on (seed, name, shape, initializer): adding a layer or
//! reordering arguments does not change the others, and a checkpoint's
//! parameters can be regenerated one by one.

use crate::tensor::Tensor;
use dlc_ir::{Init, Signature, TensorType};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// FNV-1a, 64-bit: a stable hash of the parameter name, so streams do not
/// change between Rust versions (unlike `std`'s `DefaultHasher`).
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

/// The random stream of the parameter `name` under `seed`.
fn stream(seed: u64, name: &str) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(name_hash(name));
    rng
}

/// A uniform draw in the open interval (0, 1), safe to take the log of.
fn open01(rng: &mut ChaCha8Rng) -> f64 {
    loop {
        let u: f64 = rng.random();
        if u > 0.0 {
            return u;
        }
    }
}

/// `n` values drawn from `init`, as f64.
fn draw(init: &Init, n: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    match *init {
        Init::Zeros => vec![0.0; n],
        Init::Ones => vec![1.0; n],
        Init::Constant(v) => vec![v; n],
        Init::Uniform { low, high } => (0..n).map(|_| low + (high - low) * rng.random::<f64>()).collect(),
        Init::Normal { mean, std } => {
            // Box–Muller: two uniforms give two independent standard normals.
            let mut out = Vec::with_capacity(n + 1);
            while out.len() < n {
                let (u1, u2) = (open01(rng), rng.random::<f64>());
                let r = (-2.0 * u1.ln()).sqrt();
                let theta = 2.0 * std::f64::consts::PI * u2;
                out.push(mean + std * r * theta.cos());
                out.push(mean + std * r * theta.sin());
            }
            out.truncate(n);
            out
        }
    }
}

/// The concrete shape of a parameter. Parameters have static shapes (the
/// verifier rejects a `?` there); should one slip through, it counts as 1, so
/// that this function never panics.
fn static_shape(ty: &TensorType) -> Vec<usize> {
    ty.shape.iter().map(|d| d.as_static().map_or(1, |n| n as usize)).collect()
}

/// Initial values of every parameter of `sig`, in argument order, named as in
/// the signature. Deterministic in `seed`; each parameter independent of the
/// others (see the module docs). Draws are made in f64 and converted to the
/// parameter's dtype as `dl.cast` converts.
pub fn init_params(sig: &Signature, seed: u64) -> Vec<(String, Tensor)> {
    sig.params().map(|(arg, init)| (arg.name.clone(), init_tensor(&arg.name, &arg.ty, init, seed))).collect()
}

/// Initial values of the optimizer state of `sig` (zeros or constants, by its
/// `dl.init`), in argument order.
pub fn init_state(sig: &Signature, seed: u64) -> Vec<(String, Tensor)> {
    sig.state().map(|(arg, init)| (arg.name.clone(), init_tensor(&arg.name, &arg.ty, init, seed))).collect()
}

/// One tensor drawn from `init`, from the stream of `name` under `seed`.
pub fn init_tensor(name: &str, ty: &TensorType, init: &Init, seed: u64) -> Tensor {
    let shape = static_shape(ty);
    let n = shape.iter().product();
    let values = draw(init, n, &mut stream(seed, name));
    Tensor::from_f64_values(&shape, &values, ty.dtype).unwrap_or_else(|_| Tensor::zeros(&shape, ty.dtype))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dlc_ir::DType;

    #[test]
    fn name_hash_is_fnv1a() {
        // Reference values of FNV-1a 64 for "" and "a".
        assert_eq!(name_hash(""), 0xcbf29ce484222325);
        assert_eq!(name_hash("a"), 0xaf63dc4c8601ec8c);
    }

    #[test]
    fn static_shapes_never_panic() {
        let ty = TensorType::new(vec![dlc_ir::Dim::Dynamic, dlc_ir::Dim::Static(3)], DType::F32);
        assert_eq!(static_shape(&ty), vec![1, 3]);
    }
}
