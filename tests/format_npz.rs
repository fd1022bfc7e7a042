//! MXNet 2.0 `.npz` / `.npy` files load through the same API as `.params`:
//! numpy-written archives (stored and deflated, zip64 headers), MXNet 2.0's
//! sparse groups, zero-copy views of stored members, and malformed archives.

use std::path::Path;
use std::sync::Arc;

use mxparams::format::{self, SaveOptions};
use mxparams::SharedSource;
use mxparams::{DType, Error, NDArray, SType};

/// `np.savez_compressed(f, a=arange(6, f4).reshape(2, 3), b=array(True), c=zeros((2, 0), i2))`
/// written by numpy 1.23 (deflated members, zip64 local headers).
const NUMPY_COMPRESSED: &[&str] = &[
    "504b03042d0000000800000021004fe9002affffffffffffffff05001400612e6e707901001000980000000000000055",
    "000000000000009bec17ea1b10c9c850c650ad9e925a9c5ca46ea5a06e9366a2aea3a09e965f54529498179f5f94920a",
    "12774bcc294e058a17672416a402f91a463a0ac69a3a0ab50a64032e063068b007120e4004c40d40bcc00100504b0304",
    "2d000000080000002100822df8d3ffffffffffffffff05001400622e6e70790100100081000000000000004300000000",
    "0000009bec17ea1b10c9c850c650ad9e925a9c5ca46ea5a05e9364a8aea3a09e965f54529498179f5f94920a12774bcc",
    "294e058a17672416a402f91a9a3a0ab50a14012e4600504b03042d00000008000000210087c193edffffffffffffffff",
    "05001400632e6e707901001000800000000000000046000000000000009bec17ea1b10c9c850c650ad9e925a9c5ca46e",
    "a5a06e9369a4aea3a09e965f54529498179f5f94920a12774bcc294e058a17672416a402f91a463a0a069a3a0ab50a64",
    "032e00504b01022d032d0000000800000021004fe9002a55000000980000000500000000000000000000008001000000",
    "00612e6e7079504b01022d032d000000080000002100822df8d343000000810000000500000000000000000000008001",
    "8c000000622e6e7079504b01022d032d00000008000000210087c193ed46000000800000000500000000000000000000",
    "00800106010000632e6e7079504b0506000000000300030099000000830100000000",
];

/// `np.savez(f, arange(3, i8), array([1.5]))` written by numpy 1.23 (stored, `arr_0`, `arr_1`).
const NUMPY_POSITIONAL: &[&str] = &[
    "504b03042d000000000000002100f74012eaffffffffffffffff090014006172725f302e6e7079010010009800000000",
    "0000009800000000000000934e554d5059010076007b276465736372273a20273c6938272c2027666f727472616e5f6f",
    "72646572273a2046616c73652c20277368617065273a2028332c292c207d202020202020202020202020202020202020",
    "2020202020202020202020202020202020202020202020202020202020202020202020202020202020200a0000000000",
    "00000001000000000000000200000000000000504b03042d000000000000002100b35d021fffffffffffffffff090014",
    "006172725f312e6e70790100100088000000000000008800000000000000934e554d5059010076007b27646573637227",
    "3a20273c6638272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028312c292c20",
    "7d2020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020",
    "202020202020202020202020200a000000000000f83f504b01022d032d000000000000002100f74012ea980000009800",
    "00000900000000000000000000008001000000006172725f302e6e7079504b01022d032d000000000000002100b35d02",
    "1f88000000880000000900000000000000000000008001d30000006172725f312e6e7079504b05060000000002000200",
    "6e000000960100000000",
];

fn unhex(parts: &[&str]) -> Vec<u8> {
    let s: String = parts.concat();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn npy(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

fn le<T: Copy, const N: usize>(vals: &[T], f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
    vals.iter().flat_map(|&v| f(v)).collect()
}

/// A minimal zip writer (stored members, or deflated when `deflate`).
fn zip(members: &[(&str, Vec<u8>)], deflate: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in members {
        let offset = out.len() as u32;
        let (method, body) = if deflate {
            (8u16, miniz_oxide::deflate::compress_to_vec(data, 6))
        } else {
            (0u16, data.clone())
        };
        let mut local = Vec::new();
        local.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        local.extend_from_slice(&[20, 0, 0, 0]);
        local.extend_from_slice(&method.to_le_bytes());
        local.extend_from_slice(&[0; 8]); // time, date, crc (unchecked)
        local.extend_from_slice(&(body.len() as u32).to_le_bytes());
        local.extend_from_slice(&(data.len() as u32).to_le_bytes());
        local.extend_from_slice(&(name.len() as u16).to_le_bytes());
        local.extend_from_slice(&[0, 0]);
        local.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&local);
        out.extend_from_slice(&body);
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&[20, 3, 20, 0, 0, 0]);
        central.extend_from_slice(&method.to_le_bytes());
        central.extend_from_slice(&[0; 8]);
        central.extend_from_slice(&(body.len() as u32).to_le_bytes());
        central.extend_from_slice(&(data.len() as u32).to_le_bytes());
        central.extend_from_slice(&(name.len() as u16).to_le_bytes());
        central.extend_from_slice(&[0; 12]);
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(members.len() as u16).to_le_bytes());
    out.extend_from_slice(&(members.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out
}

/// A stored zip with every size and offset in zip64 form (extra field id 1,
/// zip64 end record and locator), as big archives have.
fn zip64(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in members {
        let offset = out.len() as u64;
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        out.extend_from_slice(&[45, 0, 0, 0, 0, 0]);
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&[0xff; 8]);
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&20u16.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&16u16.to_le_bytes());
        out.extend_from_slice(&(data.len() as u64).to_le_bytes());
        out.extend_from_slice(&(data.len() as u64).to_le_bytes());
        out.extend_from_slice(data);
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&[45, 3, 45, 0, 0, 0, 0, 0]);
        central.extend_from_slice(&[0; 8]);
        central.extend_from_slice(&[0xff; 8]);
        central.extend_from_slice(&(name.len() as u16).to_le_bytes());
        // An unrelated extra field first, then the zip64 one.
        central.extend_from_slice(&(4u16 + 28).to_le_bytes());
        central.extend_from_slice(&[0; 10]);
        central.extend_from_slice(&[0xff; 4]);
        central.extend_from_slice(name.as_bytes());
        central.extend_from_slice(&[0x55, 0x54, 0, 0]);
        central.extend_from_slice(&1u16.to_le_bytes());
        central.extend_from_slice(&24u16.to_le_bytes());
        central.extend_from_slice(&(data.len() as u64).to_le_bytes());
        central.extend_from_slice(&(data.len() as u64).to_le_bytes());
        central.extend_from_slice(&offset.to_le_bytes());
    }
    let cd_offset = out.len() as u64;
    out.extend_from_slice(&central);
    let eocd64 = out.len() as u64;
    out.extend_from_slice(&0x0606_4b50u32.to_le_bytes());
    out.extend_from_slice(&44u64.to_le_bytes());
    out.extend_from_slice(&[45, 3, 45, 0]);
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&(members.len() as u64).to_le_bytes());
    out.extend_from_slice(&(members.len() as u64).to_le_bytes());
    out.extend_from_slice(&(central.len() as u64).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0x0706_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&eocd64.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&[0xff; 4]);
    out.extend_from_slice(&[0xff; 8]);
    out.extend_from_slice(&[0, 0]);
    out
}

fn f32s(vals: &[f32]) -> Vec<u8> {
    le(vals, f32::to_le_bytes)
}

fn i64s(vals: &[i64]) -> Vec<u8> {
    le(vals, i64::to_le_bytes)
}

/// MXNet 2.0's layout: a dense array, a csr group and a row_sparse group.
fn mxnet2_members() -> Vec<(&'static str, Vec<u8>)> {
    let u3: Vec<u8> = "csr"
        .chars()
        .flat_map(|c| (c as u32).to_le_bytes())
        .collect();
    vec![
        ("w.npy", npy("<f4", &[4], &f32s(&[0., 1., 2., 3.]))),
        ("m/data.npy", npy("<f4", &[3], &f32s(&[1., 2., 3.]))),
        ("m/indices.npy", npy("<i8", &[3], &i64s(&[1, 4, 2]))),
        ("m/indptr.npy", npy("<i8", &[5], &i64s(&[0, 2, 2, 3, 3]))),
        ("m/shape.npy", npy("<i8", &[2], &i64s(&[4, 5]))),
        ("m/format.npy", npy("<U3", &[], &u3)),
        ("r/data.npy", npy("<f4", &[2, 2], &f32s(&[1., 2., 3., 4.]))),
        (
            "r/indices.npy",
            npy("<i4", &[2], &le(&[0i32, 3], i32::to_le_bytes)),
        ),
        ("r/shape.npy", npy("<i8", &[2], &i64s(&[5, 2]))),
        ("r/format.npy", npy("|S10", &[], b"row_sparse")),
        ("bf.npy", npy("<b2", &[], &[0x80, 0x3f])),
    ]
}

fn dense_f32(a: &NDArray) -> Vec<f32> {
    let d = mxparams::sparse::to_dense(a).expect("dense");
    let b = d.buffer().try_read().expect("host-readable");
    b.chunks(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[test]
fn numpy_written_archives_load() {
    let l = format::from_bytes(&unhex(NUMPY_COMPRESSED)).expect("compressed");
    assert_eq!(
        l.names.as_deref(),
        Some(&["a".to_string(), "b".into(), "c".into()][..])
    );
    assert_eq!(l.arrays[0].shape(), &[2, 3]);
    assert_eq!(dense_f32(&l.arrays[0]), [0., 1., 2., 3., 4., 5.]);
    assert_eq!((l.arrays[1].dtype(), l.arrays[1].ndim()), (DType::Bool, 0));
    assert_eq!(
        &*l.arrays[1]
            .values()
            .buffer()
            .try_read()
            .expect("host-readable"),
        &[1]
    );
    assert_eq!(
        (l.arrays[2].dtype(), l.arrays[2].shape()),
        (DType::Int16, &[2, 0][..])
    );
    let l = format::from_bytes(&unhex(NUMPY_POSITIONAL)).expect("positional");
    assert_eq!(
        l.names.as_deref(),
        Some(&["arr_0".to_string(), "arr_1".into()][..])
    );
    assert_eq!(
        &*l.arrays[0]
            .values()
            .buffer()
            .try_read()
            .expect("host-readable"),
        &i64s(&[0, 1, 2])[..]
    );
    assert_eq!(
        &*l.arrays[1]
            .values()
            .buffer()
            .try_read()
            .expect("host-readable"),
        &1.5f64.to_le_bytes()
    );
}

#[test]
fn mxnet2_sparse_groups_load_as_sparse_arrays() {
    for deflate in [false, true] {
        let bytes = zip(&mxnet2_members(), deflate);
        let l = format::from_bytes(&bytes).expect("npz");
        let names = l.names.expect("dict");
        assert_eq!(names, ["w", "m", "r", "bf"]);
        let (m, r) = (&l.arrays[1], &l.arrays[2]);
        assert_eq!((m.stype(), m.shape()), (SType::Csr, &[4, 5][..]));
        let dm = dense_f32(m);
        assert_eq!(
            (dm[1], dm[4], dm[12], dm.iter().sum::<f32>()),
            (1., 2., 3., 6.)
        );
        assert_eq!((r.stype(), r.shape()), (SType::RowSparse, &[5, 2][..]));
        assert_eq!(dense_f32(r), [1., 2., 0., 0., 0., 0., 3., 4., 0., 0.]);
        assert_eq!(l.arrays[3].dtype(), DType::BFloat16);
        // They save as .params like any other array.
        let refs: Vec<&NDArray> = l.arrays.iter().collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let params = format::to_bytes(Some(&names), &refs, &SaveOptions::default()).expect("save");
        assert_eq!(
            format::from_bytes(&params).expect("reload").arrays[1].stype(),
            SType::Csr
        );
    }
}

#[test]
fn stored_members_are_zero_copy_under_mmap() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("m.npz");
    std::fs::write(&path, zip(&mxnet2_members(), false)).expect("write");
    let l = format::load_mmap(&path).expect("mmap");
    assert!(l.arrays.iter().all(|a| a.values().buffer().is_shared()));
    assert_eq!(dense_f32(&l.arrays[0]), [0., 1., 2., 3.]);
    // int32 indices were widened, so that aux array is owned.
    let r = l.arrays[2].sparse_parts().expect("sparse");
    assert!(!r.indices.values().buffer().is_shared());
    let owned = format::load(&path).expect("load");
    assert!(owned
        .arrays
        .iter()
        .all(|a| a.values().buffer().is_writable()));
    // Deflated members are inflated into owned memory even under mmap.
    std::fs::write(&path, zip(&mxnet2_members(), true)).expect("write");
    let l = format::load_mmap(&path).expect("mmap deflated");
    assert!(l.arrays[0].values().buffer().is_writable());
}

#[test]
fn zip64_archives_load() {
    let bytes = zip64(&mxnet2_members());
    let l = format::from_bytes(&bytes).expect("zip64");
    assert_eq!(l.names.expect("dict"), ["w", "m", "r", "bf"]);
    assert_eq!(dense_f32(&l.arrays[0]), [0., 1., 2., 3.]);
    assert_eq!(l.arrays[1].stype(), SType::Csr);
    for cut in (4..bytes.len()).step_by(3) {
        assert_format_err(&bytes[..cut]);
    }
    // A locator pointing nowhere.
    let mut bad = bytes.clone();
    let loc = bytes.len() - 22 - 20;
    bad[loc + 8..loc + 16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_format_err(&bad);
}

#[test]
fn bare_npy_is_a_one_element_list() {
    let bytes = npy(
        "<f8",
        &[2, 2],
        &le(&[1.0f64, 2.0, 3.0, 4.0], f64::to_le_bytes),
    );
    let l = format::from_bytes(&bytes).expect("npy");
    assert!(l.names.is_none());
    assert_eq!(
        (l.arrays[0].shape(), l.arrays[0].dtype()),
        (&[2, 2][..], DType::Float64)
    );
    let shared = format::from_shared(Arc::new(SharedSource::Bytes(bytes))).expect("shared");
    assert!(shared.arrays[0].values().buffer().is_shared());
    assert!(shared.arrays[0].is_aligned());
}

#[test]
fn empty_archive_is_an_empty_dict() {
    let l = format::from_bytes(&zip(&[], false)).expect("empty zip");
    assert_eq!(l.names, Some(vec![]));
    assert!(l.arrays.is_empty());
}

#[track_caller]
fn assert_format_err(bytes: &[u8]) -> u64 {
    match format::from_bytes(bytes) {
        Err(Error::Format { offset, .. }) => offset,
        Err(e) => panic!("expected a Format error, got {e}"),
        Ok(_) => panic!("expected a Format error, loaded fine"),
    }
}

#[test]
fn malformed_archives_are_format_errors() {
    let good = zip(&mxnet2_members(), false);
    // Truncation anywhere (the end record is gone, or points past the end).
    for cut in 4..good.len() {
        assert_format_err(&good[..cut]);
    }
    let deflated = zip(&mxnet2_members(), true);
    for cut in (4..deflated.len()).step_by(7) {
        assert_format_err(&deflated[..cut]);
    }
    // A member that is not .npy; a big-endian member; a broken sparse group.
    assert_format_err(&zip(&[("notes.txt", b"hi".to_vec())], false));
    assert_format_err(&zip(&[("a.npy", npy(">f4", &[1], &[0; 4]))], false));
    assert_format_err(&zip(&[("a.npy", npy("<f4", &[2], &[0; 4]))], false));
    let mut m = mxnet2_members();
    m.retain(|(n, _)| *n != "m/indptr.npy");
    assert_format_err(&zip(&m, false));
    let mut m = mxnet2_members();
    m[2].1 = npy("<i8", &[3], &i64s(&[1, 9, 2])); // column out of range
    assert_format_err(&zip(&m, false));
    let mut m = mxnet2_members();
    m[5].1 = npy(
        "<U3",
        &[],
        &"coo"
            .chars()
            .flat_map(|c| (c as u32).to_le_bytes())
            .collect::<Vec<u8>>(),
    );
    assert_format_err(&zip(&m, false));
    // Encrypted flag, unknown method, absurd sizes and counts.
    let one = zip(&[("a.npy", npy("<f4", &[1], &[0; 4]))], false);
    let cd = one.len() - 22 - 46 - 5;
    for (at, bytes) in [
        (cd + 8, vec![1u8, 0]),                        // encrypted
        (cd + 10, vec![12, 0]),                        // bzip2
        (cd + 20, vec![0xff, 0xff, 0xff, 0x7f]),       // compressed size
        (cd + 42, vec![0xff, 0xff, 0xff, 0x7f]),       // local header offset
        (one.len() - 12, vec![0xff, 0x7f]),            // entry count
        (one.len() - 6, vec![0xff, 0xff, 0xff, 0x7f]), // directory offset
    ] {
        let mut bad = one.clone();
        bad[at..at + bytes.len()].copy_from_slice(&bytes);
        assert_format_err(&bad);
    }
    // A deflated member claiming a huge size: refused without allocating it.
    let mut bad = zip(&[("a.npy", npy("<f4", &[1], &[0; 4]))], true);
    let cd = bad.len() - 22 - 46 - 5;
    bad[cd + 24..cd + 28].copy_from_slice(&[0xff, 0xff, 0xff, 0x7f]);
    assert_format_err(&bad);
    // Not a zip at all but starting like one.
    assert_format_err(b"PK\x03\x04");
    assert_format_err(b"PK\x05\x06");
    assert_format_err(b"\x93NUMPY");
}

/// Every corpus file's arrays equal the numpy-written `NAME.expected.npz`,
/// read by our own `.npz` reader.
#[test]
fn corpus_arrays_match_expected_npz() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("tests/data") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("params") {
            continue;
        }
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("stem")
            .to_owned();
        let loaded = format::load(&path).expect("params");
        let expected = format::load(dir.join(format!("{stem}.expected.npz"))).expect("npz");
        let keys = expected.names.expect("npz is a dict");
        let get = |k: &str| -> &NDArray {
            let i = keys
                .iter()
                .position(|n| n == k)
                .unwrap_or_else(|| panic!("{stem}: no {k}"));
            &expected.arrays[i]
        };
        for (i, a) in loaded.arrays.iter().enumerate() {
            let key = match &loaded.names {
                Some(n) => n[i].clone(),
                None => format!("__{i}"),
            };
            let e = get(&key);
            assert_eq!(a.shape(), e.shape(), "{stem}/{key}");
            if a.dtype() != DType::BFloat16 {
                assert_eq!(a.dtype(), e.dtype(), "{stem}/{key}");
            }
            let dense = mxparams::sparse::to_dense(a).expect("dense");
            assert!(
                *dense.values().buffer().try_read().expect("host-readable")
                    == *e.values().buffer().try_read().expect("host-readable"),
                "{stem}/{key}: values differ"
            );
            if let Some(p) = a.sparse_parts() {
                assert!(
                    *a.values().buffer().try_read().expect("host-readable")
                        == *get(&format!("{key}/data"))
                            .values()
                            .buffer()
                            .try_read()
                            .expect("host-readable")
                );
                assert!(
                    *p.indices
                        .values()
                        .buffer()
                        .try_read()
                        .expect("host-readable")
                        == *get(&format!("{key}/indices"))
                            .values()
                            .buffer()
                            .try_read()
                            .expect("host-readable")
                );
                if let Some(ip) = &p.indptr {
                    assert!(
                        *ip.values().buffer().try_read().expect("host-readable")
                            == *get(&format!("{key}/indptr"))
                                .values()
                                .buffer()
                                .try_read()
                                .expect("host-readable")
                    );
                }
            }
            checked += 1;
        }
    }
    assert!(checked > 200, "only {checked} arrays checked");
}

fn descr(d: DType) -> &'static str {
    match d {
        DType::Float32 => "<f4",
        DType::Float64 => "<f8",
        DType::Float16 => "<f2",
        DType::UInt8 => "|u1",
        DType::Int32 => "<i4",
        DType::Int8 => "|i1",
        DType::Int64 => "<i8",
        DType::Bool => "|b1",
        DType::Int16 => "<i2",
        DType::UInt16 => "<u2",
        DType::UInt32 => "<u4",
        DType::UInt64 => "<u8",
        DType::BFloat16 => "<b2",
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]

    #[test]
    fn random_archives_round_trip(
        arrays in proptest::collection::vec(
            (
                proptest::sample::select(mxparams::dtype::ALL_DTYPES.to_vec()),
                proptest::collection::vec(0usize..4, 0..4),
                proptest::num::u8::ANY,
            ),
            0..5,
        ),
        deflate in proptest::bool::ANY,
    ) {
        let names: Vec<String> = (0..arrays.len()).map(|i| format!("p{i}.w")).collect();
        let members: Vec<(&str, Vec<u8>)> = arrays
            .iter()
            .zip(&names)
            .map(|((d, shape, seed), name)| {
                let n = shape.iter().product::<usize>() * d.itemsize();
                let data: Vec<u8> = (0..n).map(|i| seed.wrapping_add(i as u8) & 1).collect();
                (name.as_str(), npy(descr(*d), shape, &data))
            })
            .collect();
        let full: Vec<String> = names.iter().map(|n| format!("{n}.npy")).collect();
        let members: Vec<(&str, Vec<u8>)> =
            members.into_iter().zip(&full).map(|((_, b), n)| (n.as_str(), b)).collect();
        let bytes = zip(&members, deflate);
        let l = format::from_bytes(&bytes).expect("npz");
        let s = format::from_shared(Arc::new(SharedSource::Bytes(bytes))).expect("shared");
        proptest::prop_assert_eq!(l.names.as_ref(), Some(&names));
        for (((d, shape, _), a), b) in arrays.iter().zip(&l.arrays).zip(&s.arrays) {
            proptest::prop_assert_eq!((a.dtype(), a.shape()), (*d, shape.as_slice()));
            proptest::prop_assert!(*a.values().buffer().try_read().expect("host-readable") == *b.values().buffer().try_read().expect("host-readable"));
            proptest::prop_assert_eq!(b.values().buffer().is_shared(), !deflate);
        }
    }
}
