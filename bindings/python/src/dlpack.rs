//! DLPack export (`__dlpack__` / `__dlpack_device__`): the C structs of the
//! DLPack ABI (0.x `DLManagedTensor` and 1.x `DLManagedTensorVersioned`) and
//! the capsules that carry them to consumers such as `numpy.from_dlpack` and
//! `torch.from_dlpack`.
//!
//! The exported tensor borrows the array's storage: the manager context owns a
//! clone of the `NDArray` (an `Arc` on its buffer), so the memory lives until
//! the consumer calls the deleter, which needs no GIL.
//!
//! Memory-mapped data (read-only, possibly unaligned) is never copied
//! silently: without a `copy` argument its export raises a `BufferError`
//! saying what to pass. `copy=True` gives a private writable copy (aligned);
//! `copy=False` gives a DLPack 1.x consumer the zero-copy view with the
//! read-only flag set (numpy honours it; PyTorch 2.x ignores it, so a write
//! through such a tensor faults), and a 0.x consumer, which has no such flag,
//! a `BufferError`. Sparse arrays are exported as dense copies, and unaligned
//! data is only ever exported copied, since DLPack consumers assume natural
//! alignment.
//!
//! The structs are a few `#[repr(C)]` definitions fixed by the DLPack ABI;
//! writing them here rather than taking a DLPack crate keeps both ABI versions,
//! the read-only flag and a deleter that owns an `NDArray` clone under our
//! control, without tying the export to another crate's tensor type.

use std::ffi::{c_void, CStr};

use pyo3::ffi;
use pyo3::prelude::*;

use mxparams::context::{Context, DeviceType};
use mxparams::dtype::DType;
use mxparams::ndarray::{NDArray, SType};

use super::errors::IntoPyResult;

const NAME_LEGACY: &CStr = c"dltensor";
const NAME_VERSIONED: &CStr = c"dltensor_versioned";

/// The DLPack version this module implements (1.1).
const DLPACK_MAJOR: u32 = 1;
const DLPACK_MINOR: u32 = 1;

const FLAG_READ_ONLY: u64 = 1 << 0;
const FLAG_IS_COPIED: u64 = 1 << 1;

/// `DLDeviceType` values used here.
const KDL_CPU: i32 = 1;
const KDL_CUDA: i32 = 2;

#[repr(C)]
#[derive(Clone, Copy)]
struct DLDevice {
    device_type: i32,
    device_id: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct DLDataType {
    code: u8,
    bits: u8,
    lanes: u16,
}

#[repr(C)]
struct DLTensor {
    data: *mut c_void,
    device: DLDevice,
    ndim: i32,
    dtype: DLDataType,
    shape: *mut i64,
    strides: *mut i64,
    byte_offset: u64,
}

#[repr(C)]
struct DLManagedTensor {
    dl_tensor: DLTensor,
    manager_ctx: *mut c_void,
    deleter: Option<unsafe extern "C" fn(*mut DLManagedTensor)>,
}

#[repr(C)]
struct DLPackVersion {
    major: u32,
    minor: u32,
}

#[repr(C)]
struct DLManagedTensorVersioned {
    version: DLPackVersion,
    manager_ctx: *mut c_void,
    deleter: Option<unsafe extern "C" fn(*mut DLManagedTensorVersioned)>,
    flags: u64,
    dl_tensor: DLTensor,
}

/// What the manager context owns: the storage and the shape/strides arrays
/// that the `DLTensor` points into.
struct Holder {
    _array: NDArray,
    shape: Vec<i64>,
    strides: Vec<i64>,
}

fn dl_dtype(dtype: DType) -> DLDataType {
    // DLDataTypeCode: 0 int, 1 uint, 2 float, 4 bfloat, 6 bool.
    let code = match dtype {
        DType::Int8 | DType::Int16 | DType::Int32 | DType::Int64 => 0,
        DType::UInt8 | DType::UInt16 | DType::UInt32 | DType::UInt64 => 1,
        DType::Float16 | DType::Float32 | DType::Float64 => 2,
        DType::BFloat16 => 4,
        DType::Bool => 6,
    };
    DLDataType {
        code,
        // itemsize is at most 8, so bits fit a byte.
        bits: (dtype.itemsize() * 8) as u8,
        lanes: 1,
    }
}

/// `(device_type, device_id)` as `__dlpack_device__` reports it. Host
/// contexts are plain host memory in this build, hence kDLCPU with id 0.
pub fn device(ctx: Context) -> (i32, i32) {
    match ctx.device_type {
        DeviceType::Gpu => (KDL_CUDA, i32::try_from(ctx.device_id).unwrap_or(i32::MAX)),
        _ => (KDL_CPU, 0),
    }
}

/// Options of `__dlpack__`, already parsed.
pub struct ExportOptions {
    /// Whether the consumer accepts DLPack >= 1.0 (the versioned capsule).
    pub versioned: bool,
    /// The Array API `copy` argument.
    pub copy: Option<bool>,
    /// The device the consumer asked for, if any.
    pub dl_device: Option<(i32, i32)>,
}

fn make_holder(array: NDArray) -> PyResult<Box<Holder>> {
    let shape = array
        .shape()
        .iter()
        .map(|&d| i64::try_from(d))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| {
            crate::errors::MXParamsValueError::new_err("dimension too large for DLPack")
        })?;
    let mut strides = vec![1i64; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1].saturating_mul(shape[i + 1].max(1));
    }
    Ok(Box::new(Holder {
        _array: array,
        shape,
        strides,
    }))
}

fn tensor_of(holder: &mut Holder, array_ptr: *mut c_void, dtype: DType, dev: DLDevice) -> DLTensor {
    DLTensor {
        data: array_ptr,
        device: dev,
        // ndim is bounded by the format and numpy (<= 64).
        ndim: i32::try_from(holder.shape.len()).unwrap_or(i32::MAX),
        dtype: dl_dtype(dtype),
        shape: holder.shape.as_mut_ptr(),
        strides: holder.strides.as_mut_ptr(),
        byte_offset: 0,
    }
}

unsafe extern "C" fn delete_legacy(t: *mut DLManagedTensor) {
    if t.is_null() {
        return;
    }
    // SAFETY: `t` and its manager context were created by `Box::into_raw` in
    // `export`, and DLPack calls the deleter exactly once.
    unsafe {
        let t = Box::from_raw(t);
        drop(Box::from_raw(t.manager_ctx.cast::<Holder>()));
    }
}

unsafe extern "C" fn delete_versioned(t: *mut DLManagedTensorVersioned) {
    if t.is_null() {
        return;
    }
    // SAFETY: as in `delete_legacy`.
    unsafe {
        let t = Box::from_raw(t);
        drop(Box::from_raw(t.manager_ctx.cast::<Holder>()));
    }
}

/// Frees an unconsumed capsule's tensor. A consumer renames the capsule
/// ("used_dltensor") and takes over the deleter, so then nothing is done.
unsafe extern "C" fn capsule_legacy(capsule: *mut ffi::PyObject) {
    // SAFETY: IsValid never raises; a valid capsule holds the pointer `export` made.
    unsafe {
        if ffi::PyCapsule_IsValid(capsule, NAME_LEGACY.as_ptr()) == 1 {
            let p =
                ffi::PyCapsule_GetPointer(capsule, NAME_LEGACY.as_ptr()).cast::<DLManagedTensor>();
            if let Some(del) = p.as_ref().and_then(|t| t.deleter) {
                del(p);
            }
        }
    }
}

unsafe extern "C" fn capsule_versioned(capsule: *mut ffi::PyObject) {
    // SAFETY: as in `capsule_legacy`.
    unsafe {
        if ffi::PyCapsule_IsValid(capsule, NAME_VERSIONED.as_ptr()) == 1 {
            let p = ffi::PyCapsule_GetPointer(capsule, NAME_VERSIONED.as_ptr())
                .cast::<DLManagedTensorVersioned>();
            if let Some(del) = p.as_ref().and_then(|t| t.deleter) {
                del(p);
            }
        }
    }
}

/// Exports `array` as a DLPack capsule.
pub fn export<'py>(
    py: Python<'py>,
    array: &NDArray,
    opts: &ExportOptions,
) -> PyResult<Bound<'py, PyAny>> {
    let dev = device(array.context());
    if let Some(want) = opts.dl_device {
        // A GPU array asked for on the host: the array API allows a copy
        // unless the consumer forbids one.
        let to_host =
            want == (KDL_CPU, 0) && !array.context().is_host() && opts.copy != Some(false);
        if to_host {
            let a = array.clone();
            let host = py
                .detach(move || mxparams::sparse::to_dense(&a.copy_to(Context::cpu(0))?))
                .py()?;
            let opts = ExportOptions {
                versioned: opts.versioned,
                copy: Some(false),
                dl_device: None,
            };
            return export_inner(py, &host, &opts, true);
        }
        if want != dev {
            return Err(crate::errors::MXParamsBufferError::new_err(format!(
                "cannot export an array on {} to DLPack device {want:?} (it lives on {dev:?})",
                array.context()
            )));
        }
    }
    export_inner(py, array, opts, false)
}

/// The export proper; `already_copied` marks a copy made for the consumer.
fn export_inner<'py>(
    py: Python<'py>,
    array: &NDArray,
    opts: &ExportOptions,
    already_copied: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let dev = device(array.context());
    let read_only = !array.buffer().is_writable();
    let must_copy =
        array.stype() != SType::Default || !array.is_aligned() || (read_only && !opts.versioned);
    if must_copy && opts.copy == Some(false) {
        return Err(crate::errors::MXParamsBufferError::new_err(
            "this array cannot be exported without a copy (sparse, unaligned, or read-only \
             memory for a DLPack 0.x consumer)",
        ));
    }
    // Memory-mapped data is never copied behind the caller's back: sharing it
    // with a consumer that ignores the read-only flag (torch) would fault on
    // the first write, so the caller chooses.
    if opts.copy.is_none() && (read_only || !array.is_aligned()) && !already_copied {
        return Err(crate::errors::MXParamsBufferError::new_err(
            "this array is memory-mapped (read-only or unaligned): pass copy=True for a \
             writable copy (torch.from_dlpack(a, copy=True), np.from_dlpack(a, copy=True)), \
             or copy=False to share the read-only memory with a DLPack 1.x consumer that \
             honours the read-only flag (numpy); or load without mmap",
        ));
    }
    let copied = must_copy || opts.copy == Some(true);
    let exported = if copied && !already_copied {
        let a = array.clone();
        // to_dense: a sparse array leaves as its dense values.
        py.detach(move || mxparams::sparse::to_dense(&a)).py()?
    } else {
        array.clone()
    };
    let read_only = !exported.buffer().is_writable();
    let data = exported.buffer().as_ptr() as *mut c_void;
    let dtype = exported.dtype();
    let dl_dev = DLDevice {
        device_type: dev.0,
        device_id: dev.1,
    };
    let mut holder = make_holder(exported)?;
    let tensor = tensor_of(&mut holder, data, dtype, dl_dev);
    let ctx = Box::into_raw(holder).cast::<c_void>();
    // SAFETY: the boxes are handed to the capsule, whose destructor (or the
    // consumer, after renaming it) calls the deleter exactly once.
    let capsule = unsafe {
        if opts.versioned {
            let mut flags = 0;
            if read_only {
                flags |= FLAG_READ_ONLY;
            }
            if copied || already_copied {
                flags |= FLAG_IS_COPIED;
            }
            let t = Box::into_raw(Box::new(DLManagedTensorVersioned {
                version: DLPackVersion {
                    major: DLPACK_MAJOR,
                    minor: DLPACK_MINOR,
                },
                manager_ctx: ctx,
                deleter: Some(delete_versioned),
                flags,
                dl_tensor: tensor,
            }));
            let cap =
                ffi::PyCapsule_New(t.cast(), NAME_VERSIONED.as_ptr(), Some(capsule_versioned));
            if cap.is_null() {
                delete_versioned(t);
            }
            cap
        } else {
            let t = Box::into_raw(Box::new(DLManagedTensor {
                dl_tensor: tensor,
                manager_ctx: ctx,
                deleter: Some(delete_legacy),
            }));
            let cap = ffi::PyCapsule_New(t.cast(), NAME_LEGACY.as_ptr(), Some(capsule_legacy));
            if cap.is_null() {
                delete_legacy(t);
            }
            cap
        }
    };
    // SAFETY: PyCapsule_New returns a new reference or NULL with an exception set.
    unsafe { Bound::from_owned_ptr_or_err(py, capsule) }
}
