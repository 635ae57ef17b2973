// RUN: dlc opt --pass dce
// Ops whose results nobody reads go, with the ops only they read.
module {
  func.func @dead_chain(%x: tensor<4xf32>) -> tensor<4xf32> {
    %e = "dl.exp"(%x) : (tensor<4xf32>) -> tensor<4xf32>
    %unused = "dl.log"(%x) : (tensor<4xf32>) -> tensor<4xf32>
    %unused2 = "dl.abs"(%unused) : (tensor<4xf32>) -> tensor<4xf32>
    %r = "dl.relu"(%e) : (tensor<4xf32>) -> tensor<4xf32>
    return %r : tensor<4xf32>
  }
}
// CHECK-NOT: "dl.log"
// CHECK-NOT: "dl.abs"
// CHECK: %e = "dl.exp"(%x)
// CHECK-NEXT: %r = "dl.relu"(%e)
// CHECK-NEXT: return %r

// -----
// What the return reads stays, however far back; unused constants go.
module {
  func.func @all_live(%x: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>) {
    %c = "dl.constant"() {value = dense<2.0> : tensor<f32>} : () -> tensor<f32>
    %dead = "dl.constant"() {value = dense<3.0> : tensor<f32>} : () -> tensor<f32>
    %a = "dl.mul"(%x, %c) : (tensor<4xf32>, tensor<f32>) -> tensor<4xf32>
    %b = "dl.neg"(%a) : (tensor<4xf32>) -> tensor<4xf32>
    return %a, %b : tensor<4xf32>, tensor<4xf32>
  }
}
// CHECK: %c = "dl.constant"
// CHECK-NOT: %dead
// CHECK: %a = "dl.mul"(%x, %c)
// CHECK-NEXT: %b = "dl.neg"(%a)
