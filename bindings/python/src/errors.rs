//! The one place where core errors become Python exceptions.

use pyo3::exceptions::{PyKeyError, PyRuntimeError, PyValueError};
use pyo3::PyErr;

use mxparams::error::Error;

pyo3::import_exception!(mxparams._errors, MXParamsError);
pyo3::import_exception!(mxparams._errors, ParamsFormatError);
pyo3::import_exception!(mxparams._errors, DeferredInitializationError);

/// Converts a core error into the contract's Python exception.
pub fn to_py(err: Error) -> PyErr {
    let msg = err.to_string();
    match err {
        Error::Format { .. } => ParamsFormatError::new_err(msg),
        Error::DeferredInit(_) => DeferredInitializationError::new_err(msg),
        Error::ShapeMismatch(_)
        | Error::DTypeMismatch(_)
        | Error::MissingParameter(_)
        | Error::UnexpectedParameter(_)
        | Error::PrefixMismatch(_)
        | Error::AttributeConflict(_)
        | Error::InvalidArgument(_)
        | Error::ReadOnly(_) => PyValueError::new_err(msg),
        Error::NotInitialized(_) | Error::NotOnContext(_) | Error::NoGradient(_) => {
            PyRuntimeError::new_err(msg)
        }
        Error::KeyNotFound(_) => PyKeyError::new_err(msg),
        Error::Io(e) => PyErr::from(e),
        _ => MXParamsError::new_err(msg),
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
