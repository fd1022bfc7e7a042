//! The one place where core errors become Python exceptions. Every exception
//! is a subclass of `mxparams.MXParamsError` (defined in `mxparams/_errors.py`)
//! and, where it stands for a builtin, of that builtin too.

use std::io;
use std::path::Path;

use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::PyErr;

use mxparams::error::Error;

pyo3::import_exception!(mxparams._errors, MXParamsError);
pyo3::import_exception!(mxparams._errors, ParamsFormatError);
pyo3::import_exception!(mxparams._errors, DeferredInitializationError);
pyo3::import_exception!(mxparams._errors, MXParamsValueError);
pyo3::import_exception!(mxparams._errors, MXParamsTypeError);
pyo3::import_exception!(mxparams._errors, MXParamsKeyError);
pyo3::import_exception!(mxparams._errors, MXParamsAttributeError);
pyo3::import_exception!(mxparams._errors, MXParamsBufferError);
pyo3::import_exception!(mxparams._errors, MXParamsMemoryError);
pyo3::import_exception!(mxparams._errors, MXParamsOSError);
pyo3::import_exception!(mxparams._errors, MXParamsFileNotFoundError);
pyo3::import_exception!(mxparams._errors, MXParamsFileExistsError);
pyo3::import_exception!(mxparams._errors, MXParamsPermissionError);
pyo3::import_exception!(mxparams._errors, MXParamsIsADirectoryError);
pyo3::import_exception!(mxparams._errors, MXParamsNotADirectoryError);

/// Converts a core error into the contract's Python exception.
pub fn to_py(err: Error) -> PyErr {
    let msg = err.to_string();
    match err {
        Error::Format { .. } => ParamsFormatError::new_err(msg),
        Error::DeferredInit(_) => DeferredInitializationError::new_err(msg),
        Error::ShapeMismatch(_)
        | Error::DTypeMismatch(_)
        | Error::MissingParameter { .. }
        | Error::UnexpectedParameter { .. }
        | Error::PrefixMismatch(_)
        | Error::AttributeConflict(_)
        | Error::InvalidArgument(_)
        | Error::ReadOnly(_) => MXParamsValueError::new_err(msg),
        Error::InvalidType(_) => MXParamsTypeError::new_err(msg),
        Error::KeyNotFound(_) => MXParamsKeyError::new_err(msg),
        Error::Io { path, source } => os_error(&source, path.as_deref()),
        Error::Interrupted { .. } => PyKeyboardInterrupt::new_err(msg),
        // NotInitialized, NotOnContext, NoGradient, Cuda, CudaUnavailable and
        // anything added later: MXParamsError is a RuntimeError, as MXNet's are.
        _ => MXParamsError::new_err(msg),
    }
}

/// An `OSError` subclass for `err` with `errno`, `strerror` and `filename`
/// set, as Python's own file functions raise them.
fn os_error(err: &io::Error, path: Option<&Path>) -> PyErr {
    let Some(errno) = err.raw_os_error() else {
        // Not from the OS (a short read, an allocation failure): no errno.
        let msg = match path {
            Some(p) => format!("{err}: '{}'", p.display()),
            None => err.to_string(),
        };
        return match err.kind() {
            io::ErrorKind::OutOfMemory => MXParamsMemoryError::new_err(msg),
            io::ErrorKind::NotFound => MXParamsFileNotFoundError::new_err(msg),
            io::ErrorKind::PermissionDenied => MXParamsPermissionError::new_err(msg),
            io::ErrorKind::IsADirectory => MXParamsIsADirectoryError::new_err(msg),
            io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => {
                MXParamsOSError::new_err(msg)
            }
            _ => MXParamsOSError::new_err(msg),
        };
    };
    let strerror = strerror(err);
    let filename = path.map(|p| p.as_os_str().to_os_string());
    let args = (errno, strerror, filename);
    match err.kind() {
        io::ErrorKind::NotFound => MXParamsFileNotFoundError::new_err(args),
        io::ErrorKind::AlreadyExists => MXParamsFileExistsError::new_err(args),
        io::ErrorKind::PermissionDenied => MXParamsPermissionError::new_err(args),
        io::ErrorKind::IsADirectory => MXParamsIsADirectoryError::new_err(args),
        io::ErrorKind::NotADirectory => MXParamsNotADirectoryError::new_err(args),
        io::ErrorKind::OutOfMemory => MXParamsMemoryError::new_err(strerror_of(err, path)),
        _ => MXParamsOSError::new_err(args),
    }
}

/// The OS's text for the error, without Rust's " (os error N)" suffix, or the
/// error's own message for errors made by the library.
fn strerror(err: &io::Error) -> String {
    let text = err.to_string();
    match text.rfind(" (os error ") {
        Some(at) if err.raw_os_error().is_some() && err.get_ref().is_none() => text[..at].into(),
        _ => text,
    }
}

fn strerror_of(err: &io::Error, path: Option<&Path>) -> String {
    match path {
        Some(p) => format!("{}: '{}'", strerror(err), p.display()),
        None => strerror(err),
    }
}

/// `?`-friendly conversion for binding code.
pub trait IntoPyResult<T> {
    /// Maps the core error with [`to_py`].
    fn py(self) -> pyo3::PyResult<T>;
}

impl<T> IntoPyResult<T> for mxparams::error::Result<T> {
    fn py(self) -> pyo3::PyResult<T> {
        self.map_err(to_py)
    }
}
