//! Host-to-device batches through the staging ring: the jobs are cut into
//! buffer fills, each fill into chunks that copy threads stage (positioned
//! reads or copies) and queue on the ring's stream as soon as each is staged.

use std::sync::Arc;

use cudarc::driver::result;
use cudarc::driver::sys;

use super::memory::{DeviceAlloc, PinnedAlloc, SLAB_ALIGN};
use super::ring::{copy_pool, return_staging, ring_config, staging, Pipeline, SMALL_UPLOAD};
use super::{activate, check_len, cuda, htod};
use crate::cuda::HostRange;
use crate::error::{Error, Result};

pub(in crate::cuda) fn upload_batch(
    device: u32,
    jobs: &[(HostRange<'_>, &DeviceAlloc)],
) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::super::memory::DeviceBlock;
    use super::*;

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
