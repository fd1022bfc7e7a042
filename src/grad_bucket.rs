//! Gradient buckets: the gradients of several parameters on one context as
//! ranges of one contiguous host allocation (PyTorch DDP's
//! `gradient_as_bucket_view`), so a collective can run on the whole bucket
//! in place and no gradient is copied in or out of a communication buffer.

use std::sync::Arc;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::ndarray::NDArray;
use crate::param_dict::{read, write, SharedParameter};
use crate::storage::{Buffer, HOST_ALIGN};

/// Moves the gradients of `params` on `ctx` into one zeroed host allocation
/// and returns it as a flat array (all of one dtype, each gradient on a
/// 64-byte boundary; the gaps stay zero). Each parameter's gradient on
/// `ctx` becomes its range of the bucket, with its current values, and its
/// version changes (cached views are refreshed).
///
/// The bucket's bytes are reached through DLPack / numpy views or through
/// the parameters' gradients; Rust-side reads and writes of the returned
/// array itself are refused, since its ranges are locked separately.
///
/// Errors: an empty list, a parameter listed twice, one without a gradient
/// or not on `ctx`, sparse gradients, mixed dtypes, or a context whose
/// memory is not ordinary host memory (`cpu`, `cpu_shared`).
pub fn bucket_grads(params: &[SharedParameter], ctx: Context) -> Result<NDArray> {
    if params.is_empty() {
        return Err(Error::invalid("bucket_grads needs at least one parameter"));
    }
    for (i, p) in params.iter().enumerate() {
        if params[..i].iter().any(|q| Arc::ptr_eq(p, q)) {
            return Err(Error::invalid(format!(
                "Parameter '{}' is listed twice",
                read(p).name()
            )));
        }
    }
    let mut lens = Vec::with_capacity(params.len());
    let mut shapes = Vec::with_capacity(params.len());
    let mut dtype = None;
    for p in params {
        let p = read(p);
        let g = p.grad(Some(ctx))?;
        if g.stype() != crate::ndarray::SType::Default {
            return Err(Error::invalid(format!(
                "Parameter '{}' has a sparse gradient: it cannot live in a bucket",
                p.name()
            )));
        }
        if g.buffer().is_device() || g.buffer().is_pinned() {
            return Err(Error::invalid(format!(
                "gradient buckets live in ordinary host memory; Parameter '{}' is on {}",
                p.name(),
                g.context()
            )));
        }
        match dtype {
            None => dtype = Some(g.dtype()),
            Some(d) if d != g.dtype() => {
                return Err(Error::invalid(format!(
                    "a bucket holds one dtype: Parameter '{}' is {}, the first is {d}",
                    p.name(),
                    g.dtype()
                )))
            }
            Some(_) => {}
        }
        lens.push(g.nbytes());
        shapes.push(g.shape().to_vec());
    }
    let dtype = dtype.ok_or_else(|| Error::invalid("no gradients"))?;
    let (whole, parts) = Buffer::zeroed_slab(&lens)?;
    debug_assert_eq!(whole.len() % HOST_ALIGN, 0);
    let bucket = NDArray::from_buffer(
        whole.clone(),
        vec![whole.len() / dtype.itemsize()],
        dtype,
        ctx,
    )?;
    for ((p, part), shape) in params.iter().zip(parts).zip(shapes) {
        let view = NDArray::from_buffer(part, shape, dtype, ctx)?;
        write(p).replace_grad(Some(ctx), view)?;
    }
    Ok(bucket)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DType;
    use crate::parameter::Parameter;
    use std::sync::RwLock;

    fn param(name: &str, shape: &[usize], fill: f32) -> SharedParameter {
        let mut p = Parameter::new(name).with_shape(shape);
        let n: usize = shape.iter().product();
        let bytes: Vec<u8> = (0..n)
            .flat_map(|i| (fill + i as f32).to_le_bytes())
            .collect();
        let data = NDArray::from_bytes(&bytes, shape, DType::Float32, Context::cpu(0)).unwrap();
        p.init_from_host(&data, &[Context::cpu(0)]).unwrap();
        p.deliver_grad_bytes(None, &bytes).unwrap();
        Arc::new(RwLock::new(p))
    }

    #[test]
    fn grads_become_ranges_of_the_bucket_and_keep_their_values() {
        let a = param("a", &[3, 2], 1.0);
        let b = param("b", &[5], 10.0);
        let before = read(&a).version();
        let bucket = bucket_grads(&[a.clone(), b.clone()], Context::cpu(0)).unwrap();
        assert_ne!(read(&a).version(), before);
        let start = bucket.buffer().as_ptr() as usize;
        let end = start + bucket.nbytes();
        for (p, first) in [(&a, 1.0f32), (&b, 10.0)] {
            let g = read(p).grad(None).unwrap();
            let at = g.buffer().as_ptr() as usize;
            assert!(at >= start && at + g.nbytes() <= end);
            assert_eq!(at % HOST_ALIGN, 0);
            let v = g.buffer().try_read().unwrap();
            assert_eq!(&v[..4], &first.to_le_bytes());
        }
        assert!(bucket.buffer().try_read().is_err());
        assert!(bucket.buffer().write().is_err());
    }

    #[test]
    fn refuses_duplicates_mixed_dtypes_and_empty_lists() {
        let a = param("a", &[2], 0.0);
        assert!(bucket_grads(&[], Context::cpu(0)).is_err());
        assert!(bucket_grads(&[a.clone(), a.clone()], Context::cpu(0)).is_err());
        let mut h = Parameter::new("h")
            .with_shape(&[2])
            .with_dtype(DType::Float16);
        let z = NDArray::zeros(&[2], DType::Float16, Context::cpu(0)).unwrap();
        h.init_from_host(&z, &[Context::cpu(0)]).unwrap();
        let h = Arc::new(RwLock::new(h));
        assert!(bucket_grads(&[a, h], Context::cpu(0)).is_err());
    }
}
