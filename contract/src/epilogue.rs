//! The fused epilogue: bias add and ReLU applied to an output block right
//! after the kernel wrote it.
//!
//! Why not in `gemm`: its `dst = alpha·dst + beta·lhs·rhs` can pre-load a
//! bias (accumulate onto a broadcast copy) but has no activation, and a
//! separate ReLU pass over the whole output reads it back from memory.
//! Applying both to each row block while it is still in L1/L2 costs one
//! cheap pass over cached data instead.

use crate::Element;
use crate::error::ContractError;

/// What to do to each output element after the contraction: `y = act(y + bias)`.
///
/// For [`matmul`](crate::matmul) the bias is per column (length `n`, the
/// `Linear` layer's bias); for [`conv2d`](crate::conv2d) it is per output
/// channel (length `O`). ReLU follows PyTorch: `x < 0` becomes 0, NaN and
/// `-0.0` pass through, like the interpreter's `dl.relu`.
#[derive(Clone, Copy, Debug)]
pub struct Epilogue<'a, T> {
    /// Added to each output element along the op's bias axis.
    pub bias: Option<&'a [T]>,
    /// Apply ReLU after the bias.
    pub relu: bool,
}

impl<T> Default for Epilogue<'_, T> {
    fn default() -> Self {
        Epilogue { bias: None, relu: false }
    }
}

impl<'a, T: Element> Epilogue<'a, T> {
    /// No epilogue: the plain contraction.
    pub const NONE: Self = Epilogue { bias: None, relu: false };

    /// Adds `bias`.
    pub fn with_bias(self, bias: &'a [T]) -> Self {
        Epilogue { bias: Some(bias), ..self }
    }

    /// Applies ReLU (after the bias).
    pub fn with_relu(self) -> Self {
        Epilogue { relu: true, ..self }
    }

    /// True when the epilogue changes nothing.
    pub fn is_identity(&self) -> bool {
        self.bias.is_none() && !self.relu
    }

    /// Checks the bias length against the op's bias axis.
    pub(crate) fn check(&self, len: usize) -> Result<(), ContractError> {
        match self.bias {
            Some(b) => crate::error::check_len("bias", len, b.len()),
            None => Ok(()),
        }
    }

    /// Applies the epilogue to `rows` rows of `n` elements at row stride
    /// `rs`, the bias indexed by column (matmul).
    pub(crate) fn apply_cols(&self, block: &mut [T], rows: usize, n: usize, rs: usize) {
        if self.is_identity() || n == 0 {
            return;
        }
        for r in 0..rows {
            let row = &mut block[r * rs..r * rs + n];
            match (self.bias, self.relu) {
                (Some(b), true) => row.iter_mut().zip(b).for_each(|(v, &b)| *v = relu(*v + b)),
                (Some(b), false) => row.iter_mut().zip(b).for_each(|(v, &b)| *v = *v + b),
                (None, _) => row.iter_mut().for_each(|v| *v = relu(*v)),
            }
        }
    }

    /// Applies the epilogue to one row that belongs to output channel `ch`,
    /// the bias indexed by row (conv2d's `[O, OH·OW]` blocks).
    pub(crate) fn apply_channel(&self, row: &mut [T], ch: usize) {
        match (self.bias.map(|b| b[ch]), self.relu) {
            (Some(b), true) => row.iter_mut().for_each(|v| *v = relu(*v + b)),
            (Some(b), false) => row.iter_mut().for_each(|v| *v = *v + b),
            (None, true) => row.iter_mut().for_each(|v| *v = relu(*v)),
            (None, false) => {}
        }
    }

    /// Copies `src` into `dst` through the epilogue (conv2d's scatter from
    /// a grouped product back to NCHW).
    pub(crate) fn copy_channel(&self, dst: &mut [T], src: &[T], ch: usize) {
        match (self.bias.map(|b| b[ch]), self.relu) {
            (Some(b), true) => dst.iter_mut().zip(src).for_each(|(d, &s)| *d = relu(s + b)),
            (Some(b), false) => dst.iter_mut().zip(src).for_each(|(d, &s)| *d = s + b),
            (None, true) => dst.iter_mut().zip(src).for_each(|(d, &s)| *d = relu(s)),
            (None, false) => dst.copy_from_slice(src),
        }
    }
}

/// ReLU as the interpreter defines it (`x < 0` is false for NaN and `-0.0`).
#[inline(always)]
fn relu<T: Element>(x: T) -> T {
    if x < T::ZERO { T::ZERO } else { x }
}
