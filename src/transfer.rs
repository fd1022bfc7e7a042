//! Bulk moves of many arrays onto contexts: the fast path of loading a
//! checkpoint to GPUs. Host bytes (typically views of a memory-mapped file)
//! reach the first GPU through [`crate::cuda::upload_batch`]'s ring of pinned
//! staging buffers (parallel host copies overlapping asynchronous copies);
//! further GPUs are filled from the first by device-to-device (peer) copies,
//! so the file is read once whatever the number of devices.

use crate::context::{Context, DeviceType};
use crate::cuda::HostRange;
use crate::error::Result;
use crate::ndarray::NDArray;
use crate::storage::Buffer;

/// Copies of `arrays` on `ctx` (dense; sparse arrays are densified). Host
/// contexts get ordinary copies (`cpu(0)`-labelled arrays are relabelled,
/// not copied, when `ctx` is a plain host context).
pub fn to_context(arrays: &[NDArray], ctx: Context) -> Result<Vec<NDArray>> {
    match ctx.device_type {
        DeviceType::Gpu => upload(arrays, ctx.device_id),
        DeviceType::CpuPinned if crate::cuda::num_gpus() > 0 => {
            arrays.iter().map(|a| a.copy_to(ctx)).collect()
        }
        _ => Ok(arrays.iter().map(|a| a.clone().with_context(ctx)).collect()),
    }
}

/// Copies of `arrays` on each of `ctxs`, in order: the first GPU context is
/// filled from the host in one batched upload, the other GPUs from it.
pub fn to_contexts(arrays: &[NDArray], ctxs: &[Context]) -> Result<Vec<Vec<NDArray>>> {
    let mut out: Vec<Vec<NDArray>> = Vec::with_capacity(ctxs.len());
    let mut first_gpu: Option<usize> = None;
    for (i, &ctx) in ctxs.iter().enumerate() {
        let copies = match (ctx.device_type, first_gpu) {
            (DeviceType::Gpu, Some(f)) => out[f].iter().map(|a| a.copy_to(ctx)).collect(),
            (DeviceType::Gpu, None) => {
                first_gpu = Some(i);
                upload(arrays, ctx.device_id)
            }
            _ => arrays.iter().map(|a| a.copy_to(ctx)).collect(),
        }?;
        out.push(copies);
    }
    Ok(out)
}

fn upload(arrays: &[NDArray], device: u32) -> Result<Vec<NDArray>> {
    crate::cuda::check_device(device)?;
    let ctx = Context::gpu(device);
    let dense: Vec<NDArray> = arrays
        .iter()
        .map(|a| {
            if a.sparse_parts().is_some() {
                crate::sparse::to_dense(a)
            } else {
                Ok(a.clone())
            }
        })
        .collect::<Result<_>>()?;
    let trace = std::env::var_os("MXPARAMS_CUDA_TRACE").is_some();
    let started = std::time::Instant::now();
    let lens: Vec<usize> = dense.iter().map(NDArray::nbytes).collect();
    let bufs = Buffer::device_slab(device, &lens)?;
    let allocated = started.elapsed();
    {
        let guards = dense
            .iter()
            .map(|a| a.buffer().try_read())
            .collect::<Result<Vec<_>>>()?;
        let jobs: Vec<(HostRange<'_>, &crate::cuda::DeviceAlloc)> = guards
            .iter()
            .zip(&dense)
            .zip(&bufs)
            .filter_map(|((g, a), b)| {
                let src = HostRange {
                    bytes: &g[..],
                    file: a.buffer().file_backing(),
                };
                b.device_alloc().map(|d| (src, d))
            })
            .collect();
        crate::cuda::upload_batch(device, &jobs)?;
    }
    if trace {
        let total: usize = lens.iter().sum();
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "mxparams upload: {} arrays, {total} bytes to gpu({device}): alloc {:.2} ms, \
             total {:.2} ms ({:.1} GB/s)",
            lens.len(),
            allocated.as_secs_f64() * 1e3,
            secs * 1e3,
            total as f64 / secs / 1e9
        );
    }
    dense
        .iter()
        .zip(bufs)
        .map(|(a, b)| NDArray::from_buffer(b, a.shape().to_vec(), a.dtype(), ctx))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DType;

    #[test]
    fn host_targets_and_missing_gpus() {
        let a =
            NDArray::from_bytes(&[1, 2, 3, 4], &[4], DType::UInt8, Context::cpu(0)).expect("array");
        let on1 = to_context(std::slice::from_ref(&a), Context::cpu(1)).expect("host");
        assert_eq!(on1[0].context(), Context::cpu(1));
        assert_eq!(&*on1[0].buffer().read(), &[1, 2, 3, 4]);
        let n = u32::try_from(crate::cuda::num_gpus()).expect("few GPUs");
        let err = to_context(&[a], Context::gpu(n)).expect_err("no such GPU");
        assert!(matches!(err, crate::Error::CudaUnavailable(_)), "{err}");
    }
}
