//! `dlc train` and `dlc eval` end to end: the PyTorch digits replay, exact
//! resumption, Ctrl-C, divergence, and every kind of bad training input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn dlc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dlc")).args(args).current_dir(ROOT).env("NO_COLOR", "1").output().expect("dlc runs")
}

fn ok(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(0), "stderr:\n{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn user_error(o: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "stderr:\n{err}");
    assert!(err.contains(needle), "expected '{needle}' in:\n{err}");
    assert!(!err.contains("panicked") && !err.contains("internal compiler error"), "{err}");
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dlc-train-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn fixture(name: &str) -> String {
    format!("{ROOT}/tests/fixtures/digits/{name}")
}

/// The reference's per-epoch losses and final metrics, read with a minimal
/// parser (the file is flat JSON written by the reference script).
fn reference() -> (Vec<f64>, f64) {
    let text = std::fs::read_to_string(fixture("reference.json")).unwrap();
    let array = |key: &str| -> Vec<f64> {
        let start = text.find(&format!("\"{key}\": [")).unwrap() + key.len() + 5;
        let end = start + text[start..].find(']').unwrap();
        text[start..end].split(',').map(|v| v.trim().parse().unwrap()).collect()
    };
    let scalar = |key: &str| -> f64 {
        let start = text.find(&format!("\"{key}\": ")).unwrap() + key.len() + 4;
        text[start..].split([',', '\n', '}']).next().unwrap().trim().parse().unwrap()
    };
    (array("epoch_mean_train_loss"), scalar("test_accuracy"))
}

fn metrics(path: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("epoch,train_loss,val_loss,val_accuracy,seconds"));
    lines.map(|l| l.split(',').map(str::to_string).collect()).collect()
}

#[test]
fn digits_replay_matches_pytorch_on_the_jit() {
    digits_replay("jit");
}

#[test]
fn digits_replay_matches_pytorch_on_the_interpreter() {
    digits_replay("interp");
}

fn digits_replay(backend: &str) {
    let d = temp(&format!("replay-{backend}"));
    let (m, w) = (d.join("m.csv"), d.join("w.safetensors"));
    let (init, tr, te, perms) = (fixture("init.safetensors"), fixture("train_idx.npy"), fixture("test_idx.npy"), fixture("perms.npy"));
    let out = ok(&dlc(&[
        "train", "examples/digits_mlp.dl", "--init", &init, "--train-indices", &tr, "--val-indices", &te, "--batch-order", &perms,
        "-o", s(&w), "--metrics", s(&m), "--backend", backend,
    ]));
    assert!(out.starts_with("trained 20 epoch(s): train loss 0.1786") && out.contains("val accuracy 0.9444"), "{out}");
    let (ref_losses, ref_acc) = reference();
    let rows = metrics(&m);
    assert_eq!(rows.len(), 20);
    for (row, want) in rows.iter().zip(&ref_losses) {
        let got: f64 = row[1].parse().unwrap();
        assert!(((got - want) / want).abs() < 1e-4, "epoch {}: {got} vs PyTorch {want}", row[0]);
    }
    let acc: f64 = rows[19][3].parse().unwrap();
    assert!((acc * 360.0 - ref_acc * 360.0).abs() <= 1.0 + 1e-9, "test accuracy {acc} vs PyTorch {ref_acc}");
    // Final weights within 1e-3 of PyTorch's.
    let ours = dlc::io::weights::read(&w).unwrap();
    let theirs = dlc::io::weights::read(Path::new(&fixture("final.safetensors"))).unwrap();
    assert_eq!(ours.keys().collect::<Vec<_>>(), theirs.keys().collect::<Vec<_>>());
    for (name, t) in &ours {
        let diff = t.max_abs_diff(&theirs[name]).unwrap();
        assert!(diff < 1e-3, "{name} differs from PyTorch's by {diff}");
    }
    // eval on the same held-out rows agrees with the last epoch's figures.
    let e = ok(&dlc(&["eval", "examples/digits_mlp.dl", "--weights", s(&w), "--data", "data/digits.csv", "--backend", backend]));
    assert!(e.starts_with("loss ") && e.contains("accuracy") && e.contains("(1797 rows)"), "{e}");
}

fn train_digits(dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["train", "examples/digits_mlp.dl", "--checkpoint-dir", s(dir)];
    args.extend_from_slice(extra);
    dlc(&args)
}

#[test]
fn resuming_is_bit_identical_to_an_uninterrupted_run() {
    let d = temp("resume");
    let (a, b) = (d.join("a"), d.join("b"));
    let (wa, wb) = (d.join("a.safetensors"), d.join("b.safetensors"));
    ok(&train_digits(&a, &["--epochs", "4", "-o", s(&wa)]));
    ok(&train_digits(&b, &["--epochs", "2"]));
    ok(&train_digits(&b, &["--epochs", "4", "--resume", "-o", s(&wb), "--metrics", s(&d.join("m.csv"))]));
    assert_eq!(std::fs::read(&wa).unwrap(), std::fs::read(&wb).unwrap(), "2 + 2 epochs must equal 4 epochs bit for bit");
    // The resumed run's metrics include the first two epochs from the checkpoint.
    assert_eq!(metrics(&d.join("m.csv")).len(), 4);
    let ckpts: Vec<_> = std::fs::read_dir(&b).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(ckpts.contains(&"ckpt-e0004-b000000.safetensors".to_string()), "{ckpts:?}");
}

#[test]
fn a_checkpoint_of_another_model_is_refused_and_left_intact() {
    let d = temp("other");
    ok(&train_digits(&d, &["--epochs", "1"]));
    let ck = d.join("ckpt-e0001-b000000.safetensors");
    let before = std::fs::read(&ck).unwrap();
    let o = dlc(&["train", "examples/keras_dense.dl", "--checkpoint-dir", s(&d), "--resume"]);
    user_error(&o, "the checkpoint is from a different model");
    assert_eq!(std::fs::read(&ck).unwrap(), before);
}

#[test]
fn diverging_runs_stop_with_the_epoch_and_step() {
    let d = temp("diverge");
    let o = dlc(&["train", "examples/fcn.dl", "--lr", "10", "--checkpoint-dir", s(&d), "--epochs", "3"]);
    user_error(&o, "training diverged: the loss is");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("at epoch 1, step"), "{err}");
}

fn write_csv(path: &Path, header: &str, rows: &[String]) {
    std::fs::write(path, format!("{header}\n{}\n", rows.join("\n"))).unwrap();
}

#[test]
fn bad_training_data_gets_clear_errors() {
    let d = temp("baddata");
    let header: String = (0..64).map(|i| format!("pixel{i},")).collect::<String>() + "label";
    let row = |label: &str| (0..64).map(|_| "1,").collect::<String>() + label;

    let out_of_range = d.join("range.csv");
    write_csv(&out_of_range, &header, &[row("3"), row("12")]);
    user_error(&dlc(&["train", "examples/digits_mlp.dl", "--data", s(&out_of_range)]), "row 2: label 12 is not a class index in [0, 10)");

    let fractional = d.join("frac.csv");
    write_csv(&fractional, &header, &[row("1.5")]);
    user_error(&dlc(&["train", "examples/digits_mlp.dl", "--data", s(&fractional)]), "label 1.5 is not a class index");

    let narrow = d.join("narrow.csv");
    write_csv(&narrow, "a,b,label", &["1,2,0".to_string()]);
    user_error(&dlc(&["train", "examples/digits_mlp.dl", "--data", s(&narrow)]), "rows have 2 features, the model input takes 64");

    let empty = d.join("empty.csv");
    std::fs::write(&empty, format!("{header}\n")).unwrap();
    user_error(&dlc(&["train", "examples/digits_mlp.dl", "--data", s(&empty)]), "the data set is empty");

    let text = d.join("text.csv");
    write_csv(&text, &header, &[row("seven")]);
    user_error(&dlc(&["train", "examples/digits_mlp.dl", "--data", s(&text)]), "'seven' is not a number");

    user_error(&dlc(&["train", "examples/digits_mlp.dl", "--data", "no/such.csv"]), "no/such.csv: cannot read");
    user_error(&dlc(&["train", "examples/digits_mlp.dl", "--batch-size", "0"]), "the batch size must be at least 1");

    let bce = d.join("bce.csv");
    let h30: String = (0..30).map(|i| format!("x{i},")).collect::<String>() + "label";
    write_csv(&bce, &h30, &[(0..30).map(|_| "0.5,").collect::<String>() + "2"]);
    user_error(&dlc(&["train", "examples/keras_dense.dl", "--data", s(&bce)]), "is not a binary label 0 or 1");

    // A model without a train block.
    let plain = d.join("plain.dl");
    std::fs::write(&plain, "model M {\n    input x: f32[batch, 2]\n    fc = Linear(2, 1)\n    output y = fc(x)\n}\n").unwrap();
    user_error(&dlc(&["train", s(&plain)]), "the model has no train block");
}

#[test]
fn metrics_plot_and_weights_are_written() {
    let d = temp("outputs");
    let (m, p, w) = (d.join("m.csv"), d.join("curve.svg"), d.join("w.safetensors"));
    ok(&dlc(&["train", "examples/logistic.dl", "--epochs", "3", "--metrics", s(&m), "--plot", s(&p), "-o", s(&w)]));
    let rows = metrics(&m);
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| !r[2].is_empty() && !r[3].is_empty()), "classification has val loss and accuracy: {rows:?}");
    let svg = std::fs::read_to_string(&p).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("validation accuracy"));
    let weights = dlc::io::weights::read(&w).unwrap();
    assert_eq!(weights.keys().collect::<Vec<_>>(), ["fc.bias", "fc.weight"]);
    // Regression leaves the accuracy column empty.
    ok(&dlc(&["train", "examples/fcn.dl", "--epochs", "2", "--metrics", s(&m)]));
    assert!(metrics(&m).iter().all(|r| r[3].is_empty()));
}

#[test]
fn ctrl_c_saves_a_checkpoint_and_the_run_resumes() {
    let d = temp("sigint");
    let child = Command::new(env!("CARGO_BIN_EXE_dlc"))
        .args(["train", "examples/digits_mlp.dl", "--epochs", "100000", "--checkpoint-dir", s(&d)])
        .current_dir(ROOT)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first epoch's checkpoint, then interrupt.
    let t0 = std::time::Instant::now();
    while !d.join("ckpt-e0001-b000000.safetensors").exists() {
        assert!(t0.elapsed().as_secs() < 120, "no checkpoint after 2 minutes");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("interrupted") && err.contains("--resume"), "{err}");
    let newest = dlc::train::checkpoint::newest(&d).unwrap().unwrap();
    let c = dlc::train::checkpoint::load(&newest).unwrap();
    assert!(c.position.epoch >= 1);
    // It resumes from there, and ends exactly where an uninterrupted run ends:
    // same weights, bit for bit, and the same per-epoch losses.
    let total = (c.position.epoch + 1).to_string();
    let (wr, mr) = (d.join("resumed.safetensors"), d.join("resumed.csv"));
    ok(&train_digits(&d, &["--epochs", &total, "--resume", "-o", s(&wr), "--metrics", s(&mr)]));
    let fresh = temp("sigint-fresh");
    let (wf, mf) = (fresh.join("w.safetensors"), fresh.join("m.csv"));
    ok(&train_digits(&fresh, &["--epochs", &total, "-o", s(&wf), "--metrics", s(&mf)]));
    assert_eq!(std::fs::read(&wr).unwrap(), std::fs::read(&wf).unwrap());
    let losses = |p: &Path| metrics(p).into_iter().map(|r| r[1].clone()).collect::<Vec<_>>();
    assert_eq!(losses(&mr), losses(&mf));
}
