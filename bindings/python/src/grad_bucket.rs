//! `mxparams._native.bucket_grads`: the gradients of several parameters on
//! one context moved into one contiguous bucket (see the core's
//! `grad_bucket`).

use pyo3::prelude::*;

use super::context::ctx_or_current;
use super::errors::IntoPyResult;
use super::ndarray::PyNDArray;
use super::parameter::PyParameter;
use mxparams::param_dict::SharedParameter;

/// Makes each parameter's gradient on `ctx` a range of one new zeroed host
/// array (values kept) and returns that array, flat, of their dtype.
#[pyfunction]
#[pyo3(signature = (params, ctx))]
pub fn bucket_grads(
    py: Python<'_>,
    params: Vec<Bound<'_, PyParameter>>,
    ctx: &Bound<'_, PyAny>,
) -> PyResult<PyNDArray> {
    let ctx = ctx_or_current(Some(ctx))?;
    let shared: Vec<SharedParameter> = params.iter().map(|p| p.get().inner.clone()).collect();
    let bucket = py
        .detach(move || mxparams::grad_bucket::bucket_grads(&shared, ctx))
        .py()?;
    // Cached Python views of the old gradient buffers go now, not at the next call.
    for p in &params {
        p.get().drop_stale();
    }
    Ok(PyNDArray::from(bucket))
}
