//! Whether a Cranelift loop nest beats the gemm micro-kernel on the narrow
//! matmuls of small models' output layers (`x·Wᵀ` with W `[n, k]`, n = 10):
//! times, at batch 32, 64 and 256, dlc-contract's gemm (W as stored, with
//! `transpose_b`; and packed once) against a structured JIT kernel over
//! `[m, n, k]` (`out[i, j] = sum_k x[i, k]·w[j, k]`, the reduction dim
//! innermost on f32x4 partial sums). One thread, medians of one run:
//! `cargo run -p dlc-cpu --release --example narrow_matmul`.
use dlc_contract::{Epilogue, PackedB, Transpose, View};
use dlc_ir::{AffineMap, Attrs, DType, OpKind};
use dlc_jit::{Buffer, BufferMut, GenericBuilder, IterKind, Jit};
use std::time::Instant;

fn median_us(mut f: impl FnMut()) -> f64 {
    for _ in 0..50 {
        f();
    }
    let mut ts: Vec<f64> = (0..401)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    ts.sort_by(f64::total_cmp);
    ts[200]
}

fn main() {
    let jit = Jit::new().expect("a host Cranelift supports");
    let mut g = GenericBuilder::new(&[IterKind::Parallel, IterKind::Parallel, IterKind::Reduction], DType::F32).unwrap();
    let x = g.input(DType::F32, AffineMap::parse("(d0, d1, d2) -> (d0, d2)").unwrap(), None).unwrap();
    let w = g.input(DType::F32, AffineMap::parse("(d0, d1, d2) -> (d1, d2)").unwrap(), None).unwrap();
    let acc = g.acc().unwrap();
    let p = g.op(OpKind::Mul, &[x, w], Attrs::new()).unwrap();
    let s = g.op(OpKind::Add, &[acc, p], Attrs::new()).unwrap();
    let spec = g.finish(s, AffineMap::parse("(d0, d1, d2) -> (d0, d1)").unwrap(), Some(0.0)).unwrap();
    let kernel = jit.compile_generic(&spec).unwrap();
    println!("narrow matmul x[m, k]·w[n, k]ᵀ, 1 thread, µs (median); ratio = best gemm / cranelift");
    println!("{:>5} {:>5} {:>4} {:>10} {:>10} {:>10} {:>7}", "m", "k", "n", "gemm", "packed", "cranelift", "ratio");
    for (m, k, n) in [(32, 64, 10), (64, 64, 10), (64, 128, 10), (256, 128, 10), (64, 64, 64), (64, 128, 1)] {
        let xs: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 13) as f32 * 0.1 - 0.6).collect();
        let ws: Vec<f32> = (0..n * k).map(|i| ((i * 5) % 11) as f32 * 0.1 - 0.5).collect();
        let (xshape, wshape) = ([m, k], [n, k]);
        let mut out = vec![0f32; m * n];
        let t = Transpose { a: false, b: true };
        let gemm = median_us(|| dlc_contract::matmul(View::new(&xs, &xshape), View::new(&ws, &wshape), &mut out, t, Epilogue::default(), 1).unwrap());
        let want = out.clone();
        let packed_w = PackedB::new(View::new(&ws, &wshape), true).unwrap();
        let packed = median_us(|| dlc_contract::matmul_packed(View::new(&xs, &xshape), &packed_w, &mut out, false, Epilogue::default(), 1).unwrap());
        let mut mine = vec![0f32; m * n];
        let cl = median_us(|| {
            kernel.run(&[(Buffer::F32(&xs), &xshape[..]), (Buffer::F32(&ws), &wshape[..])], (BufferMut::F32(&mut mine), &[m, n]), &[m, n, k]).unwrap();
        });
        let diff = mine.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(diff < 1e-3, "the kernels disagree by {diff}");
        println!("{m:>5} {k:>5} {n:>4} {gemm:>10.2} {packed:>10.2} {cl:>10.2} {:>6.2}x", gemm.min(packed) / cl);
    }
}
