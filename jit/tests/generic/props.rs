//! Random small structured kernels against the reference evaluator: random
//! iterator kinds and sizes (0 and 1 included), inputs read through random
//! affine maps (plain dims, constants, strided sums with offsets, padded or
//! sized to stay in bounds), random bodies over the inputs and the
//! accumulator, and random permutations of the parallel dims as the output.
//! Each case is drawn from one seed, which a failure reports.

use crate::reference::{Operand, Rng, check};
use dlc_ir::{AffineExpr, AffineMap, Attrs, DType, OpKind};
use dlc_jit::{GenericBuilder, GenericSpec, IterKind, NodeId};
use proptest::prelude::{ProptestConfig, any, proptest};

fn below(rng: &mut Rng, n: u64) -> usize {
    (rng.next() % n) as usize
}

/// One random case: the spec, its inputs, the sizes.
fn case(seed: u64) -> (GenericSpec, Vec<Operand>, Vec<usize>) {
    let mut rng = Rng::new(seed);
    let rank = 1 + below(&mut rng, 4);
    let iters: Vec<IterKind> = (0..rank).map(|_| if below(&mut rng, 3) == 0 { IterKind::Reduction } else { IterKind::Parallel }).collect();
    let sizes: Vec<usize> = (0..rank).map(|_| if below(&mut rng, 25) == 0 { 0 } else { 1 + below(&mut rng, 9) }).collect();
    let dtype = if below(&mut rng, 4) == 0 { DType::F64 } else { DType::F32 };
    let mut g = GenericBuilder::new(&iters, dtype).unwrap();
    let mut nodes: Vec<NodeId> = Vec::new();
    let mut inputs = Vec::new();
    for _ in 0..1 + below(&mut rng, 3) {
        let pad = below(&mut rng, 3) == 0;
        let mut results = Vec::new();
        let mut shape = Vec::new();
        for _ in 0..below(&mut rng, 4) {
            let low = if pad { -1 } else { 0 };
            let e = match below(&mut rng, 4) {
                0 | 1 => AffineExpr::dim(below(&mut rng, rank as u64)),
                2 => AffineExpr::constant(low + below(&mut rng, (2 - low) as u64) as i64),
                _ => AffineExpr::dim(below(&mut rng, rank as u64))
                    .plus_dim(below(&mut rng, rank as u64), below(&mut rng, 2) as i64)
                    .plus(low + below(&mut rng, (2 - low) as u64) as i64),
            };
            // Sometimes a stride of 2 on a plain dim.
            let e = match e.as_dim() {
                Some(k) if below(&mut rng, 4) == 0 => e.plus_dim(k, 1),
                _ => e,
            };
            let hi = e.range(&sizes.iter().map(|&n| n.max(1)).collect::<Vec<_>>()).unwrap().1.max(0) as usize;
            let n = if pad && e.as_dim().is_none() { below(&mut rng, hi as u64 + 2) } else { hi + 1 + below(&mut rng, 2) };
            results.push(e);
            shape.push(n);
        }
        let map = AffineMap { dims: rank, results };
        let padv = pad.then(|| [0.0, -3.0, f64::NEG_INFINITY][below(&mut rng, 3)]);
        nodes.push(g.input(dtype, map, padv).unwrap());
        inputs.push(rng.operand(&shape));
    }
    let reduces = iters.contains(&IterKind::Reduction);
    let acc = reduces.then(|| g.acc().unwrap());
    if let Some(a) = acc
        && below(&mut rng, 3) == 0
    {
        nodes.push(a);
    }
    const OPS: [OpKind; 5] = [OpKind::Add, OpKind::Sub, OpKind::Mul, OpKind::Maximum, OpKind::Minimum];
    for _ in 0..below(&mut rng, 4) {
        let x = nodes[below(&mut rng, nodes.len() as u64)];
        let y = nodes[below(&mut rng, nodes.len() as u64)];
        nodes.push(g.op(OPS[below(&mut rng, 5)], &[x, y], Attrs::new()).unwrap());
    }
    let mut result = *nodes.last().unwrap();
    if let Some(a) = acc
        && below(&mut rng, 4) != 0
    {
        let kind = [OpKind::Add, OpKind::Maximum, OpKind::Minimum, OpKind::Mul][below(&mut rng, 4)];
        let args = if below(&mut rng, 2) == 0 { [a, result] } else { [result, a] };
        result = g.op(kind, &args, Attrs::new()).unwrap();
    }
    let mut parallel: Vec<usize> = (0..rank).filter(|&k| iters[k] == IterKind::Parallel).collect();
    for i in (1..parallel.len()).rev() {
        let j = below(&mut rng, i as u64 + 1);
        parallel.swap(i, j);
    }
    let init = reduces.then(|| [0.0, 1.0, -0.5, f64::NEG_INFINITY][below(&mut rng, 4)]);
    let spec = g.finish(result, AffineMap::projection(rank, &parallel), init).unwrap();
    (spec, inputs, sizes)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn random_kernels_match_the_reference(seed in any::<u64>()) {
        let (spec, inputs, sizes) = case(seed);
        let rtol = if spec.out_dtype() == DType::F64 { 1e-12 } else { 1e-5 };
        check(&spec, &inputs, &sizes, rtol);
    }
}
