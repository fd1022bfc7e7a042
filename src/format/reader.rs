//! Zero-copy parsing of the NDArray list format over a borrowed `&[u8]`.
//!
//! The reader owns the byte layout checks: every count, length, dim product
//! and byte size is computed with checked arithmetic and compared with the
//! bytes that remain *before* anything is reserved, so a hostile header can
//! neither overflow nor make us allocate more than the input justifies. It
//! never copies element data: records report absolute byte ranges into the
//! input, which the caller copies (owned load) or shares (mmap load).

use std::ops::Range;

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::ndarray::SType;

use super::{LIST_MAGIC, MAGIC_V1, MAGIC_V2, MAGIC_V3, MAX_PRE_V1_NDIM, MIN_RECORD_SIZE};

/// The version of one array record, from its first `u32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// MXNet <= 0.10: the first word is the ndim, dims are `u32`.
    PreV1,
    /// MXNet 0.11: magic `0xF993FAC8`, no storage type field.
    V1,
    /// MXNet 0.12 and later (default of every 1.x release): magic `0xF993FAC9`.
    V2,
    /// MXNet >= 1.5 under numpy-shape semantics: magic `0xF993FACA`.
    V3,
}

impl Version {
    /// The record magic (`None` for pre-V1, which has none).
    pub fn magic(self) -> Option<u32> {
        match self {
            Version::PreV1 => None,
            Version::V1 => Some(MAGIC_V1),
            Version::V2 => Some(MAGIC_V2),
            Version::V3 => Some(MAGIC_V3),
        }
    }
}

/// The device fields stored in a record, verbatim. MXNet's CPU build ignores
/// them on load (even nonsense such as type 77, id -5), so they are metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StoredDevice {
    /// MXNet device type id (1 cpu, 2 gpu, 3 cpu_pinned, 5 cpu_shared, or anything).
    pub dev_type: i32,
    /// Device ordinal.
    pub dev_id: i32,
}

/// What an aux array of a sparse record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuxRole {
    /// csr row pointers (rows + 1 entries).
    Indptr,
    /// row_sparse row numbers, or csr column numbers.
    Indices,
}

/// One aux array of a sparse record: always int64 and 1-D after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuxView {
    /// indptr or indices.
    pub role: AuxRole,
    /// Number of entries (its 1-D shape).
    pub len: usize,
    /// Absolute byte range of its data in the input.
    pub data: Range<usize>,
}

/// One array record, as byte ranges into the parsed input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordView {
    /// Absolute offset of the record's first byte.
    pub offset: usize,
    /// Absolute offset one past the record's last byte.
    pub end: usize,
    /// Record version.
    pub version: Version,
    /// Storage type (always dense for V1 and pre-V1).
    pub stype: SType,
    /// Element type of the (values) data.
    pub dtype: DType,
    /// The logical (dense) shape; empty for a 0-d array.
    pub shape: Vec<usize>,
    /// Sparse only: the storage shape as stored (possibly stale, see the
    /// format notes); empty for dense records.
    pub stored_storage_shape: Vec<usize>,
    /// Sparse only: the effective shape of the values block (rows or values
    /// counted from the indices); empty for dense records.
    pub storage_shape: Vec<usize>,
    /// The stored device fields.
    pub device: StoredDevice,
    /// Absolute byte range of the (values) data.
    pub data: Range<usize>,
    /// Sparse only: aux arrays in MXNet's aux order (csr: indptr, indices).
    pub aux: Vec<AuxView>,
}

impl RecordView {
    /// The shape of the stored data block: the shape for dense records, the
    /// effective storage shape for sparse ones.
    pub fn values_shape(&self) -> &[usize] {
        if self.stype == SType::Default {
            &self.shape
        } else {
            &self.storage_shape
        }
    }

    /// The aux array with `role`, if present.
    pub fn aux(&self, role: AuxRole) -> Option<&AuxView> {
        self.aux.iter().find(|a| a.role == role)
    }
}

/// A parsed file: the header fields, record views and names, borrowing the input.
#[derive(Debug, Clone)]
pub struct ParsedFile<'a> {
    /// The whole input.
    pub bytes: &'a [u8],
    /// The reserved header word (MXNet writes 0 and never checks it).
    pub reserved: u64,
    /// Array records in file order.
    pub records: Vec<RecordView>,
    /// The names (K = N), or `None` for a list file (K = 0). Duplicates are
    /// kept in order; a dict built from them lets the last one win, as MXNet.
    pub names: Option<Vec<&'a str>>,
    /// Offset of the name count K.
    pub names_offset: usize,
    /// Offset one past the last name; bytes after it are ignored, as MXNet.
    pub end: usize,
}

impl ParsedFile<'_> {
    /// The bytes of a record's (values) data.
    pub fn data(&self, record: &RecordView) -> &[u8] {
        self.bytes.get(record.data.clone()).unwrap_or_default()
    }
}

/// A bounds-checked little-endian cursor over the input.
///
/// The input may be a window: `bytes` holds the input's bytes from `base`
/// on, while the input itself is `end` bytes long (a file read piece by
/// piece). A read outside the window fails like a read past the end and
/// records how far it reached in `missed`, so the caller can fetch more and
/// parse again; skipping a range (array data) needs no bytes at all.
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    base: usize,
    pos: usize,
    end: usize,
    missed: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8], pos: usize) -> Self {
        Cursor {
            bytes,
            base: 0,
            pos,
            end: bytes.len(),
            missed: 0,
        }
    }

    /// A cursor at `pos` over a window: `bytes` are the input's bytes from
    /// `base`, and the input is `end` bytes long.
    pub(crate) fn windowed(bytes: &'a [u8], base: usize, pos: usize, end: usize) -> Self {
        Cursor {
            bytes,
            base,
            pos,
            end,
            missed: 0,
        }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.end.saturating_sub(self.pos)
    }

    /// One past the furthest byte a failed read wanted beyond the window
    /// (0 when every read stayed inside it).
    pub(crate) fn missed(&self) -> usize {
        self.missed
    }

    /// The input's bytes in `range` (absolute offsets), if the window holds them.
    fn slice(&mut self, range: Range<usize>) -> Option<&'a [u8]> {
        let bytes = self.bytes;
        let got = range
            .start
            .checked_sub(self.base)
            .and_then(|s| bytes.get(s..range.end.checked_sub(self.base)?));
        if got.is_none() && range.end <= self.end {
            self.missed = self.missed.max(range.end);
        }
        got
    }

    fn take<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let at = self.pos;
        let out = at
            .checked_add(N)
            .filter(|&e| e <= self.end)
            .and_then(|e| self.slice(at..e))
            .and_then(|s| <[u8; N]>::try_from(s).ok())
            .ok_or_else(|| self.short(N, what))?;
        self.pos += N;
        Ok(out)
    }

    fn short(&self, need: usize, what: &str) -> Error {
        Error::format(
            self.pos as u64,
            format!("{what} ({need} bytes)"),
            format!("end of input ({} bytes left)", self.remaining()),
        )
    }

    pub(crate) fn u32(&mut self, what: &str) -> Result<u32> {
        self.take::<4>(what).map(u32::from_le_bytes)
    }

    pub(crate) fn i32(&mut self, what: &str) -> Result<i32> {
        self.take::<4>(what).map(i32::from_le_bytes)
    }

    pub(crate) fn u64(&mut self, what: &str) -> Result<u64> {
        self.take::<8>(what).map(u64::from_le_bytes)
    }

    pub(crate) fn i64(&mut self, what: &str) -> Result<i64> {
        self.take::<8>(what).map(i64::from_le_bytes)
    }

    /// Skips `len` bytes and returns their absolute range.
    pub(crate) fn range(&mut self, len: usize, what: &str) -> Result<Range<usize>> {
        if len > self.remaining() {
            return Err(self.short(len, what));
        }
        let start = self.pos;
        self.pos += len;
        Ok(start..self.pos)
    }
}

fn fmt_err(offset: usize, expected: impl Into<String>, found: impl Into<String>) -> Error {
    Error::format(offset as u64, expected, found)
}

/// Parses a whole `.params` file or buffer.
///
/// ```
/// let bytes = mxparams::format::to_bytes(None, &[], &Default::default()).unwrap();
/// let parsed = mxparams::format::parse(&bytes).unwrap();
/// assert!(parsed.records.is_empty() && parsed.names.is_none());
/// ```
pub fn parse(bytes: &[u8]) -> Result<ParsedFile<'_>> {
    let mut s = Stream::open(bytes)?;
    let mut records = Vec::with_capacity(s.count());
    for _ in 0..s.count() {
        records.push(s.next_record()?);
    }
    let reserved = s.reserved;
    let names_offset = s.c.pos();
    let (names, end) = s.names(|n| n)?;
    Ok(ParsedFile {
        bytes,
        reserved,
        records,
        names,
        names_offset,
        end,
    })
}

/// Streaming access to a file: the header, then the records one at a time
/// (so loads build arrays without first collecting every record), then the
/// names.
pub(crate) struct Stream<'a> {
    c: Cursor<'a>,
    n: usize,
    reserved: u64,
}

impl<'a> Stream<'a> {
    /// Reads and checks the header.
    pub(crate) fn open(bytes: &'a [u8]) -> Result<Self> {
        let mut c = Cursor::new(bytes, 0);
        let (n, reserved) = header_at(&mut c)?;
        Ok(Stream { c, n, reserved })
    }

    /// The number of records (bounded by the input size).
    pub(crate) fn count(&self) -> usize {
        self.n
    }

    /// The next record; call exactly `count()` times.
    pub(crate) fn next_record(&mut self) -> Result<RecordView> {
        parse_record_at(&mut self.c)
    }

    /// After the records: the names mapped through `f`, and the end offset.
    pub(crate) fn names<T>(
        mut self,
        f: impl FnMut(&'a str) -> T,
    ) -> Result<(Option<Vec<T>>, usize)> {
        names_at(&mut self.c, self.n, f)
    }
}

/// Reads and checks the file header at the cursor (offset 0): the record
/// count (bounded by the bytes the input can hold) and the reserved word.
pub(crate) fn header_at(c: &mut Cursor<'_>) -> Result<(usize, u64)> {
    let magic = c.u64("list magic")?;
    if magic != LIST_MAGIC {
        return Err(fmt_err(
            0,
            format!("list magic {LIST_MAGIC:#x}"),
            format!("{magic:#x}"),
        ));
    }
    let reserved = c.u64("reserved word")?;
    let n_at = c.pos();
    let n = c.u64("array count")?;
    // Every record takes at least MIN_RECORD_SIZE bytes and the name count 8 more.
    let max_n = c.remaining().saturating_sub(8) / MIN_RECORD_SIZE;
    let n = usize::try_from(n)
        .ok()
        .filter(|&n| n <= max_n)
        .ok_or_else(|| {
            fmt_err(
                n_at,
                format!(
                    "an array count the remaining {} bytes can hold",
                    c.remaining()
                ),
                n.to_string(),
            )
        })?;
    Ok((n, reserved))
}

/// The names section of a file of `n` records at the cursor: the names
/// mapped through `f` (`None` for a list file), and the end offset.
pub(crate) fn names_at<'a, T>(
    c: &mut Cursor<'a>,
    n: usize,
    mut f: impl FnMut(&'a str) -> T,
) -> Result<(Option<Vec<T>>, usize)> {
    let names_offset = c.pos();
    let k = c.u64("name count")?;
    if k != 0 && k != n as u64 {
        return Err(fmt_err(
            names_offset,
            format!("name count 0 or {n}"),
            k.to_string(),
        ));
    }
    if k == 0 {
        return Ok((None, c.pos()));
    }
    // Each name takes 8 bytes at least; a stream's length is not known.
    let mut names = Vec::with_capacity(n.min(c.remaining() / 8).min(1 << 16));
    for _ in 0..n {
        names.push(f(parse_name(c)?));
    }
    Ok((Some(names), c.pos()))
}

fn parse_name<'a>(c: &mut Cursor<'a>) -> Result<&'a str> {
    let at = c.pos();
    let len = c.u64("name length")?;
    let len = usize::try_from(len)
        .ok()
        .filter(|&l| l <= c.remaining())
        .ok_or_else(|| {
            fmt_err(
                at,
                format!("a name length within the remaining {} bytes", c.remaining()),
                len.to_string(),
            )
        })?;
    let range = c.range(len, "name bytes")?;
    let raw = c.slice(range.clone()).unwrap_or_default();
    std::str::from_utf8(raw).map_err(|e| {
        fmt_err(
            range.start + e.valid_up_to(),
            "a UTF-8 name",
            format!("invalid UTF-8 in name of {len} bytes"),
        )
    })
}

/// Parses one array record that fills `bytes` from offset 0 (the form a
/// pickled MXNet NDArray takes: `MXNDArraySaveRawBytes` writes one record with
/// no file header and no names). Trailing bytes are an error here.
pub fn parse_record(bytes: &[u8]) -> Result<RecordView> {
    let mut c = Cursor::new(bytes, 0);
    let rec = parse_record_at(&mut c)?;
    if c.remaining() != 0 {
        return Err(fmt_err(
            c.pos(),
            "end of the record",
            format!("{} trailing bytes", c.remaining()),
        ));
    }
    Ok(rec)
}

/// Parses the record at the cursor.
pub(crate) fn parse_record_at(c: &mut Cursor<'_>) -> Result<RecordView> {
    let offset = c.pos();
    let first = c.u32("record magic")?;
    let version = match first {
        MAGIC_V3 => Version::V3,
        MAGIC_V2 => Version::V2,
        MAGIC_V1 => Version::V1,
        n if n <= MAX_PRE_V1_NDIM => Version::PreV1,
        other => {
            return Err(fmt_err(
                offset,
                format!(
                    "a record magic ({MAGIC_V2:#x}, {MAGIC_V3:#x}, {MAGIC_V1:#x}) or a legacy \
                     ndim <= {MAX_PRE_V1_NDIM}"
                ),
                format!("{other:#x}"),
            ))
        }
    };
    let stype = match version {
        Version::V2 | Version::V3 => {
            let at = c.pos();
            let id = c.i32("storage type")?;
            let stype = SType::from_id(id).ok_or_else(|| {
                fmt_err(
                    at,
                    "storage type 0 (dense), 1 (row_sparse) or 2 (csr)",
                    id.to_string(),
                )
            })?;
            if version == Version::V3 && stype != SType::Default {
                return Err(fmt_err(
                    at,
                    "dense storage in a V3 record",
                    stype.name().to_string(),
                ));
            }
            stype
        }
        Version::V1 | Version::PreV1 => SType::Default,
    };
    if stype != SType::Default {
        return parse_sparse(c, offset, stype);
    }
    let shape = match version {
        Version::PreV1 => read_pre_v1_dims(c, first as usize)?,
        _ => read_shape(c, "shape")?,
    };
    let device = read_device(c)?;
    let dtype = read_dtype(c, "type flag")?;
    let nbytes = data_bytes(c.pos(), &shape, dtype)?;
    let data = c.range(nbytes, "array data")?;
    Ok(RecordView {
        offset,
        end: c.pos(),
        version,
        stype,
        dtype,
        shape,
        stored_storage_shape: Vec::new(),
        storage_shape: Vec::new(),
        device,
        data,
        aux: Vec::new(),
    })
}

fn parse_sparse(c: &mut Cursor<'_>, offset: usize, stype: SType) -> Result<RecordView> {
    let sshape_at = c.pos();
    let stored_storage_shape = read_shape(c, "storage shape")?;
    let shape_at = c.pos();
    let shape = read_shape(c, "shape")?;
    match (stype, shape.len()) {
        (SType::Csr, 2) | (SType::RowSparse, 1..) => {}
        _ => {
            return Err(fmt_err(
                shape_at,
                format!("a {} shape (csr: 2-D, row_sparse: ndim >= 1)", stype.name()),
                format!("{shape:?}"),
            ))
        }
    }
    // The dense form must be representable (MXNet silently wraps such sizes).
    data_bytes(shape_at, &shape, DType::UInt8)?;
    let device = read_device(c)?;
    let dtype = read_dtype(c, "type flag")?;
    let roles: &[AuxRole] = if stype == SType::Csr {
        &[AuxRole::Indptr, AuxRole::Indices]
    } else {
        &[AuxRole::Indices]
    };
    let mut lens = [0usize; 2];
    for (slot, _) in lens.iter_mut().zip(roles) {
        let at = c.pos();
        let flag = c.i32("aux type flag")?;
        if flag != DType::Int64.flag() {
            return Err(fmt_err(at, "aux type flag 6 (int64)", flag.to_string()));
        }
        let at = c.pos();
        let aux_shape = read_shape(c, "aux shape")?;
        *slot = match aux_shape.as_slice() {
            [len] => *len,
            _ => {
                return Err(fmt_err(at, "a 1-D aux shape", format!("{aux_shape:?}")));
            }
        };
    }
    let nnz = lens[roles.len() - 1];
    // MXNet rebuilds the storage shape from the indices length (the stored one
    // may be stale); a non-empty stored one must agree with that rebuild.
    let mut storage_shape = Vec::with_capacity(shape.len());
    storage_shape.push(nnz);
    if stype == SType::RowSparse {
        storage_shape.extend_from_slice(shape.get(1..).unwrap_or_default());
    }
    let stored_size = stored_storage_shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d));
    if stored_size != Some(0) {
        let agrees = stored_storage_shape.len() == storage_shape.len()
            && stored_storage_shape.get(1..) == storage_shape.get(1..);
        if !agrees {
            return Err(fmt_err(
                sshape_at,
                format!("a storage shape matching {storage_shape:?}"),
                format!("{stored_storage_shape:?}"),
            ));
        }
    }
    let nbytes = data_bytes(c.pos(), &storage_shape, dtype)?;
    let data = c.range(nbytes, "sparse values")?;
    let mut aux = Vec::with_capacity(roles.len());
    for (&role, &len) in roles.iter().zip(&lens) {
        let nbytes = len.checked_mul(8).ok_or_else(|| {
            fmt_err(
                c.pos(),
                "an aux array size that fits in memory",
                len.to_string(),
            )
        })?;
        let data = c.range(nbytes, "sparse aux data")?;
        aux.push(AuxView { role, len, data });
    }
    let rec = RecordView {
        offset,
        end: c.pos(),
        version: Version::V2,
        stype,
        dtype,
        shape,
        stored_storage_shape,
        storage_shape,
        device,
        data,
        aux,
    };
    validate_sparse(c, &rec)?;
    Ok(rec)
}

/// Reads the int64 at `i` of an aux array (in bounds by construction).
fn aux_at(c: &mut Cursor<'_>, aux: &AuxView, i: usize) -> (usize, i64) {
    let at = aux.data.start + 8 * i;
    let v = c
        .slice(at..at + 8)
        .and_then(|s| <[u8; 8]>::try_from(s).ok())
        .map_or(-1, i64::from_le_bytes);
    (at, v)
}

fn check_indices(
    c: &mut Cursor<'_>,
    aux: &AuxView,
    range: Range<usize>,
    bound: usize,
) -> Result<()> {
    let mut prev = -1i64;
    for i in range {
        let (at, v) = aux_at(c, aux, i);
        if v <= prev || usize::try_from(v).map_or(true, |u| u >= bound) {
            return Err(fmt_err(
                at,
                format!("an increasing index in 0..{bound} (after {prev})"),
                v.to_string(),
            ));
        }
        prev = v;
    }
    Ok(())
}

/// MXNet validates no sparse structure and later crashes or writes out of
/// bounds; we check it once here, reporting the offending entry's offset.
fn validate_sparse(c: &mut Cursor<'_>, rec: &RecordView) -> Result<()> {
    let indices = rec
        .aux(AuxRole::Indices)
        .ok_or_else(|| fmt_err(rec.offset, "sparse indices", "none"))?;
    let rows = rec.shape.first().copied().unwrap_or(0);
    match rec.aux(AuxRole::Indptr) {
        None => check_indices(c, indices, 0..indices.len, rows),
        Some(indptr) => {
            let cols = rec.shape.get(1).copied().unwrap_or(0);
            if Some(indptr.len) != rows.checked_add(1) {
                return Err(fmt_err(
                    indptr.data.start,
                    format!("csr indptr of rows + 1 = {} entries", rows as u128 + 1),
                    indptr.len.to_string(),
                ));
            }
            let (at, first) = aux_at(c, indptr, 0);
            if first != 0 {
                return Err(fmt_err(at, "csr indptr starting at 0", first.to_string()));
            }
            let mut prev = 0usize;
            for r in 1..indptr.len {
                let (at, v) = aux_at(c, indptr, r);
                let v = usize::try_from(v)
                    .ok()
                    .filter(|&v| v >= prev && v <= indices.len)
                    .ok_or_else(|| {
                        fmt_err(
                            at,
                            format!("a non-decreasing indptr entry in {prev}..={}", indices.len),
                            v.to_string(),
                        )
                    })?;
                check_indices(c, indices, prev..v, cols)?;
                prev = v;
            }
            if prev != indices.len {
                let (at, _) = aux_at(c, indptr, indptr.len - 1);
                return Err(fmt_err(
                    at,
                    format!("csr indptr ending at nnz = {}", indices.len),
                    prev.to_string(),
                ));
            }
            Ok(())
        }
    }
}

fn read_device(c: &mut Cursor<'_>) -> Result<StoredDevice> {
    Ok(StoredDevice {
        dev_type: c.i32("device type")?,
        dev_id: c.i32("device id")?,
    })
}

fn read_dtype(c: &mut Cursor<'_>, what: &str) -> Result<DType> {
    let at = c.pos();
    let flag = c.i32(what)?;
    DType::from_flag(flag).ok_or_else(|| fmt_err(at, "a type flag in 0..=12", flag.to_string()))
}

/// A V1/V2/V3 shape: `i32 ndim` + `ndim` x `i64`. Placeholders (ndim -1, a dim
/// of -1) and negative values are rejected; ndim 0 is a 0-d array.
fn read_shape(c: &mut Cursor<'_>, what: &str) -> Result<Vec<usize>> {
    let at = c.pos();
    let ndim = c.i32(what)?;
    let ndim = usize::try_from(ndim)
        .ok()
        .filter(|&n| n <= c.remaining() / 8)
        .ok_or_else(|| {
            fmt_err(
                at,
                format!(
                    "a {what} ndim in 0..={} (what the remaining bytes can hold)",
                    c.remaining() / 8
                ),
                if ndim == -1 {
                    "-1 (an unknown-shape placeholder)".to_string()
                } else {
                    ndim.to_string()
                },
            )
        })?;
    let mut dims = Vec::with_capacity(ndim);
    for _ in 0..ndim {
        let at = c.pos();
        let d = c.i64("dim")?;
        let d = usize::try_from(d).map_err(|_| fmt_err(at, "a non-negative dim", d.to_string()))?;
        dims.push(d);
    }
    Ok(dims)
}

/// Pre-V1 dims: `ndim` x `u32` (the ndim was the record's first word).
fn read_pre_v1_dims(c: &mut Cursor<'_>, ndim: usize) -> Result<Vec<usize>> {
    if ndim > c.remaining() / 4 {
        return Err(c.short(ndim * 4, "legacy dims"));
    }
    let mut dims = Vec::with_capacity(ndim);
    for _ in 0..ndim {
        dims.push(c.u32("legacy dim")? as usize);
    }
    Ok(dims)
}

/// Bytes of data for `shape` of `dtype`, with checked arithmetic.
fn data_bytes(at: usize, shape: &[usize], dtype: DType) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .and_then(|n| n.checked_mul(dtype.itemsize()))
        .ok_or_else(|| {
            fmt_err(
                at,
                "a shape whose byte size fits in memory",
                format!("{shape:?} of {dtype}"),
            )
        })
}
