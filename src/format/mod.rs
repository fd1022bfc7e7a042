//! The MXNet `.params` (NDArray list) format: reading it zero-copy, writing it
//! byte for byte as MXNet 1.9.1 does, and reading MXNet 2.0's `.npz`/`.npy`.
//!
//! This module owns the byte layout and nothing else: it turns bytes into
//! [`NDArray`]s and back. Name policies (prefixes, `arg:`/`aux:`) belong to
//! `ParameterDict`; device placement belongs to the caller (arrays load on
//! `cpu(0)`, as MXNet's CPU build does, and the stored device stays available
//! through [`parse`]).
//!
//! # Layout (MXNet `NDArray::Save` / `NDArray::Load`, `src/ndarray/ndarray.cc`)
//!
//! All integers little-endian, no padding anywhere:
//!
//! ```text
//! u64 0x112 (list magic) | u64 reserved | u64 N | N records | u64 K (0 or N) | K x (u64 len, bytes)
//! ```
//!
//! A record starts with a `u32` that selects its version: `0xF993FACA` V3,
//! `0xF993FAC9` V2, `0xF993FAC8` V1, anything else is a pre-V1 ndim.
//!
//! ```text
//! V2/V3 dense: magic | i32 stype=0 | i32 ndim | i64 dims[ndim] | i32 dev_type | i32 dev_id | i32 type_flag | data
//! V2 sparse:   magic | i32 stype (1 row_sparse, 2 csr) | storage shape | shape | device | type_flag
//!              | per aux: i32 type_flag (6), i32 1, i64 len | values | aux data (csr: indptr, indices)
//! V1:          magic | i32 ndim | i64 dims | device | type_flag | data
//! pre-V1:      u32 ndim | u32 dims | device | type_flag | data
//! ```
//!
//! ndim 0 is read as a 0-d array with one element in every version (what
//! MXNet's writers mean; its V2 legacy-mode reader misreads its own files).
//! Data offsets are generally unaligned, so zero-copy views
//! ([`load_mmap`], [`from_shared`]) may be unaligned; [`NDArray::is_aligned`]
//! tells. Owned loads ([`from_bytes`], [`load`]) copy into 64-byte aligned memory.
//!
//! # Leniency and strictness
//!
//! As MXNet, the reader accepts a non-zero reserved word, trailing bytes
//! after the names, duplicate names (kept in order; a dict built from them
//! lets the last win) and any stored device. Unlike MXNet it rejects, with
//! [`Error::Format`](crate::Error::Format) naming the byte offset, everything
//! MXNet would crash on, overflow on or allocate unboundedly for: counts and
//! lengths the remaining bytes cannot hold (checked before reserving memory),
//! overflowing dim products, placeholders (ndim -1, a dim of -1), unknown type
//! flags and storage types, a name count other than 0 or N, non-UTF-8 names,
//! sparse records in V3, and broken sparse structure (aux type, indptr shape
//! and monotonicity, index range and order). A sparse record's stored storage
//! shape may be stale (MXNet reads it before the array is computed); the
//! number of stored values comes from the indices, as in MXNet's loader.
//!
//! # Writing
//!
//! [`write_to`], [`to_bytes`] and [`save`] write V2 records (V3 for the whole
//! file under [`RecordVersion::Auto`] when an array is 0-d, so MXNet can read
//! it back), the array's own context in the device fields, int64 aux arrays
//! and the true storage shape. A name containing NUL is refused: MXNet would
//! cut it at the NUL, possibly creating a duplicate. [`save`] is atomic.
//!
//! # MXNet 2.0 containers
//!
//! The loaders also take MXNet 2.0's `.npz` (a zip of `NAME.npy` members, every
//! member a name, sparse arrays as `NAME/{data,indices,indptr,shape,format}.npy`)
//! and bare `.npy` files (a one-element list), recognised by their magic.
//!
//! # safetensors
//!
//! [`safetensors`] files (a u64 header length, then a JSON object) load the
//! same way, and a sharded checkpoint's `*.index.json` loads all its shards.

mod build;
mod cancel;
mod file_read;
mod fs_hints;
mod mapped_write;
mod npy;
mod npz;
mod pipelined;
mod reader;
pub mod safetensors;
mod special;
mod target;
mod writer;
mod zip;

use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::ndarray::NDArray;
use crate::storage::SharedSource;

pub use cancel::Cancel;
pub(crate) use file_read::open_source;
pub use reader::{
    parse, parse_record, AuxRole, AuxView, ParsedFile, RecordView, StoredDevice, Version,
};
pub use writer::{record_to_bytes, save, save_cancellable, to_bytes, write_file, write_to};

/// The list magic at offset 0 of every `.params` file.
pub const LIST_MAGIC: u64 = 0x112;
/// Record magic of V1 records (MXNet 0.11).
pub const MAGIC_V1: u32 = 0xF993_FAC8;
/// Record magic of V2 records (MXNet 0.12 and later, the 1.x default).
pub const MAGIC_V2: u32 = 0xF993_FAC9;
/// Record magic of V3 records (numpy-shape semantics).
pub const MAGIC_V3: u32 = 0xF993_FACA;
/// The largest first word read as a pre-V1 ndim. MXNet takes every unknown
/// first word as one, so a damaged magic becomes a misparse; we call anything
/// larger a bad magic.
pub const MAX_PRE_V1_NDIM: u32 = 32;
/// The smallest possible record: a pre-V1 0-d array of a 1-byte type
/// (ndim, device type, device id, type flag, one byte).
pub const MIN_RECORD_SIZE: usize = 17;

/// The record version a writer emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RecordVersion {
    /// V3 for the whole file if any dense array is 0-d and none is sparse
    /// (so MXNet can read the 0-d arrays back), else V2.
    #[default]
    Auto,
    /// V2, as MXNet 1.x writes by default (0-d arrays are written as MXNet
    /// does, which its own legacy-mode loader cannot read back).
    V2,
    /// V3, as MXNet writes under numpy-shape semantics; sparse arrays are rejected.
    V3,
}

/// Options of [`save`], [`write_to`] and [`to_bytes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SaveOptions {
    /// Which record version to write.
    pub version: RecordVersion,
    /// `fsync` the file and its directory before returning ([`save`] only).
    pub fsync: bool,
}

/// The contents of a file: arrays in file order and, for a dict file, their names.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The names, or `None` for a list file (no names stored). Duplicates are
    /// kept; a dict built from them should let the last one win, as MXNet does.
    pub names: Option<Vec<String>>,
    /// The arrays, on `cpu(0)`.
    pub arrays: Vec<NDArray>,
}

/// What kind of container some bytes hold, from their first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    Params,
    Npz,
    Npy,
    SafeTensors,
}

fn sniff(bytes: &[u8]) -> Container {
    match bytes.get(..4) {
        Some(b"PK\x03\x04") | Some(b"PK\x05\x06") => Container::Npz,
        Some(b"\x93NUM") => Container::Npy,
        _ if safetensors::looks_like(bytes) => Container::SafeTensors,
        _ => Container::Params,
    }
}

/// What a file that is not a `.params` (nor `.npz`/`.npy`) file most likely
/// is, from its first bytes, and what reads it; `None` when nothing is
/// recognised. Only consulted once parsing has failed.
fn foreign_format(head: &[u8]) -> Option<&'static str> {
    let trimmed = head.trim_ascii_start();
    if trimmed.starts_with(b"{") && head.windows(7).any(|w| w == b"\"nodes\"") {
        return Some(
            "This is an MXNet symbol file (-symbol.json): it holds a network's graph, not \
             its parameters; load the matching -NNNN.params file instead",
        );
    }
    // safetensors: u64 header length, then a JSON object.
    if head.len() > 9 && head[8] == b'{' {
        let n = u64::from_le_bytes(head[..8].try_into().ok()?);
        if (2..(1 << 32)).contains(&n) {
            return Some(
                "This looks like a safetensors file whose header runs past the end of the \
                 file: it is truncated or not a safetensors file",
            );
        }
    }
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        if head.windows(8).any(|w| w == b"data.pkl") || head.windows(9).any(|w| w == b"byteorder") {
            return Some("This is a PyTorch checkpoint (torch.save); read it with torch.load");
        }
        return Some(
            "This is a zip archive but not an MXNet .npz (whose members are NAME.npy \
             files); if numpy wrote it, read it with numpy.load",
        );
    }
    if head.first() == Some(&0x80) && head.get(1).is_some_and(|v| (2..=5).contains(v)) {
        return Some(
            "This is a Python pickle (a legacy torch.save file, for instance); read it with \
             torch.load or pickle, and only if you trust where it came from",
        );
    }
    if head.starts_with(b"\x89HDF") {
        return Some("This is an HDF5 file (Keras, h5py); read it with h5py");
    }
    if head.starts_with(b"\x1f\x8b") {
        return Some("This file is gzip-compressed; decompress it first");
    }
    None
}

/// Adds [`foreign_format`]'s description of `head` to a format error.
fn hint_foreign<T>(result: Result<T>, head: &[u8]) -> Result<T> {
    result.map_err(|mut err| {
        if let Error::Format { hint, .. } = &mut err {
            if hint.is_none() {
                *hint = foreign_format(head.get(..4096).unwrap_or(head)).map(str::to_owned);
            }
        }
        err
    })
}

/// Loads a file held in memory into owned, 64-byte aligned arrays. Accepts
/// the `.params` format and MXNet 2.0's `.npz` / `.npy`.
///
/// ```
/// use mxparams::{format, Context, DType, NDArray};
/// let a = NDArray::zeros(&[2, 3], DType::Float32, Context::cpu(0)).unwrap();
/// let bytes = format::to_bytes(Some(&["w"]), &[&a], &Default::default()).unwrap();
/// let loaded = format::from_bytes(&bytes).unwrap();
/// assert_eq!(loaded.names.unwrap(), ["w"]);
/// assert_eq!(loaded.arrays[0].shape(), &[2, 3]);
/// ```
pub fn from_bytes(bytes: &[u8]) -> Result<Loaded> {
    hint_foreign(
        match sniff(bytes) {
            Container::Params => build::owned(bytes),
            Container::Npz => npz::load_npz(bytes, None),
            Container::Npy => npz::load_npy(bytes, None),
            Container::SafeTensors => safetensors::load_owned(bytes),
        },
        bytes,
    )
}

/// Zero-copy load over shared bytes: arrays are read-only views into `source`
/// (deflated `.npz` members are the exception: they are decompressed).
pub fn from_shared(source: Arc<SharedSource>) -> Result<Loaded> {
    let bytes = source.bytes();
    let loaded = match sniff(bytes) {
        Container::Params => build::shared(&source),
        Container::Npz => npz::load_npz(bytes, Some(&source)),
        Container::Npy => npz::load_npy(bytes, Some(&source)),
        Container::SafeTensors => safetensors::load_shared(&source),
    };
    hint_foreign(loaded, bytes)
}

/// Reads a file into owned, 64-byte aligned arrays with positioned reads
/// (never through a memory map, so a file truncated while it is read gives
/// an error, not SIGBUS). A FIFO or device is read only as far as its
/// headers allow. Errors name the file.
pub fn load(path: impl AsRef<Path>) -> Result<Loaded> {
    load_cancellable(path, &Cancel::new())
}

/// [`load`], stopping with [`Error::Interrupted`] once `cancel` is set.
pub fn load_cancellable(path: impl AsRef<Path>, cancel: &Cancel) -> Result<Loaded> {
    let path = path.as_ref();
    if safetensors::is_index_path(path) {
        return safetensors::load_index(path, false).map_err(|e| e.at_path(path));
    }
    file_read::load_path(path, false, cancel)
}

/// Memory-maps a file and returns zero-copy, read-only arrays viewing it. The
/// map lives as long as any array does. Views may be unaligned. (A file that
/// cannot be mapped, such as a pipe, is read into memory and viewed there.)
/// The file must not be truncated while any view of it lives.
pub fn load_mmap(path: impl AsRef<Path>) -> Result<Loaded> {
    load_mmap_cancellable(path, &Cancel::new())
}

/// [`load_mmap`], stopping with [`Error::Interrupted`] once `cancel` is set.
pub fn load_mmap_cancellable(path: impl AsRef<Path>, cancel: &Cancel) -> Result<Loaded> {
    let path = path.as_ref();
    if safetensors::is_index_path(path) {
        return safetensors::load_index(path, true).map_err(|e| e.at_path(path));
    }
    file_read::load_path(path, true, cancel)
}

/// Loads one array record without file header or names (the bytes of a
/// pickled MXNet NDArray, `MXNDArraySaveRawBytes`) into an owned array.
pub fn array_from_record_bytes(bytes: &[u8]) -> Result<NDArray> {
    let rec = parse_record(bytes)?;
    build::owned_array(bytes, rec)
}

#[cfg(test)]
mod tests;
