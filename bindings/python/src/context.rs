//! `mxparams.Context` and the context functions (`cpu`, `gpu`, ...,
//! `current_context`, `num_gpus`). The default context is the core's
//! thread-local one; `with ctx:` pushes onto a thread-local stack so nested
//! blocks restore the previous default on exit, as MXNet's `Context` does.

use std::cell::RefCell;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use mxparams::context::{Context, DeviceType};

use super::errors::IntoPyResult;

/// Device types in MXNet's order, for `devtype2str` / `devstr2type`.
const DEVICE_TYPES: [DeviceType; 4] = [
    DeviceType::Cpu,
    DeviceType::Gpu,
    DeviceType::CpuPinned,
    DeviceType::CpuShared,
];

thread_local! {
    /// Previous defaults saved by `__enter__`, restored by `__exit__`.
    static SAVED: RefCell<Vec<Context>> = const { RefCell::new(Vec::new()) };
}

/// Constructs a device context.
///
/// Parameters
/// ----------
/// device_type : {'cpu', 'gpu', 'cpu_pinned', 'cpu_shared'} or Context
///     The device type, or a context to copy.
/// device_id : int (default=0)
///     The device ordinal.
///
/// Examples
/// --------
/// >>> with mxparams.Context('cpu', 1):
/// ...     mxparams.current_context()
/// cpu(1)
#[pyclass(name = "Context", module = "mxparams", frozen, eq, hash)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PyContext {
    pub(crate) inner: Context,
}

impl From<Context> for PyContext {
    fn from(inner: Context) -> Self {
        PyContext { inner }
    }
}

fn device_id(id: i64) -> PyResult<u32> {
    u32::try_from(id)
        .map_err(|_| crate::errors::MXParamsValueError::new_err(format!("invalid device id {id}")))
}

/// Parses what `Context(device_type, ...)` accepts: a name, an MXNet id, or a context.
fn parse_device_type(obj: &Bound<'_, PyAny>) -> PyResult<DeviceType> {
    if let Ok(s) = obj.extract::<String>() {
        return s.parse::<DeviceType>().py();
    }
    if let Ok(i) = obj.extract::<i32>() {
        return DeviceType::from_id(i).ok_or_else(|| {
            crate::errors::MXParamsValueError::new_err(format!("unknown device type id {i}"))
        });
    }
    Err(crate::errors::MXParamsTypeError::new_err(format!(
        "device_type must be a str or a Context, not {}",
        obj.get_type().name()?
    )))
}

#[pymethods]
impl PyContext {
    #[new]
    #[pyo3(signature = (device_type, device_id = 0))]
    fn new(device_type: &Bound<'_, PyAny>, device_id: i64) -> PyResult<Self> {
        if let Ok(other) = device_type.cast::<PyContext>() {
            return Ok(*other.get());
        }
        let dt = parse_device_type(device_type)?;
        Ok(Context::new(dt, self::device_id(device_id)?).into())
    }

    /// Device type name: 'cpu', 'gpu', 'cpu_pinned' or 'cpu_shared'.
    #[getter]
    fn device_type(&self) -> &'static str {
        self.inner.device_type.name()
    }

    /// The device ordinal.
    #[getter]
    fn device_id(&self) -> u32 {
        self.inner.device_id
    }

    /// MXNet's numeric device type (1 cpu, 2 gpu, 3 cpu_pinned, 5 cpu_shared).
    #[getter]
    fn device_typeid(&self) -> i32 {
        self.inner.device_type.id()
    }

    /// MXNet's table from device type id to name.
    #[classattr]
    fn devtype2str(py: Python<'_>) -> PyResult<Py<PyDict>> {
        let d = PyDict::new(py);
        for t in DEVICE_TYPES {
            d.set_item(t.id(), t.name())?;
        }
        Ok(d.unbind())
    }

    /// MXNet's table from device type name to id.
    #[classattr]
    fn devstr2type(py: Python<'_>) -> PyResult<Py<PyDict>> {
        let d = PyDict::new(py);
        for t in DEVICE_TYPES {
            d.set_item(t.name(), t.id())?;
        }
        Ok(d.unbind())
    }

    fn __repr__(&self) -> String {
        self.inner.to_string()
    }

    fn __str__(&self) -> String {
        self.inner.to_string()
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        let prev = Context::set_current(slf.get().inner);
        SAVED.with(|s| s.borrow_mut().push(prev));
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> bool {
        let prev = SAVED.with(|s| s.borrow_mut().pop()).unwrap_or_default();
        Context::set_current(prev);
        false
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, (&'static str, u32))> {
        let ctx = slf.get().inner;
        Ok((
            slf.get_type().into_any(),
            (ctx.device_type.name(), ctx.device_id),
        ))
    }

    /// Does nothing: no memory pool to empty (MXNet API compatibility).
    fn empty_cache(&self) {}
}

/// The device id of `cpu(...)` and friends: positional or `device_id=` as in
/// MXNet, or `i=` as the API contract names it (not both).
fn either_id(device_id: i64, i: Option<i64>) -> PyResult<u32> {
    match i {
        None => self::device_id(device_id),
        Some(_) if device_id != 0 => Err(crate::errors::MXParamsTypeError::new_err(
            "give the device id once: positionally, as device_id= or as i=",
        )),
        Some(i) => self::device_id(i),
    }
}

/// Returns a CPU context (`cpu(0)` by default).
#[pyfunction]
#[pyo3(signature = (device_id = 0, *, i = None))]
pub fn cpu(device_id: i64, i: Option<i64>) -> PyResult<PyContext> {
    Ok(Context::cpu(either_id(device_id, i)?).into())
}

/// Returns a GPU context. Creating one needs no GPU; using it does.
#[pyfunction]
#[pyo3(signature = (device_id = 0, *, i = None))]
pub fn gpu(device_id: i64, i: Option<i64>) -> PyResult<PyContext> {
    Ok(Context::gpu(either_id(device_id, i)?).into())
}

/// Returns a page-locked host memory context.
#[pyfunction]
#[pyo3(signature = (device_id = 0, *, i = None))]
pub fn cpu_pinned(device_id: i64, i: Option<i64>) -> PyResult<PyContext> {
    Ok(Context::cpu_pinned(either_id(device_id, i)?).into())
}

/// Returns a shared host memory context.
#[pyfunction]
#[pyo3(signature = (device_id = 0, *, i = None))]
pub fn cpu_shared(device_id: i64, i: Option<i64>) -> PyResult<PyContext> {
    Ok(Context::cpu_shared(either_id(device_id, i)?).into())
}

/// Returns the current thread's default context (`cpu(0)` unless set by `with ctx:`).
#[pyfunction]
pub fn current_context() -> PyContext {
    Context::current().into()
}

/// Number of usable CUDA devices (0 without CUDA support or a driver).
#[pyfunction]
pub fn num_gpus() -> usize {
    mxparams::num_gpus()
}

/// Converts an optional context argument (None = the current default).
pub fn ctx_or_current(ctx: Option<&Bound<'_, PyAny>>) -> PyResult<Context> {
    match ctx {
        None => Ok(Context::current()),
        Some(c) if c.is_none() => Ok(Context::current()),
        Some(c) => {
            if let Ok(pc) = c.cast::<PyContext>() {
                Ok(pc.get().inner)
            } else if let Ok(s) = c.extract::<String>() {
                Ok(Context::new(s.parse::<DeviceType>().py()?, 0))
            } else {
                Err(crate::errors::MXParamsTypeError::new_err(format!(
                    "ctx must be a Context, not {}",
                    c.get_type().name()?
                )))
            }
        }
    }
}

/// Registers the context class and functions.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyContext>()?;
    m.add_function(wrap_pyfunction!(cpu, m)?)?;
    m.add_function(wrap_pyfunction!(gpu, m)?)?;
    m.add_function(wrap_pyfunction!(cpu_pinned, m)?)?;
    m.add_function(wrap_pyfunction!(cpu_shared, m)?)?;
    m.add_function(wrap_pyfunction!(current_context, m)?)?;
    m.add_function(wrap_pyfunction!(num_gpus, m)?)?;
    Ok(())
}
