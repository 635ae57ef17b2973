// RUN: dlc check
// expected-error {{result type tensor<?x4xf32> does not match the inferred tensor<?x3xf32>}}
func.func @f(%x: tensor<?x4xf32>, %w: tensor<3x4xf32>) -> tensor<?x4xf32> {
  %0 = "dl.matmul"(%x, %w) {transpose_b = true} : (tensor<?x4xf32>, tensor<3x4xf32>) -> tensor<?x4xf32>
  return %0 : tensor<?x4xf32>
}

// -----

// expected-error@+2 {{unknown op 'dl.rleu'}}
func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = "dl.rleu"(%x) : (tensor<4xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

// expected-error@+2 {{use of undefined value %y}}
func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = "dl.relu"(%y) : (tensor<4xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

// expected-error {{missing required attribute 'axes'}}
func.func @f(%x: tensor<4xf32>) -> tensor<f32> {
  %0 = "dl.reduce_sum"(%x) : (tensor<4xf32>) -> tensor<f32>
  return %0 : tensor<f32>
}
