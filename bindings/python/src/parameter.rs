//! `mxparams._native.ParameterBase`: the Rust half of `mxparams.Parameter`.
//!
//! It holds the shared core parameter and answers the hot calls (`data()`,
//! `grad()`) from a per-context cache of Python `NDArray` objects keyed on the
//! core's version number, so repeated calls allocate nothing. The Python
//! subclass adds MXNet's loose signatures and the initializer calls.
//!
//! Locks are never held while Python code can run: each method copies what
//! it needs out of the parameter, drops the lock, then builds Python objects.

use std::sync::{Arc, Mutex, RwLock};

use numpy::PyUntypedArray;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use super::context::PyContext;
use super::convert::{from_numpy, numpy_dtype, to_dtype};
use super::errors::IntoPyResult;
use super::ndarray::PyNDArray;
use super::param_dict::state_name;
use super::random::PyFillSpec;
use mxparams::context::Context;
use mxparams::ndarray::{NDArray, SType};
use mxparams::param_dict::{
    read, write, FillRequest, ParamAttrs, ParameterDict, SharedParameter, StreamCounter,
};
use mxparams::parameter::{
    DTypeSource, DeferredInit, GradReq, InitRequest, Parameter, ParameterArrays,
};

/// Cached Python arrays for one version of a parameter's data and gradients.
#[derive(Default)]
struct ViewCache {
    version: u64,
    data: Vec<Option<Py<PyNDArray>>>,
    grad: Vec<Option<Py<PyNDArray>>>,
}

#[derive(Clone, Copy)]
enum Which {
    Data,
    Grad,
}

/// The native base of `mxparams.Parameter`.
#[pyclass(name = "ParameterBase", module = "mxparams._native", subclass, frozen)]
pub struct PyParameter {
    pub(crate) inner: SharedParameter,
    cache: Mutex<ViewCache>,
}

/// Contexts from a Context or a sequence of them (`None`: the current context).
pub(crate) fn ctx_list(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<Context>> {
    match obj {
        None => Ok(vec![Context::current()]),
        Some(o) if o.is_none() => Ok(vec![Context::current()]),
        Some(o) => {
            if let Ok(c) = o.cast::<PyContext>() {
                return Ok(vec![c.get().inner]);
            }
            // A str is iterable: 'cpu' would otherwise be read as 'c', 'p', 'u'.
            let expected = || {
                crate::errors::MXParamsTypeError::new_err(format!(
                    "ctx must be a Context or a list of Contexts (such as mxparams.cpu() or \
                     [mxparams.gpu(0), mxparams.gpu(1)]), not {}",
                    o.repr().map_or_else(|_| "?".to_string(), |r| r.to_string())
                ))
            };
            if o.is_instance_of::<pyo3::types::PyString>() {
                return Err(expected());
            }
            o.try_iter()
                .map_err(|_| expected())?
                .map(|c| super::context::ctx_or_current(Some(&c?)))
                .collect()
        }
    }
}

fn contexts_to_py<'py>(py: Python<'py>, ctxs: &[Context]) -> PyResult<Bound<'py, PyList>> {
    PyList::new(py, ctxs.iter().map(|&c| PyContext::from(c)))
}

fn stype_arg(name: &str, which: &str, s: &str) -> PyResult<SType> {
    s.parse::<SType>().map_err(|_| {
        crate::errors::MXParamsValueError::new_err(format!(
            "{which} for Parameter '{name}' must be one of 'default', 'row_sparse', or \
             'csr', but got '{s}'"
        ))
    })
}

impl PyParameter {
    /// A binding over an existing shared parameter.
    pub(crate) fn from_shared(inner: SharedParameter) -> Self {
        PyParameter {
            inner,
            cache: Mutex::new(ViewCache::default()),
        }
    }

    /// Releases cached Python arrays of replaced data/gradients, so that old
    /// buffers are freed now rather than at the next `data()` call.
    pub(crate) fn drop_stale(&self) {
        let version = read(&self.inner).version();
        let stale = {
            let mut c = self.lock_cache();
            if c.version == version {
                return;
            }
            c.version = version;
            (std::mem::take(&mut c.data), std::mem::take(&mut c.grad))
        };
        // Dropped here, outside the cache lock: freeing may run Python code.
        drop(stale);
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, ViewCache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached Python array for `ctx`, created on first use.
    #[inline]
    fn cached(
        &self,
        py: Python<'_>,
        which: Which,
        ctx: Option<Context>,
    ) -> PyResult<Py<PyNDArray>> {
        let (version, index) = {
            let p = read(&self.inner);
            let index = match which {
                Which::Data => p.data_index(ctx),
                Which::Grad => p.grad_index(ctx),
            }
            .py()?;
            (p.version(), index)
        };
        {
            let c = self.lock_cache();
            if c.version == version {
                let slot = match which {
                    Which::Data => &c.data,
                    Which::Grad => &c.grad,
                };
                if let Some(Some(obj)) = slot.get(index) {
                    return Ok(obj.clone_ref(py));
                }
            }
        }
        self.fill_cache(py, which, index)
    }

    /// The cached Python array at position `index` (list_data / list_grad).
    fn cached_at(&self, py: Python<'_>, which: Which, index: usize) -> PyResult<Py<PyNDArray>> {
        let version = read(&self.inner).version();
        {
            let c = self.lock_cache();
            if c.version == version {
                let slot = match which {
                    Which::Data => &c.data,
                    Which::Grad => &c.grad,
                };
                if let Some(Some(obj)) = slot.get(index) {
                    return Ok(obj.clone_ref(py));
                }
            }
        }
        self.fill_cache(py, which, index)
    }

    #[cold]
    fn fill_cache(&self, py: Python<'_>, which: Which, index: usize) -> PyResult<Py<PyNDArray>> {
        let (array, count, version, ctx) = {
            let p = read(&self.inner);
            // If the arrays were replaced meanwhile, the new ones are returned
            // (and cached under the new version).
            let version = p.version();
            let arrays = match which {
                Which::Data => p.list_data(),
                Which::Grad => p.list_grad(),
            }
            .py()?;
            let array = arrays.get(index).cloned().ok_or_else(|| {
                crate::errors::MXParamsValueError::new_err("parameter changed during access")
            })?;
            let ctx = p.list_ctx().ok().and_then(|c| c.get(index).copied());
            (array, arrays.len(), version, ctx)
        };
        // No lock is held here: creating a Python object may run arbitrary code.
        let nd = match (which, ctx) {
            (Which::Data, Some(c)) => PyNDArray::param_copy(array, self.inner.clone(), c),
            _ => PyNDArray::from(array),
        };
        let obj = Py::new(py, nd)?;
        let mut c = self.lock_cache();
        if c.version != version {
            *c = ViewCache {
                version,
                data: Vec::new(),
                grad: Vec::new(),
            };
        }
        let slot = match which {
            Which::Data => &mut c.data,
            Which::Grad => &mut c.grad,
        };
        if slot.len() < count {
            slot.resize_with(count, || None);
        }
        if let Some(s) = slot.get_mut(index) {
            *s = Some(obj.clone_ref(py));
        }
        Ok(obj)
    }
}

fn opt_ctx(ctx: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Context>> {
    match ctx {
        None => Ok(None),
        Some(c) if c.is_none() => Ok(None),
        Some(c) => match c.cast::<PyContext>() {
            Ok(pc) => Ok(Some(pc.get().inner)),
            Err(_) => super::context::ctx_or_current(Some(c)).map(Some),
        },
    }
}

/// The attributes a parameter is built with, as Python gives them.
struct ConstructionAttrs<'a, 'py> {
    grad_req: &'a str,
    shape: Option<Vec<usize>>,
    dtype: &'a Bound<'py, PyAny>,
    lr_mult: f64,
    wd_mult: f64,
    allow_deferred_init: bool,
    differentiable: bool,
    stype: &'a str,
    grad_stype: &'a str,
}

impl ConstructionAttrs<'_, '_> {
    /// Checked in this order: grad_req, the storage types, dtype.
    fn parse(self, name: &str) -> PyResult<ParamAttrs> {
        let grad_req: GradReq = self.grad_req.parse().py()?;
        let grad_stype = stype_arg(name, "grad_stype", self.grad_stype)?;
        let stype = stype_arg(name, "stype", self.stype)?;
        Ok(ParamAttrs {
            shape: self.shape,
            dtype: Some(to_dtype(self.dtype)?),
            grad_req: Some(grad_req),
            lr_mult: Some(self.lr_mult),
            wd_mult: Some(self.wd_mult),
            allow_deferred_init: Some(self.allow_deferred_init),
            differentiable: Some(self.differentiable),
            stype: Some(stype),
            grad_stype: Some(grad_stype),
        })
    }
}

/// A parameter's attributes from the dict `_native_state` writes.
fn attrs_from_dict(name: &str, d: &Bound<'_, PyDict>) -> PyResult<ParamAttrs> {
    let item = |key: &str| -> PyResult<Bound<'_, PyAny>> {
        d.get_item(key)?.ok_or_else(|| {
            crate::errors::MXParamsValueError::new_err(format!(
                "missing parameter attribute '{key}'"
            ))
        })
    };
    let dtype = item("dtype")?;
    ConstructionAttrs {
        grad_req: item("grad_req")?.extract()?,
        shape: item("shape")?.extract()?,
        dtype: &dtype,
        lr_mult: item("lr_mult")?.extract()?,
        wd_mult: item("wd_mult")?.extract()?,
        allow_deferred_init: item("allow_deferred_init")?.extract()?,
        differentiable: item("differentiable")?.extract()?,
        stype: item("stype")?.extract()?,
        grad_stype: item("grad_stype")?.extract()?,
    }
    .parse(name)
}

#[pymethods]
impl PyParameter {
    #[new]
    #[pyo3(signature = (name, *_args, **_kwargs))]
    fn new(name: String, _args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyAny>>) -> Self {
        PyParameter::from_shared(Arc::new(RwLock::new(Parameter::new(name))))
    }

    /// Sets the construction-time attributes (called by the Python
    /// `__init__`), all given by keyword; `shape` None or 0 for unknown dims.
    #[pyo3(signature = (*, grad_req, shape, dtype, lr_mult, wd_mult, allow_deferred_init, differentiable, stype, grad_stype))]
    #[allow(clippy::too_many_arguments)] // keyword-only, each required
    fn _configure(
        &self,
        grad_req: &str,
        shape: Option<Vec<usize>>,
        dtype: &Bound<'_, PyAny>,
        lr_mult: f64,
        wd_mult: f64,
        allow_deferred_init: bool,
        differentiable: bool,
        stype: &str,
        grad_stype: &str,
    ) -> PyResult<()> {
        let name = read(&self.inner).name().to_string();
        let attrs = ConstructionAttrs {
            grad_req,
            shape,
            dtype,
            lr_mult,
            wd_mult,
            allow_deferred_init,
            differentiable,
            stype,
            grad_stype,
        };
        let q = Parameter::from_attrs(name.clone(), &attrs.parse(&name)?);
        *write(&self.inner) = q;
        self.drop_stale();
        Ok(())
    }

    /// Makes the parameter Gluon's `Constant` holding `value` (what
    /// `ParameterDict.get_constant` compares a requested value with).
    fn _configure_constant(&self, value: &Bound<'_, PyNDArray>) {
        write(&self.inner).set_constant_value(value.get().inner.clone());
    }

    /// What a copy or a pickle of the parameter carries, as a dict: the
    /// attributes, the arrays per context (`NDArray` handles sharing this
    /// parameter's storage: a shallow copy shares them, a deep copy or a
    /// pickle copies them), a pending deferred initialisation and a
    /// constant's value.
    fn _native_state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (attrs, arrays, deferred, constant) = {
            let p = read(&self.inner);
            let attrs = (
                p.shape().map(<[usize]>::to_vec),
                p.dtype(),
                p.grad_req().name(),
                p.lr_mult,
                p.wd_mult,
                p.differentiable(),
                p.allow_deferred_init(),
                (p.stype().name(), p.grad_stype().name()),
            );
            let deferred = p.deferred().map(|d| {
                let token = d
                    .token
                    .as_ref()
                    .and_then(|t| t.downcast_ref::<Py<PyAny>>())
                    .map(|t| t.clone_ref(py));
                (d.ctx.clone(), d.data.clone(), token)
            });
            (attrs, p.arrays(), deferred, p.constant_value().cloned())
        };
        let (shape, dtype, grad_req, lr_mult, wd_mult, differentiable, deferrable, stypes) = attrs;
        let nd = |a: NDArray| Py::new(py, PyNDArray::from(a));
        let nds = |v: Vec<NDArray>| v.into_iter().map(nd).collect::<PyResult<Vec<_>>>();
        let state = PyDict::new(py);
        state.set_item("shape", shape)?;
        state.set_item("dtype", numpy_dtype(py, dtype)?)?;
        state.set_item("grad_req", grad_req)?;
        state.set_item("lr_mult", lr_mult)?;
        state.set_item("wd_mult", wd_mult)?;
        state.set_item("differentiable", differentiable)?;
        state.set_item("allow_deferred_init", deferrable)?;
        state.set_item("stype", stypes.0)?;
        state.set_item("grad_stype", stypes.1)?;
        match arrays {
            Some(a) => {
                state.set_item("ctx", contexts_to_py(py, &a.ctx)?)?;
                state.set_item("data", nds(a.data)?)?;
                state.set_item("grad", a.grad.map(nds).transpose()?)?;
            }
            None => {
                state.set_item("ctx", py.None())?;
                state.set_item("data", py.None())?;
                state.set_item("grad", py.None())?;
            }
        }
        match deferred {
            Some((ctx, data, token)) => state.set_item(
                "deferred",
                (contexts_to_py(py, &ctx)?, data.map(nd).transpose()?, token),
            )?,
            None => state.set_item("deferred", py.None())?,
        }
        state.set_item("constant", constant.map(nd).transpose()?)?;
        Ok(state)
    }

    /// Rebuilds the parameter from what `_native_state` gave (of a parameter
    /// with this name); ValueError when the parts do not fit together.
    fn _set_native_state(&self, state: &Bound<'_, PyDict>) -> PyResult<()> {
        let item = |key: &str| -> PyResult<Bound<'_, PyAny>> {
            state.get_item(key)?.ok_or_else(|| {
                crate::errors::MXParamsValueError::new_err(format!("parameter state lacks '{key}'"))
            })
        };
        let name = read(&self.inner).name().to_string();
        let nd = |o: Bound<'_, PyAny>| -> PyResult<NDArray> {
            Ok(o.cast::<PyNDArray>()?.get().inner.clone())
        };
        let nds = |o: Bound<'_, PyAny>| -> PyResult<Option<Vec<NDArray>>> {
            if o.is_none() {
                return Ok(None);
            }
            o.try_iter()?
                .map(|a| nd(a?))
                .collect::<PyResult<Vec<_>>>()
                .map(Some)
        };
        let attrs = attrs_from_dict(&name, state)?;
        let mut q = Parameter::from_attrs(name, &attrs);
        if let Some(data) = nds(item("data")?)? {
            let arrays = ParameterArrays {
                ctx: ctx_list(Some(&item("ctx")?))?,
                data,
                grad: nds(item("grad")?)?,
            };
            q.adopt_arrays(arrays).py()?;
        }
        let deferred = item("deferred")?;
        if !deferred.is_none() {
            let (ctx, data, token): (Bound<'_, PyAny>, Bound<'_, PyAny>, Py<PyAny>) =
                deferred.extract()?;
            let data = if data.is_none() {
                None
            } else {
                Some(nd(data)?)
            };
            q.set_deferred(DeferredInit {
                ctx: ctx_list(Some(&ctx))?,
                data,
                token: Some(Box::new(token)),
            })
            .py()?;
        }
        let constant = item("constant")?;
        if !constant.is_none() {
            q.set_constant_value(nd(constant)?);
        }
        *write(&self.inner) = q;
        self.drop_stale();
        Ok(())
    }

    /// The parameter's name.
    #[getter]
    fn name(&self) -> String {
        read(&self.inner).name().to_string()
    }

    /// The shape as a tuple (0 = unknown dim), or None.
    #[getter]
    fn _shape<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let shape = read(&self.inner).shape().map(<[usize]>::to_vec);
        shape.map(|s| PyTuple::new(py, s)).transpose()
    }

    /// Sets the shape: unknown dims may be filled in, known ones never change.
    fn _set_shape(&self, shape: Vec<usize>) -> PyResult<()> {
        write(&self.inner).set_shape(&shape).py()
    }

    /// The numpy dtype.
    #[getter]
    fn _np_dtype<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let d = read(&self.inner).dtype();
        Ok(numpy_dtype(py, d)?.into_any())
    }

    /// `'write'`, `'add'` or `'null'`.
    #[getter]
    fn _get_grad_req(&self) -> &'static str {
        read(&self.inner).grad_req().name()
    }

    /// Runs the grad_req state machine.
    fn _set_grad_req(&self, py: Python<'_>, req: &str) -> PyResult<()> {
        let req: GradReq = req.parse().py()?;
        let inner = self.inner.clone();
        let r = py.detach(move || write(&inner).set_grad_req(req)).py();
        self.drop_stale();
        r
    }

    /// Learning-rate multiplier.
    #[getter]
    fn get_lr_mult(&self) -> f64 {
        read(&self.inner).lr_mult
    }

    #[setter]
    fn set_lr_mult(&self, v: f64) {
        write(&self.inner).lr_mult = v;
    }

    /// Weight-decay multiplier.
    #[getter]
    fn get_wd_mult(&self) -> f64 {
        read(&self.inner).wd_mult
    }

    #[setter]
    fn set_wd_mult(&self, v: f64) {
        write(&self.inner).wd_mult = v;
    }

    /// Whether the parameter takes gradients.
    #[getter]
    fn _differentiable(&self) -> bool {
        read(&self.inner).differentiable()
    }

    /// Whether initialisation may be deferred.
    #[getter]
    fn _allow_deferred_init(&self) -> bool {
        read(&self.inner).allow_deferred_init()
    }

    /// Storage type of the data.
    #[getter]
    fn _stype(&self) -> &'static str {
        read(&self.inner).stype().name()
    }

    /// Storage type of the gradient.
    #[getter]
    fn _grad_stype(&self) -> &'static str {
        read(&self.inner).grad_stype().name()
    }

    /// Whether data exists.
    fn _is_initialized(&self) -> bool {
        read(&self.inner).is_initialized()
    }

    /// Whether initialisation is deferred.
    fn _is_deferred(&self) -> bool {
        read(&self.inner).deferred().is_some()
    }

    /// Returns this parameter's copy on one context (the only copy, or the
    /// current context's, when `ctx` is None).
    #[pyo3(signature = (ctx=None))]
    fn data(&self, py: Python<'_>, ctx: Option<&Bound<'_, PyAny>>) -> PyResult<Py<PyNDArray>> {
        self.cached(py, Which::Data, opt_ctx(ctx)?)
    }

    /// Returns the gradient buffer on one context.
    #[pyo3(signature = (ctx=None))]
    fn grad(&self, py: Python<'_>, ctx: Option<&Bound<'_, PyAny>>) -> PyResult<Py<PyNDArray>> {
        self.cached(py, Which::Grad, opt_ctx(ctx)?)
    }

    /// Copies on all contexts, in the order they were initialised.
    fn list_data<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let n = read(&self.inner).list_data().py()?.len();
        let objs = (0..n)
            .map(|i| self.cached_at(py, Which::Data, i))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, objs)
    }

    /// Gradient buffers on all contexts, in the order of `list_ctx()`.
    fn list_grad<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let n = read(&self.inner).list_grad().py()?.len();
        let objs = (0..n)
            .map(|i| self.cached_at(py, Which::Grad, i))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, objs)
    }

    /// Contexts this parameter is initialised on (the requested ones while deferred).
    fn list_ctx<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let ctxs = read(&self.inner).list_ctx().py()?;
        contexts_to_py(py, &ctxs)
    }

    /// Sets gradient buffers on all contexts to 0.
    fn zero_grad(&self, py: Python<'_>) -> PyResult<()> {
        let inner = self.inner.clone();
        py.detach(move || read(&inner).zero_grad()).py()
    }

    /// Sets the value on all contexts from an NDArray or a C-contiguous
    /// numpy array (dtype converted).
    fn _set_data(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let data = if let Ok(nd) = data.cast::<PyNDArray>() {
            nd.get().inner.clone()
        } else {
            let arr = data.cast::<PyUntypedArray>()?;
            from_numpy(arr, Context::cpu(0))?
        };
        let inner = self.inner.clone();
        py.detach(move || write(&inner).set_data(&data)).py()
    }

    /// The mean of the copies, as one array on cpu(0).
    fn _reduce(&self, py: Python<'_>) -> PyResult<PyNDArray> {
        let inner = self.inner.clone();
        let a = py.detach(move || read(&inner).reduce()).py()?;
        Ok(PyNDArray::from(a))
    }

    /// The rows `rows` of the copy on `ctx` as a row_sparse array there
    /// (row_sparse parameters only).
    #[pyo3(signature = (rows, ctx=None))]
    fn _row_sparse_data(
        &self,
        py: Python<'_>,
        rows: Vec<i64>,
        ctx: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyNDArray> {
        let ctx = opt_ctx(ctx)?;
        let inner = self.inner.clone();
        let a = py
            .detach(move || read(&inner).row_sparse_data(ctx, &rows, ctx))
            .py()?;
        Ok(PyNDArray::from(a))
    }

    /// `_row_sparse_data` for every context, in context order.
    fn _list_row_sparse_data(&self, py: Python<'_>, rows: Vec<i64>) -> PyResult<Vec<PyNDArray>> {
        let inner = self.inner.clone();
        let arrays = py
            .detach(move || read(&inner).list_row_sparse_data(&rows))
            .py()?;
        Ok(arrays.into_iter().map(PyNDArray::from).collect())
    }

    /// Re-assigns the parameter to other contexts, keeping its value.
    fn _reset_ctx(&self, py: Python<'_>, ctx: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let ctxs = ctx_list(ctx)?;
        let inner = self.inner.clone();
        let r = py.detach(move || write(&inner).reset_ctx(&ctxs)).py();
        self.drop_stale();
        r
    }

    /// Casts data and gradients to `dtype`.
    fn _cast(&self, py: Python<'_>, dtype: &Bound<'_, PyAny>) -> PyResult<()> {
        let dtype = to_dtype(dtype)?;
        let inner = self.inner.clone();
        let r = py.detach(move || write(&inner).cast(dtype)).py();
        self.drop_stale();
        r
    }

    /// Starts initialisation: returns 'initialized' (nothing done), 'deferred'
    /// or 'ready'; `token` is kept until initialisation finishes.
    fn _request_init(
        &self,
        ctx: Option<&Bound<'_, PyAny>>,
        token: Py<PyAny>,
        force_reinit: bool,
    ) -> PyResult<&'static str> {
        let ctxs = ctx_list(ctx)?;
        let r = write(&self.inner)
            .request_init(&ctxs, Some(Box::new(token)), force_reinit)
            .py()?;
        Ok(match r {
            InitRequest::AlreadyInitialized => "initialized",
            InitRequest::Deferred => "deferred",
            InitRequest::Ready => "ready",
        })
    }

    /// `_request_init` plus, when the shape is known, a zeroed host array for
    /// the initializer to fill (the request stays recorded until `_init_finish`).
    fn _init_start<'py>(
        &self,
        py: Python<'py>,
        ctx: Option<&Bound<'_, PyAny>>,
        token: Py<PyAny>,
        force_reinit: bool,
    ) -> PyResult<(&'static str, Option<Bound<'py, PyNDArray>>)> {
        let ctxs = ctx_list(ctx)?;
        let (r, zeros) = {
            let mut p = write(&self.inner);
            let r = p
                .request_init(&ctxs, Some(Box::new(token)), force_reinit)
                .py()?;
            let zeros = match r {
                InitRequest::Ready => Some(p.zeros_host().py()?),
                _ => None,
            };
            (r, zeros)
        };
        self.drop_stale();
        match (r, zeros) {
            (InitRequest::AlreadyInitialized, _) => Ok(("initialized", None)),
            (InitRequest::Ready, Some(z)) => {
                Ok(("ready", Some(Bound::new(py, PyNDArray::from(z))?)))
            }
            _ => Ok(("deferred", None)),
        }
    }

    /// `initialize` with a built-in fill, in one call (the batched
    /// initialisation of a one-parameter dict): random fills take stream
    /// `key = (seed, stream)`. Returns the `_init_start` state, or `'unsupported'`
    /// (nothing done) when the fill does not suit the parameter, and the
    /// number of streams drawn (0 or 1).
    fn _init_fill(
        &self,
        py: Python<'_>,
        ctx: Option<&Bound<'_, PyAny>>,
        token: Py<PyAny>,
        force_reinit: bool,
        spec: PyRef<'_, PyFillSpec>,
        key: (u64, u64),
    ) -> PyResult<(&'static str, u64)> {
        let (seed, stream) = key;
        let ctxs = ctx_list(ctx)?;
        let mut one = ParameterDict::new("", None);
        one.insert(String::new(), self.inner.clone());
        let request = FillRequest {
            position: 0,
            token: Some(Box::new(token)),
            fill: spec.fill,
        };
        let mut streams = StreamCounter { seed, next: stream };
        let r = py
            .detach(|| one.initialize_filled(&ctxs, force_reinit, vec![request], &mut streams))
            .py();
        self.drop_stale();
        let out = r?;
        let state = out.states.first().map_or("unsupported", |s| state_name(*s));
        Ok((state, out.streams_used))
    }

    /// Completes what `_init_start` began with the filled array.
    fn _init_finish(&self, py: Python<'_>, data: &Bound<'_, PyNDArray>) -> PyResult<()> {
        let data = data.get().inner.clone();
        let inner = self.inner.clone();
        let r = py
            .detach(move || {
                let mut p = write(&inner);
                let Some(record) = p.take_deferred()? else {
                    return Err(mxparams::error::Error::NotInitialized(format!(
                        "Parameter '{}' has no pending initialization",
                        p.name()
                    )));
                };
                let ctxs = record.ctx.clone();
                if let Err(e) = p.init_from_host(&data, &ctxs) {
                    p.restore_deferred(record);
                    return Err(e);
                }
                Ok(())
            })
            .py();
        self.drop_stale();
        r
    }

    /// Takes the deferred record: None, or (contexts, data set while deferred
    /// or None, token). Raises ValueError while the shape is unknown.
    fn _take_deferred<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let Some(record) = write(&self.inner).take_deferred().py()? else {
            return Ok(None);
        };
        let token = record
            .token
            .as_ref()
            .and_then(|t| t.downcast_ref::<Py<PyAny>>())
            .map_or_else(|| py.None(), |t| t.clone_ref(py));
        let ctxs = contexts_to_py(py, &record.ctx)?;
        let data = match record.data {
            Some(d) => Py::new(py, PyNDArray::from(d))?.into_any(),
            None => py.None(),
        };
        Ok(Some(PyTuple::new(
            py,
            [ctxs.into_any().unbind(), data, token],
        )?))
    }

    /// Puts back a record taken by `_take_deferred` (after a failed fill).
    fn _restore_deferred(
        &self,
        ctx: Option<&Bound<'_, PyAny>>,
        data: Option<&Bound<'_, PyNDArray>>,
        token: Py<PyAny>,
    ) -> PyResult<()> {
        let record = DeferredInit {
            ctx: ctx_list(ctx)?,
            data: data.map(|d| d.get().inner.clone()),
            token: Some(Box::new(token)),
        };
        write(&self.inner).restore_deferred(record);
        Ok(())
    }

    /// The token of the pending deferred initialisation, or None.
    fn _deferred_token(&self, py: Python<'_>) -> Py<PyAny> {
        let p = read(&self.inner);
        p.deferred()
            .and_then(|d| d.token.as_ref())
            .and_then(|t| t.downcast_ref::<Py<PyAny>>())
            .map_or_else(|| py.None(), |t| t.clone_ref(py))
    }

    /// A zeroed cpu(0) array of the parameter's shape and dtype.
    fn _zeros_host(&self, py: Python<'_>) -> PyResult<PyNDArray> {
        let inner = self.inner.clone();
        let a = py.detach(move || read(&inner).zeros_host()).py()?;
        Ok(PyNDArray::from(a))
    }

    /// Initialises from `data`: one copy per context, zeroed gradients.
    fn _init_impl(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyNDArray>,
        ctx: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let ctxs = ctx_list(ctx)?;
        let data = data.get().inner.clone();
        let inner = self.inner.clone();
        let r = py
            .detach(move || write(&inner).init_from_host(&data, &ctxs))
            .py();
        self.drop_stale();
        r
    }

    /// Gluon's `_load_init`: (re)initialises from a loaded array.
    #[pyo3(signature = (data, ctx=None, cast_dtype=false, dtype_source="current"))]
    fn _load_init(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyNDArray>,
        ctx: Option<&Bound<'_, PyAny>>,
        cast_dtype: bool,
        dtype_source: &str,
    ) -> PyResult<()> {
        let source: DTypeSource = dtype_source.parse().py()?;
        let ctxs = match ctx {
            Some(c) if !c.is_none() => Some(ctx_list(Some(c))?),
            _ => None,
        };
        let data = data.get().inner.clone();
        let inner = self.inner.clone();
        let r = py
            .detach(move || write(&inner).load_init(&data, ctxs.as_deref(), cast_dtype, source))
            .py();
        self.drop_stale();
        r
    }

    /// Delivers a gradient for the copy on `ctx`: 'write' overwrites, 'add'
    /// accumulates, 'null' raises RuntimeError (the primitive autograd adapters use).
    #[pyo3(signature = (grad, ctx=None))]
    fn _deliver_grad(
        &self,
        py: Python<'_>,
        grad: &Bound<'_, PyAny>,
        ctx: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let ctx = opt_ctx(ctx)?;
        let g = if let Ok(nd) = grad.cast::<PyNDArray>() {
            nd.get().inner.clone()
        } else {
            from_numpy(grad.cast::<PyUntypedArray>()?, Context::cpu(0))?
        };
        let inner = self.inner.clone();
        py.detach(move || read(&inner).deliver_grad(ctx, &g)).py()
    }

    /// Whether the gradient on `ctx` is fresh (delivered by a backward pass
    /// since the flag was last cleared).
    #[pyo3(signature = (ctx=None))]
    fn _fresh_grad(&self, ctx: Option<&Bound<'_, PyAny>>) -> PyResult<bool> {
        let ctx = opt_ctx(ctx)?;
        read(&self.inner).fresh_grad(ctx).py()
    }

    /// Sets the freshness of the gradient on `ctx` (RuntimeError with grad_req='null').
    #[pyo3(signature = (fresh, ctx=None))]
    fn _set_fresh_grad(&self, fresh: bool, ctx: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let ctx = opt_ctx(ctx)?;
        read(&self.inner).set_fresh_grad(ctx, fresh).py()
    }

    /// The freshness of every gradient, in context order (empty without gradients).
    fn _fresh_grads(&self) -> Vec<bool> {
        read(&self.inner).fresh_grads()
    }

    /// `_fresh_grads`, clearing every flag (what an update leaves).
    fn _take_fresh_grads(&self) -> Vec<bool> {
        read(&self.inner).take_fresh_grads()
    }

    /// Replaces the gradient on every context with the sum over all contexts.
    fn _allreduce_grads(&self, py: Python<'_>) -> PyResult<()> {
        let inner = self.inner.clone();
        py.detach(move || read(&inner).allreduce_grads()).py()
    }

    /// A number that changes whenever the data or gradient buffers are replaced.
    #[getter]
    fn _version(&self) -> u64 {
        read(&self.inner).version()
    }

    /// MXNet's type flag of a dtype-like.
    #[staticmethod]
    fn _dtype_flag(dtype: &Bound<'_, PyAny>) -> PyResult<i32> {
        Ok(to_dtype(dtype)?.flag())
    }

    /// The numpy dtype of a dtype-like.
    #[staticmethod]
    fn _canon_dtype<'py>(dtype: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        Ok(numpy_dtype(dtype.py(), to_dtype(dtype)?)?.into_any())
    }

    /// Whether two handles share one parameter.
    fn _same(&self, other: &Bound<'_, PyParameter>) -> bool {
        Arc::ptr_eq(&self.inner, &other.get().inner)
    }
}
