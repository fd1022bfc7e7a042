//! Criterion benchmarks of the `.params` reader and writer: one file of big
//! arrays (~100 MB) and one of 20,000 small arrays, loaded owned (copy) and
//! memory-mapped, and saved.

use std::path::Path;

use criterion::{criterion_main, Criterion, Throughput};
use mxparams::format::{self, SaveOptions};
use mxparams::{Context, DType, NDArray};

struct Case {
    name: &'static str,
    names: Vec<String>,
    arrays: Vec<NDArray>,
}

fn array(n: usize, seed: usize) -> NDArray {
    let bytes: Vec<u8> = (0..n)
        .flat_map(|i| ((i ^ seed) as f32 * 0.001).to_le_bytes())
        .collect();
    NDArray::from_bytes(&bytes, &[n], DType::Float32, Context::cpu(0)).expect("array")
}

fn cases() -> Vec<Case> {
    // ~100 MB: 24 arrays of 1M float32 plus small BatchNorm-like vectors.
    let mut big = Case {
        name: "big_100MB",
        names: Vec::new(),
        arrays: Vec::new(),
    };
    for i in 0..24 {
        big.names.push(format!("features.{i}.weight"));
        big.arrays.push(array(1 << 20, i));
        big.names.push(format!("features.{i}.bias"));
        big.arrays.push(array(256, i));
    }
    let mut many = Case {
        name: "many_20000x64",
        names: Vec::new(),
        arrays: Vec::new(),
    };
    for i in 0..20_000 {
        many.names
            .push(format!("block{}.layer{}.weight", i / 100, i % 100));
        many.arrays.push(array(64, i));
    }
    vec![big, many]
}

fn save(case: &Case, path: &Path) {
    let names: Vec<&str> = case.names.iter().map(String::as_str).collect();
    let refs: Vec<&NDArray> = case.arrays.iter().collect();
    format::save(path, Some(&names), &refs, &SaveOptions::default()).expect("save");
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    for case in cases() {
        let path = dir.path().join(format!("{}.params", case.name));
        save(&case, &path);
        let bytes = std::fs::read(&path).expect("read");
        let mut g = c.benchmark_group(case.name);
        g.sample_size(10);
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function("load", |b| b.iter(|| format::load(&path).expect("load")));
        g.bench_function("load_mmap", |b| {
            b.iter(|| format::load_mmap(&path).expect("mmap"))
        });
        g.bench_function("from_bytes", |b| {
            b.iter(|| format::from_bytes(&bytes).expect("from_bytes"))
        });
        g.bench_function("parse", |b| {
            b.iter(|| format::parse(&bytes).expect("parse").records.len())
        });
        let out = dir.path().join(format!("{}.out.params", case.name));
        g.bench_function("save", |b| b.iter(|| save(&case, &out)));
        let names: Vec<&str> = case.names.iter().map(String::as_str).collect();
        let refs: Vec<&NDArray> = case.arrays.iter().collect();
        g.bench_function("to_bytes", |b| {
            b.iter(|| {
                format::to_bytes(Some(&names), &refs, &SaveOptions::default()).expect("bytes")
            })
        });
        g.finish();
    }
}

#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::bench);
}
criterion_main!(group::benches);
