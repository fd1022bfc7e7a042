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

use super::reader::{AuxRole, ParsedFile, RecordView};
use super::Loaded;

/// Below this much data in total, copying on one thread beats fanning out.
const PARALLEL_BYTES: usize = 4 << 20;
/// Data per parallel task.
const CHUNK_BYTES: usize = 1 << 20;
/// Files of records this small on average are built on one thread: the
/// allocator work dominates and spreading it over threads only adds contention.
const SMALL_RECORD: usize = 16 << 10;

fn names(parsed: &ParsedFile<'_>) -> Option<Vec<String>> {
    parsed
        .names
        .as_ref()
        .map(|n| n.iter().map(|s| (*s).to_owned()).collect())
}

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
pub(crate) fn owned(parsed: ParsedFile<'_>) -> Result<Loaded> {
    let names = names(&parsed);
    let bytes = parsed.bytes;
    let total: usize = parsed.records.iter().map(|r| r.end - r.offset).sum();
    let n = parsed.records.len();
    let arrays = if total >= PARALLEL_BYTES && n > 1 && total / n >= SMALL_RECORD {
        // Groups of about CHUNK_BYTES each: one task per big array, but many
        // small arrays per task (a task per tiny array costs more than its copy).
        let mut groups: Vec<Vec<RecordView>> = Vec::new();
        let mut size = CHUNK_BYTES;
        for r in parsed.records {
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
        built.into_iter().flatten().collect()
    } else {
        parsed
            .records
            .into_iter()
            .map(|r| owned_array(bytes, r))
            .collect::<Result<Vec<_>>>()?
    };
    Ok(Loaded { names, arrays })
}

/// Every record as a read-only view of `source` (which `parsed` must borrow).
pub(crate) fn shared(parsed: ParsedFile<'_>, source: &Arc<SharedSource>) -> Result<Loaded> {
    let names = names(&parsed);
    let arrays = parsed
        .records
        .into_iter()
        .map(|rec| {
            assemble(rec, |r| {
                Buffer::shared(source.clone(), r.start, r.end - r.start)
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Loaded { names, arrays })
}
