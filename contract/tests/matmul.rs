//! `matmul` and `matmul_packed` against a naive loop and the interpreter.

mod common;

use common::*;
use dlc_contract::{ContractError, Epilogue, PackedB, Transpose, View, matmul, matmul_packed, matmul_shape};

const SIZES: [usize; 4] = [1, 3, 7, 65];
const FLAGS: [(bool, bool); 4] = [(false, false), (false, true), (true, false), (true, true)];

/// `[batch..., rows, cols]` for an operand that is `[.., r, c]` under its flag.
fn stored(batch: &[usize], r: usize, c: usize, transposed: bool) -> Vec<usize> {
    let mut s = batch.to_vec();
    s.extend(if transposed { [c, r] } else { [r, c] });
    s
}

/// One case: our result against the naive loop and against the interpreter,
/// at 1 and 2 threads (agreeing), and bit-equal when repeated.
fn check_case<T: Float>(seed: u64, ba: &[usize], bb: &[usize], (m, k, n): (usize, usize, usize), (ta, tb): (bool, bool)) {
    let mut r = rng(seed);
    let (sa, sb) = (stored(ba, m, k, ta), stored(bb, k, n, tb));
    let a: Vec<T> = random(&mut r, sa.iter().product());
    let b: Vec<T> = random(&mut r, sb.iter().product());
    let t = Transpose::new(ta, tb);
    let what = format!("{sa:?}{} @ {sb:?}{}", if ta { "ᵀ" } else { "" }, if tb { "ᵀ" } else { "" });

    let (shape, want) = naive_matmul(&a, &sa, &b, &sb, ta, tb);
    assert_eq!(matmul_shape(&sa, &sb, t).unwrap(), shape, "{what}: shape");
    let mut got = vec![T::ZERO; want.len()];
    matmul(View::new(&a, &sa), View::new(&b, &sb), &mut got, t, Epilogue::NONE, 1).unwrap();
    assert_close(&format!("{what} vs naive"), &got, &want);

    let (ishape, interp) = interp_matmul(&a, &sa, &b, &sb, ta, tb);
    assert_eq!(ishape, shape, "{what}: interpreter shape");
    assert_close_to(&format!("{what} vs interpreter"), &got, &interp, &want);

    let mut two = vec![T::ZERO; want.len()];
    matmul(View::new(&a, &sa), View::new(&b, &sb), &mut two, t, Epilogue::NONE, 2).unwrap();
    assert_close_to(&format!("{what} 2 threads vs 1"), &two, &got, &want);
    let mut again = vec![T::ZERO; want.len()];
    matmul(View::new(&a, &sa), View::new(&b, &sb), &mut again, t, Epilogue::NONE, 2).unwrap();
    assert_bits_eq(&format!("{what} 2 threads, run to run"), &two, &again);
}

fn all_sizes_and_flags<T: Float>() {
    let mut seed = 0;
    for &m in &SIZES {
        for &k in &SIZES {
            for &n in &SIZES {
                for &flags in &FLAGS {
                    seed += 1;
                    check_case::<T>(seed, &[], &[], (m, k, n), flags);
                }
            }
        }
    }
}

#[test]
fn matmul_f32_all_sizes_and_flags() {
    all_sizes_and_flags::<f32>();
}

#[test]
fn matmul_f64_all_sizes_and_flags() {
    all_sizes_and_flags::<f64>();
}

/// Batch dims: equal, broadcast from either side, of different ranks, of
/// size 1, and `b` without batch (the folded path), under every flag pair.
fn batches<T: Float>() {
    let cases: &[(&[usize], &[usize])] = &[
        (&[1], &[1]),
        (&[4], &[4]),
        (&[5], &[]),
        (&[2, 3], &[1]),
        (&[], &[4]),
        (&[2, 1], &[3]),
        (&[1, 3], &[2, 1]),
        (&[3, 1, 2], &[1, 4, 1]),
        (&[2], &[1, 1]),
    ];
    let mut seed = 1000;
    for (ba, bb) in cases {
        for &(m, k, n) in &[(3, 7, 5), (7, 1, 3), (1, 65, 7), (65, 3, 1)] {
            for &flags in &FLAGS {
                seed += 1;
                check_case::<T>(seed, ba, bb, (m, k, n), flags);
            }
        }
    }
}

#[test]
fn matmul_f32_broadcast_batches() {
    batches::<f32>();
}

#[test]
fn matmul_f64_broadcast_batches() {
    batches::<f64>();
}

/// Big enough that gemm splits one product over threads itself (and that
/// several products go to separate jobs): 1 and 2 threads give the same bits.
#[test]
fn threads_give_equal_bits() {
    for &(ba, bb, (m, k, n)) in &[(&[][..], &[][..], (200, 150, 120)), (&[4][..], &[4][..], (70, 90, 80)), (&[6][..], &[][..], (33, 100, 260))] {
        for &(ta, tb) in &FLAGS {
            let mut r = rng(7);
            let (sa, sb) = (stored(ba, m, k, ta), stored(bb, k, n, tb));
            let a: Vec<f32> = random(&mut r, sa.iter().product());
            let b: Vec<f32> = random(&mut r, sb.iter().product());
            let bias: Vec<f32> = random(&mut r, n);
            let t = Transpose::new(ta, tb);
            let len = matmul_shape(&sa, &sb, t).unwrap().iter().product();
            for epi in [Epilogue::NONE, Epilogue::NONE.with_bias(&bias).with_relu()] {
                let run = |threads| {
                    let mut out = vec![0.0f32; len];
                    matmul(View::new(&a, &sa), View::new(&b, &sb), &mut out, t, epi, threads).unwrap();
                    out
                };
                let (one, two) = (run(1), run(2));
                assert_bits_eq(&format!("{sa:?} @ {sb:?} {t:?} 1 vs 2 threads"), &one, &two);
                assert_bits_eq("run to run at 1 thread", &one, &run(1));
                assert_bits_eq("run to run at 2 threads", &two, &run(2));
            }
        }
    }
}

/// The reference epilogue: relu(x + bias[col]).
fn epilogue_ref(refs: &mut [Ref], n: usize, bias: Option<&[f64]>, relu: bool) {
    for (i, r) in refs.iter_mut().enumerate() {
        if let Some(b) = bias {
            r.value += b[i % n];
            r.scale += b[i % n].abs();
        }
        if relu && r.value < 0.0 {
            // A clamped value is exact only when the sum's sign is right; a
            // value within the tolerance of zero may go either way.
            r.value = 0.0;
        }
    }
}

fn epilogues<T: Float>() {
    // n·m large enough for several 32 KiB row blocks (65 f64 columns: 63
    // rows a block), a batch, and the folded batch path.
    for &(ba, bb, (m, k, n)) in &[(&[][..], &[][..], (130, 7, 65)), (&[3][..], &[3][..], (7, 3, 65)), (&[4][..], &[][..], (65, 65, 7)), (&[][..], &[][..], (300, 3, 200))] {
        for &(ta, tb) in &FLAGS {
            let mut r = rng(99);
            let (sa, sb) = (stored(ba, m, k, ta), stored(bb, k, n, tb));
            let a: Vec<T> = random(&mut r, sa.iter().product());
            let b: Vec<T> = random(&mut r, sb.iter().product());
            let bias: Vec<T> = random(&mut r, n);
            let bias64: Vec<f64> = bias.iter().map(|&v| v.into()).collect();
            let t = Transpose::new(ta, tb);
            for (with_bias, relu) in [(true, false), (false, true), (true, true)] {
                let mut epi = Epilogue::NONE;
                if with_bias {
                    epi = epi.with_bias(&bias);
                }
                if relu {
                    epi = epi.with_relu();
                }
                let (_, mut want) = naive_matmul(&a, &sa, &b, &sb, ta, tb);
                epilogue_ref(&mut want, n, with_bias.then_some(&bias64[..]), relu);
                for threads in [1, 2] {
                    let mut got = vec![T::ZERO; want.len()];
                    matmul(View::new(&a, &sa), View::new(&b, &sb), &mut got, t, epi, threads).unwrap();
                    assert_close(&format!("{sa:?} @ {sb:?} {t:?} bias {with_bias} relu {relu} threads {threads}"), &got, &want);
                    if relu {
                        assert!(got.iter().all(|&v| v.partial_cmp(&T::ZERO) != Some(std::cmp::Ordering::Less)), "relu left a negative value");
                    }
                }
            }
        }
    }
}

#[test]
fn epilogue_f32() {
    epilogues::<f32>();
}

#[test]
fn epilogue_f64() {
    epilogues::<f64>();
}

#[test]
fn relu_keeps_nan_like_the_interpreter() {
    // 1×1 products: NaN passes ReLU (as in torch.relu), negatives clamp.
    let a = [f32::NAN, -2.0, 3.0];
    let b = [1.0f32];
    let mut out = [1.0f32; 3];
    matmul(View::new(&a, &[3, 1]), View::new(&b, &[1, 1]), &mut out, Transpose::NONE, Epilogue::NONE.with_relu(), 1).unwrap();
    assert!(out[0].is_nan());
    assert_eq!(&out[1..], &[0.0, 3.0]);
}

fn packed<T: Float>() {
    let mut seed = 5000;
    for &(ba, bb) in &[(&[][..], &[][..]), (&[3][..], &[][..]), (&[2][..], &[2][..]), (&[][..], &[3][..]), (&[2, 1][..], &[3][..])] {
        for &(m, k, n) in &[(1, 1, 1), (3, 7, 65), (65, 65, 3), (7, 3, 7), (64, 65, 10), (5, 24, 40)] {
            for &(ta, tb) in &FLAGS {
                seed += 1;
                let mut r = rng(seed);
                let (sa, sb) = (stored(ba, m, k, ta), stored(bb, k, n, tb));
                let a: Vec<T> = random(&mut r, sa.iter().product());
                let b: Vec<T> = random(&mut r, sb.iter().product());
                let bias: Vec<T> = random(&mut r, n);
                let pb = PackedB::new(View::new(&b, &sb), tb).unwrap();
                assert_eq!(pb.shape(), &stored(bb, k, n, false)[..]);
                assert_eq!(pb.data().as_ptr() as usize % 64, 0, "packed data is 64-byte aligned");
                // Packing only moves elements: `op(b)` exactly (8×8 register
                // tiles and their scalar edges for f32 on AVX machines).
                let (rows, cols) = if tb { (n, k) } else { (k, n) };
                let want_packed: Vec<T> = b
                    .chunks_exact(rows * cols)
                    .flat_map(|mat| (0..rows * cols).map(move |i| if tb { mat[(i % rows) * cols + i / rows] } else { mat[i] }))
                    .collect();
                assert_bits_eq(&format!("packed {sb:?} (transposed: {tb})"), pb.data(), &want_packed);
                let (shape, want) = naive_matmul(&a, &sa, &b, &sb, ta, tb);
                let (_, interp) = interp_matmul(&a, &sa, &b, &sb, ta, tb);
                for threads in [1, 2] {
                    let mut got = vec![T::ZERO; want.len()];
                    matmul_packed(View::new(&a, &sa), &pb, &mut got, ta, Epilogue::NONE, threads).unwrap();
                    let what = format!("packed {sa:?} @ {sb:?} ({ta}, {tb}) threads {threads} -> {shape:?}");
                    assert_close(&what, &got, &want);
                    assert_close_to(&format!("{what} vs interpreter"), &got, &interp, &want);
                }
                // With the epilogue: equal to the unpacked call's result.
                let epi = Epilogue::NONE.with_bias(&bias).with_relu();
                let mut p = vec![T::ZERO; want.len()];
                let mut u = vec![T::ZERO; want.len()];
                matmul_packed(View::new(&a, &sa), &pb, &mut p, ta, epi, 1).unwrap();
                matmul(View::new(&a, &sa), View::new(&b, &sb), &mut u, Transpose::new(ta, tb), epi, 1).unwrap();
                assert_close_to("packed vs unpacked with epilogue", &p, &u, &want);
            }
        }
    }
}

#[test]
fn packed_f32() {
    packed::<f32>();
}

#[test]
fn packed_f64() {
    packed::<f64>();
}

#[test]
fn zero_sized_dims() {
    // k = 0: the product is all zeros, then the epilogue (bias) applies.
    let bias = [1.0f32, -2.0];
    let mut out = [9.0f32; 6];
    matmul(View::new(&[], &[3, 0]), View::new(&[], &[0, 2]), &mut out, Transpose::NONE, Epilogue::NONE.with_bias(&bias), 2).unwrap();
    assert_eq!(out, [1.0, -2.0, 1.0, -2.0, 1.0, -2.0]);
    // An empty batch or m = 0: nothing to write.
    let mut none: [f64; 0] = [];
    matmul(View::new(&[], &[0, 3, 2]), View::new(&[1.0; 8], &[2, 4]), &mut none, Transpose::NONE, Epilogue::NONE, 1).unwrap();
    matmul(View::new(&[], &[0, 2]), View::new(&[1.0; 8], &[2, 4]), &mut none, Transpose::NONE, Epilogue::NONE, 1).unwrap();
}

#[test]
fn bad_calls_are_errors() {
    let a = [0.0f32; 6];
    let mut out = [0.0f32; 4];
    let e = |r: Result<(), ContractError>| r.unwrap_err();
    // Contracted dims differ.
    assert!(matches!(e(matmul(View::new(&a, &[2, 3]), View::new(&a, &[2, 3]), &mut out, Transpose::NONE, Epilogue::NONE, 1)), ContractError::Shape(_)));
    // Rank 1.
    assert!(matches!(e(matmul(View::new(&a, &[6]), View::new(&a, &[6, 1]), &mut out, Transpose::NONE, Epilogue::NONE, 1)), ContractError::Shape(_)));
    // Batches that do not broadcast.
    let z = [0.0f32; 24];
    let mut big = [0.0f32; 64];
    assert!(matches!(e(matmul(View::new(&z, &[2, 3, 4]), View::new(&z, &[3, 4, 2]), &mut big, Transpose::NONE, Epilogue::NONE, 1)), ContractError::Shape(_)));
    // Data shorter than its shape.
    assert!(matches!(e(matmul(View::new(&a, &[2, 4]), View::new(&a, &[4, 2]), &mut out, Transpose::NONE, Epilogue::NONE, 1)), ContractError::Len { what: "a", .. }));
    // Output of the wrong length.
    assert!(matches!(e(matmul(View::new(&a, &[2, 3]), View::new(&a, &[3, 2]), &mut out[..3], Transpose::NONE, Epilogue::NONE, 1)), ContractError::Len { what: "out", .. }));
    // Bias of the wrong length.
    let bias = [0.0f32; 3];
    assert!(matches!(e(matmul(View::new(&a, &[2, 3]), View::new(&a, &[3, 2]), &mut out, Transpose::NONE, Epilogue::NONE.with_bias(&bias), 1)), ContractError::Len { what: "bias", .. }));
}
