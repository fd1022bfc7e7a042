//! Byte storage behind an `NDArray`: owned, 64-byte aligned host memory, or a
//! read-only range of a shared source (a memory-mapped file or shared bytes),
//! page-locked host memory (`cpu_pinned` with a driver) or CUDA device memory.
//!
//! Device memory is not host-addressable: [`Buffer::try_read`] stages it
//! through a host copy, [`Buffer::write`] refuses it, and in-place writes go
//! through [`copy_buffer`], [`Buffer::fill_zero`] and [`Buffer::upload`],
//! which pick the right copy (host, H2D, D2H, D2D or peer). Without the
//! `cuda` feature the device and pinned types are uninhabited, so those arms
//! compile away.
//!
//! Storage is shared (`Arc`) between arrays, Python views and parameters, like
//! a numpy base buffer. Rust-side bulk reads and writes take a per-storage
//! lock so that two Rust operations never tear each other; views handed to
//! numpy or DLPack consumers are, as in numpy, not synchronised.

use std::alloc::{self, Layout};
use std::ptr::NonNull;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::error::{Error, Result};
use crate::host_pool;

/// Alignment of owned host buffers: a cache line, enough for any dtype and SIMD.
pub(crate) const HOST_ALIGN: usize = 64;

/// An owned, aligned, writable host allocation.
pub(crate) struct HostAlloc {
    ptr: NonNull<u8>,
    len: usize,
    /// Bytes actually allocated (a pool size class for large blocks).
    capacity: usize,
}

// SAFETY: HostAlloc owns its allocation exclusively; access goes through
// `Storage`, which serialises Rust-side access with its lock.
unsafe impl Send for HostAlloc {}
// SAFETY: see above; shared references only hand out raw pointers.
unsafe impl Sync for HostAlloc {}

impl HostAlloc {
    fn layout(capacity: usize) -> Result<Layout> {
        Layout::from_size_align(capacity.max(1), HOST_ALIGN)
            .map_err(|_| Error::invalid(format!("cannot allocate {capacity} bytes")))
    }

    /// A zero-filled allocation: lazily zeroed pages from the OS, or a reused
    /// pooled block cleared in place.
    pub(crate) fn zeroed(len: usize) -> Result<HostAlloc> {
        let capacity = host_pool::capacity_for(len);
        if let Some(ptr) = host_pool::take(capacity) {
            // SAFETY: a pooled block of `capacity >= len` bytes, now exclusively ours.
            unsafe { std::ptr::write_bytes(ptr, 0, len) };
            return Ok(HostAlloc::from_raw(ptr, len, capacity));
        }
        let ptr = block_alloc(Self::layout(capacity)?, true);
        let ptr = NonNull::new(ptr).ok_or_else(|| alloc_failed(len))?;
        Ok(HostAlloc { ptr, len, capacity })
    }

    /// An allocation whose contents are unspecified until written. The bytes
    /// are never exposed before being filled by the caller.
    pub(crate) fn uninit(len: usize) -> Result<HostAlloc> {
        let capacity = host_pool::capacity_for(len);
        if let Some(ptr) = host_pool::take(capacity) {
            return Ok(HostAlloc::from_raw(ptr, len, capacity));
        }
        let ptr = block_alloc(Self::layout(capacity)?, false);
        let ptr = NonNull::new(ptr).ok_or_else(|| alloc_failed(len))?;
        #[cfg(target_os = "linux")]
        advise_huge_pages(ptr.as_ptr(), capacity);
        Ok(HostAlloc { ptr, len, capacity })
    }

    fn from_raw(ptr: *mut u8, len: usize, capacity: usize) -> HostAlloc {
        // Pooled addresses came from `alloc` and are never null.
        let ptr = NonNull::new(ptr).unwrap_or(NonNull::dangling());
        HostAlloc { ptr, len, capacity }
    }
}

impl Drop for HostAlloc {
    fn drop(&mut self) {
        if host_pool::give(self.ptr.as_ptr(), self.capacity) {
            return;
        }
        free_block(self.ptr.as_ptr(), self.capacity);
    }
}

/// Whether a block of `size` bytes comes from the system allocator. Blocks
/// big enough to pool do: it maps them from the OS and unmaps them when freed,
/// whatever global allocator the program installs (the Python extension's
/// keeps freed pages, which suits small objects, not gigabyte slabs).
fn from_system(size: usize) -> bool {
    size >= host_pool::MIN_POOLED
}

fn block_alloc(layout: Layout, zeroed: bool) -> *mut u8 {
    use std::alloc::GlobalAlloc;
    // SAFETY: `layout` has a non-zero size (see `HostAlloc::layout`).
    unsafe {
        match (from_system(layout.size()), zeroed) {
            (true, true) => alloc::System.alloc_zeroed(layout),
            (true, false) => alloc::System.alloc(layout),
            (false, true) => alloc::alloc_zeroed(layout),
            (false, false) => alloc::alloc(layout),
        }
    }
}

fn free_block(ptr: *mut u8, capacity: usize) {
    use std::alloc::GlobalAlloc;
    if let Ok(layout) = HostAlloc::layout(capacity) {
        // SAFETY: allocated by `block_alloc` with this same layout, so from
        // the allocator `from_system` picks for its size.
        unsafe {
            if from_system(layout.size()) {
                alloc::System.dealloc(ptr, layout);
            } else {
                alloc::dealloc(ptr, layout);
            }
        }
    }
}

/// Frees every cached host block (see [`crate::host_pool`]); returns the bytes released.
pub fn release_host_pool() -> usize {
    host_pool::drain()
        .into_iter()
        .map(|(ptr, capacity)| {
            free_block(ptr, capacity);
            capacity
        })
        .sum()
}

fn alloc_failed(len: usize) -> Error {
    Error::from(std::io::Error::new(
        std::io::ErrorKind::OutOfMemory,
        format!("failed to allocate {len} bytes of host memory"),
    ))
}

/// Whether `MXPARAMS_HUGE_PAGES=1` asks for transparent huge pages. Off by
/// default: with the common `defrag=madvise` setting the kernel compacts memory
/// synchronously on the first touch, which made first loads on a busy machine
/// anywhere from 2x faster to 4x slower than plain pages.
#[cfg(target_os = "linux")]
fn huge_pages_requested() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("MXPARAMS_HUGE_PAGES").is_ok_and(|v| v.trim() == "1"))
}

/// Large fresh buffers fault in 4 KiB pages one by one; asking for transparent
/// huge pages cuts the number of faults (the dominant cost of big loads) 512-fold.
#[cfg(target_os = "linux")]
fn advise_huge_pages(ptr: *mut u8, len: usize) {
    const HUGE: usize = 2 << 20;
    if len < 4 * HUGE || !huge_pages_requested() {
        return;
    }
    let start = (ptr as usize).div_ceil(HUGE) * HUGE;
    let end = (ptr as usize + len) / HUGE * HUGE;
    if end > start {
        // SAFETY: the range lies inside our own allocation; madvise only hints.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

/// The smallest mapped range worth populating before a bulk read: the
/// kernel maps 64 KiB around each fault, so smaller ranges take one fault.
#[cfg(target_os = "linux")]
const POPULATE_MIN: usize = 64 << 10;

/// A read-only source that mapped storage borrows from.
pub enum SharedSource {
    /// A memory-mapped file (mapped from offset 0) with the open file, which
    /// bulk readers may read with positioned reads instead of the mapping.
    MappedFile(memmap2::Mmap, std::fs::File),
    /// Bytes held in memory.
    Bytes(Vec<u8>),
}

impl SharedSource {
    /// The source's bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            SharedSource::MappedFile(m, _) => m,
            SharedSource::Bytes(b) => b,
        }
    }
}

/// Where an array's bytes live.
pub(crate) enum Memory {
    /// Owned host memory, writable.
    Host(HostAlloc),
    /// Owned page-locked host memory, writable.
    Pinned(crate::cuda::PinnedAlloc),
    /// Owned memory on a CUDA device; not host-addressable.
    Device(crate::cuda::DeviceAlloc),
    /// A writable, 64-byte aligned range of a slab shared by the arrays of one
    /// load: one allocation (and, for big loads, huge pages) instead of one per
    /// array. The slab is freed when its last array is.
    Slab {
        /// The slab.
        alloc: Arc<HostAlloc>,
        /// First byte.
        offset: usize,
        /// Number of bytes.
        len: usize,
    },
    /// The whole of a slab whose ranges are other buffers (a gradient
    /// bucket, see `crate::grad_bucket`): host-addressable for DLPack and
    /// numpy views, but never read or written from Rust through this
    /// handle, since Rust-side access to those bytes is serialised by the
    /// ranges' own locks and a slice over the whole would alias theirs.
    Whole {
        /// The slab.
        alloc: Arc<HostAlloc>,
    },
    /// A read-only byte range of a shared source; may be unaligned.
    Shared {
        /// The source.
        source: Arc<SharedSource>,
        /// First byte.
        offset: usize,
        /// Number of bytes.
        len: usize,
    },
}

/// Storage: memory plus the lock that serialises Rust-side access.
pub(crate) struct Storage {
    memory: Memory,
    lock: RwLock<()>,
}

/// Shared handle to storage; cloning shares the bytes.
#[derive(Clone)]
pub struct Buffer(Arc<Storage>);

impl Buffer {
    fn new(memory: Memory) -> Buffer {
        Buffer(Arc::new(Storage {
            memory,
            lock: RwLock::new(()),
        }))
    }

    /// `len` zero bytes of owned host memory.
    pub fn zeroed(len: usize) -> Result<Buffer> {
        Ok(Buffer::new(Memory::Host(HostAlloc::zeroed(len)?)))
    }

    /// Owned host memory filled by `fill`, which must write every byte.
    pub(crate) fn filled_with(len: usize, fill: impl FnOnce(&mut [u8])) -> Result<Buffer> {
        let alloc = HostAlloc::uninit(len)?;
        // SAFETY: the allocation is exclusively ours and `len` bytes long;
        // `fill` is required to initialise it fully before anything reads it.
        let slice = unsafe { std::slice::from_raw_parts_mut(alloc.ptr.as_ptr(), len) };
        fill(slice);
        Ok(Buffer::new(Memory::Host(alloc)))
    }

    /// Carves one owned allocation into writable buffers of the given lengths,
    /// each starting on a `HOST_ALIGN` boundary. Their contents are unspecified
    /// until written: callers fill every byte before exposing them.
    pub(crate) fn slab(lens: &[usize]) -> Result<Vec<Buffer>> {
        Buffer::slab_filled(lens, |_, _| Ok(()))
    }

    /// Like [`Buffer::slab`], with the whole slab first handed to `fill`
    /// together with each buffer's offset in it, while it is still exclusively
    /// the caller's: one borrow that can be split across threads at any
    /// boundary, rather than one lock per buffer.
    pub(crate) fn slab_filled(
        lens: &[usize],
        fill: impl FnOnce(&mut [u8], &[usize]) -> Result<()>,
    ) -> Result<Vec<Buffer>> {
        let (offsets, total) = crate::slab::layout(lens, HOST_ALIGN)?;
        let alloc = HostAlloc::uninit(total)?;
        // SAFETY: `alloc` holds `total` bytes and nothing else refers to it yet.
        fill(
            unsafe { std::slice::from_raw_parts_mut(alloc.ptr.as_ptr(), total) },
            &offsets,
        )?;
        Ok(Buffer::carve(&Arc::new(alloc), offsets, lens))
    }

    /// One buffer per `(offset, len)` range of a slab.
    fn carve(alloc: &Arc<HostAlloc>, offsets: Vec<usize>, lens: &[usize]) -> Vec<Buffer> {
        offsets
            .into_iter()
            .zip(lens)
            .map(|(offset, &len)| {
                Buffer::new(Memory::Slab {
                    alloc: alloc.clone(),
                    offset,
                    len,
                })
            })
            .collect()
    }

    /// One zeroed host allocation carved into writable buffers of the given
    /// lengths (each on a `HOST_ALIGN` boundary), plus a handle on the whole
    /// of it whose bytes Rust never touches (see `Memory::Whole`).
    pub(crate) fn zeroed_slab(lens: &[usize]) -> Result<(Buffer, Vec<Buffer>)> {
        let (offsets, total) = crate::slab::layout(lens, HOST_ALIGN)?;
        let alloc = Arc::new(HostAlloc::zeroed(total)?);
        let parts = Buffer::carve(&alloc, offsets, lens);
        Ok((Buffer::new(Memory::Whole { alloc }), parts))
    }

    /// Owned host memory holding a copy of `bytes`.
    pub fn copy_from(bytes: &[u8]) -> Result<Buffer> {
        Buffer::filled_with(bytes.len(), |dst| copy_bytes(dst, bytes))
    }

    /// A read-only view of `len` bytes of `source` from `offset`.
    pub fn shared(source: Arc<SharedSource>, offset: usize, len: usize) -> Result<Buffer> {
        let end = offset
            .checked_add(len)
            .filter(|&e| e <= source.bytes().len())
            .ok_or_else(|| Error::invalid("shared range outside its source"))?;
        debug_assert!(end >= offset);
        Ok(Buffer::new(Memory::Shared {
            source,
            offset,
            len,
        }))
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        match &self.0.memory {
            Memory::Host(a) => a.len,
            Memory::Pinned(a) => a.len(),
            Memory::Device(a) => a.len(),
            Memory::Slab { len, .. } | Memory::Shared { len, .. } => *len,
            Memory::Whole { alloc } => alloc.len,
        }
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether writes are allowed (device memory is written through copies).
    pub fn is_writable(&self) -> bool {
        !matches!(self.0.memory, Memory::Shared { .. })
    }

    /// Whether the bytes live in device memory.
    pub fn is_device(&self) -> bool {
        matches!(self.0.memory, Memory::Device(_))
    }

    /// The device allocation together with the storage's read lock, held
    /// while the caller reads the device memory itself (e.g. a batched
    /// download); `None` for host memory.
    pub(crate) fn device_read(
        &self,
    ) -> Option<(
        std::sync::RwLockReadGuard<'_, ()>,
        &crate::cuda::DeviceAlloc,
    )> {
        match &self.0.memory {
            Memory::Device(d) => Some((self.0.lock.read().unwrap_or_else(|e| e.into_inner()), d)),
            _ => None,
        }
    }

    /// Maps a memory-mapped file range's pages in before it is read
    /// through: a bulk reader (a save, a diff) then copies without taking a
    /// page fault every 64 KiB, and a `write()` from the mapping without the
    /// kernel's short-copy retry, which zeroes and copies again (measured:
    /// 12% of a 1.2 GB convert). A hint: other memory, and kernels before
    /// 5.14, are left as they are. Ranges under [`POPULATE_MIN`] are left
    /// alone: one fault maps them anyway, and a file of many small arrays
    /// would pay a system call per array.
    pub(crate) fn populate_mapping(&self) {
        #[cfg(target_os = "linux")]
        if let Memory::Shared {
            source,
            offset,
            len,
        } = &self.0.memory
        {
            if let SharedSource::MappedFile(map, _) = &**source {
                if *len >= POPULATE_MIN {
                    // An error (an old kernel, a file truncated under us)
                    // leaves the reads to fault, or fail, as before.
                    let _ = map.advise_range(memmap2::Advice::PopulateRead, *offset, *len);
                }
            }
        }
    }

    /// For a range of a memory-mapped file kept open: the file and the
    /// range's offset in it.
    pub(crate) fn file_backing(&self) -> Option<(&std::fs::File, u64)> {
        match &self.0.memory {
            Memory::Shared { source, offset, .. } => match &**source {
                SharedSource::MappedFile(_, file) => Some((file, *offset as u64)),
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether the bytes live in page-locked host memory.
    pub fn is_pinned(&self) -> bool {
        matches!(self.0.memory, Memory::Pinned(_))
    }

    /// The device allocation, for device buffers.
    pub(crate) fn device_alloc(&self) -> Option<&crate::cuda::DeviceAlloc> {
        match &self.0.memory {
            Memory::Device(d) => Some(d),
            _ => None,
        }
    }

    /// `len` zero bytes of device memory on `gpu(device)`.
    pub fn device_zeroed(device: u32, len: usize) -> Result<Buffer> {
        Ok(Buffer::new(Memory::Device(crate::cuda::alloc_zeroed(
            device, len,
        )?)))
    }

    /// Device memory on `gpu(device)` holding a copy of `bytes`.
    pub fn device_from(device: u32, bytes: &[u8]) -> Result<Buffer> {
        let d = crate::cuda::alloc_uninit(device, bytes.len())?;
        crate::cuda::htod(&d, bytes)?;
        Ok(Buffer::new(Memory::Device(d)))
    }

    /// Device memory on `gpu(device)` for several arrays carved from one
    /// allocation, contents unspecified until the caller fills them.
    pub(crate) fn device_slab(device: u32, lens: &[usize]) -> Result<Vec<Buffer>> {
        Ok(crate::cuda::alloc_slab(device, lens)?
            .into_iter()
            .map(|d| Buffer::new(Memory::Device(d)))
            .collect())
    }

    /// `len` zero bytes of page-locked host memory, or of ordinary host memory
    /// when no CUDA driver is available.
    pub fn pinned_zeroed(len: usize) -> Result<Buffer> {
        match crate::cuda::alloc_pinned(len)? {
            Some(p) => Ok(Buffer::new(Memory::Pinned(p))),
            None => Buffer::zeroed(len),
        }
    }

    /// Zeroes the bytes in place (a device memset for device memory).
    pub fn fill_zero(&self) -> Result<()> {
        if let Memory::Device(d) = &self.0.memory {
            let _g = self.0.lock.write().unwrap_or_else(|e| e.into_inner());
            return crate::cuda::memset_zero(d);
        }
        self.write()?.fill(0);
        Ok(())
    }

    /// Overwrites the bytes with `bytes` (same length): a host copy, or one
    /// host-to-device copy for device memory.
    pub fn upload(&self, bytes: &[u8]) -> Result<()> {
        if bytes.len() != self.len() {
            return Err(Error::ShapeMismatch(format!(
                "{} bytes do not fit a buffer of {} bytes",
                bytes.len(),
                self.len()
            )));
        }
        if let Memory::Device(d) = &self.0.memory {
            let _g = self.0.lock.write().unwrap_or_else(|e| e.into_inner());
            return crate::cuda::htod(d, bytes);
        }
        copy_bytes(&mut self.write()?, bytes);
        Ok(())
    }

    /// Whether the buffer borrows from a memory-mapped file or shared bytes.
    pub fn is_shared(&self) -> bool {
        matches!(self.0.memory, Memory::Shared { .. })
    }

    /// Address of the first byte (for views handed to numpy / DLPack); for
    /// device memory, the device address (never dereference it on the host).
    pub fn as_ptr(&self) -> *const u8 {
        match &self.0.memory {
            Memory::Host(a) => a.ptr.as_ptr(),
            Memory::Pinned(a) => a.as_ptr(),
            Memory::Device(a) => a.device_ptr() as usize as *const u8,
            // SAFETY: offset + len lies inside the slab (see `slab`).
            Memory::Slab { alloc, offset, .. } => unsafe { alloc.ptr.as_ptr().add(*offset) },
            Memory::Shared { source, offset, .. } => source.bytes()[*offset..].as_ptr(),
            Memory::Whole { alloc } => alloc.ptr.as_ptr(),
        }
    }

    /// Address of the first host byte for writing; `ReadOnly` for shared
    /// memory, an error for device memory (write it through copies).
    pub fn as_mut_ptr(&self) -> Result<*mut u8> {
        match &self.0.memory {
            Memory::Host(a) => Ok(a.ptr.as_ptr()),
            Memory::Pinned(a) => Ok(a.as_ptr()),
            Memory::Device(a) => Err(device_not_host(a.device())),
            // SAFETY: offset + len lies inside the slab (see `slab`).
            Memory::Slab { alloc, offset, .. } => Ok(unsafe { alloc.ptr.as_ptr().add(*offset) }),
            Memory::Shared { .. } => Err(read_only()),
            Memory::Whole { .. } => Err(whole_slab()),
        }
    }

    /// Starts fetching the storage record into cache, so that a later
    /// [`Buffer::prefetch_bytes`] or read does not wait for it. Gathers over
    /// many small arrays issue these some arrays ahead: their records and
    /// bytes lie wherever the allocator put them, and a miss per array costs
    /// as much as copying it.
    pub fn prefetch_storage(&self) {
        prefetch(Arc::as_ptr(&self.0).cast());
    }

    /// Starts fetching the first bytes of host memory (up to [`PREFETCH_BYTES`]).
    pub fn prefetch_bytes(&self) {
        let ptr = match &self.0.memory {
            Memory::Device(_) => return,
            _ => self.as_ptr(),
        };
        let n = self.len().min(PREFETCH_BYTES);
        for off in (0..n).step_by(HOST_ALIGN) {
            prefetch(ptr.wrapping_add(off));
        }
    }

    /// Whether two handles share the same storage.
    pub fn same_storage(&self, other: &Buffer) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Reads host bytes under the storage's read lock (tests only: device
    /// memory can fail to stage, so library code uses [`Buffer::try_read`]).
    #[cfg(test)]
    pub(crate) fn read(&self) -> ReadGuard<'_> {
        match self.try_read() {
            Ok(g) => g,
            Err(e) => panic!("reading device memory failed: {e}"),
        }
    }

    /// Reads the bytes under the storage's read lock; device memory is copied
    /// to the host first (and a failed copy is an error).
    pub fn try_read(&self) -> Result<ReadGuard<'_>> {
        if let Memory::Whole { .. } = self.0.memory {
            return Err(whole_slab());
        }
        let guard = self.0.lock.read().unwrap_or_else(|e| e.into_inner());
        let staged = match &self.0.memory {
            Memory::Device(d) => {
                let host = HostAlloc::uninit(d.len())?;
                // SAFETY: fresh allocation of `len` bytes, exclusively ours.
                let dst = unsafe { std::slice::from_raw_parts_mut(host.ptr.as_ptr(), d.len()) };
                crate::cuda::dtoh(dst, d)?;
                Some(host)
            }
            _ => None,
        };
        Ok(ReadGuard {
            _guard: guard,
            buffer: self,
            staged,
        })
    }

    /// Writes the bytes under the storage's write lock; `ReadOnly` for shared
    /// memory, an error for device memory (see [`copy_buffer`]).
    pub fn write(&self) -> Result<WriteGuard<'_>> {
        let ptr = self.as_mut_ptr()?;
        Ok(WriteGuard {
            _guard: self.0.lock.write().unwrap_or_else(|e| e.into_inner()),
            ptr,
            len: self.len(),
        })
    }
}

/// Bytes of an array [`Buffer::prefetch_bytes`] asks for: small arrays
/// whole; the hardware prefetcher follows the start of bigger ones.
pub(crate) const PREFETCH_BYTES: usize = 512;

/// Asks the CPU to bring `ptr`'s cache line in; a no-op off x86-64.
#[inline(always)]
pub(crate) fn prefetch(ptr: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(ptr.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}

fn device_not_host(device: u32) -> Error {
    Error::invalid(format!(
        "the array lives in gpu({device}) memory, which the host cannot address; \
         copy it to the host (asnumpy(), copyto(cpu())) first"
    ))
}

/// Copies `src`'s bytes into `dst` (same length), whatever memory each lives
/// in: host copy, host-to-device, device-to-host, device-to-device or peer.
pub(crate) fn copy_buffer(dst: &Buffer, src: &Buffer) -> Result<()> {
    if dst.len() != src.len() {
        return Err(Error::ShapeMismatch(format!(
            "cannot copy {} bytes into {} bytes",
            src.len(),
            dst.len()
        )));
    }
    if src.same_storage(dst) {
        return Ok(());
    }
    match (&dst.0.memory, &src.0.memory) {
        (Memory::Device(d), Memory::Device(s)) => {
            let _sg = src.0.lock.read().unwrap_or_else(|e| e.into_inner());
            let _dg = dst.0.lock.write().unwrap_or_else(|e| e.into_inner());
            crate::cuda::dtod(d, s)
        }
        (Memory::Device(_), _) => dst.upload(&src.try_read()?),
        (_, Memory::Device(s)) => {
            let _sg = src.0.lock.read().unwrap_or_else(|e| e.into_inner());
            let mut d = dst.write()?;
            crate::cuda::dtoh(&mut d, s)
        }
        _ => {
            let s = src.try_read()?;
            let mut d = dst.write()?;
            copy_bytes(&mut d, &s);
            Ok(())
        }
    }
}

fn whole_slab() -> Error {
    Error::invalid(
        "this array spans the gradient buffers of several parameters: read or write it \
         through DLPack / numpy views, or each parameter's grad()",
    )
}

fn read_only() -> Error {
    Error::ReadOnly(
        "array is a read-only view of a memory-mapped file; copy it (asnumpy(), copyto) to modify"
            .into(),
    )
}

/// Shared access to a buffer's bytes (a host copy for device memory).
pub struct ReadGuard<'a> {
    _guard: RwLockReadGuard<'a, ()>,
    buffer: &'a Buffer,
    staged: Option<HostAlloc>,
}

impl std::ops::Deref for ReadGuard<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        if let Some(h) = &self.staged {
            // SAFETY: the staging allocation is `len` bytes, filled by the copy.
            return unsafe { std::slice::from_raw_parts(h.ptr.as_ptr(), h.len) };
        }
        match &self.buffer.0.memory {
            // SAFETY: the allocation is `len` bytes; Rust writers hold the write lock.
            Memory::Host(a) => unsafe { std::slice::from_raw_parts(a.ptr.as_ptr(), a.len) },
            // SAFETY: as above, for the pinned allocation.
            Memory::Pinned(a) => unsafe { std::slice::from_raw_parts(a.as_ptr(), a.len()) },
            // Device memory is always staged (see `try_read`).
            Memory::Device(_) => &[],
            // SAFETY: the range lies inside the slab; no other buffer overlaps it.
            Memory::Slab { alloc, offset, len } => unsafe {
                std::slice::from_raw_parts(alloc.ptr.as_ptr().add(*offset), *len)
            },
            Memory::Shared {
                source,
                offset,
                len,
            } => &source.bytes()[*offset..*offset + *len],
            // `try_read` refuses these.
            Memory::Whole { .. } => &[],
        }
    }
}

/// Exclusive access to a writable buffer's bytes.
pub struct WriteGuard<'a> {
    _guard: RwLockWriteGuard<'a, ()>,
    ptr: *mut u8,
    len: usize,
}

impl std::ops::Deref for WriteGuard<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: ptr/len describe a live host allocation held by the guard's buffer.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl std::ops::DerefMut for WriteGuard<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, and the write lock is held.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

/// Copies `src` into `dst` (same length), in parallel for large sizes.
pub(crate) fn copy_bytes(dst: &mut [u8], src: &[u8]) {
    const CHUNK: usize = 8 << 20;
    if src.len() >= 4 * CHUNK && rayon::current_num_threads() > 1 {
        use rayon::prelude::*;
        dst.par_chunks_mut(CHUNK)
            .zip(src.par_chunks(CHUNK))
            .for_each(|(d, s)| d.copy_from_slice(s));
    } else {
        dst.copy_from_slice(src);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_buffers_are_aligned_and_writable() {
        let b = Buffer::zeroed(100).expect("alloc");
        assert_eq!(b.as_ptr() as usize % HOST_ALIGN, 0);
        assert!(b.read().iter().all(|&x| x == 0));
        b.write().expect("writable")[3] = 7;
        assert_eq!(b.read()[3], 7);
        let c = b.clone();
        assert!(c.same_storage(&b));
    }

    #[test]
    fn slab_buffers_are_aligned_disjoint_and_writable() {
        let bufs = Buffer::slab(&[3, 0, 100, 64]).expect("slab");
        for (i, b) in bufs.iter().enumerate() {
            assert_eq!(b.as_ptr() as usize % HOST_ALIGN, 0);
            b.write().expect("writable").fill(i as u8);
        }
        for (i, b) in bufs.iter().enumerate() {
            assert!(b.read().iter().all(|&x| x == i as u8));
        }
        assert_eq!(bufs[2].len(), 100);
    }

    #[test]
    fn large_blocks_are_reused_and_cleared() {
        // An odd size class no other test uses.
        let len = 37 * host_pool::CLASS - 5;
        let first = HostAlloc::uninit(len).expect("alloc");
        let addr = first.ptr.as_ptr() as usize;
        // SAFETY: the allocation is ours and `len` bytes long.
        unsafe { std::ptr::write_bytes(first.ptr.as_ptr(), 0xAB, len) };
        drop(first);
        if host_pool::held_bytes() == 0 {
            return; // pooling disabled by MXPARAMS_HOST_POOL_BYTES=0
        }
        let again = HostAlloc::zeroed(len).expect("alloc");
        assert_eq!(again.ptr.as_ptr() as usize, addr);
        // SAFETY: as above.
        let bytes = unsafe { std::slice::from_raw_parts(again.ptr.as_ptr(), len) };
        assert!(bytes.iter().all(|&b| b == 0));
        drop(again);
        assert!(release_host_pool() >= 37 * host_pool::CLASS);
    }

    #[test]
    fn shared_buffers_are_read_only() {
        let src = Arc::new(SharedSource::Bytes(vec![1, 2, 3, 4, 5]));
        let b = Buffer::shared(src.clone(), 1, 3).expect("in range");
        assert_eq!(&*b.read(), &[2, 3, 4]);
        assert!(matches!(b.write(), Err(Error::ReadOnly(_))));
        assert!(Buffer::shared(src, 3, 3).is_err());
    }
}
