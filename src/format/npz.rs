//! MXNet 2.0's NumPy containers: `.npz` (zip of `NAME.npy` members) and bare `.npy`.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::storage::SharedSource;

use super::Loaded;

/// Loads an `.npz` archive.
pub(crate) fn load_npz(_bytes: &[u8], _source: Option<&Arc<SharedSource>>) -> Result<Loaded> {
    Err(Error::format(
        0,
        "a .params file",
        "a zip archive (.npz support pending)",
    ))
}

/// Loads a bare `.npy` file as a one-element list.
pub(crate) fn load_npy(_bytes: &[u8], _source: Option<&Arc<SharedSource>>) -> Result<Loaded> {
    Err(Error::format(
        0,
        "a .params file",
        "a .npy file (support pending)",
    ))
}
