//! CUDA devices. The same API exists with and without the `cuda` feature so
//! that nothing else needs `#[cfg]`: `driver/` (feature on) makes every
//! cudarc call; `stub.rs` (feature off) has uninhabited allocation types and
//! answers every request with `CudaUnavailable`.
//!
//! With the feature, libcuda is loaded at run time. The first use probes it
//! once (under `catch_unwind`, because cudarc panics when the library or a
//! symbol is missing) and caches the outcome: without a usable driver
//! `num_gpus()` is 0 and GPU requests fail with `CudaUnavailable` naming why.
//!
//! Synchronisation: every function here has finished its device work when it
//! returns (copies and memsets run on the legacy default stream, which is then
//! synchronised). Consumers that take device pointers (DLPack,
//! `__cuda_array_interface__`) may therefore use them on any stream at once.

use crate::context::Context;
use crate::error::{Error, Result};

#[cfg(feature = "cuda")]
mod driver;
#[cfg(feature = "cuda")]
use driver as backend;

#[cfg(not(feature = "cuda"))]
mod stub;
#[cfg(not(feature = "cuda"))]
use stub as backend;

pub use backend::{DeviceAlloc, PinnedAlloc};

/// Host bytes to upload. For a range of a memory-mapped file, `file` gives
/// the file and the range's offset in it: the upload then reads it with
/// positioned reads (the kernel copies from the page cache), which skips
/// mapping every page into this process and unmapping it afterwards.
#[derive(Clone, Copy)]
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
pub struct HostRange<'a> {
    /// The bytes (for a mapped file, the mapped range).
    pub bytes: &'a [u8],
    /// The file behind `bytes` and the offset of `bytes[0]` in it.
    pub file: Option<(&'a std::fs::File, u64)>,
}

#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
impl<'a> HostRange<'a> {
    /// Plain host bytes.
    #[cfg(test)]
    pub fn new(bytes: &'a [u8]) -> Self {
        HostRange { bytes, file: None }
    }

    /// The `len` bytes from `off`.
    pub fn sub(&self, off: usize, len: usize) -> HostRange<'a> {
        HostRange {
            bytes: &self.bytes[off..off + len],
            file: self.file.map(|(f, at)| (f, at + off as u64)),
        }
    }

    /// Copies the bytes into `dst` (same length); `pread` reads them from the
    /// file where there is one.
    pub fn read_into(&self, dst: &mut [u8], pread: bool) -> Result<()> {
        #[cfg(unix)]
        if let (true, Some((file, at))) = (pread, self.file) {
            use std::os::unix::fs::FileExt;
            return file.read_exact_at(dst, at).map_err(Error::from);
        }
        let _ = pread;
        dst.copy_from_slice(self.bytes);
        Ok(())
    }
}

/// Number of CUDA devices usable by this process (0 without the feature or a driver).
pub fn num_gpus() -> usize {
    backend::num_gpus()
}

/// Why CUDA cannot be used, or `None` when a driver with at least one device was found.
pub fn unavailable_reason() -> Option<String> {
    backend::unavailable_reason()
}

/// The error for a request that needs a GPU context this build cannot serve.
pub fn unavailable<T>(context: Context) -> Result<T> {
    let why = backend::unavailable_reason()
        .unwrap_or_else(|| format!("only {} GPU(s) are present", num_gpus()));
    Err(Error::CudaUnavailable(format!(
        "{context} requested, but {why}"
    )))
}

/// Checks that `gpu(device)` exists; the error names the cause.
pub fn check_device(device: u32) -> Result<()> {
    if (device as usize) < num_gpus() {
        Ok(())
    } else {
        unavailable(Context::gpu(device))
    }
}

/// The device's name (e.g. "NVIDIA H100 80GB HBM3").
pub fn device_name(device: u32) -> Result<String> {
    check_device(device)?;
    backend::device_name(device)
}

/// Runs `f` with a zeroed-memory arena for this thread: small zeroed device
/// allocations (gradients, typically) are carved from a few blocks, each
/// zeroed by one memset, instead of one allocation, memset and wait each.
/// Bulk operations over many parameters use it; the blocks are freed when
/// their last range is.
pub fn with_zeroed_arena<R>(f: impl FnOnce() -> R) -> R {
    backend::with_zeroed_arena(f)
}

/// `len` zeroed bytes of device memory on `gpu(device)`.
pub fn alloc_zeroed(device: u32, len: usize) -> Result<DeviceAlloc> {
    check_device(device)?;
    backend::alloc(device, len, true)
}

/// `len` bytes of device memory on `gpu(device)`, contents unspecified until written.
pub fn alloc_uninit(device: u32, len: usize) -> Result<DeviceAlloc> {
    check_device(device)?;
    backend::alloc(device, len, false)
}

/// Device memory on `gpu(device)` for several arrays from one allocation:
/// one range per entry of `lens` (each 256-byte aligned, contents
/// unspecified). The block is freed when the last range is dropped.
pub fn alloc_slab(device: u32, lens: &[usize]) -> Result<Vec<DeviceAlloc>> {
    check_device(device)?;
    backend::alloc_slab(device, lens)
}

/// `len` zeroed bytes of page-locked host memory, or `None` when there is no
/// driver (callers then use ordinary host memory, as MXNet's `cpu_pinned`
/// does on CPU-only builds).
pub fn alloc_pinned(len: usize) -> Result<Option<PinnedAlloc>> {
    if num_gpus() == 0 {
        return Ok(None);
    }
    backend::alloc_pinned(len).map(Some)
}

/// Host -> device: `src` into `dst` (same length).
pub fn htod(dst: &DeviceAlloc, src: &[u8]) -> Result<()> {
    backend::htod(dst, src)
}

/// Device -> host: `src` into `dst` (same length).
pub fn dtoh(dst: &mut [u8], src: &DeviceAlloc) -> Result<()> {
    backend::dtoh(dst, src)
}

/// Device -> device, on one GPU or between two (peer copy).
pub fn dtod(dst: &DeviceAlloc, src: &DeviceAlloc) -> Result<()> {
    backend::dtod(dst, src)
}

/// Zeroes device memory.
pub fn memset_zero(dst: &DeviceAlloc) -> Result<()> {
    backend::memset_zero(dst)
}

/// Uploads many host ranges to device allocations on one GPU through a ring
/// of page-locked staging buffers: host copies into one buffer (parallel for
/// large chunks) overlap the asynchronous copy of the previous buffer on a
/// stream. Every `(src, dst)` pair must have equal lengths and `dst` must be
/// on `gpu(device)`. Returns when all copies have finished.
pub fn upload_batch(device: u32, jobs: &[(HostRange<'_>, &DeviceAlloc)]) -> Result<()> {
    check_device(device)?;
    backend::upload_batch(device, jobs)
}

/// Streams device allocations to the host, in order, through a ring of
/// page-locked staging buffers: `sink(j, bytes)` receives job `j`'s bytes as
/// consecutive chunks (none for an empty job) while the next chunks' copies
/// run, so the consumer (typically a file write) overlaps the transfer.
pub fn download_batch(
    jobs: &[&DeviceAlloc],
    sink: &mut dyn FnMut(usize, &[u8]) -> Result<()>,
) -> Result<()> {
    backend::download_batch(jobs, sink)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_names_the_context_and_cause() {
        if num_gpus() > 0 {
            eprintln!("a GPU is present: the no-driver message is not checked");
            return;
        }
        let err = alloc_zeroed(0, 8)
            .err()
            .expect("no GPU: allocation must fail");
        let msg = err.to_string();
        assert!(matches!(err, Error::CudaUnavailable(_)), "{msg}");
        assert!(msg.contains("gpu(0)"), "{msg}");
        assert!(unavailable_reason().is_some());
        assert!(alloc_pinned(16).expect("no error").is_none());
    }

    #[test]
    fn missing_device_is_an_error() {
        let n = u32::try_from(num_gpus()).expect("few GPUs");
        let err = check_device(n).expect_err("ordinal past the last GPU");
        assert!(err.to_string().contains(&format!("gpu({n})")), "{err}");
    }
}
