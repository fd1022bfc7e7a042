//! Turns parsed record views into `NDArray`s: owned copies (64-byte aligned,
//! copied in parallel when there is enough data to pay for it) or read-only
//! views sharing the source.

use std::ops::Range;
use std::sync::Arc;

use rayon::prelude::*;

use crate::context::Context;
use crate::dtype::DType;
use crate::error::Result;
use crate::ndarray::{NDArray, SType};
use crate::storage::{Buffer, SharedSource};

use super::reader::{AuxRole, RecordView, Stream};
use super::Loaded;

/// Below this much data in total, copying on one thread beats fanning out.
const PARALLEL_BYTES: usize = 4 << 20;
/// Data per parallel task.
const CHUNK_BYTES: usize = 1 << 20;

/// Assembles one record from a function producing each byte range's buffer.
fn assemble(
    rec: RecordView,
    mut buf: impl FnMut(Range<usize>) -> Result<Buffer>,
) -> Result<NDArray> {
    let ctx = Context::cpu(0);
    let values = buf(rec.data.clone())?;
    if rec.stype == SType::Default {
        return NDArray::from_buffer(values, rec.shape, rec.dtype, ctx);
    }
    let values = NDArray::from_buffer(values, rec.storage_shape, rec.dtype, ctx)?;
    let mut aux = |role| -> Result<Option<NDArray>> {
        match rec.aux.iter().find(|a| a.role == role) {
            None => Ok(None),
            Some(a) => {
                let b = buf(a.data.clone())?;
                NDArray::from_buffer(b, vec![a.len], DType::Int64, ctx).map(Some)
            }
        }
    };
    let indptr = aux(AuxRole::Indptr)?;
    let indices = match aux(AuxRole::Indices)? {
        Some(i) => i,
        None => crate::sparse::empty_index()?,
    };
    NDArray::sparse(rec.stype, rec.shape, values, indices, indptr)
}

fn copy_range(bytes: &[u8], r: Range<usize>) -> Result<Buffer> {
    Buffer::copy_from(bytes.get(r).unwrap_or_default())
}

/// One record copied into owned memory.
pub(crate) fn owned_array(bytes: &[u8], rec: RecordView) -> Result<NDArray> {
    assemble(rec, |r| copy_range(bytes, r))
}

/// Every record copied into owned memory: one slab for the whole file (one
/// allocation, reusable as a whole by the next load through the host pool:
/// fresh-page faults, not parsing, dominate large loads), filled in parallel
/// when there is enough data.
pub(crate) fn owned(bytes: &[u8]) -> Result<Loaded> {
    owned_with(bytes, &|r: &Range<usize>, dst: &mut [u8]| {
        crate::storage::copy_bytes(dst, bytes.get(r.clone()).unwrap_or_default());
        Ok(())
    })
}

pub(crate) type FillRange<'a> = dyn Fn(&Range<usize>, &mut [u8]) -> Result<()> + Sync + 'a;

fn owned_with(bytes: &[u8], copy: &FillRange<'_>) -> Result<Loaded> {
    let mut s = Stream::open(bytes)?;
    let n = s.count();
    let mut records = Vec::with_capacity(n);
    for _ in 0..n {
        records.push(s.next_record()?);
    }
    let (names, _) = s.names(str::to_owned)?;
    owned_parts(records, names, copy)
}

/// Owned arrays for parsed `records`, their bytes filled by `copy` (called
/// with each source range and its destination, in parallel for big inputs).
pub(crate) fn owned_parts(
    records: Vec<RecordView>,
    names: Option<Vec<String>>,
    copy: &FillRange<'_>,
) -> Result<Loaded> {
    // The ranges in the order `assemble` asks for them: values, indptr, indices.
    let ranges: Vec<Range<usize>> = records
        .iter()
        .flat_map(|r| {
            let aux = [AuxRole::Indptr, AuxRole::Indices]
                .into_iter()
                .filter_map(|role| r.aux.iter().find(|a| a.role == role))
                .map(|a| a.data.clone());
            std::iter::once(r.data.clone()).chain(aux)
        })
        .collect();
    let buffers = fill_slab(&ranges, copy)?;
    let mut slab = buffers.into_iter();
    let arrays = records
        .into_iter()
        .map(|rec| {
            assemble(rec, |_| {
                slab.next()
                    .ok_or_else(|| crate::error::Error::invalid("slab exhausted"))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Loaded { names, arrays })
}

/// One owned slab holding a buffer per source range, each filled by `copy`
/// (in parallel pieces of at most `CHUNK_BYTES` when there is enough data).
/// Shared by every container whose arrays are byte ranges of one source.
pub(crate) fn fill_slab(ranges: &[Range<usize>], copy: &FillRange<'_>) -> Result<Vec<Buffer>> {
    let lens: Vec<usize> = ranges.iter().map(|r| r.end - r.start).collect();
    let total: usize = lens.iter().sum();
    Buffer::slab_filled(&lens, |slab, offsets| {
        // Each range's destination, cut into pieces of at most CHUNK_BYTES so
        // that big arrays spread over the threads too; with the source start.
        let mut pieces: Vec<(usize, &mut [u8])> = Vec::with_capacity(ranges.len());
        let mut rest = slab;
        let mut at = 0usize;
        for (r, &offset) in ranges.iter().zip(offsets) {
            let (_, tail) = std::mem::take(&mut rest).split_at_mut(offset - at);
            let (dst, tail) = tail.split_at_mut(r.end - r.start);
            rest = tail;
            at = offset + dst.len();
            let starts = (r.start..r.end).step_by(CHUNK_BYTES);
            pieces.extend(starts.zip(dst.chunks_mut(CHUNK_BYTES)));
        }
        let fill = |(src, dst): (usize, &mut [u8])| copy(&(src..src + dst.len()), dst);
        if total >= PARALLEL_BYTES && pieces.len() > 1 {
            let per_task = (CHUNK_BYTES / (total / pieces.len()).max(1)).max(1);
            pieces
                .into_par_iter()
                .with_min_len(per_task)
                .try_for_each(fill)
        } else {
            pieces.into_iter().try_for_each(fill)
        }
    })
}

/// Every record as a read-only view of `source`.
pub(crate) fn shared(source: &Arc<SharedSource>) -> Result<Loaded> {
    let mut s = Stream::open(source.bytes())?;
    let mut arrays = Vec::with_capacity(s.count());
    for _ in 0..s.count() {
        let rec = s.next_record()?;
        arrays.push(assemble(rec, |r| {
            Buffer::shared(source.clone(), r.start, r.end - r.start)
        })?);
    }
    let (names, _) = s.names(str::to_owned)?;
    Ok(Loaded { names, arrays })
}
