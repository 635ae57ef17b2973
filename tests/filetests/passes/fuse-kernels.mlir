// RUN: dlc opt --pipeline kernel
// Lowering, then fusion, then DCE. A linear layer's bias and ReLU become the
// contraction's epilogue: one kernel.matmul with the bias operand and
// relu = true, no kernel.generic left.
module {
  func.func @layer(%x: tensor<?x4xf32>, %w: tensor<3x4xf32>, %b: tensor<3xf32>) -> tensor<?x3xf32> {
    %h = "dl.matmul"(%x, %w) {transpose_b = true} : (tensor<?x4xf32>, tensor<3x4xf32>) -> tensor<?x3xf32>
    %y = "dl.add"(%h, %b) : (tensor<?x3xf32>, tensor<3xf32>) -> tensor<?x3xf32>
    %r = "dl.relu"(%y) : (tensor<?x3xf32>) -> tensor<?x3xf32>
    return %r : tensor<?x3xf32>
  }
}
// CHECK: "kernel.matmul"(%x, %w, %b) {relu = true, transpose_b = true}
// CHECK-NOT: "kernel.generic"

// -----
// An elementwise chain is one kernel: exp(x - y) * 2 reads x and y once and
// writes once; the op names it covers are listed in `fused`.
module {
  func.func @chain(%x: tensor<?x8xf32>, %y: tensor<?x8xf32>) -> tensor<?x8xf32> {
    %d = "dl.sub"(%x, %y) : (tensor<?x8xf32>, tensor<?x8xf32>) -> tensor<?x8xf32>
    %e = "dl.exp"(%d) : (tensor<?x8xf32>) -> tensor<?x8xf32>
    %c = "dl.constant"() {value = dense<2.0> : tensor<f32>} : () -> tensor<f32>
    %m = "dl.mul"(%e, %c) : (tensor<?x8xf32>, tensor<f32>) -> tensor<?x8xf32>
    return %m : tensor<?x8xf32>
  }
}
// CHECK: "kernel.generic"(%x, %y)
// CHECK: "dl.sub"
// CHECK-NEXT: "dl.exp"
// CHECK: "dl.mul"
// CHECK: fused = ["dl.sub", "dl.exp", "dl.mul"]
// CHECK-NOT: "kernel.generic"

// -----
// A producer fuses into a reduction (the sum reads x*x directly) and a
// transpose fuses into its consumer as a permuted map: no transposed copy.
module {
  func.func @sumsq(%x: tensor<4x6xf32>) -> (tensor<4xf32>, tensor<6x4xf32>) {
    %sq = "dl.mul"(%x, %x) : (tensor<4x6xf32>, tensor<4x6xf32>) -> tensor<4x6xf32>
    %s = "dl.reduce_sum"(%sq) {axes = [1]} : (tensor<4x6xf32>) -> tensor<4xf32>
    %t = "dl.transpose"(%x) {perm = [1, 0]} : (tensor<4x6xf32>) -> tensor<6x4xf32>
    %n = "dl.neg"(%t) : (tensor<6x4xf32>) -> tensor<6x4xf32>
    return %s, %n : tensor<4xf32>, tensor<6x4xf32>
  }
}
// CHECK: "kernel.generic"(%x)
// CHECK: fused = ["dl.mul", "dl.reduce_sum"]
// CHECK: "kernel.generic"(%x)
// CHECK: fused = ["dl.transpose", "dl.neg"], indexing_maps = [affine_map<(d0, d1) -> (d1, d0)>, affine_map<(d0, d1) -> (d0, d1)>]

// -----
// The cost model refuses to recompute an expensive producer for every point
// of a larger consumer: exp of a [4] row broadcast over 4096 rows stays its
// own kernel (4 exps instead of 16384), while a cheap broadcast fuses.
module {
  func.func @costly(%x: tensor<4096x4xf32>, %r: tensor<4xf32>) -> tensor<4096x4xf32> {
    %e = "dl.exp"(%r) : (tensor<4xf32>) -> tensor<4xf32>
    %t = "dl.tanh"(%e) : (tensor<4xf32>) -> tensor<4xf32>
    %l = "dl.log"(%t) : (tensor<4xf32>) -> tensor<4xf32>
    %y = "dl.mul"(%x, %l) : (tensor<4096x4xf32>, tensor<4xf32>) -> tensor<4096x4xf32>
    return %y : tensor<4096x4xf32>
  }
}
// CHECK: "kernel.generic"(%r)
// CHECK: fused = ["dl.exp", "dl.tanh", "dl.log"]
// CHECK: "kernel.generic"(%x,
// CHECK: fused = ["dl.mul"]
