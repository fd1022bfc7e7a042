//! `mxparams._native.params_index`: the table of contents of a `.params`
//! file (names, shapes, dtypes and where each array's data sits in the file),
//! from the parsed headers; nothing is converted or copied out.

use std::path::PathBuf;

use pyo3::prelude::*;

use super::errors::IntoPyResult;
use mxparams::format;

/// One row per array record: (name or None, shape, dtype name, storage type,
/// data offset in the file, data length in bytes).
type IndexRow = (
    Option<String>,
    Vec<usize>,
    &'static str,
    &'static str,
    usize,
    usize,
);

/// The records of a `.params` file, in file order.
#[pyfunction]
pub fn params_index(py: Python<'_>, fname: PathBuf) -> PyResult<Vec<IndexRow>> {
    py.detach(move || -> mxparams::error::Result<Vec<IndexRow>> {
        let bytes = std::fs::read(&fname)?;
        let parsed = format::parse(&bytes)?;
        let names = parsed.names.as_ref();
        Ok(parsed
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let name = names.and_then(|n| n.get(i)).map(|s| (*s).to_string());
                (
                    name,
                    r.shape.clone(),
                    r.dtype.name(),
                    r.stype.name(),
                    r.data.start,
                    r.data.len(),
                )
            })
            .collect())
    })
    .py()
}
