//! A host program using dlc as a library: compile a model from a file, run its
//! forward pass, train it a few steps, save and reload its weights.
//!
//! `cargo run --example host`

use dlc::{Model, Options, Tensor};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut model = Model::compile_file("examples/digits_mlp.dl", &Options { seed: 1, ..Options::default() })?;
    let sig = model.signature();
    println!(
        "inputs: {:?}, outputs: {:?}, {} parameters",
        sig.inputs().map(|a| a.name.as_str()).collect::<Vec<_>>(),
        sig.outputs.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        model.params().map(|(_, t)| t.len()).sum::<usize>()
    );

    // A batch of 8 made-up 8x8 images with labels 0..7.
    let x = Tensor::from_f32(&[8, 64], (0..8 * 64).map(|i| ((i * 37) % 17) as f32 / 16.0).collect())?;
    let labels = Tensor::from_i64(&[8], (0..8).collect())?;

    let logits = &model.forward(&[("x", &x)])?[0].1;
    println!("logits before training: {}", logits.describe());

    let mut trainer = model.trainer()?;
    for step in 0..30 {
        let r = trainer.step(&[("x", &x)], &labels)?;
        if step % 10 == 0 {
            println!("step {step:>2}: loss {:.4}, correct {}/8", r.loss, r.correct.unwrap_or(0.0));
        }
    }
    model.set_params(trainer.params())?;

    let path = std::env::temp_dir().join("dlc-host-example.safetensors");
    model.save_weights(&path)?;
    let mut again = Model::compile_file("examples/digits_mlp.dl", &Options::default())?;
    again.load_weights(&path)?;
    let a = &model.forward(&[("x", &x)])?[0].1;
    let b = &again.forward(&[("x", &x)])?[0].1;
    assert_eq!(a.max_abs_diff(b), Some(0.0));
    println!("saved and reloaded {}: same outputs", path.display());

    // Mistakes are errors, not crashes.
    let wrong = Tensor::from_f32(&[8, 63], vec![0.0; 8 * 63])?;
    println!("a wrong shape: {}", model.forward(&[("x", &wrong)]).unwrap_err());
    Ok(())
}
