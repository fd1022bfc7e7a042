//! Structure checks and densification for row_sparse and csr arrays. MXNet's
//! loader validates nothing and later crashes or writes out of bounds on bad
//! structure; we check once, when a sparse array is built.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::ndarray::{NDArray, SType};
use crate::storage::Buffer;

fn int64s(a: &NDArray) -> Result<Vec<i64>> {
    Ok(a.buffer()
        .try_read()?
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect())
}

fn bad(msg: String) -> Error {
    Error::invalid(msg)
}

/// Checks a sparse array's structure against its dense shape.
pub fn validate(
    stype: SType,
    shape: &[usize],
    values: &NDArray,
    indices: &NDArray,
    indptr: Option<&NDArray>,
) -> Result<()> {
    if indices.dtype() != DType::Int64 || indptr.is_some_and(|p| p.dtype() != DType::Int64) {
        return Err(bad(
            "sparse aux arrays (indices, indptr) must be int64".into()
        ));
    }
    if indices.ndim() != 1 || indptr.is_some_and(|p| p.ndim() != 1) {
        return Err(bad("sparse aux arrays must be 1-D".into()));
    }
    let idx = int64s(indices)?;
    match stype {
        SType::Default => Err(bad("a sparse array needs stype row_sparse or csr".into())),
        SType::RowSparse => {
            let Some((&rows, rest)) = shape.split_first() else {
                return Err(bad("row_sparse arrays need ndim >= 1".into()));
            };
            let mut expect = vec![idx.len()];
            expect.extend_from_slice(rest);
            if values.shape() != expect.as_slice() {
                return Err(bad(format!(
                    "row_sparse values have shape {:?}, expected {expect:?}",
                    values.shape()
                )));
            }
            check_increasing(&idx, rows, "row_sparse row indices")
        }
        SType::Csr => {
            let (rows, cols) = match shape {
                [r, c] => (*r, *c),
                _ => return Err(bad(format!("csr arrays are 2-D, got shape {shape:?}"))),
            };
            let ptr = int64s(indptr.ok_or_else(|| bad("csr arrays need indptr".into()))?)?;
            if values.shape() != [idx.len()] {
                return Err(bad(format!(
                    "csr values have shape {:?}, expected ({},)",
                    values.shape(),
                    idx.len()
                )));
            }
            if ptr.len() != rows + 1 {
                return Err(bad(format!(
                    "csr indptr has {} entries, expected rows + 1 = {}",
                    ptr.len(),
                    rows + 1
                )));
            }
            if ptr.first() != Some(&0) || ptr.last().copied() != i64::try_from(idx.len()).ok() {
                return Err(bad(format!(
                    "csr indptr must run from 0 to nnz = {}",
                    idx.len()
                )));
            }
            for r in 0..rows {
                let (a, b) = (ptr[r], ptr[r + 1]);
                if b < a {
                    return Err(bad(format!("csr indptr decreases at row {r}")));
                }
                // a, b are within 0..=nnz: indptr is bounded by its first and last entries
                // only if it is non-decreasing, which the check above ensures row by row.
                let (a, b) = (a as usize, b as usize);
                if b > idx.len() {
                    return Err(bad(format!("csr indptr exceeds nnz at row {r}")));
                }
                check_increasing(&idx[a..b], cols, "csr column indices")?;
            }
            Ok(())
        }
    }
}

fn check_increasing(idx: &[i64], bound: usize, what: &str) -> Result<()> {
    let mut prev = -1i64;
    for &i in idx {
        if i <= prev || usize::try_from(i).map_or(true, |u| u >= bound) {
            return Err(bad(format!(
                "{what} must be increasing and below {bound}; found {i} after {prev}"
            )));
        }
        prev = i;
    }
    Ok(())
}

/// The dense form of a (validated) sparse array, in owned host memory.
pub fn to_dense(a: &NDArray) -> Result<NDArray> {
    let Some(parts) = a.sparse_parts() else {
        return a.copy_to(a.context());
    };
    let out = NDArray::zeros(a.shape(), a.dtype(), a.context())?;
    let item = a.dtype().itemsize();
    let row_elems: usize = a.shape().iter().skip(1).product();
    let row_bytes = row_elems * item;
    let idx = int64s(&parts.indices)?;
    let vals = a.buffer().try_read()?;
    {
        let mut dst = out.buffer().write()?;
        match parts.stype {
            SType::RowSparse => {
                for (j, &r) in idx.iter().enumerate() {
                    let r = r as usize;
                    dst[r * row_bytes..(r + 1) * row_bytes]
                        .copy_from_slice(&vals[j * row_bytes..(j + 1) * row_bytes]);
                }
            }
            SType::Csr => {
                let ptr = parts
                    .indptr
                    .as_ref()
                    .map(int64s)
                    .transpose()?
                    .unwrap_or_default();
                for r in 0..ptr.len().saturating_sub(1) {
                    for k in ptr[r] as usize..ptr[r + 1] as usize {
                        let c = idx[k] as usize;
                        let at = (r * row_elems + c) * item;
                        dst[at..at + item].copy_from_slice(&vals[k * item..(k + 1) * item]);
                    }
                }
            }
            SType::Default => {}
        }
    }
    drop(vals);
    Ok(out)
}

/// An empty int64 aux array.
pub fn empty_index() -> Result<NDArray> {
    NDArray::from_buffer(
        Buffer::zeroed(0)?,
        vec![0],
        DType::Int64,
        Default::default(),
    )
}
