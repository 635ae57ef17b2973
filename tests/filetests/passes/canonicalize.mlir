// RUN: dlc opt --pass canonicalize
// x * 1, 1 * x (mul is commutative) and x / 1 are x: the ops go and the return reads %x.
module {
  func.func @mul_div_one(%x: tensor<3xf32>) -> tensor<3xf32> {
    %one = "dl.constant"() {value = dense<1.0> : tensor<f32>} : () -> tensor<f32>
    %0 = "dl.mul"(%x, %one) : (tensor<3xf32>, tensor<f32>) -> tensor<3xf32>
    %1 = "dl.mul"(%one, %0) : (tensor<f32>, tensor<3xf32>) -> tensor<3xf32>
    %2 = "dl.div"(%1, %one) : (tensor<3xf32>, tensor<f32>) -> tensor<3xf32>
    return %2 : tensor<3xf32>
  }
}
// CHECK: func.func @mul_div_one
// CHECK-NOT: "dl.mul"
// CHECK-NOT: "dl.div"
// CHECK: return %x : tensor<3xf32>

// -----
// Float zeros are exact only with the right sign: x + -0.0 and x - 0.0 are x;
// x + 0.0 is not (-0.0 + 0.0 = +0.0), 1 / x is not x, and x * 0 is never
// rewritten (NaN * 0 and inf * 0 are NaN).
module {
  func.func @signed_zero(%x: tensor<3xf32>) -> (tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>) {
    %pz = "dl.constant"() {value = dense<0.0> : tensor<f32>} : () -> tensor<f32>
    %nz = "dl.constant"() {value = dense<-0.0> : tensor<f32>} : () -> tensor<f32>
    %one = "dl.constant"() {value = dense<1.0> : tensor<f32>} : () -> tensor<f32>
    %keep_add = "dl.add"(%x, %pz) : (tensor<3xf32>, tensor<f32>) -> tensor<3xf32>
    %0 = "dl.add"(%nz, %x) : (tensor<f32>, tensor<3xf32>) -> tensor<3xf32>
    %1 = "dl.sub"(%0, %pz) : (tensor<3xf32>, tensor<f32>) -> tensor<3xf32>
    %keep_div = "dl.div"(%one, %x) : (tensor<f32>, tensor<3xf32>) -> tensor<3xf32>
    %keep_mul = "dl.mul"(%x, %pz) : (tensor<3xf32>, tensor<f32>) -> tensor<3xf32>
    return %keep_add, %1, %keep_div, %keep_mul, %x : tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>
  }
}
// CHECK: %keep_add = "dl.add"(%x, %pz)
// CHECK-NOT: "dl.add"
// CHECK-NOT: "dl.sub"
// CHECK: %keep_div = "dl.div"(%one, %x)
// CHECK: %keep_mul = "dl.mul"(%x, %pz)
// CHECK: return %keep_add, %x, %keep_div, %keep_mul, %x

// -----
// Integer zero is the identity of add and sub, on either side of add.
module {
  func.func @int_zero(%i: tensor<4xi64>) -> tensor<4xi64> {
    %z = "dl.constant"() {value = dense<0> : tensor<i64>} : () -> tensor<i64>
    %0 = "dl.add"(%z, %i) : (tensor<i64>, tensor<4xi64>) -> tensor<4xi64>
    %1 = "dl.sub"(%0, %z) : (tensor<4xi64>, tensor<i64>) -> tensor<4xi64>
    return %1 : tensor<4xi64>
  }
}
// CHECK-NOT: "dl.add"
// CHECK-NOT: "dl.sub"
// CHECK: return %i

// -----
// neg(neg x) is x; an odd number of negations keeps one.
module {
  func.func @neg_neg(%x: tensor<2xf32>) -> (tensor<2xf32>, tensor<2xf32>) {
    %0 = "dl.neg"(%x) : (tensor<2xf32>) -> tensor<2xf32>
    %1 = "dl.neg"(%0) : (tensor<2xf32>) -> tensor<2xf32>
    %odd = "dl.neg"(%1) : (tensor<2xf32>) -> tensor<2xf32>
    return %1, %odd : tensor<2xf32>, tensor<2xf32>
  }
}
// CHECK: %0 = "dl.neg"(%x)
// CHECK-NEXT: %odd = "dl.neg"(%x)
// CHECK-NEXT: return %x, %odd

// -----
// reshape(reshape x) reads x directly; a reshape back to x's own type is x.
module {
  func.func @reshapes(%x: tensor<?x6xf32>) -> (tensor<?x6xf32>, tensor<?x3x2xf32>) {
    %0 = "dl.reshape"(%x) {shape = [-1, 2, 3]} : (tensor<?x6xf32>) -> tensor<?x2x3xf32>
    %back = "dl.reshape"(%0) {shape = [-1, 6]} : (tensor<?x2x3xf32>) -> tensor<?x6xf32>
    %other = "dl.reshape"(%0) {shape = [-1, 3, 2]} : (tensor<?x2x3xf32>) -> tensor<?x3x2xf32>
    return %back, %other : tensor<?x6xf32>, tensor<?x3x2xf32>
  }
}
// CHECK-NOT: %back
// CHECK: %other = "dl.reshape"(%x) {shape = [-1, 3, 2]}
// CHECK: return %x, %other

// -----
// Transposes compose; the identity permutation goes; a same-type transpose
// that does permute (3x3, [1, 0]) must stay.
module {
  func.func @transposes(%w: tensor<2x3x4xf32>, %s: tensor<3x3xf32>) -> (tensor<2x3x4xf32>, tensor<3x2x4xf32>, tensor<3x3xf32>) {
    %0 = "dl.transpose"(%w) {perm = [1, 2, 0]} : (tensor<2x3x4xf32>) -> tensor<3x4x2xf32>
    %inverse = "dl.transpose"(%0) {perm = [2, 0, 1]} : (tensor<3x4x2xf32>) -> tensor<2x3x4xf32>
    %swap = "dl.transpose"(%0) {perm = [0, 2, 1]} : (tensor<3x4x2xf32>) -> tensor<3x2x4xf32>
    %keep = "dl.transpose"(%s) {perm = [1, 0]} : (tensor<3x3xf32>) -> tensor<3x3xf32>
    return %inverse, %swap, %keep : tensor<2x3x4xf32>, tensor<3x2x4xf32>, tensor<3x3xf32>
  }
}
// CHECK-NOT: %inverse
// CHECK: %swap = "dl.transpose"(%w) {perm = [1, 0, 2]}
// CHECK: %keep = "dl.transpose"(%s) {perm = [1, 0]}
// CHECK: return %w, %swap, %keep

// -----
// broadcast_to and cast to the operand's own type do nothing; a real cast stays.
module {
  func.func @no_ops(%x: tensor<?x4xf32>) -> (tensor<?x4xf32>, tensor<?x4xf64>) {
    %0 = "dl.broadcast_to"(%x) {shape = [-1, 4]} : (tensor<?x4xf32>) -> tensor<?x4xf32>
    %1 = "dl.cast"(%0) {dtype = f32} : (tensor<?x4xf32>) -> tensor<?x4xf32>
    %wide = "dl.cast"(%1) {dtype = f64} : (tensor<?x4xf32>) -> tensor<?x4xf64>
    return %1, %wide : tensor<?x4xf32>, tensor<?x4xf64>
  }
}
// CHECK-NOT: "dl.broadcast_to"
// CHECK: %wide = "dl.cast"(%x) {dtype = f64}
// CHECK: return %x, %wide

// -----
// A select on a constant condition is its branch; select(c, a, a) is a. A
// mixed condition, or a branch whose type is not the result's, stays.
module {
  func.func @selects(%a: tensor<2xf32>, %c: tensor<2xi1>) -> (tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>) {
    %t = "dl.constant"() {value = dense<true> : tensor<i1>} : () -> tensor<i1>
    %mixed = "dl.constant"() {value = dense<[true, false]> : tensor<2xi1>} : () -> tensor<2xi1>
    %z = "dl.constant"() {value = dense<0.0> : tensor<f32>} : () -> tensor<f32>
    %0 = "dl.select"(%t, %a, %z) : (tensor<i1>, tensor<2xf32>, tensor<f32>) -> tensor<2xf32>
    %1 = "dl.select"(%c, %0, %0) : (tensor<2xi1>, tensor<2xf32>, tensor<2xf32>) -> tensor<2xf32>
    %keep_mixed = "dl.select"(%mixed, %a, %z) : (tensor<2xi1>, tensor<2xf32>, tensor<f32>) -> tensor<2xf32>
    %keep_broadcast = "dl.select"(%t, %z, %a) : (tensor<i1>, tensor<f32>, tensor<2xf32>) -> tensor<2xf32>
    return %0, %1, %keep_mixed, %keep_broadcast : tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>
  }
}
// CHECK: %keep_mixed = "dl.select"
// CHECK: %keep_broadcast = "dl.select"
// CHECK: return %a, %a, %keep_mixed, %keep_broadcast

// -----
// A rule fires only when the type stays: x : tensor<f32> * ones : tensor<3xf32>
// is a tensor<3xf32>, so it cannot become x.
module {
  func.func @type_changes(%x: tensor<f32>) -> tensor<3xf32> {
    %ones = "dl.constant"() {value = dense<1.0> : tensor<3xf32>} : () -> tensor<3xf32>
    %keep = "dl.mul"(%x, %ones) : (tensor<f32>, tensor<3xf32>) -> tensor<3xf32>
    return %keep : tensor<3xf32>
  }
}
// CHECK: %keep = "dl.mul"(%x, %ones)
// CHECK: return %keep
