//! The staging ring shared by uploads and downloads: its settings (read from
//! the environment), its cached pinned buffers, its copy threads and its
//! stream with one event per buffer.

use std::sync::{Arc, Mutex};

use cudarc::driver::result;
use cudarc::driver::sys;

use super::cuda;
use super::memory::{alloc_pinned, PinnedAlloc};
use crate::error::{Error, Result};

/// Default size of one staging buffer of the upload ring.
const SLOT_BYTES: usize = 64 << 20;
/// Default number of staging buffers: one being filled while the other's
/// copies drain (each chunk's copy starts as soon as it is staged; a third
/// buffer measured no faster on an H200 host).
const SLOTS: usize = 2;
/// Uploads up to this size copy straight from pageable memory.
pub(super) const SMALL_UPLOAD: usize = 1 << 20;

/// The upload ring's shape. Read from the environment at each upload, so a
/// deployment (or a benchmark sweep) can tune it for its host:
/// `MXPARAMS_UPLOAD_SLOT_MB`, `MXPARAMS_UPLOAD_SLOTS`,
/// `MXPARAMS_UPLOAD_THREADS` (host copy threads; default: all cores) and
/// `MXPARAMS_UPLOAD_READ` (`pread` or `mmap`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct RingConfig {
    pub(super) slot_bytes: usize,
    pub(super) slots: usize,
    pub(super) threads: usize,
    /// Read file-backed ranges with positioned reads (`MXPARAMS_UPLOAD_READ`
    /// = `pread`, the default) rather than copying from the mapping (`mmap`).
    pub(super) pread: bool,
}

pub(super) fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok()?.trim().parse().ok()
}

pub(super) fn ring_config() -> RingConfig {
    RingConfig {
        slot_bytes: env_usize("MXPARAMS_UPLOAD_SLOT_MB")
            .filter(|&mb| (1..=4096).contains(&mb))
            .map_or(SLOT_BYTES, |mb| mb << 20),
        slots: env_usize("MXPARAMS_UPLOAD_SLOTS")
            .filter(|&n| (2..=64).contains(&n))
            .unwrap_or(SLOTS),
        threads: env_usize("MXPARAMS_UPLOAD_THREADS")
            .filter(|&n| n >= 1)
            .unwrap_or(0),
        pread: std::env::var("MXPARAMS_UPLOAD_READ").map_or(true, |v| v.trim() != "mmap"),
    }
}

/// Thread pools for host copies, one per requested size (0: rayon's global pool).
static COPY_POOLS: Mutex<Vec<(usize, Arc<rayon::ThreadPool>)>> = Mutex::new(Vec::new());

pub(super) fn copy_pool(threads: usize) -> Result<Option<Arc<rayon::ThreadPool>>> {
    if threads == 0 {
        return Ok(None);
    }
    let mut pools = COPY_POOLS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, p)) = pools.iter().find(|(n, _)| *n == threads) {
        return Ok(Some(Arc::clone(p)));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("mxparams-upload-{i}"))
        .build()
        .map_err(|e| Error::Cuda(format!("starting {threads} copy threads failed: {e}")))?;
    let pool = Arc::new(pool);
    pools.push((threads, Arc::clone(&pool)));
    Ok(Some(pool))
}

/// Staging buffers kept between uploads (pinning memory is slow).
static STAGING: Mutex<Vec<PinnedAlloc>> = Mutex::new(Vec::new());

/// A stream and one event per ring slot, destroyed on drop.
pub(super) struct Pipeline {
    pub(super) stream: sys::CUstream,
    pub(super) events: Vec<sys::CUevent>,
}

impl Pipeline {
    /// A non-blocking stream of the current context with one event per ring slot.
    pub(super) fn new(slots: usize) -> Result<Pipeline> {
        let stream = result::stream::create(result::stream::StreamKind::NonBlocking)
            .map_err(|e| cuda("cuStreamCreate", e))?;
        let mut pipe = Pipeline {
            stream,
            events: Vec::with_capacity(slots),
        };
        for _ in 0..slots {
            let ev = result::event::create(sys::CUevent_flags::CU_EVENT_DISABLE_TIMING)
                .map_err(|e| cuda("cuEventCreate", e))?;
            pipe.events.push(ev);
        }
        Ok(pipe)
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        // SAFETY: the handles were created by this pipeline and are destroyed
        // once, after the stream has drained.
        unsafe {
            let _ = result::stream::synchronize(self.stream);
            for &e in &self.events {
                let _ = result::event::destroy(e);
            }
            let _ = result::stream::destroy(self.stream);
        }
    }
}

/// `n` staging buffers of `slot_bytes`, cached ones first (pinning memory is
/// slow); cached buffers of another size (the ring was re-tuned) are released.
pub(super) fn staging(slot_bytes: usize, n: usize) -> Result<Vec<PinnedAlloc>> {
    let mut bufs = {
        let mut cache = STAGING.lock().unwrap_or_else(|e| e.into_inner());
        cache.retain(|b| b.len() == slot_bytes);
        let keep = cache.len().saturating_sub(n);
        cache.split_off(keep)
    };
    while bufs.len() < n {
        bufs.push(alloc_pinned(slot_bytes)?);
    }
    Ok(bufs)
}

pub(super) fn return_staging(bufs: Vec<PinnedAlloc>, max: usize) {
    let mut cache = STAGING.lock().unwrap_or_else(|e| e.into_inner());
    cache.extend(bufs);
    cache.truncate(max);
}
