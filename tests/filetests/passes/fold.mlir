// RUN: dlc opt --pass fold
// An op whose operands are all constants becomes a constant, computed by the
// interpreter; a chain folds in one pass. The op keeps its result's name.
module {
  func.func @chain() -> (tensor<3xf32>, tensor<f32>) {
    %v = "dl.constant"() {value = dense<[1.0, 2.0, 3.0]> : tensor<3xf32>} : () -> tensor<3xf32>
    %two = "dl.constant"() {value = dense<2.0> : tensor<f32>} : () -> tensor<f32>
    %scaled = "dl.mul"(%v, %two) : (tensor<3xf32>, tensor<f32>) -> tensor<3xf32>
    %sum = "dl.reduce_sum"(%scaled) {axes = [0]} : (tensor<3xf32>) -> tensor<f32>
    return %scaled, %sum : tensor<3xf32>, tensor<f32>
  }
}
// CHECK-NOT: "dl.mul"
// CHECK: %scaled = "dl.constant"() {value = dense<[2.0, 4.0, 6.0]> : tensor<3xf32>}
// CHECK-NEXT: %sum = "dl.constant"() {value = dense<12.0> : tensor<f32>}

// -----
// A result whose elements are all equal is written as a splat.
module {
  func.func @splat() -> tensor<2x3xf32> {
    %z = "dl.constant"() {value = dense<0.0> : tensor<f32>} : () -> tensor<f32>
    %b = "dl.broadcast_to"(%z) {shape = [2, 3]} : (tensor<f32>) -> tensor<2x3xf32>
    return %b : tensor<2x3xf32>
  }
}
// CHECK: %b = "dl.constant"() {value = dense<0.0> : tensor<2x3xf32>}

// -----
// Never folded: a result with a ? dim, a result over 4096 elements, an op
// with a non-constant operand.
module {
  func.func @kept(%x: tensor<?x2xf32>) -> (tensor<?x2xf32>, tensor<65x64xf32>, tensor<?x2xf32>) {
    %one = "dl.constant"() {value = dense<1.0> : tensor<f32>} : () -> tensor<f32>
    %dynamic = "dl.broadcast_to"(%one) {shape = [-1, 2]} : (tensor<f32>) -> tensor<?x2xf32>
    %big = "dl.broadcast_to"(%one) {shape = [65, 64]} : (tensor<f32>) -> tensor<65x64xf32>
    %mixed = "dl.add"(%x, %one) : (tensor<?x2xf32>, tensor<f32>) -> tensor<?x2xf32>
    return %dynamic, %big, %mixed : tensor<?x2xf32>, tensor<65x64xf32>, tensor<?x2xf32>
  }
}
// CHECK: %dynamic = "dl.broadcast_to"
// CHECK-NEXT: %big = "dl.broadcast_to"
// CHECK-NEXT: %mixed = "dl.add"

// -----
// Integer and boolean results keep their dtype; an integer division by zero is
// left to fail at run time, as it would have.
module {
  func.func @ints() -> (tensor<i64>, tensor<3xi1>, tensor<3xi32>, tensor<3xf64>) {
    %v = "dl.constant"() {value = dense<[3, -1, 7]> : tensor<3xi32>} : () -> tensor<3xi32>
    %zero = "dl.constant"() {value = dense<0> : tensor<i32>} : () -> tensor<i32>
    %am = "dl.argmax"(%v) {axis = 0} : (tensor<3xi32>) -> tensor<i64>
    %pos = "dl.cmp"(%v, %zero) {predicate = "gt"} : (tensor<3xi32>, tensor<i32>) -> tensor<3xi1>
    %bad = "dl.div"(%v, %zero) : (tensor<3xi32>, tensor<i32>) -> tensor<3xi32>
    %wide = "dl.cast"(%v) {dtype = f64} : (tensor<3xi32>) -> tensor<3xf64>
    return %am, %pos, %bad, %wide : tensor<i64>, tensor<3xi1>, tensor<3xi32>, tensor<3xf64>
  }
}
// CHECK: %am = "dl.constant"() {value = dense<2> : tensor<i64>}
// CHECK-NEXT: %pos = "dl.constant"() {value = dense<[true, false, true]> : tensor<3xi1>}
// CHECK-NEXT: %bad = "dl.div"(%v, %zero)
// CHECK-NEXT: %wide = "dl.constant"() {value = dense<[3.0, -1.0, 7.0]> : tensor<3xf64>}
