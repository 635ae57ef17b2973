// RUN: dlc compile
// IR text with names, attributes of every kind and a nested dictionary prints back exactly.
module {
  func.func @forward(%x: tensor<?x4xf32> {dl.role = "input"}, %w: tensor<3x4xf32> {dl.init = {high = 0.5, kind = "uniform", low = -0.5}, dl.role = "param"}) -> (tensor<?x3xf32>, tensor<?xi64>) attributes {dl.outputs = ["p", "c"]} {
    %0 = "dl.matmul"(%x, %w) {transpose_b = true} : (tensor<?x4xf32>, tensor<3x4xf32>) -> tensor<?x3xf32>
    %c = "dl.constant"() {value = dense<[1.0e-8, 2.5, -3.0]> : tensor<3xf32>} : () -> tensor<3xf32>
    %1 = "dl.add"(%0, %c) : (tensor<?x3xf32>, tensor<3xf32>) -> tensor<?x3xf32>
    %p = "dl.softmax"(%1) {axis = 1} : (tensor<?x3xf32>) -> tensor<?x3xf32>
    %2 = "dl.argmax"(%p) {axis = -1} : (tensor<?x3xf32>) -> tensor<?xi64>
    return %p, %2 : tensor<?x3xf32>, tensor<?xi64>
  }
}

// OUT: module {
// OUT:   func.func @forward(%x: tensor<?x4xf32> {dl.role = "input"}, %w: tensor<3x4xf32> {dl.init = {high = 0.5, kind = "uniform", low = -0.5}, dl.role = "param"}) -> (tensor<?x3xf32>, tensor<?xi64>) attributes {dl.outputs = ["p", "c"]} {
// OUT:     %0 = "dl.matmul"(%x, %w) {transpose_b = true} : (tensor<?x4xf32>, tensor<3x4xf32>) -> tensor<?x3xf32>
// OUT:     %c = "dl.constant"() {value = dense<[1.0e-8, 2.5, -3.0]> : tensor<3xf32>} : () -> tensor<3xf32>
// OUT:     %1 = "dl.add"(%0, %c) : (tensor<?x3xf32>, tensor<3xf32>) -> tensor<?x3xf32>
// OUT:     %p = "dl.softmax"(%1) {axis = 1} : (tensor<?x3xf32>) -> tensor<?x3xf32>
// OUT:     %2 = "dl.argmax"(%p) {axis = -1} : (tensor<?x3xf32>) -> tensor<?xi64>
// OUT:     return %p, %2 : tensor<?x3xf32>, tensor<?xi64>
// OUT:   }
// OUT: }
