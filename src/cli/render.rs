//! Text tables and JSON documents of the command's reports. JSON numbers
//! that are not finite (a NaN minimum of an all-NaN array) become `null`.

use std::path::Path;

use serde_json::{json, Value};

use crate::inspect::{DiffReport, FileInfo, Stats, Verified};

/// `1234567` -> `1.2 MiB`.
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn num(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        Value::Null
    }
}

fn shape(s: &[usize]) -> String {
    let parts: Vec<String> = s.iter().map(usize::to_string).collect();
    // numpy's spelling: (4,) for one dimension.
    if parts.len() == 1 {
        format!("({},)", parts[0])
    } else {
        format!("({})", parts.join(", "))
    }
}

fn g(x: f64) -> String {
    if x.is_nan() {
        "nan".into()
    } else if x == 0.0 || (1e-4..1e6).contains(&x.abs()) {
        format!("{x:.6}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    } else {
        format!("{x:.4e}")
    }
}

fn table(header: &[&str], rows: &[Vec<String>], right: &[bool]) -> String {
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| -> String {
        let cols: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if right[i] {
                    format!("{c:>width$}", width = w[i])
                } else {
                    format!("{c:<width$}", width = w[i])
                }
            })
            .collect();
        cols.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for r in rows {
        out += &line(r.clone());
    }
    out
}

pub(crate) fn inspect_table(path: &Path, info: &FileInfo, stats: Option<&[Stats]>) -> String {
    let version = info
        .version
        .as_ref()
        .map_or(String::new(), |v| format!(" {v}"));
    let mut out = format!(
        "{}: {}{version}, {} arrays{}, {}\n",
        path.display(),
        info.format,
        info.arrays.len(),
        if info.named { "" } else { " (unnamed list)" },
        human_bytes(info.nbytes() as u64)
    );
    let mut header = vec!["name", "shape", "dtype", "stype", "bytes", "offset"];
    let mut right = vec![false, false, false, false, true, true];
    if stats.is_some() {
        header.extend(["min", "max", "mean", "std", "nan", "inf"]);
        right.extend([true; 6]);
    }
    let rows: Vec<Vec<String>> = info
        .arrays
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let mut r = vec![
                a.name.clone(),
                shape(&a.shape),
                a.dtype.name().to_string(),
                a.stype.name().to_string(),
                a.nbytes.to_string(),
                a.offset.map_or("-".into(), |o| o.to_string()),
            ];
            if let Some(s) = stats.and_then(|s| s.get(i)) {
                r.extend([g(s.min), g(s.max), g(s.mean), g(s.std)]);
                r.extend([s.nan.to_string(), s.inf.to_string()]);
            }
            r
        })
        .collect();
    out += &table(&header, &rows, &right);
    if let Some(m) = &info.metadata {
        let mut keys: Vec<_> = m.iter().collect();
        keys.sort();
        for (k, v) in keys {
            out += &format!("metadata: {k} = {v}\n");
        }
    }
    for w in &info.warnings {
        out += &format!("warning: {w}\n");
    }
    out
}

fn stats_json(s: &Stats) -> Value {
    json!({"min": num(s.min), "max": num(s.max), "mean": num(s.mean), "std": num(s.std),
           "nan": s.nan, "inf": s.inf})
}

pub(crate) fn inspect_json(info: &FileInfo, stats: Option<&[Stats]>) -> String {
    let arrays: Vec<Value> = info
        .arrays
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let mut v = json!({
                "name": a.name, "shape": a.shape, "dtype": a.dtype.name(),
                "stype": a.stype.name(), "nbytes": a.nbytes, "offset": a.offset,
            });
            if let (Some(s), Value::Object(m)) = (stats.and_then(|s| s.get(i)), &mut v) {
                m.insert("stats".into(), stats_json(s));
            }
            v
        })
        .collect();
    let doc = json!({
        "format": info.format, "version": info.version, "named": info.named,
        "arrays": arrays, "nbytes": info.nbytes(), "metadata": info.metadata,
        "warnings": info.warnings,
    });
    doc.to_string() + "\n"
}

pub(crate) fn diff_text(r: &DiffReport, rtol: f64, atol: f64) -> String {
    let mut out = String::new();
    for n in &r.only_a {
        out += &format!("only in A: {n}\n");
    }
    for n in &r.only_b {
        out += &format!("only in B: {n}\n");
    }
    let rows: Vec<Vec<String>> = r
        .common
        .iter()
        .filter(|d| !d.equal)
        .map(|d| {
            let what = if d.shape.0 != d.shape.1 {
                format!("shape {} -> {}", shape(&d.shape.0), shape(&d.shape.1))
            } else if d.dtype.0 != d.dtype.1 {
                format!("dtype {} -> {}", d.dtype.0, d.dtype.1)
            } else {
                "values".into()
            };
            vec![d.name.clone(), what, g(d.max_abs), g(d.max_rel)]
        })
        .collect();
    if !rows.is_empty() {
        out += &table(
            &["name", "change", "max_abs", "max_rel"],
            &rows,
            &[false, false, true, true],
        );
    }
    let differing = rows.len();
    out += &format!(
        "{}: {} common, {} differ, {} only in A, {} only in B (rtol={rtol}, atol={atol})\n",
        if r.equal() { "equal" } else { "different" },
        r.common.len(),
        differing,
        r.only_a.len(),
        r.only_b.len()
    );
    out
}

pub(crate) fn diff_json(r: &DiffReport, rtol: f64, atol: f64) -> String {
    let tensors: Vec<Value> = r
        .common
        .iter()
        .map(|d| {
            json!({"name": d.name, "shape_a": d.shape.0, "shape_b": d.shape.1,
                   "dtype_a": d.dtype.0.name(), "dtype_b": d.dtype.1.name(),
                   "max_abs": num(d.max_abs), "max_rel": num(d.max_rel), "equal": d.equal})
        })
        .collect();
    json!({"equal": r.equal(), "rtol": rtol, "atol": atol, "only_a": r.only_a,
           "only_b": r.only_b, "tensors": tensors})
    .to_string()
        + "\n"
}

pub(crate) fn verify_text(path: &Path, v: &Verified) -> String {
    let mut out = format!(
        "{}: {}{}, {} arrays, {}: structure OK\n",
        path.display(),
        v.info.format,
        v.info
            .version
            .as_ref()
            .map_or(String::new(), |x| format!(" {x}")),
        v.info.arrays.len(),
        human_bytes(v.info.nbytes() as u64),
    );
    let rows: Vec<Vec<String>> = v
        .info
        .arrays
        .iter()
        .map(|a| {
            let (start, end) = match a.offset {
                Some(o) => (o.to_string(), (o + a.nbytes as u64).to_string()),
                None => ("-".into(), "-".into()),
            };
            vec![a.name.clone(), start, end]
        })
        .collect();
    out += &table(&["name", "start", "end"], &rows, &[false, true, true]);
    for w in &v.info.warnings {
        out += &format!("warning: {w}\n");
    }
    if v.nonfinite.is_empty() {
        out += "no NaN or Inf values\n";
    }
    for (n, nan, inf) in &v.nonfinite {
        out += &format!("non-finite: {n}: {nan} NaN, {inf} Inf\n");
    }
    out
}

pub(crate) fn verify_json(v: &Verified) -> String {
    let arrays: Vec<Value> = v
        .info
        .arrays
        .iter()
        .map(|a| json!({"name": a.name, "offset": a.offset, "nbytes": a.nbytes}))
        .collect();
    let nonfinite: Vec<Value> = v
        .nonfinite
        .iter()
        .map(|(n, nan, inf)| json!({"name": n, "nan": nan, "inf": inf}))
        .collect();
    json!({"ok": true, "format": v.info.format, "version": v.info.version,
           "arrays": arrays, "warnings": v.info.warnings, "nonfinite": nonfinite})
    .to_string()
        + "\n"
}
