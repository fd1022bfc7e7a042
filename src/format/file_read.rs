//! Loading from a path: what is read, how much, and through what.
//!
//! * A regular file is read with positioned reads (`pread`), never through a
//!   memory map, for the copying load: a file truncated by another process
//!   while it is read then gives a clear error instead of SIGBUS. Small files
//!   and files of small records are read whole, then parsed; big ones have
//!   their headers read window by window and their array data read straight
//!   into the arrays' memory.
//! * Anything else (a FIFO, a character device such as `/dev/zero`) is read
//!   as a stream, and only as far as the headers read so far allow: the list
//!   header is checked after its first 24 bytes, each record's size is known
//!   from its header before its data is read, and nothing past the names is
//!   read. Waits for data can be cancelled.
//!
//! Every look at the [`Cancel`] flag is between reads of at most a chunk.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

use super::cancel::{self, Cancel, CHUNK};
use super::reader::{header_at, names_at, parse_record_at, Cursor, RecordView};
use super::{build, from_bytes, from_shared, hint_foreign, sniff, special, Container, Loaded};
use crate::error::{Error, Result};
use crate::storage::SharedSource;

/// Regular files up to this size are read whole.
const WHOLE_FILE: usize = 1 << 20;
/// Files whose records average less than this are read whole: a read per
/// array would cost more than the one extra copy.
const SMALL_RECORD: usize = 64 << 10;
/// Bytes read at a time while looking for record headers. Each record's
/// header gets a read of its own (the data between is skipped), so a big
/// window would read (and zero) that much of every array twice: 256 KiB per
/// record cost a tenth of the file again on checkpoints of 3 MB arrays.
const WINDOW: usize = 16 << 10;

/// Loads `path` into owned arrays (`mapped` false) or views of a map.
pub(crate) fn load_path(path: &Path, mapped: bool, cancel: &Cancel) -> Result<Loaded> {
    load_inner(path, mapped, cancel).map_err(|e| cancel::from_io(e).at_path(path))
}

fn load_inner(path: &Path, mapped: bool, cancel: &Cancel) -> Result<Loaded> {
    let file = special::open_read(path)?;
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(io_err(libc_eisdir()));
    }
    if mapped {
        let source = source_of(file, &meta, cancel)?;
        // A map is sniffed by its start only; read bytes by all of them.
        let head = match &*source {
            SharedSource::MappedFile(..) => source.bytes().get(..64).unwrap_or(source.bytes()),
            SharedSource::Bytes(b) => b,
        };
        return hint_foreign(from_shared(source.clone()), head);
    }
    if !meta.is_file() {
        let bytes = read_stream(&file, cancel)?;
        return hint_foreign(from_bytes(&bytes), &bytes);
    }
    let len = usize::try_from(meta.len()).map_err(|_| Error::invalid("file too large"))?;
    let mut win = FileWindow {
        file: &file,
        buf: Vec::new(),
        base: 0,
        end: len,
    };
    win.ensure(0, len.min(WINDOW))?;
    let head = win.buf.get(..64).unwrap_or(&win.buf).to_vec();
    if super::safetensors::starts_like(&head, len) {
        return super::safetensors::load_owned_by_reads(len, &|dst: &mut [u8], at: usize| {
            cancel.check()?;
            pread_exact(&file, dst, at)
        });
    }
    let whole = len <= WHOLE_FILE
        || sniff(&head) != Container::Params
        || header_count(&head).map_or(true, |n| len / n.max(1) < SMALL_RECORD);
    if whole {
        let bytes = read_whole(&file, len, cancel)?;
        return hint_foreign(from_bytes(&bytes), &bytes);
    }
    let (records, names) = hint_foreign(scan(&mut win, cancel), &head)?;
    build::owned_parts(records, names, &|r, dst| {
        cancel.check()?;
        pread_exact(&file, dst, r.start)
    })
}

/// The file for header-only work (inspection): regular files mapped, FIFOs
/// and devices read only as far as their headers allow. Errors name the file.
pub(crate) fn open_source(path: &Path) -> Result<Arc<SharedSource>> {
    let open = || -> Result<Arc<SharedSource>> {
        let file = special::open_read(path)?;
        let meta = file.metadata()?;
        if meta.is_dir() {
            return Err(io_err(libc_eisdir()));
        }
        source_of(file, &meta, &Cancel::new())
    };
    open().map_err(|e| cancel::from_io(e).at_path(path))
}

/// An open file (not a directory) as shared bytes: a regular file mapped
/// (read whole when it cannot be), a FIFO or device read as far as its
/// headers allow.
fn source_of(file: File, meta: &std::fs::Metadata, cancel: &Cancel) -> Result<Arc<SharedSource>> {
    if !meta.is_file() {
        return Ok(Arc::new(SharedSource::Bytes(read_stream(&file, cancel)?)));
    }
    let len = usize::try_from(meta.len()).map_err(|_| Error::invalid("file too large"))?;
    if len > 0 {
        // SAFETY: a read-only map. As every mmap reader (numpy.memmap,
        // safetensors) we rely on nobody truncating the file while it is
        // mapped (documented); our own `save` replaces files by rename.
        if let Ok(map) = unsafe { memmap2::MmapOptions::new().map(&file) } {
            return Ok(Arc::new(SharedSource::MappedFile(map, file)));
        }
    }
    Ok(Arc::new(SharedSource::Bytes(read_whole(
        &file, len, cancel,
    )?)))
}

fn libc_eisdir() -> io::Error {
    #[cfg(unix)]
    {
        io::Error::from_raw_os_error(libc::EISDIR)
    }
    #[cfg(not(unix))]
    {
        io::Error::new(io::ErrorKind::IsADirectory, "is a directory")
    }
}

fn io_err(e: io::Error) -> Error {
    Error::from(e)
}

/// The record count of a `.params` header, if the bytes hold one.
fn header_count(head: &[u8]) -> Option<usize> {
    let n = u64::from_le_bytes(head.get(16..24)?.try_into().ok()?);
    usize::try_from(n).ok()
}

/// `pread` of exactly `dst.len()` bytes at `at`; a short read means the file
/// shrank while it was read.
fn pread_exact(file: &File, dst: &mut [u8], at: usize) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        file.read_exact_at(dst, at as u64).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                Error::from(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "the file ended before byte {} while being read (was it truncated \
                         by another process?)",
                        at + dst.len()
                    ),
                ))
            } else {
                e.into()
            }
        })
    }
    #[cfg(not(unix))]
    {
        use std::io::Seek;
        let mut f = file;
        f.seek(io::SeekFrom::Start(at as u64))?;
        Ok(f.read_exact(dst)?)
    }
}

/// A regular file read whole, chunk by chunk.
fn read_whole(file: &File, len: usize, cancel: &Cancel) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    out.try_reserve_exact(len)
        .map_err(|_| io_err(io::ErrorKind::OutOfMemory.into()))?;
    out.resize(len, 0);
    for (i, piece) in out.chunks_mut(CHUNK).enumerate() {
        cancel.check()?;
        pread_exact(file, piece, i * CHUNK)?;
    }
    Ok(out)
}

/// Where header bytes come from while scanning: a window over a file, or
/// everything read so far from a stream.
trait Source {
    /// The bytes held, the offset of the first, and the input's length
    /// (`usize::MAX` while a stream's end is unknown).
    fn view(&self) -> (&[u8], usize, usize);
    /// Makes the bytes `from..upto` available (fewer at the end of input).
    fn ensure(&mut self, from: usize, upto: usize) -> Result<()>;
}

struct FileWindow<'a> {
    file: &'a File,
    buf: Vec<u8>,
    base: usize,
    end: usize,
}

impl Source for FileWindow<'_> {
    fn view(&self) -> (&[u8], usize, usize) {
        (&self.buf, self.base, self.end)
    }

    fn ensure(&mut self, from: usize, upto: usize) -> Result<()> {
        let upto = upto.min(self.end);
        if from >= self.base && upto <= self.base + self.buf.len() {
            return Ok(());
        }
        let len = (upto.saturating_sub(from)).max(WINDOW).min(self.end - from);
        self.buf.clear();
        self.buf.resize(len, 0);
        self.base = from;
        pread_exact(self.file, &mut self.buf, from)
    }
}

struct StreamBuf<'a> {
    file: &'a File,
    cancel: &'a Cancel,
    buf: Vec<u8>,
    end: usize,
}

impl Source for StreamBuf<'_> {
    fn view(&self) -> (&[u8], usize, usize) {
        (&self.buf, 0, self.end)
    }

    fn ensure(&mut self, _from: usize, upto: usize) -> Result<()> {
        let mut r = special::Polled::new(self.file, self.cancel);
        while self.buf.len() < upto && self.end == usize::MAX {
            let want = (upto - self.buf.len()).min(CHUNK);
            let at = self.buf.len();
            self.buf.resize(at + want, 0);
            let n = r.read(&mut self.buf[at..])?;
            self.buf.truncate(at + n);
            if n == 0 {
                self.end = self.buf.len();
            }
        }
        Ok(())
    }
}

/// Runs `parse` on a cursor at `pos`, fetching more bytes and parsing again
/// while it fails for want of bytes the source has not read yet.
fn at<T>(
    src: &mut impl Source,
    pos: usize,
    parse: impl Fn(&mut Cursor<'_>) -> Result<T>,
) -> Result<T> {
    loop {
        let (result, missed) = {
            let (bytes, base, end) = src.view();
            let mut c = Cursor::windowed(bytes, base, pos, end);
            let r = parse(&mut c);
            (r, c.missed())
        };
        if missed == 0 {
            return result;
        }
        src.ensure(pos, missed.max(pos + 4096))?;
    }
}

type Scan = (Vec<RecordView>, Option<Vec<String>>);

/// The records and names of a `.params` input, reading only headers (and
/// sparse aux data, which validation needs) from `src`; also the end offset.
fn scan_to_end(src: &mut impl Source, cancel: &Cancel) -> Result<(Scan, usize)> {
    let (n, _) = at(src, 0, header_at)?;
    let mut pos = 24;
    let mut records = Vec::new();
    for _ in 0..n {
        cancel.check()?;
        let rec = at(src, pos, parse_record_at)?;
        pos = rec.end;
        records.push(rec);
    }
    let (names, end) = at(src, pos, |c| names_at(c, n, str::to_owned))?;
    Ok(((records, names), end))
}

fn scan(src: &mut impl Source, cancel: &Cancel) -> Result<Scan> {
    scan_to_end(src, cancel).map(|(s, _)| s)
}

/// Reads a stream as far as its headers say it goes (to its end for `.npz`
/// and `.npy`, which need the whole input).
fn read_stream(file: &File, cancel: &Cancel) -> Result<Vec<u8>> {
    let mut src = StreamBuf {
        file,
        cancel,
        buf: Vec::new(),
        end: usize::MAX,
    };
    src.ensure(0, 8)?;
    if sniff(&src.buf) != Container::Params {
        let mut r = special::Polled::new(file, cancel);
        let mut chunk = vec![0u8; 1 << 16];
        loop {
            let n = r.read(&mut chunk)?;
            if n == 0 {
                return Ok(src.buf);
            }
            src.buf.extend_from_slice(&chunk[..n]);
        }
    }
    match scan_to_end(&mut src, cancel) {
        Ok((_, end)) => {
            src.ensure(0, end)?;
            src.buf.truncate(end);
            Ok(src.buf)
        }
        // What was read fails to parse: the caller's parse reports it.
        Err(Error::Format { .. }) => Ok(src.buf),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn big_files_load_through_windows_as_whole_ones_do() {
        use crate::{Context, DType, NDArray};
        // Big arrays (read by pread) between small ones (inside windows).
        let mut arrays = Vec::new();
        for i in 0..6usize {
            let n = if i % 2 == 0 { 300_000 } else { 7 };
            let data: Vec<u8> = (0..n * 4).map(|j| (i * 31 + j) as u8).collect();
            let a = NDArray::from_bytes(&data, &[n], DType::Float32, Context::cpu(0));
            arrays.push(a.expect("array"));
        }
        let refs: Vec<&NDArray> = arrays.iter().collect();
        let names: Vec<String> = (0..6).map(|i| format!("p{i}")).collect();
        let nrefs: Vec<&str> = names.iter().map(String::as_str).collect();
        let bytes =
            super::super::to_bytes(Some(&nrefs), &refs, &Default::default()).expect("bytes");
        assert!(bytes.len() > WHOLE_FILE && bytes.len() / 6 >= SMALL_RECORD);
        let mut tmp = tempfile::NamedTempFile::new().expect("temp");
        tmp.write_all(&bytes).expect("write");
        let got = load_path(tmp.path(), false, &Cancel::new()).expect("load");
        let want = from_bytes(&bytes).expect("parse");
        assert_eq!(got.names, want.names);
        for (a, b) in got.arrays.iter().zip(&want.arrays) {
            assert_eq!(a.shape(), b.shape());
            assert_eq!(a.dtype(), DType::Float32);
            assert_eq!(
                &*a.buffer().try_read().expect("a"),
                &*b.buffer().try_read().expect("b")
            );
        }
        // Cut short: a clear error naming the file, never a crash.
        tmp.as_file()
            .set_len(bytes.len() as u64 - 100)
            .expect("truncate");
        let err = load_path(tmp.path(), false, &Cancel::new()).expect_err("short");
        assert_eq!(err.path(), Some(tmp.path()), "{err}");
        // Cancelled before it starts: Interrupted, naming the file.
        let c = Cancel::new();
        c.cancel();
        std::fs::write(tmp.path(), &bytes).expect("rewrite");
        let err = load_path(tmp.path(), false, &c).expect_err("cancelled");
        assert!(matches!(err, Error::Interrupted { .. }), "{err:?}");
    }
}
