//! Cancelling a load or save from another thread (the Python binding sets
//! the flag when Ctrl-C arrives). Readers and writers poll it between chunks
//! of at most [`CHUNK`] bytes and between waits on pipes, so a cancelled
//! operation stops within one chunk's time and leaves the target untouched.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};

/// The most bytes moved between two looks at the flag.
pub(crate) const CHUNK: usize = 8 << 20;

/// A flag shared between the thread running a load or save and the threads
/// that may cancel it. Clones share the flag.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A flag that is not set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the operation to stop; it then fails with [`Error::Interrupted`].
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// `Err(Error::Interrupted)` once cancelled.
    pub(crate) fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::Interrupted { path: None })
        } else {
            Ok(())
        }
    }

    /// The same check as an I/O error, for code behind `io::Write`.
    pub(crate) fn check_io(&self) -> io::Result<()> {
        if self.is_cancelled() {
            // Not `Interrupted`: `write_all` and `read_exact` retry those.
            Err(io::Error::other(Cancelled))
        } else {
            Ok(())
        }
    }
}

/// The payload of the I/O error a cancelled write returns.
#[derive(Debug)]
pub(crate) struct Cancelled;

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the operation was interrupted")
    }
}

impl std::error::Error for Cancelled {}

/// Turns the I/O error of a cancelled write back into [`Error::Interrupted`].
pub(crate) fn from_io(err: Error) -> Error {
    match err {
        Error::Io { path, source } if source.get_ref().is_some_and(|e| e.is::<Cancelled>()) => {
            Error::Interrupted { path }
        }
        other => other,
    }
}

/// A `Write` that looks at the flag before every piece of at most [`CHUNK`]
/// bytes it passes on.
pub(crate) struct CancelWrite<'a, W> {
    inner: W,
    cancel: &'a Cancel,
}

impl<'a, W: Write> CancelWrite<'a, W> {
    pub(crate) fn new(inner: W, cancel: &'a Cancel) -> Self {
        CancelWrite { inner, cancel }
    }
}

impl<W: Write> Write for CancelWrite<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.cancel.check_io()?;
        self.inner.write(&buf[..buf.len().min(CHUNK)])
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        for piece in buf.chunks(CHUNK) {
            self.cancel.check_io()?;
            self.inner.write_all(piece)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
