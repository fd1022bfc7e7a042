//! The `mxparams` command and the file functions around it: the command runs
//! in the core (`mxparams::cli`), with the Python package's readers and
//! writers (PyTorch, numpy, symbol graphs) passed in as hooks; safetensors
//! save and metadata; the rename rules `mxparams.names` applies.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use pyo3::prelude::*;
use pyo3::types::PyList;

use mxparams::cli::Hooks;
use mxparams::format::{safetensors, Loaded};
use mxparams::names::{Convention, Rules};
use mxparams::ndarray::NDArray;

use super::errors::IntoPyResult;
use super::ndarray::PyNDArray;

/// Hooks that call methods of a Python object (`mxparams.cli._Hooks`):
/// `read(path, format) -> (names | None, [NDArray]) | None`,
/// `write(path, format, names, arrays) -> bool`, `symbol(path, json) -> str | None`,
/// `export_model(symbol, params, dst, input_shapes) -> str | None`.
struct PyHooks(Py<PyAny>);

fn message(py: Python<'_>, e: PyErr) -> String {
    let v = e.value(py);
    format!(
        "{}: {}",
        v.get_type()
            .name()
            .map_or("error".into(), |n| n.to_string()),
        v
    )
}

impl Hooks for PyHooks {
    fn read(&self, path: &Path, format: &str) -> Option<Result<Loaded, String>> {
        Python::attach(|py| {
            let r = self.0.bind(py).call_method1("read", (path, format));
            let r = match r {
                Ok(r) if r.is_none() => return None,
                Ok(r) => r,
                Err(e) => return Some(Err(message(py, e))),
            };
            Some(
                (|| -> PyResult<Loaded> {
                    let (names, arrays): (Option<Vec<String>>, Vec<Bound<'_, PyNDArray>>) =
                        r.extract()?;
                    Ok(Loaded {
                        names,
                        arrays: arrays.iter().map(|a| a.get().inner.clone()).collect(),
                    })
                })()
                .map_err(|e| message(py, e)),
            )
        })
    }

    fn write(
        &self,
        path: &Path,
        format: &str,
        names: &[String],
        arrays: &[NDArray],
    ) -> Option<Result<(), String>> {
        Python::attach(|py| {
            let r = (|| -> PyResult<bool> {
                let list = arrays
                    .iter()
                    .map(|a| Bound::new(py, PyNDArray::from(a.clone())))
                    .collect::<PyResult<Vec<_>>>()?;
                let list = PyList::new(py, list)?;
                self.0
                    .bind(py)
                    .call_method1("write", (path, format, names.to_vec(), list))?
                    .extract()
            })();
            match r {
                Ok(true) => Some(Ok(())),
                Ok(false) => None,
                Err(e) => Some(Err(message(py, e))),
            }
        })
    }

    fn symbol(&self, path: &Path, json: bool) -> Option<Result<String, String>> {
        Python::attach(
            |py| match self.0.bind(py).call_method1("symbol", (path, json)) {
                Ok(r) if r.is_none() => None,
                Ok(r) => Some(r.extract::<String>().map_err(|e| message(py, e))),
                Err(e) => Some(Err(message(py, e))),
            },
        )
    }

    fn export_model(
        &self,
        symbol: &Path,
        params: &Path,
        dst: &Path,
        input_shapes: &[Vec<usize>],
    ) -> Option<Result<String, String>> {
        Python::attach(|py| {
            let r = self
                .0
                .bind(py)
                .call_method1("export_model", (symbol, params, dst, input_shapes.to_vec()));
            match r {
                Ok(r) if r.is_none() => None,
                Ok(r) => Some(r.extract::<String>().map_err(|e| message(py, e))),
                Err(e) => Some(Err(message(py, e))),
            }
        })
    }
}

/// Runs the `mxparams` command line `argv` (without the program name);
/// returns the exit status.
#[pyfunction]
fn _cli_main(py: Python<'_>, argv: Vec<String>, hooks: Py<PyAny>) -> i32 {
    let hooks = PyHooks(hooks);
    py.detach(|| mxparams::cli::run(argv, &hooks))
}

/// Saves arrays as a safetensors file, atomically; returns the names of the
/// sparse arrays it wrote densely.
#[pyfunction]
#[pyo3(signature = (fname, names, arrays, metadata = None, fsync = false))]
fn _save_safetensors(
    py: Python<'_>,
    fname: PathBuf,
    names: Vec<String>,
    arrays: Vec<Bound<'_, PyNDArray>>,
    metadata: Option<HashMap<String, String>>,
    fsync: bool,
) -> PyResult<Vec<String>> {
    let refs: Vec<&NDArray> = arrays.iter().map(|a| &a.get().inner).collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let report = py
        .detach(|| safetensors::save(&fname, &name_refs, &refs, metadata.as_ref(), fsync))
        .py()?;
    Ok(report.densified)
}

/// The `__metadata__` of a safetensors file.
#[pyfunction]
fn _safetensors_metadata(
    py: Python<'_>,
    fname: PathBuf,
) -> PyResult<Option<HashMap<String, String>>> {
    py.detach(|| safetensors::read_metadata(&fname)).py()
}

/// Names renamed by rules (see `mxparams::names::Rules`); `convention` is
/// `None`, `"torch"` or `"gluon"`.
#[pyfunction]
#[pyo3(signature = (names, rules = Vec::new(), strip_prefix = None, add_prefix = None, convention = None))]
fn _rename(
    names: Vec<String>,
    rules: Vec<String>,
    strip_prefix: Option<String>,
    add_prefix: Option<String>,
    convention: Option<&str>,
) -> PyResult<Vec<String>> {
    let convention = match convention {
        None => Convention::Keep,
        Some("torch") => Convention::Torch,
        Some("gluon") => Convention::Gluon,
        Some(c) => {
            return Err(crate::errors::MXParamsValueError::new_err(format!(
                "convention must be None, 'torch' or 'gluon', not {c:?}"
            )))
        }
    };
    Rules::new(&rules, strip_prefix, add_prefix, convention)
        .and_then(|r| r.apply(&names))
        .py()
}

/// Registers the command's functions.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_cli_main, m)?)?;
    m.add_function(wrap_pyfunction!(_save_safetensors, m)?)?;
    m.add_function(wrap_pyfunction!(_safetensors_metadata, m)?)?;
    m.add_function(wrap_pyfunction!(_rename, m)?)?;
    Ok(())
}
