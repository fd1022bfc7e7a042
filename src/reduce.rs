//! Reductions across a parameter's per-context copies: averaging data copies
//! into one host array (Gluon's `_reduce`, used by save and `reset_ctx`) and
//! accumulating gradients (`grad_req='add'`). Arithmetic is per dtype, in Rust.
//!
//! Device arrays take part by staging through the host (the crate ships no
//! device kernels, so wheels need no nvcc): each copy is read back with one
//! device-to-host copy, summed on the host, and a device result is written
//! back with one host-to-device copy.

use crate::context::Context;
use crate::convert::{with_elem, Elem, Scalar};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::ndarray::NDArray;
use crate::storage::Buffer;

fn check_same(first: &NDArray, other: &NDArray) -> Result<()> {
    if first.shape() != other.shape() || first.dtype() != other.dtype() {
        return Err(Error::ShapeMismatch(format!(
            "cannot reduce arrays of shape {:?} ({}) and {:?} ({})",
            first.shape(),
            first.dtype(),
            other.shape(),
            other.dtype()
        )));
    }
    Ok(())
}

fn average_typed<T: Elem>(srcs: &[&[u8]], dst: &mut [u8]) {
    let n = srcs.len();
    for (i, d) in dst.chunks_exact_mut(T::SIZE).enumerate() {
        let at = i * T::SIZE..(i + 1) * T::SIZE;
        // -0.0 is the additive identity that keeps the sign of negative zeros.
        let mut fsum = -0.0f64;
        let mut isum = 0i128;
        let mut is_int = true;
        for s in srcs {
            match s.get(at.clone()).map(T::read).map(Elem::scalar) {
                Some(Scalar::F(f)) => {
                    is_int = false;
                    fsum += f;
                }
                Some(Scalar::I(v)) => isum += v,
                None => {}
            }
        }
        let value = if is_int {
            Scalar::I(isum / n as i128)
        } else {
            Scalar::F(fsum / n as f64)
        };
        T::from_scalar(value).write(d);
    }
}

/// The element-wise mean of `arrays` (same shape and dtype) as one dense
/// array on `ctx` (host). One array is simply copied. Integer means truncate.
pub fn average(arrays: &[&NDArray], ctx: Context) -> Result<NDArray> {
    let first = arrays
        .first()
        .ok_or_else(|| Error::invalid("cannot reduce an empty list of arrays"))?;
    if arrays.len() == 1 {
        return first.copy_to(ctx);
    }
    for a in arrays.iter().skip(1) {
        check_same(first, a)?;
    }
    let dense: Vec<NDArray> = arrays
        .iter()
        .map(|a| {
            if a.sparse_parts().is_some() {
                crate::sparse::to_dense(a)
            } else {
                Ok((*a).clone())
            }
        })
        .collect::<Result<_>>()?;
    let guards: Vec<_> = dense
        .iter()
        .map(|a| a.buffer().try_read())
        .collect::<Result<_>>()?;
    let slices: Vec<&[u8]> = guards.iter().map(|g| &g[..]).collect();
    let dtype = first.dtype();
    let buffer = Buffer::filled_with(
        first.nbytes(),
        |dst| with_elem!(dtype, T => average_typed::<T>(&slices, dst)),
    )?;
    let host = NDArray::from_buffer(buffer, first.shape().to_vec(), dtype, Context::cpu(0))?;
    if ctx.is_host() {
        Ok(host.with_context(ctx))
    } else {
        host.copy_to(ctx)
    }
}

fn accumulate_typed<T: Elem>(dst: &mut [u8], src: &[u8]) {
    for (d, s) in dst.chunks_exact_mut(T::SIZE).zip(src.chunks_exact(T::SIZE)) {
        T::read(d).add(T::read(s)).write(d);
    }
}

/// `dst += src`, element-wise, for bytes of `dtype` (same length).
pub fn accumulate_bytes(dst: &mut [u8], src: &[u8], dtype: DType) -> Result<()> {
    if dst.len() != src.len() {
        return Err(Error::ShapeMismatch(format!(
            "cannot add {} bytes into {} bytes",
            src.len(),
            dst.len()
        )));
    }
    if dtype == DType::Float32 {
        // The common case, written so the compiler vectorises it.
        for (d, s) in dst.chunks_exact_mut(4).zip(src.chunks_exact(4)) {
            let v = f32::read(d) + f32::read(s);
            d.copy_from_slice(&v.to_le_bytes());
        }
        return Ok(());
    }
    with_elem!(dtype, T => accumulate_typed::<T>(dst, src));
    Ok(())
}

/// `dst += src` for arrays of the same shape and dtype.
pub fn accumulate(dst: &NDArray, src: &NDArray) -> Result<()> {
    check_same(dst, src)?;
    if src.buffer().same_storage(dst.buffer()) {
        let copy = src.copy_to(src.context())?;
        return accumulate(dst, &copy);
    }
    if dst.buffer().is_device() {
        let mut sum = dst.buffer().try_read()?.to_vec();
        accumulate_bytes(&mut sum, &src.buffer().try_read()?, dst.dtype())?;
        return dst.buffer().upload(&sum);
    }
    let s = src.buffer().try_read()?;
    let mut d = dst.buffer().write()?;
    accumulate_bytes(&mut d, &s, dst.dtype())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32s(v: &[f32]) -> NDArray {
        let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        NDArray::from_bytes(&b, &[v.len()], DType::Float32, Context::cpu(0)).expect("array")
    }

    #[test]
    fn averages_and_accumulates() {
        let a = f32s(&[1.0, 2.0]);
        let b = f32s(&[3.0, 6.0]);
        let m = average(&[&a, &b], Context::cpu(0)).expect("avg");
        assert_eq!(&*m.buffer().read(), &*f32s(&[2.0, 4.0]).buffer().read());
        accumulate(&a, &b).expect("add");
        assert_eq!(&*a.buffer().read(), &*f32s(&[4.0, 8.0]).buffer().read());
        accumulate(&a, &a.clone()).expect("self add");
        assert_eq!(&*a.buffer().read(), &*f32s(&[8.0, 16.0]).buffer().read());
        let i = NDArray::from_bytes(&[1, 2], &[2], DType::UInt8, Context::cpu(0)).expect("u8");
        let j = NDArray::from_bytes(&[4, 255], &[2], DType::UInt8, Context::cpu(0)).expect("u8");
        accumulate(&i, &j).expect("add");
        assert_eq!(&*i.buffer().read(), &[5, 1]);
        assert!(average(&[&a, &i], Context::cpu(0)).is_err());
        let z = f32s(&[-0.0, f32::NAN]);
        let m = average(&[&z, &z.clone()], Context::cpu(0)).expect("avg");
        let g = m.buffer().read();
        assert_eq!(&g[..4], &(-0.0f32).to_le_bytes());
        assert!(f32::from_le_bytes([g[4], g[5], g[6], g[7]]).is_nan());
    }
}
