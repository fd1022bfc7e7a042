//! What is in a checkpoint file, without loading it: the table of arrays
//! (from headers only), per-array statistics, a structural verification, and
//! the difference between two sets of arrays. The `mxparams` command renders
//! these; they are plain data so that other front ends can too.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use rayon::prelude::*;

use crate::convert::{Elem, Scalar};
use crate::dtype::DType;
use crate::error::Result;
use crate::format::{self, safetensors, Loaded, Version};
use crate::ndarray::{NDArray, SType};

/// One array as a file's headers describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrayInfo {
    /// The name (a list file's arrays are named by their position).
    pub name: String,
    /// Logical shape.
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: DType,
    /// Storage type.
    pub stype: SType,
    /// Bytes of stored data (values plus sparse index arrays).
    pub nbytes: usize,
    /// Absolute offset of the data in its file, when it is stored
    /// uncompressed in one piece.
    pub offset: Option<u64>,
}

/// A file's format and table of arrays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// `params`, `npz`, `npy`, `safetensors` or `safetensors-index`.
    pub format: String,
    /// The record version(s) of a `.params` file (`V2`, or `V1+V2` when mixed).
    pub version: Option<String>,
    /// Whether the file stores names (a `.params` list file does not).
    pub named: bool,
    /// The arrays in file order.
    pub arrays: Vec<ArrayInfo>,
    /// safetensors' `__metadata__`.
    pub metadata: Option<HashMap<String, String>>,
    /// Things a strict reader might object to but MXNet accepts.
    pub warnings: Vec<String>,
}

impl FileInfo {
    /// Bytes of array data in the file.
    pub fn nbytes(&self) -> usize {
        self.arrays.iter().map(|a| a.nbytes).sum()
    }
}

fn version_name(v: Version) -> &'static str {
    match v {
        Version::PreV1 => "legacy",
        Version::V1 => "V1",
        Version::V2 => "V2",
        Version::V3 => "V3",
    }
}

fn params_info(bytes: &[u8]) -> Result<FileInfo> {
    let parsed = format::parse(bytes)?;
    let mut versions: Vec<&str> = Vec::new();
    let mut arrays = Vec::with_capacity(parsed.records.len());
    for (i, r) in parsed.records.iter().enumerate() {
        let v = version_name(r.version);
        if !versions.contains(&v) {
            versions.push(v);
        }
        let aux: usize = r.aux.iter().map(|a| a.data.len()).sum();
        arrays.push(ArrayInfo {
            name: parsed
                .names
                .as_ref()
                .and_then(|n| n.get(i))
                .map_or_else(|| i.to_string(), |s| (*s).to_string()),
            shape: r.shape.clone(),
            dtype: r.dtype,
            stype: r.stype,
            nbytes: r.data.len() + aux,
            offset: Some(r.data.start as u64),
        });
    }
    let mut warnings = Vec::new();
    if parsed.reserved != 0 {
        warnings.push(format!(
            "reserved header word is {} (MXNet writes 0)",
            parsed.reserved
        ));
    }
    if parsed.end < bytes.len() {
        warnings.push(format!(
            "{} bytes after the names at offset {} (ignored, as MXNet does)",
            bytes.len() - parsed.end,
            parsed.end
        ));
    }
    if let Some(names) = &parsed.names {
        let mut seen = HashSet::new();
        for n in names {
            if !seen.insert(n) {
                warnings.push(format!("duplicate name {n:?} (the last one wins)"));
            }
        }
    }
    Ok(FileInfo {
        format: "params".into(),
        version: Some(versions.join("+")),
        named: parsed.names.is_some(),
        arrays,
        metadata: None,
        warnings,
    })
}

fn safetensors_info(bytes: &[u8]) -> Result<FileInfo> {
    let h = safetensors::read_header(bytes)?;
    Ok(FileInfo {
        format: "safetensors".into(),
        version: None,
        named: true,
        arrays: h
            .entries
            .into_iter()
            .map(|e| ArrayInfo {
                nbytes: e.data.len(),
                offset: Some(e.data.start as u64),
                name: e.name,
                shape: e.shape,
                dtype: e.dtype,
                stype: SType::Default,
            })
            .collect(),
        metadata: h.metadata,
        warnings: Vec::new(),
    })
}

/// The table of `loaded`'s arrays (offsets where they view a mapped file).
fn loaded_info(format: &str, loaded: &Loaded) -> FileInfo {
    let names = names_of(loaded);
    FileInfo {
        format: format.into(),
        version: None,
        named: loaded.names.is_some(),
        arrays: loaded
            .arrays
            .iter()
            .enumerate()
            .map(|(i, a)| ArrayInfo {
                name: names[i].clone(),
                shape: a.shape().to_vec(),
                dtype: a.dtype(),
                stype: a.stype(),
                nbytes: stored_bytes(a),
                offset: if a.stype() == SType::Default {
                    a.buffer().file_backing().map(|(_, o)| o)
                } else {
                    None
                },
            })
            .collect(),
        metadata: None,
        warnings: Vec::new(),
    }
}

/// Bytes an array stores: values plus sparse index arrays.
pub fn stored_bytes(a: &NDArray) -> usize {
    a.nbytes()
        + a.sparse_parts().map_or(0, |p| {
            p.indices.nbytes() + p.indptr.as_ref().map_or(0, NDArray::nbytes)
        })
}

/// The names of a loaded file; a list file's arrays are named `0`, `1`, ...
pub fn names_of(loaded: &Loaded) -> Vec<String> {
    match &loaded.names {
        Some(n) => n.clone(),
        None => (0..loaded.arrays.len()).map(|i| i.to_string()).collect(),
    }
}

/// Reads the table of arrays of a file from its headers: data pages are
/// never touched for `.params` and safetensors files (an `.npz` is mapped and
/// its stored members viewed, which reads only their headers too).
pub fn inspect(path: impl AsRef<Path>) -> Result<FileInfo> {
    let path = path.as_ref();
    if safetensors::is_index_path(path) {
        let mut info = FileInfo {
            format: "safetensors-index".into(),
            version: None,
            named: true,
            arrays: Vec::new(),
            metadata: None,
            warnings: Vec::new(),
        };
        for shard in safetensors::index_shards(path)? {
            let s = inspect(&shard)?;
            info.arrays.extend(s.arrays);
            if info.metadata.is_none() {
                info.metadata = s.metadata;
            }
        }
        return Ok(info);
    }
    let source = format::open_source(path)?;
    let bytes = source.bytes();
    if safetensors::looks_like(bytes) {
        return safetensors_info(bytes);
    }
    match bytes.get(..4) {
        Some(b"PK\x03\x04") | Some(b"PK\x05\x06") => {
            Ok(loaded_info("npz", &format::from_shared(source.clone())?))
        }
        Some(b"\x93NUM") => Ok(loaded_info("npy", &format::from_shared(source.clone())?)),
        _ => params_info(bytes),
    }
}

/// Summary statistics of an array's values. Min, max, mean and std are over
/// the finite values; NaN and infinities are counted instead. A sparse
/// array's statistics are those of its dense form.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Stats {
    /// Number of elements.
    pub count: u64,
    /// Smallest finite value (NaN when there is none).
    pub min: f64,
    /// Largest finite value (NaN when there is none).
    pub max: f64,
    /// Mean of the finite values.
    pub mean: f64,
    /// Population standard deviation of the finite values.
    pub std: f64,
    /// NaN elements.
    pub nan: u64,
    /// Infinite elements.
    pub inf: u64,
}

/// A running summary; `merge` is Chan et al.'s parallel update, so chunks
/// summarised on different threads combine exactly as one pass would.
#[derive(Clone, Copy)]
struct Acc {
    n: u64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
    nan: u64,
    inf: u64,
}

impl Acc {
    const EMPTY: Acc = Acc {
        n: 0,
        mean: 0.0,
        m2: 0.0,
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
        nan: 0,
        inf: 0,
    };

    fn push(&mut self, x: f64) {
        if x.is_nan() {
            self.nan += 1;
        } else if x.is_infinite() {
            self.inf += 1;
        } else {
            self.n += 1;
            let d = x - self.mean;
            self.mean += d / self.n as f64;
            self.m2 += d * (x - self.mean);
            self.min = self.min.min(x);
            self.max = self.max.max(x);
        }
    }

    fn merge(self, o: Acc) -> Acc {
        let n = self.n + o.n;
        let (mean, m2) = if n == 0 {
            (0.0, 0.0)
        } else {
            let d = o.mean - self.mean;
            let mean = self.mean + d * o.n as f64 / n as f64;
            let m2 = self.m2 + o.m2 + d * d * (self.n as f64) * (o.n as f64) / n as f64;
            (mean, m2)
        };
        Acc {
            n,
            mean,
            m2,
            min: self.min.min(o.min),
            max: self.max.max(o.max),
            nan: self.nan + o.nan,
            inf: self.inf + o.inf,
        }
    }
}

fn value<T: Elem>(b: &[u8]) -> f64 {
    match T::read(b).scalar() {
        Scalar::F(f) => f,
        Scalar::I(i) => i as f64,
    }
}

/// Elements per parallel task.
const CHUNK_ELEMS: usize = 1 << 18;

fn summarise(bytes: &[u8], dtype: DType) -> Acc {
    let size = dtype.itemsize();
    crate::convert::with_elem!(dtype, T => {
        bytes
            .par_chunks(CHUNK_ELEMS * size)
            .map(|chunk| {
                let mut acc = Acc::EMPTY;
                for e in chunk.chunks_exact(size) {
                    acc.push(value::<T>(e));
                }
                acc
            })
            .reduce(|| Acc::EMPTY, Acc::merge)
    })
}

fn dense(a: &NDArray) -> Result<std::borrow::Cow<'_, NDArray>> {
    Ok(if a.stype() == SType::Default {
        std::borrow::Cow::Borrowed(a)
    } else {
        std::borrow::Cow::Owned(crate::sparse::to_dense(a)?)
    })
}

/// The statistics of one array.
pub fn stats(a: &NDArray) -> Result<Stats> {
    let a = dense(a)?;
    let bytes = a.buffer().try_read()?;
    let acc = summarise(&bytes, a.dtype());
    let (min, max) = if acc.n == 0 {
        (f64::NAN, f64::NAN)
    } else {
        (acc.min, acc.max)
    };
    Ok(Stats {
        count: acc.n + acc.nan + acc.inf,
        min,
        max,
        mean: if acc.n == 0 { f64::NAN } else { acc.mean },
        std: if acc.n == 0 {
            f64::NAN
        } else {
            (acc.m2 / acc.n as f64).sqrt()
        },
        nan: acc.nan,
        inf: acc.inf,
    })
}

/// The statistics of many arrays, computed in parallel (`progress` is called
/// once per finished array, from any thread).
pub fn stats_all(arrays: &[NDArray], progress: &(dyn Fn() + Sync)) -> Result<Vec<Stats>> {
    arrays
        .par_iter()
        .map(|a| {
            let s = stats(a);
            progress();
            s
        })
        .collect()
}

/// How one array present in both inputs differs.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorDiff {
    /// The name.
    pub name: String,
    /// Shape in A and in B.
    pub shape: (Vec<usize>, Vec<usize>),
    /// Dtype in A and in B.
    pub dtype: (DType, DType),
    /// Largest `|a - b|` (NaN when the shapes differ).
    pub max_abs: f64,
    /// Largest `|a - b| / |b|` over elements where `b != 0` (0 when none).
    pub max_rel: f64,
    /// Whether every element satisfies `|a - b| <= atol + rtol * |b|`
    /// (NaN equals NaN, infinities equal themselves), with equal shapes and dtypes.
    pub equal: bool,
}

/// The difference between two sets of named arrays.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DiffReport {
    /// Names only in A, in A's order.
    pub only_a: Vec<String>,
    /// Names only in B, in B's order.
    pub only_b: Vec<String>,
    /// Every name in both, in A's order.
    pub common: Vec<TensorDiff>,
}

impl DiffReport {
    /// Whether A and B hold the same names, shapes, dtypes and values within tolerance.
    pub fn equal(&self) -> bool {
        self.only_a.is_empty() && self.only_b.is_empty() && self.common.iter().all(|d| d.equal)
    }
}

#[derive(Clone, Copy)]
struct DiffAcc {
    abs: f64,
    rel: f64,
    ok: bool,
}

fn diff_values(a: &NDArray, b: &NDArray, rtol: f64, atol: f64) -> Result<DiffAcc> {
    let (a, b) = (dense(a)?, dense(b)?);
    a.buffer().populate_mapping();
    b.buffer().populate_mapping();
    let (ab, bb) = (a.buffer().try_read()?, b.buffer().try_read()?);
    let (sa, sb) = (a.dtype().itemsize(), b.dtype().itemsize());
    let (da, db) = (a.dtype(), b.dtype());
    let chunk = |ca: &[u8], cb: &[u8]| -> DiffAcc {
        let mut acc = DiffAcc {
            abs: 0.0,
            rel: 0.0,
            ok: true,
        };
        // Identical bytes are identical values: one memcmp instead of a
        // conversion per element (what `convert`'s read-back check meets).
        if da == db && ca == cb {
            return acc;
        }
        crate::convert::with_elem!(da, TA => crate::convert::with_elem!(db, TB => {
            for (ea, eb) in ca.chunks_exact(sa).zip(cb.chunks_exact(sb)) {
                let (x, y) = (value::<TA>(ea), value::<TB>(eb));
                if (x.is_nan() && y.is_nan()) || x == y {
                    continue;
                }
                let d = (x - y).abs();
                if d.is_nan() {
                    acc.abs = f64::NAN;
                    acc.ok = false;
                    continue;
                }
                acc.abs = acc.abs.max(d);
                if y != 0.0 {
                    acc.rel = acc.rel.max(d / y.abs());
                }
                if d > atol + rtol * y.abs() {
                    acc.ok = false;
                }
            }
        }));
        acc
    };
    let n = a.size();
    let per = CHUNK_ELEMS;
    Ok((0..n.div_ceil(per))
        .into_par_iter()
        .map(|i| {
            let (s, e) = (i * per, ((i + 1) * per).min(n));
            chunk(&ab[s * sa..e * sa], &bb[s * sb..e * sb])
        })
        .reduce(
            || DiffAcc {
                abs: 0.0,
                rel: 0.0,
                ok: true,
            },
            |x, y| DiffAcc {
                abs: if x.abs.is_nan() || y.abs.is_nan() {
                    f64::NAN
                } else {
                    x.abs.max(y.abs)
                },
                rel: x.rel.max(y.rel),
                ok: x.ok && y.ok,
            },
        ))
}

/// Compares two loaded files name by name (a list file's arrays by
/// position), values in parallel.
pub fn diff(
    a: &Loaded,
    b: &Loaded,
    rtol: f64,
    atol: f64,
    progress: &(dyn Fn() + Sync),
) -> Result<DiffReport> {
    let (na, nb) = (names_of(a), names_of(b));
    let ia: HashMap<&str, usize> = na
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let ib: HashMap<&str, usize> = nb
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let only_a = na
        .iter()
        .filter(|n| !ib.contains_key(n.as_str()))
        .cloned()
        .collect();
    let only_b = nb
        .iter()
        .filter(|n| !ia.contains_key(n.as_str()))
        .cloned()
        .collect();
    // Last occurrence wins for duplicate names, as a dict built from the file.
    let mut pairs: Vec<(&str, usize, usize)> = Vec::new();
    let mut done = HashSet::new();
    for n in &na {
        if let (Some(&i), Some(&j)) = (ia.get(n.as_str()), ib.get(n.as_str())) {
            if done.insert(n.as_str()) {
                pairs.push((n, i, j));
            }
        }
    }
    let common = pairs
        .par_iter()
        .map(|&(name, i, j)| {
            let (x, y) = (&a.arrays[i], &b.arrays[j]);
            let same_shape = x.shape() == y.shape();
            let d = if same_shape {
                diff_values(x, y, rtol, atol)?
            } else {
                DiffAcc {
                    abs: f64::NAN,
                    rel: f64::NAN,
                    ok: false,
                }
            };
            progress();
            Ok(TensorDiff {
                name: name.to_string(),
                shape: (x.shape().to_vec(), y.shape().to_vec()),
                dtype: (x.dtype(), y.dtype()),
                max_abs: d.abs,
                max_rel: d.rel,
                equal: d.ok && x.dtype() == y.dtype() && x.stype() == y.stype(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(DiffReport {
        only_a,
        only_b,
        common,
    })
}

/// A verified file: its table, and the arrays holding NaN or infinities.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// The header table (with any warnings).
    pub info: FileInfo,
    /// `(name, NaN count, Inf count)` of every array with non-finite values.
    pub nonfinite: Vec<(String, u64, u64)>,
}

/// Checks a whole file: every header and structure (with the byte offset of
/// the first problem as the error), every array's data within the file, and
/// the values for NaN and infinities.
pub fn verify(path: impl AsRef<Path>, progress: &(dyn Fn() + Sync)) -> Result<Verified> {
    let path = path.as_ref();
    let info = inspect(path)?;
    let loaded = format::load_mmap(path)?;
    let names = names_of(&loaded);
    let stats = stats_all(&loaded.arrays, progress)?;
    let nonfinite = names
        .into_iter()
        .zip(stats)
        .filter(|(_, s)| s.nan + s.inf > 0)
        .map(|(n, s)| (n, s.nan, s.inf))
        .collect();
    Ok(Verified { info, nonfinite })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Context;
    use crate::storage::Buffer;

    fn f32s(v: &[f32]) -> NDArray {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        NDArray::from_buffer(
            Buffer::copy_from(&bytes).expect("alloc"),
            vec![v.len()],
            DType::Float32,
            Context::cpu(0),
        )
        .expect("array")
    }

    #[test]
    fn stats_match_a_direct_computation() {
        let v: Vec<f32> = (0..1_000_000)
            .map(|i| ((i * 37) % 1001) as f32 * 0.5)
            .collect();
        let s = stats(&f32s(&v)).expect("stats");
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        assert_eq!(s.count, v.len() as u64);
        assert!((s.mean - mean).abs() < 1e-9 * mean.abs().max(1.0));
        assert!((s.std - var.sqrt()).abs() < 1e-9 * var.sqrt());
        assert_eq!((s.min, s.max), (0.0, 500.0));
    }

    #[test]
    fn stats_count_nonfinite_values() {
        let s = stats(&f32s(&[1.0, f32::NAN, f32::INFINITY, -3.0])).expect("stats");
        assert_eq!((s.nan, s.inf, s.min, s.max), (1, 1, -3.0, 1.0));
    }

    #[test]
    fn diff_reports_names_shapes_and_values() {
        let a = Loaded {
            names: Some(vec!["w".into(), "b".into(), "x".into()]),
            arrays: vec![f32s(&[1.0, 2.0]), f32s(&[0.0]), f32s(&[1.0])],
        };
        let b = Loaded {
            names: Some(vec!["w".into(), "b".into(), "y".into()]),
            arrays: vec![f32s(&[1.0, 2.5]), f32s(&[0.0, 1.0]), f32s(&[1.0])],
        };
        let r = diff(&a, &b, 1e-5, 1e-8, &|| {}).expect("diff");
        assert_eq!(r.only_a, ["x"]);
        assert_eq!(r.only_b, ["y"]);
        assert_eq!(r.common[0].max_abs, 0.5);
        assert_eq!(r.common[0].max_rel, 0.2);
        assert!(!r.common[0].equal && !r.common[1].equal);
        assert!(!r.equal());
        let same = diff(&a, &a, 0.0, 0.0, &|| {}).expect("diff");
        assert!(same.equal());
    }
}
