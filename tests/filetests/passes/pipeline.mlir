// RUN: dlc opt --pipeline default
// The default pipeline on what autodiff emits for d(mean(x))/dx: repeated
// scalar constants (cse), a reshape of a constant (fold), a multiply by one
// (canonicalize), and what is left unused (dce).
module {
  func.func @grad(%x: tensor<?x2xf32>) -> tensor<?x2xf32> {
    %0 = "dl.constant"() {value = dense<1.0> : tensor<f32>} : () -> tensor<f32>
    %1 = "dl.reshape"(%0) {shape = [1, 1]} : (tensor<f32>) -> tensor<1x1xf32>
    %2 = "dl.broadcast_to"(%1) {shape = [-1, 2]} : (tensor<1x1xf32>) -> tensor<?x2xf32>
    %3 = "dl.constant"() {value = dense<1.0> : tensor<f32>} : () -> tensor<f32>
    %4 = "dl.mul"(%2, %3) : (tensor<?x2xf32>, tensor<f32>) -> tensor<?x2xf32>
    %5 = "dl.constant"() {value = dense<0.5> : tensor<f32>} : () -> tensor<f32>
    %6 = "dl.mul"(%4, %5) : (tensor<?x2xf32>, tensor<f32>) -> tensor<?x2xf32>
    return %6 : tensor<?x2xf32>
  }
}
// CHECK-NOT: "dl.reshape"

// OUT: module {
// OUT:   func.func @grad(%x: tensor<?x2xf32>) -> tensor<?x2xf32> {
// OUT:     %0 = "dl.constant"() {value = dense<1.0> : tensor<1x1xf32>} : () -> tensor<1x1xf32>
// OUT:     %1 = "dl.broadcast_to"(%0) {shape = [-1, 2]} : (tensor<1x1xf32>) -> tensor<?x2xf32>
// OUT:     %2 = "dl.constant"() {value = dense<0.5> : tensor<f32>} : () -> tensor<f32>
// OUT:     %3 = "dl.mul"(%1, %2) : (tensor<?x2xf32>, tensor<f32>) -> tensor<?x2xf32>
// OUT:     return %3 : tensor<?x2xf32>
// OUT:   }
// OUT: }
