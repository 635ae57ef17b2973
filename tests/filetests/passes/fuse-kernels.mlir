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

// -----
// A value needed elsewhere (a function result) and by one kernel over the
// same points becomes an extra result of that kernel: SGD with momentum's
// new buffer and new parameter are one loop nest with two results, which
// reads p, buf and g once and writes each result once.
module {
  func.func @momentum(%p: tensor<3x5xf32>, %g: tensor<3x5xf32>, %buf: tensor<3x5xf32>) -> (tensor<3x5xf32>, tensor<3x5xf32>) {
    %mu = "dl.constant"() {value = dense<0.9> : tensor<f32>} : () -> tensor<f32>
    %lr = "dl.constant"() {value = dense<0.01> : tensor<f32>} : () -> tensor<f32>
    %s = "dl.mul"(%buf, %mu) : (tensor<3x5xf32>, tensor<f32>) -> tensor<3x5xf32>
    %b = "dl.add"(%s, %g) : (tensor<3x5xf32>, tensor<3x5xf32>) -> tensor<3x5xf32>
    %u = "dl.mul"(%b, %lr) : (tensor<3x5xf32>, tensor<f32>) -> tensor<3x5xf32>
    %q = "dl.sub"(%p, %u) : (tensor<3x5xf32>, tensor<3x5xf32>) -> tensor<3x5xf32>
    return %q, %b : tensor<3x5xf32>, tensor<3x5xf32>
  }
}
// CHECK: %0:2 = "kernel.generic"(%p, %buf, %g)
// CHECK: %6 = "dl.add"(%5, %3)
// CHECK: %9 = "dl.sub"(%1, %8)
// CHECK-NEXT: "kernel.yield"(%9, %6) : (f32, f32) -> ()
// CHECK: dtypes = [f32, f32]
// CHECK-NOT: "kernel.generic"
// CHECK: return %0#0, %0#1

// -----
// The extra result is written where the consumer reads it: through a
// transpose fused into the consumer, the kept sum is written transposed
// back, `(d0, d1) -> (d1, d0)`, over the consumer's iteration space.
module {
  func.func @transposed(%x: tensor<4x6xf32>, %y: tensor<4x6xf32>) -> (tensor<4x6xf32>, tensor<6x4xf32>) {
    %b = "dl.add"(%x, %y) : (tensor<4x6xf32>, tensor<4x6xf32>) -> tensor<4x6xf32>
    %t = "dl.transpose"(%b) {perm = [1, 0]} : (tensor<4x6xf32>) -> tensor<6x4xf32>
    %n = "dl.neg"(%t) : (tensor<6x4xf32>) -> tensor<6x4xf32>
    return %b, %n : tensor<4x6xf32>, tensor<6x4xf32>
  }
}
// CHECK: %0:2 = "kernel.generic"(%x, %y)
// CHECK: fused = ["dl.add", "dl.transpose", "dl.neg"], indexing_maps = [affine_map<(d0, d1) -> (d1, d0)>, affine_map<(d0, d1) -> (d1, d0)>, affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d1, d0)>]
// CHECK: -> (tensor<6x4xf32>, tensor<4x6xf32>)
// CHECK: return %0#1, %0#0

// -----
// A reduction does not take an extra result (its points are not the
// value's): the sum's producer stays a kernel of its own.
module {
  func.func @summed(%x: tensor<4x6xf32>, %y: tensor<4x6xf32>) -> (tensor<4x6xf32>, tensor<4xf32>) {
    %b = "dl.add"(%x, %y) : (tensor<4x6xf32>, tensor<4x6xf32>) -> tensor<4x6xf32>
    %s = "dl.reduce_sum"(%b) {axes = [1]} : (tensor<4x6xf32>) -> tensor<4xf32>
    return %b, %s : tensor<4x6xf32>, tensor<4xf32>
  }
}
// CHECK: %0 = "kernel.generic"(%x, %y)
// CHECK: fused = ["dl.add"]
// CHECK: "kernel.generic"(%0)
// CHECK-NOT: dtypes
