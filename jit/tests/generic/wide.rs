//! The wide (256-bit AVX) code of flat f32 maps against the Cranelift code
//! of the same spec and against the reference: the same bits, for every
//! op of the form, an Adam update, tails of every length, row splits,
//! in-place outputs and both fma settings; and the forms that must keep
//! the Cranelift code.

use super::reference::*;
use super::{P, R, map};
use dlc_ir::{Attrs, DType, OpKind};
use dlc_jit::{BufferMut, CompiledGeneric, GenericBuilder, GenericSpec, Jit, JitOptions, NodeId, Source};
use std::sync::OnceLock;

use DType::F32;

/// JITs with the wide code on and off, with and without fma contraction.
fn jits(fma: bool) -> (&'static Jit, &'static Jit) {
    static JITS: OnceLock<[Jit; 4]> = OnceLock::new();
    let j = JITS.get_or_init(|| {
        let make = |fma, wide| Jit::with_options(JitOptions { fma, wide, ..JitOptions::default() }).expect("the host is supported");
        [make(false, true), make(false, false), make(true, true), make(true, false)]
    });
    if fma { (&j[2], &j[3]) } else { (&j[0], &j[1]) }
}

/// True where the wide code can exist: tests that need it say so when it cannot.
fn avx() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Adam's update as dlc's train step writes it (`dlc compile --emit
/// train-kernel`): inputs `p, step, m, g, v, c` (`step` and `c` rank-0),
/// outputs `p + step·m' / (sqrt(v')/c + eps)`, `v'`, `m'`. With `only`,
/// just that output.
fn adam(only: Option<usize>) -> GenericSpec {
    let mut g = GenericBuilder::new(&[P, P], F32).unwrap();
    let full = || map("(d0, d1) -> (d0, d1)");
    let p = g.input(F32, full(), None).unwrap();
    let step = g.input(F32, map("(d0, d1) -> ()"), None).unwrap();
    let m = g.input(F32, full(), None).unwrap();
    let gr = g.input(F32, full(), None).unwrap();
    let v = g.input(F32, full(), None).unwrap();
    let c = g.input(F32, map("(d0, d1) -> ()"), None).unwrap();
    let op = |g: &mut GenericBuilder, k: OpKind, a: &[NodeId]| g.op(k, a, Attrs::new()).unwrap();
    let d = op(&mut g, OpKind::Sub, &[gr, m]);
    let b1 = g.constant(0.09999999999999998, F32).unwrap();
    let d = op(&mut g, OpKind::Mul, &[b1, d]);
    let m2 = op(&mut g, OpKind::Add, &[m, d]);
    let b2 = g.constant(0.999, F32).unwrap();
    let vb = op(&mut g, OpKind::Mul, &[v, b2]);
    let c2 = g.constant(0.0010000000000000009, F32).unwrap();
    let gg = op(&mut g, OpKind::Mul, &[c2, gr]);
    let gg = op(&mut g, OpKind::Mul, &[gg, gr]);
    let v2 = op(&mut g, OpKind::Add, &[vb, gg]);
    let s = op(&mut g, OpKind::Sqrt, &[v2]);
    let s = op(&mut g, OpKind::Div, &[s, c]);
    let eps = g.constant(1e-8, F32).unwrap();
    let den = op(&mut g, OpKind::Add, &[s, eps]);
    let num = op(&mut g, OpKind::Mul, &[step, m2]);
    let q = op(&mut g, OpKind::Div, &[num, den]);
    let p2 = op(&mut g, OpKind::Add, &[p, q]);
    let outs = [(p2, full()), (v2, full()), (m2, full())];
    match only {
        Some(r) => g.finish_outputs(&outs[r..=r], None).unwrap(),
        None => g.finish_outputs(&outs, None).unwrap(),
    }
}

/// `f(x, y)` over `[P, P]` for one op (unary ops take `x`), with a
/// negation and a constant around it so that those paths run too.
fn one_op(kind: OpKind) -> GenericSpec {
    let mut g = GenericBuilder::new(&[P, P], F32).unwrap();
    let x = g.input(F32, map("(d0, d1) -> (d0, d1)"), None).unwrap();
    let y = g.input(F32, map("(d0, d1) -> (d0, d1)"), None).unwrap();
    let args: Vec<NodeId> = if matches!(kind, OpKind::Sqrt | OpKind::Neg) { vec![x] } else { vec![x, y] };
    let f = g.op(kind, &args, Attrs::new()).unwrap();
    let k = g.constant(0.75, F32).unwrap();
    let f = g.op(OpKind::Mul, &[f, k], Attrs::new()).unwrap();
    let f = g.op(OpKind::Neg, &[f], Attrs::new()).unwrap();
    g.finish(f, map("(d0, d1) -> (d0, d1)"), None).unwrap()
}

/// Inputs for `spec` over `sizes`: values in [-1, 1) with some zeros, ±inf
/// and NaN among the streams; rank-0 inputs positive. Every value is an f32.
fn inputs(spec: &GenericSpec, sizes: &[usize], rng: &mut Rng) -> Vec<Operand> {
    spec.inputs()
        .iter()
        .map(|i| {
            if i.map.results.is_empty() {
                return Operand::new(vec![(rng.value().abs() + 0.5) as f32 as f64], &[]);
            }
            let mut o = rng.operand(sizes);
            for (j, v) in o.data.iter_mut().enumerate() {
                match rng.next() % 64 {
                    0 => *v = 0.0,
                    1 => *v = -0.0,
                    2 => *v = f64::INFINITY,
                    3 => *v = f64::NAN,
                    _ if j % 7 == 3 => *v = (*v * 1e-3) as f32 as f64,
                    _ => {}
                }
            }
            o
        })
        .collect()
}

/// Runs `k` over the row ranges between consecutive `cuts` (`[0, rows]`:
/// all of dim 0 at once) and returns every output; with `in_place`, input `in_place.0` is read from output
/// `in_place.1`, whose buffer starts as that input's values.
fn run(k: &CompiledGeneric, inputs: &[Operand], sizes: &[usize], cuts: &[usize], in_place: Option<(usize, usize)>) -> Vec<Vec<f64>> {
    let spec = k.spec();
    let owned = input_buffers(spec, inputs);
    let n: usize = sizes.iter().product();
    let mut outs: Vec<Owned> = (0..spec.outputs().len())
        .map(|r| match in_place {
            Some((i, o)) if o == r => Owned::new(F32, &inputs[i].data),
            _ => Owned::new(F32, &vec![f64::NAN; n]),
        })
        .collect();
    let row = sizes[1..].iter().product::<usize>();
    for range in cuts.windows(2).map(|w| w[0]..w[1]) {
        let ins: Vec<(Source<'_>, &[usize])> = owned
            .iter()
            .zip(inputs)
            .enumerate()
            .map(|(i, (b, o))| match in_place {
                Some((j, r)) if j == i => (Source::Output(r), o.shape.as_slice()),
                _ => (Source::Buffer(b.buffer()), o.shape.as_slice()),
            })
            .collect();
        let bufs: Vec<(BufferMut<'_>, &[usize])> = outs.iter_mut().map(|o| (o.slice_mut(range.start * row..range.end * row), sizes)).collect();
        k.run_outputs(&ins, bufs, sizes, range.clone()).unwrap();
    }
    outs.iter().map(Owned::to_f64).collect()
}

/// Checks `spec` wide against Cranelift (bit for bit, NaN for NaN) and
/// output 0 against the reference, on row splits and in place.
fn check_wide(spec: &GenericSpec, single: impl Fn(usize) -> GenericSpec, fma: bool, in_place: Option<(usize, usize)>, rng: &mut Rng) {
    let (wide, narrow) = jits(fma);
    let kw = wide.compile_generic(spec).unwrap();
    let kn = narrow.compile_generic(spec).unwrap();
    assert!(!kn.is_wide(), "the wide code is off");
    if avx() {
        assert!(kw.is_wide(), "a flat f32 map on an AVX machine");
    } else {
        eprintln!("skipped: no AVX2+FMA here, so the wide code was not compared (only the Cranelift code ran)");
    }
    for sizes in [[1, 1], [1, 7], [1, 8], [1, 9], [3, 5], [2, 16], [5, 33], [7, 101], [4, 1024]] {
        let ins = inputs(spec, &sizes, rng);
        let rows = sizes[0];
        let want = run(&kn, &ins, &sizes, &[0, rows], None);
        let what = format!("fma {fma}, sizes {sizes:?}");
        let got = run(&kw, &ins, &sizes, &[0, rows], None);
        for (r, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_close(g, w, 0.0, &format!("{what}: output {r}, wide against Cranelift"));
        }
        if !fma {
            // Every op rounds once, as the reference's f64-then-f32 does.
            for (r, g) in got.iter().enumerate() {
                assert_close(g, &eval(&single(r), &ins, &sizes), 0.0, &format!("{what}: output {r} against the reference"));
            }
        }
        if rows > 1 {
            let split = run(&kw, &ins, &sizes, &[0, 1, rows], None);
            assert_eq!(bits(&split), bits(&want), "{what}: rows split");
        }
        if let Some(ip) = in_place {
            let (pw, pn) = (run(&kw, &ins, &sizes, &[0, rows], Some(ip)), run(&kn, &ins, &sizes, &[0, rows], Some(ip)));
            assert_eq!(bits(&pw), bits(&pn), "{what}: in place");
            assert_eq!(bits(&pw), bits(&want), "{what}: in place against separate buffers");
        }
    }
}

/// The bits of every output, NaNs made one.
fn bits(outs: &[Vec<f64>]) -> Vec<Vec<u64>> {
    outs.iter().map(|o| o.iter().map(|v| if v.is_nan() { u64::MAX } else { v.to_bits() }).collect()).collect()
}

#[test]
fn adam_updates_run_wide_with_the_same_bits() {
    let mut rng = Rng::new(71);
    for fma in [false, true] {
        // In place as the train step runs it: m read from output 2 (m').
        check_wide(&adam(None), |r| adam(Some(r)), fma, Some((2, 2)), &mut rng);
    }
}

#[test]
fn every_op_of_the_form_runs_wide_with_the_same_bits() {
    let mut rng = Rng::new(72);
    for kind in [OpKind::Add, OpKind::Sub, OpKind::Mul, OpKind::Div, OpKind::Sqrt, OpKind::Neg] {
        for fma in [false, true] {
            check_wide(&one_op(kind), |_| one_op(kind), fma, Some((1, 0)), &mut rng);
        }
    }
}

#[test]
fn fused_multiply_adds_of_every_sign_run_wide() {
    // `x·y + z`, `x·y - z`, `z - x·y` and `-z - x·y` (the plan's three
    // signs, the last with a negation feeding it), the product's operands
    // and the addend also used after it, so that the addend is copied into
    // the destination rather than overwritten.
    // Then again with the product's operands dying at it and the addend
    // living on: its copy must not land in their registers.
    let mut rng = Rng::new(73);
    for ((neg_product, neg_addend), operands_live) in [(false, false), (true, false), (false, true), (true, true)].into_iter().flat_map(|s| [(s, true), (s, false)]) {
        let spec = |_: usize| {
            let mut g = GenericBuilder::new(&[P, P], F32).unwrap();
            let full = || map("(d0, d1) -> (d0, d1)");
            let (x, y, z) = (g.input(F32, full(), None).unwrap(), g.input(F32, full(), None).unwrap(), g.input(F32, full(), None).unwrap());
            let xy = g.op(OpKind::Mul, &[x, y], Attrs::new()).unwrap();
            // As the plan sees them: `x·y + z`, `x·y - z`, `z - x·y`, `-z - x·y`.
            let f = match (neg_product, neg_addend) {
                (false, false) => g.op(OpKind::Add, &[xy, z], Attrs::new()).unwrap(),
                (false, true) => g.op(OpKind::Sub, &[xy, z], Attrs::new()).unwrap(),
                (true, false) => g.op(OpKind::Sub, &[z, xy], Attrs::new()).unwrap(),
                (true, true) => {
                    let nz = g.op(OpKind::Neg, &[z], Attrs::new()).unwrap();
                    g.op(OpKind::Sub, &[nz, xy], Attrs::new()).unwrap()
                }
            };
            let mut f = g.op(OpKind::Mul, &[f, z], Attrs::new()).unwrap();
            if operands_live {
                f = g.op(OpKind::Add, &[f, x], Attrs::new()).unwrap();
                f = g.op(OpKind::Add, &[f, y], Attrs::new()).unwrap();
            }
            g.finish(f, full(), None).unwrap()
        };
        check_wide(&spec(0), spec, true, None, &mut rng);
    }
}

#[test]
fn the_listing_shows_the_wide_code() {
    let jit = Jit::with_options(JitOptions { listing: true, ..JitOptions::default() }).unwrap();
    let k = jit.compile_generic(&adam(None)).unwrap();
    let listing = k.listing().expect("a listing was asked for");
    assert!(listing.contains("function"), "the Cranelift code is listed:\n{listing}");
    assert_eq!(listing.contains("; wide code"), k.is_wide(), "{listing}");
}

#[test]
fn other_forms_keep_the_cranelift_code() {
    let (wide, _) = jits(false);
    let full = || map("(d0, d1) -> (d0, d1)");
    let mut specs: Vec<(&str, GenericSpec)> = Vec::new();
    // A reduction.
    let mut g = GenericBuilder::new(&[P, R], F32).unwrap();
    let x = g.input(F32, full(), None).unwrap();
    let acc = g.acc().unwrap();
    let s = g.op(OpKind::Add, &[acc, x], Attrs::new()).unwrap();
    specs.push(("a reduction", g.finish(s, map("(d0, d1) -> (d0)"), Some(0.0)).unwrap()));
    // A row broadcast (a bias).
    let mut g = GenericBuilder::new(&[P, P], F32).unwrap();
    let x = g.input(F32, full(), None).unwrap();
    let b = g.input(F32, map("(d0, d1) -> (d1)"), None).unwrap();
    let s = g.op(OpKind::Add, &[x, b], Attrs::new()).unwrap();
    specs.push(("a broadcast row", g.finish(s, full(), None).unwrap()));
    // f64.
    let mut g = GenericBuilder::new(&[P, P], DType::F64).unwrap();
    let x = g.input(DType::F64, full(), None).unwrap();
    let s = g.op(OpKind::Sqrt, &[x], Attrs::new()).unwrap();
    specs.push(("f64", g.finish(s, full(), None).unwrap()));
    // An op outside the form.
    let mut g = GenericBuilder::new(&[P, P], F32).unwrap();
    let x = g.input(F32, full(), None).unwrap();
    let s = g.op(OpKind::Exp, &[x], Attrs::new()).unwrap();
    specs.push(("exp", g.finish(s, full(), None).unwrap()));
    // A transposed output.
    let mut g = GenericBuilder::new(&[P, P], F32).unwrap();
    let x = g.input(F32, full(), None).unwrap();
    let s = g.op(OpKind::Neg, &[x], Attrs::new()).unwrap();
    specs.push(("a transposed output", g.finish(s, map("(d0, d1) -> (d1, d0)"), None).unwrap()));
    // More constants than vector registers.
    let mut g = GenericBuilder::new(&[P, P], F32).unwrap();
    let mut s = g.input(F32, full(), None).unwrap();
    for k in 0..20 {
        let c = g.constant(k as f64 + 0.5, F32).unwrap();
        s = g.op(OpKind::Add, &[s, c], Attrs::new()).unwrap();
    }
    let many = g.finish(s, full(), None).unwrap();
    specs.push(("20 constants", many.clone()));
    for (what, spec) in &specs {
        assert!(!wide.compile_generic(spec).unwrap().is_wide(), "{what}");
    }
    // Still correct, on the Cranelift code.
    let mut rng = Rng::new(74);
    let sizes = [3, 13];
    let ins = inputs(&many, &sizes, &mut rng);
    let k = wide.compile_generic(&many).unwrap();
    assert_close(&run(&k, &ins, &sizes, &[0, 3], None)[0], &eval(&many, &ins, &sizes), 0.0, "20 constants");
}

#[test]
fn values_beyond_the_registers_fall_back_and_many_live_values_fit() {
    // Eleven streams, each squared, the squares summed last (eleven live
    // vector values): twelve pointer registers with the output, the most
    // there are; twelve streams are one too many.
    let (wide, narrow) = jits(false);
    let build = |streams: usize| {
        let mut g = GenericBuilder::new(&[P, P], F32).unwrap();
        let xs: Vec<NodeId> = (0..streams).map(|_| g.input(F32, map("(d0, d1) -> (d0, d1)"), None).unwrap()).collect();
        let sq: Vec<NodeId> = xs.iter().map(|&x| g.op(OpKind::Mul, &[x, x], Attrs::new()).unwrap()).collect();
        let mut s = sq[0];
        for &q in &sq[1..] {
            s = g.op(OpKind::Add, &[s, q], Attrs::new()).unwrap();
        }
        g.finish(s, map("(d0, d1) -> (d0, d1)"), None).unwrap()
    };
    let fits = build(11);
    assert_eq!(wide.compile_generic(&fits).unwrap().is_wide(), avx(), "11 streams and an output: 12 pointers");
    assert!(!wide.compile_generic(&build(12)).unwrap().is_wide(), "12 streams and an output: 13 pointers");
    let mut rng = Rng::new(75);
    let sizes = [2, 19];
    let ins = inputs(&fits, &sizes, &mut rng);
    let (kw, kn) = (wide.compile_generic(&fits).unwrap(), narrow.compile_generic(&fits).unwrap());
    assert_eq!(bits(&run(&kw, &ins, &sizes, &[0, 2], None)), bits(&run(&kn, &ins, &sizes, &[0, 2], None)));

    // Two streams and `live` values computed from them, all live until they
    // are summed at the end: 16 vector registers hold 15 such values beside
    // the two inputs' last use, not 17 (no constants take any).
    let chain = |live: usize| {
        let mut g = GenericBuilder::new(&[P, P], F32).unwrap();
        let x = g.input(F32, map("(d0, d1) -> (d0, d1)"), None).unwrap();
        let y = g.input(F32, map("(d0, d1) -> (d0, d1)"), None).unwrap();
        let mut vs = vec![g.op(OpKind::Add, &[x, y], Attrs::new()).unwrap()];
        for k in 1..live {
            let (a, b) = (vs[k - 1], if k % 2 == 0 { x } else { y });
            vs.push(g.op(if k % 3 == 0 { OpKind::Sub } else { OpKind::Mul }, &[a, b], Attrs::new()).unwrap());
        }
        let mut s = vs[0];
        for &v in &vs[1..] {
            s = g.op(OpKind::Add, &[s, v], Attrs::new()).unwrap();
        }
        g.finish(s, map("(d0, d1) -> (d0, d1)"), None).unwrap()
    };
    for (live, fits) in [(12, true), (17, false)] {
        let spec = chain(live);
        let kw = wide.compile_generic(&spec).unwrap();
        assert_eq!(kw.is_wide(), fits && avx(), "{live} live values");
        let ins = inputs(&spec, &sizes, &mut rng);
        let kn = narrow.compile_generic(&spec).unwrap();
        assert_eq!(bits(&run(&kw, &ins, &sizes, &[0, 2], None)), bits(&run(&kn, &ins, &sizes, &[0, 2], None)), "{live} live values");
    }
}
