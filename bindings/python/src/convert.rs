//! Conversions between core types and numpy: dtype-likes to `DType`, `DType`
//! to numpy dtypes (bfloat16 is `ml_dtypes.bfloat16`), zero-copy numpy views of
//! host buffers, and copies of numpy arrays into fresh host buffers.
//!
//! Views are built with numpy's own `PyArray_NewFromDescr` rather than
//! rust-numpy's typed constructors because the element type is only known at
//! run time and bfloat16 has no Rust `Element` type.

use std::os::raw::c_int;

use numpy::npyffi::{self, npy_intp, NpyTypes, PY_ARRAY_API};
use numpy::{PyArrayDescr, PyArrayDescrMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyString, PyTuple};

use mxparams::context::Context;
use mxparams::dtype::{DType, ALL_DTYPES};
use mxparams::ndarray::NDArray;
use mxparams::Buffer;

use super::errors::IntoPyResult;

static DESCRS: PyOnceLock<Vec<Option<Py<PyArrayDescr>>>> = PyOnceLock::new();
static BFLOAT16: PyOnceLock<Py<PyArrayDescr>> = PyOnceLock::new();

/// numpy's own dtypes, indexed by flag; `None` for bfloat16, which comes from
/// ml_dtypes: importing it takes most of a second, so it happens on the first
/// bfloat16 array, not on the first array of any dtype.
fn descrs(py: Python<'_>) -> PyResult<&Vec<Option<Py<PyArrayDescr>>>> {
    DESCRS.get_or_try_init(py, || {
        ALL_DTYPES
            .iter()
            .map(|d| {
                if *d == DType::BFloat16 {
                    return Ok(None);
                }
                Ok(Some(PyArrayDescr::new(py, d.name())?.unbind()))
            })
            .collect()
    })
}

/// The numpy dtype of `dtype` (bfloat16: `ml_dtypes.bfloat16`).
pub fn numpy_dtype(py: Python<'_>, dtype: DType) -> PyResult<Bound<'_, PyArrayDescr>> {
    if dtype == DType::BFloat16 {
        let bf16 = BFLOAT16.get_or_try_init(py, || {
            let scalar = py.import("ml_dtypes")?.getattr("bfloat16")?;
            Ok::<_, PyErr>(PyArrayDescr::new(py, scalar)?.unbind())
        })?;
        return Ok(bf16.bind(py).clone());
    }
    let all = descrs(py)?;
    let idx = usize::try_from(dtype.flag()).unwrap_or(0);
    all.get(idx)
        .and_then(Option::as_ref)
        .map(|d| d.bind(py).clone())
        .ok_or_else(|| {
            crate::errors::MXParamsValueError::new_err(format!("no numpy dtype for {dtype}"))
        })
}

/// Parses a dtype-like (a name, a numpy dtype or scalar type, a Python type,
/// `ml_dtypes.bfloat16`, or MXNet 1.x's structured bfloat16 dtype).
pub fn to_dtype(obj: &Bound<'_, PyAny>) -> PyResult<DType> {
    let py = obj.py();
    if let Ok(s) = obj.cast::<PyString>() {
        if let Ok(d) = s.to_cow()?.parse::<DType>() {
            return Ok(d);
        }
    }
    let descr = PyArrayDescr::new(py, obj).map_err(|_| {
        crate::errors::MXParamsTypeError::new_err(format!("data type {obj} not understood"))
    })?;
    // MXNet 1.x spells bfloat16 as the structured dtype [('bfloat16', '<u2')].
    let names = descr.getattr("names")?;
    if !names.is_none() {
        let names = names.cast_into::<PyTuple>()?;
        if names.len() == 1 && names.get_item(0)?.extract::<String>()? == "bfloat16" {
            return Ok(DType::BFloat16);
        }
        return Err(crate::errors::MXParamsTypeError::new_err(format!(
            "unsupported dtype {descr}"
        )));
    }
    if descr.byteorder() == b'>' && descr.itemsize() > 1 {
        return Err(crate::errors::MXParamsValueError::new_err(format!(
            "big-endian dtype {descr} is not supported"
        )));
    }
    let name: String = descr.getattr("name")?.extract()?;
    name.parse::<DType>().map_err(|_| {
        crate::errors::MXParamsTypeError::new_err(format!("unsupported dtype {descr}"))
    })
}

/// A numpy array over a dense `array`'s bytes (for a sparse array: its values
/// block), with `owner` as its base object.
///
/// `owner` must keep `array`'s buffer alive for as long as it lives (it is a
/// `PyNDArray` holding a clone of the `NDArray`). Read-only buffers give
/// read-only arrays; numpy computes the ALIGNED flag itself, so unaligned
/// memory-mapped data is handled by numpy's unaligned code paths.
pub fn numpy_view<'py>(
    py: Python<'py>,
    owner: &Bound<'py, PyAny>,
    array: &NDArray,
    writable: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let array = &array.values();
    let buffer = array.buffer();
    let mut dims = array
        .shape()
        .iter()
        .map(|&d| npy_intp::try_from(d))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| {
            crate::errors::MXParamsValueError::new_err("array dimension too large for numpy")
        })?;
    let ndim = c_int::try_from(dims.len())
        .map_err(|_| crate::errors::MXParamsValueError::new_err("too many dimensions for numpy"))?;
    let descr = numpy_dtype(py, array.dtype())?;
    let mut flags = npyffi::NPY_ARRAY_C_CONTIGUOUS;
    let writable = writable && buffer.is_writable();
    if writable {
        flags |= npyffi::NPY_ARRAY_WRITEABLE;
    }
    // SAFETY: the data pointer covers exactly `prod(dims) * itemsize` bytes
    // (an invariant of `NDArray`), is C-contiguous, and stays valid while the
    // base object (`owner`, which holds the buffer) lives. The descriptor
    // reference is stolen by `PyArray_NewFromDescr`, hence `into_dtype_ptr`.
    // Writable views are only made for owned host memory.
    unsafe {
        let subtype = PY_ARRAY_API.get_type_object(py, NpyTypes::PyArray_Type);
        let ptr = PY_ARRAY_API.PyArray_NewFromDescr(
            py,
            subtype,
            descr.into_dtype_ptr(),
            ndim,
            dims.as_mut_ptr(),
            std::ptr::null_mut(),
            buffer.as_ptr() as *mut std::ffi::c_void,
            flags,
            std::ptr::null_mut(),
        );
        let arr = Bound::from_owned_ptr_or_err(py, ptr)?;
        // SetBaseObject steals one reference to the base.
        let base = owner.clone().into_ptr();
        if PY_ARRAY_API.PyArray_SetBaseObject(py, arr.as_ptr().cast(), base) != 0 {
            return Err(PyErr::fetch(py));
        }
        Ok(arr)
    }
}

/// A new dense host array holding a copy of a C-contiguous numpy array.
pub fn from_numpy(array: &Bound<'_, PyUntypedArray>, context: Context) -> PyResult<NDArray> {
    let dtype = to_dtype(array.dtype().as_any())?;
    if !array.is_c_contiguous() {
        return Err(crate::errors::MXParamsValueError::new_err(
            "array must be C-contiguous",
        ));
    }
    let shape = array.shape().to_vec();
    let nbytes = mxparams::ndarray::checked_size(&shape)
        .and_then(|n| n.checked_mul(dtype.itemsize()))
        .ok_or_else(|| crate::errors::MXParamsValueError::new_err("array too large"))?;
    // The copy keeps the GIL (big copies still spread over the rayon pool,
    // which needs no GIL): with it released, another Python thread could
    // resize or free the array (`resize(refcheck=False)`) under the copy.
    let buffer = if nbytes == 0 {
        Buffer::zeroed(0)
    } else {
        // SAFETY: a C-contiguous numpy array's data pointer covers `nbytes`
        // bytes; `array` is borrowed and the GIL held for the whole copy, so
        // no Python code can free, resize or write the memory meanwhile.
        let src = unsafe {
            std::slice::from_raw_parts((*array.as_array_ptr()).data as *const u8, nbytes)
        };
        Buffer::copy_from(src)
    };
    NDArray::from_buffer(buffer.py()?, shape, dtype, context).py()
}
