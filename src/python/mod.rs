//! The `mxparams._native` extension module: thin wrappers over the core.
//! Each concept has its own file; this module only registers them.

use pyo3::prelude::*;

mod allocator;
mod buffer;
mod checkpoint;
mod context;
mod convert;
mod dlpack;
mod errors;
mod nd;
mod ndarray;
mod param_dict;
mod parameter;
mod random;

/// The extension module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    allocator::keep_freed_pages();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    context::register(m)?;
    m.add_class::<ndarray::PyNDArray>()?;
    nd::register(m)?;
    m.add_class::<parameter::PyParameter>()?;
    m.add_class::<param_dict::PyParamDictCore>()?;
    m.add_function(wrap_pyfunction!(random::fill_uniform, m)?)?;
    m.add_function(wrap_pyfunction!(random::fill_normal, m)?)?;
    m.add_function(wrap_pyfunction!(checkpoint::params_index, m)?)?;
    Ok(())
}
