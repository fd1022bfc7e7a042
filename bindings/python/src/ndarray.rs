//! `mxparams.NDArray`: a typed buffer on a context, lent to numpy and DLPack
//! consumers without copying.
//!
//! The class is frozen: the wrapped `NDArray` (and so the buffer that numpy
//! views and DLPack capsules point into) never changes for the life of the
//! Python object, which is what makes handing out raw pointers sound. Writes
//! (`arr[:] = x`) go into the buffer, never replace it.
//!
//! No buffer protocol: `__getbuffer__` needs the limited API of Python 3.11+
//! and the extension targets abi3-py39; `__array__` and DLPack cover numpy,
//! PyTorch and the rest without it.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use mxparams::context::Context;
use mxparams::ndarray::{NDArray, SType};
use mxparams::param_dict::{read, SharedParameter};

use super::buffer;
use super::context::PyContext;
use super::convert::{from_numpy, numpy_dtype, numpy_view, to_dtype};
use super::dlpack;
use super::errors::{IntoPyResult, MXParamsTypeError, MXParamsValueError};

/// A typed, C-contiguous array on a context.
///
/// Arrays are made by `mxparams.nd` (`array`, `zeros`, `load`, ...). Compute
/// with numpy, PyTorch or any DLPack consumer: `numpy.asarray(arr)` and
/// `torch.from_dlpack(arr)` share memory with the array on CPU contexts.
#[pyclass(name = "NDArray", module = "mxparams", frozen, subclass)]
pub struct PyNDArray {
    pub(crate) inner: NDArray,
    /// The parameter copy this array is, when `Parameter.data(ctx)` made it:
    /// `_fresh_grad` reads and writes that parameter's flag (the flag lives
    /// in the parameter, whose gradients it describes).
    owner: Option<(SharedParameter, Context)>,
}

impl From<NDArray> for PyNDArray {
    fn from(inner: NDArray) -> Self {
        PyNDArray { inner, owner: None }
    }
}

impl PyNDArray {
    /// The array of `param`'s data copy on `ctx`.
    pub(crate) fn param_copy(inner: NDArray, param: SharedParameter, ctx: Context) -> Self {
        PyNDArray {
            inner,
            owner: Some((param, ctx)),
        }
    }

    /// The owning parameter and context while this array still is that
    /// parameter's copy there (not after its buffers were re-created).
    fn live_owner(&self) -> Option<(&SharedParameter, Context)> {
        let (param, ctx) = self.owner.as_ref()?;
        let current = read(param).data(Some(*ctx)).ok()?;
        current
            .buffer()
            .same_storage(self.inner.buffer())
            .then_some((param, *ctx))
    }
}

/// `__reduce__`'s value: the rebuild function and its arguments.
type Reduced<'py> = (Bound<'py, PyAny>, (Bound<'py, PyBytes>, &'static str, u32));

/// A new Python NDArray object.
pub fn wrap(py: Python<'_>, a: NDArray) -> PyResult<Bound<'_, PyNDArray>> {
    Bound::new(py, PyNDArray::from(a))
}

impl PyNDArray {
    fn host_check(&self) -> PyResult<()> {
        if self.inner.context().is_host() {
            Ok(())
        } else {
            Err(crate::errors::MXParamsValueError::new_err(format!(
                "array on {} has no host view; copy it to cpu() first",
                self.inner.context()
            )))
        }
    }

    /// A numpy view of a dense host array (writable unless the storage is read-only).
    fn view<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let me = slf.get();
        me.host_check()?;
        if me.inner.stype() != SType::Default {
            return Err(crate::errors::MXParamsTypeError::new_err(format!(
                "{} arrays have no dense view; use tostype('default') or asnumpy()",
                me.inner.stype()
            )));
        }
        numpy_view(slf.py(), slf.as_any(), &me.inner, true)
    }

    /// A dense host array with the same values (self for dense host arrays).
    fn dense<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyNDArray>> {
        let me = slf.get();
        if me.inner.stype() == SType::Default && me.inner.context().is_host() {
            return Ok(slf.clone());
        }
        let a = me.inner.clone();
        let ctx = if a.context().is_host() {
            a.context()
        } else {
            Context::cpu(0)
        };
        let d = slf.py().detach(move || -> mxparams::Result<NDArray> {
            let host = if a.context().is_host() {
                a
            } else {
                a.copy_to(Context::cpu(0))?
            };
            Ok(mxparams::sparse::to_dense(&host)?.with_context(ctx))
        });
        wrap(slf.py(), d.py()?)
    }

    /// `arr[key] = value` on a sparse array: only `[:]`, as in MXNet. A
    /// scalar fills every row of a row_sparse array (csr refuses scalars);
    /// arrays are written as `copyto` writes them.
    fn set_sparse_item<'py>(
        slf: &Bound<'py, Self>,
        key: &Bound<'py, PyAny>,
        value: &Bound<'py, PyAny>,
    ) -> PyResult<()> {
        let py = slf.py();
        let me = &slf.get().inner;
        let full = key.cast::<pyo3::types::PySlice>().is_ok_and(|s| {
            ["start", "stop", "step"]
                .iter()
                .all(|a| s.getattr(*a).is_ok_and(|v| v.is_none()))
        });
        if !full {
            return Err(MXParamsValueError::new_err(format!(
                "{} arrays support only full-slice assignment arr[:] = value",
                me.stype()
            )));
        }
        if let Ok(src) = value.cast::<PyNDArray>() {
            return Self::copyto(src, slf.as_any()).map(|_| ());
        }
        let np = py.import("numpy")?;
        let is_scalar = np.getattr("isscalar")?.call1((value,))?.is_truthy()?
            || value.is_instance_of::<pyo3::types::PyFloat>()
            || value.is_instance_of::<pyo3::types::PyInt>();
        if is_scalar && me.stype() == SType::Csr {
            return Err(MXParamsValueError::new_err(
                "Assigning numeric types to CSRNDArray is not implemented yet.",
            ));
        }
        let dtype = numpy_dtype(py, me.dtype())?;
        let kw = pyo3::types::PyDict::new(py);
        kw.set_item("dtype", dtype)?;
        let shape = PyTuple::new(py, me.shape())?;
        let dense = np
            .getattr("broadcast_to")?
            .call1((np.getattr("asarray")?.call((value,), Some(&kw))?, shape))?;
        let dense = np.getattr("ascontiguousarray")?.call1((dense,))?;
        let src = from_numpy(dense.cast::<numpy::PyUntypedArray>()?, Context::cpu(0))?;
        let dst = me.clone();
        py.detach(move || mxparams::sparse::assign(&dst, &src, is_scalar))
            .py()
    }
}

/// numpy 2 refuses `x[i] = np.array([v])` (a size-1 array into one element)
/// where numpy 1 and MXNet accept it; MXNet drops the value's leading unit
/// dimensions until it fits the target. Returns the value so reshaped, or
/// None when that does not apply.
fn squeezed_value<'py>(
    target: &Bound<'py, PyAny>,
    key: &Bound<'py, PyAny>,
    value: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let np = target.py().import("numpy")?;
    let mut v = np.getattr("asarray")?.call1((value,))?;
    let want = np
        .getattr("ndim")?
        .call1((target.get_item(key)?,))?
        .extract::<usize>()?;
    let mut changed = false;
    loop {
        let shape: Vec<usize> = v.getattr("shape")?.extract()?;
        if shape.len() <= want || shape.first() != Some(&1) {
            break;
        }
        v = v.get_item(0)?;
        changed = true;
    }
    Ok(changed.then_some(v))
}

impl PyNDArray {
    /// `arr[key] = value` on a GPU array: staged through a host copy (one
    /// device-to-host and one host-to-device copy), like MXNet's own
    /// cross-device assignment.
    fn set_device_item<'py>(
        slf: &Bound<'py, Self>,
        key: &Bound<'py, PyAny>,
        value: &Bound<'py, PyAny>,
    ) -> PyResult<()> {
        let py = slf.py();
        let host = Self::asnumpy(slf)?;
        let value = match value.cast::<PyNDArray>() {
            Ok(src) => Self::asnumpy(src)?,
            Err(_) => value.clone(),
        };
        if let Err(e) = host.set_item(key, &value) {
            match squeezed_value(&host, key, &value)? {
                Some(v) if e.is_instance_of::<PyValueError>(py) => host.set_item(key, v)?,
                _ => return Err(e),
            }
        }
        let bytes = host.call_method0("tobytes")?;
        let bytes = bytes.cast::<PyBytes>()?.as_bytes().to_vec();
        let a = slf.get().inner.clone();
        py.detach(move || a.assign_bytes(&bytes)).py()
    }
}

fn ctx_of(obj: &Bound<'_, PyAny>) -> PyResult<Context> {
    super::context::ctx_or_current(Some(obj))
}

#[pymethods]
impl PyNDArray {
    /// The shape, a tuple of ints.
    #[getter]
    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.inner.shape())
    }

    /// The element type, a `numpy.dtype` (bfloat16 is `ml_dtypes.bfloat16`).
    #[getter]
    fn dtype<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(numpy_dtype(py, self.inner.dtype())?.into_any())
    }

    /// The device context.
    #[getter]
    fn context(&self) -> PyContext {
        self.inner.context().into()
    }

    /// Alias of `context`.
    #[getter]
    fn ctx(&self) -> PyContext {
        self.inner.context().into()
    }

    /// Number of elements.
    #[getter]
    fn size(&self) -> usize {
        self.inner.size()
    }

    /// Number of dimensions.
    #[getter]
    fn ndim(&self) -> usize {
        self.inner.ndim()
    }

    /// Storage type: 'default', 'row_sparse' or 'csr'.
    #[getter]
    fn stype(&self) -> &'static str {
        self.inner.stype().name()
    }

    /// Whether a backward pass wrote this array's gradient since the flag was
    /// last cleared (MXNet's ``_fresh_grad``): for an array ``Parameter.data()``
    /// returned, that parameter's flag on its context; False for any other array.
    #[getter]
    fn _fresh_grad(&self) -> PyResult<bool> {
        match self.live_owner() {
            Some((p, ctx)) => read(p).fresh_grad(Some(ctx)).py(),
            None => Ok(false),
        }
    }

    /// Sets the flag; an array that is no parameter's copy (or whose
    /// parameter has ``grad_req='null'``) has no gradient state: RuntimeError.
    #[setter(_fresh_grad)]
    fn set_fresh_grad(&self, fresh: bool) -> PyResult<()> {
        match self.live_owner() {
            Some((p, ctx)) => read(p).set_fresh_grad(Some(ctx), fresh).py(),
            None => Err(mxparams::error::Error::NoGradient(
                "NDArray has not been marked as a variable and does not have gradient state"
                    .to_string(),
            ))
            .py(),
        }
    }

    /// Whether the array is a read-only view (of a memory-mapped file).
    #[getter]
    fn readonly(&self) -> bool {
        !self.inner.values().buffer().is_writable()
    }

    /// Values of a sparse array (row_sparse: the stored rows; csr: the non-zeros).
    #[getter]
    fn data(&self) -> PyResult<PyNDArray> {
        match self.inner.stype() {
            SType::Default => Err(crate::errors::MXParamsAttributeError::new_err(
                "dense NDArrays have no 'data' attribute",
            )),
            _ => Ok(self.inner.values().into()),
        }
    }

    /// Row indices (row_sparse) or column indices (csr), int64.
    #[getter]
    fn indices(&self) -> PyResult<PyNDArray> {
        self.inner
            .sparse_parts()
            .map(|p| p.indices.clone().into())
            .ok_or_else(|| {
                crate::errors::MXParamsAttributeError::new_err(
                    "dense NDArrays have no 'indices' attribute",
                )
            })
    }

    /// Row pointers of a csr array, int64.
    #[getter]
    fn indptr(&self) -> PyResult<PyNDArray> {
        self.inner
            .sparse_parts()
            .and_then(|p| p.indptr.clone())
            .map(PyNDArray::from)
            .ok_or_else(|| {
                crate::errors::MXParamsAttributeError::new_err("only csr NDArrays have 'indptr'")
            })
    }

    /// Returns a numpy copy of the (dense) values.
    fn asnumpy<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let d = Self::dense(slf)?;
        let copied = !d.is(slf);
        let v = numpy_view(slf.py(), d.as_any(), &d.get().inner, true)?;
        if copied {
            Ok(v)
        } else {
            v.call_method0("copy")
        }
    }

    /// Returns the scalar value of a one-element array.
    fn asscalar<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        if slf.get().inner.size() != 1 {
            return Err(crate::errors::MXParamsValueError::new_err(
                "The current array is not a scalar",
            ));
        }
        Self::asnumpy(slf)?
            .call_method1("reshape", (-1,))?
            .get_item(0)
    }

    /// The buffer protocol: host arrays export their memory (read-only for
    /// memory-mapped arrays); see `super::buffer`.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut pyo3::ffi::Py_buffer,
        flags: std::ffi::c_int,
    ) -> PyResult<()> {
        let owner = slf.clone().into_any();
        // SAFETY: `view` is the buffer CPython asked us to fill.
        unsafe { buffer::fill(view, flags, &slf.get().inner, owner) }
    }

    unsafe fn __releasebuffer__(&self, view: *mut pyo3::ffi::Py_buffer) {
        // SAFETY: CPython releases only views `__getbuffer__` filled.
        unsafe { buffer::release(view) }
    }

    /// numpy's array protocol: a zero-copy view on CPU contexts.
    ///
    /// Read-only arrays (memory-mapped) give read-only views. `copy=True`
    /// copies; `copy=False` refuses when a copy is needed (sparse arrays, a
    /// dtype change), as numpy 2 specifies.
    #[pyo3(signature = (dtype = None, copy = None))]
    fn __array__<'py>(
        slf: &Bound<'py, Self>,
        dtype: Option<&Bound<'py, PyAny>>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        if !slf.get().inner.context().is_host() {
            // As torch and cupy do: no silent device-to-host copies.
            return Err(crate::errors::MXParamsTypeError::new_err(format!(
                "cannot convert an array on {} to numpy implicitly; use asnumpy() (a copy) \
                 or DLPack / __cuda_array_interface__ for device consumers",
                slf.get().inner.context()
            )));
        }
        let d = Self::dense(slf)?;
        let densified = !d.is(slf);
        if densified && copy == Some(false) {
            return Err(crate::errors::MXParamsValueError::new_err(
                "a sparse or device array cannot be viewed without a copy",
            ));
        }
        let mut v = numpy_view(py, d.as_any(), &d.get().inner, true)?;
        let mut copied = densified;
        if let Some(dt) = dtype.filter(|d| !d.is_none()) {
            let want = py.import("numpy")?.getattr("dtype")?.call1((dt,))?;
            if !v.getattr("dtype")?.eq(&want)? {
                if copy == Some(false) {
                    return Err(crate::errors::MXParamsValueError::new_err(format!(
                        "cannot convert {} to {want} without a copy",
                        slf.get().inner.dtype()
                    )));
                }
                v = v.call_method1("astype", (want,))?;
                copied = true;
            }
        }
        if copy == Some(true) && !copied {
            v = v.call_method0("copy")?;
        }
        Ok(v)
    }

    /// DLPack export: a capsule sharing this array's memory.
    ///
    /// `stream` follows the Python array API: for GPU arrays it is the
    /// consumer's stream (None or 1: legacy default, 2: per-thread default,
    /// -1: no synchronisation, another int: a stream handle). mxparams
    /// finishes every device operation before returning to Python, so the
    /// data is ready on any stream and nothing needs to be enqueued; 0, which
    /// the protocol calls ambiguous, is accepted for the same reason. Host
    /// arrays need no synchronisation.
    #[pyo3(signature = (*, stream = None, max_version = None, dl_device = None, copy = None))]
    fn __dlpack__<'py>(
        &self,
        py: Python<'py>,
        stream: Option<&Bound<'py, PyAny>>,
        max_version: Option<(u32, u32)>,
        dl_device: Option<(i32, i32)>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if let Some(s) = stream.filter(|s| !s.is_none()) {
            // Any stream is fine (see above); only the argument's type is checked.
            s.extract::<i64>().map_err(|_| {
                crate::errors::MXParamsTypeError::new_err(
                    "__dlpack__: stream must be an int or None",
                )
            })?;
        }
        let opts = dlpack::ExportOptions {
            versioned: max_version.is_some_and(|v| v.0 >= 1),
            copy,
            dl_device,
        };
        dlpack::export(py, &self.inner, &opts)
    }

    /// The CUDA array interface (version 3) of a GPU array; `AttributeError`
    /// on host arrays, so consumers fall back to other protocols. `stream` is
    /// None: the data is ready (every mxparams device operation has finished
    /// when it returns), so consumers need not synchronise.
    #[getter]
    fn __cuda_array_interface__<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        let a = &self.inner;
        if a.context().is_host() || !a.buffer().is_device() {
            return Err(crate::errors::MXParamsAttributeError::new_err(format!(
                "'NDArray' on {} has no __cuda_array_interface__ (only GPU arrays do)",
                a.context()
            )));
        }
        if a.stype() != SType::Default {
            return Err(crate::errors::MXParamsAttributeError::new_err(
                "sparse arrays have no __cuda_array_interface__; use tostype('default')",
            ));
        }
        let typestr = numpy_dtype(py, a.dtype())?.getattr("str")?;
        let d = pyo3::types::PyDict::new(py);
        d.set_item("shape", PyTuple::new(py, a.shape())?)?;
        d.set_item("typestr", typestr)?;
        // A zero-size array must report a null pointer (CAI v3).
        let ptr = if a.nbytes() == 0 {
            0
        } else {
            a.buffer().as_ptr() as usize
        };
        d.set_item("data", (ptr, false))?;
        d.set_item("strides", py.None())?;
        d.set_item("version", 3)?;
        d.set_item("stream", py.None())?;
        Ok(d)
    }

    /// `(device_type, device_id)` in DLPack's numbering.
    fn __dlpack_device__(&self) -> (i32, i32) {
        dlpack::device(self.inner.context())
    }

    /// Copies to a context (a new array) or into another array (returned).
    fn copyto<'py>(
        slf: &Bound<'py, Self>,
        other: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let me = slf.get();
        if let Ok(dst) = other.cast::<PyNDArray>() {
            let d = &dst.get().inner;
            if d.shape() != me.inner.shape() {
                return Err(crate::errors::MXParamsValueError::new_err(format!(
                    "copyto: shape mismatch, source {:?} vs destination {:?}",
                    me.inner.shape(),
                    d.shape()
                )));
            }
            if d.stype() != SType::Default {
                // MXNet copies dense into either sparse type, and a sparse
                // array only into its own type.
                let (s, t) = (me.inner.stype(), d.stype());
                if s != SType::Default && s != t {
                    return Err(MXParamsTypeError::new_err(format!(
                        "copyto does not support destination NDArray stype {t}"
                    )));
                }
                let (src, dst_a) = (me.inner.clone(), d.clone());
                py.detach(move || mxparams::sparse::assign(&dst_a, &src, false))
                    .py()?;
                return Ok(other.clone());
            }
            if d.dtype() == me.inner.dtype()
                && d.stype() == SType::Default
                && me.inner.stype() == SType::Default
            {
                let (src, dst_a) = (me.inner.clone(), d.clone());
                py.detach(move || dst_a.assign(&src)).py()?;
            } else {
                let dst_view = Self::view(dst)?;
                let src_view = Self::__array__(slf, None, None)?;
                let np = py.import("numpy")?;
                let kw = pyo3::types::PyDict::new(py);
                kw.set_item("casting", "unsafe")?;
                np.getattr("copyto")?
                    .call((dst_view, src_view), Some(&kw))?;
            }
            return Ok(other.clone());
        }
        let ctx = ctx_of(other).map_err(|_| {
            crate::errors::MXParamsTypeError::new_err(format!(
                "copyto does not support type {}",
                other.get_type()
            ))
        })?;
        let a = me.inner.clone();
        let out = py.detach(move || a.copy_to(ctx)).py()?;
        Ok(wrap(py, out)?.into_any())
    }

    /// The array on `context`: self if it is already there, else a copy.
    fn as_in_context<'py>(
        slf: &Bound<'py, Self>,
        context: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if ctx_of(context)? == slf.get().inner.context() {
            return Ok(slf.clone().into_any());
        }
        Self::copyto(slf, context)
    }

    /// The array converted to `dtype` (a copy; `copy=False` returns self when
    /// the dtype already matches).
    #[pyo3(signature = (dtype, copy = true))]
    fn astype<'py>(
        slf: &Bound<'py, Self>,
        dtype: &Bound<'py, PyAny>,
        copy: bool,
    ) -> PyResult<Bound<'py, PyNDArray>> {
        let py = slf.py();
        let me = &slf.get().inner;
        let target = to_dtype(dtype)?;
        if target == me.dtype() && !copy {
            return Ok(slf.clone());
        }
        if me.buffer().is_device() {
            let a = me.clone();
            let out = py
                .detach(move || mxparams::convert::cast(&a, target))
                .py()?;
            return wrap(py, out);
        }
        slf.get().host_check()?;
        let np_target = numpy_dtype(py, target)?;
        let v = numpy_view(py, slf.as_any(), me, false)?;
        let cast = v.call_method1("astype", (np_target,))?;
        let new_values = from_numpy(cast.cast::<numpy::PyUntypedArray>()?, me.context())?;
        let out = match me.sparse_parts() {
            None => new_values,
            Some(p) => NDArray::sparse(
                p.stype,
                me.shape().to_vec(),
                new_values,
                p.indices.clone(),
                p.indptr.clone(),
            )
            .py()?,
        };
        wrap(py, out)
    }

    /// Does nothing: host operations are synchronous (MXNet API compatibility).
    fn wait_to_read(&self) {}

    /// A new array object sharing this array's memory (no autograd here).
    fn detach(&self) -> PyNDArray {
        self.inner.clone().into()
    }

    /// Converts the storage type: to `'default'` (densify), from dense to a
    /// sparse type (the non-zero rows or elements, as MXNet), or to the
    /// array's own stype (a copy). row_sparse and csr do not convert into
    /// each other.
    fn tostype<'py>(slf: &Bound<'py, Self>, stype: &str) -> PyResult<Bound<'py, PyNDArray>> {
        let py = slf.py();
        let me = &slf.get().inner;
        let target = stype.parse::<SType>().py()?;
        if target == SType::Default {
            let a = me.clone();
            let d = py.detach(move || mxparams::sparse::to_dense(&a)).py()?;
            return wrap(py, d);
        }
        if me.stype() == SType::Default {
            // MXNet's cast_storage: the rows (csr: elements) holding a non-zero.
            let a = me.clone();
            let out = py
                .detach(move || mxparams::sparse::from_dense(&a, target, false))
                .py()?;
            return wrap(py, out);
        }
        if target == me.stype() {
            let a = me.clone();
            let out = py
                .detach(move || -> mxparams::Result<NDArray> {
                    let p = a
                        .sparse_parts()
                        .ok_or_else(|| mxparams::Error::invalid("not sparse"))?;
                    NDArray::sparse(
                        p.stype,
                        a.shape().to_vec(),
                        a.values().copy_to(a.context())?,
                        p.indices.copy_to(a.context())?,
                        p.indptr
                            .as_ref()
                            .map(|i| i.copy_to(a.context()))
                            .transpose()?,
                    )
                })
                .py()?;
            return wrap(py, out);
        }
        Err(crate::errors::MXParamsValueError::new_err(format!(
            "tostype from {} to {} is not supported",
            me.stype(),
            target
        )))
    }

    /// Element or slice read through numpy indexing; returns a new NDArray.
    fn __getitem__<'py>(
        slf: &Bound<'py, Self>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyNDArray>> {
        let py = slf.py();
        let v = Self::view(slf)?;
        let np = py.import("numpy")?;
        let got = np
            .getattr("ascontiguousarray")?
            .call1((v.get_item(key)?,))?;
        let a = from_numpy(
            got.cast::<numpy::PyUntypedArray>()?,
            slf.get().inner.context(),
        )?;
        wrap(py, a)
    }

    /// In-place write through numpy indexing: `arr[:] = 0`, `arr[1] = np_array`.
    fn __setitem__<'py>(
        slf: &Bound<'py, Self>,
        key: &Bound<'py, PyAny>,
        value: &Bound<'py, PyAny>,
    ) -> PyResult<()> {
        if slf.get().inner.stype() != SType::Default {
            return Self::set_sparse_item(slf, key, value);
        }
        if slf.get().inner.buffer().is_device() {
            return Self::set_device_item(slf, key, value);
        }
        let v = Self::view(slf)?;
        let value = match value.cast::<PyNDArray>() {
            Ok(src) => Self::__array__(src, None, None)?,
            Err(_) => value.clone(),
        };
        match v.set_item(key, &value) {
            Err(e) if e.is_instance_of::<PyValueError>(slf.py()) => {
                match squeezed_value(&v, key, &value)? {
                    Some(s) => v.set_item(key, s),
                    None => Err(e),
                }
            }
            other => other,
        }
    }

    fn __len__(&self) -> PyResult<usize> {
        self.inner
            .shape()
            .first()
            .copied()
            .ok_or_else(|| crate::errors::MXParamsTypeError::new_err("len() of unsized object"))
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let me = &slf.get().inner;
        let shape = me
            .shape()
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("x");
        match me.stype() {
            SType::Default => {
                let values = Self::asnumpy(slf)?.str()?;
                Ok(format!("\n{values}\n<NDArray {shape} @{}>", me.context()))
            }
            SType::RowSparse => Ok(format!("\n<RowSparseNDArray {shape} @{}>", me.context())),
            SType::Csr => Ok(format!("\n<CSRNDArray {shape} @{}>", me.context())),
        }
    }

    /// Pickles as one `.params` array record (MXNet's pickle payload) plus the context.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Reduced<'py>> {
        let py = slf.py();
        let me = slf.get().inner.clone();
        let ctx = me.context();
        let bytes = py
            .detach(move || {
                mxparams::format::record_to_bytes(&me, mxparams::format::RecordVersion::Auto)
            })
            .py()?;
        let f = py
            .import("mxparams._native")?
            .getattr("_unpickle_ndarray")?;
        Ok((
            f,
            (
                PyBytes::new(py, &bytes),
                ctx.device_type.name(),
                ctx.device_id,
            ),
        ))
    }
}

/// Rebuilds a pickled NDArray.
#[pyfunction]
pub fn _unpickle_ndarray(
    py: Python<'_>,
    data: &[u8],
    device_type: &str,
    device_id: u32,
) -> PyResult<PyNDArray> {
    let ctx = Context::new(device_type.parse().py()?, device_id);
    let a = py
        .detach(|| mxparams::format::array_from_record_bytes(data))
        .py()?;
    if ctx.is_host() {
        return Ok(a.with_context(ctx).into());
    }
    Ok(py.detach(move || a.copy_to(ctx)).py()?.into())
}
