//! `.npy` headers: magic, version, and the Python-literal header dict
//! (`descr`, `fortran_order`, `shape`), parsed by hand and bounded by the input.
//!
//! Only little-endian, C-order arrays of the dtypes mxparams knows are
//! accepted, plus the fixed-width string arrays MXNet 2.0 uses for a sparse
//! array's `format` member. `<b2` is bfloat16 (MXNet 2.0's own descr).
//!
//! Not `npyz`/`ndarray-npy`: they decode whole arrays into owned memory through
//! `Read`, while the `.npz` loader needs only the header, to view the data in
//! place (zero-copy from a mapping); and `<b2` is not a numpy dtype they accept.

use crate::dtype::DType;
use crate::error::{Error, Result};

/// The `.npy` magic.
pub(crate) const NPY_MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Element type of an `.npy` array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NpyType {
    /// A numeric type.
    Num(DType),
    /// Fixed-width strings: `U` (UTF-32LE code units) or `S` (bytes) of `width`.
    Str { utf32: bool, width: usize },
}

impl NpyType {
    fn itemsize(self) -> Option<usize> {
        match self {
            NpyType::Num(d) => Some(d.itemsize()),
            NpyType::Str { utf32: true, width } => width.checked_mul(4),
            NpyType::Str {
                utf32: false,
                width,
            } => Some(width),
        }
    }
}

/// A parsed header; offsets are relative to the start of the `.npy` bytes.
#[derive(Debug, Clone)]
pub(crate) struct NpyHeader {
    pub ty: NpyType,
    pub shape: Vec<usize>,
    pub data_offset: usize,
    pub nbytes: usize,
}

fn err(at: usize, expected: impl Into<String>, found: impl Into<String>) -> Error {
    Error::format(at as u64, expected, found)
}

/// Parses the header of the `.npy` bytes `npy`, which sit at absolute offset
/// `base` (for error offsets). The data must fit in `npy`.
pub(crate) fn parse_header(npy: &[u8], base: usize) -> Result<NpyHeader> {
    if npy.get(..6) != Some(&NPY_MAGIC[..]) {
        return Err(err(base, "the .npy magic \\x93NUMPY", "other bytes"));
    }
    let major = npy
        .get(6)
        .copied()
        .ok_or_else(|| err(base + 6, "an .npy version", "end of input"))?;
    let (len, start): (Option<usize>, usize) = match major {
        1 => (
            npy.get(8..10)
                .map(|s| usize::from(u16::from_le_bytes([s[0], s[1]]))),
            10,
        ),
        2 | 3 => (
            npy.get(8..12)
                .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize),
            12,
        ),
        v => {
            return Err(err(
                base + 6,
                ".npy format version 1, 2 or 3",
                v.to_string(),
            ))
        }
    };
    let len = len.ok_or_else(|| err(base + 8, "an .npy header length", "end of input"))?;
    let end = start
        .checked_add(len)
        .filter(|&e| e <= npy.len())
        .ok_or_else(|| {
            err(
                base + 8,
                "an .npy header within the input",
                format!("{len} bytes"),
            )
        })?;
    let text = npy.get(start..end).unwrap_or_default();
    let (descr, fortran, shape) = parse_dict(text, base + start)?;
    if fortran {
        return Err(err(
            base + start,
            "a C-order array (fortran_order False)",
            "fortran_order True",
        ));
    }
    let ty = parse_descr(&descr, base + start)?;
    let nbytes = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .and_then(|n| ty.itemsize().and_then(|i| n.checked_mul(i)))
        .filter(|&n| n <= npy.len() - end)
        .ok_or_else(|| {
            err(
                base + end,
                format!("array data within the {} bytes left", npy.len() - end),
                format!("shape {shape:?} of {descr}"),
            )
        })?;
    Ok(NpyHeader {
        ty,
        shape,
        data_offset: end,
        nbytes,
    })
}

fn parse_descr(descr: &str, at: usize) -> Result<NpyType> {
    let bad = || {
        err(
            at,
            "a little-endian numeric or string descr",
            format!("{descr:?}"),
        )
    };
    let (order, code) = match descr.chars().next() {
        Some(c @ ('<' | '>' | '|' | '=')) => (c, &descr[1..]),
        _ => ('|', descr),
    };
    let big = order == '>' || (order == '=' && cfg!(target_endian = "big"));
    if let Some(w) = code.strip_prefix('U').or_else(|| code.strip_prefix('S')) {
        let width: usize = w.parse().map_err(|_| bad())?;
        let utf32 = code.starts_with('U');
        if utf32 && big {
            return Err(bad());
        }
        return Ok(NpyType::Str { utf32, width });
    }
    let dtype = match code {
        "f4" => DType::Float32,
        "f8" => DType::Float64,
        "f2" => DType::Float16,
        "u1" | "B" => DType::UInt8,
        "i4" => DType::Int32,
        "i1" | "b" => DType::Int8,
        "i8" => DType::Int64,
        "b1" | "?" => DType::Bool,
        "i2" => DType::Int16,
        "u2" => DType::UInt16,
        "u4" => DType::UInt32,
        "u8" => DType::UInt64,
        "b2" => DType::BFloat16,
        _ => return Err(bad()),
    };
    if big && dtype.itemsize() > 1 {
        return Err(err(
            at,
            "little-endian data",
            format!("big-endian descr {descr:?}"),
        ));
    }
    Ok(NpyType::Num(dtype))
}

/// A tiny parser for the header dict: `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`.
struct Lit<'a> {
    s: &'a [u8],
    i: usize,
    base: usize,
}

enum Val {
    Str(String),
    Bool(bool),
    Tuple(Vec<usize>),
}

impl Lit<'_> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn err(&self, expected: &str) -> Error {
        let found = self
            .s
            .get(self.i..)
            .map(|r| String::from_utf8_lossy(&r[..r.len().min(20)]).into_owned())
            .unwrap_or_default();
        err(self.base + self.i, expected, format!("{found:?}"))
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn string(&mut self) -> Result<String> {
        self.ws();
        let q = match self.s.get(self.i) {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => return Err(self.err("a quoted string")),
        };
        let start = self.i + 1;
        let len = self
            .s
            .get(start..)
            .and_then(|r| r.iter().position(|&c| c == q))
            .ok_or_else(|| self.err("a closed string"))?;
        self.i = start + len + 1;
        let raw = self.s.get(start..start + len).unwrap_or_default();
        Ok(String::from_utf8_lossy(raw).into_owned())
    }

    fn int(&mut self) -> Result<usize> {
        self.ws();
        let start = self.i;
        while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        let digits =
            std::str::from_utf8(self.s.get(start..self.i).unwrap_or_default()).unwrap_or("");
        // Python 2 era headers wrote `3L`.
        let _ = self.s.get(self.i) == Some(&b'L') && {
            self.i += 1;
            true
        };
        digits.parse().map_err(|_| {
            self.i = start;
            self.err("a dimension (non-negative integer)")
        })
    }

    fn value(&mut self) -> Result<Val> {
        self.ws();
        match self.s.get(self.i) {
            Some(b'\'' | b'"') => self.string().map(Val::Str),
            Some(b'(') => {
                self.i += 1;
                let mut dims = Vec::new();
                loop {
                    if self.eat(b')') {
                        break;
                    }
                    if dims.len() >= 64 {
                        return Err(self.err("at most 64 dimensions"));
                    }
                    dims.push(self.int()?);
                    if self.eat(b',') {
                        continue;
                    }
                    if self.eat(b')') {
                        break;
                    }
                    return Err(self.err("',' or ')'"));
                }
                Ok(Val::Tuple(dims))
            }
            _ => {
                let rest = self.s.get(self.i..).unwrap_or_default();
                if rest.starts_with(b"True") {
                    self.i += 4;
                    Ok(Val::Bool(true))
                } else if rest.starts_with(b"False") {
                    self.i += 5;
                    Ok(Val::Bool(false))
                } else {
                    Err(self.err(
                        "a string, a tuple, True or False (structured dtypes are not supported)",
                    ))
                }
            }
        }
    }
}

fn parse_dict(text: &[u8], base: usize) -> Result<(String, bool, Vec<usize>)> {
    let mut p = Lit {
        s: text,
        i: 0,
        base,
    };
    if !p.eat(b'{') {
        return Err(p.err("'{' opening the .npy header dict"));
    }
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        if !p.eat(b':') {
            return Err(p.err("':'"));
        }
        let at = p.i;
        match (key.as_str(), p.value()?) {
            ("descr", Val::Str(s)) => descr = Some(s),
            ("fortran_order", Val::Bool(b)) => fortran = Some(b),
            ("shape", Val::Tuple(t)) => shape = Some(t),
            (k, _) => {
                return Err(err(
                    base + at,
                    "descr (str), fortran_order (bool), shape (tuple)",
                    format!("{k:?}"),
                ))
            }
        }
        if p.eat(b',') {
            continue;
        }
        if p.eat(b'}') {
            break;
        }
        return Err(p.err("',' or '}'"));
    }
    match (descr, fortran, shape) {
        (Some(d), Some(f), Some(s)) => Ok((d, f, s)),
        _ => Err(err(
            base,
            "an .npy header with descr, fortran_order and shape",
            "missing keys",
        )),
    }
}

/// Decodes a string array's first element (trailing NULs stripped).
pub(crate) fn string_value(h: &NpyHeader, data: &[u8], at: usize) -> Result<String> {
    let NpyType::Str { utf32, width } = h.ty else {
        return Err(err(at, "a string array", "a numeric array"));
    };
    let item = h.ty.itemsize().unwrap_or(0);
    let raw = data
        .get(..item)
        .ok_or_else(|| err(at, "one string element", "none"))?;
    let s = if utf32 {
        raw.chunks_exact(4)
            .take(width)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .take_while(|&u| u != 0)
            .map(|u| char::from_u32(u).ok_or_else(|| err(at, "a valid code point", u.to_string())))
            .collect::<Result<String>>()?
    } else {
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        String::from_utf8_lossy(&raw[..end]).into_owned()
    };
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(header: &str, data: &[u8]) -> Vec<u8> {
        let mut out = NPY_MAGIC.to_vec();
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn headers_parse() {
        let b = npy(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }    \n",
            &[0; 24],
        );
        let h = parse_header(&b, 0).expect("header");
        assert_eq!(
            (h.ty, h.shape.as_slice(), h.nbytes),
            (NpyType::Num(DType::Float32), &[2, 3][..], 24)
        );
        let b = npy(
            "{\"shape\":(),\"descr\":\"<b2\",\"fortran_order\":False}",
            &[0; 2],
        );
        let h = parse_header(&b, 0).expect("0-d bf16");
        assert_eq!((h.ty, h.shape.len()), (NpyType::Num(DType::BFloat16), 0));
        let b = npy(
            "{'descr': '|b1', 'fortran_order': False, 'shape': (5,), }",
            &[0; 5],
        );
        assert_eq!(parse_header(&b, 0).expect("bool").shape, [5]);
        let b = npy(
            "{'descr': '<U3', 'fortran_order': False, 'shape': (), }",
            b"c\0\0\0s\0\0\0r\0\0\0",
        );
        let h = parse_header(&b, 0).expect("str");
        assert_eq!(string_value(&h, &b[h.data_offset..], 0).expect("s"), "csr");
    }

    #[test]
    fn bad_headers_are_format_errors() {
        for (header, data_len, what) in [
            ("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", 8, "big-endian"),
            ("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", 8, "fortran"),
            ("{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", 16, "complex"),
            ("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", 8, "structured"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", 8, "short data"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", 8, "huge"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }", 8, "overflow"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", 8, "negative"),
            ("{'descr': '<f4', 'shape': (2,), }", 8, "missing key"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)", 8, "unclosed"),
            ("['descr']", 8, "not a dict"),
        ] {
            let b = npy(header, &vec![0; data_len]);
            assert!(matches!(parse_header(&b, 0), Err(Error::Format { .. })), "{what}");
        }
        let mut b = npy(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }",
            &[0; 8],
        );
        b[6] = 9;
        assert!(matches!(
            parse_header(&b, 0),
            Err(Error::Format { offset: 6, .. })
        ));
        b[6] = 2;
        assert!(matches!(
            parse_header(&b, 0),
            Err(Error::Format { offset: 8, .. })
        ));
        for cut in 0..b.len() {
            let _ = parse_header(&b[..cut], 0);
        }
    }
}
