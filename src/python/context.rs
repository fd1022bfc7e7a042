//! `mxparams.Context`.

use pyo3::prelude::*;

use crate::context::Context;

/// A device context: device type and ordinal.
#[pyclass(name = "Context", module = "mxparams", frozen, eq, hash)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PyContext {
    pub(crate) inner: Context,
}

impl From<Context> for PyContext {
    fn from(inner: Context) -> Self {
        PyContext { inner }
    }
}
