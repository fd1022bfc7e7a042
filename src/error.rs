//! The crate's single error type. Every check the API contract promises is
//! raised here, so Rust callers see the same failures Python callers do; the
//! Python binding maps each variant to the contract's exception type in one place.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Everything that can go wrong in mxparams.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A `.params` (or `.npz`) file or buffer is malformed.
    #[error(
        "malformed .params data{} at byte offset {offset}: expected {expected}, found {found}{}",
        PathSuffix(path.as_deref()),
        hint.as_deref().map(|h| format!(". {h}")).unwrap_or_default()
    )]
    Format {
        /// Absolute byte offset of the field that failed.
        offset: u64,
        /// What the reader expected there.
        expected: String,
        /// What it found.
        found: String,
        /// The file, when the data came from one.
        path: Option<PathBuf>,
        /// What the data looks like instead, and what reads it (when known).
        hint: Option<String>,
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
    #[error("{message}")]
    MissingParameter {
        /// The parameter's name (without the prefix the load stripped).
        name: String,
        /// The full explanation.
        message: String,
    },
    /// A file holds a parameter nobody asked for.
    #[error("{message}")]
    UnexpectedParameter {
        /// The name in the file (without the prefix the load stripped).
        name: String,
        /// The full explanation.
        message: String,
    },
    /// `strip_prefix` / `restore_prefix` does not fit the names.
    #[error("{0}")]
    PrefixMismatch(String),
    /// `ParameterDict::get` found an existing parameter with other attributes.
    #[error("{0}")]
    AttributeConflict(String),
    /// An argument is invalid (bad `grad_req`, bad shape, ...).
    #[error("{0}")]
    InvalidArgument(String),
    /// An argument has the wrong type (a non-integer dimension, ...).
    #[error("{0}")]
    InvalidType(String),
    /// A name is not present in a mapping.
    #[error("{0}")]
    KeyNotFound(String),
    /// A write into read-only (memory-mapped) storage.
    #[error("{0}")]
    ReadOnly(String),
    /// An operating-system I/O error, with the file it concerns when known.
    #[error("{source}{}", PathSuffix(path.as_deref()))]
    Io {
        /// The file the operation was on.
        path: Option<PathBuf>,
        /// The error itself (its kind and OS error code).
        #[source]
        source: io::Error,
    },
    /// The operation was cancelled (an interrupt arrived while it ran); the
    /// target file, if any, is untouched.
    #[error("the operation was interrupted{}", PathSuffix(path.as_deref()))]
    Interrupted {
        /// The file being read or written.
        path: Option<PathBuf>,
    },
    /// A CUDA driver call failed.
    #[error("CUDA error: {0}")]
    Cuda(String),
    /// CUDA is not available (feature off, no driver, or no such device).
    #[error("CUDA is not available: {0}")]
    CudaUnavailable(String),
}

impl From<io::Error> for Error {
    fn from(source: io::Error) -> Self {
        Error::Io { path: None, source }
    }
}

/// Formats `: 'PATH'` after a message, as Python's `OSError` names files.
struct PathSuffix<'a>(Option<&'a Path>);

impl fmt::Display for PathSuffix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(p) => write!(f, ": '{}'", p.display()),
            None => Ok(()),
        }
    }
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
            path: None,
            hint: None,
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            path: Some(path.into()),
            source,
        }
    }

    /// A missing-parameter error for `name`.
    pub fn missing_parameter(name: impl Into<String>, message: impl Into<String>) -> Self {
        Error::MissingParameter {
            name: name.into(),
            message: message.into(),
        }
    }

    /// An unexpected-parameter error for `name`.
    pub fn unexpected_parameter(name: impl Into<String>, message: impl Into<String>) -> Self {
        Error::UnexpectedParameter {
            name: name.into(),
            message: message.into(),
        }
    }

    /// Attaches `path` to an I/O or format error that has none yet (other
    /// errors are returned as they are).
    pub fn at_path(mut self, file: &Path) -> Self {
        match &mut self {
            Error::Io { path, .. } | Error::Format { path, .. } | Error::Interrupted { path }
                if path.is_none() =>
            {
                *path = Some(file.to_path_buf());
            }
            _ => {}
        }
        self
    }

    /// The file this error concerns, when known.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Error::Io { path, .. } | Error::Format { path, .. } | Error::Interrupted { path } => {
                path.as_deref()
            }
            _ => None,
        }
    }

    /// An invalid-argument error.
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }
}
