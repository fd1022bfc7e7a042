//! `_native.fill_uniform` / `_native.fill_normal`: in-place random fills of
//! writable, C-contiguous numpy arrays (float32, float64, float16, bfloat16),
//! with the GIL released. Seed and stream bookkeeping live in
//! `mxparams.random`; the kernels in `mxparams::random`.

use half::slice::HalfBitsSliceExt;
use half::{bf16, f16};
use numpy::{Element, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;

use crate::errors::IntoPyResult;
use mxparams::param_dict::{Fill, Xavier};
use mxparams::random::{Distribution as Dist, FillElement, StreamKey};

/// Fills a typed array in place, releasing the GIL for the kernel.
fn fill_typed<T: FillElement + Element>(
    py: Python<'_>,
    out: &Bound<'_, PyArrayDyn<T>>,
    dist: Dist,
    key: StreamKey,
) -> PyResult<()> {
    let mut guard = out.try_readwrite().map_err(|e| {
        crate::errors::MXParamsValueError::new_err(format!("out must be a writable array: {e}"))
    })?;
    let slice = guard
        .as_slice_mut()
        .map_err(|_| crate::errors::MXParamsValueError::new_err("out must be C-contiguous"))?;
    py.detach(|| dist.fill(slice, key)).py()
}

/// The 16-bit float formats numpy holds as 2-byte words.
#[derive(Clone, Copy)]
enum HalfKind {
    F16,
    BF16,
}

/// Fills a float16/bfloat16 array through a `uint16` view of its words.
fn fill_half(
    py: Python<'_>,
    out: &Bound<'_, PyAny>,
    kind: HalfKind,
    dist: Dist,
    key: StreamKey,
) -> PyResult<()> {
    let words = out.call_method1("view", (numpy::dtype::<u16>(py),))?;
    let words = words.cast_into::<PyArrayDyn<u16>>()?;
    let mut guard = words.try_readwrite().map_err(|e| {
        crate::errors::MXParamsValueError::new_err(format!("out must be a writable array: {e}"))
    })?;
    let slice = guard
        .as_slice_mut()
        .map_err(|_| crate::errors::MXParamsValueError::new_err("out must be C-contiguous"))?;
    py.detach(|| match kind {
        HalfKind::F16 => dist.fill(slice.reinterpret_cast_mut::<f16>(), key),
        HalfKind::BF16 => dist.fill(slice.reinterpret_cast_mut::<bf16>(), key),
    })
    .py()
}

fn fill(py: Python<'_>, out: &Bound<'_, PyAny>, dist: Dist, key: StreamKey) -> PyResult<()> {
    let Ok(arr) = out.cast::<numpy::PyUntypedArray>() else {
        return Err(crate::errors::MXParamsTypeError::new_err(
            "out must be a numpy.ndarray",
        ));
    };
    let dtype = arr.dtype();
    if dtype.is_equiv_to(&numpy::dtype::<f32>(py)) {
        fill_typed(py, &out.cast::<PyArrayDyn<f32>>()?.clone(), dist, key)
    } else if dtype.is_equiv_to(&numpy::dtype::<f64>(py)) {
        fill_typed(py, &out.cast::<PyArrayDyn<f64>>()?.clone(), dist, key)
    } else {
        let name: String = dtype.getattr("name")?.extract()?;
        match name.as_str() {
            "float16" => fill_half(py, out, HalfKind::F16, dist, key),
            "bfloat16" => fill_half(py, out, HalfKind::BF16, dist, key),
            other => Err(crate::errors::MXParamsTypeError::new_err(format!(
                "random fills support float32, float64, float16 and bfloat16 arrays, not {other}"
            ))),
        }
    }
}

/// Fills ``out`` in place with values drawn uniformly from ``[low, high)``.
///
/// ``out`` is a writable, C-contiguous numpy array of float32, float64,
/// float16 or bfloat16. The values depend only on ``(seed, stream)`` and the
/// array's size and dtype, not on the number of threads.
#[pyfunction]
#[pyo3(signature = (out, low, high, seed, stream))]
pub fn fill_uniform(
    py: Python<'_>,
    out: &Bound<'_, PyAny>,
    low: f64,
    high: f64,
    seed: u64,
    stream: u64,
) -> PyResult<()> {
    fill(
        py,
        out,
        Dist::Uniform { low, high },
        StreamKey::new(seed, stream),
    )
}

/// Fills ``out`` in place with draws from a normal distribution.
///
/// Same array requirements and reproducibility as :func:`fill_uniform`.
#[pyfunction]
#[pyo3(signature = (out, mean, std, seed, stream))]
pub fn fill_normal(
    py: Python<'_>,
    out: &Bound<'_, PyAny>,
    mean: f64,
    std: f64,
    seed: u64,
    stream: u64,
) -> PyResult<()> {
    fill(
        py,
        out,
        Dist::Normal { mean, std },
        StreamKey::new(seed, stream),
    )
}

/// A built-in fill for the initialisation protocol: what an initializer's
/// `_init_weight` does, as one typed value (`FillSpec.uniform(-0.07, 0.07)`,
/// `FillSpec.xavier('uniform', 'avg', 3.0)`, ...). Native initialisation
/// fills with it directly; Xavier's scale is computed by `resolve` alone.
#[pyclass(name = "FillSpec", module = "mxparams._native", frozen, eq)]
#[derive(Clone, PartialEq)]
pub struct PyFillSpec {
    pub(crate) fill: Fill,
}

#[pymethods]
impl PyFillSpec {
    /// All zeros.
    #[staticmethod]
    fn zeros() -> Self {
        PyFillSpec { fill: Fill::Zeros }
    }

    /// `value` everywhere.
    #[staticmethod]
    fn constant(value: f64) -> Self {
        PyFillSpec {
            fill: Fill::Constant(value),
        }
    }

    /// Uniform draws from `[low, high)`.
    #[staticmethod]
    fn uniform(low: f64, high: f64) -> Self {
        PyFillSpec {
            fill: Fill::Random(Dist::Uniform { low, high }),
        }
    }

    /// Normal draws `N(mean, std²)`.
    #[staticmethod]
    fn normal(mean: f64, std: f64) -> Self {
        PyFillSpec {
            fill: Fill::Random(Dist::Normal { mean, std }),
        }
    }

    /// MXNet's Xavier: `rnd_type` 'uniform' or 'gaussian', `factor_type`
    /// 'avg', 'in' or 'out' (other names fail when the fill is resolved).
    #[staticmethod]
    fn xavier(rnd_type: &str, factor_type: &str, magnitude: f64) -> Self {
        PyFillSpec {
            fill: Fill::Xavier(Xavier::new(rnd_type, factor_type, magnitude)),
        }
    }

    /// The fill for parameter `name` of `shape`: Xavier becomes its uniform
    /// or normal fill (ValueError where MXNet's Xavier raises); others are
    /// returned as they are.
    fn resolve(&self, name: &str, shape: Vec<usize>) -> PyResult<Self> {
        let fill = match self.fill {
            Fill::Xavier(x) => Fill::Random(x.distribution(name, &shape).py()?),
            f => f,
        };
        Ok(PyFillSpec { fill })
    }

    /// Raises ValueError when a random fill's parameters break MXNet's rule
    /// (uniform: `low <= high`; normal: a positive standard deviation).
    fn check(&self) -> PyResult<()> {
        match self.fill {
            Fill::Random(d) => d.check().py(),
            _ => Ok(()),
        }
    }

    /// 'zeros', 'constant', 'uniform', 'normal' or 'xavier'.
    #[getter]
    fn kind(&self) -> &'static str {
        match self.fill {
            Fill::Zeros => "zeros",
            Fill::Constant(_) => "constant",
            Fill::Random(Dist::Uniform { .. }) => "uniform",
            Fill::Random(Dist::Normal { .. }) => "normal",
            Fill::Xavier(_) => "xavier",
        }
    }

    /// The numbers of the fill: `(value,)`, `(low, high)`, `(mean, std)`,
    /// `(magnitude,)`, or `()` for zeros.
    #[getter]
    fn args(&self) -> Vec<f64> {
        match self.fill {
            Fill::Zeros => vec![],
            Fill::Constant(v) => vec![v],
            Fill::Random(Dist::Uniform { low, high }) => vec![low, high],
            Fill::Random(Dist::Normal { mean, std }) => vec![mean, std],
            Fill::Xavier(x) => vec![x.magnitude],
        }
    }

    fn __repr__(&self) -> String {
        format!("FillSpec.{}({:?})", self.kind(), self.args())
    }
}
