//! The CUDA backend of a build without the `cuda` feature: allocation types
//! are uninhabited (no value can exist, so code matching them compiles away)
//! and every request fails with `CudaUnavailable`.

use crate::error::{Error, Result};

/// Device memory; cannot exist in this build.
pub enum DeviceAlloc {}

/// Page-locked host memory; cannot exist in this build.
pub enum PinnedAlloc {}

impl DeviceAlloc {
    /// Length in bytes.
    pub fn len(&self) -> usize {
        match *self {}
    }
    /// The GPU ordinal.
    pub fn device(&self) -> u32 {
        match *self {}
    }
    /// The device address.
    pub fn device_ptr(&self) -> u64 {
        match *self {}
    }
}

impl PinnedAlloc {
    /// Address of the first byte.
    pub fn as_ptr(&self) -> *mut u8 {
        match *self {}
    }
    /// Length in bytes.
    pub fn len(&self) -> usize {
        match *self {}
    }
}

const NO_FEATURE: &str = "this build has no CUDA support (built without the 'cuda' feature)";

fn unavailable<T>() -> Result<T> {
    Err(Error::CudaUnavailable(NO_FEATURE.into()))
}

pub(super) fn num_gpus() -> usize {
    0
}

pub(super) fn unavailable_reason() -> Option<String> {
    Some(NO_FEATURE.into())
}

pub(super) fn device_name(_device: u32) -> Result<String> {
    unavailable()
}

pub(super) fn alloc(_device: u32, _len: usize, _zeroed: bool) -> Result<DeviceAlloc> {
    unavailable()
}

pub(super) fn alloc_slab(_device: u32, _lens: &[usize]) -> Result<Vec<DeviceAlloc>> {
    unavailable()
}

pub(super) fn alloc_pinned(_len: usize) -> Result<PinnedAlloc> {
    unavailable()
}

pub(super) fn htod(dst: &DeviceAlloc, _src: &[u8]) -> Result<()> {
    match *dst {}
}

pub(super) fn dtoh(_dst: &mut [u8], src: &DeviceAlloc) -> Result<()> {
    match *src {}
}

pub(super) fn dtod(dst: &DeviceAlloc, _src: &DeviceAlloc) -> Result<()> {
    match *dst {}
}

pub(super) fn memset_zero(dst: &DeviceAlloc) -> Result<()> {
    match *dst {}
}

pub(super) fn upload_batch(
    _device: u32,
    jobs: &[(super::HostRange<'_>, &DeviceAlloc)],
) -> Result<()> {
    match jobs.first() {
        None => Ok(()),
        Some((_, d)) => match **d {},
    }
}

pub(super) fn download_batch(
    jobs: &[&DeviceAlloc],
    _sink: &mut dyn FnMut(usize, &[u8]) -> Result<()>,
) -> Result<()> {
    match jobs.first() {
        None => Ok(()),
        Some(d) => match **d {},
    }
}

pub(super) fn with_zeroed_arena<R>(f: impl FnOnce() -> R) -> R {
    f()
}
