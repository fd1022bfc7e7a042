//! A minimal read-only zip directory reader for `.npz` archives over a
//! borrowed `&[u8]`: finds each member's name and data range (stored or
//! deflated) without copying, so stored members can be viewed zero-copy.
//!
//! Supports what numpy and MXNet 2.0 write: stored (0) and deflated (8)
//! members, zip64 sizes and offsets; no encryption, no multi-disk archives.
//! CRCs are not checked (that would mean reading every byte of a zero-copy
//! load); the npy headers and size bounds catch structural damage.
//!
//! Not the `zip` crate: it is built around `Read + Seek` streams, while this
//! parses the directory straight off the borrowed (often memory-mapped) slice,
//! so a stored member is a subslice, read with no copy and no seeks, and a
//! damaged archive is reported with byte offsets like the rest of the reader.

use std::ops::Range;

use crate::error::{Error, Result};

use super::reader::Cursor;

const EOCD_SIG: u32 = 0x0605_4b50;
const EOCD64_LOCATOR_SIG: u32 = 0x0706_4b50;
const EOCD64_SIG: u32 = 0x0606_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const LOCAL_SIG: u32 = 0x0403_4b50;
const EOCD_LEN: usize = 22;
const CENTRAL_LEN: usize = 46;
const LOCAL_LEN: usize = 30;

/// How a member's bytes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Stored,
    Deflated,
}

/// One archive member.
#[derive(Debug, Clone)]
pub(crate) struct Member<'a> {
    pub name: &'a str,
    /// Offset of the member's local header (for error messages).
    pub header: usize,
    pub method: Method,
    /// Absolute range of the (possibly compressed) data.
    pub data: Range<usize>,
    /// Uncompressed size.
    pub size: usize,
}

fn err(offset: usize, expected: impl Into<String>, found: impl Into<String>) -> Error {
    Error::format(offset as u64, expected, found)
}

fn u16_at(bytes: &[u8], at: usize) -> Result<u16> {
    bytes
        .get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or_else(|| err(at, "a zip field (2 bytes)", "end of input"))
}

fn to_usize(v: u64, at: usize, what: &str, limit: usize) -> Result<usize> {
    usize::try_from(v)
        .ok()
        .filter(|&v| v <= limit)
        .ok_or_else(|| err(at, format!("a {what} of at most {limit}"), v.to_string()))
}

/// Locates the end-of-central-directory record (it may be followed by a
/// comment of up to 65535 bytes).
fn find_eocd(bytes: &[u8]) -> Result<usize> {
    let last = bytes.len().checked_sub(EOCD_LEN).ok_or_else(|| {
        err(
            0,
            "a zip end-of-central-directory record",
            format!("{} bytes", bytes.len()),
        )
    })?;
    let first = last.saturating_sub(u16::MAX as usize);
    (first..=last)
        .rev()
        .find(|&i| bytes.get(i..i + 4) == Some(&EOCD_SIG.to_le_bytes()[..]))
        .ok_or_else(|| {
            err(
                last,
                "a zip end-of-central-directory record",
                "no signature",
            )
        })
}

/// Central directory offset, size and entry count (zip64-aware).
fn directory(bytes: &[u8]) -> Result<(usize, usize, u64, usize)> {
    let eocd = find_eocd(bytes)?;
    let (mut count_at, mut size_at) = (eocd + 10, eocd + 12);
    let mut count = u64::from(u16_at(bytes, count_at)?);
    let mut size = u64::from(u32_at(bytes, size_at)?);
    let mut offset = u64::from(u32_at(bytes, eocd + 16)?);
    if count == 0xFFFF || size == 0xFFFF_FFFF || offset == 0xFFFF_FFFF {
        let loc = eocd.checked_sub(20).ok_or_else(|| {
            err(
                eocd,
                "a zip64 locator before the end record",
                "start of input",
            )
        })?;
        let mut c = Cursor::new(bytes, loc);
        if c.u32("zip64 locator")? != EOCD64_LOCATOR_SIG {
            return Err(err(
                loc,
                "a zip64 end-of-directory locator",
                "another signature",
            ));
        }
        let _ = c.u32("zip64 disk")?;
        let at = c.pos();
        let rec = to_usize(
            c.u64("zip64 record offset")?,
            at,
            "zip64 record offset",
            loc,
        )?;
        let mut c = Cursor::new(bytes, rec);
        if c.u32("zip64 end record")? != EOCD64_SIG {
            return Err(err(
                rec,
                "a zip64 end-of-directory record",
                "another signature",
            ));
        }
        let _ = c.u64("zip64 record size")?;
        let _ = c.u32("zip64 versions")?;
        let _ = c.u64("zip64 disks")?;
        let _ = c.u64("zip64 entries on disk")?;
        count_at = c.pos();
        count = c.u64("zip64 entry count")?;
        size_at = c.pos();
        size = c.u64("zip64 directory size")?;
        offset = c.u64("zip64 directory offset")?;
    }
    let offset = to_usize(offset, size_at + 4, "zip directory offset", bytes.len())?;
    let size = to_usize(size, size_at, "zip directory size", bytes.len() - offset)?;
    Ok((offset, size, count, count_at))
}

/// Parses the archive's directory: members in directory order.
pub(crate) fn members(bytes: &[u8]) -> Result<(Vec<Member<'_>>, usize)> {
    let (offset, size, count, count_at) = directory(bytes)?;
    let count = to_usize(count, count_at, "zip entry count", size / CENTRAL_LEN)?;
    let mut out = Vec::with_capacity(count);
    let mut c = Cursor::new(bytes, offset);
    for _ in 0..count {
        let at = c.pos();
        if c.u32("zip directory entry")? != CENTRAL_SIG {
            return Err(err(
                at,
                "a zip central directory entry",
                "another signature",
            ));
        }
        let flags = u16_at(bytes, at + 8)?;
        let method = u16_at(bytes, at + 10)?;
        let mut csize = u64::from(u32_at(bytes, at + 20)?);
        let mut usize_ = u64::from(u32_at(bytes, at + 24)?);
        let name_len = usize::from(u16_at(bytes, at + 28)?);
        let extra_len = usize::from(u16_at(bytes, at + 30)?);
        let comment_len = usize::from(u16_at(bytes, at + 32)?);
        let mut local = u64::from(u32_at(bytes, at + 42)?);
        let mut c2 = Cursor::new(bytes, at + CENTRAL_LEN);
        let name_range = c2.range(name_len, "zip member name")?;
        let extra = c2.range(extra_len, "zip extra field")?;
        c2.range(comment_len, "zip member comment")?;
        c = c2;
        let raw = bytes.get(name_range.clone()).unwrap_or_default();
        let name = std::str::from_utf8(raw)
            .map_err(|_| err(name_range.start, "a UTF-8 member name", "invalid UTF-8"))?;
        if flags & 1 != 0 {
            return Err(err(
                at,
                "an unencrypted zip member",
                format!("encrypted {name:?}"),
            ));
        }
        read_zip64_extra(bytes, extra, &mut usize_, &mut csize, &mut local)?;
        let method = match method {
            0 => Method::Stored,
            8 => Method::Deflated,
            m => {
                return Err(err(
                    at + 10,
                    "zip compression 0 (stored) or 8 (deflate)",
                    format!("{m} for {name:?}"),
                ))
            }
        };
        let header = to_usize(local, at + 42, "local header offset", bytes.len())?;
        let data = local_data(bytes, header, csize)?;
        let size = if method == Method::Stored {
            if usize_ != csize {
                return Err(err(at + 20, "equal sizes for a stored member", name));
            }
            data.len()
        } else {
            // Deflate expands at most ~1032:1; a bigger claim is a lie we won't allocate for.
            let limit = data.len().saturating_mul(1032).saturating_add(1024);
            to_usize(usize_, at + 24, "deflated member size", limit)?
        };
        out.push(Member {
            name,
            header,
            method,
            data,
            size,
        });
    }
    Ok((out, offset))
}

fn u32_at(bytes: &[u8], at: usize) -> Result<u32> {
    bytes
        .get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| err(at, "a zip field (4 bytes)", "end of input"))
}

/// Applies a zip64 extended-information extra field (id 1): 64-bit values
/// replace the 32-bit fields that are saturated, in a fixed order.
fn read_zip64_extra(
    bytes: &[u8],
    extra: Range<usize>,
    usize_: &mut u64,
    csize: &mut u64,
    local: &mut u64,
) -> Result<()> {
    let mut c = Cursor::new(bytes.get(..extra.end).unwrap_or_default(), extra.start);
    while c.remaining() >= 4 {
        let at = c.pos();
        let id = u16_at(bytes, at)?;
        let len = usize::from(u16_at(bytes, at + 2)?);
        let _ = c.u32("zip extra header")?;
        let body = c.range(len, "zip extra field")?;
        if id == 1 {
            let mut e = Cursor::new(bytes.get(..body.end).unwrap_or_default(), body.start);
            for field in [usize_, csize, local] {
                if *field == 0xFFFF_FFFF {
                    *field = e.u64("zip64 extra value")?;
                }
            }
            return Ok(());
        }
    }
    Ok(())
}

/// The data range of the member whose local header is at `header`.
fn local_data(bytes: &[u8], header: usize, csize: u64) -> Result<Range<usize>> {
    let mut c = Cursor::new(bytes, header);
    if c.u32("zip local header")? != LOCAL_SIG {
        return Err(err(header, "a zip local file header", "another signature"));
    }
    let name_len = usize::from(u16_at(bytes, header + 26)?);
    let extra_len = usize::from(u16_at(bytes, header + 28)?);
    let mut c = Cursor::new(bytes, header + LOCAL_LEN);
    c.range(name_len, "zip local name")?;
    c.range(extra_len, "zip local extra")?;
    let at = c.pos();
    let csize = to_usize(csize, at, "member size", c.remaining())?;
    c.range(csize, "zip member data")
}

/// Inflates a deflated member into exactly `size` bytes.
pub(crate) fn inflate(bytes: &[u8], m: &Member<'_>) -> Result<Vec<u8>> {
    let input = bytes.get(m.data.clone()).unwrap_or_default();
    let mut out = vec![0u8; m.size];
    let n = miniz_oxide::inflate::decompress_slice_iter_to_slice(
        &mut out,
        std::iter::once(input),
        false,
        true,
    )
    .map_err(|e| {
        err(
            m.data.start,
            "valid deflate data",
            format!("{e:?} in {:?}", m.name),
        )
    })?;
    if n != m.size {
        return Err(err(
            m.data.start,
            format!("{} inflated bytes", m.size),
            format!("{n} in {:?}", m.name),
        ));
    }
    Ok(out)
}
