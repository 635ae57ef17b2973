// RUN: dlc opt --pass egraph
// A transpose feeding a matmul becomes the matmul's flag; the matmul keeps
// its name, and the transpose goes. (The matmul is returned too, so its
// ReLU stays a separate op.)
module {
  func.func @transpose_into_matmul(%x: tensor<?x4xf32>, %w: tensor<3x4xf32>) -> (tensor<?x3xf32>, tensor<?x3xf32>) {
    %wt = "dl.transpose"(%w) {perm = [1, 0]} : (tensor<3x4xf32>) -> tensor<4x3xf32>
    %y = "dl.matmul"(%x, %wt) : (tensor<?x4xf32>, tensor<4x3xf32>) -> tensor<?x3xf32>
    %r = "dl.relu"(%y) : (tensor<?x3xf32>) -> tensor<?x3xf32>
    return %r, %y : tensor<?x3xf32>, tensor<?x3xf32>
  }
}
// CHECK: func.func @transpose_into_matmul
// CHECK-NOT: "dl.transpose"
// CHECK: %y = "dl.matmul"(%x, %w) {transpose_b = true}
// CHECK: %r = "dl.relu"(%y)
// CHECK: return %r, %y

// -----
// The fusion stage: a layer's matmul, bias and ReLU are one kernel.matmul,
// which takes the ReLU's name; a conv2d with its channel bias likewise.
module {
  func.func @layer(%x: tensor<?x4xf32>, %w: tensor<3x4xf32>, %b: tensor<3xf32>, %i: tensor<?x1x5x5xf32>, %k: tensor<2x1x3x3xf32>, %c: tensor<2x1x1xf32>) -> (tensor<?x3xf32>, tensor<?x2x3x3xf32>) {
    %y = "dl.matmul"(%x, %w) {transpose_b = true} : (tensor<?x4xf32>, tensor<3x4xf32>) -> tensor<?x3xf32>
    %z = "dl.add"(%y, %b) : (tensor<?x3xf32>, tensor<3xf32>) -> tensor<?x3xf32>
    %h = "dl.relu"(%z) : (tensor<?x3xf32>) -> tensor<?x3xf32>
    %v = "dl.conv2d"(%i, %k) : (tensor<?x1x5x5xf32>, tensor<2x1x3x3xf32>) -> tensor<?x2x3x3xf32>
    %o = "dl.add"(%v, %c) : (tensor<?x2x3x3xf32>, tensor<2x1x1xf32>) -> tensor<?x2x3x3xf32>
    return %h, %o : tensor<?x3xf32>, tensor<?x2x3x3xf32>
  }
}
// CHECK: func.func @layer
// CHECK: %h = "kernel.matmul"(%x, %w, %b) {relu = true, transpose_b = true}
// CHECK: %o = "kernel.conv2d"(%i, %k, %c)
// CHECK-NOT: "dl.add"
// CHECK: return %h, %o

// -----
// log(softmax(x)) is the stable log_softmax(x), which takes over the name.
module {
  func.func @stable_log_softmax(%x: tensor<?x10xf32>) -> tensor<?x10xf32> {
    %p = "dl.softmax"(%x) {axis = 1} : (tensor<?x10xf32>) -> tensor<?x10xf32>
    %logp = "dl.log"(%p) : (tensor<?x10xf32>) -> tensor<?x10xf32>
    return %logp : tensor<?x10xf32>
  }
}
// CHECK: func.func @stable_log_softmax
// CHECK-NOT: "dl.softmax"
// CHECK-NOT: "dl.log"(
// CHECK: %logp = "dl.log_softmax"(%x) {axis = 1}
// CHECK: return %logp

// -----
// exp(log_softmax(x)) is softmax(x); but where the log-probabilities are
// needed anyway (the cross-entropy gradient), one exp is cheaper than a
// second normalization, and the IR stays as it is.
module {
  func.func @shared_log_softmax(%x: tensor<?x10xf32>) -> (tensor<?x10xf32>, tensor<?x10xf32>) {
    %logp = "dl.log_softmax"(%x) {axis = 1} : (tensor<?x10xf32>) -> tensor<?x10xf32>
    %p = "dl.exp"(%logp) : (tensor<?x10xf32>) -> tensor<?x10xf32>
    return %logp, %p : tensor<?x10xf32>, tensor<?x10xf32>
  }
}
// CHECK: func.func @shared_log_softmax
// CHECK: %logp = "dl.log_softmax"(%x)
// CHECK: %p = "dl.exp"(%logp)
// CHECK-NOT: "dl.softmax"

// -----
// Exact algebra only: neg(neg x) and x + -0.0 are x, a select on a constant
// condition picks its branch; x + 0.0 (-0.0 + 0.0 is +0.0) and x * 0 (NaN * 0
// is NaN) stay. Constants fold, and equal ones merge.
module {
  func.func @exact_algebra(%x: tensor<3xf32>, %y: tensor<3xf32>) -> (tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<f32>) {
    %n = "dl.neg"(%x) : (tensor<3xf32>) -> tensor<3xf32>
    %nn = "dl.neg"(%n) : (tensor<3xf32>) -> tensor<3xf32>
    %nz = "dl.constant"() {value = dense<-0.0> : tensor<f32>} : () -> tensor<f32>
    %a = "dl.add"(%nn, %nz) : (tensor<3xf32>, tensor<f32>) -> tensor<3xf32>
    %t = "dl.constant"() {value = dense<true> : tensor<i1>} : () -> tensor<i1>
    %s = "dl.select"(%t, %a, %y) : (tensor<i1>, tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
    %pz = "dl.constant"() {value = dense<0.0> : tensor<f32>} : () -> tensor<f32>
    %keep_add = "dl.add"(%x, %pz) : (tensor<3xf32>, tensor<f32>) -> tensor<3xf32>
    %keep_mul = "dl.mul"(%x, %pz) : (tensor<3xf32>, tensor<f32>) -> tensor<3xf32>
    %one = "dl.constant"() {value = dense<1.0> : tensor<f32>} : () -> tensor<f32>
    %two = "dl.constant"() {value = dense<2.0> : tensor<f32>} : () -> tensor<f32>
    %three = "dl.add"(%one, %two) : (tensor<f32>, tensor<f32>) -> tensor<f32>
    return %s, %keep_add, %keep_mul, %x, %three : tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<f32>
  }
}
// CHECK: func.func @exact_algebra
// CHECK-NOT: "dl.neg"
// CHECK-NOT: "dl.select"
// CHECK: %keep_add = "dl.add"(%x, %pz)
// CHECK: %keep_mul = "dl.mul"(%x, %pz)
// CHECK: %three = "dl.constant"() {value = dense<3.0> : tensor<f32>}
// CHECK: return %x, %keep_add, %keep_mul, %x, %three

// -----
// A scale after a weight-gradient matmul moves onto its smaller operand
// (the update `w - lr * (gᵀ·x)` scales 16 x 256 elements instead of
// 256 x 784); this reassociates, so it agrees within rounding.
module {
  func.func @scale_the_smaller_operand(%g: tensor<16x256xf32>, %x: tensor<16x784xf32>) -> tensor<256x784xf32> {
    %dw = "dl.matmul"(%g, %x) {transpose_a = true} : (tensor<16x256xf32>, tensor<16x784xf32>) -> tensor<256x784xf32>
    %lr = "dl.constant"() {value = dense<-0.01> : tensor<f32>} : () -> tensor<f32>
    %step = "dl.mul"(%dw, %lr) : (tensor<256x784xf32>, tensor<f32>) -> tensor<256x784xf32>
    return %step : tensor<256x784xf32>
  }
}
// CHECK: func.func @scale_the_smaller_operand
// CHECK: "dl.mul"(%g, %lr) : (tensor<16x256xf32>, tensor<f32>) -> tensor<16x256xf32>
// CHECK: %step = "dl.matmul"
// CHECK: return %step
