//! Element-level semantics, written once per dtype so kernels can be generic.
//!
//! [`Elem`] is what every dtype has (conversions with `dl.cast` semantics,
//! ordering); [`Num`] adds PyTorch's arithmetic for the numeric dtypes
//! (integers wrap, NaN propagates through max/min); [`Real`] the float-only
//! functions. Keeping the per-dtype rules here means a kernel such as `dl.add`
//! is written once and cannot disagree between f32 and i64.

use std::fmt::Debug;

/// An element of any dtype, convertible as `dl.cast` converts: floats to
/// integers truncate toward zero (out-of-range values saturate, NaN gives 0,
/// where PyTorch's result is platform-defined); integers to narrower integers
/// wrap; nonzero (NaN included) is `true`; `true` is 1.
pub trait Elem: Copy + PartialOrd + Debug + Send + Sync + 'static {
    /// The value as f64 (`i1` as 0 or 1).
    fn to_f64(self) -> f64;
    /// Converts to f32.
    fn as_f32(self) -> f32;
    /// Converts to f64.
    fn as_f64(self) -> f64;
    /// Converts to i32.
    fn as_i32(self) -> i32;
    /// Converts to i64.
    fn as_i64(self) -> i64;
    /// Converts to a boolean: nonzero is true.
    fn as_bool(self) -> bool;
    /// True only for a float NaN.
    fn is_nan(self) -> bool;
}

macro_rules! elem_number {
    ($t:ty, $nan:expr) => {
        impl Elem for $t {
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn as_f32(self) -> f32 {
                self as f32
            }
            fn as_f64(self) -> f64 {
                self as f64
            }
            fn as_i32(self) -> i32 {
                self as i32
            }
            fn as_i64(self) -> i64 {
                self as i64
            }
            fn as_bool(self) -> bool {
                #[allow(clippy::float_cmp)]
                let zero = self == (0 as $t);
                !zero
            }
            #[allow(clippy::redundant_closure_call)]
            fn is_nan(self) -> bool {
                ($nan)(self)
            }
        }
    };
}

elem_number!(f32, |x: f32| x.is_nan());
elem_number!(f64, |x: f64| x.is_nan());
elem_number!(i32, |_| false);
elem_number!(i64, |_| false);

impl Elem for bool {
    fn to_f64(self) -> f64 {
        self as u8 as f64
    }
    fn as_f32(self) -> f32 {
        self as u8 as f32
    }
    fn as_f64(self) -> f64 {
        self as u8 as f64
    }
    fn as_i32(self) -> i32 {
        self as i32
    }
    fn as_i64(self) -> i64 {
        self as i64
    }
    fn as_bool(self) -> bool {
        self
    }
    fn is_nan(self) -> bool {
        false
    }
}

/// A numeric element (not `i1`) with PyTorch's arithmetic.
pub trait Num: Elem {
    /// Additive identity.
    const ZERO: Self;
    /// `a + b` (integers wrap, as PyTorch's do).
    fn add(self, o: Self) -> Self;
    /// `a - b` (integers wrap).
    fn sub(self, o: Self) -> Self;
    /// `a * b` (integers wrap).
    fn mul(self, o: Self) -> Self;
    /// `a / b`; integers truncate toward zero and `None` means division by
    /// zero (floats give ±inf or NaN instead).
    fn div(self, o: Self) -> Option<Self>;
    /// `-a` (integers wrap).
    fn neg(self) -> Self;
    /// `|a|` (integers wrap at the minimum, as PyTorch's do).
    fn abs(self) -> Self;
    /// The larger of two values; NaN if either is NaN (`torch.maximum`).
    fn nan_max(self, o: Self) -> Self {
        if self.is_nan() || o.is_nan() {
            if self.is_nan() { self } else { o }
        } else if o > self {
            o
        } else {
            self
        }
    }
    /// The smaller of two values; NaN if either is NaN (`torch.minimum`).
    fn nan_min(self, o: Self) -> Self {
        if self.is_nan() || o.is_nan() {
            if self.is_nan() { self } else { o }
        } else if o < self {
            o
        } else {
            self
        }
    }
}

macro_rules! num_int {
    ($t:ty) => {
        impl Num for $t {
            const ZERO: Self = 0;
            fn add(self, o: Self) -> Self {
                self.wrapping_add(o)
            }
            fn sub(self, o: Self) -> Self {
                self.wrapping_sub(o)
            }
            fn mul(self, o: Self) -> Self {
                self.wrapping_mul(o)
            }
            fn div(self, o: Self) -> Option<Self> {
                // wrapping_div: MIN / -1 wraps to MIN instead of trapping.
                (o != 0).then(|| self.wrapping_div(o))
            }
            fn neg(self) -> Self {
                self.wrapping_neg()
            }
            fn abs(self) -> Self {
                self.wrapping_abs()
            }
        }
    };
}

macro_rules! num_float {
    ($t:ty) => {
        impl Num for $t {
            const ZERO: Self = 0.0;
            fn add(self, o: Self) -> Self {
                self + o
            }
            fn sub(self, o: Self) -> Self {
                self - o
            }
            fn mul(self, o: Self) -> Self {
                self * o
            }
            fn div(self, o: Self) -> Option<Self> {
                Some(self / o)
            }
            fn neg(self) -> Self {
                -self
            }
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
        }
    };
}

num_int!(i32);
num_int!(i64);
num_float!(f32);
num_float!(f64);

/// A float element: f32 or f64. The functions are the standard library's
/// (libm's), evaluated in the element's own precision.
pub trait Real:
    Num
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::Neg<Output = Self>
{
    /// One.
    const ONE: Self;
    /// Negative infinity, the identity of max and the padding of max-pooling.
    const NEG_INFINITY: Self;
    /// Rounds an f64 to this type (the one rounding step of every
    /// f64-accumulated result).
    fn of(x: f64) -> Self;
    /// `e^x`.
    fn exp(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// Square root.
    fn sqrt(self) -> Self;
    /// Hyperbolic tangent.
    fn tanh(self) -> Self;
    /// `self^o`, as `f32::powf` (the C `pow` rules for special values).
    fn powf(self, o: Self) -> Self;
}

macro_rules! real {
    ($t:ty) => {
        impl Real for $t {
            const ONE: Self = 1.0;
            const NEG_INFINITY: Self = <$t>::NEG_INFINITY;
            fn of(x: f64) -> Self {
                x as $t
            }
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            fn powf(self, o: Self) -> Self {
                <$t>::powf(self, o)
            }
        }
    };
}

real!(f32);
real!(f64);

/// A compensated (Neumaier) sum in f64. Every sum the interpreter takes —
/// reductions, means, softmax denominators — goes through it, so the oracle is
/// more accurate than the float-order-dependent sums of the backends it
/// judges: for f32 data the result is the correctly rounded sum in nearly all
/// cases, and for f64 data the error does not grow with the length.
pub fn sum_f64(values: impl IntoIterator<Item = f64>) -> f64 {
    let (mut sum, mut comp) = (0.0f64, 0.0f64);
    for v in values {
        let t = sum + v;
        if sum.abs() >= v.abs() {
            comp += (sum - t) + v;
        } else {
            comp += (v - t) + sum;
        }
        sum = t;
    }
    // An infinite or NaN partial sum makes the compensation NaN; the plain
    // sum is then the IEEE answer (inf, -inf or NaN).
    if sum.is_finite() { sum + comp } else { sum }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn casts_truncate_toward_zero_and_treat_nonzero_as_true() {
        assert_eq!((-2.7f32).as_i32(), -2);
        assert_eq!(2.7f64.as_i64(), 2);
        assert!(f32::NAN.as_bool() && (-0.5f64).as_bool() && !0.0f32.as_bool() && !(-0.0f64).as_bool());
        assert_eq!(true.as_f32(), 1.0);
        assert_eq!((1i64 << 32 | 5).as_i32(), 5);
    }

    #[test]
    fn integer_arithmetic_wraps_and_division_truncates() {
        assert_eq!(i32::MAX.add(1), i32::MIN);
        assert_eq!((-7i32).div(2), Some(-3));
        assert_eq!(7i64.div(-2), Some(-3));
        assert_eq!(7i64.div(0), None);
        assert_eq!(i32::MIN.div(-1), Some(i32::MIN));
        assert_eq!(1.0f32.div(0.0), Some(f32::INFINITY));
    }

    #[test]
    fn maximum_and_minimum_propagate_nan() {
        assert!(f32::NAN.nan_max(1.0).is_nan() && 1.0f32.nan_max(f32::NAN).is_nan());
        assert!(f64::NAN.nan_min(1.0).is_nan() && 1.0f64.nan_min(f64::NAN).is_nan());
        assert_eq!(3i32.nan_max(-4), 3);
        assert_eq!(3i32.nan_min(-4), -4);
    }

    #[test]
    fn compensated_sum_keeps_small_terms() {
        // 1 + 1e-16 + 1e-16 - 1: a naive left fold gives 0.
        assert_eq!(sum_f64([1.0, 1e-16, 1e-16, -1.0]), 2e-16);
        assert_eq!(sum_f64([1.0, f64::INFINITY]), f64::INFINITY);
        assert!(sum_f64([f64::INFINITY, f64::NEG_INFINITY]).is_nan());
        assert_eq!(sum_f64([]), 0.0);
    }
}
