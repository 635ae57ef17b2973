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
