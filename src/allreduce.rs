//! Gradient all-reduce across a parameter's per-context copies on one machine
//! (Gluon's `Trainer.allreduce_grads` without a kvstore): each gradient is
//! replaced by the element-wise sum over the parameter's contexts, so every
//! copy then takes the same update.
//!
//! The work is split into cache-sized chunks across all parameters and run on
//! the rayon pool: each chunk is summed into the first context's buffer
//! (`reduce::accumulate_bytes`, fixed context order, so the result is
//! deterministic) and copied back to the others while it is still in cache.
//! Groups with GPU copies are staged through the host with the same order.

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::ndarray::{NDArray, SType};
use crate::param_dict::{read, DictEntry, ParameterDict, SharedParameter};
use crate::parameter::Parameter;
use crate::reduce::accumulate_bytes;
use crate::storage::WriteGuard;

/// Bytes per work item: small enough to stay in L2 between the sum and the
/// copy-back, large enough to amortise scheduling.
const CHUNK: usize = 128 << 10;

fn check_group(arrays: &[NDArray]) -> Result<()> {
    let Some(first) = arrays.first() else {
        return Ok(());
    };
    for (i, a) in arrays.iter().enumerate() {
        if a.shape() != first.shape() || a.dtype() != first.dtype() {
            return Err(Error::ShapeMismatch(format!(
                "cannot all-reduce gradients of shape {:?} ({}) and {:?} ({})",
                first.shape(),
                first.dtype(),
                a.shape(),
                a.dtype()
            )));
        }
        if a.stype() != SType::Default {
            return Err(Error::invalid(format!(
                "cannot all-reduce a {} gradient; only dense gradients are supported",
                a.stype()
            )));
        }
        if arrays[..i]
            .iter()
            .any(|b| b.buffer().same_storage(a.buffer()))
        {
            return Err(Error::invalid(
                "cannot all-reduce gradients that share one buffer",
            ));
        }
    }
    Ok(())
}

fn reduce_chunk(chunks: &mut [&mut [u8]], dtype: crate::dtype::DType) -> Result<()> {
    let Some((first, rest)) = chunks.split_first_mut() else {
        return Ok(());
    };
    for r in rest.iter() {
        accumulate_bytes(first, r, dtype)?;
    }
    for r in rest.iter_mut() {
        r.copy_from_slice(first);
    }
    Ok(())
}

/// Sums each group of same-shaped arrays in place: afterwards every array of
/// a group holds the group's element-wise sum. Groups of one are untouched.
/// All groups are processed together on the rayon pool.
pub fn allreduce_groups(groups: &[Vec<NDArray>]) -> Result<()> {
    let groups: Vec<&Vec<NDArray>> = groups.iter().filter(|g| g.len() > 1).collect();
    for g in &groups {
        check_group(g)?;
    }
    // Groups with GPU copies are summed through the host (no device kernels).
    let (device, groups): (Vec<&Vec<NDArray>>, Vec<&Vec<NDArray>>) = groups
        .into_iter()
        .partition(|g| g.iter().any(|a| a.buffer().is_device()));
    for g in device {
        allreduce_staged(g)?;
    }
    // Take every write lock up front, in a fixed order (parameter, context).
    let mut guards: Vec<Vec<WriteGuard<'_>>> = groups
        .iter()
        .map(|g| g.iter().map(|a| a.buffer().write()).collect())
        .collect::<Result<_>>()?;
    let mut items: Vec<(Vec<&mut [u8]>, crate::dtype::DType)> = Vec::new();
    for (g, gs) in groups.iter().zip(guards.iter_mut()) {
        let Some(first) = g.first() else { continue };
        let (nbytes, dtype) = (first.nbytes(), first.dtype());
        // A chunk holds whole elements.
        let chunk = CHUNK - CHUNK % dtype.itemsize().max(1);
        let start = items.len();
        for (k, guard) in gs.iter_mut().enumerate() {
            let bytes = guard
                .get_mut(..nbytes)
                .ok_or_else(|| Error::invalid("gradient buffer is shorter than its array"))?;
            for (j, c) in bytes.chunks_mut(chunk).enumerate() {
                if k == 0 {
                    items.push((Vec::with_capacity(g.len()), dtype));
                }
                if let Some(item) = items.get_mut(start + j) {
                    item.0.push(c);
                }
            }
        }
    }
    items
        .into_par_iter()
        .try_for_each(|(mut chunks, dtype)| reduce_chunk(&mut chunks, dtype))
}

/// Sums a group holding device arrays: one device-to-host copy per array,
/// the same fixed-order host sum as the in-memory path, one copy back each.
fn allreduce_staged(group: &[NDArray]) -> Result<()> {
    let Some((first, rest)) = group.split_first() else {
        return Ok(());
    };
    let mut sum = first.buffer().try_read()?.to_vec();
    for a in rest {
        accumulate_bytes(&mut sum, &a.buffer().try_read()?, first.dtype())?;
    }
    group.iter().try_for_each(|a| a.buffer().upload(&sum))
}

fn grads_of(p: &SharedParameter) -> Vec<NDArray> {
    read(p).grads().map(<[NDArray]>::to_vec).unwrap_or_default()
}

impl Parameter {
    /// Replaces the gradient on every context with the sum over all contexts
    /// (a no-op with one context or `grad_req='null'`).
    pub fn allreduce_grads(&self) -> Result<()> {
        let grads = self.grads().map(<[NDArray]>::to_vec).unwrap_or_default();
        allreduce_groups(&[grads])
    }
}

impl<E: DictEntry> ParameterDict<E> {
    /// [`Parameter::allreduce_grads`] for every parameter, in parallel over
    /// parameters and chunks. Parameter locks are released before any work.
    pub fn allreduce_grads(&self) -> Result<()> {
        let groups: Vec<Vec<NDArray>> = self.parameters().map(grads_of).collect();
        allreduce_groups(&groups)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Context;
    use crate::dtype::DType;

    fn f32s(v: &[f32], ctx: Context) -> NDArray {
        let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        NDArray::from_bytes(&b, &[v.len()], DType::Float32, ctx).expect("array")
    }

    fn values(a: &NDArray) -> Vec<f32> {
        a.buffer()
            .read()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    #[test]
    fn sums_into_every_copy() {
        let n = 100_000; // several chunks
        let a: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let b: Vec<f32> = (0..n).map(|i| 2.0 * i as f32).collect();
        let c: Vec<f32> = vec![1.0; n];
        let g = vec![
            f32s(&a, Context::cpu(0)),
            f32s(&b, Context::cpu(1)),
            f32s(&c, Context::cpu(2)),
        ];
        let single = vec![f32s(&[5.0], Context::cpu(0))];
        allreduce_groups(&[g.clone(), single.clone()]).expect("allreduce");
        let want: Vec<f32> = (0..n).map(|i| 3.0 * i as f32 + 1.0).collect();
        for x in &g {
            assert_eq!(values(x), want);
        }
        assert_eq!(values(&single[0]), [5.0]);
    }

    #[test]
    fn rejects_mismatch_and_aliasing() {
        let a = f32s(&[1.0, 2.0], Context::cpu(0));
        let b = f32s(&[1.0], Context::cpu(1));
        assert!(allreduce_groups(&[vec![a.clone(), b]]).is_err());
        assert!(allreduce_groups(&[vec![a.clone(), a.clone()]]).is_err());
        let i = NDArray::from_bytes(&[1, 2], &[2], DType::UInt8, Context::cpu(0)).expect("u8");
        let j = NDArray::from_bytes(&[3, 4], &[2], DType::UInt8, Context::cpu(1)).expect("u8");
        allreduce_groups(&[vec![i.clone(), j.clone()]]).expect("u8");
        assert_eq!(&*i.buffer().read(), &[4, 6]);
        assert_eq!(&*j.buffer().read(), &[4, 6]);
    }

    #[test]
    fn parameter_dict_allreduce() {
        let mut d = ParameterDict::new("", None);
        let p = d
            .get("w", &crate::param_dict::ParamAttrs::default())
            .expect("get");
        let host = f32s(&[1.0, 2.0, 3.0], Context::cpu(0));
        crate::param_dict::write(&p)
            .init_from_host(&host, &[Context::cpu(0), Context::cpu(1)])
            .expect("init");
        {
            let q = read(&p);
            q.deliver_grad(
                Some(Context::cpu(0)),
                &f32s(&[1.0, 1.0, 1.0], Context::cpu(0)),
            )
            .expect("g0");
            q.deliver_grad(
                Some(Context::cpu(1)),
                &f32s(&[2.0, 3.0, 4.0], Context::cpu(0)),
            )
            .expect("g1");
        }
        d.allreduce_grads().expect("allreduce");
        for g in grads_of(&p) {
            assert_eq!(values(&g), [3.0, 4.0, 5.0]);
        }
        read(&p).allreduce_grads().expect("again");
        for g in grads_of(&p) {
            assert_eq!(values(&g), [6.0, 8.0, 10.0]);
        }
    }
}
