//! Structure checks, densification and the storage conversions of row_sparse
//! and csr arrays. MXNet's loader validates nothing and later crashes or
//! writes out of bounds on bad structure; we check once, when a sparse array
//! is built.
//!
//! Conversions follow MXNet 1.9.1: dense to row_sparse keeps the rows holding
//! a non-zero (its `cast_storage`) unless every row is asked for (a scalar
//! fill, an initializer), dense to csr keeps the non-zero elements, and a
//! sparse source of the destination's type replaces the destination's
//! structure. Work happens on the host; device arrays are staged through it.

use std::sync::{Arc, RwLock};

use crate::context::Context;
use crate::convert;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::ndarray::{NDArray, SType, SparseParts};
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

/// The checked constructors live here, beside the checks, so that the
/// dependency between the modules goes one way (sparse uses ndarray).
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
        Ok(NDArray {
            shape,
            dtype: values.dtype,
            context: values.context,
            buffer: Buffer::zeroed(0)?,
            sparse: Some(Arc::new(RwLock::new(SparseParts {
                stype,
                values_shape: values.shape.clone(),
                values,
                indices,
                indptr,
            }))),
        })
    }

    /// Replaces a sparse array's structure in place (seen by every clone):
    /// `values`, `indices` and `indptr` as for [`NDArray::sparse`], with this
    /// array's dtype. Dense arrays refuse.
    pub fn replace_sparse(
        &self,
        values: NDArray,
        indices: NDArray,
        indptr: Option<NDArray>,
    ) -> Result<()> {
        let Some(cell) = &self.sparse else {
            return Err(Error::invalid(
                "cannot replace the structure of a dense array",
            ));
        };
        if values.dtype != self.dtype {
            return Err(Error::DTypeMismatch(format!(
                "cannot store {} values in a {} array",
                values.dtype, self.dtype
            )));
        }
        let stype = self.stype();
        validate(stype, &self.shape, &values, &indices, indptr.as_ref())?;
        let mut parts = cell.write().unwrap_or_else(|e| e.into_inner());
        *parts = SparseParts {
            stype,
            values_shape: values.shape.clone(),
            values,
            indices,
            indptr,
        };
        Ok(())
    }

    /// The dense form of this array (see [`to_dense`]).
    pub fn to_dense(&self) -> Result<NDArray> {
        to_dense(self)
    }

    /// [`NDArray::assign`] into a sparse array: `src`'s values as [`assign`]
    /// stores them (only the non-zero rows of a dense row_sparse source).
    pub(crate) fn assign_to_sparse(&self, src: &NDArray) -> Result<()> {
        assign(self, src, false)
    }
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

/// The dense form of a (validated) sparse array, on its context.
pub fn to_dense(a: &NDArray) -> Result<NDArray> {
    let Some(parts) = a.sparse_parts() else {
        return a.copy_to(a.context());
    };
    if !a.context().is_host() {
        return to_dense(&a.copy_to(Context::cpu(0))?)?.copy_to(a.context());
    }
    let out = NDArray::zeros(a.shape(), a.dtype(), a.context())?;
    let item = a.dtype().itemsize();
    let row_elems: usize = a.shape().iter().skip(1).product();
    let row_bytes = row_elems * item;
    let idx = int64s(&parts.indices)?;
    let values = parts.values.clone();
    let vals = values.buffer().try_read()?;
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

fn int64_array(values: &[i64], ctx: Context) -> Result<NDArray> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    NDArray::from_bytes(&bytes, &[values.len()], DType::Int64, ctx)
}

/// An all-zero sparse array: no stored rows (row_sparse) or values (csr).
pub fn zeros(stype: SType, shape: &[usize], dtype: DType, ctx: Context) -> Result<NDArray> {
    let (values_shape, indptr) = match (stype, shape) {
        (SType::RowSparse, [_, rest @ ..]) => ([&[0], rest].concat(), None),
        (SType::Csr, [rows, _]) => (
            vec![0],
            Some(NDArray::zeros(&[rows + 1], DType::Int64, ctx)?),
        ),
        _ => {
            return Err(bad(format!(
                "no {stype} array has shape {shape:?} (row_sparse: ndim >= 1, csr: 2-D)"
            )))
        }
    };
    NDArray::sparse(
        stype,
        shape.to_vec(),
        NDArray::zeros(&values_shape, dtype, ctx)?,
        NDArray::zeros(&[0], DType::Int64, ctx)?,
        indptr,
    )
}

/// Which elements of host `bytes` of `dtype` are non-zero by value (-0.0 is zero).
fn nonzero_mask(bytes: &[u8], dtype: DType) -> Result<Vec<bool>> {
    let n = bytes.len() / dtype.itemsize();
    let mut wide = vec![0u8; n * 8];
    convert::convert_bytes(bytes, dtype, &mut wide, DType::Float64)?;
    Ok(wide
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) != 0.0)
        .collect())
}

/// The parts (values, indices, indptr) of `stype` holding the dense host
/// array `d`: for row_sparse every row with `all_rows`, else the rows with a
/// non-zero; for csr the non-zero elements.
fn parts_of_dense(
    d: &NDArray,
    stype: SType,
    all_rows: bool,
) -> Result<(NDArray, NDArray, Option<NDArray>)> {
    let ctx = d.context();
    let bytes = d.buffer().try_read()?;
    let item = d.dtype().itemsize();
    match (stype, d.shape()) {
        (SType::RowSparse, [rows, rest @ ..]) => {
            let row_elems: usize = rest.iter().product();
            let rows_kept: Vec<i64> = if all_rows {
                (0..*rows as i64).collect()
            } else {
                let mask = nonzero_mask(&bytes, d.dtype())?;
                (0..*rows)
                    .filter(|r| mask[r * row_elems..(r + 1) * row_elems].iter().any(|&m| m))
                    .map(|r| r as i64)
                    .collect()
            };
            let row_bytes = row_elems * item;
            let mut vals = Vec::with_capacity(rows_kept.len() * row_bytes);
            for &r in &rows_kept {
                let r = r as usize;
                vals.extend_from_slice(&bytes[r * row_bytes..(r + 1) * row_bytes]);
            }
            let vshape = [&[rows_kept.len()], rest].concat();
            Ok((
                NDArray::from_bytes(&vals, &vshape, d.dtype(), ctx)?,
                int64_array(&rows_kept, ctx)?,
                None,
            ))
        }
        (SType::Csr, [rows, cols]) => {
            let mask = nonzero_mask(&bytes, d.dtype())?;
            let (mut vals, mut idx, mut ptr) = (Vec::new(), Vec::new(), vec![0i64]);
            for r in 0..*rows {
                for c in 0..*cols {
                    let k = r * cols + c;
                    if mask[k] {
                        vals.extend_from_slice(&bytes[k * item..(k + 1) * item]);
                        idx.push(c as i64);
                    }
                }
                ptr.push(idx.len() as i64);
            }
            Ok((
                NDArray::from_bytes(&vals, &[idx.len()], d.dtype(), ctx)?,
                int64_array(&idx, ctx)?,
                Some(int64_array(&ptr, ctx)?),
            ))
        }
        _ => Err(bad(format!(
            "no {stype} array has shape {:?} (row_sparse: ndim >= 1, csr: 2-D)",
            d.shape()
        ))),
    }
}

/// A new sparse array of `stype` with the values of the dense array `d` (see
/// the module notes for which rows or elements are kept).
pub fn from_dense(d: &NDArray, stype: SType, all_rows: bool) -> Result<NDArray> {
    if d.stype() != SType::Default {
        return Err(bad("from_dense needs a dense array".into()));
    }
    if stype == SType::Default {
        return d.copy_to(d.context());
    }
    let host = if d.context().is_host() {
        d.clone()
    } else {
        d.copy_to(Context::cpu(0))?
    };
    let (v, i, p) = parts_of_dense(&host, stype, all_rows)?;
    NDArray::sparse(stype, d.shape().to_vec(), v, i, p)?.copy_to(d.context())
}

fn on(a: NDArray, ctx: Context) -> Result<NDArray> {
    if a.context() == ctx {
        Ok(a)
    } else {
        a.copy_to(ctx)
    }
}

fn cast_to(a: NDArray, dtype: DType) -> Result<NDArray> {
    if a.dtype() == dtype {
        Ok(a)
    } else {
        convert::cast(&a, dtype)
    }
}

/// Writes `src` into the sparse array `dst` in place (dtype converted):
/// a dense source as [`from_dense`] (with `all_rows` for row_sparse), a sparse
/// source of `dst`'s storage type by taking its structure. Another sparse
/// type is refused with `TypeError`, as MXNet refuses it.
pub fn assign(dst: &NDArray, src: &NDArray, all_rows: bool) -> Result<()> {
    let stype = dst.stype();
    if stype == SType::Default {
        return Err(bad("sparse::assign needs a sparse destination".into()));
    }
    if !dst.values().buffer().is_writable() {
        return Err(Error::ReadOnly(
            "this sparse array is a read-only view (memory-mapped); copy it first".into(),
        ));
    }
    if src.shape() != dst.shape() {
        return Err(Error::ShapeMismatch(format!(
            "cannot assign an array of shape {:?} to one of shape {:?}",
            src.shape(),
            dst.shape()
        )));
    }
    let ctx = dst.context();
    let (values, indices, indptr) = match src.sparse_parts() {
        None => {
            let host = cast_to(on(src.clone(), Context::cpu(0))?, dst.dtype())?;
            parts_of_dense(&host, stype, all_rows)?
        }
        Some(p) if p.stype == stype => (p.values, p.indices, p.indptr),
        Some(p) => {
            return Err(Error::invalid(format!(
                "copyto does not support destination NDArray stype {stype} from {}",
                p.stype
            )))
        }
    };
    // Always fresh copies: the destination must never share memory with the source.
    dst.replace_sparse(
        cast_to(values.copy_to(ctx)?, dst.dtype())?,
        indices.copy_to(ctx)?,
        indptr.map(|p| p.copy_to(ctx)).transpose()?,
    )
}

/// Empties a sparse array's structure in place (all zeros, nothing stored).
pub fn clear(a: &NDArray) -> Result<()> {
    let z = zeros(a.stype(), a.shape(), a.dtype(), a.context())?;
    let p = z
        .sparse_parts()
        .ok_or_else(|| bad("only sparse arrays can be cleared".into()))?;
    a.replace_sparse(p.values, p.indices, p.indptr)
}

/// The rows `rows` (sorted and deduplicated here) of `a` as a row_sparse
/// array on `ctx`, holding those of them `a` stores (MXNet's `_retain`; every
/// row of a dense `a`).
pub fn retain_rows(a: &NDArray, rows: &[i64], ctx: Context) -> Result<NDArray> {
    let mut want: Vec<i64> = rows.to_vec();
    want.sort_unstable();
    want.dedup();
    let Some(&first_row) = a.shape().first() else {
        return Err(bad("row_sparse_data needs an array with ndim >= 1".into()));
    };
    if let Some(&r) = want
        .iter()
        .find(|&&r| usize::try_from(r).map_or(true, |u| u >= first_row))
    {
        return Err(Error::invalid(format!(
            "row id {r} is out of range for an array of {first_row} rows"
        )));
    }
    let src = match a.stype() {
        SType::RowSparse => on(a.clone(), Context::cpu(0))?,
        _ => from_dense(&on(to_dense(a)?, Context::cpu(0))?, SType::RowSparse, true)?,
    };
    let p = src
        .sparse_parts()
        .ok_or_else(|| bad("expected a row_sparse array".into()))?;
    let stored = int64s(&p.indices)?;
    let vals = p.values.buffer().try_read()?;
    let row_bytes: usize = a.shape().iter().skip(1).product::<usize>() * a.dtype().itemsize();
    let (mut kept, mut bytes) = (Vec::new(), Vec::new());
    for (j, r) in stored.iter().enumerate() {
        if want.binary_search(r).is_ok() {
            kept.push(*r);
            bytes.extend_from_slice(&vals[j * row_bytes..(j + 1) * row_bytes]);
        }
    }
    let vshape = [&[kept.len()], &a.shape()[1..]].concat();
    let values = NDArray::from_bytes(&bytes, &vshape, a.dtype(), Context::cpu(0))?;
    NDArray::sparse(
        SType::RowSparse,
        a.shape().to_vec(),
        values,
        int64_array(&kept, Context::cpu(0))?,
        None,
    )?
    .copy_to(ctx)
}

/// `a` in storage type `stype`: itself when it already is, its dense values
/// for `default`, and for a dense `a` every row (row_sparse) or its non-zeros
/// (csr), as a sparse parameter's value is after MXNet initialises it.
pub fn as_stype(a: &NDArray, stype: SType) -> Result<NDArray> {
    match (a.stype(), stype) {
        (from, to) if from == to => Ok(a.clone()),
        (_, SType::Default) => to_dense(a),
        (SType::Default, to) => from_dense(a, to, true),
        (_, to) => from_dense(&to_dense(a)?, to, true),
    }
}

/// Delivers a gradient `src` (dense or sparse) when `dst` or `src` is
/// sparse: `write` takes `src` as [`assign`] does; `add` sums the dense
/// values, and a sparse `dst` then keeps the rows (elements for csr) that
/// hold a non-zero.
pub fn deliver(dst: &NDArray, src: &NDArray, add: bool) -> Result<()> {
    let src = match src.stype() {
        SType::Default if src.shape() != dst.shape() && src.size() == dst.size() => {
            src.reshaped(dst.shape().to_vec())?
        }
        _ => src.clone(),
    };
    if src.shape() != dst.shape() {
        return Err(Error::ShapeMismatch(format!(
            "gradient of shape {:?} delivered to a gradient of shape {:?}",
            src.shape(),
            dst.shape()
        )));
    }
    if dst.stype() == SType::Default {
        let dense = cast_to(to_dense(&src)?, dst.dtype())?;
        return if add {
            crate::reduce::accumulate(dst, &dense)
        } else {
            dst.assign(&dense)
        };
    }
    if !add {
        return assign(dst, &src, false);
    }
    let sum = on(to_dense(dst)?, Context::cpu(0))?;
    let more = cast_to(on(to_dense(&src)?, Context::cpu(0))?, dst.dtype())?;
    crate::reduce::accumulate(&sum, &more)?;
    assign(dst, &sum, false)
}

/// `a` converted to `dtype`, keeping its storage type and structure (a
/// sparse array's values are converted; its aux arrays are shared).
pub fn cast(a: &NDArray, dtype: DType) -> Result<NDArray> {
    match a.sparse_parts() {
        None => convert::cast(a, dtype),
        Some(p) => NDArray::sparse(
            p.stype,
            a.shape().to_vec(),
            cast_to(p.values, dtype)?,
            p.indices,
            p.indptr,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dense(values: &[f32], shape: &[usize]) -> NDArray {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        NDArray::from_bytes(&bytes, shape, DType::Float32, Context::cpu(0)).unwrap()
    }

    fn floats(a: &NDArray) -> Vec<f32> {
        let d = to_dense(a).unwrap();
        let b = d.buffer().try_read().unwrap();
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    #[test]
    fn dense_to_row_sparse_keeps_nonzero_rows_unless_all_are_asked_for() {
        let d = dense(&[1.0, 2.0, 0.0, -0.0, 3.0, 4.0], &[3, 2]);
        let some = from_dense(&d, SType::RowSparse, false).unwrap();
        assert_eq!(
            int64s(&some.sparse_parts().unwrap().indices).unwrap(),
            [0, 2]
        );
        let all = from_dense(&d, SType::RowSparse, true).unwrap();
        assert_eq!(
            int64s(&all.sparse_parts().unwrap().indices).unwrap(),
            [0, 1, 2]
        );
        assert_eq!(floats(&some), floats(&all));
        let csr = from_dense(&d, SType::Csr, false).unwrap();
        let p = csr.sparse_parts().unwrap();
        assert_eq!(int64s(&p.indices).unwrap(), [0, 1, 0, 1]);
        assert_eq!(int64s(&p.indptr.unwrap()).unwrap(), [0, 2, 2, 4]);
    }

    #[test]
    fn assignment_replaces_the_structure_for_every_clone() {
        let dst = zeros(SType::RowSparse, &[3, 2], DType::Float64, Context::cpu(0)).unwrap();
        let handle = dst.clone();
        let src = dense(&[0.0, 0.0, 5.0, 6.0, 0.0, 0.0], &[3, 2]);
        dst.assign(&src).unwrap();
        assert_eq!(handle.dtype(), DType::Float64);
        assert_eq!(
            int64s(&handle.sparse_parts().unwrap().indices).unwrap(),
            [1]
        );
        clear(&dst).unwrap();
        assert_eq!(handle.sparse_parts().unwrap().values_shape, [0, 2]);
        let csr = zeros(SType::Csr, &[3, 2], DType::Float32, Context::cpu(0)).unwrap();
        assert!(assign(&dst, &csr, false).is_err(), "csr into row_sparse");
    }

    #[test]
    fn retain_rows_takes_the_stored_rows_asked_for() {
        let d = dense(&[1.0, 2.0, 0.0, 0.0, 3.0, 4.0], &[3, 2]);
        let rs = from_dense(&d, SType::RowSparse, false).unwrap();
        let got = retain_rows(&rs, &[2, 1, 2], Context::cpu(1)).unwrap();
        assert_eq!(got.context(), Context::cpu(1));
        assert_eq!(int64s(&got.sparse_parts().unwrap().indices).unwrap(), [2]);
        assert_eq!(floats(&got), [0.0, 0.0, 0.0, 0.0, 3.0, 4.0]);
        assert!(retain_rows(&rs, &[3], Context::cpu(0)).is_err());
        assert!(retain_rows(&rs, &[-1], Context::cpu(0)).is_err());
    }

    #[test]
    fn casting_keeps_the_structure() {
        let d = dense(&[1.0, 2.0, 0.0, 0.0], &[2, 2]);
        let rs = from_dense(&d, SType::RowSparse, false).unwrap();
        let c = cast(&rs, DType::Float16).unwrap();
        assert_eq!(c.stype(), SType::RowSparse);
        assert_eq!(c.sparse_parts().unwrap().values_shape, [1, 2]);
    }
}
