//! GFLOP/s of dlc's contraction fast path on the PERF.md workloads, at 1 and
//! 2 threads, against the machine's FMA peak (measured here, and the 115
//! GFLOP/s per core of PERF.md's Zen 4).
//!
//! `cargo bench -p dlc-contract --bench contract [-- SECTION...]` with
//! sections `peak mlp pack wide block threads conv taps group wino wsweep wblock`
//! (default: all).
//! Every figure is the median of 5 batches of ≥ 20 calls (≥ 30 ms) each;
//! compared variants run side by side in one run, so read the ratios — the
//! machine is shared and noisy.

use dlc_contract::{
    Conv2d, Epilogue, PackedB, Transpose, View, conv2d, conv2d_grad_input, conv2d_grad_input_scratch_len, conv2d_grad_weight,
    conv2d_grad_weight_scratch_len, conv2d_scratch_len, matmul, matmul_packed,
};
use std::hint::black_box;
use dlc_contract::TRANSPOSE_B;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// PERF.md's f32 FMA peak per core on the reference machine.
const REF_PEAK: f64 = 115.0;

/// Median seconds per call of each closure, measured round-robin: 7 rounds
/// of one batch (≥ 10 calls and ≥ 10 ms) per closure, so a slow phase of
/// the shared machine hits every compared variant alike.
fn time_all(fs: &mut [&mut dyn FnMut()]) -> Vec<f64> {
    let mut per_call = vec![Vec::new(); fs.len()];
    for f in fs.iter_mut() {
        f();
    }
    for _ in 0..7 {
        for (f, times) in fs.iter_mut().zip(&mut per_call) {
            let t0 = Instant::now();
            let mut calls = 0;
            while calls < 10 || t0.elapsed().as_secs_f64() < 0.01 {
                f();
                calls += 1;
            }
            times.push(t0.elapsed().as_secs_f64() / calls as f64);
        }
    }
    per_call
        .into_iter()
        .map(|mut t| {
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        })
        .collect()
}

/// Median seconds per call of `f`.
fn time(mut f: impl FnMut()) -> f64 {
    time_all(&mut [&mut f])[0]
}

/// A call taking the thread count.
type Call<'a> = Box<dyn FnMut(usize) + Send + 'a>;

/// A compared variant: a label and its call.
type Variant<'a> = (String, Call<'a>);

/// Times every variant at 1 and then 2 threads (round-robin within each
/// thread count) and prints one row each.
fn compare(flops: f64, peak: f64, variants: Vec<Variant<'_>>) -> Vec<[f64; 2]> {
    let (labels, mut calls): (Vec<String>, Vec<Call<'_>>) = variants.into_iter().unzip();
    let mut secs = vec![[0.0; 2]; calls.len()];
    for (slot, threads) in [1, 2].into_iter().enumerate() {
        let t = on(threads, |th| {
            let mut fs: Vec<Box<dyn FnMut() + '_>> = calls.iter_mut().map(|c| Box::new(move || c(th)) as Box<dyn FnMut()>).collect();
            let mut refs: Vec<&mut dyn FnMut()> = fs.iter_mut().map(|f| &mut **f as &mut dyn FnMut()).collect();
            time_all(&mut refs)
        });
        for (s, t) in secs.iter_mut().zip(t) {
            s[slot] = t;
        }
    }
    for (label, s) in labels.iter().zip(&secs) {
        row(label, flops, *s, peak);
    }
    secs
}

fn rand_vec(len: usize, seed: u64) -> Vec<f32> {
    // xorshift: deterministic, no dependency.
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        })
        .collect()
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a rayon pool")
}

/// Runs `f(threads)` inside a pool of that many threads.
fn on<R: Send>(threads: usize, f: impl FnOnce(usize) -> R + Send) -> R {
    pool(threads).install(|| f(threads))
}

fn gflops(flops: f64, secs: f64) -> f64 {
    flops / secs / 1e9
}

/// One table row: GFLOP/s, then % of the reference and of the measured peak.
fn row(label: &str, flops: f64, secs: [f64; 2], peak: f64) {
    let g = [gflops(flops, secs[0]), gflops(flops, secs[1])];
    println!(
        "  {label:<46} {:>7.1} ({:>3.0}% / {:>3.0}%)   {:>7.1} ({:>3.0}% / {:>3.0}%)   {:>8.1} µs",
        g[0],
        100.0 * g[0] / REF_PEAK,
        100.0 * g[0] / peak,
        g[1],
        50.0 * g[1] / REF_PEAK,
        50.0 * g[1] / peak,
        secs[0] * 1e6
    );
}

fn header(title: &str) {
    println!("\n{title}");
    println!("  {:<46} {:>26}   {:>26}   {:>11}", "", "1 thread GFLOP/s (%115/%peak)", "2 threads (%2x115/%2xpeak)", "1t time");
}

// ---- peak ---------------------------------------------------------------

/// f32 FMA throughput of one core, GFLOP/s, and the instruction set it was
/// measured with: 24 independent zmm accumulators on AVX-512 (enough to
/// cover 4-cycle latency × 2 FMA ports), else 12 ymm ones on AVX2 + FMA;
/// PERF.md's figure, labelled as such, where neither exists.
#[cfg(target_arch = "x86_64")]
fn fma_peak() -> (f64, &'static str) {
    #[target_feature(enable = "avx512f")]
    unsafe fn zmm(iters: usize) -> f32 {
        use std::arch::x86_64::*;
        let mut acc = [_mm512_set1_ps(0.0); 24];
        let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm512_fmadd_ps(*v, a, b);
            }
        }
        let mut s = _mm512_set1_ps(0.0);
        for v in acc {
            s = _mm512_add_ps(s, v);
        }
        _mm512_reduce_add_ps(s)
    }
    #[target_feature(enable = "avx2,fma")]
    unsafe fn ymm(iters: usize) -> f32 {
        use std::arch::x86_64::*;
        let mut acc = [_mm256_set1_ps(0.0); 12];
        let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm256_fmadd_ps(*v, a, b);
            }
        }
        let mut s = _mm256_set1_ps(0.0);
        for v in acc {
            s = _mm256_add_ps(s, v);
        }
        let mut out = [0.0f32; 8];
        // SAFETY: `out` holds 8 floats.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), s) };
        out.iter().sum()
    }
    let iters = 100_000;
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: avx512f was detected above.
        let t = time(|| {
            black_box(unsafe { zmm(black_box(iters)) });
        });
        (gflops((iters * 24 * 16 * 2) as f64, t), "measured, AVX-512")
    } else if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: avx2 and fma were detected above.
        let t = time(|| {
            black_box(unsafe { ymm(black_box(iters)) });
        });
        (gflops((iters * 12 * 8 * 2) as f64, t), "measured, AVX2 (no AVX-512 here)")
    } else {
        (REF_PEAK, "not measured: PERF.md's figure")
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn fma_peak() -> (f64, &'static str) {
    (REF_PEAK, "not measured: PERF.md's figure")
}

// ---- matmul -------------------------------------------------------------

/// The MLP's dense layers: (batch, in, out).
fn mlp_layers() -> Vec<(usize, usize, usize)> {
    let mut v = Vec::new();
    for b in [64, 256] {
        v.extend([(b, 784, 256), (b, 256, 128), (b, 128, 10)]);
    }
    v
}

struct Layer {
    m: usize,
    k: usize,
    n: usize,
    x: Vec<f32>,
    /// PyTorch's layout, `[out, in]` (used with `transpose_b`).
    w_oi: Vec<f32>,
    /// `[in, out]` row-major.
    w_io: Vec<f32>,
    bias: Vec<f32>,
    out: Vec<f32>,
}

impl Layer {
    fn new(m: usize, k: usize, n: usize) -> Layer {
        let w_oi = rand_vec(n * k, 2);
        let mut w_io = vec![0.0; k * n];
        for o in 0..n {
            for i in 0..k {
                w_io[i * n + o] = w_oi[o * k + i];
            }
        }
        Layer { m, k, n, x: rand_vec(m * k, 1), w_oi, w_io, bias: rand_vec(n, 3), out: vec![0.0; m * n] }
    }
    fn flops(&self) -> f64 {
        2.0 * (self.m * self.k * self.n) as f64
    }
    fn name(&self) -> String {
        format!("{}x{}·{}x{}", self.m, self.k, self.k, self.n)
    }
}

/// The `gemm` crate called directly (row-major `[in, out]` weight): what the
/// library reaches without dlc's wrapper.
fn raw_gemm(l: &mut Layer, threads: usize) {
    let par = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    let (m, k, n) = (l.m, l.k, l.n);
    // SAFETY: all three buffers are dense row-major of the sizes given.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            l.out.as_mut_ptr(),
            1,
            n as isize,
            false,
            l.x.as_ptr(),
            1,
            k as isize,
            l.w_io.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}

fn mlp(peak: f64) {
    header("MLP layers (f32), plain product: PyTorch [out,in] weight vs [in,out] vs PackedB vs the bare gemm crate");
    for (m, k, n) in mlp_layers() {
        let l = Layer::new(m, k, n);
        let packed = PackedB::new(View::new(&l.w_oi, &[n, k]), true).unwrap();
        let name = l.name();
        let (mut o1, mut o2, mut o3, mut raw) = (l.out.clone(), l.out.clone(), l.out.clone(), Layer::new(m, k, n));
        let l = &l;
        compare(
            l.flops(),
            peak,
            vec![
                (
                    format!("{name} [out,in] + transpose_b"),
                    Box::new(|th| matmul(View::new(&l.x, &[m, k]), View::new(&l.w_oi, &[n, k]), &mut o1, Transpose::new(false, true), Epilogue::NONE, th).unwrap()),
                ),
                (format!("{name} [in,out]"), Box::new(|th| matmul(View::new(&l.x, &[m, k]), View::new(&l.w_io, &[k, n]), &mut o2, Transpose::NONE, Epilogue::NONE, th).unwrap())),
                (format!("{name} PackedB"), Box::new(|th| matmul_packed(View::new(&l.x, &[m, k]), &packed, &mut o3, false, Epilogue::NONE, th).unwrap())),
                (format!("{name} gemm crate, [in,out]"), Box::new(|th| raw_gemm(&mut raw, th))),
            ],
        );
    }
}

fn pack(peak: f64) {
    header("MLP layers (f32), Linear = bias + ReLU: an [out,in] weight read strided by gemm, as dispatched (transposed per call where TRANSPOSE_B's rule says), PackedB; fused epilogue vs a separate pass");
    for (m, k, n) in mlp_layers() {
        let l = Layer::new(m, k, n);
        let packed = PackedB::new(View::new(&l.w_oi, &[n, k]), true).unwrap();
        let name = l.name();
        let epi = Epilogue::NONE.with_bias(&l.bias).with_relu();
        let (mut o1, mut o2, mut o3, mut o4) = (l.out.clone(), l.out.clone(), l.out.clone(), l.out.clone());
        let l = &l;
        let s = compare(
            l.flops(),
            peak,
            vec![
                (
                    format!("{name} [out,in] strided in gemm, fused"),
                    Box::new(|th| {
                        TRANSPOSE_B.store(false, Ordering::Relaxed);
                        matmul(View::new(&l.x, &[m, k]), View::new(&l.w_oi, &[n, k]), &mut o1, Transpose::new(false, true), epi, th).unwrap();
                        TRANSPOSE_B.store(true, Ordering::Relaxed);
                    }),
                ),
                (
                    format!("{name} [out,in] as dispatched, fused"),
                    Box::new(|th| matmul(View::new(&l.x, &[m, k]), View::new(&l.w_oi, &[n, k]), &mut o4, Transpose::new(false, true), epi, th).unwrap()),
                ),
                (format!("{name} PackedB, fused"), Box::new(|th| matmul_packed(View::new(&l.x, &[m, k]), &packed, &mut o2, false, epi, th).unwrap())),
                (
                    format!("{name} PackedB, separate bias+relu pass"),
                    Box::new(|th| {
                        matmul_packed(View::new(&l.x, &[m, k]), &packed, &mut o3, false, Epilogue::NONE, th).unwrap();
                        for r in o3.chunks_exact_mut(n) {
                            r.iter_mut().zip(&l.bias).for_each(|(v, &b)| *v = (*v + b).max(0.0));
                        }
                    }),
                ),
            ],
        );
        println!(
            "  {:<46} dispatch gain {:.2}x / {:.2}x, packing gain {:.2}x / {:.2}x, fusion gain {:.2}x / {:.2}x",
            "",
            s[0][0] / s[1][0],
            s[0][1] / s[1][1],
            s[0][0] / s[2][0],
            s[0][1] / s[2][1],
            s[3][0] / s[2][0],
            s[3][1] / s[2][1]
        );
    }
    let l = Layer::new(1, 784, 256);
    let t = time(|| {
        black_box(PackedB::new(View::new(&l.w_oi, &[256, 784]), true).unwrap());
    });
    println!("  packing a 256x784 [out,in] weight (once, at compile/load time): {:.1} µs", t * 1e6);
}

/// The 10-wide output layer: naive loops against gemm. `w` is `[k, n]`.
fn naive_io(x: &[f32], w: &[f32], out: &mut [f32], k: usize, n: usize) {
    for (xr, orow) in x.chunks_exact(k).zip(out.chunks_exact_mut(n)) {
        orow.fill(0.0);
        for (p, &xv) in xr.iter().enumerate() {
            orow.iter_mut().zip(&w[p * n..(p + 1) * n]).for_each(|(o, &wv)| *o += xv * wv);
        }
    }
}

/// The same loop compiled for AVX-512 (what LLVM makes of it with the wide
/// registers Cranelift lacks).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn naive_io_avx512(x: &[f32], w: &[f32], out: &mut [f32], k: usize, n: usize) {
    naive_io(x, w, out, k, n)
}

/// A register-blocked 10-wide kernel: 4 rows × 16 lanes (10 used) of zmm
/// accumulators, the weight padded to 16 columns — about the best a
/// hand-written (or JIT-generated, with 512-bit vectors) kernel could do.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn blocked16(x: &[f32], w16: &[f32], out: &mut [f32], m: usize, k: usize, n: usize) {
    use std::arch::x86_64::*;
    unsafe {
        let mask: __mmask16 = ((1u32 << n) - 1) as u16;
        let mut i = 0;
        while i + 4 <= m {
            let mut acc = [_mm512_setzero_ps(); 4];
            for p in 0..k {
                let wv = _mm512_loadu_ps(w16.as_ptr().add(p * 16));
                for (r, a) in acc.iter_mut().enumerate() {
                    *a = _mm512_fmadd_ps(_mm512_set1_ps(*x.get_unchecked((i + r) * k + p)), wv, *a);
                }
            }
            for (r, a) in acc.iter().enumerate() {
                _mm512_mask_storeu_ps(out.as_mut_ptr().add((i + r) * n), mask, *a);
            }
            i += 4;
        }
        for i in i..m {
            let mut a = _mm512_setzero_ps();
            for p in 0..k {
                a = _mm512_fmadd_ps(_mm512_set1_ps(x[i * k + p]), _mm512_loadu_ps(w16.as_ptr().add(p * 16)), a);
            }
            _mm512_mask_storeu_ps(out.as_mut_ptr().add(i * n), mask, a);
        }
    }
}

fn wide(peak: f64) {
    header("The 10-wide output layer: gemm vs naive loops (1 thread; the 2-thread column is the same code on 2)");
    for m in [64, 256] {
        let (k, n) = (128, 10);
        let l = Layer::new(m, k, n);
        let packed = PackedB::new(View::new(&l.w_oi, &[n, k]), true).unwrap();
        let mut reference = vec![0.0; m * n];
        matmul_packed(View::new(&l.x, &[m, k]), &packed, &mut reference, false, Epilogue::NONE, 1).unwrap();
        let mut w16 = vec![0.0f32; k * 16];
        for p in 0..k {
            w16[p * 16..p * 16 + n].copy_from_slice(&l.w_io[p * n..(p + 1) * n]);
        }
        let name = l.name();
        let outs: Vec<std::sync::Mutex<Vec<f32>>> = (0..4).map(|_| std::sync::Mutex::new(vec![0.0; m * n])).collect();
        let l = &l;
        let (w16, outs_r) = (&w16, &outs);
        let mut variants: Vec<Variant<'_>> = vec![
            (format!("{name} PackedB (gemm)"), Box::new(|_| matmul_packed(View::new(&l.x, &[m, k]), &packed, &mut outs_r[0].lock().unwrap(), false, Epilogue::NONE, 1).unwrap())),
            (format!("{name} naive loop, baseline x86-64"), Box::new(|_| naive_io(black_box(&l.x), &l.w_io, &mut outs_r[1].lock().unwrap(), k, n))),
        ];
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: avx512f detected; sizes as allocated.
            variants.push((format!("{name} naive loop, avx512"), Box::new(|_| unsafe { naive_io_avx512(black_box(&l.x), &l.w_io, &mut outs_r[2].lock().unwrap(), k, n) })));
            // SAFETY: as above.
            variants.push((format!("{name} 4x16 zmm kernel, padded weight"), Box::new(|_| unsafe { blocked16(black_box(&l.x), w16, &mut outs_r[3].lock().unwrap(), m, k, n) })));
        }
        let count = variants.len();
        compare(l.flops(), peak, variants);
        for o in &outs[..count] {
            assert!(o.lock().unwrap().iter().zip(&reference).all(|(a, b)| (a - b).abs() < 1e-3), "a 10-wide variant is wrong");
        }
    }
}

fn block(peak: f64) {
    header("Row-block size (PackedB, bias+ReLU): bytes of output per block");
    for (m, k, n) in [(64, 784, 256), (256, 784, 256), (64, 256, 128), (256, 256, 128)] {
        let l = Layer::new(m, k, n);
        let packed = PackedB::new(View::new(&l.w_oi, &[n, k]), true).unwrap();
        let epi = Epilogue::NONE.with_bias(&l.bias).with_relu();
        let name = l.name();
        let (l, packed) = (&l, &packed);
        let variants: Vec<Variant<'_>> = [8usize << 10, 16 << 10, 32 << 10, 64 << 10, 256 << 10, 1 << 50]
            .into_iter()
            .map(|bytes| {
                let label = if bytes > 1 << 40 { "whole".to_string() } else { format!("{} KiB", bytes >> 10) };
                let mut out = l.out.clone();
                let f: Box<dyn FnMut(usize) + Send> = Box::new(move |th| {
                    dlc_contract::ROW_BLOCK_BYTES.store(bytes, Ordering::Relaxed);
                    matmul_packed(View::new(&l.x, &[m, k]), packed, &mut out, false, epi, th).unwrap()
                });
                (format!("{name} block {label}"), f)
            })
            .collect();
        compare(l.flops(), peak, variants);
    }
    dlc_contract::ROW_BLOCK_BYTES.store(16 << 10, Ordering::Relaxed);
}

fn threads(peak: f64) {
    header("One product (an [out,in] weight with transpose_b is not row-blocked): gemm splits it, or dlc splits its rows");
    for (m, k, n) in mlp_layers() {
        let l = Layer::new(m, k, n);
        let name = l.name();
        let l = &l;
        let mut variants: Vec<Variant<'_>> = Vec::new();
        for fused in [false, true] {
            for split in [false, true] {
                let epi = if fused { Epilogue::NONE.with_bias(&l.bias).with_relu() } else { Epilogue::NONE };
                let mut out = l.out.clone();
                let how = if split { "rows split" } else { "gemm splits" };
                let e = if fused { " +bias+relu" } else { "" };
                variants.push((
                    format!("{name}{e} {how}"),
                    Box::new(move |th| {
                        dlc_contract::SPLIT_ROWS.store(split, Ordering::Relaxed);
                        matmul(View::new(&l.x, &[m, k]), View::new(&l.w_oi, &[n, k]), &mut out, Transpose::new(false, true), epi, th).unwrap()
                    }),
                ));
            }
        }
        compare(l.flops(), peak, variants);
    }
    dlc_contract::SPLIT_ROWS.store(true, Ordering::Relaxed);
}

// ---- conv ---------------------------------------------------------------

/// The Keras MNIST CNN's convolutions at batch 64: (x, w).
fn cnn() -> [([usize; 4], [usize; 4]); 3] {
    [([64, 1, 28, 28], [32, 1, 3, 3]), ([64, 32, 13, 13], [64, 32, 3, 3]), ([64, 64, 5, 5], [64, 64, 3, 3])]
}

/// One convolution's buffers.
struct ConvBench {
    conv: Conv2d,
    sx: [usize; 4],
    sw: [usize; 4],
    so: [usize; 4],
    x: Vec<f32>,
    w: Vec<f32>,
    bias: Vec<f32>,
    dy: Vec<f32>,
}

impl ConvBench {
    fn new(sx: [usize; 4], sw: [usize; 4]) -> ConvBench {
        Self::with_padding(sx, sw, 0)
    }
    fn with_padding(sx: [usize; 4], sw: [usize; 4], pad: usize) -> ConvBench {
        let conv = Conv2d { padding: [pad, pad], ..Conv2d::default() };
        let so = conv.out_shape(&sx, &sw).unwrap();
        ConvBench {
            conv,
            sx,
            sw,
            so,
            x: rand_vec(sx.iter().product(), 1),
            w: rand_vec(sw.iter().product(), 2),
            bias: rand_vec(sw[0], 3),
            dy: rand_vec(so.iter().product(), 4),
        }
    }
    fn flops(&self) -> f64 {
        2.0 * (self.so.iter().product::<usize>() * self.sw[1] * self.sw[2] * self.sw[3]) as f64
    }
    /// The forward pass at `threads` on `path`, with its own scratch and output.
    fn forward(&self, path: Path) -> impl FnMut(usize) + Send + '_ {
        let c = self.conv;
        let (mut s, mut out) = (Vec::new(), vec![0.0; self.so.iter().product()]);
        move |th| {
            path.set();
            let epi = Epilogue::NONE.with_bias(&self.bias).with_relu();
            s.resize(conv2d_scratch_len::<f32>(&self.sx, &self.sw, c, th).unwrap(), 0.0);
            conv2d(View::new(&self.x, &self.sx), View::new(&self.w, &self.sw), &mut out, c, epi, &mut s, th).unwrap()
        }
    }
    fn grad_input(&self, path: Path) -> impl FnMut(usize) + Send + '_ {
        let c = self.conv;
        let (mut s, mut dx) = (Vec::new(), vec![0.0; self.x.len()]);
        move |th| {
            path.set();
            s.resize(conv2d_grad_input_scratch_len::<f32>(&self.sx, &self.sw, c, th).unwrap(), 0.0);
            conv2d_grad_input(View::new(&self.dy, &self.so), View::new(&self.w, &self.sw), &mut dx, &self.sx, c, &mut s, th).unwrap()
        }
    }
    fn grad_weight(&self, path: Path) -> impl FnMut(usize) + Send + '_ {
        let c = self.conv;
        let (mut s, mut dw) = (Vec::new(), vec![0.0; self.w.len()]);
        move |th| {
            path.set();
            s.resize(conv2d_grad_weight_scratch_len::<f32>(&self.sx, &self.sw, c, th).unwrap(), 0.0);
            conv2d_grad_weight(View::new(&self.x, &self.sx), View::new(&self.dy, &self.so), &mut dw, &self.sw, c, &mut s, th).unwrap()
        }
    }
}

/// Which convolution path a timed call takes: the switches are set before
/// every call, as variants run round-robin.
#[derive(Clone, Copy, Debug)]
enum Path {
    /// im2col + gemm: the direct and Winograd paths off.
    Im2col,
    /// What dlc runs by default.
    Dispatched,
    /// The direct kernels for any number of taps (where the machine has
    /// AVX-512), Winograd off.
    Direct,
    /// Winograd with `m×m` output tiles for any channel count.
    Wino(usize),
}

impl Path {
    fn set(self) {
        use dlc_contract::{DIRECT, MIN_DIRECT_TAPS, MIN_WINO_CHANNELS, MONO, WINO_TILE, WINOGRAD};
        MONO.store(matches!(self, Path::Dispatched), Ordering::Relaxed);
        let (direct, min_taps, wino, tile, min_ch) = match self {
            Path::Im2col => (false, 128, false, 0, 32),
            Path::Dispatched => (true, 128, true, 0, 32),
            Path::Direct => (true, 0, false, 0, 32),
            Path::Wino(m) => (false, 128, true, m, 0),
        };
        DIRECT.store(direct, Ordering::Relaxed);
        MIN_DIRECT_TAPS.store(min_taps, Ordering::Relaxed);
        WINOGRAD.store(wino, Ordering::Relaxed);
        WINO_TILE.store(tile, Ordering::Relaxed);
        MIN_WINO_CHANNELS.store(min_ch, Ordering::Relaxed);
    }
}

/// The paths the conv section compares, in its row order: "dispatched" is
/// what dlc runs (Winograd for 3×3 stride-1 convolutions with enough
/// channels, the direct AVX-512 kernels from `MIN_DIRECT_TAPS` taps on,
/// where the machine has them; im2col + gemm otherwise). The `wino`
/// section compares the input gradient's paths.
const CONV_ROWS: [&str; 6] = [
    "forward, im2col + gemm",
    "forward, dispatched",
    "grad input, im2col + gemm",
    "grad weight, im2col + gemm",
    "grad weight, dispatched",
    "bare W·cols product",
];

fn conv(peak: f64) {
    header("Keras CNN convolutions, batch 64 (f32): forward (bias+ReLU) and both gradients, im2col + gemm against the dispatched path, and the bare product");
    let mut total = [[0.0; 2]; CONV_ROWS.len()];
    let mut total_flops = 0.0;
    for (sx, sw) in cnn() {
        let b = ConvBench::new(sx, sw);
        let name = format!("x{sx:?} w{sw:?}");
        let (o, taps, np) = (sw[0], sw[1] * sw[2] * sw[3], b.so[0] * b.so[2] * b.so[3]);
        // The bare product the forward pass amounts to: W[O, taps] · cols[taps, N·P].
        let cols = rand_vec(taps * np, 5);
        let mut wide = vec![0.0; o * np];
        let b = &b;
        let mut variants: Vec<Variant<'_>> = vec![
            (format!("{name} {}", CONV_ROWS[0]), Box::new(b.forward(Path::Im2col))),
            (format!("    {}", CONV_ROWS[1]), Box::new(b.forward(Path::Dispatched))),
            (format!("    {}", CONV_ROWS[2]), Box::new(b.grad_input(Path::Im2col))),
            (format!("    {}", CONV_ROWS[3]), Box::new(b.grad_weight(Path::Im2col))),
            (format!("    {}", CONV_ROWS[4]), Box::new(b.grad_weight(Path::Dispatched))),
        ];
        variants.push((
            format!("    bare W·cols [{o}x{taps}]·[{taps}x{np}]"),
            Box::new(|th| matmul(View::new(&b.w, &[o, taps]), View::new(&cols, &[taps, np]), &mut wide, Transpose::NONE, Epilogue::NONE, th).unwrap()),
        ));
        let t = compare(b.flops(), peak, variants);
        total_flops += b.flops();
        for (acc, t) in total.iter_mut().zip(t) {
            acc[0] += t[0];
            acc[1] += t[1];
        }
    }
    Path::Dispatched.set();
    for (name, t) in CONV_ROWS.iter().zip(total) {
        row(&format!("all three convs, {name}"), total_flops, t, peak);
    }
}

/// Where the direct path starts to pay: 3×3 convolutions on 28×28 images
/// at batch 64 with 32 output channels, from 1 input channel (9 taps) to 32
/// (288), forward and weight gradient on both paths. Every path runs here
/// (`DIRECT` forced per row), so the threshold in `direct.rs` is read off
/// this table.
fn taps(peak: f64) {
    header("Direct path against im2col + gemm by taps per output (3x3, 28x28, 32 output channels, batch 64)");
    let min_taps = dlc_contract::MIN_DIRECT_TAPS.swap(0, Ordering::Relaxed);
    for c in [1usize, 2, 3, 4, 6, 8, 16, 32] {
        let b = ConvBench::new([64, c, 28, 28], [32, c, 3, 3]);
        let b = &b;
        let variants: Vec<Variant<'_>> = vec![
            (format!("taps {:>3} forward, im2col + gemm", c * 9), Box::new(b.forward(Path::Im2col))),
            ("          forward, direct".to_string(), Box::new(b.forward(Path::Direct))),
            ("          grad weight, im2col + gemm".to_string(), Box::new(b.grad_weight(Path::Im2col))),
            ("          grad weight, direct".to_string(), Box::new(b.grad_weight(Path::Direct))),
        ];
        compare(b.flops(), peak, variants);
    }
    Path::Dispatched.set();
    dlc_contract::MIN_DIRECT_TAPS.store(min_taps, Ordering::Relaxed);
}

fn group(peak: f64) {
    header("Conv image grouping: minimum columns per grouped product (forward, bias+ReLU)");
    for (sx, sw) in cnn() {
        let b = ConvBench::new(sx, sw);
        let b = &b;
        let variants: Vec<Variant<'_>> = [1usize, 128, 256, 512, 1024, 2048, 4096]
            .into_iter()
            .map(|cols| {
                dlc_contract::MIN_GROUP_COLS.store(cols, Ordering::Relaxed);
                let mut f = b.forward(Path::Im2col);
                let g: Box<dyn FnMut(usize) + Send> = Box::new(move |th| {
                    dlc_contract::MIN_GROUP_COLS.store(cols, Ordering::Relaxed);
                    f(th)
                });
                (format!("x{sx:?} w{sw:?} ≥{cols} cols"), g)
            })
            .collect();
        compare(b.flops(), peak, variants);
    }
    dlc_contract::MIN_GROUP_COLS.store(512, Ordering::Relaxed);
}

/// Prints `what`'s speed-up over each baseline row, at 1 and 2 threads.
fn ratios(secs: &[[f64; 2]], what: usize, over: &[(usize, &str)], label: &str) {
    let parts: Vec<String> = over.iter().map(|&(i, name)| format!("{:.2}x / {:.2}x vs {name}", secs[i][0] / secs[what][0], secs[i][1] / secs[what][1])).collect();
    println!("  {:<46} {label}: {}", "", parts.join(", "));
}

/// Winograd F(2×2) and F(4×4) against the direct kernels and im2col +
/// gemm on the Keras CNN's layers (batch 64): the forward pass (bias+ReLU)
/// and the input gradient, each path forced per row; "dispatched" is what
/// dlc runs.
fn wino(peak: f64) {
    header("Winograd vs direct vs im2col + gemm: Keras CNN convolutions, batch 64 (f32; GFLOP/s count the direct conv's 2·N·O·OH·OW·C·9)");
    for (sx, sw) in cnn() {
        let b = ConvBench::new(sx, sw);
        let name = format!("x{sx:?} w{sw:?}");
        let b = &b;
        let variants: Vec<Variant<'_>> = vec![
            (format!("{name} forward, im2col + gemm"), Box::new(b.forward(Path::Im2col))),
            ("    forward, direct".to_string(), Box::new(b.forward(Path::Direct))),
            ("    forward, Winograd F(2x2,3x3)".to_string(), Box::new(b.forward(Path::Wino(2)))),
            ("    forward, Winograd F(4x4,3x3)".to_string(), Box::new(b.forward(Path::Wino(4)))),
            ("    forward, dispatched".to_string(), Box::new(b.forward(Path::Dispatched))),
            ("    grad input, im2col + gemm".to_string(), Box::new(b.grad_input(Path::Im2col))),
            ("    grad input, Winograd F(2x2,3x3)".to_string(), Box::new(b.grad_input(Path::Wino(2)))),
            ("    grad input, Winograd F(4x4,3x3)".to_string(), Box::new(b.grad_input(Path::Wino(4)))),
            ("    grad input, dispatched".to_string(), Box::new(b.grad_input(Path::Dispatched))),
        ];
        let t = compare(b.flops(), peak, variants);
        ratios(&t, 2, &[(0, "im2col"), (1, "direct")], "forward F(2x2)");
        ratios(&t, 3, &[(0, "im2col"), (1, "direct")], "forward F(4x4)");
        ratios(&t, 6, &[(5, "im2col")], "grad input F(2x2)");
        ratios(&t, 7, &[(5, "im2col")], "grad input F(4x4)");
    }
    Path::Dispatched.set();
}

/// Where Winograd starts to pay: 3×3 convolutions at batch 64 with C = O
/// channels on 13×13 and 28×28 maps (padding 1 on the larger), forward and
/// input gradient; the channel threshold in `winograd.rs` is read off this.
fn wsweep(peak: f64) {
    header("Winograd by channels (C = O, 3x3, batch 64): forward against direct / im2col, input gradient against im2col");
    for (hw, pad) in [(13usize, 0usize), (28, 1)] {
        for c in [1usize, 2, 4, 8, 16, 32, 64] {
            let b = ConvBench::with_padding([64, c, hw, hw], [c, c, 3, 3], pad);
            let b = &b;
            let variants: Vec<Variant<'_>> = vec![
                (format!("{hw}x{hw} pad {pad} C=O={c:<3} fwd, im2col"), Box::new(b.forward(Path::Im2col))),
                ("          forward, direct".to_string(), Box::new(b.forward(Path::Direct))),
                ("          forward, F(2x2)".to_string(), Box::new(b.forward(Path::Wino(2)))),
                ("          forward, F(4x4)".to_string(), Box::new(b.forward(Path::Wino(4)))),
                ("          grad input, im2col".to_string(), Box::new(b.grad_input(Path::Im2col))),
                ("          grad input, F(2x2)".to_string(), Box::new(b.grad_input(Path::Wino(2)))),
                ("          grad input, F(4x4)".to_string(), Box::new(b.grad_input(Path::Wino(4)))),
            ];
            compare(b.flops(), peak, variants);
        }
    }
    Path::Dispatched.set();
}

/// Winograd's block size: bytes of one block's transformed input and
/// products (F(4×4), the CNN's two deeper layers).
fn wblock(peak: f64) {
    header("Winograd block size (F(4x4), forward): bytes of V and M per block");
    for (sx, sw) in &cnn()[1..] {
        let b = ConvBench::new(*sx, *sw);
        let b = &b;
        let variants: Vec<Variant<'_>> = [64usize << 10, 128 << 10, 256 << 10, 512 << 10, 1024 << 10, 2048 << 10]
            .into_iter()
            .map(|bytes| {
                let mut f = b.forward(Path::Wino(4));
                let g: Box<dyn FnMut(usize) + Send> = Box::new(move |th| {
                    dlc_contract::WINO_BLOCK_BYTES.store(bytes, Ordering::Relaxed);
                    f(th)
                });
                (format!("x{sx:?} w{sw:?} {} KiB", bytes >> 10), g)
            })
            .collect();
        compare(b.flops(), peak, variants);
    }
    dlc_contract::WINO_BLOCK_BYTES.store(512 << 10, Ordering::Relaxed);
    Path::Dispatched.set();
}

/// The Keras CNN's pooled layers (conv → bias → ReLU → 2×2 max-pool),
/// batch 64: `conv2d_max_pool` against the convolution alone (whose output
/// a separate pooling pass would then read back).
fn pooled(peak: f64) {
    use dlc_contract::{MaxPool2d, conv2d_max_pool, conv2d_max_pool_scratch_len};
    header("Keras CNN pooled layers, batch 64 (f32): conv2d_max_pool against conv2d alone (dispatched paths)");
    let pool = MaxPool2d { kernel: [2, 2], stride: [2, 2], padding: [0, 0] };
    for (sx, sw) in cnn().into_iter().take(2) {
        let b = ConvBench::new(sx, sw);
        let c = Conv2d::default();
        let flops = 2.0 * (b.so.iter().product::<usize>() * sw[1] * sw[2] * sw[3]) as f64;
        let [n, o, oh, ow] = b.so;
        let bias = rand_vec(o, 9);
        let (x, w, bias) = (&b.x, &b.w, &bias);
        let variants: Vec<Variant<'_>> = vec![
            ("conv2d + bias + relu".to_string(), Box::new(move |th: usize| {
                let mut out = vec![0.0f32; n * o * oh * ow];
                let mut s = vec![0.0f32; conv2d_scratch_len::<f32>(&sx, &sw, c, th).unwrap()];
                conv2d(View::new(x, &sx), View::new(w, &sw), &mut out, c, Epilogue::NONE.with_bias(bias).with_relu(), &mut s, th).unwrap();
                black_box(&out);
            })),
            ("conv2d_max_pool".to_string(), Box::new(move |th: usize| {
                let mut out = vec![0.0f32; n * o * (oh / 2) * (ow / 2)];
                let mut s = vec![0.0f32; conv2d_max_pool_scratch_len::<f32>(&sx, &sw, c, pool, th).unwrap()];
                conv2d_max_pool(View::new(x, &sx), View::new(w, &sw), &mut out, c, Epilogue::NONE.with_bias(bias).with_relu(), pool, &mut s, th).unwrap();
                black_box(&out);
            })),
        ];
        println!("x{sx:?} w{sw:?}");
        compare(flops, peak, variants);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let want = |s: &str| args.is_empty() || args.iter().any(|a| a == s);
    println!("dlc-contract benchmark: {} cores available", std::thread::available_parallelism().map_or(1, |n| n.get()));
    let (peak, how) = on(1, |_| fma_peak());
    let peak2 = on(2, |_| {
        use rayon::prelude::*;
        let t0 = Instant::now();
        let r: Vec<f64> = (0..2).into_par_iter().map(|_| fma_peak().0).collect();
        black_box(t0);
        r.iter().sum::<f64>()
    });
    println!("f32 FMA peak ({how}): {peak:.1} GFLOP/s on 1 core, {peak2:.1} on 2 (PERF.md's Zen 4: {REF_PEAK} per core)");
    println!("columns: GFLOP/s (% of {REF_PEAK}·threads / % of the measured 1-core peak·threads)");
    if want("mlp") {
        mlp(peak);
    }
    if want("pack") {
        pack(peak);
    }
    if want("wide") {
        wide(peak);
    }
    if want("block") {
        block(peak);
    }
    if want("threads") {
        threads(peak);
    }
    if want("conv") {
        conv(peak);
    }
    if want("taps") {
        taps(peak);
    }
    if want("group") {
        group(peak);
    }
    if want("wino") {
        wino(peak);
    }
    if want("pooled") {
        pooled(peak);
    }
    if want("wsweep") {
        wsweep(peak);
    }
    if want("wblock") {
        wblock(peak);
    }
}
