//! Native halves of `mxparams.nd`: array creation from numpy, zero-filled
//! arrays, sparse construction, and `.params` load/save. `mxparams/nd.py`
//! turns MXNet's loose Python signatures into these typed calls.
//!
//! File and buffer I/O run with the GIL released. Loaded arrays are placed on
//! `cpu(0)` whatever device the file records (as a CPU build of MXNet does):
//! the recorded device is metadata, not a place the bytes live.

use std::path::PathBuf;

use numpy::PyUntypedArray;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString};

use mxparams::context::Context;
use mxparams::format::{self, Loaded, RecordVersion, SaveOptions};
use mxparams::ndarray::{NDArray, SType};

use super::context::ctx_or_current;
use super::convert::{from_numpy, numpy_dtype, to_dtype};
use super::errors::IntoPyResult;
use super::ndarray::{_unpickle_ndarray, PyNDArray};

/// A new NDArray holding a copy of a C-contiguous numpy array.
#[pyfunction]
#[pyo3(signature = (source, ctx = None))]
fn _from_numpy(
    source: &Bound<'_, PyUntypedArray>,
    ctx: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyNDArray> {
    let ctx = ctx_or_current(ctx)?;
    if !ctx.is_host() {
        mxparams::check_device(ctx.device_id).py()?;
    }
    // GPU arrays and (with a driver) page-locked ones take a second copy
    // from an ordinary host array.
    if !ctx.is_host() || (ctx == Context::cpu_pinned(ctx.device_id) && mxparams::num_gpus() > 0) {
        let host = from_numpy(source, Context::cpu(0))?;
        return Ok(source.py().detach(move || host.copy_to(ctx)).py()?.into());
    }
    Ok(from_numpy(source, ctx)?.into())
}

/// The numpy dtype for a dtype-like (`'bfloat16'` included).
#[pyfunction]
fn _numpy_dtype<'py>(dtype: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    Ok(numpy_dtype(dtype.py(), to_dtype(dtype)?)?.into_any())
}

/// A zero-filled dense array.
#[pyfunction]
#[pyo3(signature = (shape, ctx = None, dtype = None))]
fn _zeros(
    py: Python<'_>,
    shape: Vec<usize>,
    ctx: Option<&Bound<'_, PyAny>>,
    dtype: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyNDArray> {
    let ctx = ctx_or_current(ctx)?;
    let dtype = match dtype {
        Some(d) if !d.is_none() => to_dtype(d)?,
        _ => mxparams::dtype::DType::Float32,
    };
    let a = py.detach(|| NDArray::zeros(&shape, dtype, ctx)).py()?;
    Ok(a.into())
}

/// A sparse array from its parts; the structure is validated.
#[pyfunction]
#[pyo3(signature = (stype, shape, data, indices, indptr = None))]
fn _sparse(
    stype: &str,
    shape: Vec<usize>,
    data: &Bound<'_, PyNDArray>,
    indices: &Bound<'_, PyNDArray>,
    indptr: Option<&Bound<'_, PyNDArray>>,
) -> PyResult<PyNDArray> {
    let st = stype.parse::<SType>().py()?;
    if st == SType::Default {
        return Err(crate::errors::MXParamsValueError::new_err(
            "stype must be 'row_sparse' or 'csr'",
        ));
    }
    let a = NDArray::sparse(
        st,
        shape,
        data.get().inner.clone(),
        indices.get().inner.clone(),
        indptr.map(|p| p.get().inner.clone()),
    )
    .py()?;
    Ok(a.into())
}

fn save_options(version: Option<u32>, fsync: bool) -> PyResult<SaveOptions> {
    let version = match version {
        None => RecordVersion::Auto,
        Some(2) => RecordVersion::V2,
        Some(3) => RecordVersion::V3,
        Some(v) => {
            return Err(crate::errors::MXParamsValueError::new_err(format!(
                "record version must be 2 or 3, not {v}"
            )))
        }
    };
    Ok(SaveOptions { version, fsync })
}

/// The arrays inside the Python objects, borrowed: the caller's `Bound`s
/// keep them alive, and the wrapper is frozen, so no clone is needed.
fn borrow_arrays<'a>(arrays: &'a [Bound<'_, PyNDArray>]) -> Vec<&'a NDArray> {
    arrays.iter().map(|a| &a.get().inner).collect()
}

/// Array names as given: a list of str, or (the fast path `nd.save` uses)
/// one str holding every name joined by NUL, which costs one conversion
/// instead of one per name; names themselves may not contain NUL, so the
/// split is exact.
enum Names {
    None,
    Joined(String),
    List(Vec<String>),
}

impl Names {
    fn extract(names: Option<&Bound<'_, PyAny>>) -> PyResult<Names> {
        let Some(obj) = names.filter(|o| !o.is_none()) else {
            return Ok(Names::None);
        };
        Ok(match obj.cast::<PyString>() {
            Ok(s) => Names::Joined(s.to_cow()?.into_owned()),
            Err(_) => Names::List(obj.extract::<Vec<String>>()?),
        })
    }

    /// The names as slices of what was extracted, checked against the
    /// number of arrays `n`.
    fn refs(&self, n: usize) -> PyResult<Option<Vec<&str>>> {
        let (refs, joined): (Vec<&str>, bool) = match self {
            Names::None => return Ok(None),
            // "" is no names for no arrays, or one empty name for one array.
            Names::Joined(text) if n == 0 && text.is_empty() => (Vec::new(), true),
            Names::Joined(text) => (text.split('\0').collect(), true),
            Names::List(list) => (list.iter().map(String::as_str).collect(), false),
        };
        if refs.len() != n {
            return Err(crate::errors::MXParamsValueError::new_err(if joined {
                "array names must not contain NUL characters (MXNet would silently cut them)"
                    .to_string()
            } else {
                format!("{} names for {n} arrays", refs.len())
            }));
        }
        Ok(Some(refs))
    }
}

/// Saves arrays (with names, for a dict file) to `fname`, atomically.
#[pyfunction]
#[pyo3(signature = (fname, names, arrays, version = None, fsync = false))]
fn _save(
    py: Python<'_>,
    fname: PathBuf,
    names: Option<&Bound<'_, PyAny>>,
    arrays: Vec<Bound<'_, PyNDArray>>,
    version: Option<u32>,
    fsync: bool,
) -> PyResult<()> {
    let names = Names::extract(names)?;
    let name_refs = names.refs(arrays.len())?;
    let opts = save_options(version, fsync)?;
    let refs = borrow_arrays(&arrays);
    interruptible(py, |cancel| {
        format::save_cancellable(&fname, name_refs.as_deref(), &refs, &opts, cancel)
    })
}

/// How long the calling thread waits for the worker between looks at
/// Python's signal handlers.
const SIGNAL_SLICE: std::time::Duration = std::time::Duration::from_millis(20);

/// Runs `work` on a worker thread with the GIL released while this thread
/// waits in short slices, running Python's signal handlers between them. When
/// one raises (Ctrl-C: KeyboardInterrupt), the work's [`format::Cancel`] is
/// set; the worker stops at its next look at it (a chunk or a poll slice
/// later, with the target file untouched) and the handler's exception is
/// raised here.
fn interruptible<T: Send>(
    py: Python<'_>,
    work: impl FnOnce(&format::Cancel) -> mxparams::Result<T> + Send,
) -> PyResult<T> {
    let cancel = format::Cancel::new();
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let cancel_ref = &cancel;
        scope.spawn(move || {
            let _ = tx.send(work(cancel_ref));
        });
        let mut rx = rx;
        loop {
            // The receiver travels into the GIL-free closure and back.
            let (got, back) = py.detach(move || (rx.recv_timeout(SIGNAL_SLICE), rx));
            rx = back;
            match got {
                Ok(result) => return result.py(),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(crate::errors::MXParamsError::new_err(
                        "the I/O worker thread stopped without a result",
                    ))
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            }
            if let Err(signal) = py.check_signals() {
                cancel.cancel();
                // The worker stops within a chunk; wait for it (the scope
                // would anyway) without holding the GIL.
                let _ = py.detach(move || rx.recv().is_ok());
                return Err(signal);
            }
        }
    })
}

/// The bytes `_save` would write.
#[pyfunction]
#[pyo3(signature = (names, arrays, version = None))]
fn _save_tobuffer<'py>(
    py: Python<'py>,
    names: Option<&Bound<'py, PyAny>>,
    arrays: Vec<Bound<'py, PyNDArray>>,
    version: Option<u32>,
) -> PyResult<Bound<'py, PyBytes>> {
    let names = Names::extract(names)?;
    let name_refs = names.refs(arrays.len())?;
    let opts = save_options(version, false)?;
    let refs = borrow_arrays(&arrays);
    let bytes = py
        .detach(|| format::to_bytes(name_refs.as_deref(), &refs, &opts))
        .py()?;
    Ok(PyBytes::new(py, &bytes))
}

/// `(names or None, [NDArray, ...])` of a loaded file, arrays on cpu(0).
type LoadResult<'py> = (Option<Vec<String>>, Bound<'py, PyList>);

fn to_python(py: Python<'_>, loaded: Loaded) -> PyResult<LoadResult<'_>> {
    let arrays = loaded
        .arrays
        .into_iter()
        // The reader places arrays on cpu(0); `_load` has moved them to `ctx`.
        .map(|a| Bound::new(py, PyNDArray::from(a)))
        .collect::<PyResult<Vec<_>>>()?;
    Ok((loaded.names, PyList::new(py, arrays)?))
}

/// Loads a `.params` file; `mmap=True` gives read-only zero-copy views.
/// With `ctx` a GPU, the file is memory-mapped and streamed to the device in
/// one batched upload (pinned staging ring); other contexts relabel or copy.
#[pyfunction]
#[pyo3(signature = (fname, mmap = false, ctx = None))]
fn _load<'py>(
    py: Python<'py>,
    fname: PathBuf,
    mmap: bool,
    ctx: Option<&Bound<'py, PyAny>>,
) -> PyResult<LoadResult<'py>> {
    let ctx = match ctx {
        Some(c) if !c.is_none() => Some(ctx_or_current(Some(c))?),
        _ => None,
    };
    let loaded = interruptible(py, |cancel| -> mxparams::Result<Loaded> {
        match ctx {
            Some(c) if c != Context::cpu(0) => {
                if !c.is_host() {
                    mxparams::check_device(c.device_id)?;
                }
                let mut l = if mmap || !c.is_host() {
                    format::load_mmap_cancellable(&fname, cancel)?
                } else {
                    format::load_cancellable(&fname, cancel)?
                };
                l.arrays = mxparams::transfer::to_context(&l.arrays, c)?;
                Ok(l)
            }
            _ if mmap => format::load_mmap_cancellable(&fname, cancel),
            _ => format::load_cancellable(&fname, cancel),
        }
    })?;
    to_python(py, loaded)
}

/// Loads `.params` bytes into owned (writable) arrays.
#[pyfunction]
fn _load_frombuffer<'py>(py: Python<'py>, data: &[u8]) -> PyResult<LoadResult<'py>> {
    let loaded = py.detach(|| format::from_bytes(data)).py()?;
    to_python(py, loaded)
}

/// Frees the cached host blocks that large arrays leave behind for reuse;
/// returns the number of bytes released.
#[pyfunction]
fn _release_host_pool(py: Python<'_>) -> usize {
    py.detach(mxparams::release_host_pool)
}

/// Writes `data` to `fname` with the rules of every save (atomic replace of
/// a regular file, write-through of a FIFO or character device, nothing
/// else replaced); for the files Python libraries serialise.
#[pyfunction]
#[pyo3(signature = (fname, data, fsync = false))]
fn _write_file(py: Python<'_>, fname: PathBuf, data: &[u8], fsync: bool) -> PyResult<()> {
    interruptible(py, |cancel| format::write_file(&fname, data, fsync, cancel))
}

/// Registers the `nd` native functions.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_release_host_pool, m)?)?;
    m.add_function(wrap_pyfunction!(_write_file, m)?)?;
    m.add_function(wrap_pyfunction!(_from_numpy, m)?)?;
    m.add_function(wrap_pyfunction!(_zeros, m)?)?;
    m.add_function(wrap_pyfunction!(_numpy_dtype, m)?)?;
    m.add_function(wrap_pyfunction!(_sparse, m)?)?;
    m.add_function(wrap_pyfunction!(_save, m)?)?;
    m.add_function(wrap_pyfunction!(_save_tobuffer, m)?)?;
    m.add_function(wrap_pyfunction!(_load, m)?)?;
    m.add_function(wrap_pyfunction!(_load_frombuffer, m)?)?;
    m.add_function(wrap_pyfunction!(_unpickle_ndarray, m)?)?;
    Ok(())
}
