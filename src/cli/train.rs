//! `dlc train` and `dlc eval`.

use clap::Args;
use dlc::train::{self, Observer, Split, Trainer, config, report::EpochMetrics};
use dlc::{Error, Program};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct TrainArgs {
    /// The model, with a `train { … }` block.
    file: PathBuf,
    /// Data file instead of the train block's (.csv, .csv.gz, .npz); no held-out split then.
    #[arg(long, value_name = "PATH")]
    data: Option<PathBuf>,
    /// Total epochs (a resumed run continues up to this many).
    #[arg(long)]
    epochs: Option<usize>,
    /// Rows per step.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// Seed for initialization, the split and shuffling.
    #[arg(long)]
    seed: Option<u64>,
    /// Initial parameters (safetensors, names as in the IR) instead of seeded initialization.
    #[arg(long, value_name = "FILE")]
    init: Option<PathBuf>,
    /// Training rows: an integer .npy of row indices (with --val-indices; replaces the block's split).
    #[arg(long, value_name = "FILE", requires = "val_indices")]
    train_indices: Option<PathBuf>,
    /// Held-out rows: an integer .npy of row indices.
    #[arg(long, value_name = "FILE", requires = "train_indices")]
    val_indices: Option<PathBuf>,
    /// Per-epoch batch orders: an integer .npy [epochs, training rows] (positions into the training rows).
    #[arg(long, value_name = "FILE")]
    batch_order: Option<PathBuf>,
    /// Write a checkpoint here after every epoch (and on Ctrl-C).
    #[arg(long, value_name = "DIR")]
    checkpoint_dir: Option<PathBuf>,
    /// Continue from the newest checkpoint in --checkpoint-dir.
    #[arg(long, requires = "checkpoint_dir")]
    resume: bool,
    /// Write the trained parameters to this safetensors file.
    #[arg(short, long, value_name = "WEIGHTS")]
    output: Option<PathBuf>,
    /// Write per-epoch metrics to this CSV file.
    #[arg(long, value_name = "FILE")]
    metrics: Option<PathBuf>,
    /// Plot the loss and accuracy curves to this SVG file.
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
    /// What runs the train step: the CPU JIT or the reference interpreter.
    #[arg(long, value_enum, default_value = "jit")]
    backend: dlc::model::Backend,
    /// Worker threads for the JIT backend (default: one per core).
    #[arg(long, default_value_t = 0, hide_default_value = true)]
    threads: usize,
}

#[derive(Args)]
pub struct EvalArgs {
    /// The model, with a `train { … }` block (it names the loss).
    file: PathBuf,
    /// Trained parameters (safetensors).
    #[arg(long, value_name = "FILE")]
    weights: PathBuf,
    /// Data to evaluate on, all rows; without it, the held-out rows of the train block's data.
    #[arg(long, value_name = "PATH")]
    data: Option<PathBuf>,
    /// What runs the model: the CPU JIT or the reference interpreter.
    #[arg(long, value_enum, default_value = "jit")]
    backend: dlc::model::Backend,
    /// Worker threads for the JIT backend (default: one per core).
    #[arg(long, default_value_t = 0, hide_default_value = true)]
    threads: usize,
}

fn train_spec(program: &Program) -> Result<&dlc_frontend::TrainSpec, Error> {
    program
        .compiled
        .as_ref()
        .and_then(|c| c.model.train.as_ref())
        .ok_or_else(|| Error::Input(format!("{}: the model has no train block (add `train {{ loss: …, optimizer: … }}`)", program.name)))
}

fn data_override(program: &Program, path: &Option<PathBuf>) -> Option<dlc::data::DataSpec> {
    let p = path.as_ref()?;
    let mut spec = dlc::data::DataSpec::new(p);
    // Keep the block's reading options (label column, scale) for a file of the same kind.
    if let Some(d) = train_spec(program).ok().and_then(|t| t.data.as_ref()) {
        let block = config::data(d);
        if spec.format().ok() == block.format().ok() {
            spec = dlc::data::DataSpec { path: p.clone(), ..block };
        }
    }
    Some(spec)
}

/// A progress bar on a terminal; one line per epoch otherwise.
struct Progress {
    bar: Option<ProgressBar>,
}

impl Observer for Progress {
    fn step(&mut self, epoch: usize, batch: usize, batches: usize, loss: f64) {
        if let Some(bar) = &self.bar {
            if batch == 0 {
                bar.set_length(batches as u64);
                bar.set_position(0);
            }
            bar.set_prefix(format!("epoch {}", epoch + 1));
            bar.set_message(format!("loss {loss:.4}"));
            bar.inc(1);
        }
    }

    fn epoch(&mut self, m: &EpochMetrics, epochs: usize) {
        let line = epoch_line(m, epochs);
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn checkpoint(&mut self, _path: &Path) {}
}

fn epoch_line(m: &EpochMetrics, epochs: usize) -> String {
    let mut s = format!("epoch {:>3}/{epochs}  train loss {:.6}", m.epoch, m.train_loss);
    if let Some(v) = m.val_loss {
        s += &format!("  val loss {v:.6}");
    }
    if let Some(a) = m.val_accuracy {
        s += &format!("  val acc {:.2}%", a * 100.0);
    }
    s + &format!("  {:.2}s", m.seconds)
}

pub fn train(a: &TrainArgs) -> Result<(), Error> {
    let program = Program::load(&a.file)?;
    let spec = train_spec(&program)?;
    let mut cfg = config::from_spec(spec, data_override(&program, &a.data))?;
    if let Some(e) = a.epochs {
        cfg.epochs = e;
    }
    if let Some(b) = a.batch_size {
        cfg.batch_size = b;
    }
    if let Some(lr) = a.lr {
        cfg.optimizer = cfg.optimizer.with_lr(lr);
    }
    if let Some(s) = a.seed {
        cfg.seed = s;
    }
    if let (Some(t), Some(v)) = (&a.train_indices, &a.val_indices) {
        cfg.split = Split::Indices(t.clone(), v.clone());
    }
    cfg.batch_order = a.batch_order.clone();
    cfg.init = a.init.clone();
    cfg.checkpoint_dir = a.checkpoint_dir.clone();
    cfg.resume = a.resume;
    cfg.threads = a.threads;
    let mut trainer = Trainer::new(program.forward()?, cfg.clone())?;
    trainer.set_backend(a.backend)?;
    let flag = trainer.interrupt_flag();
    // Ctrl-C: finish the current step, save a checkpoint, exit. A second handler
    // cannot be installed in the same process (e.g. in tests); training then just
    // runs without one.
    let _ = ctrlc::set_handler(move || flag.store(true, std::sync::atomic::Ordering::SeqCst));
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = ProgressBar::new(0);
        b.set_style(
            ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} {msg} eta {eta}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        b
    });
    let mut progress = Progress { bar };
    let result = trainer.run(&mut progress);
    if let Some(b) = &progress.bar {
        b.finish_and_clear();
    }
    let report = result?;
    if let Some(p) = &a.output {
        dlc::io::weights::write(p, &report.params)?;
    }
    if let Some(p) = &a.metrics {
        train::report::write_csv(p, &report.history).map_err(|source| Error::Write { path: p.display().to_string(), source })?;
    }
    if let Some(p) = &a.plot {
        let title = program.compiled.as_ref().map(|c| c.model.name.clone()).unwrap_or_default();
        let svg = train::report::plot_svg(&report.history, &title).map_err(|m| Error::Input(format!("{}: cannot plot: {m}", p.display())))?;
        dlc::io::write_atomic(p, svg.as_bytes()).map_err(|source| Error::Write { path: p.display().to_string(), source })?;
    }
    if report.interrupted {
        eprintln!("interrupted; {}", match &cfg.checkpoint_dir {
            Some(d) => format!("a checkpoint is in {} (continue with --resume)", d.display()),
            None => "no --checkpoint-dir was given, so nothing was saved but -o".into(),
        });
        return Err(Error::Input("training was interrupted".into()));
    }
    if let Some(m) = report.history.last() {
        let mut line = format!("trained {} epoch(s): train loss {:.6}", m.epoch, m.train_loss);
        if let Some(v) = m.val_loss {
            line += &format!(", val loss {v:.6}");
        }
        if let Some(acc) = m.val_accuracy {
            line += &format!(", val accuracy {:.4}", acc);
        }
        if let Some(p) = &a.output {
            line += &format!("; weights in {}", p.display());
        }
        println!("{line}");
    }
    if a.output.is_none() {
        eprintln!("note: the trained weights were not saved (use -o WEIGHTS.safetensors)");
    }
    Ok(())
}

pub fn eval(a: &EvalArgs) -> Result<(), Error> {
    let program = Program::load(&a.file)?;
    let spec = train_spec(&program)?;
    let mut cfg = config::from_spec(spec, data_override(&program, &a.data))?;
    cfg.init = Some(a.weights.clone());
    cfg.epochs = 0;
    cfg.threads = a.threads;
    let mut trainer = Trainer::new(program.forward()?, cfg)?;
    trainer.set_backend(a.backend)?;
    let (loss, acc) = trainer.evaluate_held_out()?;
    print!("loss {loss:.6}");
    if let Some(acc) = acc {
        print!("  accuracy {:.4}", acc);
    }
    println!("  ({} rows)", trainer.held_out_len());
    Ok(())
}
