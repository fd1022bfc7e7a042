//! Device-to-host batches through the staging ring: fill `k + 1` is copied
//! into one buffer while fill `k` goes to the consumer (a file write).

use cudarc::driver::result;

use super::memory::{DeviceAlloc, PinnedAlloc};
use super::ring::{return_staging, ring_config, staging, Pipeline, SMALL_UPLOAD};
use super::{activate, cuda, dtoh};
use crate::error::Result;

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

pub(in crate::cuda) fn download_batch(
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
}
