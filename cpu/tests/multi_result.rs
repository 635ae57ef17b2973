//! Kernels with several results (`kernel.generic` yielding one value per
//! result, as fusion builds for an optimizer update) on the JIT's loop-nest
//! path against the reference interpreter: random inputs, odd sizes, a
//! batch of 1, inner sizes that are not a multiple of the vector width, f32
//! and f64, a transposed and an i1 result; split over threads, and written
//! over donated arguments.

use dlc_backends::Tensor;
use dlc_cpu::{CpuExecutable, CpuOptions};
use dlc_ir::kernel::{Generic, Output, Scalar};
use dlc_ir::{AffineMap, Attrs, Builder, DType, Dim, Function, OpKind, TensorType, Type};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::borrow::Cow;

fn op(kind: OpKind, args: &[usize]) -> Scalar {
    Scalar::Op { kind, attrs: Attrs::new(), args: args.to_vec() }
}

/// `@k(x: [b, n], y: [n], z: [b, n])` with one kernel of three results:
/// `x * y + z`, `sqrt(|x|) - z` written transposed (`[n, b]`), and
/// `z < x` (i1) when `with_mask`; the momentum-like `x * 0.9 + z` otherwise.
fn kernel(batch: Option<u64>, n: u64, dtype: DType, with_mask: bool) -> Function {
    let mut f = Function::new("k");
    let b = batch.map_or(Dim::Dynamic, Dim::Static);
    let row = TensorType::new(vec![b, Dim::Static(n)], dtype);
    let x = f.add_arg(Type::Tensor(row.clone()), Some("x"), Attrs::new());
    let y = f.add_arg(Type::Tensor(TensorType::new(vec![Dim::Static(n)], dtype)), Some("y"), Attrs::new());
    let z = f.add_arg(Type::Tensor(row), Some("z"), Attrs::new());
    let third = if with_mask {
        vec![Scalar::Op { kind: OpKind::Cmp, attrs: dlc_ir::attrs! {"predicate" => "lt"}, args: vec![2, 0] }]
    } else {
        vec![Scalar::Const { value: 0.9, dtype }, op(OpKind::Mul, &[0, 9]), op(OpKind::Add, &[10, 2])]
    };
    let mut body = vec![
        Scalar::Operand(0),
        Scalar::Operand(1),
        Scalar::Operand(2),
        op(OpKind::Mul, &[0, 1]),
        op(OpKind::Add, &[3, 2]),
        op(OpKind::Abs, &[0]),
        op(OpKind::Sqrt, &[5]),
        op(OpKind::Sub, &[6, 2]),
    ];
    let last = body.len() + third.len() - 1;
    let (third_dtype, third_node) = if with_mask { (DType::I1, 8) } else { (dtype, last + 1) };
    body.extend(third);
    if !with_mask {
        // Node 8 is a placeholder so the momentum nodes line up with their indices.
        body.insert(8, Scalar::Const { value: 0.0, dtype });
    }
    let g = Generic {
        reduction: vec![false, false],
        sizes: vec![batch, Some(n)],
        maps: vec![AffineMap::identity(2), AffineMap::projection(2, &[1]), AffineMap::identity(2)],
        out_map: AffineMap::identity(2),
        dtype,
        init: 0.0,
        padded: Vec::new(),
        pad: 0.0,
        fused: vec!["dl.mul".into(), "dl.add".into()],
        body,
        result: 4,
        extra: vec![
            Output { map: AffineMap::projection(2, &[1, 0]), dtype, node: 7 },
            Output { map: AffineMap::identity(2), dtype: third_dtype, node: third_node },
        ],
    };
    let rs = g.emit_all(&mut f, &[x, y, z]).unwrap();
    Builder::at_entry(&mut f).ret(&rs);
    f.result_types = rs.iter().map(|&r| f.ty(r).clone()).collect();
    dlc_ir::verify_function(&f).unwrap();
    f
}

fn random(rng: &mut ChaCha8Rng, shape: &[usize], dtype: DType) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| rng.random_range(-2.0..2.0)).collect();
    Tensor::from_f64_values(shape, &v, dtype).unwrap()
}

fn close(what: &str, got: &[Tensor], want: &[Tensor]) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (r, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!((g.shape(), g.dtype()), (w.shape(), w.dtype()), "{what}: result {r}");
        for (a, b) in g.to_f64_vec().iter().zip(w.to_f64_vec()) {
            assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{what}: result {r}: {a} vs {b}");
        }
    }
}

#[test]
fn multi_result_kernels_match_the_interpreter() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for dtype in [DType::F32, DType::F64] {
        for (batch, n) in [(None, 13), (None, 4), (Some(3), 5), (Some(1), 1), (Some(7), 64)] {
            for with_mask in [true, false] {
                let f = kernel(batch, n, dtype, with_mask);
                for threads in [1, 2] {
                    let exe = CpuExecutable::compile(&f, &CpuOptions { threads }).unwrap().with_min_parallel_cost(0);
                    assert!(exe.plan_summary().iter().all(|s| s.starts_with("loops[")), "{:?}", exe.plan_summary());
                    for b in batch.map_or(vec![1, 2, 9], |b| vec![b as usize]) {
                        let args = vec![random(&mut rng, &[b, n as usize], dtype), random(&mut rng, &[n as usize], dtype), random(&mut rng, &[b, n as usize], dtype)];
                        let want = dlc_backends::run(&f, &args).unwrap();
                        let what = format!("{dtype} batch {b}, n {n}, mask {with_mask}, {threads} thread(s)");
                        close(&what, &exe.run(&args).unwrap(), &want);
                        // Donated: `x*y + z` may take z's buffer (read through
                        // the same map), the momentum result x's.
                        let got = exe.run_donated(args.iter().cloned().map(Cow::Owned).collect()).unwrap();
                        close(&format!("{what}, donated"), &got, &want);
                    }
                }
            }
        }
    }
}

#[test]
fn donated_buffers_become_results_of_a_multi_result_kernel() {
    let f = kernel(Some(6), 10, DType::F32, false);
    let exe = CpuExecutable::compile(&f, &CpuOptions { threads: 1 }).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let args = vec![random(&mut rng, &[6, 10], DType::F32), random(&mut rng, &[10], DType::F32), random(&mut rng, &[6, 10], DType::F32)];
    let want = dlc_backends::run(&f, &args).unwrap();
    let ptr = |t: &Tensor| match t {
        Tensor::F32(a) => a.as_ptr() as usize,
        _ => 0,
    };
    let given: Vec<usize> = args.iter().map(ptr).collect();
    let got = exe.run_donated(args.into_iter().map(Cow::Owned).collect()).unwrap();
    close("donated", &got, &want);
    // Result 0 (`x*y + z`) over z's buffer and result 2 (`x*0.9 + z`, nearest x) over x's.
    assert_eq!(ptr(&got[0]), given[2]);
    assert_eq!(ptr(&got[2]), given[0]);
}
