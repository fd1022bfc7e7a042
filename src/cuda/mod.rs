//! CUDA devices. The same functions exist with and without the `cuda`
//! feature so that nothing else needs `#[cfg]`; without a usable driver every
//! GPU request fails with `CudaUnavailable` and `num_gpus()` is 0.

use crate::context::Context;
use crate::error::{Error, Result};

/// Number of CUDA devices usable by this process (0 without the feature or a driver).
pub fn num_gpus() -> usize {
    0
}

/// The error for a request that needs a GPU context this build cannot serve.
pub fn unavailable<T>(context: Context) -> Result<T> {
    Err(Error::CudaUnavailable(format!(
        "{context} requested, but this build has no CUDA support (built without the 'cuda' feature)"
    )))
}
