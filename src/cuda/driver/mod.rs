//! The CUDA backend (feature `cuda`): every cudarc call lives in this module
//! and its children. It uses cudarc's thin `result`/`sys` layers with the
//! driver loaded at run time, each device's primary context (retained on
//! first use, never released: contexts live as long as the process), and the
//! legacy default stream for synchronous operations, so every function has
//! finished its device work when it returns.
//!
//! `memory`: device and pinned allocations, slabs and the zeroed arena;
//! `ring`: the staging ring's settings, buffers and stream; `upload` and
//! `download`: the batched transfers through it.

use std::ffi::c_void;
use std::panic::catch_unwind;
use std::sync::OnceLock;

use cudarc::driver::result::{self, DriverError};
use cudarc::driver::sys;

use crate::error::{Error, Result};

mod download;
mod memory;
mod ring;
mod upload;

pub(in crate::cuda) use download::download_batch;
pub(in crate::cuda) use memory::{alloc, alloc_pinned, alloc_slab, with_zeroed_arena};
pub use memory::{DeviceAlloc, PinnedAlloc};
pub(in crate::cuda) use upload::upload_batch;

/// Every libcuda symbol this module (through cudarc) can call. The probe
/// resolves them all up front: cudarc panics on a missing symbol at first use.
const SYMBOLS: &[&str] = &[
    "cuInit",
    "cuGetErrorName",
    "cuGetErrorString",
    "cuDeviceGetCount",
    "cuDeviceGet",
    "cuDeviceGetName",
    "cuDevicePrimaryCtxRetain",
    "cuCtxSetCurrent",
    "cuCtxSynchronize",
    "cuMemAlloc_v2",
    "cuMemFree_v2",
    "cuMemHostAlloc",
    "cuMemFreeHost",
    "cuMemcpyHtoD_v2",
    "cuMemcpyDtoH_v2",
    "cuMemcpyDtoD_v2",
    "cuMemcpyHtoDAsync_v2",
    "cuMemcpyDtoHAsync_v2",
    "cuMemcpyPeerAsync",
    "cuMemsetD8_v2",
    "cuStreamCreate",
    "cuStreamSynchronize",
    "cuStreamDestroy_v2",
    "cuEventCreate",
    "cuEventRecord",
    "cuEventSynchronize",
    "cuEventDestroy_v2",
];

/// A context handle; the driver's handles may be used from any thread.
#[derive(Clone, Copy)]
struct CtxHandle(sys::CUcontext);
// SAFETY: CUDA contexts are process-wide driver objects usable from any thread
// (each thread makes it current before use).
unsafe impl Send for CtxHandle {}
// SAFETY: see above; the handle is only read.
unsafe impl Sync for CtxHandle {}

struct Device {
    dev: sys::CUdevice,
    ctx: OnceLock<std::result::Result<CtxHandle, String>>,
}

struct Driver {
    devices: Vec<Device>,
}

static DRIVER: OnceLock<std::result::Result<Driver, String>> = OnceLock::new();

fn describe(e: DriverError) -> String {
    let name = e.error_name().map_or_else(
        |_| format!("{:?}", e.0),
        |n| n.to_string_lossy().into_owned(),
    );
    match e.error_string() {
        Ok(s) => format!("{name}: {}", s.to_string_lossy()),
        Err(_) => name,
    }
}

fn cuda(what: &str, e: DriverError) -> Error {
    Error::Cuda(format!("{what} failed: {}", describe(e)))
}

fn probe() -> std::result::Result<Driver, String> {
    // SAFETY: loading libcuda and resolving symbols has no preconditions; the
    // resolved symbols are only checked for presence here.
    let present = unsafe { sys::is_culib_present() };
    if !present {
        return Err(
            "the CUDA driver library (libcuda) could not be loaded: no NVIDIA driver \
                    is installed or it is not on the library path"
                .into(),
        );
    }
    // SAFETY: the library was found above, so `culib` does not panic.
    let lib = unsafe { sys::culib() };
    for name in SYMBOLS {
        // SAFETY: only the symbol's presence is checked; it is not called.
        if unsafe { lib.get::<*const c_void>(name.as_bytes()) }.is_err() {
            return Err(format!(
                "the CUDA driver library lacks the symbol {name} (driver too old)"
            ));
        }
    }
    result::init().map_err(|e| format!("cuInit failed: {}", describe(e)))?;
    let count = result::device::get_count()
        .map_err(|e| format!("cuDeviceGetCount failed: {}", describe(e)))?;
    let mut devices = Vec::new();
    for i in 0..count.max(0) {
        let dev = result::device::get(i)
            .map_err(|e| format!("cuDeviceGet({i}) failed: {}", describe(e)))?;
        devices.push(Device {
            dev,
            ctx: OnceLock::new(),
        });
    }
    if devices.is_empty() {
        return Err("the CUDA driver reports no devices".into());
    }
    Ok(Driver { devices })
}

fn driver() -> std::result::Result<&'static Driver, &'static str> {
    DRIVER
        .get_or_init(|| {
            catch_unwind(probe).unwrap_or_else(|panic| {
                let msg = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("unknown cause");
                Err(format!("probing the CUDA driver failed: {msg}"))
            })
        })
        .as_ref()
        .map_err(String::as_str)
}

pub(in crate::cuda) fn num_gpus() -> usize {
    driver().map_or(0, |d| d.devices.len())
}

pub(in crate::cuda) fn unavailable_reason() -> Option<String> {
    driver().err().map(str::to_string)
}

/// Makes `gpu(device)`'s primary context current on this thread.
fn activate(device: u32) -> Result<()> {
    let drv = driver().map_err(|e| Error::CudaUnavailable(e.to_string()))?;
    let d = drv
        .devices
        .get(device as usize)
        .ok_or_else(|| Error::CudaUnavailable(format!("gpu({device}) does not exist")))?;
    let ctx = d
        .ctx
        .get_or_init(|| {
            // SAFETY: `dev` came from cuDeviceGet during the probe.
            unsafe { result::primary_ctx::retain(d.dev) }
                .map(CtxHandle)
                .map_err(|e| {
                    format!(
                        "creating the context of gpu({device}) failed: {}",
                        describe(e)
                    )
                })
        })
        .as_ref()
        .map_err(|e| Error::Cuda(e.clone()))?;
    // SAFETY: the context is a retained primary context, never released.
    unsafe { result::ctx::set_current(ctx.0) }.map_err(|e| cuda("cuCtxSetCurrent", e))
}

fn context_of(device: u32) -> Result<sys::CUcontext> {
    activate(device)?;
    let drv = driver().map_err(|e| Error::CudaUnavailable(e.to_string()))?;
    match drv.devices.get(device as usize).and_then(|d| d.ctx.get()) {
        Some(Ok(c)) => Ok(c.0),
        _ => Err(Error::CudaUnavailable(format!(
            "gpu({device}) has no context"
        ))),
    }
}

/// Waits for the current context's legacy default stream.
fn sync_default_stream(what: &str) -> Result<()> {
    // SAFETY: the null stream is always valid in the current context.
    unsafe { result::stream::synchronize(std::ptr::null_mut()) }.map_err(|e| cuda(what, e))
}

pub(in crate::cuda) fn device_name(device: u32) -> Result<String> {
    let drv = driver().map_err(|e| Error::CudaUnavailable(e.to_string()))?;
    let d = drv
        .devices
        .get(device as usize)
        .ok_or_else(|| Error::CudaUnavailable(format!("gpu({device}) does not exist")))?;
    result::device::get_name(d.dev).map_err(|e| cuda("cuDeviceGetName", e))
}

fn check_len(what: &str, a: usize, b: usize) -> Result<()> {
    if a == b {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{what}: {b} bytes do not fit {a} bytes"
        )))
    }
}

pub(in crate::cuda) fn htod(dst: &DeviceAlloc, src: &[u8]) -> Result<()> {
    check_len("host-to-device copy", dst.len, src.len())?;
    if src.is_empty() {
        return Ok(());
    }
    activate(dst.device)?;
    // SAFETY: `dst` is a live allocation of exactly `src.len()` bytes.
    unsafe { result::memcpy_htod_sync(dst.ptr, src) }.map_err(|e| cuda("cuMemcpyHtoD", e))?;
    sync_default_stream("host-to-device copy")
}

pub(in crate::cuda) fn dtoh(dst: &mut [u8], src: &DeviceAlloc) -> Result<()> {
    check_len("device-to-host copy", src.len, dst.len())?;
    if dst.is_empty() {
        return Ok(());
    }
    activate(src.device)?;
    // SAFETY: `src` is a live allocation of exactly `dst.len()` bytes.
    unsafe { result::memcpy_dtoh_sync(dst, src.ptr) }.map_err(|e| cuda("cuMemcpyDtoH", e))
}

pub(in crate::cuda) fn dtod(dst: &DeviceAlloc, src: &DeviceAlloc) -> Result<()> {
    check_len("device-to-device copy", dst.len, src.len)?;
    if dst.len == 0 || dst.ptr == src.ptr {
        return Ok(());
    }
    if dst.device == src.device {
        activate(dst.device)?;
        // SAFETY: both are live allocations of `len` bytes on this device.
        unsafe { result::memcpy_dtod_sync(dst.ptr, src.ptr, dst.len) }
            .map_err(|e| cuda("cuMemcpyDtoD", e))?;
    } else {
        let src_ctx = context_of(src.device)?;
        let dst_ctx = context_of(dst.device)?;
        // SAFETY: both are live allocations of `len` bytes in their contexts;
        // the copy is ordered on the destination's legacy stream, synchronised below.
        unsafe {
            result::memcpy_peer_async(
                dst_ctx,
                dst.ptr,
                src_ctx,
                src.ptr,
                dst.len,
                std::ptr::null_mut(),
            )
        }
        .map_err(|e| cuda("cuMemcpyPeer", e))?;
    }
    sync_default_stream("device-to-device copy")
}

pub(in crate::cuda) fn memset_zero(dst: &DeviceAlloc) -> Result<()> {
    if dst.len == 0 {
        return Ok(());
    }
    activate(dst.device)?;
    // SAFETY: `dst` is a live allocation of `len` bytes.
    unsafe { result::memset_d8_sync(dst.ptr, 0, dst.len) }.map_err(|e| cuda("cuMemsetD8", e))?;
    sync_default_stream("device memset")
}
