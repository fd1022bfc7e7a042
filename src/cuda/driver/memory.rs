//! Device memory (whole blocks, slab ranges, the zeroed arena) and pinned
//! host memory.

use std::sync::Arc;

use cudarc::driver::result;
use cudarc::driver::sys;

use super::{activate, cuda, memset_zero, sync_default_stream};
use crate::error::Result;

/// One cuMemAlloc block, freed when the last allocation carved from it is dropped.
pub(super) struct DeviceBlock {
    pub(super) ptr: sys::CUdeviceptr,
    pub(super) device: u32,
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
    pub(super) _block: Option<Arc<DeviceBlock>>,
    pub(super) ptr: sys::CUdeviceptr,
    pub(super) len: usize,
    pub(super) device: u32,
}

impl DeviceAlloc {
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

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
    /// The bytes, for writing. The caller must make sure no device copy is
    /// still reading them (the upload ring waits for the slot's event).
    pub(super) fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` is a live allocation of `len` bytes owned by `self`,
        // borrowed mutably here.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }

    /// The bytes.
    pub(super) fn bytes(&self) -> &[u8] {
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

pub(in crate::cuda) fn with_zeroed_arena<R>(f: impl FnOnce() -> R) -> R {
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

pub(in crate::cuda) fn alloc(device: u32, len: usize, zeroed: bool) -> Result<DeviceAlloc> {
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
pub(super) const SLAB_ALIGN: usize = 256;

pub(in crate::cuda) fn alloc_slab(device: u32, lens: &[usize]) -> Result<Vec<DeviceAlloc>> {
    let (offsets, total) = crate::slab::layout(lens, SLAB_ALIGN)?;
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

pub(in crate::cuda) fn alloc_pinned(len: usize) -> Result<PinnedAlloc> {
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
