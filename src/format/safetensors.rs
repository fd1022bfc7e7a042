//! The safetensors format, through the `safetensors` crate (the reference
//! implementation: its header parser validates offsets, overlaps and the
//! exact coverage of the data block, so we keep no parser of our own).
//!
//! The copying load reads the header, then every tensor with positioned reads
//! straight into one aligned slab (in parallel); the zero-copy load views a map.
//! Saving writes the header the crate serializes, in the crate's tensor order
//! (alignment then name), so our files are byte-identical to the crate's own,
//! through the same atomic sibling-file-and-rename path as `.params` saves.
//! A sharded checkpoint's `*.safetensors.index.json` loads as one file.

use std::collections::HashMap;
use std::io::Write;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use safetensors::tensor::{Metadata, TensorInfo};
use safetensors::{Dtype, SafeTensorError, SafeTensors};

use crate::context::Context;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::ndarray::{NDArray, SType};
use crate::storage::{Buffer, SharedSource};

use super::Loaded;

/// Bytes of the little-endian header length that starts every file.
const LEN_BYTES: usize = 8;
/// The safetensors crate's own bound on the JSON header (100 MB).
const MAX_HEADER: usize = 100_000_000;

/// Whether `bytes` start like a safetensors file: a header length that the
/// input can hold, followed by a JSON object.
pub(crate) fn looks_like(bytes: &[u8]) -> bool {
    starts_like(bytes, bytes.len())
}

/// [`looks_like`] for a file of `total` bytes of which `head` is the start.
pub(crate) fn starts_like(head: &[u8], total: usize) -> bool {
    match (head.get(..LEN_BYTES), head.get(LEN_BYTES)) {
        (Some(n), Some(b'{')) => {
            let n = u64::from_le_bytes(n.try_into().unwrap_or_default());
            n != super::LIST_MAGIC && n <= total.saturating_sub(LEN_BYTES) as u64
        }
        _ => false,
    }
}

/// The header length a file of `total` bytes announces in `word` (its first
/// eight bytes), checked against the crate's limit and the file's size.
pub(crate) fn header_len(word: &[u8], total: usize) -> Result<usize> {
    let n = word
        .get(..LEN_BYTES)
        .and_then(|w| w.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| header_error(SafeTensorError::HeaderTooSmall))?;
    usize::try_from(n)
        .ok()
        .filter(|&n| n <= MAX_HEADER && n <= total.saturating_sub(LEN_BYTES))
        .ok_or_else(|| header_error(SafeTensorError::InvalidHeaderLength))
}

/// Our dtype for a safetensors dtype; the 8-bit floats, 4/6-bit floats and
/// complex numbers have no MXNet type.
pub fn dtype_from(d: Dtype) -> Result<DType> {
    Ok(match d {
        Dtype::BOOL => DType::Bool,
        Dtype::U8 => DType::UInt8,
        Dtype::I8 => DType::Int8,
        Dtype::I16 => DType::Int16,
        Dtype::U16 => DType::UInt16,
        Dtype::F16 => DType::Float16,
        Dtype::BF16 => DType::BFloat16,
        Dtype::I32 => DType::Int32,
        Dtype::U32 => DType::UInt32,
        Dtype::F32 => DType::Float32,
        Dtype::F64 => DType::Float64,
        Dtype::I64 => DType::Int64,
        Dtype::U64 => DType::UInt64,
        other => {
            return Err(Error::invalid(format!(
                "safetensors dtype {other:?} has no MXNet equivalent"
            )))
        }
    })
}

/// The safetensors dtype of one of ours (every MXNet dtype has one).
pub fn dtype_to(d: DType) -> Dtype {
    match d {
        DType::Bool => Dtype::BOOL,
        DType::UInt8 => Dtype::U8,
        DType::Int8 => Dtype::I8,
        DType::Int16 => Dtype::I16,
        DType::UInt16 => Dtype::U16,
        DType::Float16 => Dtype::F16,
        DType::BFloat16 => Dtype::BF16,
        DType::Int32 => Dtype::I32,
        DType::UInt32 => Dtype::U32,
        DType::Float32 => Dtype::F32,
        DType::Float64 => Dtype::F64,
        DType::Int64 => Dtype::I64,
        DType::UInt64 => Dtype::U64,
    }
}

fn header_error(e: SafeTensorError) -> Error {
    let offset = match e {
        SafeTensorError::HeaderTooSmall
        | SafeTensorError::HeaderTooLarge
        | SafeTensorError::InvalidHeaderLength => 0,
        _ => LEN_BYTES as u64,
    };
    Error::format(offset, "a valid safetensors header", e.to_string())
}

/// One tensor of a safetensors header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The tensor's name.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<usize>,
    /// Absolute byte range of the data in the file.
    pub data: Range<usize>,
}

/// A parsed header: tensors in data order, and the `__metadata__` strings.
#[derive(Debug, Clone, Default)]
pub struct Header {
    /// Tensors ordered by data offset.
    pub entries: Vec<Entry>,
    /// The free-form `__metadata__` map, if present.
    pub metadata: Option<HashMap<String, String>>,
    /// Bytes of the length word plus the JSON header (where data starts).
    pub data_start: usize,
}

/// Parses and validates the header of a whole file held in `bytes` (only the
/// header's pages are read from a map).
pub fn read_header(bytes: &[u8]) -> Result<Header> {
    let (n, meta) = SafeTensors::read_metadata(bytes).map_err(header_error)?;
    header_from(meta, LEN_BYTES + n)
}

fn header_from(meta: Metadata, data_start: usize) -> Result<Header> {
    let infos = meta.tensors();
    let entries = meta
        .offset_keys()
        .into_iter()
        .map(|name| {
            let info = infos
                .get(&name)
                .ok_or_else(|| Error::invalid(format!("tensor {name} vanished from header")))?;
            let (s, e) = info.data_offsets;
            Ok(Entry {
                dtype: dtype_from(info.dtype)?,
                shape: info.shape.clone(),
                data: data_start + s..data_start + e,
                name,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Header {
        entries,
        metadata: meta.metadata().clone(),
        data_start,
    })
}

/// Parses a header from its own bytes (`head`: the length word and the JSON,
/// no data) for a file of `total` bytes, with the checks of
/// [`read_header`]: the crate validates offsets and sizes as it deserializes,
/// and the data block must end exactly where the file does.
pub fn parse_header(head: &[u8], total: usize) -> Result<Header> {
    let n = header_len(head, total)?;
    let json = head
        .get(LEN_BYTES..LEN_BYTES + n)
        .ok_or_else(|| header_error(SafeTensorError::InvalidHeaderLength))?;
    let text =
        std::str::from_utf8(json).map_err(|e| header_error(SafeTensorError::InvalidHeader(e)))?;
    let meta: Metadata = serde_json::from_str(text)
        .map_err(|e| header_error(SafeTensorError::InvalidHeaderDeserialization(e)))?;
    let data_start = LEN_BYTES + n;
    if data_start.checked_add(meta.data_len()) != Some(total) {
        return Err(header_error(SafeTensorError::MetadataIncompleteBuffer));
    }
    header_from(meta, data_start)
}

fn assemble(h: Header, mut buf: impl FnMut(&Range<usize>) -> Result<Buffer>) -> Result<Loaded> {
    let mut names = Vec::with_capacity(h.entries.len());
    let mut arrays = Vec::with_capacity(h.entries.len());
    for e in h.entries {
        let b = buf(&e.data)?;
        arrays.push(NDArray::from_buffer(b, e.shape, e.dtype, Context::cpu(0))?);
        names.push(e.name);
    }
    Ok(Loaded {
        names: Some(names),
        arrays,
    })
}

/// Owned, aligned copies of every tensor of a file held in memory.
pub(crate) fn load_owned(bytes: &[u8]) -> Result<Loaded> {
    let h = read_header(bytes)?;
    let ranges: Vec<Range<usize>> = h.entries.iter().map(|e| e.data.clone()).collect();
    let slab = super::build::fill_slab(&ranges, &|r: &Range<usize>, dst: &mut [u8]| {
        crate::storage::copy_bytes(dst, bytes.get(r.clone()).unwrap_or_default());
        Ok(())
    })?;
    let mut it = slab.into_iter();
    assemble(h, |_| {
        it.next().ok_or_else(|| Error::invalid("slab exhausted"))
    })
}

/// Owned copies of every tensor of a file of `total` bytes read through
/// `read_at(dst, offset)` (positioned reads): the header first, then each
/// tensor straight into the slab, never through a memory map.
pub(crate) fn load_owned_by_reads(
    total: usize,
    read_at: &(dyn Fn(&mut [u8], usize) -> Result<()> + Sync),
) -> Result<Loaded> {
    let mut word = [0u8; LEN_BYTES];
    if total < LEN_BYTES {
        return Err(header_error(SafeTensorError::HeaderTooSmall));
    }
    read_at(&mut word, 0)?;
    let n = header_len(&word, total)?;
    let mut head = vec![0u8; LEN_BYTES + n];
    read_at(&mut head, 0)?;
    let h = parse_header(&head, total)?;
    let ranges: Vec<Range<usize>> = h.entries.iter().map(|e| e.data.clone()).collect();
    let slab = super::build::fill_slab(&ranges, &|r: &Range<usize>, dst: &mut [u8]| {
        read_at(dst, r.start)
    })?;
    let mut it = slab.into_iter();
    assemble(h, |_| {
        it.next().ok_or_else(|| Error::invalid("slab exhausted"))
    })
}

/// Every tensor as a read-only view of `source`.
pub(crate) fn load_shared(source: &Arc<SharedSource>) -> Result<Loaded> {
    let h = read_header(source.bytes())?;
    assemble(h, |r| {
        Buffer::shared(source.clone(), r.start, r.end - r.start)
    })
}

/// The `__metadata__` of a safetensors file (header pages only).
pub fn read_metadata(path: impl AsRef<Path>) -> Result<Option<HashMap<String, String>>> {
    let source = super::file_read::open_source(path.as_ref())?;
    Ok(read_header(source.bytes())?.metadata)
}

/// Whether `path` names a sharded checkpoint's index (`*.index.json`).
pub(crate) fn is_index_path(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".index.json"))
}

/// The shard files of an index, in first-use order, each with its tensors.
pub fn index_shards(path: &Path) -> Result<Vec<std::path::PathBuf>> {
    Ok(read_index(path)?.0)
}

/// An index's shard files (first-use order) and the tensor names it maps.
fn read_index(path: &Path) -> Result<(Vec<std::path::PathBuf>, Vec<String>)> {
    let text = std::fs::read(path)?;
    let json: serde_json::Value = serde_json::from_slice(&text).map_err(|e| {
        Error::format(
            e.column() as u64,
            "a safetensors index (JSON with a weight_map)",
            e.to_string(),
        )
    })?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| Error::format(0, "a \"weight_map\" object", "none"))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut shards: Vec<std::path::PathBuf> = Vec::new();
    for (name, file) in map {
        let file = file
            .as_str()
            .ok_or_else(|| Error::format(0, "a shard file name", format!("{file} for {name}")))?;
        // A shard is a sibling file, never a path elsewhere.
        if file.contains('/') || file.contains('\\') || file == ".." {
            return Err(Error::format(0, "a shard file name", file.to_string()));
        }
        let p = dir.join(file);
        if !shards.contains(&p) {
            shards.push(p);
        }
    }
    Ok((shards, map.keys().cloned().collect()))
}

/// Loads every shard of an index; names must be unique across shards.
pub(crate) fn load_index(path: &Path, mmap: bool) -> Result<Loaded> {
    let mut names: Vec<String> = Vec::new();
    let mut arrays = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let (shards, mapped) = read_index(path)?;
    for shard in shards {
        let l = if mmap {
            super::load_mmap(&shard)?
        } else {
            super::load(&shard)?
        };
        for (n, a) in l.names.unwrap_or_default().into_iter().zip(l.arrays) {
            if !seen.insert(n.clone()) {
                return Err(Error::invalid(format!(
                    "tensor {n} appears in more than one shard of {}",
                    path.display()
                )));
            }
            names.push(n);
            arrays.push(a);
        }
    }
    // A shard cut short by a crash must not pass for a whole checkpoint.
    if let Some(lost) = mapped.iter().find(|n| !seen.contains(*n)) {
        return Err(Error::format(
            0,
            "every tensor of the index's weight_map in its shard",
            format!("{lost} is in no shard of {}", path.display()),
        ));
    }
    Ok(Loaded {
        names: Some(names),
        arrays,
    })
}

/// Arrays as safetensors holds them: dense, on the host side of a read.
/// Returns the arrays to write and the names of those that were densified.
fn densified<'a>(
    names: &[&str],
    arrays: &[&'a NDArray],
) -> Result<(Vec<std::borrow::Cow<'a, NDArray>>, Vec<String>)> {
    let mut out = Vec::with_capacity(arrays.len());
    let mut dense = Vec::new();
    for (n, &a) in names.iter().zip(arrays) {
        if a.stype() == SType::Default {
            out.push(std::borrow::Cow::Borrowed(a));
        } else {
            out.push(std::borrow::Cow::Owned(crate::sparse::to_dense(a)?));
            dense.push((*n).to_string());
        }
    }
    Ok((out, dense))
}

/// The header bytes (length word, JSON padded to 8 bytes) and the write
/// order of the arrays: the `safetensors` crate's own order and JSON.
fn plan(
    names: &[&str],
    arrays: &[&NDArray],
    metadata: Option<&HashMap<String, String>>,
) -> Result<(Vec<u8>, Vec<usize>)> {
    if names.len() != arrays.len() {
        return Err(Error::invalid(format!(
            "{} names for {} arrays",
            names.len(),
            arrays.len()
        )));
    }
    let mut order: Vec<usize> = (0..arrays.len()).collect();
    // The crate's order: descending dtype (alignment), then name.
    order.sort_by(|&l, &r| {
        dtype_to(arrays[r].dtype())
            .cmp(&dtype_to(arrays[l].dtype()))
            .then(names[l].cmp(names[r]))
    });
    let mut seen = std::collections::HashSet::new();
    let mut infos = Vec::with_capacity(order.len());
    let mut offset = 0usize;
    for &i in &order {
        if !seen.insert(names[i]) {
            return Err(Error::invalid(format!(
                "duplicate name {:?}: a safetensors file holds each name once",
                names[i]
            )));
        }
        let n = arrays[i].nbytes();
        let info = TensorInfo {
            dtype: dtype_to(arrays[i].dtype()),
            shape: arrays[i].shape().to_vec(),
            data_offsets: (offset, offset + n),
        };
        offset += n;
        infos.push((names[i].to_string(), info));
    }
    let meta =
        Metadata::new(metadata.cloned(), infos).map_err(|e| Error::invalid(e.to_string()))?;
    let mut json = serde_json::to_string(&meta)
        .map_err(|e| Error::invalid(e.to_string()))?
        .into_bytes();
    json.resize(json.len().next_multiple_of(LEN_BYTES), b' ');
    let mut header = Vec::with_capacity(LEN_BYTES + json.len());
    header.extend_from_slice(&(json.len() as u64).to_le_bytes());
    header.extend_from_slice(&json);
    Ok((header, order))
}

fn write_body<W: Write + ?Sized>(
    w: &mut W,
    header: &[u8],
    order: &[usize],
    arrays: &[&NDArray],
) -> Result<()> {
    w.write_all(header)?;
    for &i in order {
        let buf = arrays[i].buffer();
        buf.populate_mapping();
        w.write_all(&buf.try_read()?)?;
    }
    Ok(())
}

/// What [`save`] did beyond writing: the names of sparse arrays it had to
/// store densely (safetensors has no sparse storage).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaveReport {
    /// Arrays written in dense form.
    pub densified: Vec<String>,
}

/// The bytes of a safetensors file holding `arrays` under `names`.
pub fn to_bytes(
    names: &[&str],
    arrays: &[&NDArray],
    metadata: Option<&HashMap<String, String>>,
) -> Result<(Vec<u8>, SaveReport)> {
    let (dense, densified) = densified(names, arrays)?;
    let refs: Vec<&NDArray> = dense.iter().map(|c| c.as_ref()).collect();
    let (header, order) = plan(names, &refs, metadata)?;
    let mut out = Vec::new();
    write_body(&mut out, &header, &order, &refs)?;
    Ok((out, SaveReport { densified }))
}

/// Saves `arrays` under `names` as a safetensors file, atomically (a sibling
/// temp file renamed over `path`, as `.params` saves). Sparse arrays are
/// written densely and reported.
pub fn save(
    path: impl AsRef<Path>,
    names: &[&str],
    arrays: &[&NDArray],
    metadata: Option<&HashMap<String, String>>,
    fsync: bool,
) -> Result<SaveReport> {
    let (dense, densified) = densified(names, arrays)?;
    let refs: Vec<&NDArray> = dense.iter().map(|c| c.as_ref()).collect();
    let (header, order) = plan(names, &refs, metadata)?;
    let size = header.len() + refs.iter().map(|a| a.nbytes()).sum::<usize>();
    super::writer::save_streamed(
        path.as_ref(),
        Some(size),
        fsync,
        &super::Cancel::new(),
        |w| write_body(w, &header, &order, &refs),
    )?;
    Ok(SaveReport { densified })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arr(shape: &[usize], dtype: DType, fill: u8) -> NDArray {
        let n = crate::ndarray::checked_size(shape).unwrap_or(0) * dtype.itemsize();
        NDArray::from_buffer(
            Buffer::copy_from(&vec![fill; n]).expect("alloc"),
            shape.to_vec(),
            dtype,
            Context::cpu(0),
        )
        .expect("array")
    }

    #[test]
    fn round_trip_every_dtype() {
        let arrays: Vec<NDArray> = crate::dtype::ALL_DTYPES
            .iter()
            .enumerate()
            .map(|(i, &d)| arr(&[2, 3], d, i as u8 + 1))
            .collect();
        let names: Vec<String> = (0..arrays.len()).map(|i| format!("t{i}")).collect();
        let nrefs: Vec<&str> = names.iter().map(String::as_str).collect();
        let refs: Vec<&NDArray> = arrays.iter().collect();
        let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
        let (bytes, report) = to_bytes(&nrefs, &refs, Some(&meta)).expect("save");
        assert!(report.densified.is_empty());
        assert!(looks_like(&bytes));
        let h = read_header(&bytes).expect("header");
        assert_eq!(h.metadata, Some(meta));
        let loaded = load_owned(&bytes).expect("load");
        let got: HashMap<_, _> = loaded
            .names
            .expect("names")
            .into_iter()
            .zip(loaded.arrays)
            .collect();
        for (n, a) in names.iter().zip(&arrays) {
            let b = &got[n];
            assert_eq!(b.dtype(), a.dtype());
            assert_eq!(b.shape(), a.shape());
            assert_eq!(&*b.buffer().read(), &*a.buffer().read());
        }
    }

    #[test]
    fn bad_headers_are_format_errors() {
        for bad in [
            &b"\x05\0\0\0\0\0\0\0{\"a\":"[..],
            b"\xff\0\0\0\0\0\0\0{}",
            b"\x02\0",
        ] {
            match read_header(bad) {
                Err(Error::Format { .. }) => {}
                other => panic!("expected a format error, got {other:?}"),
            }
        }
    }

    #[test]
    fn duplicate_names_are_refused() {
        let a = arr(&[1], DType::Float32, 0);
        assert!(to_bytes(&["x", "x"], &[&a, &a], None).is_err());
    }
}
