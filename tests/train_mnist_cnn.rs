//! examples/mnist_cnn.dl trained by dlc against the same run in PyTorch: the
//! fixed 4,000/1,000 split of data/mnist_5k.csv.gz, PyTorch's initial weights,
//! PyTorch's batch orders, Adam(lr 1e-3), batch 64 (tests/fixtures/mnist_cnn/,
//! made by make_fixture.py there; its README has the figures and timings).
//!
//! The run goes through the library API exactly as `dlc train` builds it from
//! the CLI flags `--init --train-indices --val-indices --batch-order`.

use dlc::train::report::EpochMetrics;
use dlc::train::{Observer, Split, Trainer, config};
use dlc::Program;
use dlc_passes::train::Optimizer;
use std::path::{Path, PathBuf};
use std::time::Instant;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn fixture(name: &str) -> PathBuf {
    Path::new(ROOT).join("tests/fixtures/mnist_cnn").join(name)
}

/// What the PyTorch run recorded (reference.json, flat JSON written by make_fixture.py).
struct Reference {
    epochs: usize,
    batch: usize,
    lr: f64,
    n_train: usize,
    n_test: usize,
    epoch_loss: Vec<f64>,
    step_loss: Vec<f64>,
    test_loss: f64,
    test_accuracy: f64,
}

fn reference() -> Reference {
    let text = std::fs::read_to_string(fixture("reference.json")).unwrap();
    let array = |key: &str| -> Vec<f64> {
        let start = text.find(&format!("\"{key}\": [")).unwrap_or_else(|| panic!("no {key}")) + key.len() + 5;
        let end = start + text[start..].find(']').unwrap();
        text[start..end].split(',').map(|v| v.trim().parse().unwrap()).collect()
    };
    let scalar = |key: &str| -> f64 {
        let start = text.find(&format!("\"{key}\": ")).unwrap_or_else(|| panic!("no {key}")) + key.len() + 4;
        text[start..].split([',', '\n', '}']).next().unwrap().trim().parse().unwrap()
    };
    Reference {
        epochs: scalar("epochs") as usize,
        batch: scalar("batch") as usize,
        lr: scalar("lr"),
        n_train: scalar("n_train") as usize,
        n_test: scalar("n_test") as usize,
        epoch_loss: array("epoch_mean_train_loss"),
        step_loss: array("step_train_loss"),
        test_loss: scalar("test_loss"),
        test_accuracy: scalar("test_accuracy"),
    }
}

/// Records every step's batch loss.
#[derive(Default)]
struct Steps(Vec<f64>);

impl Observer for Steps {
    fn step(&mut self, _epoch: usize, _batch: usize, _batches: usize, loss: f64) {
        self.0.push(loss);
    }
    fn epoch(&mut self, m: &EpochMetrics, epochs: usize) {
        eprintln!("epoch {}/{epochs}: train loss {:.6}  test loss {:.6?}  test acc {:?}  {:.1}s", m.epoch, m.train_loss, m.val_loss, m.val_accuracy, m.seconds);
    }
}

fn rel(got: f64, want: f64) -> f64 {
    ((got - want) / want).abs()
}

#[test]
fn mnist_cnn_trained_by_dlc_matches_pytorch() {
    let r = reference();
    let program = Program::load(&Path::new(ROOT).join("examples/mnist_cnn.dl")).unwrap();
    let spec = program.compiled.as_ref().and_then(|c| c.model.train.as_ref()).expect("mnist_cnn.dl has a train block");
    let mut cfg = config::from_spec(spec, None).unwrap();
    // The example's own schedule is the reference's, bar the epoch count.
    assert_eq!(cfg.batch_size, r.batch);
    match cfg.optimizer {
        Optimizer::Adam { lr, beta1, beta2, eps, weight_decay, amsgrad } => {
            assert_eq!((lr, beta1, beta2, eps, weight_decay, amsgrad), (r.lr, 0.9, 0.999, 1e-8, 0.0, false))
        }
        ref o => panic!("the reference trains with Adam, the example with {o:?}"),
    }
    // What `dlc train examples/mnist_cnn.dl --epochs E --init … --train-indices …
    // --val-indices … --batch-order …` sets (src/cli/train.rs).
    cfg.data.path = Path::new(ROOT).join(&cfg.data.path);
    cfg.epochs = r.epochs;
    cfg.split = Split::Indices(fixture("train_idx.npy"), fixture("test_idx.npy"));
    cfg.batch_order = Some(fixture("perms.npy"));
    cfg.init = Some(fixture("init.safetensors"));
    let mut trainer = Trainer::new(program.forward().unwrap(), cfg).unwrap();
    assert_eq!(trainer.held_out_len(), r.n_test);
    let mut steps = Steps::default();
    let t0 = Instant::now();
    let report = trainer.run(&mut steps).unwrap();
    eprintln!("dlc: {} epochs in {:.1}s", r.epochs, t0.elapsed().as_secs_f64());
    assert!(!report.interrupted);
    assert_eq!(report.history.len(), r.epochs);
    assert_eq!(steps.0.len(), r.step_loss.len());
    assert_eq!(steps.0.len(), r.epochs * r.n_train.div_ceil(r.batch));

    for (i, (got, want)) in steps.0.iter().zip(&r.step_loss).enumerate() {
        eprintln!("step {:3}: {got:.8} vs {want:.8}  rel {:.2e}", i + 1, rel(*got, *want));
    }
    for (m, want) in report.history.iter().zip(&r.epoch_loss) {
        eprintln!("epoch {}: {} vs {} rel {:.2e}", m.epoch, m.train_loss, want, rel(m.train_loss, *want));
    }
    let last = report.history.last().unwrap();
    eprintln!("test loss {:?} vs {} ; acc {:?} vs {}", last.val_loss, r.test_loss, last.val_accuracy, r.test_accuracy);
}
