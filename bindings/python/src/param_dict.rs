//! `mxparams._native.ParameterDictCore`: the one name -> parameter map of
//! `mxparams.ParameterDict` (the core's insertion-ordered `ParameterDict`,
//! whose entries are the Python `Parameter` objects) with Gluon's lookup
//! rules (`shared` consulted, attributes merged, constants compared) and
//! the bulk operations (initialize with built-in fills, zero_grad,
//! reset_ctx, save, load, allreduce, list_ctx), each one Rust call that
//! loops over the parameters with the GIL released. The Python class adapts
//! MXNet's loose signatures and keeps the attributes Rust cannot hold.

use std::sync::{Arc, RwLock};

use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use pyo3::{PyTraverseError, PyVisit};

use super::context::PyContext;
use super::convert::to_dtype;
use super::errors::IntoPyResult;
use super::ndarray::PyNDArray;
use super::parameter::{ctx_list, PyParameter};
use super::random::PyFillSpec;
use mxparams::param_dict::{
    attribute_conflict, DictEntry, FillRequest, LoadOptions, ParamAttrs, ParameterDict,
    SharedParameter, StreamCounter,
};
use mxparams::parameter::{DTypeSource, GradReq, InitRequest};

/// A dict entry: the Python `Parameter` object itself. Keeping the wrapper
/// (rather than the bare core parameter and a side table of wrappers) makes
/// the dict the only name -> parameter map, and `pd.get('w') is
/// pd.get('w')` holds because both return the stored object.
#[derive(Clone)]
pub struct PyEntry(Arc<Py<PyParameter>>);

impl DictEntry for PyEntry {
    fn parameter(&self) -> &SharedParameter {
        &self.0.get().inner
    }
}

impl PyEntry {
    fn object(&self, py: Python<'_>) -> Py<PyAny> {
        self.0.clone_ref(py).into_any()
    }
}

type Dict = ParameterDict<PyEntry>;

/// The native half of `mxparams.ParameterDict`.
#[pyclass(name = "ParameterDictCore", module = "mxparams._native", frozen)]
pub struct PyParamDictCore {
    /// Shared with the dicts that name this one as `shared`.
    inner: Arc<RwLock<Dict>>,
}

impl PyParamDictCore {
    fn dict(&self) -> std::sync::RwLockReadGuard<'_, Dict> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn dict_mut(&self) -> std::sync::RwLockWriteGuard<'_, Dict> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The entries, copied out so that no lock is held while Python runs.
    fn entries(&self) -> Vec<(String, PyEntry)> {
        self.dict()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn drop_stale(&self) {
        for (_, e) in self.entries() {
            e.0.get().drop_stale();
        }
    }
}

fn load_options(
    ctx: Option<&Bound<'_, PyAny>>,
    allow_missing: bool,
    ignore_extra: bool,
    restore_prefix: &str,
    cast_dtype: bool,
    dtype_source: &str,
) -> PyResult<LoadOptions> {
    let dtype_source: DTypeSource = dtype_source.parse().py()?;
    let ctx = match ctx {
        Some(c) if !c.is_none() => Some(ctx_list(Some(c))?),
        _ => None,
    };
    Ok(LoadOptions {
        ctx,
        allow_missing,
        ignore_extra,
        restore_prefix: restore_prefix.to_string(),
        cast_dtype,
        dtype_source,
    })
}

#[pymethods]
impl PyParamDictCore {
    #[new]
    #[pyo3(signature = (prefix="", shared=None))]
    fn new(prefix: &str, shared: Option<&Bound<'_, PyParamDictCore>>) -> Self {
        let shared = shared.map(|s| s.get().inner.clone());
        PyParamDictCore {
            inner: Arc::new(RwLock::new(ParameterDict::new(prefix, shared))),
        }
    }

    /// The prefix `get` prepends.
    #[getter]
    fn prefix(&self) -> String {
        self.dict().prefix().to_string()
    }

    fn __len__(&self) -> usize {
        self.dict().len()
    }

    fn __contains__(&self, name: &Bound<'_, PyAny>) -> bool {
        name.extract::<&str>()
            .is_ok_and(|n| self.dict().contains(n))
    }

    fn __getitem__(&self, py: Python<'_>, name: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let found = name
            .extract::<&str>()
            .ok()
            .and_then(|n| self.dict().param(n).map(|e| e.0.clone_ref(py)));
        // Any other key is missing, as in the dict MXNet keeps.
        found
            .map(Py::into_any)
            .ok_or_else(|| crate::errors::MXParamsKeyError::new_err(name.clone().unbind()))
    }

    /// Binds `name` to `param` (replacing any previous binding in place).
    fn __setitem__(&self, name: String, param: &Bound<'_, PyParameter>) {
        let entry = PyEntry(Arc::new(param.clone().unbind()));
        let old = self.dict_mut().param(&name).cloned();
        self.dict_mut().insert(name, entry);
        drop(old); // outside the lock: dropping may run Python code
    }

    fn __delitem__(&self, name: &str) -> PyResult<()> {
        let removed = self.dict_mut().remove(name);
        removed
            .map(drop)
            .ok_or_else(|| crate::errors::MXParamsKeyError::new_err(name.to_string()))
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(self.keys(py)?.into_any().try_iter()?.into_any())
    }

    /// Names in insertion order.
    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let names: Vec<String> = self.dict().keys().cloned().collect();
        PyList::new(py, names)
    }

    /// Parameters in insertion order.
    fn values<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let objs: Vec<Py<PyAny>> = self.entries().iter().map(|(_, e)| e.object(py)).collect();
        PyList::new(py, objs)
    }

    /// `(name, parameter)` pairs in insertion order.
    fn items<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let pairs = self
            .entries()
            .into_iter()
            .map(|(k, e)| {
                PyTuple::new(py, [k.into_pyobject(py)?.into_any().unbind(), e.object(py)])
            })
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, pairs)
    }

    /// `(prefix + name, parameter)`: the parameter from this dict or the
    /// shared one (bound here too) after merging the given attributes into
    /// it, or None when absent. A disagreeing attribute raises ValueError.
    #[pyo3(signature = (name, shape=None, dtype=None, grad_req=None, lr_mult=None, wd_mult=None))]
    #[allow(clippy::too_many_arguments)] // keyword arguments, each optional
    fn get_existing(
        &self,
        py: Python<'_>,
        name: &str,
        shape: Option<Vec<usize>>,
        dtype: Option<&Bound<'_, PyAny>>,
        grad_req: Option<&str>,
        lr_mult: Option<f64>,
        wd_mult: Option<f64>,
    ) -> PyResult<(String, Option<Py<PyAny>>)> {
        let attrs = ParamAttrs {
            shape,
            dtype: dtype.filter(|d| !d.is_none()).map(to_dtype).transpose()?,
            grad_req: grad_req.map(str::parse::<GradReq>).transpose().py()?,
            lr_mult,
            wd_mult,
            ..ParamAttrs::default()
        };
        let mut dict = self.dict_mut();
        let full = dict.full_name(name);
        let found = dict.get_existing(&full, &attrs).py()?;
        drop(dict);
        Ok((full, found.map(|e| e.object(py))))
    }

    /// `(prefix + name, constant)`: the constant from this dict or the
    /// shared one, compared with `value` when given; None when absent and a
    /// value is given, KeyError when absent without one.
    #[pyo3(signature = (name, value=None))]
    fn get_constant_existing(
        &self,
        py: Python<'_>,
        name: &str,
        value: Option<&Bound<'_, PyNDArray>>,
    ) -> PyResult<(String, Option<Py<PyAny>>)> {
        let value = value.map(|v| v.get().inner.clone());
        let mut dict = self.dict_mut();
        let full = dict.full_name(name);
        let found = dict.get_constant_existing(&full, value.as_ref()).py()?;
        drop(dict);
        match (found, value) {
            (Some(e), _) => Ok((full, Some(e.object(py)))),
            (None, Some(_)) => Ok((full, None)),
            (None, None) => Err(super::errors::to_py(Dict::missing_constant(&full))),
        }
    }

    /// Gluon's `update`: binds every parameter of `other`; ValueError (and
    /// nothing bound) when a name is bound to a different parameter here.
    fn update(&self, other: &Bound<'_, PyParamDictCore>) -> PyResult<()> {
        let other = other.get();
        if Arc::ptr_eq(&self.inner, &other.inner) {
            return Ok(());
        }
        let theirs = other.dict();
        self.dict_mut().update(&theirs).py()
    }

    /// MXNet's message for an attribute that disagrees with the stored one
    /// (for attributes the Python class keeps).
    #[staticmethod]
    fn _conflict(name: &str, attr: &str, desired: &str, stored: &str) -> String {
        attribute_conflict(name, attr, desired, stored).to_string()
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        // Only the sole owner of the mapping reports its entries: a mapping
        // shared with another view would otherwise be counted twice.
        if Arc::strong_count(&self.inner) != 1 {
            return Ok(());
        }
        if let Ok(d) = self.inner.try_read() {
            for e in d.values() {
                visit.call(&*e.0)?;
            }
        }
        Ok(())
    }

    fn __clear__(&self) {
        if Arc::strong_count(&self.inner) != 1 {
            return;
        }
        let taken = self.inner.try_write().ok().map(|mut d| {
            let prefix = d.prefix().to_string();
            std::mem::replace(&mut *d, ParameterDict::new(prefix, None))
        });
        drop(taken);
    }

    /// Sets every gradient buffer to 0.
    fn zero_grad(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.dict().zero_grad()).py()
    }

    /// Re-assigns every parameter to `ctx`, keeping values.
    #[pyo3(signature = (ctx=None))]
    fn reset_ctx(&self, py: Python<'_>, ctx: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let ctxs = ctx_list(ctx)?;
        let r = py.detach(|| self.dict().reset_ctx(&ctxs)).py();
        self.drop_stale();
        r
    }

    /// Initialises parameters with built-in fills: `requests` holds
    /// `(position, token, spec)` per parameter (insertion order; the token
    /// is kept while initialisation is deferred), random fills take streams
    /// `stream, stream + 1, ...` of `seed`. Returns the state of each handled
    /// parameter ("ready", "deferred" or "initialized"; fewer than asked when
    /// the next fill does not suit its parameter) and the streams drawn.
    fn _initialize_fast(
        &self,
        py: Python<'_>,
        requests: Vec<(usize, Py<PyAny>, PyRef<'_, PyFillSpec>)>,
        ctx: Option<&Bound<'_, PyAny>>,
        force_reinit: bool,
        seed: u64,
        stream: u64,
    ) -> PyResult<(Vec<&'static str>, u64)> {
        let ctxs = ctx_list(ctx)?;
        let requests: Vec<FillRequest> = requests
            .into_iter()
            .map(|(position, token, spec)| FillRequest {
                position,
                token: Some(Box::new(token)),
                fill: spec.fill,
            })
            .collect();
        let mut streams = StreamCounter { seed, next: stream };
        let r = py
            .detach(|| {
                self.dict()
                    .initialize_filled(&ctxs, force_reinit, requests, &mut streams)
            })
            .py();
        self.drop_stale();
        let out = r?;
        Ok((
            out.states.iter().map(|s| state_name(*s)).collect(),
            out.streams_used,
        ))
    }

    /// Every context any parameter lives on.
    fn list_ctx<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let ctxs = py.detach(|| self.dict().list_ctx()).py()?;
        PyList::new(py, ctxs.into_iter().map(PyContext::from))
    }

    /// Replaces every gradient with its sum over the parameter's contexts
    /// (parallel, GIL released).
    fn allreduce_grads(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.dict().allreduce_grads()).py()
    }

    /// Saves one (averaged) copy of each parameter, names without `strip_prefix`.
    #[pyo3(signature = (filename, strip_prefix=""))]
    fn save(
        &self,
        py: Python<'_>,
        filename: std::path::PathBuf,
        strip_prefix: &str,
    ) -> PyResult<()> {
        py.detach(|| self.dict().save(&filename, strip_prefix)).py()
    }

    /// Loads a file with Gluon's policies (see `ParameterDict.load`).
    #[pyo3(signature = (filename, ctx=None, allow_missing=false, ignore_extra=false, restore_prefix="", cast_dtype=false, dtype_source="current"))]
    #[allow(clippy::too_many_arguments)]
    fn load(
        &self,
        py: Python<'_>,
        filename: std::path::PathBuf,
        ctx: Option<&Bound<'_, PyAny>>,
        allow_missing: bool,
        ignore_extra: bool,
        restore_prefix: &str,
        cast_dtype: bool,
        dtype_source: &str,
    ) -> PyResult<()> {
        let opts = load_options(
            ctx,
            allow_missing,
            ignore_extra,
            restore_prefix,
            cast_dtype,
            dtype_source,
        )?;
        let r = py.detach(|| self.dict().load(&filename, &opts)).py();
        self.drop_stale();
        r
    }

    /// Loads named arrays with Gluon's policies (`ParameterDict.load_dict`);
    /// `source` names their origin in messages.
    #[pyo3(signature = (names, arrays, ctx, allow_missing, ignore_extra, restore_prefix, cast_dtype, dtype_source, source))]
    #[allow(clippy::too_many_arguments)]
    fn load_arrays(
        &self,
        py: Python<'_>,
        names: Vec<String>,
        arrays: Vec<Bound<'_, PyNDArray>>,
        ctx: Option<&Bound<'_, PyAny>>,
        allow_missing: bool,
        ignore_extra: bool,
        restore_prefix: &str,
        cast_dtype: bool,
        dtype_source: &str,
        source: &str,
    ) -> PyResult<()> {
        let opts = load_options(
            ctx,
            allow_missing,
            ignore_extra,
            restore_prefix,
            cast_dtype,
            dtype_source,
        )?;
        let arrays: Vec<_> = arrays.iter().map(|a| a.get().inner.clone()).collect();
        let r = py
            .detach(|| self.dict().load_arrays(&names, &arrays, &opts, source))
            .py();
        self.drop_stale();
        r
    }
}

/// The Python name of an initialisation state.
pub(crate) fn state_name(s: InitRequest) -> &'static str {
    match s {
        InitRequest::Ready => "ready",
        InitRequest::Deferred => "deferred",
        InitRequest::AlreadyInitialized => "initialized",
    }
}
