//! # mxparams
//!
//! MXNet Gluon's parameter system and MXNet's `.params` checkpoint format,
//! without MXNet: a zero-copy reader and a byte-compatible writer for the
//! NDArray list format (all record versions, dense and sparse), contexts,
//! typed host buffers, `Parameter` with its per-context copies and `grad_req`
//! state machine, and `ParameterDict`.
//!
//! The Python binding (feature `python`) and CUDA (feature `cuda`) are optional;
//! plain Rust programs use the crate with neither.

pub mod context;
pub mod convert;
pub mod cuda;
pub mod dtype;
pub mod error;
pub mod format;
pub mod ndarray;
pub mod param_dict;
pub mod parameter;
pub mod random;
pub mod reduce;
pub mod sparse;
pub mod storage;
pub mod transfer;

#[cfg(feature = "python")]
mod python;

pub use context::{Context, DeviceType};
pub use dtype::DType;
pub use error::{Error, Result};
pub use ndarray::{NDArray, SType};
pub use param_dict::{LoadOptions, ParamAttrs, ParameterDict, SharedParameter};
pub use parameter::{DTypeSource, GradReq, Parameter};
pub use storage::Buffer;
