//! Prints the Cranelift IR and the machine code of a small fused kernel,
//! `relu(a*b + c)`: the first thing to look at when tuning the code generator.
//!
//! ```text
//! cargo run -p dlc-jit --release --example listing
//! ```

use dlc_ir::{Attrs, DType, OpKind};
use dlc_jit::{Access, Jit, JitOptions, KernelBuilder};

fn main() -> Result<(), dlc_jit::JitError> {
    let jit = Jit::with_options(JitOptions { listing: true, ..JitOptions::default() })?;
    let mut k = KernelBuilder::new(1)?;
    let [a, b, c] = [0; 3].map(|_| k.input(DType::F32, &[Access::Full]));
    let p = k.op(OpKind::Mul, &[a?, b?], Attrs::new())?;
    let s = k.op(OpKind::Add, &[p, c?], Attrs::new())?;
    let r = k.op(OpKind::Relu, &[s], Attrs::new())?;
    let kernel = jit.compile(&k.finish(r)?)?;
    println!("{}", kernel.listing().unwrap_or("(no listing)"));
    Ok(())
}
