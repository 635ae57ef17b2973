//! Structured kernels (`GenericSpec`) against a naive evaluator of their
//! semantics (`reference.rs`): reductions over every kind of axis set,
//! transposes, broadcasts, strided slices, pooling windows with and
//! without padding, a softmax chain, f64 and i1 operands, row-range splits
//! and threads, kernels with several outputs (in place too), and the calls
//! that must be errors. Sizes are odd, 1, and
//! not multiples of the vector width, so that every vector loop has a tail.

mod props;
mod reference;
mod wide;

use dlc_ir::{AffineMap, Attrs, DType, OpKind, attrs};
use dlc_jit::{Buffer, BufferMut, GenericBuilder, GenericSpec, IterKind, Jit, JitError};
use reference::*;

use DType::{F32, F64};
use IterKind::{Parallel as P, Reduction as R};

fn map(text: &str) -> AffineMap {
    AffineMap::parse(text).unwrap()
}

/// `out = acc ⊕ x` for one input read through `in_map`.
fn reduce(iters: &[IterKind], dtype: DType, in_map: &str, out_map: &str, kind: OpKind, init: f64) -> GenericSpec {
    let mut g = GenericBuilder::new(iters, dtype).unwrap();
    let x = g.input(dtype, map(in_map), None).unwrap();
    let acc = g.acc().unwrap();
    let y = g.op(kind, &[acc, x], Attrs::new()).unwrap();
    g.finish(y, map(out_map), Some(init)).unwrap()
}

/// `out = x` read through `in_map` (a pure movement kernel).
fn copy(iters: &[IterKind], dtype: DType, in_map: &str, out_map: &str) -> GenericSpec {
    let mut g = GenericBuilder::new(iters, dtype).unwrap();
    let x = g.input(dtype, map(in_map), None).unwrap();
    g.finish(x, map(out_map), None).unwrap()
}

#[test]
fn sum_over_the_last_axis_runs_on_partial_accumulators() {
    let spec = reduce(&[P, R], F32, "(d0, d1) -> (d0, d1)", "(d0, d1) -> (d0)", OpKind::Add, 0.0);
    let mut rng = Rng::new(1);
    for sizes in [[7, 13], [1, 1], [5, 4], [3, 1], [2, 3], [4, 33], [3, 257]] {
        let k = check(&spec, &[rng.operand(&sizes)], &sizes, 1e-5);
        assert_eq!(k.vector_lanes(), 4);
    }
}

#[test]
fn sum_over_the_first_axis_updates_output_rows_on_vectors() {
    let spec = reduce(&[R, P], F32, "(d0, d1) -> (d0, d1)", "(d0, d1) -> (d1)", OpKind::Add, 0.5);
    let mut rng = Rng::new(2);
    for sizes in [[9, 11], [1, 5], [6, 256], [5, 1], [3, 7]] {
        let k = check(&spec, &[rng.operand(&sizes)], &sizes, 1e-5);
        assert_eq!(k.vector_lanes(), 4);
        assert!(!k.splits_rows(), "dim 0 is a reduction");
    }
}

#[test]
fn sum_over_middle_axes() {
    let mut rng = Rng::new(3);
    // The conv bias gradient: [N, C, H, W] -> [C].
    let spec = reduce(&[R, P, R, R], F32, "(d0, d1, d2, d3) -> (d0, d1, d2, d3)", "(d0, d1, d2, d3) -> (d1)", OpKind::Add, 0.0);
    for sizes in [[3, 5, 7, 9], [2, 3, 1, 1], [1, 1, 5, 3], [4, 2, 6, 6], [2, 3, 4, 1]] {
        let k = check(&spec, &[rng.operand(&sizes)], &sizes, 1e-5);
        assert_eq!(k.vector_lanes(), 4);
    }
    // [A, B, C] -> [A, C]: the reduction is outside the inner parallel dim.
    let spec = reduce(&[P, R, P], F32, "(d0, d1, d2) -> (d0, d1, d2)", "(d0, d1, d2) -> (d0, d2)", OpKind::Add, 0.0);
    for sizes in [[3, 5, 7], [1, 1, 1], [2, 4, 9], [4, 3, 1]] {
        let k = check(&spec, &[rng.operand(&sizes)], &sizes, 1e-5);
        assert_eq!(k.vector_lanes(), 4);
    }
    // Over a transposed output: [A, B, C] -> [B, A], summing C.
    let spec = reduce(&[P, P, R], F32, "(d0, d1, d2) -> (d0, d1, d2)", "(d0, d1, d2) -> (d1, d0)", OpKind::Add, 0.0);
    for sizes in [[3, 5, 7], [2, 1, 9]] {
        check(&spec, &[rng.operand(&sizes)], &sizes, 1e-5);
    }
}

#[test]
fn sum_along_a_strided_axis_runs_scalar() {
    // Summing the columns of x read transposed: the reduction dim strides by a row.
    let spec = reduce(&[P, R], F32, "(d0, d1) -> (d1, d0)", "(d0, d1) -> (d0)", OpKind::Add, 0.0);
    let mut rng = Rng::new(4);
    for sizes in [[5, 7], [1, 9], [6, 1]] {
        let x = rng.operand(&[sizes[1], sizes[0]]);
        let k = check(&spec, &[x], &sizes, 1e-5);
        assert_eq!(k.vector_lanes(), 1);
    }
}

/// `n` values with NaN at the given positions.
fn with_nans(rng: &mut Rng, shape: &[usize], nans: &[usize]) -> Operand {
    let mut x = rng.operand(shape);
    for &i in nans {
        x.data[i] = f64::NAN;
    }
    x
}

#[test]
fn max_and_min_reductions_propagate_nan() {
    let mut rng = Rng::new(5);
    for (kind, init) in [(OpKind::Maximum, f64::NEG_INFINITY), (OpKind::Minimum, f64::INFINITY)] {
        let last = reduce(&[P, R], F32, "(d0, d1) -> (d0, d1)", "(d0, d1) -> (d0)", kind, init);
        let sizes = [6, 11];
        // Row 1 has a NaN in the vector part, row 3 in the tail, row 5 first.
        let x = with_nans(&mut rng, &sizes, &[11 + 2, 33 + 10, 55]);
        let k = check(&last, &[x], &sizes, 0.0);
        assert_eq!(k.vector_lanes(), 4);
        let want = eval(&last, &[with_nans(&mut rng, &sizes, &[13, 43, 55])], &sizes);
        assert!(want[1].is_nan() && want[3].is_nan() && want[5].is_nan() && !want[0].is_nan());
        let first = reduce(&[R, P], F32, "(d0, d1) -> (d0, d1)", "(d0, d1) -> (d1)", kind, init);
        let sizes = [5, 9];
        check(&first, &[with_nans(&mut rng, &sizes, &[0, 9 * 3 + 4, 44])], &sizes, 0.0);
        // An empty reduction leaves init.
        check(&last, &[rng.operand(&[3, 0])], &[3, 0], 0.0);
    }
}

#[test]
fn transposes_and_broadcasts() {
    let mut rng = Rng::new(6);
    let t = copy(&[P, P], F32, "(d0, d1) -> (d1, d0)", "(d0, d1) -> (d0, d1)");
    for sizes in [[5, 7], [1, 1], [8, 3]] {
        let k = check(&t, &[rng.operand(&[sizes[1], sizes[0]])], &sizes, 0.0);
        assert_eq!(k.vector_lanes(), 1);
    }
    // The transposed write: out[d1, d0] = x[d0, d1].
    let t = copy(&[P, P], F32, "(d0, d1) -> (d0, d1)", "(d0, d1) -> (d1, d0)");
    check(&t, &[rng.operand(&[4, 9])], &[4, 9], 0.0);
    // x + b with b a row ([1, C], the constant 0 result) and c a column.
    let mut g = GenericBuilder::new(&[P, P], F32).unwrap();
    let x = g.input(F32, map("(d0, d1) -> (d0, d1)"), None).unwrap();
    let b = g.input(F32, map("(d0, d1) -> (0, d1)"), None).unwrap();
    let c = g.input(F32, map("(d0, d1) -> (d0)"), None).unwrap();
    let s = g.op(OpKind::Add, &[x, b], Attrs::new()).unwrap();
    let s = g.op(OpKind::Mul, &[s, c], Attrs::new()).unwrap();
    let spec = g.finish(s, map("(d0, d1) -> (d0, d1)"), None).unwrap();
    for [r, cols] in [[3, 7], [1, 1], [5, 16], [2, 5]] {
        let ops = [rng.operand(&[r, cols]), rng.operand(&[1, cols]), rng.operand(&[r])];
        let k = check(&spec, &ops, &[r, cols], 0.0);
        assert_eq!(k.vector_lanes(), 4);
    }
}

#[test]
fn strided_and_offset_slices() {
    let mut rng = Rng::new(7);
    let spec = copy(&[P], F32, "(d0) -> (d0 * 2 + 1)", "(d0) -> (d0)");
    for n in [1, 5, 8] {
        check(&spec, &[rng.operand(&[2 * n])], &[n], 0.0);
    }
    // Plain dims that cover only part of the operand (x[1:, :5] of a [4, 7]).
    let spec = copy(&[P, P], F32, "(d0, d1) -> (d0 + 1, d1)", "(d0, d1) -> (d0, d1)");
    check(&spec, &[rng.operand(&[4, 7])], &[3, 5], 0.0);
    let spec = reduce(&[P, R], F32, "(d0, d1) -> (d0, d1)", "(d0, d1) -> (d0)", OpKind::Add, 0.0);
    let k = jit().compile_generic(&spec).unwrap();
    let x = rng.operand(&[3, 6]);
    let (got, want) = (run_jit(&k, std::slice::from_ref(&x), &[3, 6], None), eval(&spec, &[x], &[3, 6]));
    assert_close(&got, &want, 1e-5, "whole rows");
    // Reading only 4 of 6 columns: a call that would merge the loops must not.
    let x = rng.operand(&[3, 6]);
    let owned = Owned::new(F32, &x.data);
    let mut out = [0f32; 3];
    k.run(&[(owned.buffer(), &[3, 6])], (BufferMut::F32(&mut out), &[3]), &[3, 4]).unwrap();
    for (r, &o) in out.iter().enumerate() {
        let s: f64 = x.data[r * 6..r * 6 + 4].iter().sum();
        assert!((o as f64 - s).abs() < 1e-5, "row {r}: {o} vs {s}");
    }
}

#[test]
fn max_pooling_2x2_stride_2() {
    let mut g = GenericBuilder::new(&[P, P, P, P, R, R], F32).unwrap();
    let x = g.input(F32, map("(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2 * 2 + d4, d3 * 2 + d5)"), None).unwrap();
    let acc = g.acc().unwrap();
    let m = g.op(OpKind::Maximum, &[acc, x], Attrs::new()).unwrap();
    let spec = g.finish(m, map("(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2, d3)"), Some(f64::NEG_INFINITY)).unwrap();
    let mut rng = Rng::new(8);
    for [n, c, h, w] in [[2, 3, 7, 9], [1, 1, 2, 2], [3, 2, 8, 5]] {
        let x = with_nans(&mut rng, &[n, c, h, w], &[n * c * h * w / 2]);
        check(&spec, &[x], &[n, c, h / 2, w / 2, 2, 2], 0.0);
    }
}

/// The unrolled form `lower-kernels` gives small windows: one operand per
/// tap, strided along the innermost dim, folded with `maximum`. The body
/// computes, so the strided reads are gathered into vectors (4 lanes);
/// a transposed read feeding arithmetic likewise; NaNs propagate.
#[test]
fn strided_reads_feeding_arithmetic_are_gathered_into_vectors() {
    let mut g = GenericBuilder::new(&[P, P, P, P], F32).unwrap();
    let mut acc = None;
    for (kh, kw) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
        let t = g.input(F32, map(&format!("(d0, d1, d2, d3) -> (d0, d1, d2 * 2 + {kh}, d3 * 2 + {kw})")), None).unwrap();
        acc = Some(match acc {
            None => t,
            Some(a) => g.op(OpKind::Maximum, &[a, t], Attrs::new()).unwrap(),
        });
    }
    let spec = g.finish(acc.unwrap(), map("(d0, d1, d2, d3) -> (d0, d1, d2, d3)"), None).unwrap();
    let mut rng = Rng::new(21);
    for [n, c, h, w] in [[2, 3, 7, 19], [1, 1, 2, 2], [3, 2, 8, 10], [1, 2, 4, 17]] {
        let x = with_nans(&mut rng, &[n, c, h, w], &[n * c * h * w / 3]);
        let ops = vec![x.clone(), x.clone(), x.clone(), x];
        let k = check(&spec, &ops, &[n, c, h / 2, w / 2], 0.0);
        assert_eq!(k.vector_lanes(), 4);
    }
    // out = 2·xᵀ + y: the transposed read is gathered, y is loaded whole.
    let mut g = GenericBuilder::new(&[P, P], F32).unwrap();
    let x = g.input(F32, map("(d0, d1) -> (d1, d0)"), None).unwrap();
    let y = g.input(F32, map("(d0, d1) -> (d0, d1)"), None).unwrap();
    let two = g.constant(2.0, F32).unwrap();
    let m = g.op(OpKind::Mul, &[x, two], Attrs::new()).unwrap();
    let s = g.op(OpKind::Add, &[m, y], Attrs::new()).unwrap();
    let spec = g.finish(s, map("(d0, d1) -> (d0, d1)"), None).unwrap();
    for [r, c] in [[5, 7], [1, 1], [3, 8], [9, 13]] {
        let k = check(&spec, &[rng.operand(&[c, r]), rng.operand(&[r, c])], &[r, c], 0.0);
        assert_eq!(k.vector_lanes(), 4);
    }
}

/// The pooling gradient's scatter with its loops reordered so the long dim
/// is innermost (as the CPU backend orders it): the output is written every
/// other element (scattered lane by lane), one input is read along the
/// loop (a vector) and one is constant along it (a splat); and a transposed
/// write of computed values.
#[test]
fn strided_outputs_of_computed_values_are_scattered_from_vectors() {
    // out[d0, d3, d1, d2] = select(code[d0, d1] == k[d2], g[d0, d1], 0) over [n, ow, kw, kh]-like loops.
    let mut g = GenericBuilder::new(&[P, P, P, P], F32).unwrap();
    let code = g.input(F32, map("(d0, d1, d2, d3) -> (d0, d3)"), None).unwrap();
    let k = g.input(F32, map("(d0, d1, d2, d3) -> (d1, d2)"), None).unwrap();
    let grad = g.input(F32, map("(d0, d1, d2, d3) -> (d0, d3)"), None).unwrap();
    let eq = g.op(OpKind::Cmp, &[code, k], attrs! {"predicate" => "eq"}).unwrap();
    let zero = g.constant(0.0, F32).unwrap();
    let y = g.op(OpKind::Select, &[eq, grad, zero], Attrs::new()).unwrap();
    let spec = g.finish(y, map("(d0, d1, d2, d3) -> (d0, d1, d3, d2)"), None).unwrap();
    let mut rng = Rng::new(22);
    for [n, ow] in [[3, 13], [1, 5], [2, 4], [2, 1]] {
        let codes = Operand { shape: vec![n, ow], data: (0..n * ow).map(|i| ((i * 7) % 4) as f64).collect() };
        let ks = Operand { shape: vec![2, 2], data: vec![0.0, 1.0, 2.0, 3.0] };
        let k = check(&spec, &[codes, ks, rng.operand(&[n, ow])], &[n, 2, 2, ow], 0.0);
        assert_eq!(k.vector_lanes(), 4);
    }
    let mut g = GenericBuilder::new(&[P, P], F32).unwrap();
    let x = g.input(F32, map("(d0, d1) -> (d0, d1)"), None).unwrap();
    let e = g.op(OpKind::Exp, &[x], Attrs::new()).unwrap();
    let spec = g.finish(e, map("(d0, d1) -> (d1, d0)"), None).unwrap();
    for [r, c] in [[3, 9], [1, 1], [4, 4], [7, 2]] {
        let k = check(&spec, &[rng.operand(&[r, c])], &[r, c], 1e-6);
        assert_eq!(k.vector_lanes(), 4);
    }
}

/// A sum widened to f64 (`acc + cast(t)`, as `lower-kernels` writes f32
/// sums): the f32 term runs on `f32x4`, its halves promoted into `f64x2`
/// partial sums; over rows, columns and both, with tails, and against the
/// sequential sum within f64 rounding of the reassociation.
#[test]
fn widened_sums_run_the_f32_term_on_vectors() {
    let mut rng = Rng::new(23);
    for (iters, out_map, sizes) in [
        // Rows of 37 (four pairs of vectors, an odd one, a tail), 4 (one
        // vector, no pair), 8 and 24 (whole pairs, nothing left), 3 (no
        // vector), 13 (a pair, an odd one, a tail).
        (&[P, R][..], "(d0, d1) -> (d0)", vec![5usize, 37]),
        (&[P, R][..], "(d0, d1) -> (d0)", vec![3, 4]),
        (&[P, R][..], "(d0, d1) -> (d0)", vec![4, 8]),
        (&[P, R][..], "(d0, d1) -> (d0)", vec![2, 24]),
        (&[P, R][..], "(d0, d1) -> (d0)", vec![2, 3]),
        (&[R, P, R][..], "(d0, d1, d2) -> (d1)", vec![3, 5, 13]),
    ] {
        let rank = iters.len();
        let dims = (0..rank).map(|k| format!("d{k}")).collect::<Vec<_>>().join(", ");
        let in_map = format!("({dims}) -> ({dims})");
        // 2·x is exact in f32, so the sums agree to f64 rounding; exp(x)
        // brings the polynomial's few ulps of f32.
        for (with_exp, rtol) in [(false, 1e-13), (true, 1e-6)] {
            let mut g = GenericBuilder::new(iters, F64).unwrap();
            let x = g.input(F32, map(&in_map), None).unwrap();
            let acc = g.acc().unwrap();
            let e = if with_exp { g.op(OpKind::Exp, &[x], Attrs::new()).unwrap() } else { x };
            let two = g.constant(2.0, F32).unwrap();
            let t = g.op(OpKind::Mul, &[e, two], Attrs::new()).unwrap();
            let w = g.op(OpKind::Cast, &[t], attrs! {"dtype" => F64}).unwrap();
            let s = g.op(OpKind::Add, &[acc, w], Attrs::new()).unwrap();
            let spec = g.finish(s, map(out_map), Some(0.0)).unwrap();
            let k = check(&spec, &[rng.operand(&sizes)], &sizes, rtol);
            assert_eq!(k.vector_lanes(), 4, "{iters:?}");
        }
    }
}

/// The same widened sum with the reduction outside the innermost dim (a
/// bias gradient's column sum over the batch, or a middle axis): the term
/// on `f32x4`, added to four f64 output elements at a time, each element
/// still summed in the reduction's order, so the bits are the sequential
/// sum's; a masked term (`select(p > 0, g, 0)`, the pooled bias gradient)
/// too, with tails of every length.
#[test]
fn widened_column_sums_run_the_f32_term_on_vectors() {
    let mut rng = Rng::new(24);
    for (iters, in_map, out_map, sizes) in [
        (&[R, P][..], "(d0, d1) -> (d0, d1)", "(d0, d1) -> (d1)", vec![5usize, 37]),
        (&[R, P][..], "(d0, d1) -> (d0, d1)", "(d0, d1) -> (d1)", vec![3, 4]),
        (&[R, P][..], "(d0, d1) -> (d0, d1)", "(d0, d1) -> (d1)", vec![64, 256]),
        (&[R, P][..], "(d0, d1) -> (d0, d1)", "(d0, d1) -> (d1)", vec![2, 3]),
        (&[P, R, P][..], "(d0, d1, d2) -> (d0, d1, d2)", "(d0, d1, d2) -> (d0, d2)", vec![3, 5, 13]),
        // The mask from a per-row value, hoisted and splat along the row.
        (&[R, P][..], "(d0, d1) -> (d0, d1)", "(d0, d1) -> (d1)", vec![6, 21]),
    ] {
        let row_mask = sizes == [6, 21];
        for (term, rtol) in [("2x", 0.0), ("mask", 0.0), ("exp", 1e-6)] {
            let mut g = GenericBuilder::new(iters, F64).unwrap();
            let x = g.input(F32, map(in_map), None).unwrap();
            let y = g.input(F32, map(if row_mask { "(d0, d1) -> (d0)" } else { in_map }), None).unwrap();
            let acc = g.acc().unwrap();
            let t = match term {
                "2x" => {
                    let two = g.constant(2.0, F32).unwrap();
                    g.op(OpKind::Mul, &[x, two], Attrs::new()).unwrap()
                }
                "mask" => {
                    let zero = g.constant(0.0, F32).unwrap();
                    let m = g.op(OpKind::Cmp, &[y, zero], attrs! {"predicate" => "gt"}).unwrap();
                    g.op(OpKind::Select, &[m, x, zero], Attrs::new()).unwrap()
                }
                _ => g.op(OpKind::Exp, &[x], Attrs::new()).unwrap(),
            };
            let w = g.op(OpKind::Cast, &[t], attrs! {"dtype" => F64}).unwrap();
            let s = g.op(OpKind::Add, &[acc, w], Attrs::new()).unwrap();
            // A nonzero start for the row-mask case.
            let spec = g.finish(s, map(out_map), Some(if row_mask { 0.5 } else { 0.0 })).unwrap();
            let y_shape = if row_mask { vec![sizes[0]] } else { sizes.clone() };
            let k = check(&spec, &[rng.operand(&sizes), rng.operand(&y_shape)], &sizes, rtol);
            assert_eq!(k.vector_lanes(), 4, "{iters:?} {term}");
        }
    }
}

#[test]
fn pooling_3x3_over_padding() {
    let mut rng = Rng::new(9);
    // Max pooling, stride 1, padding 1: pad reads are -inf.
    let mut g = GenericBuilder::new(&[P, P, P, P, R, R], F32).unwrap();
    let x = g.input(F32, map("(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2 + d4 - 1, d3 + d5 - 1)"), Some(f64::NEG_INFINITY)).unwrap();
    let acc = g.acc().unwrap();
    let m = g.op(OpKind::Maximum, &[acc, x], Attrs::new()).unwrap();
    let spec = g.finish(m, map("(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2, d3)"), Some(f64::NEG_INFINITY)).unwrap();
    for [n, c, h, w] in [[2, 3, 5, 7], [1, 1, 1, 1], [1, 2, 4, 3]] {
        let k = check(&spec, &[rng.operand(&[n, c, h, w])], &[n, c, h, w, 3, 3], 0.0);
        assert_eq!(k.vector_lanes(), 1);
    }
    // Average pooling, stride 2, padding 1 (count including padding): acc + x/9.
    let mut g = GenericBuilder::new(&[P, P, P, P, R, R], F32).unwrap();
    let x = g.input(F32, map("(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2 * 2 + d4 - 1, d3 * 2 + d5 - 1)"), Some(0.0)).unwrap();
    let acc = g.acc().unwrap();
    let ninth = g.constant(1.0 / 9.0, F32).unwrap();
    let t = g.op(OpKind::Mul, &[x, ninth], Attrs::new()).unwrap();
    let s = g.op(OpKind::Add, &[acc, t], Attrs::new()).unwrap();
    let spec = g.finish(s, map("(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2, d3)"), Some(0.0)).unwrap();
    for [n, c, h, w] in [[2, 3, 7, 9], [1, 1, 2, 2]] {
        let (oh, ow) = ((h + 2 - 3) / 2 + 1, (w + 2 - 3) / 2 + 1);
        check(&spec, &[rng.operand(&[n, c, h, w])], &[n, c, oh, ow, 3, 3], 1e-6);
    }
    // A padded row read (the check does not depend on the inner index):
    // the inner loop still vectorizes. out[i, j] = x[i - 1, j] or 7.
    let mut g = GenericBuilder::new(&[P, P], F32).unwrap();
    let x = g.input(F32, map("(d0, d1) -> (d0 - 1, d1)"), Some(7.0)).unwrap();
    let spec = g.finish(x, map("(d0, d1) -> (d0, d1)"), None).unwrap();
    let k = check(&spec, &[rng.operand(&[3, 9])], &[4, 9], 0.0);
    assert_eq!(k.vector_lanes(), 4);
    // An operand that is all padding, even with no elements.
    check(&spec, &[rng.operand(&[0, 9])], &[1, 9], 0.0);
    // A concatenation with fills: x [2, 3] then two 7s per row is a plain-dim
    // read that runs past x's last dim, checked per element.
    let mut g = GenericBuilder::new(&[P, P], F32).unwrap();
    let x = g.padded_input(F32, map("(d0, d1) -> (d0, d1)"), Some(7.0), &[1]).unwrap();
    let spec = g.finish(x, map("(d0, d1) -> (d0, d1)"), None).unwrap();
    check(&spec, &[rng.operand(&[2, 3])], &[2, 5], 0.0);
    check(&spec, &[rng.operand(&[5, 1])], &[5, 6], 0.0);
    // Unchecked, the same read is an error, not a wild read.
    let mut g = GenericBuilder::new(&[P, P], F32).unwrap();
    let x = g.input(F32, map("(d0, d1) -> (d0, d1)"), Some(7.0)).unwrap();
    let spec = g.finish(x, map("(d0, d1) -> (d0, d1)"), None).unwrap();
    let k = Jit::new().unwrap().compile_generic(&spec).unwrap();
    let mut out = vec![0f32; 10];
    assert!(k.run(&[(Buffer::F32(&[1.0; 6]), &[2, 3])], (BufferMut::F32(&mut out), &[2, 5]), &[2, 5]).is_err());
    assert!(GenericBuilder::new(&[P, P], F32).unwrap().padded_input(F32, map("(d0, d1) -> (d0, d1)"), None, &[1]).is_err());
}

#[test]
fn a_softmax_chain() {
    let mut rng = Rng::new(10);
    let rows = [P, R];
    let id = "(d0, d1) -> (d0, d1)";
    let row = "(d0, d1) -> (d0)";
    let max = reduce(&rows, F32, id, row, OpKind::Maximum, f64::NEG_INFINITY);
    // sum_j exp(x[i, j] - m[i])
    let mut g = GenericBuilder::new(&rows, F32).unwrap();
    let x = g.input(F32, map(id), None).unwrap();
    let m = g.input(F32, map(row), None).unwrap();
    let acc = g.acc().unwrap();
    let d = g.op(OpKind::Sub, &[x, m], Attrs::new()).unwrap();
    let e = g.op(OpKind::Exp, &[d], Attrs::new()).unwrap();
    let s = g.op(OpKind::Add, &[acc, e], Attrs::new()).unwrap();
    let sum = g.finish(s, map(row), Some(0.0)).unwrap();
    // exp(x - m) / s
    let mut g = GenericBuilder::new(&[P, P], F32).unwrap();
    let x = g.input(F32, map(id), None).unwrap();
    let m = g.input(F32, map(row), None).unwrap();
    let s = g.input(F32, map(row), None).unwrap();
    let d = g.op(OpKind::Sub, &[x, m], Attrs::new()).unwrap();
    let e = g.op(OpKind::Exp, &[d], Attrs::new()).unwrap();
    let y = g.op(OpKind::Div, &[e, s], Attrs::new()).unwrap();
    let norm = g.finish(y, map(id), None).unwrap();
    let kernels: Vec<_> = [&max, &sum, &norm].iter().map(|s| jit().compile_generic(s).unwrap()).collect();
    assert!(kernels.iter().all(|k| k.vector_lanes() == 4));
    for [r, c] in [[5, 10], [1, 1], [3, 37]] {
        let mut x = rng.operand(&[r, c]);
        x.data.iter_mut().for_each(|v| *v *= 20.0);
        let m = Operand::new(run_jit(&kernels[0], &[x.clone()], &[r, c], None), &[r]);
        assert_close(&m.data, &eval(&max, &[x.clone()], &[r, c]), 0.0, "max");
        let s = Operand::new(run_jit(&kernels[1], &[x.clone(), m.clone()], &[r, c], None), &[r]);
        assert_close(&s.data, &eval(&sum, &[x.clone(), m.clone()], &[r, c]), 1e-5, "sum");
        let y = run_jit(&kernels[2], &[x.clone(), m.clone(), s.clone()], &[r, c], None);
        assert_close(&y, &eval(&norm, &[x, m, s], &[r, c]), 1e-5, "softmax");
        for i in 0..r {
            let total: f64 = y[i * c..(i + 1) * c].iter().sum();
            assert!((total - 1.0).abs() < 1e-5, "row {i} sums to {total}");
        }
    }
}

#[test]
fn f64_kernels() {
    let mut rng = Rng::new(11);
    let spec = reduce(&[P, R], F64, "(d0, d1) -> (d0, d1)", "(d0, d1) -> (d0)", OpKind::Add, 1.0);
    for sizes in [[3, 7], [2, 1], [4, 10]] {
        let k = check(&spec, &[rng.operand(&sizes)], &sizes, 1e-14);
        assert_eq!(k.vector_lanes(), 2);
    }
    let spec = reduce(&[R, P, R, R], F64, "(d0, d1, d2, d3) -> (d0, d1, d2, d3)", "(d0, d1, d2, d3) -> (d1)", OpKind::Maximum, f64::NEG_INFINITY);
    check(&spec, &[rng.operand(&[3, 4, 5, 3])], &[3, 4, 5, 3], 0.0);
    // sum(x·y) over the last axis: one fma per lane.
    let mut g = GenericBuilder::new(&[P, R], F64).unwrap();
    let x = g.input(F64, map("(d0, d1) -> (d0, d1)"), None).unwrap();
    let y = g.input(F64, map("(d0, d1) -> (d1)"), None).unwrap();
    let acc = g.acc().unwrap();
    let p = g.op(OpKind::Mul, &[x, y], Attrs::new()).unwrap();
    let s = g.op(OpKind::Add, &[p, acc], Attrs::new()).unwrap();
    let spec = g.finish(s, map("(d0, d1) -> (d0)"), Some(0.0)).unwrap();
    let k = check(&spec, &[rng.operand(&[5, 9]), rng.operand(&[9])], &[5, 9], 1e-14);
    assert_eq!(k.vector_lanes(), 2);
}

#[test]
fn i1_operands() {
    let mut rng = Rng::new(12);
    // select(mask[j], x, -x): a mask broadcast over rows.
    let mut g = GenericBuilder::new(&[P, P], F32).unwrap();
    let m = g.input(DType::I1, map("(d0, d1) -> (d1)"), None).unwrap();
    let x = g.input(F32, map("(d0, d1) -> (d0, d1)"), None).unwrap();
    let nx = g.op(OpKind::Neg, &[x], Attrs::new()).unwrap();
    let y = g.op(OpKind::Select, &[m, x, nx], Attrs::new()).unwrap();
    let spec = g.finish(y, map("(d0, d1) -> (d0, d1)"), None).unwrap();
    for [r, c] in [[3, 7], [1, 1], [2, 9]] {
        check(&spec, &[rng.mask(&[c]), rng.operand(&[r, c])], &[r, c], 0.0);
    }
    // Counting trues per row, and an i1 output (x > 0).
    let mut g = GenericBuilder::new(&[P, R], F32).unwrap();
    let m = g.input(DType::I1, map("(d0, d1) -> (d0, d1)"), None).unwrap();
    let acc = g.acc().unwrap();
    let f = g.op(OpKind::Cast, &[m], attrs! {"dtype" => F32}).unwrap();
    let s = g.op(OpKind::Add, &[acc, f], Attrs::new()).unwrap();
    let spec = g.finish(s, map("(d0, d1) -> (d0)"), Some(0.0)).unwrap();
    check(&spec, &[rng.mask(&[4, 11])], &[4, 11], 0.0);
    let mut g = GenericBuilder::new(&[P, P], DType::I1).unwrap();
    let x = g.input(F32, map("(d0, d1) -> (d1, d0)"), None).unwrap();
    let z = g.constant(0.0, F32).unwrap();
    let y = g.op(OpKind::Cmp, &[x, z], attrs! {"predicate" => "gt"}).unwrap();
    let spec = g.finish(y, map("(d0, d1) -> (d0, d1)"), None).unwrap();
    check(&spec, &[rng.operand(&[5, 3])], &[3, 5], 0.0);
}

/// i64 operands (an argmax and the labels of a train step's accuracy
/// count): compared and cast, in scalar loops; any other use is refused,
/// so the CPU backend falls back to the interpreter for it.
#[test]
fn i64_operands_are_compared_and_cast_in_scalar_loops() {
    // Σ (guess == label) into f64, as the train step counts correct rows.
    let mut g = GenericBuilder::new(&[R], DType::F64).unwrap();
    let a = g.input(DType::I64, map("(d0) -> (d0)"), None).unwrap();
    let b = g.input(DType::I64, map("(d0) -> (d0)"), None).unwrap();
    let acc = g.acc().unwrap();
    let eq = g.op(OpKind::Cmp, &[a, b], attrs! {"predicate" => "eq"}).unwrap();
    let f = g.op(OpKind::Cast, &[eq], attrs! {"dtype" => DType::F64}).unwrap();
    let s = g.op(OpKind::Add, &[acc, f], Attrs::new()).unwrap();
    let spec = g.finish(s, map("(d0) -> ()"), Some(0.0)).unwrap();
    let guesses = Operand::new((0..67).map(|i| ((i * 7) % 10) as f64).collect(), &[67]);
    let labels = Operand::new((0..67).map(|i| (i % 10) as f64).collect(), &[67]);
    let k = check(&spec, &[guesses, labels], &[67], 0.0);
    assert_eq!(k.vector_lanes(), 1, "i64 operands run scalar");
    // Every predicate on signed values (negative, past 2^32), a cast of
    // each side to f32 and to i1.
    let values = [-3.0, 5.0, 1099511627776.0, -1099511627775.0, 0.0, 7.0, 5.0, -3.0, 4294967297.0];
    let other = [5.0, 5.0, -1099511627775.0, 1099511627776.0, 0.0, -7.0, 4.0, -2.0, 4294967296.0];
    for p in ["eq", "ne", "lt", "le", "gt", "ge"] {
        let mut g = GenericBuilder::new(&[P], F32).unwrap();
        let a = g.input(DType::I64, map("(d0) -> (d0)"), None).unwrap();
        let b = g.input(DType::I64, map("(d0) -> (d0)"), None).unwrap();
        let c = g.op(OpKind::Cmp, &[a, b], attrs! {"predicate" => p}).unwrap();
        let (fa, fb) = (g.op(OpKind::Cast, &[a], attrs! {"dtype" => F32}).unwrap(), g.op(OpKind::Cast, &[b], attrs! {"dtype" => F32}).unwrap());
        let nz = g.op(OpKind::Cast, &[a], attrs! {"dtype" => DType::I1}).unwrap();
        let picked = g.op(OpKind::Select, &[c, fa, fb], Attrs::new()).unwrap();
        let neg = g.op(OpKind::Neg, &[picked], Attrs::new()).unwrap();
        let y = g.op(OpKind::Select, &[nz, picked, neg], Attrs::new()).unwrap();
        let spec = g.finish(y, map("(d0) -> (d0)"), None).unwrap();
        check(&spec, &[Operand::new(values.to_vec(), &[9]), Operand::new(other.to_vec(), &[9])], &[9], 0.0);
    }
    // Refused: arithmetic on i64, an i64 result, a padded i64 input.
    let mut g = GenericBuilder::new(&[P], F32).unwrap();
    let a = g.input(DType::I64, map("(d0) -> (d0)"), None).unwrap();
    assert!(g.op(OpKind::Add, &[a, a], Attrs::new()).is_err());
    assert!(g.op(OpKind::Neg, &[a], Attrs::new()).is_err());
    assert!(g.input(DType::I64, map("(d0) -> (d0)"), Some(0.0)).is_err());
    assert!(GenericBuilder::new(&[P], DType::I64).is_err());
}

#[test]
fn a_sequential_accumulator_keeps_the_visit_order() {
    // acc·0.5 + x is not a fold that lanes may split: it runs scalar, in order.
    let mut g = GenericBuilder::new(&[P, R], F32).unwrap();
    let x = g.input(F32, map("(d0, d1) -> (d0, d1)"), None).unwrap();
    let acc = g.acc().unwrap();
    let half = g.constant(0.5, F32).unwrap();
    let t = g.op(OpKind::Mul, &[acc, half], Attrs::new()).unwrap();
    let s = g.op(OpKind::Add, &[t, x], Attrs::new()).unwrap();
    let spec = g.finish(s, map("(d0, d1) -> (d0)"), Some(3.0)).unwrap();
    let k = check(&spec, &[Rng::new(13).operand(&[4, 9])], &[4, 9], 1e-6);
    assert_eq!(k.vector_lanes(), 1);
}

#[test]
fn row_ranges_on_threads_equal_one_run() {
    let mut rng = Rng::new(14);
    let spec = reduce(&[P, R, R], F32, "(d0, d1, d2) -> (d0, d1, d2)", "(d0, d1, d2) -> (d0)", OpKind::Add, 0.0);
    let k = jit().compile_generic(&spec).unwrap();
    assert!(k.splits_rows());
    let sizes = [37, 5, 13];
    let x = Owned::new(F32, &rng.operand(&sizes).data);
    let mut whole = vec![0f32; 37];
    k.run(&[(x.buffer(), &sizes)], (BufferMut::F32(&mut whole), &[37]), &sizes).unwrap();
    let mut split = vec![0f32; 37];
    std::thread::scope(|s| {
        for (t, chunk) in split.chunks_mut(10).enumerate() {
            let (k, x) = (&k, &x);
            s.spawn(move || {
                let lo = t * 10;
                let hi = lo + chunk.len();
                k.run_range(&[(x.buffer(), &sizes)], (BufferMut::F32(chunk), &[37]), &sizes, lo..hi).unwrap();
            });
        }
    });
    assert_eq!(whole, split);
}

#[test]
fn malformed_calls_are_errors() {
    let spec = reduce(&[P, R], F32, "(d0, d1) -> (d0, d1 + 1)", "(d0, d1) -> (d0)", OpKind::Add, 0.0);
    let k = jit().compile_generic(&spec).unwrap();
    let x = vec![1f32; 12];
    let mut out = vec![9f32; 3];
    let run = |x: &[f32], xs: &[usize], out: &mut [f32], os: &[usize], sizes: &[usize]| k.run(&[(Buffer::F32(x), xs)], (BufferMut::F32(out), os), sizes);
    assert!(matches!(run(&x, &[3, 4], &mut out, &[3], &[3, 3]), Ok(())));
    assert_eq!(out, [3.0; 3]);
    out.fill(9.0);
    assert!(matches!(run(&x, &[3, 4], &mut out, &[3], &[3, 4]), Err(JitError::Shape { .. })), "d1 + 1 reaches 4");
    assert!(matches!(run(&x, &[4, 3], &mut out, &[3], &[3, 3]), Err(JitError::Shape { .. })), "d1 + 1 reaches 3");
    assert!(matches!(run(&x, &[3, 4], &mut out, &[3], &[4, 3]), Err(JitError::Shape { .. })), "d0 reaches 3; output of 4");
    assert!(matches!(run(&x[..11], &[3, 4], &mut out, &[3], &[3, 3]), Err(JitError::Len { .. })));
    assert!(matches!(run(&x, &[12], &mut out, &[3], &[3, 3]), Err(JitError::Shape { .. })), "rank 1 for a rank-2 map");
    assert!(matches!(run(&x, &[3, 4], &mut out[..2], &[3], &[3, 3]), Err(JitError::Len { .. })));
    assert!(matches!(run(&x, &[3, 4], &mut out, &[2], &[3, 3]), Err(JitError::Shape { .. })), "output shape is not [3]");
    assert!(matches!(run(&x, &[3, 4], &mut out, &[3], &[3]), Err(JitError::Rank { .. })));
    assert!(matches!(run(&x, &[3, 4], &mut out, &[3], &[usize::MAX, 2]), Err(JitError::TooLarge(_))));
    assert!(matches!(k.run(&[], (BufferMut::F32(&mut out), &[3]), &[3, 3]), Err(JitError::InputCount { .. })));
    let xd = vec![1f64; 12];
    assert!(matches!(k.run(&[(Buffer::F64(&xd), &[3, 4])], (BufferMut::F32(&mut out), &[3]), &[3, 3]), Err(JitError::DType { .. })));
    assert!(matches!(k.run(&[(Buffer::F32(&x), &[3, 4])], (BufferMut::F64(&mut [0.0; 3]), &[3]), &[3, 3]), Err(JitError::DType { .. })));
    let range = |out: &mut [f32], r: std::ops::Range<usize>| k.run_range(&[(Buffer::F32(&x), &[3, 4])], (BufferMut::F32(out), &[3]), &[3, 3], r);
    #[allow(clippy::reversed_empty_ranges)]
    let backwards = 2..1;
    assert!(matches!(range(&mut out[..1], backwards), Err(JitError::Shape { .. })));
    assert!(matches!(range(&mut out[..1], 2..4), Err(JitError::Shape { .. })));
    assert!(matches!(range(&mut out[..2], 1..2), Err(JitError::Len { .. })), "one row, two elements");
    assert!(out.iter().all(|&v| v == 9.0), "nothing ran");
    range(&mut out[1..2], 1..2).unwrap();
    assert_eq!(out, [9.0, 3.0, 9.0]);
    // A kernel whose output rows are not dim 0 runs only whole.
    let t = jit().compile_generic(&reduce(&[R, P], F32, "(d0, d1) -> (d0, d1)", "(d0, d1) -> (d1)", OpKind::Add, 0.0)).unwrap();
    assert!(matches!(t.run_range(&[(Buffer::F32(&x), &[3, 4])], (BufferMut::F32(&mut [0.0; 4]), &[4]), &[3, 4], 0..1), Err(JitError::Shape { .. })));
    t.run_range(&[(Buffer::F32(&x), &[3, 4])], (BufferMut::F32(&mut [0.0; 4]), &[4]), &[3, 4], 0..3).unwrap();
    // A strided read past the end.
    let s = jit().compile_generic(&copy(&[P], F32, "(d0) -> (d0 * 2 + 1)", "(d0) -> (d0)")).unwrap();
    s.run(&[(Buffer::F32(&x[..6]), &[6])], (BufferMut::F32(&mut out[..]), &[3]), &[3]).unwrap();
    assert!(matches!(s.run(&[(Buffer::F32(&x[..5]), &[5])], (BufferMut::F32(&mut out[..]), &[3]), &[3]), Err(JitError::Shape { .. })));
}

#[test]
fn empty_spaces_write_init_or_nothing() {
    let spec = reduce(&[P, R], F32, "(d0, d1) -> (d0, d1)", "(d0, d1) -> (d0)", OpKind::Add, 2.5);
    let k = jit().compile_generic(&spec).unwrap();
    let mut out = [0f32; 3];
    k.run(&[(Buffer::F32(&[]), &[3, 0])], (BufferMut::F32(&mut out), &[3]), &[3, 0]).unwrap();
    assert_eq!(out, [2.5; 3]);
    k.run(&[(Buffer::F32(&[]), &[0, 5])], (BufferMut::F32(&mut []), &[0]), &[0, 5]).unwrap();
}

/// `x * y + z`, `z - x` (written transposed when `transposed`) and
/// `sqrt(|x|)` over `[P, P]`: with `only = Some(r)`, just output `r` (the
/// single-output kernel the reference evaluates).
fn three_outputs(dtype: DType, transposed: bool, only: Option<usize>) -> GenericSpec {
    let mut g = GenericBuilder::new(&[P, P], dtype).unwrap();
    let x = g.input(dtype, map("(d0, d1) -> (d0, d1)"), None).unwrap();
    let y = g.input(dtype, map("(d0, d1) -> (d1)"), None).unwrap();
    let z = g.input(dtype, map("(d0, d1) -> (d0, d1)"), None).unwrap();
    let xy = g.op(OpKind::Mul, &[x, y], Attrs::new()).unwrap();
    let a = g.op(OpKind::Add, &[xy, z], Attrs::new()).unwrap();
    let b = g.op(OpKind::Sub, &[z, x], Attrs::new()).unwrap();
    let ax = g.op(OpKind::Abs, &[x], Attrs::new()).unwrap();
    let c = g.op(OpKind::Sqrt, &[ax], Attrs::new()).unwrap();
    let b_map = if transposed { "(d0, d1) -> (d1, d0)" } else { "(d0, d1) -> (d0, d1)" };
    let outs = [(a, map("(d0, d1) -> (d0, d1)")), (b, map(b_map)), (c, map("(d0, d1) -> (d0, d1)"))];
    match only {
        Some(r) => g.finish_outputs(&outs[r..=r], None).unwrap(),
        None => g.finish_outputs(&outs, None).unwrap(),
    }
}

#[test]
fn several_outputs_from_one_loop_nest_match_each_output_alone() {
    let mut rng = Rng::new(21);
    for dtype in [F32, F64] {
        for transposed in [false, true] {
            for (rows, cols) in [(1, 1), (3, 5), (2, 4), (7, 13), (1, 9)] {
                let spec = three_outputs(dtype, transposed, None);
                let k = jit().compile_generic(&spec).unwrap();
                // Vectors as for one output; a transposed output is scattered lane by lane.
                assert_eq!(k.vector_lanes(), if dtype == F32 { 4 } else { 2 }, "{dtype} transposed {transposed}");
                let sizes = [rows, cols];
                let inputs = vec![rng.operand(&[rows, cols]), rng.operand(&[cols]), rng.operand(&[rows, cols])];
                let owned = input_buffers(&spec, &inputs);
                let ins: Vec<(dlc_jit::Source<'_>, &[usize])> = owned.iter().zip(&inputs).map(|(b, o)| (dlc_jit::Source::Buffer(b.buffer()), o.shape.as_slice())).collect();
                let shapes: Vec<Vec<usize>> = spec.outputs().iter().map(|o| o.map.results.iter().map(|e| sizes[e.as_dim().unwrap()]).collect()).collect();
                let mut outs: Vec<Owned> = shapes.iter().map(|s| Owned::new(dtype, &vec![f64::NAN; s.iter().product()])).collect();
                let bufs: Vec<(BufferMut<'_>, &[usize])> = outs.iter_mut().zip(&shapes).map(|(o, s)| (o.buffer_mut(), s.as_slice())).collect();
                k.run_outputs(&ins, bufs, &sizes, 0..rows).unwrap();
                for (r, out) in outs.iter().enumerate() {
                    let want = eval(&three_outputs(dtype, transposed, Some(r)), &inputs, &sizes);
                    assert_close(&out.to_f64(), &want, 1e-6, &format!("{dtype} {rows}x{cols} transposed {transposed}: output {r}"));
                }
                // In place: `x*y + z` over z's buffer, read through output 0.
                if !transposed {
                    let mut z = Owned::new(dtype, &inputs[2].data);
                    let mut rest: Vec<Owned> = shapes[1..].iter().map(|s| Owned::new(dtype, &vec![f64::NAN; s.iter().product()])).collect();
                    let mut ins = ins.clone();
                    ins[2].0 = dlc_jit::Source::Output(0);
                    let mut bufs: Vec<(BufferMut<'_>, &[usize])> = vec![(z.buffer_mut(), shapes[0].as_slice())];
                    bufs.extend(rest.iter_mut().zip(&shapes[1..]).map(|(o, s)| (o.buffer_mut(), s.as_slice())));
                    k.run_outputs(&ins, bufs, &sizes, 0..rows).unwrap();
                    assert_close(&z.to_f64(), &outs[0].to_f64(), 0.0, "in place, output 0");
                    assert_close(&rest[0].to_f64(), &outs[1].to_f64(), 0.0, "in place, output 1");
                }
            }
        }
    }
}

#[test]
fn several_outputs_are_checked_like_one() {
    let spec = three_outputs(F32, true, None);
    let k = jit().compile_generic(&spec).unwrap();
    let (x, y, z) = (vec![1.0f32; 6], vec![1.0f32; 3], vec![1.0f32; 6]);
    let ins = [(dlc_jit::Source::Buffer(Buffer::F32(&x)), &[2usize, 3][..]), (dlc_jit::Source::Buffer(Buffer::F32(&y)), &[3][..]), (dlc_jit::Source::Buffer(Buffer::F32(&z)), &[2, 3][..])];
    let (mut a, mut b, mut c) = (vec![0.0f32; 6], vec![0.0f32; 6], vec![0.0f32; 6]);
    // Output 1 is transposed: [3, 2], not [2, 3].
    let err = k.run_outputs(&ins, vec![(BufferMut::F32(&mut a), &[2, 3]), (BufferMut::F32(&mut b), &[2, 3]), (BufferMut::F32(&mut c), &[2, 3])], &[2, 3], 0..2).unwrap_err();
    assert!(err.to_string().contains("output 1"), "{err}");
    let err = k.run_outputs(&ins, vec![(BufferMut::F32(&mut a), &[2, 3])], &[2, 3], 0..2).unwrap_err();
    assert!(err.to_string().contains("1 output buffers for 3 outputs"), "{err}");
    // In place only through the output's own map: output 1 is transposed.
    let mut moved = ins;
    moved[2].0 = dlc_jit::Source::Output(1);
    let err = k.run_outputs(&moved, vec![(BufferMut::F32(&mut a), &[2, 3]), (BufferMut::F32(&mut b), &[3, 2]), (BufferMut::F32(&mut c), &[2, 3])], &[2, 3], 0..2).unwrap_err();
    assert!(err.to_string().contains("cannot be read in place from output 1"), "{err}");
    // And a reduction has one output.
    let mut g = GenericBuilder::new(&[P, R], F32).unwrap();
    let x = g.input(F32, map("(d0, d1) -> (d0, d1)"), None).unwrap();
    assert!(g.finish_outputs(&[(x, map("(d0, d1) -> (d0)")), (x, map("(d0, d1) -> (d0)"))], Some(0.0)).is_err());
}
