//! Writing a file of known size through a shared memory map, with big copies
//! spread over threads. A streamed `write()` copies into fresh page-cache pages
//! on one thread (about 3 GB/s on the machines measured, the bound of every
//! streamed save); faulting and filling the pages of a mapping scales with
//! cores, and a save from a GPU then keeps up with the device-to-host copies.
//!
//! The file's blocks are reserved with `fallocate` first: a shared mapping of a
//! sparse file would raise SIGBUS when the disk fills up, while `fallocate`
//! fails cleanly. Where it is unsupported the caller streams instead.

use std::fs::File;
use std::io::{self, Write};

use super::fs_hints;
use crate::error::{Error, Result};

/// Files from this size up are written through a mapping (when the machine
/// has more than two cores: with fewer, streaming is as fast).
pub const MIN_MAPPED_SAVE: usize = 64 << 20;

/// Copies from this size up are split over the copy threads.
const PARALLEL_COPY: usize = 4 << 20;
/// Chunk of a parallel copy.
const CHUNK: usize = 1 << 20;

/// Whether a save of `size` bytes into `file` should go through a mapping.
/// `MXPARAMS_SAVE_MAPPED=1` forces it for every non-empty file, `=0` never.
pub fn worth_mapping(file: &File, size: usize) -> bool {
    match std::env::var("MXPARAMS_SAVE_MAPPED")
        .as_deref()
        .map(str::trim)
    {
        Ok("1") => size > 0,
        Ok("0") => false,
        _ => {
            size >= MIN_MAPPED_SAVE && rayon::current_num_threads() > 2 && !fs_hints::on_tmpfs(file)
        }
    }
}

/// A `Write` over a mapped file of fixed size.
pub struct MappedWriter<'a> {
    map: &'a mut [u8],
    pos: usize,
}

impl<'a> MappedWriter<'a> {
    /// A writer at the start of `map`.
    pub fn new(map: &'a mut [u8]) -> Self {
        MappedWriter { map, pos: 0 }
    }

    /// Bytes written so far.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl Write for MappedWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let end = self
            .pos
            .checked_add(buf.len())
            .filter(|&e| e <= self.map.len())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::WriteZero,
                    "the save outgrew its precomputed file size",
                )
            })?;
        let dst = &mut self.map[self.pos..end];
        if buf.len() >= PARALLEL_COPY {
            use rayon::prelude::*;
            dst.par_chunks_mut(CHUNK)
                .zip(buf.par_chunks(CHUNK))
                .for_each(|(d, s)| {
                    populate_write(d);
                    d.copy_from_slice(s);
                });
        } else {
            dst.copy_from_slice(buf);
        }
        self.pos = end;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Asks the kernel to fault in a range's pages for writing in one call rather
/// than one trap per page (Linux 5.14+; older kernels refuse and the copy
/// faults them as usual).
#[cfg(target_os = "linux")]
fn populate_write(range: &mut [u8]) {
    const PAGE: usize = 4096;
    let start = (range.as_ptr() as usize).div_ceil(PAGE) * PAGE;
    let end = (range.as_ptr() as usize + range.len()) / PAGE * PAGE;
    if end > start {
        // SAFETY: the range lies inside a live writable mapping we hold
        // mutably; the advice only faults pages in.
        unsafe {
            libc::madvise(
                start as *mut libc::c_void,
                end - start,
                libc::MADV_POPULATE_WRITE,
            );
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn populate_write(_range: &mut [u8]) {}

/// Writes exactly `size` bytes into `file` (empty, just created) through a
/// mapping; `body` writes them. `Ok(false)` (nothing written) when the file
/// cannot be reserved or mapped, so the caller streams instead.
pub fn write_mapped(
    file: &File,
    size: usize,
    fsync: bool,
    body: impl FnOnce(&mut MappedWriter<'_>) -> Result<()>,
) -> Result<bool> {
    if size == 0 || !fs_hints::reserve(file, size, false)? {
        return Ok(false);
    }
    // SAFETY: the file is our own freshly created temp file, not visible under
    // its final name until renamed, so nobody else resizes it while mapped;
    // its blocks are reserved, so writing the mapping cannot fault for space.
    let mut map = match unsafe { memmap2::MmapOptions::new().len(size).map_mut(file) } {
        Ok(m) => m,
        Err(_) => {
            file.set_len(0)?;
            return Ok(false);
        }
    };
    let mut w = MappedWriter::new(&mut map);
    body(&mut w)?;
    if w.position() != size {
        return Err(Error::invalid(format!(
            "the save wrote {} bytes, not the {size} computed",
            w.position()
        )));
    }
    if fsync {
        map.flush()?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_fills_exactly_and_refuses_overflow() {
        let mut buf = vec![0u8; 10 << 20];
        let big: Vec<u8> = (0..(9 << 20) + 3).map(|i| (i % 251) as u8).collect();
        let mut w = MappedWriter::new(&mut buf);
        w.write_all(b"head").expect("small");
        w.write_all(&big).expect("parallel");
        assert_eq!(w.position(), 4 + big.len());
        let rest = (10 << 20) - w.position();
        assert!(w.write_all(&vec![1u8; rest + 1]).is_err());
        assert_eq!(&buf[..4], b"head");
        assert_eq!(&buf[4..4 + big.len()], &big[..]);
    }

    #[test]
    fn mapped_file_round_trip() {
        let tmp = tempfile::NamedTempFile::new().expect("temp");
        let (file, path) = (tmp.as_file(), tmp.path());
        let data: Vec<u8> = (0..(5 << 20) + 17).map(|i| (i % 253) as u8).collect();
        let done = write_mapped(file, data.len(), true, |w| {
            w.write_all(&data[..100])?;
            w.write_all(&data[100..])?;
            Ok(())
        })
        .expect("write");
        if done {
            assert_eq!(std::fs::read(path).expect("read"), data);
        }
        // A body that writes too little is an error, not a short file.
        let short = write_mapped(file, 64, false, |w| Ok(w.write_all(b"x")?));
        assert!(short.is_err() || short.is_ok_and(|d| !d));
    }
}
