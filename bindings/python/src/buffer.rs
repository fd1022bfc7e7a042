//! The buffer protocol (PEP 3118) for host arrays: `memoryview(arr)`,
//! `numpy.frombuffer(arr, ...)` and anything else that takes a buffer share
//! the array's memory. Memory-mapped arrays export read-only buffers; device
//! and sparse arrays export none (numpy then falls back to `__array__`).

use std::ffi::{c_int, CStr};

use pyo3::ffi;
use pyo3::prelude::*;

use mxparams::dtype::DType;
use mxparams::ndarray::{NDArray, SType};

/// The struct-module format of a dtype. Standard sizes (`q`, not `l`) so
/// that every platform reads the same widths; bfloat16 has no code.
fn format_of(dtype: DType) -> Option<&'static CStr> {
    Some(match dtype {
        DType::Float32 => c"f",
        DType::Float64 => c"d",
        DType::Float16 => c"e",
        DType::UInt8 => c"B",
        DType::Int8 => c"b",
        DType::Int32 => c"i",
        DType::Int64 => c"q",
        DType::Bool => c"?",
        DType::Int16 => c"h",
        DType::UInt16 => c"H",
        DType::UInt32 => c"I",
        DType::UInt64 => c"Q",
        DType::BFloat16 => return None,
    })
}

/// Shape and strides of an export, owned by the `Py_buffer` (through its
/// `internal` pointer) until the consumer releases it.
struct Layout {
    shape: Vec<ffi::Py_ssize_t>,
    strides: Vec<ffi::Py_ssize_t>,
}

fn refuse(msg: impl Into<String>) -> PyErr {
    crate::errors::MXParamsBufferError::new_err(msg.into())
}

fn ssize(n: usize) -> PyResult<ffi::Py_ssize_t> {
    ffi::Py_ssize_t::try_from(n).map_err(|_| refuse("array too large for a buffer"))
}

fn has(flags: c_int, wanted: c_int) -> bool {
    flags & wanted == wanted
}

/// Fills `view` to describe `array`, owned by `owner` (the Python NDArray,
/// whose storage the export keeps alive).
///
/// # Safety
/// `view` must be the `Py_buffer` CPython passed to `bf_getbuffer`.
pub unsafe fn fill(
    view: *mut ffi::Py_buffer,
    flags: c_int,
    array: &NDArray,
    owner: Bound<'_, PyAny>,
) -> PyResult<()> {
    if view.is_null() {
        return Err(refuse("no Py_buffer to fill"));
    }
    if array.stype() != SType::Default {
        return Err(refuse(
            "a sparse array has no single buffer; use tostype('default') first",
        ));
    }
    let buffer = array.buffer();
    if !array.context().is_host() || buffer.is_device() {
        return Err(refuse(format!(
            "an array on {} has no host buffer; use asnumpy() or DLPack",
            array.context()
        )));
    }
    let readonly = !buffer.is_writable();
    if readonly && has(flags, ffi::PyBUF_WRITABLE) {
        return Err(refuse(
            "the array is read-only (memory-mapped); copy it for a writable buffer",
        ));
    }
    let dtype = array.dtype();
    let format = if has(flags, ffi::PyBUF_FORMAT) {
        format_of(dtype)
            .ok_or_else(|| {
                refuse(format!(
                    "{dtype} has no buffer format code; use numpy.asarray (ml_dtypes) or DLPack"
                ))
            })?
            .as_ptr()
            .cast_mut()
    } else {
        std::ptr::null_mut()
    };
    let shape = array.shape();
    let non_trivial = shape.iter().filter(|&&d| d > 1).count();
    if has(flags, ffi::PyBUF_F_CONTIGUOUS) && non_trivial > 1 {
        return Err(refuse("the array is C-contiguous, not Fortran-contiguous"));
    }
    let itemsize = dtype.itemsize();
    let mut strides = vec![0; shape.len()];
    let mut step = itemsize;
    for (s, &d) in strides.iter_mut().zip(shape).rev() {
        *s = ssize(step)?;
        step = step.saturating_mul(d);
    }
    let layout = Box::new(Layout {
        shape: shape.iter().map(|&d| ssize(d)).collect::<PyResult<_>>()?,
        strides,
    });
    let ndim = c_int::try_from(shape.len()).map_err(|_| refuse("too many dimensions"))?;
    // SAFETY: `view` is CPython's to fill (caller contract). The data pointer
    // covers `nbytes` host bytes that live as long as `owner`, whose reference
    // the view holds until release; shape and strides live in `layout`,
    // reclaimed in `release`; the format strings are static.
    unsafe {
        let v = &mut *view;
        v.buf = buffer.as_ptr().cast_mut().cast();
        v.len = ssize(array.nbytes())?;
        v.readonly = c_int::from(readonly);
        v.itemsize = ssize(itemsize)?;
        v.format = format;
        v.ndim = ndim;
        if has(flags, ffi::PyBUF_ND) {
            v.shape = layout.shape.as_ptr().cast_mut();
        } else {
            v.shape = std::ptr::null_mut();
        }
        if has(flags, ffi::PyBUF_STRIDES) {
            v.strides = layout.strides.as_ptr().cast_mut();
        } else {
            v.strides = std::ptr::null_mut();
        }
        v.suboffsets = std::ptr::null_mut();
        v.internal = Box::into_raw(layout).cast();
        v.obj = owner.into_ptr();
    }
    Ok(())
}

/// Frees what [`fill`] allocated for `view`.
///
/// # Safety
/// `view` must be a `Py_buffer` that [`fill`] filled successfully.
pub unsafe fn release(view: *mut ffi::Py_buffer) {
    if view.is_null() {
        return;
    }
    // SAFETY: `internal` holds the `Layout` box `fill` leaked, released once.
    unsafe {
        let internal = std::mem::replace(&mut (*view).internal, std::ptr::null_mut());
        if !internal.is_null() {
            drop(Box::from_raw(internal.cast::<Layout>()));
        }
    }
}
