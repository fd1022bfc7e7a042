//! Structure checks for row_sparse and csr arrays, and their checked constructor. MXNet's
//! loader validates nothing and later crashes or writes out of bounds on bad
//! structure; we check once, when a sparse array is built.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::ndarray::{NDArray, SType};
use crate::storage::Buffer;

fn int64s(a: &NDArray) -> Result<Vec<i64>> {
    a.int64s()
}

// The checked constructor lives beside the checks, so that `ndarray` (the
// storage representation) does not depend on this module.
impl NDArray {
    /// A sparse array from its values and aux arrays. Structure is validated:
    /// int64 aux arrays, indices in range and increasing (per row for csr),
    /// indptr of length rows + 1 from 0 to nnz, non-decreasing.
    pub fn sparse(
        stype: SType,
        shape: Vec<usize>,
        values: NDArray,
        indices: NDArray,
        indptr: Option<NDArray>,
    ) -> Result<NDArray> {
        validate(stype, &shape, &values, &indices, indptr.as_ref())?;
        Ok(NDArray::from_validated_sparse(
            stype, shape, values, indices, indptr,
        ))
    }
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

/// The dense form of a sparse array, in owned host memory (`NDArray::to_dense`).
pub fn to_dense(a: &NDArray) -> Result<NDArray> {
    a.to_dense()
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
