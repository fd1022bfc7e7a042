//! A `Write` that hands filled chunks to a second thread, which makes the
//! `write()` system calls. A file of many small arrays costs about as much to
//! gather (one cache miss or more per array, wherever the caller's arrays
//! live) as the kernel takes to copy it into the page cache; on one thread the
//! two add up, on two they overlap.

use std::fs::File;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};

use crate::error::{Error, Result};

/// Files from this size up are worth a second thread.
const MIN_PIPELINED: usize = 1 << 20;
/// Records averaging more than this stream well on one thread: their copies
/// are few and long, and the buffered writer passes them straight through.
const MAX_MEAN_RECORD: usize = 64 << 10;
/// Bytes handed over at a time.
const CHUNK: usize = 512 << 10;
/// Filled chunks that may wait for the writer thread.
const DEPTH: usize = 2;

/// Whether a save of `size` bytes in `records` records should be pipelined.
pub fn worth_pipelining(size: usize, records: usize) -> bool {
    size >= MIN_PIPELINED
        && records > 0
        && size / records <= MAX_MEAN_RECORD
        && rayon::current_num_threads() > 1
}

/// The writing end given to `body`: bytes are gathered into chunks, and full
/// chunks go to the writer thread.
pub struct ChunkWriter {
    current: Vec<u8>,
    full: SyncSender<Vec<u8>>,
    empty: Receiver<Vec<u8>>,
    /// Chunks allocated so far; at most `DEPTH + 2` ever exist.
    allocated: usize,
}

fn writer_gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the writer thread stopped")
}

impl ChunkWriter {
    fn hand_over(&mut self) -> io::Result<()> {
        let next = match self.empty.try_recv() {
            Ok(chunk) => chunk,
            Err(_) if self.allocated < DEPTH + 2 => {
                self.allocated += 1;
                Vec::with_capacity(CHUNK)
            }
            Err(_) => self.empty.recv().map_err(|_| writer_gone())?,
        };
        let full = std::mem::replace(&mut self.current, next);
        self.full.send(full).map_err(|_| writer_gone())
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.current.len();
        let n = buf.len().min(room);
        self.current.extend_from_slice(&buf[..n]);
        if self.current.len() == CHUNK {
            self.hand_over()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.current.is_empty() {
            self.hand_over()?;
        }
        Ok(())
    }
}

/// Runs `body` against a [`ChunkWriter`] whose chunks a second thread writes
/// to `file`, in order. An I/O error of the writer thread is returned in
/// preference to the error `body` then sees.
pub fn write_pipelined(
    file: &File,
    body: impl FnOnce(&mut ChunkWriter) -> Result<()>,
) -> Result<()> {
    std::thread::scope(|scope| {
        let (full_tx, full_rx) = mpsc::sync_channel::<Vec<u8>>(DEPTH);
        let (empty_tx, empty_rx) = mpsc::channel::<Vec<u8>>();
        let writer = scope.spawn(move || -> io::Result<()> {
            let mut out = file;
            for mut chunk in full_rx {
                out.write_all(&chunk)?;
                chunk.clear();
                // The gathering side may have finished already.
                let _ = empty_tx.send(chunk);
            }
            Ok(())
        });
        let mut w = ChunkWriter {
            current: Vec::with_capacity(CHUNK),
            full: full_tx,
            empty: empty_rx,
            allocated: 1,
        };
        let gathered = body(&mut w).and_then(|()| Ok(w.flush()?));
        // Closing the channel ends the writer's loop.
        drop(w);
        let written = writer
            .join()
            .map_err(|_| Error::invalid("the file writer thread panicked"))?;
        written?;
        gathered
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempfile::NamedTempFile;

    #[test]
    fn writes_every_byte_in_order() {
        let tmp = NamedTempFile::new().expect("temp file");
        let pieces: Vec<Vec<u8>> = (0..5000u32)
            .map(|i| {
                let len = (i as usize * 37) % 3000;
                (0..len).map(|j| (i as usize + j) as u8).collect()
            })
            .collect();
        write_pipelined(tmp.as_file(), |w| {
            for p in &pieces {
                w.write_all(p)?;
            }
            Ok(())
        })
        .expect("pipelined write");
        let back = std::fs::read(tmp.path()).expect("read back");
        assert_eq!(back, pieces.concat());
    }

    #[test]
    fn body_errors_are_returned_and_stop_the_writer() {
        let tmp = NamedTempFile::new().expect("temp file");
        let err = write_pipelined(tmp.as_file(), |w| {
            w.write_all(&vec![7u8; 3 * CHUNK])?;
            Err(Error::invalid("stop here"))
        })
        .expect_err("body failed");
        assert!(err.to_string().contains("stop here"), "{err}");
    }

    #[test]
    fn writer_errors_win_over_what_the_body_sees() {
        // A read-only handle: every write() fails.
        let tmp = NamedTempFile::new().expect("temp file");
        let file = File::open(tmp.path()).expect("read-only handle");
        let err = write_pipelined(&file, |w| {
            for _ in 0..64 {
                w.write_all(&[1u8; CHUNK])?;
            }
            Ok(())
        })
        .expect_err("writes fail");
        assert!(matches!(err, Error::Io { .. }), "{err:?}");
        assert!(!err.to_string().contains("writer thread stopped"), "{err}");
    }

    #[test]
    fn only_files_of_many_small_records_qualify() {
        let many_cores = rayon::current_num_threads() > 1;
        assert_eq!(worth_pipelining(6 << 20, 20_000), many_cores);
        assert!(!worth_pipelining(100 << 10, 1000));
        assert!(!worth_pipelining(1 << 30, 400));
        assert!(!worth_pipelining(4 << 20, 0));
    }
}
