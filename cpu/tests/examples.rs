//! Every example model's forward function and training step, run through
//! `CpuExecutable` and through the reference interpreter on random inputs:
//! the results agree within 1e-4 relative + 1e-5 absolute (f32).

use dlc_backends::{InterpError, Tensor};
use dlc_cpu::{CpuError, CpuExecutable, CpuOptions};
use dlc_ir::{DType, Dim, Function, Role, Signature, TensorType};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

/// `f` at the structured-kernel level, as the CPU backend takes it.
fn kernels(f: &Function) -> Function {
    let mut k = f.clone();
    dlc_passes::to_kernels(&mut k).unwrap_or_else(|e| panic!("@{}: {e}", f.name));
    k
}


const RTOL: f64 = 1e-4;
const ATOL: f64 = 1e-5;

struct Example {
    name: String,
    forward: Function,
    step: Option<Function>,
    /// The label argument of the step, its loss, and the number of classes.
    label: Option<(String, dlc_ir::train::LossKind, Option<u64>)>,
}

fn examples() -> Vec<Example> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let mut paths: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "dl")).collect();
    paths.sort();
    assert!(paths.len() >= 6, "found only {paths:?}");
    paths
        .iter()
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().to_string();
            let src = std::fs::read_to_string(p).unwrap();
            let compiled = dlc_frontend::compile(&name, &src).unwrap_or_else(|_| panic!("{name} does not compile"));
            let forward = compiled.module.function("forward").expect("@forward").clone();
            let (step, label) = match &compiled.model.train {
                Some(t) => {
                    let label_input = (t.loss.label.source == dlc_frontend::LabelSource::Input).then_some(t.loss.label.name.as_str());
                    let loss = dlc_ir::train::LossSpec { kind: t.loss.kind, reduction: t.loss.reduction };
                    let program = dlc_passes::train_step::build(&forward, &t.loss.output, label_input, &loss, &t.optimizer.kind)
                        .unwrap_or_else(|e| panic!("{name}: {}", e.0));
                    (Some(program.step), Some((program.label.0.clone(), t.loss.kind, program.classes)))
                }
                None => (None, None),
            };
            Example { name, forward, step, label }
        })
        .collect()
}

fn shape(ty: &TensorType, batch: usize) -> Vec<usize> {
    ty.shape.iter().map(|d| match d {
        Dim::Static(n) => *n as usize,
        Dim::Dynamic => batch,
    }).collect()
}

/// Random arguments for `f`: inputs uniform in [-1, 1), labels valid for the
/// loss, parameters and state from their initializers, `step` = 3.
fn random_args(f: &Function, ex: &Example, batch: usize, seed: u64) -> Vec<Tensor> {
    let sig = Signature::of(f).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let params = dlc_backends::init_params(&sig, seed);
    let state = dlc_backends::init_state(&sig, seed);
    sig.args
        .iter()
        .map(|a| {
            let s = shape(&a.ty, batch);
            let n: usize = s.iter().product();
            match &a.role {
                Role::Param(_) => params.iter().find(|(p, _)| *p == a.name).unwrap().1.clone(),
                Role::State(_) => state.iter().find(|(p, _)| *p == a.name).unwrap().1.clone(),
                Role::Input => {
                    let is_label = ex.label.as_ref().is_some_and(|(l, _, _)| *l == a.name);
                    let values: Vec<f64> = if a.name == "step" && s.is_empty() {
                        vec![3.0]
                    } else if is_label {
                        let (_, kind, classes) = ex.label.as_ref().unwrap();
                        use dlc_ir::train::LossKind as L;
                        match kind {
                            L::CrossEntropy => (0..n).map(|_| rng.random_range(0..classes.unwrap()) as f64).collect(),
                            L::Bce | L::BceWithLogits => (0..n).map(|_| rng.random_range(0..2) as f64).collect(),
                            L::Mse | L::L1 => (0..n).map(|_| rng.random_range(-1.0..1.0)).collect(),
                        }
                    } else if a.ty.dtype.is_float() {
                        (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
                    } else {
                        (0..n).map(|_| rng.random_range(0..2) as f64).collect()
                    };
                    Tensor::from_f64_values(&s, &values, a.ty.dtype).unwrap()
                }
            }
        })
        .collect()
}

fn compare(what: &str, got: &[Tensor], want: &[Tensor]) {
    assert_eq!(got.len(), want.len(), "{what}: result count");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.allclose(w, RTOL, ATOL),
            "{what}: result {i} differs: {} vs {}, max |diff| {:?}",
            g.describe(),
            w.describe(),
            g.max_abs_diff(w)
        );
    }
}

/// Compares the cpu backend with the interpreter; returns the plan.
fn check(ex: &Example, f: &Function, kind: &str, batches: &[usize]) -> Vec<String> {
    let exe = CpuExecutable::compile(&kernels(f), &CpuOptions { threads: 2 }).unwrap_or_else(|e| panic!("{} {kind}: {e}", ex.name));
    for &b in batches {
        let args = random_args(f, ex, b, 7 + b as u64);
        let want = dlc_backends::run(f, &args).unwrap_or_else(|e| panic!("{} {kind} interp: {e}", ex.name));
        let got = exe.run(&args).unwrap_or_else(|e| panic!("{} {kind} cpu: {e}", ex.name));
        compare(&format!("{} {kind} batch {b}", ex.name), &got, &want);
    }
    exe.plan_summary()
}

#[test]
fn forward_of_every_example_matches_the_interpreter() {
    for ex in examples() {
        check(&ex, &ex.forward, "forward", &[1, 7, 32]);
    }
}

#[test]
fn train_step_of_every_example_matches_the_interpreter() {
    let (mut n, mut wide) = (0, 0);
    for ex in examples() {
        if let Some(step) = &ex.step {
            let plan = check(&ex, step, "train_step", &[1, 5, 16]);
            n += 1;
            // Where the wide code exists, the optimizer updates with a
            // square root (Adam, RMSprop, Adagrad) all ran on it.
            if wide_code() {
                assert!(!plan.iter().any(|s| s.starts_with("loops[") && s.contains("sqrt")), "{}: a narrow optimizer update in {plan:?}", ex.name);
                wide += plan.iter().filter(|s| s.starts_with("wide[") && s.contains("sqrt")).count();
            }
        }
    }
    assert!(n >= 5, "only {n} examples have a train block");
    if wide_code() {
        assert!(wide >= 5, "only {wide} wide optimizer updates");
    } else {
        eprintln!("no AVX2 here: the optimizer updates ran on 128-bit code only");
    }
}

/// True where the JIT has its wide code (x86-64 with AVX2).
fn wide_code() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx2");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

#[test]
fn one_and_two_threads_agree_and_runs_are_bit_identical() {
    for ex in examples() {
        for f in std::iter::once(&ex.forward).chain(ex.step.as_ref()) {
            let args = random_args(f, &ex, 64, 11);
            let one = CpuExecutable::compile(&kernels(f), &CpuOptions { threads: 1 }).unwrap();
            let two = CpuExecutable::compile(&kernels(f), &CpuOptions { threads: 2 }).unwrap();
            let a = one.run(&args).unwrap();
            let b = two.run(&args).unwrap();
            compare(&format!("{} @{} 1 vs 2 threads", ex.name, f.name), &b, &a);
            assert_eq!(one.run(&args).unwrap(), a, "{} @{}: 1 thread, run to run", ex.name, f.name);
            assert_eq!(two.run(&args).unwrap(), b, "{} @{}: 2 threads, run to run", ex.name, f.name);
        }
    }
}

/// Every example's forward pass with its parameters bound (and the
/// transposed matmul weights packed once): runs take only the inputs and
/// agree with the interpreter at batch 1, 7 and 64, on 1 and 2 threads;
/// binding a name that is no argument, a value of the wrong shape, or an
/// argument with a batch dim is an error, and nothing is bound by it.
#[test]
fn bound_parameters_are_packed_once_and_agree_with_the_interpreter() {
    let mut packed = 0;
    for ex in examples() {
        let f = &ex.forward;
        let sig = Signature::of(f).unwrap();
        for threads in [1, 2] {
            let mut exe = CpuExecutable::compile(&kernels(f), &CpuOptions { threads }).unwrap().with_min_parallel_cost(0);
            let all = random_args(f, &ex, 7, 9);
            let params: Vec<(String, Tensor)> =
                sig.args.iter().zip(&all).filter(|(a, _)| matches!(a.role, Role::Param(_))).map(|(a, t)| (a.name.clone(), t.clone())).collect();
            exe.bind(params.clone()).unwrap();
            assert_eq!(exe.arguments().len(), sig.args.len() - params.len(), "{}: bound arguments are left out", ex.name);
            packed += exe.num_packed();
            for batch in [1, 7, 64] {
                let all = random_args(f, &ex, batch, 9);
                let inputs: Vec<Tensor> = sig.args.iter().zip(&all).filter(|(a, _)| a.role == Role::Input).map(|(_, t)| t.clone()).collect();
                let want = dlc_backends::run(f, &all).unwrap();
                compare(&format!("{} bound, batch {batch}, {threads} thread(s)", ex.name), &exe.run(&inputs).unwrap(), &want);
            }
            // Mistakes: an unknown name, a wrong shape, an input with a batch dim.
            let (name, t) = &params[0];
            assert!(exe.bind(vec![("nope".into(), t.clone())]).unwrap_err().to_string().contains("no argument named 'nope'"));
            let wrong = Tensor::zeros(&[t.len() + 1], t.dtype());
            assert!(exe.bind(vec![(name.clone(), wrong)]).is_err(), "{}: a wrong shape is refused", ex.name);
            let input = sig.args.iter().find(|a| a.role == Role::Input && a.ty.shape.first() == Some(&Dim::Dynamic)).unwrap();
            let err = exe.bind(vec![(input.name.clone(), Tensor::zeros(&shape(&input.ty, 2), input.ty.dtype))]).unwrap_err().to_string();
            assert!(err.contains("batch dim"), "{err}");
            assert_eq!(exe.arguments().len(), sig.args.len() - params.len());
        }
    }
    assert!(packed >= 10, "only {packed} weights packed");
}

/// Every train step run with its arguments donated gives the results of a
/// run that only borrows them, bit for bit, at 1 and 2 threads; and the
/// donation is used: every Adam or SGD update of the mlp writes its new
/// parameter or state over the old one's buffer rather than a new one (the
/// mlp's Adam update of each parameter is one kernel writing p', m' and v'
/// over p, m and v).
#[test]
fn donated_arguments_give_the_same_results_and_lend_their_buffers() {
    use std::borrow::Cow;
    let mut reused_total = 0;
    for ex in examples() {
        let Some(step) = ex.step.as_ref() else { continue };
        for threads in [1, 2] {
            let exe = CpuExecutable::compile(&kernels(step), &CpuOptions { threads }).unwrap().with_min_parallel_cost(0);
            let args = random_args(step, &ex, 7, 3);
            let want = exe.run(&args).unwrap();
            let donated: Vec<Tensor> = args.clone();
            let ptrs: Vec<*const u8> = donated.iter().map(tensor_ptr).collect();
            let got = exe.run_donated(donated.into_iter().map(Cow::Owned).collect()).unwrap();
            assert_eq!(got, want, "{} @{} at {threads} thread(s)", ex.name, step.name);
            let reused = got.iter().filter(|t| ptrs.contains(&tensor_ptr(t))).count();
            if ex.name == "mlp" {
                // 6 parameters, each with its Adam moments m and v.
                assert_eq!(reused, 18, "mlp: results written over donated arguments");
            }
            reused_total += reused;
        }
    }
    assert!(reused_total > 40, "only {reused_total} results reused a donated buffer");
}

fn tensor_ptr(t: &Tensor) -> *const u8 {
    match t {
        Tensor::F32(a) => a.as_ptr().cast(),
        Tensor::F64(a) => a.as_ptr().cast(),
        Tensor::I32(a) => a.as_ptr().cast(),
        Tensor::I64(a) => a.as_ptr().cast(),
        Tensor::I1(a) => a.as_ptr().cast(),
    }
}

/// Runs of one executable from several threads at once (all but one find
/// the arena taken and plan their own) and at changing batch sizes (each
/// change re-plans) give the results of one run at a time.
#[test]
fn concurrent_runs_and_changing_batches_agree() {
    let ex = examples().into_iter().find(|e| e.name == "mnist_cnn").expect("examples/mnist_cnn.dl");
    let step = ex.step.as_ref().unwrap();
    let exe = CpuExecutable::compile(&kernels(step), &CpuOptions { threads: 2 }).unwrap();
    let batches = [4usize, 9, 4];
    let args: Vec<Vec<Tensor>> = batches.iter().map(|&b| random_args(step, &ex, b, 5 + b as u64)).collect();
    let want: Vec<Vec<Tensor>> = args.iter().map(|a| exe.run(a).unwrap()).collect();
    std::thread::scope(|s| {
        for t in 0..3 {
            let (exe, args, want) = (&exe, &args, &want);
            s.spawn(move || {
                for i in 0..6 {
                    let k = (t + i) % args.len();
                    assert_eq!(exe.run(&args[k]).unwrap(), want[k], "thread {t}, run {i} (batch {})", batches[k]);
                }
            });
        }
    });
}

#[test]
fn wrong_arguments_are_errors_not_panics() {
    let ex = examples().into_iter().find(|e| e.name == "mlp").expect("examples/mlp.dl");
    let f = &ex.forward;
    let exe = CpuExecutable::compile(&kernels(f), &CpuOptions::default()).unwrap();
    let args = random_args(f, &ex, 4, 1);
    assert!(matches!(exe.run(&args[1..]), Err(CpuError::Interp(InterpError::ArgCount { .. }))));
    let mut bad = args.clone();
    bad[0] = Tensor::zeros(&[4, 783], DType::F32);
    assert!(matches!(exe.run(&bad), Err(CpuError::Interp(InterpError::ArgType { .. }))));
    bad[0] = Tensor::zeros(&[4, 784], DType::F64);
    assert!(matches!(exe.run(&bad), Err(CpuError::Interp(InterpError::ArgType { .. }))));
    bad[0] = Tensor::zeros(&[784], DType::F32);
    assert!(matches!(exe.run(&bad), Err(CpuError::Interp(InterpError::ArgType { .. }))));
    // Two `?` dims with different sizes.
    let step = ex.step.as_ref().unwrap();
    let exe = CpuExecutable::compile(&kernels(step), &CpuOptions::default()).unwrap();
    let mut args = random_args(step, &ex, 4, 1);
    let sig = Signature::of(step).unwrap();
    let label = sig.args.iter().position(|a| a.name == ex.label.as_ref().unwrap().0).unwrap();
    args[label] = Tensor::zeros(&[5], args[label].dtype());
    assert!(matches!(exe.run(&args), Err(CpuError::Interp(InterpError::BatchMismatch { .. }))));
    // The right arguments still run.
    assert!(exe.run(&random_args(step, &ex, 4, 1)).is_ok());
}

/// Checks `exe`'s memory plan at `batch` against lifetimes computed here
/// from the IR `k`: steps are its top-level ops but constants and the
/// return; a value lives from its step to the last step that reads it; the
/// values of one buffer must be a value and `dl.reshape`s of it, and live
/// as one. Any two buffers of one dtype live at a common step must not
/// share a byte; no function result may be in the arena.
fn check_memory_plan(what: &str, k: &Function, exe: &CpuExecutable, batch: usize) -> dlc_cpu::MemoryPlan {
    use dlc_ir::{OpKind, ValueId};
    use std::collections::HashMap;
    let steps: Vec<_> = k.body_ops().iter().copied().filter(|&o| !matches!(k.op(o).kind, OpKind::Constant | OpKind::Return)).collect();
    let mut def: HashMap<ValueId, usize> = HashMap::new();
    let mut last: HashMap<ValueId, usize> = HashMap::new();
    for (i, &o) in steps.iter().enumerate() {
        for &r in &k.op(o).results {
            def.insert(r, i);
            last.insert(r, i);
        }
        for &v in &k.op(o).operands {
            last.insert(v, i);
        }
    }
    let results = k.returned_values();
    let plan = exe.memory_plan(Some(batch));
    let lives: Vec<(usize, usize)> = plan
        .buffers
        .iter()
        .map(|b| {
            if let Some(s) = b.scratch_of_step {
                assert!(b.values.is_empty(), "{what}: a scratch buffer holds values");
                return (s, s);
            }
            for (j, v) in b.values.iter().enumerate() {
                assert!(!results.contains(v), "{what}: result %{} is in the arena", v.0);
                if j > 0 {
                    // A reshape of an earlier value, or a kernel written over
                    // one it reads, of its type, when no earlier value of the
                    // buffer is read after it.
                    let op = k.op(steps[def[v]]);
                    let reshape = op.kind == OpKind::Reshape && b.values[..j].contains(&op.operands[0]);
                    let over = op.kind == OpKind::Generic
                        && op.operands.iter().any(|w| b.values[..j].contains(w) && k.ty(*w) == k.ty(*v))
                        && b.values[..j].iter().all(|u| last[u] <= def[v]);
                    assert!(reshape || over, "{what}: %{} shares a buffer without being a reshape of it or written over it", v.0);
                }
            }
            let first = b.values.iter().map(|v| def[v]).min().expect("a buffer holds a value");
            let end = b.values.iter().map(|v| last[v]).max().expect("a buffer holds a value");
            (first, end)
        })
        .collect();
    for (i, a) in plan.buffers.iter().enumerate() {
        assert_eq!(a.offset % 64, 0, "{what}: buffer {i} is not 64-byte aligned");
        for (j, b) in plan.buffers.iter().enumerate().skip(i + 1) {
            let live = lives[i].0 <= lives[j].1 && lives[j].0 <= lives[i].1;
            let overlap = a.offset < b.offset + b.bytes && b.offset < a.offset + a.bytes;
            assert!(
                a.dtype != b.dtype || !live || !overlap || a.bytes == 0 || b.bytes == 0,
                "{what}: buffers {a:?} and {b:?} are live at once (steps {:?} and {:?}) and overlap",
                lives[i],
                lives[j]
            );
        }
    }
    assert!(plan.peak_live_bytes <= plan.arena_bytes, "{what}: {plan:?}");
    plan
}

#[test]
fn memory_plans_never_overlap_live_values() {
    let mut buffers = 0;
    for ex in examples() {
        for f in std::iter::once(&ex.forward).chain(ex.step.as_ref()) {
            let k = kernels(f);
            let exe = CpuExecutable::compile(&k, &CpuOptions { threads: 2 }).unwrap();
            for batch in [1, 7, 64] {
                buffers += check_memory_plan(&format!("{} @{} batch {batch}", ex.name, f.name), &k, &exe, batch).buffers.len();
            }
        }
    }
    assert!(buffers > 100, "only {buffers} buffers planned");
}

fn time(mut f: impl FnMut(), min_runs: usize) -> f64 {
    f();
    let start = Instant::now();
    let mut runs = 0;
    while runs < min_runs || start.elapsed().as_secs_f64() < 0.2 {
        f();
        runs += 1;
    }
    start.elapsed().as_secs_f64() / runs as f64
}

/// Prints each example's plan, its memory plan and the interpreter/cpu time
/// ratio at batch 64 (meaningful with `cargo test -p dlc-cpu --release --
/// --nocapture`).
#[test]
fn plans_and_speed_against_the_interpreter() {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(2);
    for ex in examples() {
        for f in std::iter::once(&ex.forward).chain(ex.step.as_ref()) {
            let k = kernels(f);
            let exe = CpuExecutable::compile(&k, &CpuOptions { threads }).unwrap();
            let plan = exe.plan_summary();
            let memory = check_memory_plan(&format!("{} @{}", ex.name, f.name), &k, &exe, 64);
            let args = random_args(f, &ex, 64, 3);
            let t_interp = time(|| drop(dlc_backends::run(f, &args).unwrap()), 3);
            let t_cpu = time(|| drop(exe.run(&args).unwrap()), 3);
            println!(
                "{:<12} @{:<10} b64: interp {:>9.3} ms, cpu {:>8.3} ms, speedup {:>5.1}x ({threads} threads); {} steps, {} constants",
                ex.name,
                f.name,
                t_interp * 1e3,
                t_cpu * 1e3,
                t_interp / t_cpu,
                plan.len(),
                exe.num_constants()
            );
            println!(
                "    memory b64: arena {:.2} MiB, peak live {:.2} MiB, naive (a buffer per output) {:.2} MiB, outside the arena {:.2} MiB, {} buffers",
                memory.arena_bytes as f64 / 1048576.0,
                memory.peak_live_bytes as f64 / 1048576.0,
                memory.naive_bytes as f64 / 1048576.0,
                memory.outside_bytes as f64 / 1048576.0,
                memory.buffers.len()
            );
            println!("    plan: {}", plan.join(" "));
        }
    }
}
