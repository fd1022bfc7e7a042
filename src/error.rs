//! The crate's single error type. Every check the API contract promises is
//! raised here, so Rust callers see the same failures Python callers do; the
//! Python binding maps each variant to the contract's exception type in one place.

use std::io;

/// Everything that can go wrong in mxparams.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A `.params` (or `.npz`) file or buffer is malformed.
    #[error("malformed .params data at byte offset {offset}: expected {expected}, found {found}")]
    Format {
        /// Absolute byte offset of the field that failed.
        offset: u64,
        /// What the reader expected there.
        expected: String,
        /// What it found.
        found: String,
    },
    /// Data or gradient accessed while initialisation is still deferred.
    #[error("{0}")]
    DeferredInit(String),
    /// The parameter (or array) was used before being initialised.
    #[error("{0}")]
    NotInitialized(String),
    /// Access on a context the parameter was not initialised on.
    #[error("{0}")]
    NotOnContext(String),
    /// Gradient access on a parameter whose `grad_req` is `null`.
    #[error("{0}")]
    NoGradient(String),
    /// Shapes disagree.
    #[error("{0}")]
    ShapeMismatch(String),
    /// Data types disagree.
    #[error("{0}")]
    DTypeMismatch(String),
    /// A parameter expected in a file is missing.
    #[error("{0}")]
    MissingParameter(String),
    /// A file holds a parameter nobody asked for.
    #[error("{0}")]
    UnexpectedParameter(String),
    /// `strip_prefix` / `restore_prefix` does not fit the names.
    #[error("{0}")]
    PrefixMismatch(String),
    /// `ParameterDict::get` found an existing parameter with other attributes.
    #[error("{0}")]
    AttributeConflict(String),
    /// An argument is invalid (bad `grad_req`, bad shape, ...).
    #[error("{0}")]
    InvalidArgument(String),
    /// A name is not present in a mapping.
    #[error("{0}")]
    KeyNotFound(String),
    /// A write into read-only (memory-mapped) storage.
    #[error("{0}")]
    ReadOnly(String),
    /// An operating-system I/O error.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// A CUDA driver call failed.
    #[error("CUDA error: {0}")]
    Cuda(String),
    /// CUDA is not available (feature off, no driver, or no such device).
    #[error("CUDA is not available: {0}")]
    CudaUnavailable(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A format error at `offset`.
    pub fn format(offset: u64, expected: impl Into<String>, found: impl Into<String>) -> Self {
        Error::Format {
            offset,
            expected: expected.into(),
            found: found.into(),
        }
    }

    /// An invalid-argument error.
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }
}
