//! `mxparams.NDArray`: a typed buffer on a context, lent to numpy and DLPack
//! consumers without copying.

use pyo3::prelude::*;

use crate::ndarray::NDArray;

/// A typed, C-contiguous array on a context.
#[pyclass(name = "NDArray", module = "mxparams")]
pub struct PyNDArray {
    pub(crate) inner: NDArray,
}

impl From<NDArray> for PyNDArray {
    fn from(inner: NDArray) -> Self {
        PyNDArray { inner }
    }
}
