//! The safe calling interface: every malformed call is an error before any
//! machine code runs, empty shapes are no-ops, kernels can be shared across
//! threads, and dropping a kernel gives its code memory back.

mod common;
use common::{jit, unary};
use dlc_ir::{Attrs, DType, OpKind};
use dlc_jit::{Access, Buffer, BufferMut, JitError, KernelBuilder};

fn add_row() -> dlc_jit::CompiledKernel {
    let mut k = KernelBuilder::new(2).unwrap();
    let x = k.input(DType::F32, &[Access::Full, Access::Full]).unwrap();
    let r = k.input(DType::F32, &[Access::Broadcast, Access::Full]).unwrap();
    let y = k.op(OpKind::Add, &[x, r], Attrs::new()).unwrap();
    jit().compile(&k.finish(y).unwrap()).unwrap()
}

#[test]
fn malformed_calls_are_errors() {
    let k = add_row();
    let (x, r) = (vec![1f32; 12], vec![2f32; 4]);
    let mut out = vec![0f32; 12];
    assert!(matches!(k.run(&[&x], &mut out, &[3, 4]), Err(JitError::InputCount { expected: 2, found: 1 })));
    assert!(matches!(k.run(&[&x, &r], &mut out, &[12]), Err(JitError::Rank { .. })));
    assert!(matches!(k.run(&[&x, &r], &mut out, &[4, 3]), Err(JitError::Len { .. })), "the row has 4, not 3");
    assert!(matches!(k.run(&[&x[..11], &r], &mut out, &[3, 4]), Err(JitError::Len { .. })));
    assert!(matches!(k.run(&[&x, &r], &mut out[..11], &[3, 4]), Err(JitError::Len { .. })));
    assert!(matches!(k.run(&[&x, &r], &mut [0f32; 13], &[3, 4]), Err(JitError::Len { .. })));
    assert!(matches!(k.run_f64(&[&[0.0; 12], &[0.0; 4]], &mut [0.0; 12], &[3, 4]), Err(JitError::DType { .. })));
    let mixed = k.run_buffers(&[Buffer::F32(&x), Buffer::F32(&r)], BufferMut::F64(&mut [0.0; 12]), &[3, 4]);
    assert!(matches!(mixed, Err(JitError::DType { .. })));
    assert!(matches!(k.run(&[&x, &r], &mut out, &[usize::MAX, 2]), Err(JitError::TooLarge(_))));
    assert!(matches!(k.run(&[&x, &r], &mut out, &[1 << 62, 1 << 3]), Err(JitError::TooLarge(_))));
    assert!(out.iter().all(|&v| v == 0.0), "nothing ran");
    k.run(&[&x, &r], &mut out, &[3, 4]).unwrap();
    assert!(out.iter().all(|&v| v == 3.0));
}

#[test]
fn empty_shapes_do_nothing() {
    let k = add_row();
    k.run(&[&[], &[0.0; 4]], &mut [], &[0, 4]).unwrap();
    k.run(&[&[], &[]], &mut [], &[3, 0]).unwrap();
    assert!(matches!(k.run(&[&[], &[0.0; 5]], &mut [], &[0, 4]), Err(JitError::Len { .. })));
}

#[test]
fn kernels_are_shared_across_threads() {
    let k = unary(OpKind::Sigmoid, Attrs::new(), DType::F32);
    let xs: Vec<f32> = (0..10_001).map(|i| i as f32 * 1e-3 - 5.0).collect();
    let want = common::map_f32(&k, &xs);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..20 {
                    assert_eq!(common::map_f32(&k, &xs), want);
                }
            });
        }
    });
}

fn rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn dropped_kernels_free_their_code() {
    let before = rss_kib();
    for _ in 0..10_000 {
        let k = add_row();
        k.run(&[&[1.0; 4], &[1.0; 4]], &mut [0.0; 4], &[1, 4]).unwrap();
    }
    if let (Some(a), Some(b)) = (before, rss_kib()) {
        println!("RSS {a} KiB -> {b} KiB after 10000 kernels");
        assert!(b < a + 24 * 1024, "code memory leaks: RSS {a} KiB -> {b} KiB");
    }
}

#[test]
fn specs_that_are_not_kernels_are_errors() {
    let mut k = KernelBuilder::new(1).unwrap();
    let x = k.input(DType::F32, &[Access::Full]).unwrap();
    assert!(matches!(k.op(OpKind::ReduceSum, &[x], Attrs::new()), Err(JitError::Unsupported { .. })));
    assert!(matches!(k.input(DType::I32, &[Access::Full]), Err(JitError::Unsupported { .. })));
    assert!(matches!(k.finish(dlc_jit::NodeId(7)), Err(JitError::InvalidSpec(_))));
}

/// An Adam-like update `m' = 0.9·m + 0.1·g`, read and written in one buffer:
/// the same numbers as the out-of-place call, at sizes with and without a
/// scalar tail, with the output read twice (`m·m + m`), and broadcast
/// inputs refused.
#[test]
fn in_place_calls_match_out_of_place() {
    let mut k = KernelBuilder::new(2).unwrap();
    let m = k.input(DType::F32, &[Access::Full, Access::Full]).unwrap();
    let g = k.input(DType::F32, &[Access::Full, Access::Full]).unwrap();
    let row = k.input(DType::F32, &[Access::Broadcast, Access::Full]).unwrap();
    let c9 = k.constant(0.9, DType::F32).unwrap();
    let c1 = k.constant(0.1, DType::F32).unwrap();
    let a = k.op(OpKind::Mul, &[m, c9], Attrs::new()).unwrap();
    let b = k.op(OpKind::Mul, &[g, c1], Attrs::new()).unwrap();
    let s = k.op(OpKind::Add, &[a, b], Attrs::new()).unwrap();
    let mm = k.op(OpKind::Mul, &[m, m], Attrs::new()).unwrap();
    let s = k.op(OpKind::Add, &[s, mm], Attrs::new()).unwrap();
    let y = k.op(OpKind::Add, &[s, row], Attrs::new()).unwrap();
    let k = jit().compile(&k.finish(y).unwrap()).unwrap();
    for shape in [[3usize, 4], [5, 7], [1, 1], [2, 33]] {
        let n = shape[0] * shape[1];
        let mv: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
        let gv: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
        let rv: Vec<f32> = (0..shape[1]).map(|i| i as f32).collect();
        let mut want = vec![0f32; n];
        k.run(&[&mv, &gv, &rv], &mut want, &shape).unwrap();
        let mut inout = mv.clone();
        k.run_in_place(&[None, Some(Buffer::F32(&gv)), Some(Buffer::F32(&rv))], BufferMut::F32(&mut inout), &shape).unwrap();
        assert_eq!(inout, want, "shape {shape:?}");
        // The broadcast row cannot be the output.
        let mut other = mv.clone();
        let refused = k.run_in_place(&[Some(Buffer::F32(&mv)), Some(Buffer::F32(&gv)), None], BufferMut::F32(&mut other), &shape);
        assert!(matches!(refused, Err(JitError::InPlace(2))), "{refused:?}");
        assert_eq!(other, mv, "a refused call writes nothing");
    }
}
