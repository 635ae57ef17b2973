// RUN: dlc opt --pass cse
// Autodiff repeats scalar constants: equal ones merge into the first, and the
// ops reading them then merge too (operands are redirected before comparing).
module {
  func.func @constants(%x: tensor<?x4xf32>) -> (tensor<?x4xf32>, tensor<?x4xf32>) {
    %one = "dl.constant"() {value = dense<1.0> : tensor<f32>} : () -> tensor<f32>
    %a = "dl.add"(%x, %one) : (tensor<?x4xf32>, tensor<f32>) -> tensor<?x4xf32>
    %one_again = "dl.constant"() {value = dense<1.0> : tensor<f32>} : () -> tensor<f32>
    %b = "dl.add"(%x, %one_again) : (tensor<?x4xf32>, tensor<f32>) -> tensor<?x4xf32>
    return %a, %b : tensor<?x4xf32>, tensor<?x4xf32>
  }
}
// CHECK: %one = "dl.constant"
// CHECK-NOT: %one_again
// CHECK-NOT: %b =
// CHECK: return %a, %a

// -----
// add is commutative, so x + y and y + x are one value; sub is not.
module {
  func.func @commutative(%x: tensor<3xf32>, %y: tensor<3xf32>) -> (tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>) {
    %s = "dl.add"(%x, %y) : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
    %t = "dl.add"(%y, %x) : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
    %d = "dl.sub"(%x, %y) : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
    %e = "dl.sub"(%y, %x) : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
    return %s, %t, %d, %e : tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>
  }
}
// CHECK-NOT: %t =
// CHECK: %d = "dl.sub"(%x, %y)
// CHECK-NEXT: %e = "dl.sub"(%y, %x)
// CHECK: return %s, %s, %d, %e

// -----
// Attributes compare with the registry's defaults filled in: keepdims = false
// is the default. Different axes, values, signs of zero or types stay apart.
module {
  func.func @attributes(%x: tensor<2x3xf32>) -> (tensor<2xf32>, tensor<2xf32>, tensor<3xf32>, tensor<f32>, tensor<f32>, tensor<f64>) {
    %r = "dl.reduce_sum"(%x) {axes = [1]} : (tensor<2x3xf32>) -> tensor<2xf32>
    %same = "dl.reduce_sum"(%x) {axes = [1], keepdims = false} : (tensor<2x3xf32>) -> tensor<2xf32>
    %other_axis = "dl.reduce_sum"(%x) {axes = [0]} : (tensor<2x3xf32>) -> tensor<3xf32>
    %pz = "dl.constant"() {value = dense<0.0> : tensor<f32>} : () -> tensor<f32>
    %nz = "dl.constant"() {value = dense<-0.0> : tensor<f32>} : () -> tensor<f32>
    %wide = "dl.constant"() {value = dense<0.0> : tensor<f64>} : () -> tensor<f64>
    return %r, %same, %other_axis, %pz, %nz, %wide : tensor<2xf32>, tensor<2xf32>, tensor<3xf32>, tensor<f32>, tensor<f32>, tensor<f64>
  }
}
// CHECK-NOT: %same
// CHECK: %other_axis = "dl.reduce_sum"
// CHECK: %pz = "dl.constant"
// CHECK-NEXT: %nz = "dl.constant"
// CHECK-NEXT: %wide = "dl.constant"
// CHECK: return %r, %r, %other_axis, %pz, %nz, %wide

// -----
// Function arguments are never merged, even with the same type: they are different values.
module {
  func.func @arguments(%x: tensor<3xf32>, %y: tensor<3xf32>) -> (tensor<3xf32>, tensor<3xf32>) {
    %a = "dl.exp"(%x) : (tensor<3xf32>) -> tensor<3xf32>
    %b = "dl.exp"(%y) : (tensor<3xf32>) -> tensor<3xf32>
    return %a, %b : tensor<3xf32>, tensor<3xf32>
  }
}
// CHECK: %a = "dl.exp"(%x)
// CHECK-NEXT: %b = "dl.exp"(%y)
