//! # mxparams
//!
//! MXNet Gluon's parameter system and MXNet's `.params` checkpoint format,
//! without MXNet: a zero-copy reader and a byte-compatible writer for the
//! NDArray list format (all record versions, dense and sparse), contexts,
//! typed host buffers, `Parameter` with its per-context copies and `grad_req`
//! state machine, and `ParameterDict`.
//!
//! CUDA (feature `cuda`) is optional; the Python extension module is a separate
//! crate (`bindings/python`), so Rust programs using this crate never build or
//! link Python.
//!
//! ## Reading and writing `.params` files
//!
//! ```
//! use mxparams::{format, Context, DType, NDArray};
//!
//! let dir = std::env::temp_dir().join(format!("mxparams-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let path = dir.join("model.params");
//!
//! let w = NDArray::from_bytes(&[0u8; 24], &[2, 3], DType::Float32, Context::cpu(0))?;
//! format::save(&path, Some(&["w"]), &[&w], &Default::default())?; // atomic
//!
//! let loaded = format::load_mmap(&path)?; // zero-copy, read-only views
//! for (name, arr) in loaded.names.iter().flatten().zip(&loaded.arrays) {
//!     assert_eq!((name.as_str(), arr.shape(), arr.dtype()), ("w", &[2, 3][..], DType::Float32));
//! }
//! let names: Vec<&str> = loaded.names.iter().flatten().map(String::as_str).collect();
//! let arrays: Vec<&NDArray> = loaded.arrays.iter().collect();
//! format::save(&path, Some(names.as_slice()), &arrays, &Default::default())?;
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), mxparams::Error>(())
//! ```
//!
//! ## Parameters
//!
//! ```
//! use mxparams::{param_dict, Context, GradReq, ParamAttrs, ParameterDict};
//!
//! let mut pd = ParameterDict::new("net_", None);
//! let attrs = ParamAttrs { shape: Some(vec![4, 3]), ..Default::default() };
//! let w = pd.get("weight", &attrs)?; // named "net_weight"
//! pd.initialize_with(&[Context::cpu(0), Context::cpu(1)], false, |_name, arr| {
//!     arr.assign_bytes(&vec![1u8; arr.nbytes()]) // any fill: the initializer
//! })?;
//! param_dict::write(&w).set_grad_req(GradReq::Add)?;
//! assert_eq!(param_dict::read(&w).list_ctx()?.len(), 2);
//! # Ok::<(), mxparams::Error>(())
//! ```

// Internals: raw allocation, the block cache, device memory and the reduction
// kernels are reached only through the safe types below (`Buffer`, `NDArray`,
// `Parameter`, `ParameterDict`), so no safe public function can misuse them.
mod allreduce;
mod cuda;
mod host_pool;
mod reduce;
mod slab;
mod storage;

#[cfg(feature = "cli")]
pub mod cli;
pub mod context;
pub mod convert;
pub mod dtype;
pub mod error;
pub mod format;
pub mod grad_bucket;
pub mod inspect;
pub mod names;
pub mod ndarray;
pub mod param_dict;
pub mod parameter;
pub mod random;
pub mod sparse;
pub mod transfer;

pub use context::{Context, DeviceType};
pub use cuda::{check_device, device_name, num_gpus, unavailable_reason};
pub use dtype::DType;
pub use error::{Error, Result};
pub use ndarray::{NDArray, SType};
pub use param_dict::{LoadOptions, ParamAttrs, ParameterDict, SharedParameter};
pub use parameter::{DTypeSource, GradReq, Parameter};
pub use storage::{release_host_pool, Buffer, ReadGuard, SharedSource, WriteGuard};

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
