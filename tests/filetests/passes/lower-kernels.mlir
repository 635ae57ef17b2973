// RUN: dlc opt --pass lower-kernels
// A broadcasting add is one all-parallel kernel; the [4] bias is read
// through the map (d0, d1) -> (d1): NumPy broadcasting as an indexing map.
module {
  func.func @bias(%x: tensor<?x4xf32>, %b: tensor<4xf32>) -> tensor<?x4xf32> {
    %y = "dl.add"(%x, %b) : (tensor<?x4xf32>, tensor<4xf32>) -> tensor<?x4xf32>
    return %y : tensor<?x4xf32>
  }
}
// CHECK: "kernel.generic"(%x, %b)
// CHECK: "dl.add"
// CHECK: indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d1)>, affine_map<(d0, d1) -> (d0, d1)>], iterators = ["parallel", "parallel"], sizes = [-1, 4]
// CHECK-NOT: "dl.add"(%x

// -----
// A splat constant operand becomes a constant in the body, not a buffer; a
// size-1 dim broadcast is a constant-0 map result.
module {
  func.func @scale(%x: tensor<2x3xf32>, %r: tensor<1x3xf32>) -> tensor<2x3xf32> {
    %c = "dl.constant"() {value = dense<0.5> : tensor<f32>} : () -> tensor<f32>
    %y = "dl.mul"(%x, %c) : (tensor<2x3xf32>, tensor<f32>) -> tensor<2x3xf32>
    %z = "dl.sub"(%y, %r) : (tensor<2x3xf32>, tensor<1x3xf32>) -> tensor<2x3xf32>
    return %z : tensor<2x3xf32>
  }
}
// CHECK: "kernel.generic"(%x)
// CHECK: "kernel.constant"() {dtype = f32, value = 0.5}
// CHECK: "kernel.generic"
// CHECK: affine_map<(d0, d1) -> (0, d1)>

// -----
// Reductions: the reduced dim is a "reduction" iterator absent from the
// result's map; the body folds the accumulator (the last block argument).
// An f32 sum accumulates in f64 and is rounded once by a second kernel;
// keepdims is a dl.reshape of the folded result (a view, no copy).
module {
  func.func @sum(%x: tensor<?x8xf32>) -> (tensor<?x1xf32>, tensor<8xf32>) {
    %s = "dl.reduce_sum"(%x) {axes = [1], keepdims = true} : (tensor<?x8xf32>) -> tensor<?x1xf32>
    %m = "dl.reduce_max"(%x) {axes = [0]} : (tensor<?x8xf32>) -> tensor<8xf32>
    return %s, %m : tensor<?x1xf32>, tensor<8xf32>
  }
}
// CHECK: ^bb0(%1: f32, %2: f64):
// CHECK-NEXT: "dl.cast"(%1) {dtype = f64}
// CHECK-NEXT: "dl.add"(%2, %3)
// CHECK: affine_map<(d0, d1) -> (d0)>], init = 0.0, iterators = ["parallel", "reduction"]
// CHECK-SAME: -> tensor<?xf64>
// CHECK: "dl.cast"
// CHECK-SAME: (f64) -> f32
// CHECK: "dl.reshape"
// CHECK-SAME: shape = [-1, 1]
// CHECK: "dl.maximum"
// CHECK: affine_map<(d0, d1) -> (d1)>], init = 0xFFF0000000000000 : f64, iterators = ["reduction", "parallel"]

// -----
// Movement ops are maps: a transpose permutes, a strided slice scales and
// offsets (elements 1, 3, 5 of 7).
module {
  func.func @moves(%x: tensor<3x7xf32>) -> (tensor<7x3xf32>, tensor<3x3xf32>) {
    %t = "dl.transpose"(%x) {perm = [1, 0]} : (tensor<3x7xf32>) -> tensor<7x3xf32>
    %s = "dl.slice"(%x) {axis = 1, start = 1, end = 7, step = 2} : (tensor<3x7xf32>) -> tensor<3x3xf32>
    return %t, %s : tensor<7x3xf32>, tensor<3x3xf32>
  }
}
// CHECK: fused = ["dl.transpose"], indexing_maps = [affine_map<(d0, d1) -> (d1, d0)>, affine_map<(d0, d1) -> (d0, d1)>]
// CHECK: fused = ["dl.slice"], indexing_maps = [affine_map<(d0, d1) -> (d0, d1 * 2 + 1)>, affine_map<(d0, d1) -> (d0, d1)>]

// -----
// A 3x3 max pool with stride 2 and padding 1 is unrolled: nine operands,
// x[n, c, oh*2 + kh - 1, ow*2 + kw - 1] for each tap, padded with -inf and
// folded in window order from the first tap; the same average pool folds
// from 0, pads with 0 and divides by 9.
module {
  func.func @pools(%x: tensor<?x2x5x5xf32>) -> (tensor<?x2x3x3xf32>, tensor<?x2x3x3xf32>) {
    %m = "dl.max_pool2d"(%x) {kernel = [3, 3], stride = [2, 2], padding = [1, 1]} : (tensor<?x2x5x5xf32>) -> tensor<?x2x3x3xf32>
    %a = "dl.avg_pool2d"(%x) {kernel = [3, 3], stride = [2, 2], padding = [1, 1]} : (tensor<?x2x5x5xf32>) -> tensor<?x2x3x3xf32>
    return %m, %a : tensor<?x2x3x3xf32>, tensor<?x2x3x3xf32>
  }
}
// CHECK: "kernel.generic"(%x, %x, %x, %x, %x, %x, %x, %x, %x)
// CHECK: %10 = "dl.maximum"(%1, %2)
// CHECK: %17 = "dl.maximum"(%16, %9)
// CHECK-NEXT: "kernel.yield"(%17)
// CHECK: affine_map<(d0, d1, d2, d3) -> (d0, d1, d2 * 2 - 1, d3 * 2 - 1)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2 * 2 - 1, d3 * 2)>
// CHECK-SAME: affine_map<(d0, d1, d2, d3) -> (d0, d1, d2 * 2 + 1, d3 * 2 + 1)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>]
// CHECK-SAME: iterators = ["parallel", "parallel", "parallel", "parallel"], pad = 0xFFF0000000000000 : f64, padded = [0, 1, 2, 3, 4, 5, 6, 7, 8], sizes = [-1, 2, 3, 3]
// CHECK: "kernel.constant"() {dtype = f32, value = 0.0}
// CHECK-NEXT: "dl.add"
// CHECK: pad = 0.0, padded = [0, 1, 2, 3, 4, 5, 6, 7, 8]
// CHECK: "kernel.constant"() {dtype = f32, value = 9.0}
// CHECK-NEXT: "dl.div"

// -----
// A window of more than 16 taps (5x5) is a reduction over
// [n, c, oh, ow, kh, kw] reading x[n, c, oh + kh - 2, ow + kw - 2].
module {
  func.func @big(%x: tensor<?x2x5x5xf32>) -> tensor<?x2x5x5xf32> {
    %m = "dl.max_pool2d"(%x) {kernel = [5, 5], stride = [1, 1], padding = [2, 2]} : (tensor<?x2x5x5xf32>) -> tensor<?x2x5x5xf32>
    return %m : tensor<?x2x5x5xf32>
  }
}
// CHECK: affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2 + d4 - 2, d3 + d5 - 2)>
// CHECK-SAME: iterators = ["parallel", "parallel", "parallel", "parallel", "reduction", "reduction"], pad = 0xFFF0000000000000 : f64, padded = [0], sizes = [-1, 2, 5, 5, 5, 5]

// -----
// Concatenating a tensor with constant fills (as gradients interleave zeros)
// is a padded read at an offset; two real tensors stay a dl.concat.
module {
  func.func @pad(%x: tensor<?x3xf32>, %y: tensor<?x3xf32>) -> (tensor<?x6xf32>, tensor<?x6xf32>) {
    %z = "dl.constant"() {value = dense<0.0> : tensor<f32>} : () -> tensor<f32>
    %zz = "dl.broadcast_to"(%z) {shape = [-1, 2]} : (tensor<f32>) -> tensor<?x2xf32>
    %o = "dl.constant"() {value = dense<0.0> : tensor<1x1xf32>} : () -> tensor<1x1xf32>
    %oo = "dl.broadcast_to"(%o) {shape = [-1, 1]} : (tensor<1x1xf32>) -> tensor<?x1xf32>
    %p = "dl.concat"(%zz, %x, %oo) {axis = 1} : (tensor<?x2xf32>, tensor<?x3xf32>, tensor<?x1xf32>) -> tensor<?x6xf32>
    %q = "dl.concat"(%x, %y) {axis = 1} : (tensor<?x3xf32>, tensor<?x3xf32>) -> tensor<?x6xf32>
    return %p, %q : tensor<?x6xf32>, tensor<?x6xf32>
  }
}
// CHECK: fused = ["dl.concat"], indexing_maps = [affine_map<(d0, d1) -> (d0, d1 - 2)>, affine_map<(d0, d1) -> (d0, d1)>], iterators = ["parallel", "parallel"], pad = 0.0, padded = [0]
// CHECK: %q = "dl.concat"(%x, %y)

// -----
// Contractions become the structured contraction ops; epilogues are the
// fusion pass's job, so the bias add stays a kernel here.
module {
  func.func @linear(%x: tensor<?x4xf32>, %w: tensor<3x4xf32>, %b: tensor<3xf32>) -> tensor<?x3xf32> {
    %h = "dl.matmul"(%x, %w) {transpose_b = true} : (tensor<?x4xf32>, tensor<3x4xf32>) -> tensor<?x3xf32>
    %y = "dl.add"(%h, %b) : (tensor<?x3xf32>, tensor<3xf32>) -> tensor<?x3xf32>
    return %y : tensor<?x3xf32>
  }
}
// CHECK: = "kernel.matmul"(%x, %w) {transpose_b = true}
// CHECK: "kernel.generic"
