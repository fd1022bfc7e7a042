//! The `mxparams._native` extension module: thin wrappers over the core.
//! Each concept has its own file; this module only registers them.

use pyo3::prelude::*;

/// The extension module's allocator. A host process such as MXNet or numpy
/// leaves glibc's heap fragmented, and a load or save of many small arrays
/// then spends more time in `malloc`/`free` than in parsing; mimalloc keeps
/// its own pages (see `allocator` for how it is tuned; host blocks of 1 MiB
/// and more bypass it in the core). Rust programs using the core crate choose
/// their own allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod allocator;
mod buffer;
mod checkpoint;
mod cli;
mod context;
mod convert;
mod dlpack;
mod errors;
mod grad_bucket;
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
    m.add_class::<random::PyFillSpec>()?;
    m.add_function(wrap_pyfunction!(random::fill_uniform, m)?)?;
    m.add_function(wrap_pyfunction!(random::fill_normal, m)?)?;
    m.add_function(wrap_pyfunction!(checkpoint::params_index, m)?)?;
    cli::register(m)?;
    m.add_function(wrap_pyfunction!(grad_bucket::bucket_grads, m)?)?;
    Ok(())
}
