//! Reading and writing files that are not regular files (FIFOs, character
//! devices) without ever blocking for longer than a short poll: they are
//! opened non-blocking, and every wait for data or room is a `poll` of at
//! most [`POLL_MS`] between looks at the [`Cancel`] flag. A load from a FIFO
//! whose writer never comes, or a save to one whose reader never comes, can
//! therefore always be interrupted.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

use super::cancel::Cancel;

/// The longest single wait between looks at the cancel flag.
const POLL_MS: i32 = 20;

/// Opens `path` for reading; a FIFO's open does not wait for a writer.
pub(crate) fn open_read(path: &Path) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NONBLOCK);
    }
    opts.open(path)
}

/// Opens an existing non-regular file for writing, as `fopen(path, "wb")`
/// would, but waiting for a FIFO's reader in cancellable steps.
pub(crate) fn open_write(path: &Path, cancel: &Cancel) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NONBLOCK);
    }
    loop {
        match opts.open(path) {
            // A FIFO without a reader (yet).
            #[cfg(unix)]
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                cancel.check_io()?;
                std::thread::sleep(std::time::Duration::from_millis(POLL_MS as u64));
            }
            other => return other,
        }
    }
}

/// A non-blocking file read or written with cancellable waits.
pub(crate) struct Polled<'a> {
    file: &'a File,
    cancel: &'a Cancel,
}

impl<'a> Polled<'a> {
    pub(crate) fn new(file: &'a File, cancel: &'a Cancel) -> Self {
        Polled { file, cancel }
    }

    /// One `poll` of at most [`POLL_MS`]: whether the file is ready (or hung
    /// up); a signal's interruption counts as not ready.
    #[cfg(unix)]
    fn poll_once(&self, events: libc::c_short) -> io::Result<bool> {
        use std::os::unix::io::AsRawFd;
        let mut fd = libc::pollfd {
            fd: self.file.as_raw_fd(),
            events,
            revents: 0,
        };
        // SAFETY: one pollfd for our own open descriptor, valid for the call.
        let rc = unsafe { libc::poll(&mut fd, 1, POLL_MS) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
        Ok(rc > 0)
    }

    #[cfg(unix)]
    fn wait(&self, events: libc::c_short) -> io::Result<()> {
        self.cancel.check_io()?;
        self.poll_once(events)?;
        self.cancel.check_io()
    }

    /// Waits until `poll` reports the file ready (or hung up).
    #[cfg(unix)]
    fn wait_ready(&self, events: libc::c_short) -> io::Result<()> {
        loop {
            self.cancel.check_io()?;
            if self.poll_once(events)? {
                return Ok(());
            }
        }
    }

    #[cfg(not(unix))]
    fn wait_ready(&self, _events: i16) -> io::Result<()> {
        self.cancel.check_io()
    }

    #[cfg(not(unix))]
    fn wait(&self, _events: i16) -> io::Result<()> {
        self.cancel.check_io()?;
        std::thread::sleep(std::time::Duration::from_millis(POLL_MS as u64));
        self.cancel.check_io()
    }
}

#[cfg(unix)]
const POLL_IN: libc::c_short = libc::POLLIN;
#[cfg(unix)]
const POLL_OUT: libc::c_short = libc::POLLOUT;
#[cfg(not(unix))]
const POLL_IN: i16 = 0;
#[cfg(not(unix))]
const POLL_OUT: i16 = 0;

impl Read for Polled<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // A non-blocking read of a FIFO that has no writer yet returns 0
        // (end of input); poll waits for the writer (Linux reports neither
        // POLLIN nor POLLHUP until one has come).
        self.wait_ready(POLL_IN)?;
        loop {
            self.cancel.check_io()?;
            match (&mut &*self.file).read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.wait(POLL_IN)?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }
}

impl Write for Polled<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            self.cancel.check_io()?;
            match (&mut &*self.file).write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.wait(POLL_OUT)?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
