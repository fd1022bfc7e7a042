//! `mxparams._native.ParameterDictCore`: the bulk operations of
//! `mxparams.ParameterDict` (initialize with built-in fills, zero_grad,
//! reset_ctx, save, load, setattr of grad_req / lr_mult / wd_mult,
//! list_ctx), each one Rust call that loops
//! over the parameters with the GIL released. The Python class keeps the
//! name -> Parameter mapping and MXNet's `get` semantics; it mirrors every
//! insertion here.

use std::sync::RwLock;

use pyo3::prelude::*;
use pyo3::types::PyList;

use super::context::PyContext;
use super::errors::IntoPyResult;
use super::ndarray::PyNDArray;
use super::parameter::{ctx_list, PyParameter};
use mxparams::param_dict::{Fill, FillRequest, LoadOptions, ParameterDict};
use mxparams::parameter::{DTypeSource, GradReq, InitRequest};
use mxparams::random::Distribution;

/// The native half of `mxparams.ParameterDict`.
#[pyclass(name = "ParameterDictCore", module = "mxparams._native", frozen)]
pub struct PyParamDictCore {
    inner: RwLock<ParameterDict>,
    /// The bindings of the parameters, to drop their stale array caches after
    /// operations that replace arrays.
    bindings: std::sync::Mutex<Vec<Py<PyParameter>>>,
}

impl PyParamDictCore {
    fn dict(&self) -> std::sync::RwLockReadGuard<'_, ParameterDict> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn drop_stale(&self, py: Python<'_>) {
        let bindings: Vec<Py<PyParameter>> = self
            .bindings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|b| b.clone_ref(py))
            .collect();
        for b in bindings {
            b.get().drop_stale();
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
    #[pyo3(signature = (prefix=""))]
    fn new(prefix: &str) -> Self {
        PyParamDictCore {
            inner: RwLock::new(ParameterDict::new(prefix, None)),
            bindings: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Binds `name` to `param` (replacing any previous binding in place).
    fn insert(&self, name: String, param: &Bound<'_, PyParameter>) {
        let p = param.get().inner.clone();
        self.inner
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name, p);
        self.bindings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(param.clone().unbind());
    }

    fn __len__(&self) -> usize {
        self.dict().len()
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
        self.drop_stale(py);
        r
    }

    /// Initialises the parameters at `positions` (insertion order) on `ctx`
    /// with built-in fills (`kinds`: 0 zeros, 1 the constant `a`, 2 uniform
    /// on `[a, b)`, 3 normal `N(a, b**2)`), random ones from streams
    /// `stream, stream + 1, ...` of `seed`. Returns the state of each handled
    /// parameter ("ready", "deferred" or "initialized"; fewer than asked when
    /// the next fill does not suit its dtype) and the number of streams drawn.
    #[allow(clippy::too_many_arguments)]
    fn _initialize_fast(
        &self,
        py: Python<'_>,
        positions: Vec<usize>,
        ctx: Option<&Bound<'_, PyAny>>,
        tokens: Vec<Py<PyAny>>,
        kinds: Vec<u8>,
        a: Vec<f64>,
        b: Vec<f64>,
        force_reinit: bool,
        seed: u64,
        stream: u64,
    ) -> PyResult<(Vec<&'static str>, u64)> {
        let n = positions.len();
        if [tokens.len(), kinds.len(), a.len(), b.len()] != [n; 4] {
            return Err(crate::errors::MXParamsValueError::new_err(
                "positions, tokens, kinds, a and b must have the same length",
            ));
        }
        let ctxs = ctx_list(ctx)?;
        let mut requests = Vec::with_capacity(n);
        for (i, token) in tokens.into_iter().enumerate() {
            let fill = match kinds[i] {
                0 => Fill::Zeros,
                1 => Fill::Constant(a[i]),
                2 => Fill::Random(Distribution::Uniform {
                    low: a[i],
                    high: b[i],
                }),
                3 => Fill::Random(Distribution::Normal {
                    mean: a[i],
                    std: b[i],
                }),
                _ => {
                    return Err(crate::errors::MXParamsValueError::new_err(
                        "unknown fill kind",
                    ))
                }
            };
            requests.push(FillRequest {
                position: positions[i],
                token: Some(Box::new(token)),
                fill,
            });
        }
        let r = py
            .detach(|| {
                self.dict()
                    .initialize_filled(&ctxs, force_reinit, requests, seed, stream)
            })
            .py();
        self.drop_stale(py);
        let out = r?;
        let states = out
            .states
            .iter()
            .map(|s| match s {
                InitRequest::Ready => "ready",
                InitRequest::Deferred => "deferred",
                InitRequest::AlreadyInitialized => "initialized",
            })
            .collect();
        Ok((states, out.streams_used))
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

    /// Sets grad_req on every parameter.
    fn set_grad_req(&self, py: Python<'_>, req: &str) -> PyResult<()> {
        let req: GradReq = req.parse().py()?;
        py.detach(|| self.dict().set_grad_req(req)).py()
    }

    /// Sets lr_mult on every parameter.
    fn set_lr_mult(&self, v: f64) {
        self.dict().set_lr_mult(v);
    }

    /// Sets wd_mult on every parameter.
    fn set_wd_mult(&self, v: f64) {
        self.dict().set_wd_mult(v);
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
        self.drop_stale(py);
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
        self.drop_stale(py);
        r
    }
}
