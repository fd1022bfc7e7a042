//! The CUDA backend (feature `cuda`): every cudarc call lives here. It uses
//! cudarc's thin `result`/`sys` layers with the driver loaded at run time,
//! each device's primary context (retained on first use, never released:
//! contexts live as long as the process), and the legacy default stream for
//! synchronous operations, so every function has finished its device work
//! when it returns.

use std::ffi::c_void;
use std::panic::catch_unwind;
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::result::{self, DriverError};
use cudarc::driver::sys;

use super::HostRange;
use crate::error::{Error, Result};

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

pub(super) fn num_gpus() -> usize {
    driver().map_or(0, |d| d.devices.len())
}

pub(super) fn unavailable_reason() -> Option<String> {
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

/// One cuMemAlloc block, freed when the last allocation carved from it is dropped.
struct DeviceBlock {
    ptr: sys::CUdeviceptr,
    device: u32,
}

impl Drop for DeviceBlock {
    fn drop(&mut self) {
        if activate(self.device).is_err() {
            return;
        }
        // SAFETY: `ptr` came from cuMemAlloc in this device's context and is
        // freed once. Pending work on it was synchronised by the operation
        // that issued it. An error (e.g. at process teardown) leaks the block.
        let _ = unsafe { result::free_sync(self.ptr) };
    }
}

/// Device memory on one GPU: a whole block, or one range of a block shared
/// by the arrays of one load (one cuMemAlloc per checkpoint instead of one
/// per array). Zero-length allocations hold no memory.
pub struct DeviceAlloc {
    /// Held for its drop, which frees the block after the last range.
    _block: Option<Arc<DeviceBlock>>,
    ptr: sys::CUdeviceptr,
    len: usize,
    device: u32,
}

impl DeviceAlloc {
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether the allocation is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The GPU ordinal.
    pub fn device(&self) -> u32 {
        self.device
    }
    /// The device address.
    pub fn device_ptr(&self) -> u64 {
        self.ptr
    }
}

/// Page-locked host memory from cuMemHostAlloc (portable: pinned for every context).
pub struct PinnedAlloc {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the allocation is owned exclusively; access is serialised by the
// storage that holds it.
unsafe impl Send for PinnedAlloc {}
// SAFETY: see above; shared references only hand out raw pointers.
unsafe impl Sync for PinnedAlloc {}

impl PinnedAlloc {
    /// Address of the first byte.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr
    }
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether the allocation is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The bytes, for writing. The caller must make sure no device copy is
    /// still reading them (the upload ring waits for the slot's event).
    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` is a live allocation of `len` bytes owned by `self`,
        // borrowed mutably here.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }

    /// The bytes.
    fn bytes(&self) -> &[u8] {
        // SAFETY: as above, borrowed shared.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for PinnedAlloc {
    fn drop(&mut self) {
        if activate(0).is_err() {
            return;
        }
        // SAFETY: `ptr` came from cuMemHostAlloc and is freed once.
        let _ = unsafe { result::free_host(self.ptr.cast()) };
    }
}

pub(super) fn device_name(device: u32) -> Result<String> {
    let drv = driver().map_err(|e| Error::CudaUnavailable(e.to_string()))?;
    let d = drv
        .devices
        .get(device as usize)
        .ok_or_else(|| Error::CudaUnavailable(format!("gpu({device}) does not exist")))?;
    result::device::get_name(d.dev).map_err(|e| cuda("cuDeviceGetName", e))
}

fn empty_alloc(device: u32) -> DeviceAlloc {
    DeviceAlloc {
        _block: None,
        ptr: 0,
        len: 0,
        device,
    }
}

fn alloc_block(device: u32, len: usize) -> Result<Arc<DeviceBlock>> {
    activate(device)?;
    // SAFETY: a context is current; the block is owned by the returned value.
    let ptr = unsafe { result::malloc_sync(len) }
        .map_err(|e| cuda(&format!("allocating {len} bytes on gpu({device})"), e))?;
    Ok(Arc::new(DeviceBlock { ptr, device }))
}

/// Block sizes of the zeroed arena: the first block, and the cap that the
/// doubling stops at (also the largest allocation the arena serves).
const ARENA_FIRST: usize = 1 << 20;
const ARENA_CAP: usize = 64 << 20;

/// The current block of one device in a zeroed-arena scope.
struct ArenaCursor {
    block: Arc<DeviceBlock>,
    used: usize,
    cap: usize,
}

thread_local! {
    /// `Some` inside [`with_zeroed_arena`]: the scope's current blocks.
    static ARENA: std::cell::RefCell<Option<Vec<ArenaCursor>>> =
        const { std::cell::RefCell::new(None) };
}

pub(super) fn with_zeroed_arena<R>(f: impl FnOnce() -> R) -> R {
    struct Close;
    impl Drop for Close {
        fn drop(&mut self) {
            ARENA.with(|a| *a.borrow_mut() = None);
        }
    }
    if ARENA.with(|a| a.borrow().is_some()) {
        return f(); // nested: the outer scope's arena serves
    }
    ARENA.with(|a| *a.borrow_mut() = Some(Vec::new()));
    let _close = Close;
    f()
}

/// A zeroed range from the scope's arena, or `None` outside a scope or for a
/// large request. A new block is zeroed once (one memset) when it is made.
fn arena_alloc(device: u32, len: usize) -> Result<Option<DeviceAlloc>> {
    if len == 0 || len > ARENA_CAP {
        return Ok(None);
    }
    let need = len.next_multiple_of(SLAB_ALIGN);
    ARENA.with(|a| {
        let mut a = a.borrow_mut();
        let Some(cursors) = a.as_mut() else {
            return Ok(None);
        };
        let at = cursors
            .iter()
            .position(|c| c.block.device == device && c.cap - c.used >= need);
        let at = match at {
            Some(i) => i,
            None => {
                // Doubling blocks: waste stays below what the scope used.
                let prev = cursors.iter().position(|c| c.block.device == device);
                let cap = prev
                    .map_or(ARENA_FIRST, |i| (cursors[i].cap * 2).min(ARENA_CAP))
                    .max(need);
                let block = alloc_block(device, cap)?;
                activate(device)?;
                // SAFETY: the block is a live allocation of `cap` bytes.
                unsafe { result::memset_d8_sync(block.ptr, 0, cap) }
                    .map_err(|e| cuda("cuMemsetD8", e))?;
                sync_default_stream("device memset")?;
                let cursor = ArenaCursor {
                    block,
                    used: 0,
                    cap,
                };
                match prev {
                    Some(i) => {
                        cursors[i] = cursor;
                        i
                    }
                    None => {
                        cursors.push(cursor);
                        cursors.len() - 1
                    }
                }
            }
        };
        let c = &mut cursors[at];
        let alloc = DeviceAlloc {
            ptr: c.block.ptr + c.used as u64,
            _block: Some(Arc::clone(&c.block)),
            len,
            device,
        };
        c.used += need;
        Ok(Some(alloc))
    })
}

pub(super) fn alloc(device: u32, len: usize, zeroed: bool) -> Result<DeviceAlloc> {
    if len == 0 {
        return Ok(empty_alloc(device));
    }
    if zeroed {
        if let Some(a) = arena_alloc(device, len)? {
            return Ok(a);
        }
    }
    let block = alloc_block(device, len)?;
    let a = DeviceAlloc {
        ptr: block.ptr,
        _block: Some(block),
        len,
        device,
    };
    if zeroed {
        memset_zero(&a)?;
    }
    Ok(a)
}

/// Alignment of each range of a slab: cuMemAlloc's own, so views carved from
/// a slab suit every consumer that accepts a fresh allocation.
const SLAB_ALIGN: usize = 256;

pub(super) fn alloc_slab(device: u32, lens: &[usize]) -> Result<Vec<DeviceAlloc>> {
    let mut offsets = Vec::with_capacity(lens.len());
    let mut total = 0usize;
    for &len in lens {
        offsets.push(total);
        total = total
            .checked_add(len)
            .and_then(|t| t.checked_next_multiple_of(SLAB_ALIGN))
            .ok_or_else(|| Error::invalid("device slab size overflows"))?;
    }
    if total == 0 {
        return Ok(lens.iter().map(|_| empty_alloc(device)).collect());
    }
    let block = alloc_block(device, total)?;
    Ok(lens
        .iter()
        .zip(offsets)
        .map(|(&len, off)| {
            if len == 0 {
                empty_alloc(device)
            } else {
                DeviceAlloc {
                    ptr: block.ptr + off as u64,
                    _block: Some(Arc::clone(&block)),
                    len,
                    device,
                }
            }
        })
        .collect())
}

pub(super) fn alloc_pinned(len: usize) -> Result<PinnedAlloc> {
    activate(0)?;
    // SAFETY: a context is current; the block is zeroed below before use.
    let ptr = unsafe { result::malloc_host(len.max(1), sys::CU_MEMHOSTALLOC_PORTABLE) }
        .map_err(|e| cuda(&format!("allocating {len} bytes of pinned host memory"), e))?;
    let a = PinnedAlloc {
        ptr: ptr.cast(),
        len,
    };
    // SAFETY: fresh allocation, no other reference exists.
    unsafe { std::ptr::write_bytes(a.ptr, 0, len) };
    Ok(a)
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

pub(super) fn htod(dst: &DeviceAlloc, src: &[u8]) -> Result<()> {
    check_len("host-to-device copy", dst.len, src.len())?;
    if src.is_empty() {
        return Ok(());
    }
    activate(dst.device)?;
    // SAFETY: `dst` is a live allocation of exactly `src.len()` bytes.
    unsafe { result::memcpy_htod_sync(dst.ptr, src) }.map_err(|e| cuda("cuMemcpyHtoD", e))?;
    sync_default_stream("host-to-device copy")
}

pub(super) fn dtoh(dst: &mut [u8], src: &DeviceAlloc) -> Result<()> {
    check_len("device-to-host copy", src.len, dst.len())?;
    if dst.is_empty() {
        return Ok(());
    }
    activate(src.device)?;
    // SAFETY: `src` is a live allocation of exactly `dst.len()` bytes.
    unsafe { result::memcpy_dtoh_sync(dst, src.ptr) }.map_err(|e| cuda("cuMemcpyDtoH", e))
}

pub(super) fn dtod(dst: &DeviceAlloc, src: &DeviceAlloc) -> Result<()> {
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

pub(super) fn memset_zero(dst: &DeviceAlloc) -> Result<()> {
    if dst.len == 0 {
        return Ok(());
    }
    activate(dst.device)?;
    // SAFETY: `dst` is a live allocation of `len` bytes.
    unsafe { result::memset_d8_sync(dst.ptr, 0, dst.len) }.map_err(|e| cuda("cuMemsetD8", e))?;
    sync_default_stream("device memset")
}

/// Default size of one staging buffer of the upload ring.
const SLOT_BYTES: usize = 64 << 20;
/// Default number of staging buffers: one being filled while the other's
/// copies drain (each chunk's copy starts as soon as it is staged; a third
/// buffer measured no faster on an H200 host).
const SLOTS: usize = 2;
/// Uploads up to this size copy straight from pageable memory.
const SMALL_UPLOAD: usize = 1 << 20;

/// The upload ring's shape. Read from the environment at each upload, so a
/// deployment (or a benchmark sweep) can tune it for its host:
/// `MXPARAMS_UPLOAD_SLOT_MB`, `MXPARAMS_UPLOAD_SLOTS`,
/// `MXPARAMS_UPLOAD_THREADS` (host copy threads; default: all cores) and
/// `MXPARAMS_UPLOAD_READ` (`pread` or `mmap`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RingConfig {
    slot_bytes: usize,
    slots: usize,
    threads: usize,
    /// Read file-backed ranges with positioned reads (`MXPARAMS_UPLOAD_READ`
    /// = `pread`, the default) rather than copying from the mapping (`mmap`).
    pread: bool,
}

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok()?.trim().parse().ok()
}

fn ring_config() -> RingConfig {
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

fn copy_pool(threads: usize) -> Result<Option<Arc<rayon::ThreadPool>>> {
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
struct Pipeline {
    stream: sys::CUstream,
    events: Vec<sys::CUevent>,
}

impl Pipeline {
    /// A non-blocking stream of the current context with one event per ring slot.
    fn new(slots: usize) -> Result<Pipeline> {
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

pub(super) fn upload_batch(device: u32, jobs: &[(HostRange<'_>, &DeviceAlloc)]) -> Result<()> {
    for (src, dst) in jobs {
        check_len("host-to-device copy", dst.len, src.bytes.len())?;
        if dst.device != device {
            return Err(Error::invalid(format!(
                "batched upload to gpu({device}) got an allocation on gpu({})",
                dst.device
            )));
        }
    }
    let total: usize = jobs.iter().map(|(s, _)| s.bytes.len()).sum();
    if total <= SMALL_UPLOAD {
        // Not worth pinning staging memory for.
        return jobs.iter().try_for_each(|(src, dst)| htod(dst, src.bytes));
    }
    activate(device)?;
    let cfg = ring_config();
    let pool = copy_pool(cfg.threads)?;
    let nslots = total.div_ceil(cfg.slot_bytes).clamp(1, cfg.slots);
    let mut bufs = staging(cfg.slot_bytes, nslots)?;
    activate(device)?;
    let ring = Ring {
        device,
        slot_bytes: cfg.slot_bytes,
        pread: cfg.pread,
        pool: pool.as_deref(),
    };
    let outcome = ring.run(&mut bufs, jobs);
    return_staging(bufs, cfg.slots);
    outcome
}

/// `n` staging buffers of `slot_bytes`, cached ones first (pinning memory is
/// slow); cached buffers of another size (the ring was re-tuned) are released.
fn staging(slot_bytes: usize, n: usize) -> Result<Vec<PinnedAlloc>> {
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

fn return_staging(bufs: Vec<PinnedAlloc>, max: usize) {
    let mut cache = STAGING.lock().unwrap_or_else(|e| e.into_inner());
    cache.extend(bufs);
    cache.truncate(max);
}

/// A piece of one job that lands in one staging buffer.
struct Piece<'a> {
    src: HostRange<'a>,
    /// Offset in the staging buffer.
    off: usize,
    /// Device address of the piece's destination.
    dst: sys::CUdeviceptr,
    /// The device block of the destination (0: not known to share one).
    block: usize,
}

fn block_id(d: &DeviceAlloc) -> usize {
    d._block.as_ref().map_or(0, |b| Arc::as_ptr(b) as usize)
}

/// Cuts the jobs into staging-buffer fills, in order: each fill is at most
/// `slot` bytes of pieces laid out back to back, except that a piece whose
/// destination follows the previous one's in the same device block, after
/// alignment padding, keeps that padding in the staging buffer too. Runs of
/// such pieces (the arrays of one slab) then go to the device as one copy.
fn plan<'a>(jobs: &[(HostRange<'a>, &DeviceAlloc)], slot: usize) -> Vec<Vec<Piece<'a>>> {
    let mut fills = Vec::new();
    let mut cur: Vec<Piece<'a>> = Vec::new();
    let mut used = 0usize;
    for (src, dst) in jobs {
        let block = block_id(dst);
        let mut done = 0usize;
        while done < src.bytes.len() {
            if used == slot {
                fills.push(std::mem::take(&mut cur));
                used = 0;
            }
            if let Some(prev) = cur.last().filter(|p| block != 0 && p.block == block) {
                let prev_end = prev.dst + prev.src.bytes.len() as u64;
                let here = dst.ptr + done as u64;
                if let Some(gap) = here.checked_sub(prev_end).map(|g| g as usize) {
                    if gap < SLAB_ALIGN && used + gap < slot {
                        used += gap;
                    }
                }
            }
            let n = (src.bytes.len() - done).min(slot - used);
            cur.push(Piece {
                src: src.sub(done, n),
                off: used,
                dst: dst.ptr + done as u64,
                block,
            });
            used += n;
            done += n;
        }
    }
    if !cur.is_empty() {
        fills.push(cur);
    }
    fills
}

/// Host copies are cut into chunks of up to this size so that one big array
/// also spreads over the copy threads, and each chunk's device copy starts as
/// soon as the chunk is staged; runs of small arrays are grouped up to it.
const CHUNK: usize = 1 << 20;

/// One chunk of a fill: its staging bytes, the sources staged into them (at
/// their offsets in the chunk) and the device address of its first byte.
/// The chunk's staging layout mirrors its destination, so one copy moves it.
struct Chunk<'a, 'b> {
    staging: &'b mut [u8],
    parts: Vec<(usize, HostRange<'a>)>,
    dst: sys::CUdeviceptr,
}

/// A run of small pieces being grouped into one chunk.
struct Group<'a> {
    off: usize,
    end: usize,
    dst: sys::CUdeviceptr,
    block: usize,
    parts: Vec<(usize, HostRange<'a>)>,
}

/// The fill's chunks, each with its slice of the staging buffer: big pieces
/// cut into `CHUNK`s, runs of small pieces whose layout mirrors their
/// destinations grouped (the padding between them travels along).
fn chunks<'a, 'b>(buf: &'b mut [u8], fill: &[Piece<'a>]) -> Vec<Chunk<'a, 'b>> {
    let mut rest = buf;
    let mut at = 0usize;
    let mut out = Vec::new();
    let mut carve = |off: usize, end: usize, out_parts, dst, out: &mut Vec<Chunk<'a, 'b>>| {
        let (_, tail) = std::mem::take(&mut rest).split_at_mut(off - at);
        let (staging, tail) = tail.split_at_mut(end - off);
        rest = tail;
        at = end;
        out.push(Chunk {
            staging,
            parts: out_parts,
            dst,
        });
    };
    let mut group: Option<Group<'a>> = None;
    for p in fill {
        let len = p.src.bytes.len();
        let big = len >= CHUNK / 2;
        let joins = !big
            && group.as_ref().is_some_and(|g| {
                g.block != 0
                    && g.block == p.block
                    && p.dst.checked_sub(g.dst) == Some((p.off - g.off) as u64)
                    && p.off + len - g.off <= CHUNK
            });
        if !joins {
            if let Some(g) = group.take() {
                carve(g.off, g.end, g.parts, g.dst, &mut out);
            }
        }
        if big {
            let mut done = 0usize;
            while done < len {
                let n = (len - done).min(CHUNK);
                carve(
                    p.off + done,
                    p.off + done + n,
                    vec![(0, p.src.sub(done, n))],
                    p.dst + done as u64,
                    &mut out,
                );
                done += n;
            }
            continue;
        }
        match group.as_mut() {
            Some(g) if joins => {
                g.parts.push((p.off - g.off, p.src));
                g.end = p.off + len;
            }
            _ => {
                group = Some(Group {
                    off: p.off,
                    end: p.off + len,
                    dst: p.dst,
                    block: p.block,
                    parts: vec![(0, p.src)],
                });
            }
        }
    }
    if let Some(g) = group.take() {
        carve(g.off, g.end, g.parts, g.dst, &mut out);
    }
    out
}

/// A stream handle that worker threads may enqueue on.
#[derive(Clone, Copy)]
struct StreamHandle(sys::CUstream);
// SAFETY: CUDA streams may be used from any thread of the process (each
// thread makes the stream's context current first).
unsafe impl Send for StreamHandle {}
// SAFETY: see above; the handle is only read.
unsafe impl Sync for StreamHandle {}

/// The upload ring's settings for one batch.
struct Ring<'p> {
    device: u32,
    slot_bytes: usize,
    pread: bool,
    pool: Option<&'p rayon::ThreadPool>,
}

impl Ring<'_> {
    /// Stages a chunk (a positioned read from the file behind a mapped range,
    /// or a copy) and queues its device copy.
    fn send(&self, c: Chunk<'_, '_>, stream: StreamHandle) -> Result<()> {
        for (at, src) in &c.parts {
            src.read_into(&mut c.staging[*at..*at + src.bytes.len()], self.pread)?;
        }
        activate(self.device)?;
        let staged: &[u8] = c.staging;
        // SAFETY: `dst..+len` lies inside a live device allocation (lengths
        // checked); the pinned source is not written again until the fill's
        // event has completed, and the buffers outlive the pipeline, whose
        // drop drains the stream.
        unsafe { result::memcpy_htod_async(c.dst, staged, stream.0) }
            .map_err(|e| cuda("cuMemcpyHtoDAsync", e))
    }

    /// Stages one fill into `buf` on the copy threads, each chunk's device copy
    /// queued as soon as it is staged.
    fn fill(&self, buf: &mut [u8], fill: &[Piece<'_>], stream: StreamHandle) -> Result<()> {
        use rayon::prelude::*;
        let work = chunks(buf, fill);
        let run = move || work.into_par_iter().try_for_each(|c| self.send(c, stream));
        match self.pool {
            Some(p) => p.install(run),
            None => run(),
        }
    }

    fn run(&self, bufs: &mut [PinnedAlloc], jobs: &[(HostRange<'_>, &DeviceAlloc)]) -> Result<()> {
        // Dropped before `bufs` is touched again: its drop drains the stream.
        let pipe = Pipeline::new(bufs.len())?;
        for (k, fill) in plan(jobs, self.slot_bytes).iter().enumerate() {
            let i = k % bufs.len();
            if k >= bufs.len() {
                // The buffer's previous copies must have finished before it is refilled.
                // SAFETY: the event was recorded on the pipeline's stream.
                unsafe { result::event::synchronize(pipe.events[i]) }
                    .map_err(|e| cuda("cuEventSynchronize", e))?;
            }
            self.fill(bufs[i].bytes_mut(), fill, StreamHandle(pipe.stream))?;
            // SAFETY: event and stream belong to the pipeline.
            unsafe { result::event::record(pipe.events[i], pipe.stream) }
                .map_err(|e| cuda("cuEventRecord", e))?;
        }
        // SAFETY: the stream belongs to the pipeline.
        unsafe { result::stream::synchronize(pipe.stream) }
            .map_err(|e| cuda("cuStreamSynchronize", e))
    }
}

/// A piece of one download job that lands in one staging buffer.
#[derive(Debug, PartialEq, Eq)]
struct DownPiece {
    job: usize,
    /// Offset in the job's allocation.
    from: usize,
    /// Offset in the staging buffer.
    off: usize,
    len: usize,
}

/// Cuts download jobs (given by length) into staging-buffer fills, in order.
fn plan_download(lens: &[usize], slot: usize) -> Vec<Vec<DownPiece>> {
    let mut fills = Vec::new();
    let mut cur = Vec::new();
    let mut used = 0usize;
    for (job, &len) in lens.iter().enumerate() {
        let mut done = 0usize;
        while done < len {
            if used == slot {
                fills.push(std::mem::take(&mut cur));
                used = 0;
            }
            let n = (len - done).min(slot - used);
            cur.push(DownPiece {
                job,
                from: done,
                off: used,
                len: n,
            });
            used += n;
            done += n;
        }
    }
    if !cur.is_empty() {
        fills.push(cur);
    }
    fills
}

pub(super) fn download_batch(
    jobs: &[&DeviceAlloc],
    sink: &mut dyn FnMut(usize, &[u8]) -> Result<()>,
) -> Result<()> {
    let total: usize = jobs.iter().map(|d| d.len).sum();
    if total <= SMALL_UPLOAD {
        for (j, d) in jobs.iter().enumerate() {
            if d.len > 0 {
                let mut host = vec![0u8; d.len];
                dtoh(&mut host, d)?;
                sink(j, &host)?;
            }
        }
        return Ok(());
    }
    let cfg = ring_config();
    let nslots = total.div_ceil(cfg.slot_bytes).clamp(2, cfg.slots);
    let mut bufs = staging(cfg.slot_bytes, nslots)?;
    // Runs of consecutive jobs on one device share a stream (streams and
    // events belong to one device's context).
    let mut outcome = Ok(());
    let mut start = 0usize;
    while start < jobs.len() && outcome.is_ok() {
        let device = jobs[start].device;
        let end = jobs[start..]
            .iter()
            .position(|d| d.device != device)
            .map_or(jobs.len(), |n| start + n);
        outcome = download_run(&mut bufs, &jobs[start..end], cfg.slot_bytes, &mut |j, b| {
            sink(start + j, b)
        });
        start = end;
    }
    return_staging(bufs, cfg.slots);
    outcome
}

/// Downloads jobs that all live on one device: fill `k` is copied
/// asynchronously into buffer `k % n` while fill `k - 1` goes to the sink.
fn download_run(
    bufs: &mut [PinnedAlloc],
    jobs: &[&DeviceAlloc],
    slot_bytes: usize,
    sink: &mut dyn FnMut(usize, &[u8]) -> Result<()>,
) -> Result<()> {
    let Some(first) = jobs.first() else {
        return Ok(());
    };
    activate(first.device)?;
    // The ring's stream does not wait for other streams: work queued on the
    // device by others (PyTorch kernels writing a parameter) must finish first.
    result::ctx::synchronize().map_err(|e| cuda("cuCtxSynchronize", e))?;
    // Dropped (draining the stream) before `bufs` is touched again.
    let pipe = Pipeline::new(bufs.len())?;
    let lens: Vec<usize> = jobs.iter().map(|d| d.len).collect();
    let fills = plan_download(&lens, slot_bytes);
    let n = bufs.len();
    for k in 0..=fills.len() {
        if let Some(fill) = fills.get(k) {
            // Buffer `k % n` last held fill `k - n`, already handed to the
            // sink (n >= 2), so it is free to be overwritten.
            let buf = bufs[k % n].bytes_mut();
            for p in fill {
                let dst = &mut buf[p.off..p.off + p.len];
                // SAFETY: the source range lies inside a live allocation of
                // the current device (planned from its length); the pinned
                // destination is not read until this fill's event completes.
                unsafe {
                    result::memcpy_dtoh_async(dst, jobs[p.job].ptr + p.from as u64, pipe.stream)
                }
                .map_err(|e| cuda("cuMemcpyDtoHAsync", e))?;
            }
            // SAFETY: event and stream belong to the pipeline.
            unsafe { result::event::record(pipe.events[k % n], pipe.stream) }
                .map_err(|e| cuda("cuEventRecord", e))?;
        }
        if let Some(prev) = k.checked_sub(1).and_then(|p| fills.get(p).map(|f| (p, f))) {
            let (p, fill) = prev;
            // SAFETY: the event was recorded on the pipeline's stream.
            unsafe { result::event::synchronize(pipe.events[p % n]) }
                .map_err(|e| cuda("cuEventSynchronize", e))?;
            let buf = bufs[p % n].bytes();
            for piece in fill {
                sink(piece.job, &buf[piece.off..piece.off + piece.len])?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_plan_keeps_order_and_covers_every_byte() {
        let lens = [5usize, 0, 12, 3, 0, 9];
        let slot = 8;
        let fills = plan_download(&lens, slot);
        let mut next = vec![0usize; lens.len()];
        let mut last_job = 0usize;
        for fill in &fills {
            let mut used = 0usize;
            for p in fill {
                assert!(p.job >= last_job, "jobs stay in order");
                last_job = p.job;
                assert_eq!(p.from, next[p.job], "pieces of a job are consecutive");
                assert_eq!(p.off, used, "pieces are packed");
                assert!(p.len > 0);
                next[p.job] += p.len;
                used += p.len;
            }
            assert!(used <= slot);
        }
        assert_eq!(next, lens);
        assert_eq!(fills.len(), lens.iter().sum::<usize>().div_ceil(slot));
    }

    /// Lays the plan's fills out on the host exactly as the ring would (each
    /// chunk read from the source, then "sent" to its device address) and
    /// checks every byte reaches its destination once, for both read modes.
    #[test]
    fn plan_and_chunks_cover_every_byte() {
        let lens = [0usize, 7, 10, 23, 1, 0, (5 << 20) / 2 + 3, 40];
        let srcs: Vec<Vec<u8>> = lens
            .iter()
            .enumerate()
            .map(|(j, &n)| (0..n).map(|i| (i * 7 + j * 31 + i / 251) as u8).collect())
            .collect();
        let dir = std::env::temp_dir().join(format!("mxparams-ring-{}", std::process::id()));
        std::fs::write(&dir, srcs.concat()).expect("temp file");
        let file = std::fs::File::open(&dir).expect("open");
        // Fake device allocations without a block: addresses index `device`.
        let mut base = 0u64;
        let allocs: Vec<DeviceAlloc> = srcs
            .iter()
            .map(|s| {
                let a = DeviceAlloc {
                    _block: None,
                    ptr: base,
                    len: s.len(),
                    device: 0,
                };
                base += s.len() as u64 + 13;
                a
            })
            .collect();
        let mut at = 0u64;
        let jobs: Vec<(HostRange<'_>, &DeviceAlloc)> = srcs
            .iter()
            .zip(&allocs)
            .map(|(s, a)| {
                let r = HostRange {
                    bytes: s,
                    file: Some((&file, at)),
                };
                at += s.len() as u64;
                (r, a)
            })
            .collect();
        let total: usize = lens.iter().sum();
        for (slot, pread) in [
            (10usize, true),
            (10, false),
            (3 << 20, true),
            (1 << 20, false),
        ] {
            let fills = plan(&jobs, slot);
            assert_eq!(fills.len(), total.div_ceil(slot));
            let mut device = vec![0u8; base as usize];
            let mut written = vec![false; base as usize];
            for fill in &fills {
                let mut buf = vec![0u8; slot];
                let used: usize = fill.iter().map(|p| p.src.bytes.len()).sum();
                assert!(used <= slot);
                for c in chunks(&mut buf, fill) {
                    assert!(c.staging.len() <= CHUNK);
                    assert_eq!(c.parts.len(), 1, "no block: nothing is grouped");
                    for (at, src) in &c.parts {
                        let n = src.bytes.len();
                        src.read_into(&mut c.staging[*at..*at + n], pread)
                            .expect("read");
                    }
                    for (k, &b) in c.staging.iter().enumerate() {
                        let d = c.dst as usize + k;
                        assert!(!written[d], "written twice");
                        written[d] = true;
                        device[d] = b;
                    }
                }
            }
            for (s, a) in srcs.iter().zip(&allocs) {
                let p = a.ptr as usize;
                assert_eq!(&device[p..p + s.len()], &s[..]);
            }
            assert_eq!(written.iter().filter(|&&w| w).count(), total);
        }
        let _ = std::fs::remove_file(&dir);
    }

    /// Arrays carved from one device block: runs of small ones are staged
    /// with the block's padding and sent as one copy; every byte lands.
    #[test]
    fn slab_runs_are_grouped_into_single_copies() {
        let lens = [3usize, 100, 0, 257, 1, 4000, 700_000, 5, 9, 2_000_000, 13];
        let srcs: Vec<Vec<u8>> = lens
            .iter()
            .enumerate()
            .map(|(j, &n)| (0..n).map(|i| (i * 3 + j * 17 + 1) as u8).collect())
            .collect();
        // One fake block (no driver call happens on drop without a driver;
        // with one, freeing a made-up address just fails quietly).
        let block = Arc::new(DeviceBlock {
            ptr: 0,
            device: u32::MAX,
        });
        let mut at = 0u64;
        let allocs: Vec<DeviceAlloc> = lens
            .iter()
            .map(|&n| {
                let a = DeviceAlloc {
                    _block: Some(Arc::clone(&block)),
                    ptr: at,
                    len: n,
                    device: 0,
                };
                at = (at + n as u64).next_multiple_of(SLAB_ALIGN as u64);
                a
            })
            .collect();
        let span = at as usize;
        let jobs: Vec<(HostRange<'_>, &DeviceAlloc)> = srcs
            .iter()
            .map(|s| HostRange::new(s))
            .zip(&allocs)
            .collect();
        for slot in [1 << 20, 3 << 20, 1000] {
            let mut device = vec![0u8; span];
            let mut copies = 0usize;
            for fill in &plan(&jobs, slot) {
                let mut buf = vec![0xAAu8; slot];
                for c in chunks(&mut buf, fill) {
                    for (off, src) in &c.parts {
                        let n = src.bytes.len();
                        src.read_into(&mut c.staging[*off..*off + n], false)
                            .expect("read");
                    }
                    let d = c.dst as usize;
                    assert!(d + c.staging.len() <= span, "stays inside the block");
                    device[d..d + c.staging.len()].copy_from_slice(c.staging);
                    copies += 1;
                }
            }
            for (s, a) in srcs.iter().zip(&allocs) {
                let p = a.ptr as usize;
                assert_eq!(&device[p..p + s.len()], &s[..], "slot {slot}");
            }
            if slot == 1 << 20 {
                // The small arrays before the 700 KB one form one copy, as do
                // those between the big ones: far fewer copies than arrays.
                assert!(copies < lens.len(), "{copies} copies");
            }
        }
        drop(allocs);
        std::mem::forget(block);
    }
}
