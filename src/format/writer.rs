//! Writes the NDArray list format exactly as MXNet 1.9.1's `NDArray::Save`
//! does, and saves files atomically (sibling temp file, then rename).
//!
//! Element data is streamed straight from each array's buffer (no
//! intermediate copy of big arrays); only record headers go through a small
//! scratch buffer.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::ndarray::{NDArray, SType};

use super::cancel::{self, Cancel, CancelWrite};
use super::target::{self, Target};
use super::{fs_hints, mapped_write, pipelined, special};
use super::{RecordVersion, SaveOptions, LIST_MAGIC, MAGIC_V2, MAGIC_V3};

/// Buffer size for streamed writes: big enough that many small arrays cost a
/// handful of syscalls; arrays larger than this bypass it.
const WRITE_BUF: usize = 1 << 20;

/// The concrete version a save uses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Concrete {
    V2,
    V3,
}

fn resolve(array: &NDArray, version: RecordVersion) -> Result<Concrete> {
    resolve_for(array.stype() != SType::Default, array.ndim() == 0, version)
}

/// The version for a file with any sparse / any 0-d arrays.
fn resolve_for(any_sparse: bool, any_0d: bool, version: RecordVersion) -> Result<Concrete> {
    match version {
        RecordVersion::V2 => Ok(Concrete::V2),
        RecordVersion::V3 if any_sparse => Err(Error::invalid(
            "sparse arrays cannot be saved as V3 records (numpy-shape semantics); use V2",
        )),
        RecordVersion::V3 => Ok(Concrete::V3),
        RecordVersion::Auto if any_0d && !any_sparse => Ok(Concrete::V3),
        RecordVersion::Auto => Ok(Concrete::V2),
    }
}

/// What a save needs to know before it writes: the record version and the
/// exact file size, from one pass over the arrays.
struct Plan {
    version: Concrete,
    size: usize,
}

/// Checks the arguments before anything is written, and plans the save.
///
/// A name containing NUL is rejected: MXNet passes names through C strings
/// and silently cuts them at the NUL, which can create duplicate names.
fn check(names: Option<&[&str]>, arrays: &[&NDArray], opts: &SaveOptions) -> Result<Plan> {
    if let Some(names) = names {
        if names.len() != arrays.len() {
            return Err(Error::invalid(format!(
                "{} names for {} arrays",
                names.len(),
                arrays.len()
            )));
        }
        if let Some(bad) = names.iter().find(|n| n.as_bytes().contains(&0)) {
            return Err(Error::invalid(format!(
                "array name {bad:?} contains a NUL character, which MXNet would silently cut"
            )));
        }
    }
    let (mut any_sparse, mut any_0d) = (false, false);
    let mut size = 32 + names.map_or(0, |n| n.iter().map(|s| 8 + s.len()).sum());
    for (i, a) in arrays.iter().enumerate() {
        prefetch_ahead(arrays, i, false);
        any_sparse |= a.stype() != SType::Default;
        any_0d |= a.ndim() == 0;
        size += record_size(a);
    }
    Ok(Plan {
        version: resolve_for(any_sparse, any_0d, opts.version)?,
        size,
    })
}

fn dim(d: usize) -> Result<i64> {
    i64::try_from(d).map_err(|_| Error::invalid(format!("dimension {d} does not fit in int64")))
}

fn push_shape(out: &mut Vec<u8>, shape: &[usize]) -> Result<()> {
    let ndim = i32::try_from(shape.len())
        .map_err(|_| Error::invalid(format!("ndim {} is too large", shape.len())))?;
    out.extend_from_slice(&ndim.to_le_bytes());
    for &d in shape {
        out.extend_from_slice(&dim(d)?.to_le_bytes());
    }
    Ok(())
}

/// The record header (everything before the values) of `a`.
fn record_header(out: &mut Vec<u8>, a: &NDArray, ctx: Context, v: Concrete) -> Result<()> {
    let magic = if v == Concrete::V3 {
        MAGIC_V3
    } else {
        MAGIC_V2
    };
    out.extend_from_slice(&magic.to_le_bytes());
    out.extend_from_slice(&(a.stype() as i32).to_le_bytes());
    let sparse = a.sparse_parts();
    if let Some(p) = &sparse {
        push_shape(out, &p.values_shape)?;
    }
    push_shape(out, a.shape())?;
    out.extend_from_slice(&ctx.device_type.id().to_le_bytes());
    out.extend_from_slice(&(ctx.device_id as i32).to_le_bytes());
    out.extend_from_slice(&a.dtype().flag().to_le_bytes());
    if let Some(p) = &sparse {
        for aux in p.indptr.iter().chain(std::iter::once(&p.indices)) {
            out.extend_from_slice(&aux.dtype().flag().to_le_bytes());
            push_shape(out, aux.shape())?;
        }
    }
    Ok(())
}

fn write_record<W: Write>(
    w: &mut W,
    scratch: &mut Vec<u8>,
    a: &NDArray,
    ctx: Context,
    v: Concrete,
) -> Result<()> {
    scratch.clear();
    // One structure for header and body, even if another thread assigns to a sparse `a`.
    let a = &a.snapshot();
    record_header(scratch, a, ctx, v)?;
    w.write_all(scratch)?;
    a.values().buffer().populate_mapping();
    w.write_all(&a.values().buffer().try_read()?)?;
    if let Some(p) = a.sparse_parts() {
        for aux in p.indptr.iter().chain(std::iter::once(&p.indices)) {
            w.write_all(&aux.buffer().try_read()?)?;
        }
    }
    Ok(())
}

/// How far ahead of the array being written its successors' headers, then
/// bytes, are prefetched: far enough to hide a miss, near enough to stay cached.
const AHEAD_STRUCT: usize = 24;
const AHEAD_HEADER: usize = 16;
const AHEAD_BYTES: usize = 8;

/// Prefetches for a pass over `arrays` at `i`, in stages that each read only
/// what an earlier stage fetched: a far array's struct, a nearer one's shape
/// and storage record, and the bytes of a nearer one still.
fn prefetch_ahead(arrays: &[&NDArray], i: usize, bytes: bool) {
    if let Some(&a) = arrays.get(i + AHEAD_STRUCT) {
        let at: *const u8 = (a as *const NDArray).cast();
        crate::storage::prefetch(at);
        crate::storage::prefetch(at.wrapping_add(64));
    }
    if let Some(a) = arrays.get(i + AHEAD_HEADER) {
        a.prefetch_header();
    }
    if let Some(a) = arrays.get(i + AHEAD_BYTES).filter(|_| bytes) {
        a.buffer().prefetch_bytes();
    }
}

/// Writes the records of `arrays`. Dense device arrays stream through
/// [`crate::cuda::download_batch`]'s pinned ring, so their device-to-host
/// copies overlap the writing; each record keeps the array's own (GPU)
/// context, as MXNet's does.
fn write_records<W: Write>(
    w: &mut W,
    scratch: &mut Vec<u8>,
    arrays: &[&NDArray],
    v: Concrete,
) -> Result<()> {
    // Without a GPU no array can live on one: skip a pass over the arrays.
    let streamed: Vec<usize> = if crate::cuda::num_gpus() == 0 {
        Vec::new()
    } else {
        (0..arrays.len())
            .filter(|&i| arrays[i].buffer().is_device() && arrays[i].sparse_parts().is_none())
            .collect()
    };
    // Host arrays (and sparse device arrays, staged one by one) in order.
    let write_other = |w: &mut W, scratch: &mut Vec<u8>, a: &NDArray| -> Result<()> {
        if a.buffer().is_device() {
            write_record(w, scratch, &a.copy_to(Context::cpu(0))?, a.context(), v)
        } else {
            write_record(w, scratch, a, a.context(), v)
        }
    };
    if streamed.is_empty() {
        for (i, a) in arrays.iter().enumerate() {
            prefetch_ahead(arrays, i, true);
            write_other(w, scratch, a)?;
        }
        return Ok(());
    }
    let allocs = streamed
        .iter()
        .map(|&i| {
            arrays[i]
                .buffer()
                .device_alloc()
                .ok_or_else(|| Error::invalid("a device array lost its device memory"))
        })
        .collect::<Result<Vec<_>>>()?;
    // Read locks for the whole transfer, one per storage (an array listed
    // twice must not take its lock twice).
    let mut seen = std::collections::HashSet::new();
    let _locks: Vec<_> = streamed
        .iter()
        .map(|&i| arrays[i].buffer())
        .filter(|b| {
            b.device_alloc()
                .is_some_and(|d| seen.insert(d.device_ptr()))
        })
        .filter_map(|b| b.device_read().map(|(guard, _)| guard))
        .collect();
    // Records before the streamed array `upto` (inclusive) that are not yet
    // written: headers of streamed arrays, whole records of the others.
    let mut next = 0usize;
    let mut write_until = |w: &mut W, scratch: &mut Vec<u8>, upto: usize| -> Result<()> {
        while next <= upto && next < arrays.len() {
            let a = arrays[next];
            if streamed.binary_search(&next).is_ok() {
                scratch.clear();
                record_header(scratch, a, a.context(), v)?;
                w.write_all(scratch)?;
            } else {
                write_other(w, scratch, a)?;
            }
            next += 1;
        }
        Ok(())
    };
    crate::cuda::download_batch(&allocs, &mut |j, bytes| {
        write_until(w, scratch, streamed[j])?;
        w.write_all(bytes)?;
        Ok(())
    })?;
    write_until(w, scratch, arrays.len())
}

fn write_body<W: Write>(
    w: &mut W,
    names: Option<&[&str]>,
    arrays: &[&NDArray],
    v: Concrete,
) -> Result<()> {
    let mut head = [0u8; 24];
    head[..8].copy_from_slice(&LIST_MAGIC.to_le_bytes());
    head[16..].copy_from_slice(&(arrays.len() as u64).to_le_bytes());
    w.write_all(&head)?;
    let mut scratch = Vec::with_capacity(256);
    write_records(w, &mut scratch, arrays, v)?;
    let names = names.unwrap_or_default();
    w.write_all(&(names.len() as u64).to_le_bytes())?;
    for n in names {
        w.write_all(&(n.len() as u64).to_le_bytes())?;
        w.write_all(n.as_bytes())?;
    }
    Ok(())
}

fn record_size(a: &NDArray) -> usize {
    let mut n = 24 + 8 * a.ndim() + a.nbytes();
    if let Some(p) = a.sparse_parts() {
        n += 4 + 8 * p.values_shape.len();
        for aux in p.indptr.iter().chain(std::iter::once(&p.indices)) {
            n += 8 + 8 * aux.ndim() + aux.nbytes();
        }
    }
    n
}

/// Writes a file's bytes to `w` (buffered internally). `names` makes a dict
/// file (K = N), `None` a list file.
pub fn write_to<W: Write>(
    w: &mut W,
    names: Option<&[&str]>,
    arrays: &[&NDArray],
    opts: &SaveOptions,
) -> Result<()> {
    let v = check(names, arrays, opts)?.version;
    let mut bw = BufWriter::with_capacity(WRITE_BUF, w);
    write_body(&mut bw, names, arrays, v)?;
    bw.flush()?;
    Ok(())
}

/// A file's bytes in memory.
///
/// ```
/// let bytes = mxparams::format::to_bytes(None, &[], &Default::default()).unwrap();
/// assert_eq!(bytes.len(), 32); // header, N = 0, K = 0
/// ```
pub fn to_bytes(
    names: Option<&[&str]>,
    arrays: &[&NDArray],
    opts: &SaveOptions,
) -> Result<Vec<u8>> {
    let plan = check(names, arrays, opts)?;
    let mut out = Vec::with_capacity(plan.size);
    write_body(&mut out, names, arrays, plan.version)?;
    Ok(out)
}

/// One array record with no file header and no names: the bytes MXNet's
/// `MXNDArraySaveRawBytes` produces (and pickling an NDArray stores).
pub fn record_to_bytes(array: &NDArray, version: RecordVersion) -> Result<Vec<u8>> {
    let v = resolve(array, version)?;
    let mut out = Vec::with_capacity(record_size(array));
    let mut scratch = Vec::new();
    write_record(&mut out, &mut scratch, array, array.context(), v)?;
    Ok(out)
}

/// Saves atomically: writes a temp file beside `path`
/// (`.NAME.mxparams-tmp-PID-RANDOM`), flushes it (and with `opts.fsync`
/// syncs it and the directory), then renames it over `path`. On error the
/// temp file is removed and any previous file is intact, so saving arrays
/// that are memory-mapped views of `path` itself is safe.
///
/// A symlink is followed and its target replaced; a FIFO or character
/// device is written through, never replaced; a read-only file is refused
/// (see the `target` module for every case).
pub fn save(
    path: impl AsRef<Path>,
    names: Option<&[&str]>,
    arrays: &[&NDArray],
    opts: &SaveOptions,
) -> Result<()> {
    save_cancellable(path, names, arrays, opts, &Cancel::new())
}

/// [`save`], stopping with [`Error::Interrupted`] (the target untouched, the
/// temp file removed) once `cancel` is set.
pub fn save_cancellable(
    path: impl AsRef<Path>,
    names: Option<&[&str]>,
    arrays: &[&NDArray],
    opts: &SaveOptions,
    cancel: &Cancel,
) -> Result<()> {
    let path = path.as_ref();
    let plan = check(names, arrays, opts)?;
    save_planned(path, names, arrays, opts, plan, cancel)
        .map_err(|e| cancel::from_io(e).at_path(path))
}

fn save_planned(
    path: &Path,
    names: Option<&[&str]>,
    arrays: &[&NDArray],
    opts: &SaveOptions,
    Plan { version: v, size }: Plan,
    cancel: &Cancel,
) -> Result<()> {
    match target::resolve(path)? {
        Target::WriteThrough(dev) => {
            let file = special::open_write(&dev, cancel)?;
            let mut w = BufWriter::with_capacity(WRITE_BUF, special::Polled::new(&file, cancel));
            write_body(&mut w, names, arrays, v)?;
            w.flush()?;
            Ok(())
        }
        Target::Replace { path, old } => {
            atomic_write_file(&path, old.as_ref(), opts.fsync, |file| {
                if mapped_write::worth_mapping(file, size)
                    && mapped_write::write_mapped(file, size, opts.fsync, |w| {
                        write_body(&mut CancelWrite::new(w, cancel), names, arrays, v)
                    })?
                {
                    return Ok(());
                }
                if size > 0 && fs_hints::on_ext4(file) {
                    fs_hints::reserve(file, size, true)?;
                }
                if pipelined::worth_pipelining(size, arrays.len()) {
                    return pipelined::write_pipelined(file, |w| {
                        write_body(&mut CancelWrite::new(w, cancel), names, arrays, v)
                    });
                }
                let mut w = BufWriter::with_capacity(WRITE_BUF, CancelWrite::new(file, cancel));
                write_body(&mut w, names, arrays, v)?;
                w.flush()?;
                Ok(())
            })
        }
    }
}

/// Writes a file that `body` streams out, with the target rules of [`save`]:
/// a symlink's target is replaced atomically, a FIFO or character device is
/// written through, a read-only file is refused. Used by the other formats'
/// writers so that every save follows one set of rules.
///
/// `size` is the number of bytes `body` writes, when known: on ext4 the
/// blocks are then reserved first, as `.params` saves do, so that renaming
/// over an existing file does not force the new file's data to disk.
pub(crate) fn save_streamed(
    path: &Path,
    size: Option<usize>,
    fsync: bool,
    cancel: &Cancel,
    body: impl FnOnce(&mut dyn Write) -> Result<()>,
) -> Result<()> {
    let run = || -> Result<()> {
        match target::resolve(path)? {
            Target::WriteThrough(dev) => {
                let file = special::open_write(&dev, cancel)?;
                let mut w =
                    BufWriter::with_capacity(WRITE_BUF, special::Polled::new(&file, cancel));
                body(&mut w)?;
                w.flush()?;
                Ok(())
            }
            Target::Replace { path, old } => {
                atomic_write_file(&path, old.as_ref(), fsync, |file| {
                    if let Some(size) = size.filter(|&n| n > 0) {
                        if fs_hints::on_ext4(file) {
                            fs_hints::reserve(file, size, true)?;
                        }
                    }
                    let mut w = BufWriter::with_capacity(WRITE_BUF, CancelWrite::new(file, cancel));
                    body(&mut w)?;
                    w.flush()?;
                    Ok(())
                })
            }
        }
    };
    run().map_err(|e| cancel::from_io(e).at_path(path))
}

/// Writes `bytes` to `path` with the target rules of [`save`]: a regular
/// file (or nothing) is replaced atomically, a symlink's target likewise, a
/// FIFO or character device is written through, anything else is refused.
/// For files other libraries serialise (torch, numpy, JSON), so that every
/// file the package writes follows one set of rules.
///
/// ```
/// let dir = std::env::temp_dir().join(format!("mxparams-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("notes.json");
/// mxparams::format::write_file(&path, b"{}", false, &Default::default()).unwrap();
/// assert_eq!(std::fs::read(&path).unwrap(), b"{}");
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn write_file(
    path: impl AsRef<Path>,
    bytes: &[u8],
    fsync: bool,
    cancel: &Cancel,
) -> Result<()> {
    save_streamed(path.as_ref(), Some(bytes.len()), fsync, cancel, |w| {
        w.write_all(bytes)?;
        Ok(())
    })
}

/// Runs `body` against a temp file beside `path` (opened for reading and
/// writing, so that it can be mapped) and renames it over `path`, which is
/// a regular file or nothing (see [`target::resolve`]). The temp file is
/// removed on error and on panic.
pub(crate) fn atomic_write_file(
    path: &Path,
    old: Option<&fs::Metadata>,
    fsync: bool,
    body: impl FnOnce(&File) -> Result<()>,
) -> Result<()> {
    let tmp = target::temp_beside(path, old)?;
    fs_hints::release_cached_pages(path);
    body(tmp.as_file())?;
    if fsync {
        tmp.as_file().sync_all()?;
    }
    tmp.persist(path).map_err(|e| Error::from(e.error))?;
    if fsync {
        sync_dir(path)?;
    }
    Ok(())
}

#[cfg(unix)]
fn sync_dir(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(not(unix))]
fn sync_dir(_path: &Path) -> Result<()> {
    Ok(())
}
