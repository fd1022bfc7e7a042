//! Unit tests of the reader and writer: every format branch and every error
//! branch, with hand-built bytes.

use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::context::{Context, DeviceType};
use crate::dtype::{DType, ALL_DTYPES};
use crate::error::Error;
use crate::ndarray::SType;
use crate::storage::SharedSource;

/// Little-endian byte builder for hand-made files.
#[derive(Default, Clone)]
struct B(Vec<u8>);

impl B {
    fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn i32(mut self, v: i32) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn i64(mut self, v: i64) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn raw(mut self, v: &[u8]) -> Self {
        self.0.extend_from_slice(v);
        self
    }
    fn header(n: u64) -> Self {
        B::default().u64(LIST_MAGIC).u64(0).u64(n)
    }
    fn shape(self, dims: &[i64]) -> Self {
        let mut b = self.i32(dims.len() as i32);
        for &d in dims {
            b = b.i64(d);
        }
        b
    }
    /// A V2/V3 dense record header up to (and including) the type flag.
    fn dense(self, magic: u32, dims: &[i64], flag: i32) -> Self {
        self.u32(magic).i32(0).shape(dims).i32(1).i32(0).i32(flag)
    }
    fn names(self, names: &[&[u8]]) -> Self {
        let mut b = self.u64(names.len() as u64);
        for n in names {
            b = b.u64(n.len() as u64).raw(n);
        }
        b
    }
}

/// A one-record list file around `record`.
fn file_with(record: B) -> Vec<u8> {
    B::header(1).raw(&record.0).u64(0).0
}

#[track_caller]
fn format_err(bytes: &[u8]) -> (u64, String) {
    match parse(bytes) {
        Err(Error::Format {
            offset,
            expected,
            found,
            ..
        }) => {
            // The high-level entry point must agree.
            assert!(matches!(from_bytes(bytes), Err(Error::Format { .. })));
            (offset, format!("{expected} / {found}"))
        }
        Err(e) => panic!("expected a Format error, got {e}"),
        Ok(_) => panic!("expected a Format error, parsed fine"),
    }
}

fn f32_array(shape: &[usize], ctx: Context) -> NDArray {
    let n: usize = shape.iter().product();
    let bytes: Vec<u8> = (0..n).flat_map(|i| (i as f32).to_le_bytes()).collect();
    NDArray::from_bytes(&bytes, shape, DType::Float32, ctx).expect("array")
}

fn i64_array(vals: &[i64]) -> NDArray {
    let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    NDArray::from_bytes(&bytes, &[vals.len()], DType::Int64, Context::cpu(0)).expect("i64")
}

fn csr_4x5() -> NDArray {
    let values = f32_array(&[3], Context::cpu(0));
    NDArray::sparse(
        SType::Csr,
        vec![4, 5],
        values,
        i64_array(&[1, 4, 2]),
        Some(i64_array(&[0, 2, 2, 3, 3])),
    )
    .expect("csr")
}

fn rsp_5x2() -> NDArray {
    let values = f32_array(&[2, 2], Context::cpu(0));
    NDArray::sparse(
        SType::RowSparse,
        vec![5, 2],
        values,
        i64_array(&[1, 3]),
        None,
    )
    .expect("rsp")
}

// ---------------------------------------------------------------- header

#[test]
fn empty_and_minimal_files() {
    assert_eq!(format_err(&[]).0, 0);
    let empty = B::header(0).u64(0).0;
    let p = parse(&empty).expect("empty list");
    assert!(p.records.is_empty() && p.names.is_none() && p.end == 32);
    let l = from_bytes(&empty).expect("load");
    assert!(l.arrays.is_empty() && l.names.is_none());
}

#[test]
fn bad_list_magic_is_reported_at_zero() {
    let mut f = B::header(0).u64(0).0;
    f[0] = 0x13;
    let (off, msg) = format_err(&f);
    assert_eq!(off, 0);
    assert!(msg.contains("0x112") && msg.contains("0x113"), "{msg}");
    // Byte-swapped magic.
    let f = B::default()
        .raw(&0x112u64.to_be_bytes())
        .u64(0)
        .u64(0)
        .u64(0)
        .0;
    assert_eq!(format_err(&f).0, 0);
}

#[test]
fn reserved_word_and_trailing_bytes_are_ignored() {
    let f = B::default()
        .u64(LIST_MAGIC)
        .u64(0xDEAD_BEEF)
        .u64(0)
        .u64(0)
        .raw(b"trailing garbage")
        .0;
    let p = parse(&f).expect("lenient");
    assert_eq!(p.reserved, 0xDEAD_BEEF);
    assert_eq!(p.end, 32);
}

#[test]
fn absurd_array_counts_fail_before_allocating() {
    for n in [u64::MAX, 1 << 62, 1_000_000_000, 2] {
        let f = B::header(n).u64(0).0;
        let (off, msg) = format_err(&f);
        assert_eq!(off, 16, "{n}: {msg}");
    }
    // A count the bytes could hold but whose records are missing: short read.
    let f = B::header(2).raw(&[0xffu8; 80]).0;
    assert_eq!(format_err(&f).0, 24);
}

#[test]
fn name_count_must_be_zero_or_n() {
    let rec = B::default().dense(MAGIC_V2, &[1], 0).raw(&[0; 4]);
    let f = B::header(1).raw(&rec.0).u64(2).0;
    let (off, msg) = format_err(&f);
    assert_eq!(off, 24 + 36);
    assert!(msg.contains("0 or 1"), "{msg}");
    let f = B::header(1).raw(&rec.0).u64(u64::MAX).0;
    assert_eq!(format_err(&f).0, 60);
}

#[test]
fn absurd_name_lengths_fail_at_the_length() {
    let rec = B::default().dense(MAGIC_V2, &[1], 0).raw(&[0; 4]);
    for len in [u64::MAX, 1 << 40, 2] {
        let f = B::header(1).raw(&rec.0).u64(1).u64(len).raw(b"a").0;
        assert_eq!(format_err(&f).0, 68, "{len}");
    }
}

#[test]
fn names_must_be_utf8() {
    let rec = B::default().dense(MAGIC_V2, &[1], 0).raw(&[0; 4]);
    let f = B::header(1).raw(&rec.0).names(&[b"ab\xffc"]).0;
    let (off, msg) = format_err(&f);
    assert_eq!(off, 68 + 8 + 2);
    assert!(msg.contains("UTF-8"), "{msg}");
}

#[test]
fn duplicate_empty_and_unicode_names_load_in_order() {
    let rec = B::default().dense(MAGIC_V2, &[1], 0).raw(&[0; 4]);
    let f = B::header(3)
        .raw(&rec.0)
        .raw(&rec.0)
        .raw(&rec.0)
        .names(&[b"x", "é日".as_bytes(), b"x"])
        .0;
    let l = from_bytes(&f).expect("dups");
    assert_eq!(l.names.expect("dict"), ["x", "é日", "x"]);
    let f = B::header(1).raw(&rec.0).names(&[b""]).0;
    assert_eq!(
        from_bytes(&f).expect("empty name").names.expect("dict"),
        [""]
    );
}

// ---------------------------------------------------------------- records

#[test]
fn every_version_reads() {
    let data: Vec<u8> = (1..=6).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let v3 = B::default().dense(MAGIC_V3, &[2, 3], 0).raw(&data);
    let v2 = B::default().dense(MAGIC_V2, &[2, 3], 0).raw(&data);
    let v1 = B::default()
        .u32(MAGIC_V1)
        .shape(&[2, 3])
        .i32(1)
        .i32(0)
        .i32(0)
        .raw(&data);
    let pre = B::default()
        .u32(2)
        .u32(2)
        .u32(3)
        .i32(1)
        .i32(0)
        .i32(0)
        .raw(&data);
    for (rec, version, data_at) in [
        (v3, Version::V3, 24 + 40),
        (v2, Version::V2, 24 + 40),
        (v1, Version::V1, 24 + 36),
        (pre, Version::PreV1, 24 + 24),
    ] {
        let f = file_with(rec);
        let p = parse(&f).expect("parse");
        let r = &p.records[0];
        assert_eq!(r.version, version);
        assert_eq!(r.shape, [2, 3]);
        assert_eq!(r.data, data_at..data_at + 24);
        assert_eq!(r.stype, SType::Default);
        assert_eq!(p.data(r), &data[..]);
        let l = from_bytes(&f).expect("load");
        assert_eq!(&*l.arrays[0].buffer().read(), &data[..]);
    }
}

#[test]
fn ndim0_is_a_0d_array_in_every_version() {
    let one = 2.5f32.to_le_bytes();
    for rec in [
        B::default().dense(MAGIC_V3, &[], 0).raw(&one),
        B::default().dense(MAGIC_V2, &[], 0).raw(&one),
        B::default()
            .u32(MAGIC_V1)
            .i32(0)
            .i32(1)
            .i32(0)
            .i32(0)
            .raw(&one),
        B::default().u32(0).i32(1).i32(0).i32(0).raw(&one),
    ] {
        let f = file_with(rec);
        let l = from_bytes(&f).expect("0-d");
        assert_eq!(l.arrays[0].shape(), &[] as &[usize]);
        assert_eq!(&*l.arrays[0].buffer().read(), &one);
    }
    // The smallest record: pre-V1 0-d of a 1-byte type.
    let rec = B::default().u32(0).i32(1).i32(0).i32(3).raw(&[9]);
    assert_eq!(rec.0.len(), MIN_RECORD_SIZE);
    assert!(parse(&file_with(rec)).is_ok());
}

#[test]
fn zero_size_arrays_have_no_data() {
    let f = file_with(B::default().dense(MAGIC_V3, &[2, 0, 3], 0));
    let p = parse(&f).expect("zero-size");
    assert_eq!(p.records[0].shape, [2, 0, 3]);
    assert!(p.records[0].data.is_empty());
    assert_eq!(from_bytes(&f).expect("load").arrays[0].nbytes(), 0);
}

#[test]
fn all_dtypes_read_and_unknown_flags_fail() {
    for d in ALL_DTYPES {
        let f = file_with(
            B::default()
                .dense(MAGIC_V2, &[3], d.flag())
                .raw(&vec![1; 3 * d.itemsize()]),
        );
        let l = from_bytes(&f).expect("dtype");
        assert_eq!(l.arrays[0].dtype(), d);
    }
    for flag in [-1, 13, 99, i32::MIN] {
        let f = file_with(B::default().dense(MAGIC_V2, &[1], flag).raw(&[0; 8]));
        let (off, msg) = format_err(&f);
        assert_eq!(off, 24 + 28, "{flag}");
        assert!(msg.contains(&flag.to_string()), "{msg}");
    }
}

#[test]
fn damaged_magics_and_big_legacy_ndims_fail_at_the_record() {
    for first in [0xF993_FACB, 0xF993_FAC7, 33, 0x1000] {
        let f = file_with(B::default().u32(first).raw(&[0; 64]));
        let (off, msg) = format_err(&f);
        assert_eq!(off, 24, "{first:#x}: {msg}");
    }
    // A legacy ndim of 32 is allowed, but then the dims must be there.
    let f = file_with(B::default().u32(32).raw(&[0; 20]));
    assert!(format_err(&f).0 >= 28);
}

#[test]
fn placeholders_and_negative_shapes_fail() {
    // ndim -1 (unknown-shape placeholder), ndim -2, absurd ndims.
    for ndim in [-1, -2, i32::MIN, i32::MAX, 1000] {
        let f = file_with(B::default().u32(MAGIC_V2).i32(0).i32(ndim).raw(&[0; 64]));
        let (off, msg) = format_err(&f);
        assert_eq!(off, 32, "{ndim}: {msg}");
        if ndim == -1 {
            assert!(msg.contains("placeholder"), "{msg}");
        }
    }
    // A dim of -1 (placeholder in V3/V1) or -5.
    for dim in [-1, -5, i64::MIN] {
        let f = file_with(B::default().dense(MAGIC_V3, &[2, dim], 0).raw(&[0; 64]));
        assert_eq!(format_err(&f).0, 44, "{dim}");
    }
}

#[test]
fn overflowing_and_oversized_shapes_fail() {
    for dims in [
        vec![1 << 62, 4],
        vec![1 << 62, 1 << 62],
        vec![i64::MAX, i64::MAX, 2],
        vec![1 << 40, 1 << 20],
    ] {
        let f = file_with(B::default().dense(MAGIC_V2, &dims, 0).raw(&[0; 16]));
        let (off, _) = format_err(&f);
        assert_eq!(off, 24 + 24 + 8 * dims.len() as u64, "{dims:?}");
    }
    // Legacy u32 dims whose product is large but representable: short read.
    let f = file_with(
        B::default()
            .u32(2)
            .u32(u32::MAX)
            .u32(u32::MAX)
            .i32(1)
            .i32(0)
            .i32(0),
    );
    assert!(format_err(&f).0 >= 48);
}

#[test]
fn storage_types_are_checked() {
    for st in [-1, 3, 77] {
        let f = file_with(B::default().u32(MAGIC_V2).i32(st).shape(&[1]).raw(&[0; 32]));
        assert_eq!(format_err(&f).0, 28, "{st}");
    }
    // Sparse storage in a V3 record.
    let f = file_with(B::default().u32(MAGIC_V3).i32(2).raw(&[0; 64]));
    let (off, msg) = format_err(&f);
    assert_eq!(off, 28);
    assert!(msg.contains("V3"), "{msg}");
}

// ---------------------------------------------------------------- sparse

/// A csr record (4 x 5 unless `shape` says otherwise) built field by field.
fn csr_record(sshape: &[i64], shape: &[i64], indptr: &[i64], indices: &[i64], aux_flag: i32) -> B {
    let mut b = B::default()
        .u32(MAGIC_V2)
        .i32(2)
        .shape(sshape)
        .shape(shape)
        .i32(1)
        .i32(0)
        .i32(0)
        .i32(aux_flag)
        .shape(&[indptr.len() as i64])
        .i32(aux_flag)
        .shape(&[indices.len() as i64]);
    for _ in indices {
        b = b.raw(&1f32.to_le_bytes());
    }
    for &v in indptr.iter().chain(indices) {
        b = b.i64(v);
    }
    b
}

fn rsp_record(sshape: &[i64], shape: &[i64], indices: &[i64]) -> B {
    let row: i64 = shape[1..].iter().product();
    let mut b = B::default()
        .u32(MAGIC_V2)
        .i32(1)
        .shape(sshape)
        .shape(shape)
        .i32(1)
        .i32(0)
        .i32(0)
        .i32(6)
        .shape(&[indices.len() as i64]);
    for _ in 0..(indices.len() as i64 * row) {
        b = b.raw(&2f32.to_le_bytes());
    }
    for &v in indices {
        b = b.i64(v);
    }
    b
}

#[test]
fn sparse_records_read_with_stale_storage_shapes() {
    // Only the indices count: a stale first dim, even non-zero, is ignored (as MXNet).
    for sshape in [&[3][..], &[0], &[2]] {
        let f = file_with(csr_record(sshape, &[4, 5], &[0, 2, 2, 3, 3], &[1, 4, 2], 6));
        let p = parse(&f).expect("csr");
        let r = &p.records[0];
        assert_eq!((r.stype, r.version), (SType::Csr, Version::V2));
        assert!(r
            .stored_storage_shape
            .iter()
            .map(|&d| d as i64)
            .eq(sshape.iter().copied()));
        assert_eq!(r.storage_shape, [3]);
        assert_eq!(r.values_shape(), [3]);
        assert_eq!(r.aux(AuxRole::Indptr).map(|a| a.len), Some(5));
        let l = from_bytes(&f).expect("load");
        let a = &l.arrays[0];
        assert_eq!((a.stype(), a.shape()), (SType::Csr, &[4usize, 5][..]));
        let dense = crate::sparse::to_dense(a).expect("dense");
        let vals: Vec<f32> = dense
            .buffer()
            .read()
            .chunks(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(vals.iter().filter(|&&v| v == 1.0).count(), 3);
        assert_eq!(vals[4], 1.0);
    }
    for sshape in [&[2, 3][..], &[0, 3]] {
        let f = file_with(rsp_record(sshape, &[5, 3], &[0, 4]));
        let p = parse(&f).expect("rsp");
        assert_eq!(p.records[0].storage_shape, [2, 3]);
        let l = from_shared(Arc::new(SharedSource::Bytes(f.clone()))).expect("shared");
        assert_eq!(l.arrays[0].stype(), SType::RowSparse);
        assert!(l.arrays[0].values().buffer().is_shared());
    }
    // All-zero encodings, as MXNet writes them.
    assert!(parse(&file_with(csr_record(&[0], &[3, 4], &[0, 0, 0, 0], &[], 6))).is_ok());
    assert!(parse(&file_with(rsp_record(&[0, 4], &[3, 4], &[]))).is_ok());
}

#[test]
fn sparse_structure_errors_name_the_offending_bytes() {
    // Values start at 24 + 4 + 4 + 12 (sshape) + 20 (shape) + 12 + 32 (aux headers) = 108.
    let indptr_at = |nnz: u64| 108 + 4 * nnz;
    let cases: Vec<(B, u64)> = vec![
        // Aux type flag int32.
        (
            csr_record(&[3], &[4, 5], &[0, 2, 2, 3, 3], &[1, 4, 2], 4),
            76,
        ),
        // indptr length != rows + 1.
        (
            csr_record(&[3], &[4, 5], &[0, 2, 3, 3], &[1, 4, 2], 6),
            indptr_at(3),
        ),
        // indptr not starting at 0.
        (
            csr_record(&[3], &[4, 5], &[1, 2, 2, 3, 3], &[1, 4, 2], 6),
            indptr_at(3),
        ),
        // indptr decreasing.
        (
            csr_record(&[3], &[4, 5], &[0, 2, 1, 3, 3], &[1, 4, 2], 6),
            indptr_at(3) + 16,
        ),
        // indptr not ending at nnz.
        (
            csr_record(&[3], &[4, 5], &[0, 2, 2, 2, 2], &[1, 4, 2], 6),
            indptr_at(3) + 32,
        ),
        // Column index out of range.
        (
            csr_record(&[3], &[4, 5], &[0, 2, 2, 3, 3], &[1, 5, 2], 6),
            indptr_at(3) + 48,
        ),
        // Columns not increasing within a row.
        (
            csr_record(&[3], &[4, 5], &[0, 2, 2, 3, 3], &[4, 1, 2], 6),
            indptr_at(3) + 48,
        ),
        // Negative column index.
        (
            csr_record(&[3], &[4, 5], &[0, 2, 2, 3, 3], &[-1, 1, 2], 6),
            indptr_at(3) + 40,
        ),
        // A (non-empty) storage shape of the wrong rank.
        (
            csr_record(&[3, 1], &[4, 5], &[0, 2, 2, 3, 3], &[1, 4, 2], 6),
            32,
        ),
        // csr must be 2-D.
        (
            csr_record(&[3], &[4, 5, 1], &[0, 2, 2, 3, 3], &[1, 4, 2], 6),
            44,
        ),
    ];
    for (i, (rec, at)) in cases.into_iter().enumerate() {
        let (off, msg) = format_err(&file_with(rec));
        assert_eq!(off, at, "case {i}: {msg}");
    }
    // row_sparse: values at 24 + 8 + 20 + 20 + 12 + 4 + 12 = 100.
    let rsp_idx = |rows: u64| 100 + 12 * rows;
    for (idx, at) in [
        (&[1, 1][..], rsp_idx(2) + 8),
        (&[3, 1], rsp_idx(2) + 8),
        (&[0, 5], rsp_idx(2) + 8),
        (&[-3, 1], rsp_idx(2)),
    ] {
        let (off, msg) = format_err(&file_with(rsp_record(&[2, 3], &[5, 3], idx)));
        assert_eq!(off, at, "{idx:?}: {msg}");
    }
    // Trailing dims of a non-stale storage shape must match the shape's.
    assert_eq!(
        format_err(&file_with(rsp_record(&[2, 4], &[5, 3], &[0, 1]))).0,
        32
    );
    // row_sparse needs ndim >= 1; aux arrays must be 1-D.
    let bad = B::default()
        .u32(MAGIC_V2)
        .i32(1)
        .shape(&[0])
        .shape(&[])
        .raw(&[0; 64]);
    assert_eq!(format_err(&file_with(bad)).0, 44);
    let bad = B::default()
        .u32(MAGIC_V2)
        .i32(1)
        .shape(&[0, 3])
        .shape(&[5, 3])
        .i32(1)
        .i32(0)
        .i32(0)
        .i32(6)
        .shape(&[1, 1])
        .raw(&[0; 64]);
    assert_eq!(format_err(&file_with(bad)).0, 100 - 12);
    // A dense shape whose size overflows.
    let f = file_with(rsp_record(&[0, 1], &[1 << 62, 1, 1 << 62], &[]));
    assert_eq!(format_err(&f).0, 52);
    // Huge aux lengths: short read, no allocation.
    let huge = B::default()
        .u32(MAGIC_V2)
        .i32(1)
        .shape(&[0, 3])
        .shape(&[5, 3])
        .i32(1)
        .i32(0)
        .i32(0)
        .i32(6)
        .shape(&[i64::MAX / 4]);
    assert!(format_err(&file_with(huge)).0 >= 88);
}

// ---------------------------------------------------------------- truncation

fn sample_files() -> Vec<Vec<u8>> {
    let ctx = Context::cpu(0);
    let a = f32_array(&[2, 3], ctx);
    let z = f32_array(&[], ctx);
    let csr = csr_4x5();
    let rsp = rsp_5x2();
    let opts = SaveOptions::default();
    let v2 = SaveOptions {
        version: RecordVersion::V2,
        ..opts
    };
    vec![
        to_bytes(Some(&["w", "é"]), &[&a, &a], &opts).expect("dict"),
        to_bytes(None, &[&a, &z], &opts).expect("v3 list"),
        to_bytes(Some(&["c", "r", "d"]), &[&csr, &rsp, &z], &v2).expect("sparse"),
        file_with(
            B::default()
                .u32(1)
                .u32(3)
                .i32(1)
                .i32(0)
                .i32(5)
                .raw(&[1, 2, 3]),
        ),
        file_with(
            B::default()
                .u32(MAGIC_V1)
                .shape(&[2])
                .i32(1)
                .i32(0)
                .i32(7)
                .raw(&[0, 1]),
        ),
    ]
}

#[test]
fn truncation_at_every_offset_is_a_format_error() {
    for f in sample_files() {
        let full = parse(&f).expect("valid");
        assert_eq!(full.end, f.len());
        for cut in 0..f.len() {
            let (off, _) = format_err(&f[..cut]);
            assert!(off <= cut as u64, "cut {cut}: offset {off}");
        }
    }
}

// ---------------------------------------------------------------- writer

#[test]
fn writer_layout_matches_the_spec_example() {
    // params-format.md section 13: basic_dict_f32.params.
    let w = f32_array(&[2, 3], Context::cpu(0));
    let bytes = to_bytes(Some(&["w"]), &[&w], &SaveOptions::default()).expect("save");
    assert_eq!(bytes.len(), 105);
    assert_eq!(&bytes[24..28], &[0xc9, 0xfa, 0x93, 0xf9]);
    assert_eq!(&bytes[0x34..0x40], &[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        &bytes[0x58..],
        &[1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, b'w']
    );
}

#[test]
fn writer_records_the_device_and_picks_versions() {
    let a = f32_array(&[1], Context::cpu_shared(7));
    let z = f32_array(&[], Context::cpu(0));
    let b = to_bytes(None, &[&a], &SaveOptions::default()).expect("save");
    let p = parse(&b).expect("parse");
    assert_eq!(
        p.records[0].device,
        StoredDevice {
            dev_type: 5,
            dev_id: 7
        }
    );
    assert_eq!(p.records[0].version, Version::V2);
    // Auto: a 0-d array makes the whole file V3.
    let b = to_bytes(None, &[&a, &z], &SaveOptions::default()).expect("save");
    let p = parse(&b).expect("parse");
    assert!(p.records.iter().all(|r| r.version == Version::V3));
    // ... unless a sparse array forces V2.
    let csr = csr_4x5();
    let b = to_bytes(None, &[&z, &csr], &SaveOptions::default()).expect("save");
    assert!(parse(&b)
        .expect("parse")
        .records
        .iter()
        .all(|r| r.version == Version::V2));
    // Explicit V3 rejects sparse.
    let v3 = SaveOptions {
        version: RecordVersion::V3,
        ..Default::default()
    };
    assert!(matches!(
        to_bytes(None, &[&csr], &v3),
        Err(Error::InvalidArgument(_))
    ));
    let b = to_bytes(None, &[&a], &v3).expect("v3");
    assert_eq!(parse(&b).expect("parse").records[0].version, Version::V3);
}

#[test]
fn writer_rejects_bad_names() {
    let a = f32_array(&[1], Context::cpu(0));
    let opts = SaveOptions::default();
    let e = to_bytes(Some(&["a\0b"]), &[&a], &opts).expect_err("nul");
    assert!(
        matches!(&e, Error::InvalidArgument(m) if m.contains("NUL")),
        "{e}"
    );
    let e = to_bytes(Some(&["a", "b"]), &[&a], &opts).expect_err("count");
    assert!(matches!(e, Error::InvalidArgument(_)));
    // Host memory cannot be labelled as a GPU array (device arrays are saved
    // through a host copy; see the CUDA tests).
    let gpu = a.clone().with_context(Context::gpu(0));
    assert_eq!(gpu.context(), Context::cpu(0));
}

#[test]
fn sparse_arrays_round_trip() {
    let csr = csr_4x5();
    let rsp = rsp_5x2();
    let b = to_bytes(Some(&["c", "r"]), &[&csr, &rsp], &SaveOptions::default()).expect("save");
    let p = parse(&b).expect("parse");
    assert_eq!(p.records[0].stored_storage_shape, [3]);
    assert_eq!(p.records[1].stored_storage_shape, [2, 2]);
    let l = from_bytes(&b).expect("load");
    for (x, y) in l.arrays.iter().zip([&csr, &rsp]) {
        assert_eq!(x.stype(), y.stype());
        let (dx, dy) = (
            crate::sparse::to_dense(x).expect("d"),
            crate::sparse::to_dense(y).expect("d"),
        );
        assert_eq!(&*dx.buffer().read(), &*dy.buffer().read());
    }
    assert_eq!(
        to_bytes(
            Some(&["c", "r"]),
            &[&l.arrays[0], &l.arrays[1]],
            &SaveOptions::default()
        )
        .expect("again"),
        b
    );
}

#[test]
fn single_records_round_trip() {
    for a in [
        f32_array(&[2, 2], Context::cpu(1)),
        f32_array(&[], Context::cpu(0)),
        csr_4x5(),
    ] {
        let raw = record_to_bytes(&a, RecordVersion::Auto).expect("raw");
        let rec = parse_record(&raw).expect("parse");
        assert_eq!(rec.end, raw.len());
        let b = array_from_record_bytes(&raw).expect("load");
        assert_eq!((b.shape(), b.stype()), (a.shape(), a.stype()));
        assert_eq!(&*b.buffer().read(), &*a.buffer().read());
        let mut longer = raw.clone();
        longer.push(0);
        assert!(matches!(parse_record(&longer), Err(Error::Format { .. })));
        assert!(matches!(
            array_from_record_bytes(&raw[..raw.len() - 1]),
            Err(Error::Format { .. })
        ));
    }
    let z = f32_array(&[], Context::cpu(0));
    assert_eq!(
        parse_record(&record_to_bytes(&z, RecordVersion::Auto).expect("raw"))
            .expect("p")
            .version,
        Version::V3
    );
}

#[test]
fn write_to_streams_to_any_writer() {
    let a = f32_array(&[300, 1000], Context::cpu(0));
    let mut out = Vec::new();
    write_to(&mut out, Some(&["big"]), &[&a], &SaveOptions::default()).expect("write");
    assert_eq!(
        out,
        to_bytes(Some(&["big"]), &[&a], &SaveOptions::default()).expect("bytes")
    );
}

// ---------------------------------------------------------------- files

#[test]
fn many_small_arrays_save_as_they_serialise() {
    // Over 1 MiB of small records: the save gathers on one thread and writes
    // on another; the file must still be exactly the serialised bytes.
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("small.params");
    let arrays: Vec<NDArray> = (0..6000)
        .map(|i: u32| f32_array(&[1 + i as usize % 97], Context::cpu(i % 3)))
        .collect();
    let refs: Vec<&NDArray> = arrays.iter().collect();
    let names: Vec<String> = (0..arrays.len()).map(|i| format!("p{i}")).collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let opts = SaveOptions::default();
    save(&path, Some(&name_refs), &refs, &opts).expect("save");
    let expected = to_bytes(Some(&name_refs), &refs, &opts).expect("bytes");
    assert!(expected.len() > 1 << 20);
    assert_eq!(std::fs::read(&path).expect("read"), expected);
}

#[test]
fn save_is_atomic_and_cleans_up() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("m.params");
    let a = f32_array(&[4], Context::cpu(0));
    let opts = SaveOptions {
        fsync: true,
        ..Default::default()
    };
    save(&path, Some(&["a"]), &[&a], &opts).expect("save");
    let before = std::fs::read(&path).expect("read");
    // An error in the middle of writing leaves the old file and no temp file.
    let err = writer::atomic_write_file(&path, None, false, |mut w| {
        use std::io::Write;
        w.write_all(b"half a file")?;
        Err(Error::invalid("injected failure"))
    });
    assert!(err.is_err());
    assert_eq!(std::fs::read(&path).expect("read"), before);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("ls")
        .map(|e| e.expect("e").file_name())
        .collect();
    assert_eq!(names, ["m.params"]);
    // Validation errors never touch the file either.
    let e = save(&path, Some(&["bad\0"]), &[&a], &opts);
    assert!(e.is_err());
    assert_eq!(std::fs::read(&path).expect("read"), before);
    // A missing directory is an I/O error.
    assert!(matches!(
        save(dir.path().join("no/x.params"), None, &[&a], &opts),
        Err(Error::Io { .. })
    ));
}

#[cfg(unix)]
#[test]
fn save_keeps_permissions_and_writes_through_symlinks() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("dir");
    let real = dir.path().join("real.params");
    let link = dir.path().join("link.params");
    let a = f32_array(&[2], Context::cpu(0));
    save(&real, None, &[&a], &SaveOptions::default()).expect("save");
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    let b = f32_array(&[3], Context::cpu(0));
    save(&link, None, &[&b], &SaveOptions::default()).expect("save via link");
    assert!(std::fs::symlink_metadata(&link)
        .expect("meta")
        .file_type()
        .is_symlink());
    assert_eq!(load(&real).expect("load").arrays[0].shape(), &[3]);
    let mode = std::fs::metadata(&real).expect("meta").permissions().mode();
    assert_eq!(mode & 0o777, 0o640);
}

#[test]
fn mmap_views_survive_saving_over_their_own_file() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("m.params");
    let a = f32_array(&[3, 5], Context::cpu(0));
    save(&path, Some(&["a"]), &[&a], &SaveOptions::default()).expect("save");
    let l = load_mmap(&path).expect("mmap");
    let view = &l.arrays[0];
    assert!(view.buffer().is_shared() && !view.buffer().is_writable());
    // Saving the view (plus one more array) over its own source.
    let b = f32_array(&[2], Context::cpu(0));
    save(
        &path,
        Some(&["a", "b"]),
        &[view, &b],
        &SaveOptions::default(),
    )
    .expect("resave");
    assert_eq!(&*view.buffer().read(), &*a.buffer().read());
    let again = load(&path).expect("load");
    assert_eq!(again.names.expect("dict"), ["a", "b"]);
    assert_eq!(&*again.arrays[0].buffer().read(), &*a.buffer().read());
    // Empty and missing files.
    let empty = dir.path().join("empty.params");
    std::fs::write(&empty, b"").expect("write");
    assert!(matches!(load(&empty), Err(Error::Format { offset: 0, .. })));
    assert!(matches!(
        load_mmap(&empty),
        Err(Error::Format { offset: 0, .. })
    ));
    assert!(matches!(
        load(dir.path().join("missing")),
        Err(Error::Io { .. })
    ));
    assert!(matches!(load(dir.path()), Err(Error::Io { .. })));
    // Special files that cannot be mapped are read instead.
    #[cfg(unix)]
    {
        let null = Path::new("/dev/null");
        assert!(matches!(load(null), Err(Error::Format { offset: 0, .. })));
        assert!(matches!(
            load_mmap(null),
            Err(Error::Format { offset: 0, .. })
        ));
    }
}

#[test]
fn big_files_load_in_parallel() {
    let arrays: Vec<NDArray> = (0..6)
        .map(|i| f32_array(&[1 << 18, 1 + i % 2], Context::cpu(0)))
        .collect();
    let refs: Vec<&NDArray> = arrays.iter().collect();
    let bytes = to_bytes(None, &refs, &SaveOptions::default()).expect("save");
    let l = from_bytes(&bytes).expect("load");
    for (x, y) in l.arrays.iter().zip(&arrays) {
        assert_eq!(&*x.buffer().read(), &*y.buffer().read());
        assert_eq!(x.buffer().as_ptr() as usize % 64, 0);
    }
}

// ---------------------------------------------------------------- proptest

fn dtype_strategy() -> impl Strategy<Value = DType> {
    prop::sample::select(ALL_DTYPES.to_vec())
}

fn array_strategy() -> impl Strategy<Value = NDArray> {
    (
        dtype_strategy(),
        prop::collection::vec(0usize..5, 0..5),
        any::<u64>(),
        prop::sample::select(vec![
            Context::cpu(0),
            Context::cpu(2),
            Context::cpu_pinned(0),
            Context::cpu_shared(1),
        ]),
    )
        .prop_map(|(dtype, shape, seed, ctx)| {
            let n: usize = shape.iter().product::<usize>() * dtype.itemsize();
            let bytes: Vec<u8> = (0..n)
                .map(|i| (seed.wrapping_mul(i as u64 + 1) >> 7) as u8)
                .collect();
            NDArray::from_bytes(&bytes, &shape, dtype, ctx).expect("array")
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn write_read_round_trips(
        arrays in prop::collection::vec(array_strategy(), 0..6),
        names in prop::collection::vec("\\PC{0,12}|[a-z_.:]{0,300}", 6),
        dict in any::<bool>(),
        version in prop::sample::select(vec![RecordVersion::Auto, RecordVersion::V2, RecordVersion::V3]),
    ) {
        let refs: Vec<&NDArray> = arrays.iter().collect();
        let names: Vec<&str> = names.iter().take(arrays.len()).map(String::as_str).filter(|n| !n.contains('\0')).collect();
        prop_assume!(names.len() == arrays.len());
        let names = if dict { Some(names.as_slice()) } else { None };
        let opts = SaveOptions { version, fsync: false };
        let bytes = to_bytes(names, &refs, &opts).expect("save");
        let mut streamed = Vec::new();
        write_to(&mut streamed, names, &refs, &opts).expect("stream");
        prop_assert_eq!(&streamed, &bytes);
        let parsed = parse(&bytes).expect("parse");
        prop_assert_eq!(parsed.end, bytes.len());
        let loaded = from_bytes(&bytes).expect("load");
        let shared = from_shared(Arc::new(SharedSource::Bytes(bytes.clone()))).expect("shared");
        // An empty dict is an empty list, as in MXNet.
        let names = names.filter(|n| !n.is_empty());
        prop_assert_eq!(loaded.names.clone(), names.map(|n| n.iter().map(|s| s.to_string()).collect::<Vec<_>>()));
        prop_assert_eq!(&loaded.names, &shared.names);
        for (((a, b), c), rec) in arrays.iter().zip(&loaded.arrays).zip(&shared.arrays).zip(&parsed.records) {
            prop_assert_eq!(a.shape(), b.shape());
            prop_assert_eq!(a.dtype(), b.dtype());
            prop_assert_eq!(b.context(), Context::cpu(0));
            prop_assert_eq!(rec.device.dev_type, a.context().device_type.id());
            prop_assert_eq!(DeviceType::from_id(rec.device.dev_type), Some(a.context().device_type));
            prop_assert_eq!(&*a.buffer().read(), &*b.buffer().read());
            prop_assert_eq!(&*a.buffer().read(), &*c.buffer().read());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = from_bytes(&bytes);
        let _ = array_from_record_bytes(&bytes);
    }

    #[test]
    fn corrupted_valid_files_never_panic(idx in any::<prop::sample::Index>(), byte in any::<u8>(), which in 0usize..5) {
        let mut f = sample_files().swap_remove(which);
        let i = idx.index(f.len());
        f[i] = byte;
        let _ = from_bytes(&f);
        let _ = from_shared(Arc::new(SharedSource::Bytes(f)));
    }
}
