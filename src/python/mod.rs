//! The `mxparams._native` extension module: thin wrappers over the core.
//! Each concept has its own file; this module only registers them.

use pyo3::prelude::*;

mod context;
mod errors;
mod ndarray;
mod random;

/// The extension module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<context::PyContext>()?;
    m.add_class::<ndarray::PyNDArray>()?;
    m.add_function(wrap_pyfunction!(random::fill_uniform, m)?)?;
    m.add_function(wrap_pyfunction!(random::fill_normal, m)?)?;
    Ok(())
}
