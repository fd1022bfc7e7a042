//! Where a save writes: which file a path names (through symlinks), whether
//! that file may be replaced, and the temp file the new contents go to first.
//!
//! Decisions (documented in docs/params-format.md, "Saving"):
//! * A symlink is followed, chain and all, and its final target is replaced;
//!   a dangling link's target is created. A loop is an `ELOOP` error.
//! * A regular file whose mode grants nobody write access (0444), or that
//!   the caller may not write, is refused with `EACCES`, as MXNet's `fopen`
//!   refuses it (checked here because root's `fopen` would not refuse, and a
//!   rename never asks).
//! * A FIFO or character device is written through (opened and written, as
//!   MXNet does), never replaced; a block device, socket or directory is
//!   refused.
//! * Temp files are named `.NAME.mxparams-tmp-PID-RANDOM` beside the target;
//!   a save removes those that processes no longer alive left behind.

use std::fs::{self, Metadata};
use std::io;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::error::{Error, Result};

/// How many symlinks a path may pass through (Linux's own limit).
const MAX_LINKS: usize = 40;
/// The marker between a temp file's target name and its owner's PID.
const TEMP_MARK: &str = ".mxparams-tmp-";
/// A dead process's temp file is removed only when this old, so that a save
/// from another machine sharing the directory (whose PIDs mean nothing here)
/// is never disturbed while it writes.
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// What a save to a path does.
#[derive(Debug)]
pub(crate) enum Target {
    /// Write a temp file beside `path` and rename it over `path`; `old` is
    /// the file replaced, if any.
    Replace {
        path: PathBuf,
        old: Option<Metadata>,
    },
    /// Open `path` and write into it (FIFOs, character devices).
    WriteThrough(PathBuf),
}

fn os_error(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

/// Follows `path` through symlinks to the file a save should write.
fn follow_links(path: &Path) -> Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let to = fs::read_link(&p).map_err(|e| Error::io(&p, e))?;
                p = match p.parent() {
                    Some(dir) if to.is_relative() => dir.join(to),
                    _ => to,
                };
            }
            _ => return Ok(p),
        }
    }
    Err(Error::io(path, os_error(libc::ELOOP)))
}

/// Decides what a save to `path` does.
pub(crate) fn resolve(path: &Path) -> Result<Target> {
    if path.file_name().is_none() {
        return Err(Error::invalid(format!(
            "cannot save to {}: not a file path",
            path.display()
        )));
    }
    let target = follow_links(path)?;
    let meta = match fs::metadata(&target) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(Target::Replace {
                path: target,
                old: None,
            })
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    let kind = meta.file_type();
    if kind.is_dir() {
        return Err(Error::io(path, os_error(libc::EISDIR)));
    }
    if kind.is_file() {
        if !writable(&target, &meta) {
            return Err(Error::io(path, os_error(libc::EACCES)));
        }
        return Ok(Target::Replace {
            path: target,
            old: Some(meta),
        });
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() || kind.is_char_device() {
            return Ok(Target::WriteThrough(target));
        }
    }
    Err(Error::io(
        path,
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "refusing to save over a block device or socket",
        ),
    ))
}

/// Whether the caller may write `path`: a mode with no write bit at all is
/// read-only even for root; otherwise the OS decides (`access`).
#[cfg(unix)]
fn writable(path: &Path, meta: &Metadata) -> bool {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::PermissionsExt;
    if meta.permissions().mode() & 0o222 == 0 {
        return false;
    }
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return true;
    };
    // SAFETY: a NUL-terminated path that outlives the call.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

#[cfg(not(unix))]
fn writable(_path: &Path, meta: &Metadata) -> bool {
    !meta.permissions().readonly()
}

/// The directory holding `path` ("." for a bare name).
fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A new temp file beside `path`, readable and writable, with the mode a
/// new file gets (0666 less the umask) or `old`'s mode. Stale temp files of
/// dead processes in the directory are removed first.
pub(crate) fn temp_beside(path: &Path, old: Option<&Metadata>) -> Result<NamedTempFile> {
    let dir = dir_of(path);
    remove_stale(dir);
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(path.file_name().unwrap_or_default());
    prefix.push(format!("{TEMP_MARK}{}-", std::process::id()));
    let mut b = tempfile::Builder::new();
    b.prefix(&prefix).rand_bytes(8);
    #[cfg(unix)]
    let perms = {
        use std::os::unix::fs::PermissionsExt;
        fs::Permissions::from_mode(0o666)
    };
    #[cfg(unix)]
    b.permissions(perms);
    let tmp = b.tempfile_in(dir).map_err(|e| Error::io(path, e))?;
    if let Some(old) = old {
        // Keep the replaced file's permissions, as overwriting in place would.
        tmp.as_file()
            .set_permissions(old.permissions())
            .map_err(|e| Error::io(path, e))?;
    }
    Ok(tmp)
}

/// The PID in a temp file name of ours, if it is one.
fn temp_owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix('.')?;
    let at = rest.rfind(TEMP_MARK)?;
    let (pid, _random) = rest[at + TEMP_MARK.len()..].split_once('-')?;
    pid.parse().ok()
}

#[cfg(unix)]
fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return true;
    };
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(not(unix))]
fn alive(_pid: u32) -> bool {
    true
}

/// Removes temp files in `dir` left by saves of processes no longer alive
/// (killed mid-save). Best effort: a failure leaves the file.
fn remove_stale(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let me = std::process::id();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(temp_owner) else {
            continue;
        };
        let old_enough = entry
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= STALE_AFTER);
        if pid != me && old_enough && !alive(pid) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_carry_the_owner() {
        assert_eq!(temp_owner(".w.params.mxparams-tmp-123-abcdEFGH"), Some(123));
        assert_eq!(temp_owner(".a.mxparams-tmp-.mxparams-tmp-7-x"), Some(7));
        assert_eq!(temp_owner("w.params.mxparams-tmp-123-x"), None);
        assert_eq!(temp_owner(".w.params.tmp"), None);
    }
}
