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
/// Files of records this small on average are built on one thread: the
/// allocator work dominates and spreading it over threads only adds contention.
const SMALL_RECORD: usize = 16 << 10;

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

/// Every record copied into owned memory.
pub(crate) fn owned(bytes: &[u8]) -> Result<Loaded> {
    let mut s = Stream::open(bytes)?;
    let n = s.count();
    let arrays = if bytes.len() >= PARALLEL_BYTES && n > 1 && bytes.len() / n >= SMALL_RECORD {
        let records = (0..n)
            .map(|_| s.next_record())
            .collect::<Result<Vec<_>>>()?;
        parallel_copy(bytes, records)?
    } else {
        let mut arrays = Vec::with_capacity(n);
        for _ in 0..n {
            arrays.push(owned_array(bytes, s.next_record()?)?);
        }
        arrays
    };
    let (names, _) = s.names(str::to_owned)?;
    Ok(Loaded { names, arrays })
}

/// Copies records on the rayon pool, in groups of about `CHUNK_BYTES`: one
/// task per big array, many small arrays per task (a task per tiny array
/// costs more than its copy).
fn parallel_copy(bytes: &[u8], records: Vec<RecordView>) -> Result<Vec<NDArray>> {
    let mut groups: Vec<Vec<RecordView>> = Vec::new();
    let mut size = CHUNK_BYTES;
    for r in records {
        if size >= CHUNK_BYTES {
            groups.push(Vec::new());
            size = 0;
        }
        size += r.end - r.offset;
        if let Some(g) = groups.last_mut() {
            g.push(r);
        }
    }
    let built: Vec<Vec<NDArray>> = groups
        .into_par_iter()
        .with_max_len(1)
        .map(|g| g.into_iter().map(|r| owned_array(bytes, r)).collect())
        .collect::<Result<_>>()?;
    Ok(built.into_iter().flatten().collect())
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
