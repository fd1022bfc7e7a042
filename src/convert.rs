//! Element-wise dtype conversion between all 13 dtypes, with numpy's `astype`
//! semantics: floats to integers truncate toward zero (saturating where numpy
//! is undefined), integers to integers wrap, anything to bool is `!= 0`, and
//! float16 / bfloat16 go through float32 (the `half` crate). Bytes are
//! little-endian and may be unaligned (memory-mapped files have no padding).
//!
//! This module only converts bytes; it never allocates arrays of its own
//! except in [`cast`].

use half::{bf16, f16};

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::ndarray::{NDArray, SType};
use crate::storage::Buffer;

/// A value on its way between two dtypes: integers stay exact.
#[derive(Clone, Copy)]
pub(crate) enum Scalar {
    /// A floating-point value.
    F(f64),
    /// An integer (every integer dtype fits in i128).
    I(i128),
}

/// A Rust element type standing for one dtype.
pub(crate) trait Elem: Copy + Send + Sync + 'static {
    /// Bytes per element.
    const SIZE: usize;
    /// Reads one little-endian element from exactly `SIZE` bytes.
    fn read(b: &[u8]) -> Self;
    /// Writes one little-endian element into exactly `SIZE` bytes.
    fn write(self, b: &mut [u8]);
    /// The value as a scalar.
    fn scalar(self) -> Scalar;
    /// The value from a scalar, with `astype` semantics.
    fn from_scalar(s: Scalar) -> Self;
    /// `self + other` in the element's own arithmetic (wrapping for integers).
    fn add(self, other: Self) -> Self;
}

macro_rules! int_elem {
    ($t:ty) => {
        impl Elem for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            #[inline]
            fn read(b: &[u8]) -> Self {
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(b);
                <$t>::from_le_bytes(a)
            }
            #[inline]
            fn write(self, b: &mut [u8]) {
                b.copy_from_slice(&self.to_le_bytes());
            }
            #[inline]
            fn scalar(self) -> Scalar {
                Scalar::I(self as i128)
            }
            #[inline]
            fn from_scalar(s: Scalar) -> Self {
                match s {
                    Scalar::I(i) => i as $t,
                    // Truncates toward zero; NaN gives 0 and out-of-range saturates.
                    Scalar::F(f) => {
                        if f.is_finite() && f.abs() < 1.8e19 {
                            (f as i128) as $t
                        } else {
                            f as $t
                        }
                    }
                }
            }
            #[inline]
            fn add(self, other: Self) -> Self {
                self.wrapping_add(other)
            }
        }
    };
}

int_elem!(u8);
int_elem!(i8);
int_elem!(i16);
int_elem!(u16);
int_elem!(i32);
int_elem!(u32);
int_elem!(i64);
int_elem!(u64);

macro_rules! float_elem {
    ($t:ty, $n:expr, $to:expr, $from:expr) => {
        impl Elem for $t {
            const SIZE: usize = $n;
            #[inline]
            fn read(b: &[u8]) -> Self {
                let mut a = [0u8; $n];
                a.copy_from_slice(b);
                <$t>::from_le_bytes(a)
            }
            #[inline]
            fn write(self, b: &mut [u8]) {
                b.copy_from_slice(&self.to_le_bytes());
            }
            #[inline]
            fn scalar(self) -> Scalar {
                Scalar::F($to(self))
            }
            #[inline]
            fn from_scalar(s: Scalar) -> Self {
                match s {
                    Scalar::F(f) => $from(f),
                    Scalar::I(i) => $from(i as f64),
                }
            }
            #[inline]
            fn add(self, other: Self) -> Self {
                $from($to(self) + $to(other))
            }
        }
    };
}

float_elem!(f32, 4, |x: f32| x as f64, |f: f64| f as f32);
float_elem!(f64, 8, |x: f64| x, |f: f64| f);
float_elem!(f16, 2, |x: f16| x.to_f64(), |f: f64| f16::from_f32(
    f as f32
));
float_elem!(bf16, 2, |x: bf16| x.to_f64(), |f: f64| bf16::from_f32(
    f as f32
));

/// numpy's `bool`: one byte, 0 or 1.
#[derive(Clone, Copy)]
pub(crate) struct Bool(pub(crate) bool);

impl Elem for Bool {
    const SIZE: usize = 1;
    #[inline]
    fn read(b: &[u8]) -> Self {
        Bool(b.first().is_some_and(|&x| x != 0))
    }
    #[inline]
    fn write(self, b: &mut [u8]) {
        if let Some(x) = b.first_mut() {
            *x = u8::from(self.0);
        }
    }
    #[inline]
    fn scalar(self) -> Scalar {
        Scalar::I(i128::from(self.0))
    }
    #[inline]
    fn from_scalar(s: Scalar) -> Self {
        Bool(match s {
            Scalar::I(i) => i != 0,
            Scalar::F(f) => f != 0.0,
        })
    }
    #[inline]
    fn add(self, other: Self) -> Self {
        Bool(self.0 || other.0)
    }
}

/// Runs `$body` with `$t` bound to the element type of `$dtype`.
macro_rules! with_elem {
    ($dtype:expr, $t:ident => $body:expr) => {
        match $dtype {
            DType::Float32 => {
                type $t = f32;
                $body
            }
            DType::Float64 => {
                type $t = f64;
                $body
            }
            DType::Float16 => {
                type $t = half::f16;
                $body
            }
            DType::BFloat16 => {
                type $t = half::bf16;
                $body
            }
            DType::UInt8 => {
                type $t = u8;
                $body
            }
            DType::Int8 => {
                type $t = i8;
                $body
            }
            DType::Int16 => {
                type $t = i16;
                $body
            }
            DType::UInt16 => {
                type $t = u16;
                $body
            }
            DType::Int32 => {
                type $t = i32;
                $body
            }
            DType::UInt32 => {
                type $t = u32;
                $body
            }
            DType::Int64 => {
                type $t = i64;
                $body
            }
            DType::UInt64 => {
                type $t = u64;
                $body
            }
            DType::Bool => {
                type $t = $crate::convert::Bool;
                $body
            }
        }
    };
}
pub(crate) use with_elem;

fn convert_typed<S: Elem, D: Elem>(src: &[u8], dst: &mut [u8]) {
    for (s, d) in src.chunks_exact(S::SIZE).zip(dst.chunks_exact_mut(D::SIZE)) {
        D::from_scalar(S::read(s).scalar()).write(d);
    }
}

/// Converts the elements in `src` (of `from`) into `dst` (of `to`).
///
/// Both slices must hold the same number of elements; a same-dtype
/// conversion is a plain copy.
pub fn convert_bytes(src: &[u8], from: DType, dst: &mut [u8], to: DType) -> Result<()> {
    let n = src.len() / from.itemsize();
    if src.len() % from.itemsize() != 0 || dst.len() != n * to.itemsize() {
        return Err(Error::ShapeMismatch(format!(
            "cannot convert {} bytes of {from} into {} bytes of {to}",
            src.len(),
            dst.len()
        )));
    }
    if from == to {
        crate::storage::copy_bytes(dst, src);
        return Ok(());
    }
    with_elem!(from, S => with_elem!(to, D => convert_typed::<S, D>(src, dst)));
    Ok(())
}

/// A dense copy of `src` converted to `dtype`, on `src`'s context.
pub fn cast(src: &NDArray, dtype: DType) -> Result<NDArray> {
    let src = if src.sparse_parts().is_some() {
        crate::sparse::to_dense(src)?
    } else {
        src.clone()
    };
    let n = src.size();
    let nbytes = n
        .checked_mul(dtype.itemsize())
        .ok_or_else(|| Error::invalid("array too large"))?;
    let guard = src.buffer().try_read()?;
    let mut result = Ok(());
    let buffer = Buffer::filled_with(nbytes, |dst| {
        result = convert_bytes(&guard, src.dtype(), dst, dtype);
    })?;
    result?;
    if src.context().is_host() {
        return NDArray::from_buffer(buffer, src.shape().to_vec(), dtype, src.context());
    }
    // Device arrays convert on the host (no device kernels) and go back.
    NDArray::from_buffer(
        buffer,
        src.shape().to_vec(),
        dtype,
        crate::context::Context::cpu(0),
    )?
    .copy_to(src.context())
}

/// Writes `src` into `dst` in place, converting the dtype if they differ.
/// Shapes must have the same number of elements.
pub fn assign_cast(dst: &NDArray, src: &NDArray) -> Result<()> {
    if dst.sparse_parts().is_some() {
        let src = match src.stype() {
            SType::Default if src.shape() != dst.shape() && src.size() == dst.size() => {
                src.reshaped(dst.shape().to_vec())?
            }
            _ => src.clone(),
        };
        return crate::sparse::assign(dst, &src, false);
    }
    if src.sparse_parts().is_some() {
        return assign_cast(dst, &crate::sparse::to_dense(src)?);
    }
    if dst.size() != src.size() {
        return Err(Error::ShapeMismatch(format!(
            "cannot assign an array of shape {:?} to one of shape {:?}",
            src.shape(),
            dst.shape()
        )));
    }
    if src.buffer().same_storage(dst.buffer()) && src.dtype() == dst.dtype() {
        return Ok(());
    }
    let device = src.buffer().is_device() || dst.buffer().is_device();
    if device && src.dtype() == dst.dtype() && src.sparse_parts().is_none() {
        return crate::storage::copy_buffer(dst.buffer(), src.buffer());
    }
    let s = src.buffer().try_read()?;
    if dst.buffer().is_device() {
        let mut staged = vec![0u8; dst.nbytes()];
        convert_bytes(&s, src.dtype(), &mut staged, dst.dtype())?;
        return dst.buffer().upload(&staged);
    }
    let mut d = dst.buffer().write()?;
    convert_bytes(&s, src.dtype(), &mut d, dst.dtype())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::ALL_DTYPES;

    #[test]
    fn numpy_semantics() {
        let src: Vec<u8> = [-1.5f32, 2.7, 300.0, 0.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let mut dst = vec![0u8; 4];
        convert_bytes(&src, DType::Float32, &mut dst, DType::Int8).expect("convert");
        assert_eq!(dst, vec![(-1i8) as u8, 2, 44, 0]); // 300 -> wraps like numpy (via int)
        let mut b = vec![9u8; 4];
        convert_bytes(&src, DType::Float32, &mut b, DType::Bool).expect("convert");
        assert_eq!(b, vec![1, 1, 1, 0]);
        let big = (u64::MAX - 1).to_le_bytes();
        let mut i = [0u8; 8];
        convert_bytes(&big, DType::UInt64, &mut i, DType::Int64).expect("convert");
        assert_eq!(i64::from_le_bytes(i), -2);
    }

    #[test]
    fn every_pair_round_trips_small_integers() {
        for from in ALL_DTYPES {
            for to in ALL_DTYPES {
                let vals = [0i128, 1, 1, 0, 1];
                let mut src = vec![0u8; vals.len() * from.itemsize()];
                with_elem!(from, T => for (v, c) in vals.iter().zip(src.chunks_exact_mut(T::SIZE)) {
                    T::from_scalar(Scalar::I(*v)).write(c);
                });
                let mut mid = vec![0u8; vals.len() * to.itemsize()];
                convert_bytes(&src, from, &mut mid, to).expect("convert");
                let mut back = vec![0u8; src.len()];
                convert_bytes(&mid, to, &mut back, from).expect("convert");
                assert_eq!(back, src, "{from} -> {to}");
            }
        }
    }
}
