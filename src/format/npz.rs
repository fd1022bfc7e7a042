//! MXNet 2.0's NumPy containers (params-format.md section 12): `.npz`
//! archives of `NAME.npy` members and bare `.npy` files.
//!
//! Every member is a name: `arr_0`, `arr_1`, ... (what `savez` calls
//! positional arrays) are kept as names too, since MXNet 2.0's `npx.load`
//! returns a dict for any `.npz`. A sparse array is the group `NAME/data.npy`,
//! `NAME/indices.npy`, `NAME/indptr.npy` (csr), `NAME/shape.npy` and
//! `NAME/format.npy`, recognised by its `format` member and placed where its
//! first member appears. Stored members are viewed zero-copy when a shared
//! source is given; deflated members are inflated into owned memory.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::context::Context;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::ndarray::{NDArray, SType};
use crate::storage::{Buffer, SharedSource};

use super::npy::{self, NpyHeader, NpyType};
use super::zip::{self, Member, Method};
use super::Loaded;

/// A sparse group's member and the source it may be viewed from.
type Part<'a, 'b> = (Npy<'a>, Option<&'b Arc<SharedSource>>);

const SPARSE_PARTS: [&str; 5] = ["data", "indices", "indptr", "shape", "format"];

/// The bytes of one `.npy` (a bare file or an archive member).
struct Npy<'a> {
    bytes: Cow<'a, [u8]>,
    /// Absolute offset of `bytes[0]` in the input, when `bytes` borrows it.
    base: usize,
    header: NpyHeader,
}

impl<'a> Npy<'a> {
    fn new(bytes: Cow<'a, [u8]>, base: usize) -> Result<Self> {
        let header = npy::parse_header(&bytes, base)?;
        Ok(Npy {
            bytes,
            base,
            header,
        })
    }

    fn data(&self) -> &[u8] {
        let h = &self.header;
        self.bytes
            .get(h.data_offset..h.data_offset + h.nbytes)
            .unwrap_or_default()
    }

    fn dtype(&self) -> Result<DType> {
        match self.header.ty {
            NpyType::Num(d) => Ok(d),
            NpyType::Str { .. } => Err(Error::format(
                self.base as u64,
                "a numeric .npy array",
                "a string array",
            )),
        }
    }

    /// A dense array: a view of `source` when the bytes are borrowed from it.
    fn array(&self, source: Option<&Arc<SharedSource>>) -> Result<NDArray> {
        let dtype = self.dtype()?;
        let h = &self.header;
        let buffer = match (source, &self.bytes) {
            (Some(src), Cow::Borrowed(_)) => {
                Buffer::shared(src.clone(), self.base + h.data_offset, h.nbytes)?
            }
            _ => Buffer::copy_from(self.data())?,
        };
        NDArray::from_buffer(buffer, h.shape.clone(), dtype, Context::cpu(0))
    }

    /// The data as int64 values (int32 indices, as SciPy may write, widen).
    fn int64s(&self) -> Result<Vec<i64>> {
        match self.dtype()? {
            DType::Int64 => Ok(self
                .data()
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect()),
            DType::Int32 => Ok(self
                .data()
                .chunks_exact(4)
                .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect()),
            d => Err(Error::format(
                self.base as u64,
                "int64 (or int32) sparse indices",
                d.name(),
            )),
        }
    }

    /// A 1-D int64 aux array, zero-copy when possible.
    fn index_array(&self, source: Option<&Arc<SharedSource>>) -> Result<NDArray> {
        if self.header.shape.len() != 1 {
            return Err(Error::format(
                self.base as u64,
                "a 1-D index array",
                format!("shape {:?}", self.header.shape),
            ));
        }
        if self.dtype()? == DType::Int64 {
            return self.array(source);
        }
        let vals = self.int64s()?;
        let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        NDArray::from_bytes(&bytes, &[vals.len()], DType::Int64, Context::cpu(0))
    }
}

/// Loads a bare `.npy` as a one-element list.
pub(crate) fn load_npy(bytes: &[u8], source: Option<&Arc<SharedSource>>) -> Result<Loaded> {
    let npy = Npy::new(Cow::Borrowed(bytes), 0)?;
    Ok(Loaded {
        names: None,
        arrays: vec![npy.array(source)?],
    })
}

fn member_npy<'a>(bytes: &'a [u8], m: &Member<'_>) -> Result<Npy<'a>> {
    match m.method {
        Method::Stored => Npy::new(
            Cow::Borrowed(bytes.get(m.data.clone()).unwrap_or_default()),
            m.data.start,
        ),
        Method::Deflated => Npy::new(Cow::Owned(zip::inflate(bytes, m)?), m.data.start),
    }
}

/// Loads an `.npz` archive as a dict.
pub(crate) fn load_npz(bytes: &[u8], source: Option<&Arc<SharedSource>>) -> Result<Loaded> {
    let (members, _) = zip::members(bytes)?;
    let mut keys: Vec<(&str, &Member<'_>)> = Vec::with_capacity(members.len());
    for m in &members {
        if m.name.ends_with('/') && m.size == 0 {
            continue; // a directory entry
        }
        let key = m.name.strip_suffix(".npy").ok_or_else(|| {
            Error::format(m.header as u64, "an .npy member", format!("{:?}", m.name))
        })?;
        keys.push((key, m));
    }
    let by_key: HashMap<&str, &Member<'_>> = keys.iter().copied().collect();
    let sparse: HashSet<&str> = keys
        .iter()
        .filter_map(|(k, _)| k.strip_suffix("/format"))
        .collect();
    let mut done: HashSet<&str> = HashSet::new();
    let mut names = Vec::with_capacity(keys.len());
    let mut arrays = Vec::with_capacity(keys.len());
    for (key, m) in &keys {
        let group = key
            .rsplit_once('/')
            .filter(|(p, leaf)| sparse.contains(p) && SPARSE_PARTS.contains(leaf))
            .map(|(p, _)| p);
        match group {
            Some(prefix) => {
                if done.insert(prefix) {
                    arrays.push(sparse_group(bytes, source, prefix, &by_key, m)?);
                    names.push(prefix.to_owned());
                }
            }
            None => {
                arrays.push(
                    member_npy(bytes, m)?.array(source.filter(|_| m.method == Method::Stored))?,
                );
                names.push((*key).to_owned());
            }
        }
    }
    Ok(Loaded {
        names: Some(names),
        arrays,
    })
}

fn sparse_group(
    bytes: &[u8],
    source: Option<&Arc<SharedSource>>,
    prefix: &str,
    by_key: &HashMap<&str, &Member<'_>>,
    first: &Member<'_>,
) -> Result<NDArray> {
    let part = |leaf: &str| -> Result<Option<Part<'_, '_>>> {
        match by_key.get(format!("{prefix}/{leaf}").as_str()) {
            None => Ok(None),
            Some(m) => {
                let src = source.filter(|_| m.method == Method::Stored);
                member_npy(bytes, m).map(|n| Some((n, src)))
            }
        }
    };
    let missing = |leaf: &str| {
        Error::format(
            first.header as u64,
            format!("member {prefix}/{leaf}.npy of a sparse array"),
            "none",
        )
    };
    let (fmt, _) = part("format")?.ok_or_else(|| missing("format"))?;
    let format = npy::string_value(&fmt.header, fmt.data(), fmt.base)?;
    let stype = match format.as_str() {
        "csr" => SType::Csr,
        "row_sparse" => SType::RowSparse,
        other => {
            return Err(Error::format(
                fmt.base as u64,
                "sparse format 'csr' or 'row_sparse'",
                format!("{other:?}"),
            ))
        }
    };
    let (shape_npy, _) = part("shape")?.ok_or_else(|| missing("shape"))?;
    let shape = shape_npy
        .int64s()?
        .into_iter()
        .map(usize::try_from)
        .collect::<Result<Vec<usize>, _>>()
        .map_err(|_| {
            Error::format(
                shape_npy.base as u64,
                "a non-negative shape",
                "a negative dim",
            )
        })?;
    let (data, data_src) = part("data")?.ok_or_else(|| missing("data"))?;
    let (idx, idx_src) = part("indices")?.ok_or_else(|| missing("indices"))?;
    let indices = idx.index_array(idx_src)?;
    let indptr = match stype {
        SType::Csr => {
            let (p, p_src) = part("indptr")?.ok_or_else(|| missing("indptr"))?;
            Some(p.index_array(p_src)?)
        }
        _ => None,
    };
    let mut values = data.array(data_src)?;
    // The values block's canonical shape: (nnz,) or (rows, shape[1:]).
    let mut want = vec![indices.size()];
    if stype == SType::RowSparse {
        want.extend_from_slice(shape.get(1..).unwrap_or_default());
    }
    if values.shape() != want.as_slice()
        && Some(values.size()) == crate::ndarray::checked_size(&want)
    {
        values = values.reshaped(want)?;
    }
    NDArray::sparse(stype, shape, values, indices, indptr).map_err(|e| {
        Error::format(
            first.header as u64,
            format!("a valid {} array {prefix:?}", stype.name()),
            e.to_string(),
        )
    })
}
