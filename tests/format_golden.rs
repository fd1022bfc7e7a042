//! Golden files written by MXNet 1.9.1 (tests/data): every record's layout
//! matches the corpus JSON, the arrays match the expected values, and
//! re-saving reproduces MXNet's bytes.

use std::path::{Path, PathBuf};

use mxparams::format::{self, RecordVersion, SaveOptions, Version};
use mxparams::{Context, DeviceType, NDArray, SType};
use serde_json::Value;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn golden_files() -> Vec<(String, Vec<u8>, Value)> {
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(data_dir())
        .expect("tests/data")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "params"))
        .collect();
    entries.sort();
    for p in entries {
        let stem = p
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("name")
            .to_owned();
        let bytes = std::fs::read(&p).expect("read params");
        let json = std::fs::read_to_string(p.with_extension("json")).expect("read json");
        let json: Value = serde_json::from_str(&json).expect("parse json");
        out.push((stem, bytes, json));
    }
    assert!(
        out.len() >= 25,
        "golden corpus missing: {} files",
        out.len()
    );
    out
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("uint") as usize)
        .collect()
}

fn num(v: &Value) -> usize {
    v.as_u64().expect("uint") as usize
}

#[test]
fn records_match_the_corpus_json() {
    for (name, bytes, json) in golden_files() {
        let parsed = format::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let arrays = json["arrays"].as_array().expect("arrays");
        assert_eq!(parsed.records.len(), arrays.len(), "{name}");
        assert_eq!(
            parsed.reserved,
            json["reserved"].as_u64().expect("reserved")
        );
        assert_eq!(parsed.names_offset, num(&json["names_offset"]), "{name}");
        assert_eq!(
            bytes.len() - parsed.end,
            num(&json["trailing_bytes"]),
            "{name}"
        );
        match json["container"].as_str() {
            Some("dict") => {
                let names: Vec<&str> = json["names"]
                    .as_array()
                    .expect("names")
                    .iter()
                    .map(|n| n["name"].as_str().expect("name"))
                    .collect();
                assert_eq!(parsed.names.as_deref(), Some(names.as_slice()), "{name}");
            }
            _ => assert!(parsed.names.is_none(), "{name}"),
        }
        for (rec, a) in parsed.records.iter().zip(arrays) {
            let what = format!("{name}[{}]", a["index"]);
            assert_eq!(rec.offset, num(&a["record_offset"]), "{what}");
            assert_eq!(rec.end, num(&a["record_end"]), "{what}");
            let version = match a["format"].as_str() {
                Some("V3") => Version::V3,
                Some("V2") => Version::V2,
                Some("V1") => Version::V1,
                Some("legacy") => Version::PreV1,
                other => panic!("{what}: format {other:?}"),
            };
            assert_eq!(rec.version, version, "{what}");
            assert_eq!(
                rec.stype.name(),
                a["stype"].as_str().expect("stype"),
                "{what}"
            );
            assert_eq!(
                rec.dtype.name(),
                a["dtype"].as_str().expect("dtype"),
                "{what}"
            );
            assert_eq!(
                rec.dtype.flag() as i64,
                a["type_flag"].as_i64().expect("flag")
            );
            assert_eq!(rec.shape, usizes(&a["shape"]), "{what}");
            assert_eq!(
                rec.device.dev_type as i64,
                a["context"]["dev_type"].as_i64().expect("dt")
            );
            assert_eq!(
                rec.device.dev_id as i64,
                a["context"]["dev_id"].as_i64().expect("di")
            );
            assert_eq!(rec.data.start, num(&a["data_offset"]), "{what}");
            assert_eq!(rec.data.len(), num(&a["data_nbytes"]), "{what}");
            if rec.stype != SType::Default {
                assert_eq!(
                    rec.stored_storage_shape,
                    usizes(&a["storage_shape"]),
                    "{what}"
                );
                assert_eq!(
                    rec.storage_shape,
                    usizes(&a["storage_shape_effective"]),
                    "{what}"
                );
            }
            let aux = a["aux"].as_array().expect("aux");
            assert_eq!(rec.aux.len(), aux.len(), "{what}");
            for (ra, ja) in rec.aux.iter().zip(aux) {
                let role = match ra.role {
                    format::AuxRole::Indptr => "indptr",
                    format::AuxRole::Indices => "indices",
                };
                assert_eq!(role, ja["role"].as_str().expect("role"), "{what}");
                assert_eq!(vec![ra.len], usizes(&ja["shape"]), "{what}");
                assert_eq!(ra.data.start, num(&ja["data_offset"]), "{what}");
                assert_eq!(ra.data.len(), num(&ja["data_nbytes"]), "{what}");
            }
        }
    }
}

/// The arrays as they were in MXNet, on their recorded devices, for re-saving.
fn arrays_on_stored_devices(bytes: &[u8]) -> Vec<NDArray> {
    let parsed = format::parse(bytes).expect("parse");
    let loaded = format::from_bytes(bytes).expect("load");
    loaded
        .arrays
        .into_iter()
        .zip(&parsed.records)
        .map(|(a, r)| {
            let dt = DeviceType::from_id(r.device.dev_type).expect("known device");
            a.with_context(Context::new(dt, r.device.dev_id as u32))
        })
        .collect()
}

#[test]
fn resaving_reproduces_mxnet_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, bytes, json) in golden_files() {
        let parsed = format::parse(&bytes).expect("parse");
        let arrays = arrays_on_stored_devices(&bytes);
        let refs: Vec<&NDArray> = arrays.iter().collect();
        let names = parsed.names.clone();
        let version = match parsed.records.first().map(|r| r.version) {
            Some(Version::V3) => RecordVersion::V3,
            _ => RecordVersion::V2,
        };
        let opts = SaveOptions {
            version,
            ..Default::default()
        };
        let out = format::to_bytes(names.as_deref(), &refs, &opts).expect("to_bytes");
        let written_by_mxnet = json["written_by"]
            .as_str()
            .is_some_and(|w| w.starts_with("MXNet"));
        if !written_by_mxnet {
            // V1 / pre-V1 files come back as V2 with the same content.
            let again = format::from_bytes(&out).expect("reload");
            assert_eq!(
                again.names,
                parsed
                    .names
                    .map(|n| n.iter().map(|s| s.to_string()).collect())
            );
            for (a, b) in again.arrays.iter().zip(&arrays) {
                assert_eq!(a.shape(), b.shape(), "{name}");
                assert_eq!(
                    &*a.values().buffer().try_read().expect("host-readable"),
                    &*b.values().buffer().try_read().expect("host-readable"),
                    "{name}"
                );
            }
            continue;
        }
        // MXNet wrote a stale storage shape (first dim 0); we write the true one.
        let mut expected = bytes.clone();
        for (rec, a) in parsed
            .records
            .iter()
            .zip(json["arrays"].as_array().expect("arrays"))
        {
            if a["storage_shape_stale"].as_bool() == Some(true) {
                let at = rec.offset + 12;
                let dim0 = (rec.storage_shape[0] as i64).to_le_bytes();
                expected[at..at + 8].copy_from_slice(&dim0);
            }
        }
        assert!(out == expected, "{name}: re-saved bytes differ");
        let path = dir.path().join(format!("{name}.params"));
        format::save(&path, names.as_deref(), &refs, &opts).expect("save");
        assert!(
            std::fs::read(&path).expect("read back") == expected,
            "{name}: saved file differs"
        );
        // Auto picks V2 for MXNet's V2 files without 0-d arrays.
        if version == RecordVersion::V2 && arrays.iter().all(|a| a.ndim() > 0) {
            let auto =
                format::to_bytes(names.as_deref(), &refs, &Default::default()).expect("auto");
            assert!(auto == expected, "{name}: Auto differs");
        }
    }
}

#[test]
fn load_paths_agree_with_from_bytes() {
    for (name, bytes, _) in golden_files() {
        let path = data_dir().join(format!("{name}.params"));
        let a = format::from_bytes(&bytes).expect("from_bytes");
        let b = format::load(&path).expect("load");
        let c = format::load_mmap(&path).expect("load_mmap");
        assert_eq!(a.names, b.names, "{name}");
        assert_eq!(a.names, c.names, "{name}");
        for ((x, y), z) in a.arrays.iter().zip(&b.arrays).zip(&c.arrays) {
            assert_eq!(x.shape(), y.shape());
            assert_eq!(x.shape(), z.shape());
            assert_eq!(x.stype(), z.stype());
            assert_eq!(x.context(), Context::cpu(0));
            assert!(
                x.values().buffer().is_writable() && !z.values().buffer().is_writable(),
                "{name}"
            );
            assert_eq!(
                x.values().buffer().as_ptr() as usize % 64,
                0,
                "{name}: owned not aligned"
            );
            assert_eq!(
                &*x.values().buffer().try_read().expect("host-readable"),
                &*y.values().buffer().try_read().expect("host-readable"),
                "{name}"
            );
            assert_eq!(
                &*x.values().buffer().try_read().expect("host-readable"),
                &*z.values().buffer().try_read().expect("host-readable"),
                "{name}"
            );
        }
    }
}

#[test]
fn truncated_golden_files_are_format_errors() {
    let mut checked = 0;
    for (name, bytes, _) in golden_files() {
        if bytes.len() > 2048 {
            continue;
        }
        for cut in 0..bytes.len() {
            match format::from_bytes(&bytes[..cut]) {
                Err(mxparams::Error::Format { offset, .. }) => {
                    assert!(offset <= cut as u64, "{name} cut at {cut}: offset {offset}")
                }
                Err(e) => panic!("{name} cut at {cut}: {e}"),
                Ok(_) => panic!("{name} cut at {cut} loaded"),
            }
        }
        checked += 1;
    }
    assert!(checked >= 20);
}

#[test]
fn corrupted_golden_bytes_never_panic() {
    for (_, bytes, _) in golden_files() {
        if bytes.len() > 1024 {
            continue;
        }
        for i in 0..bytes.len() {
            for v in [0x00, 0x80, 0xff] {
                let mut b = bytes.clone();
                b[i] = v;
                if let Ok(l) = format::from_bytes(&b) {
                    // Whatever loads re-saves (unless a corrupted name now holds a NUL).
                    let refs: Vec<&NDArray> = l.arrays.iter().collect();
                    let names: Option<Vec<&str>> = l
                        .names
                        .as_ref()
                        .map(|n| n.iter().map(String::as_str).collect());
                    let opts = SaveOptions {
                        version: RecordVersion::V2,
                        fsync: false,
                    };
                    if let Ok(out) = format::to_bytes(names.as_deref(), &refs, &opts) {
                        assert_eq!(
                            format::from_bytes(&out).expect("reload").arrays.len(),
                            refs.len()
                        );
                    }
                }
            }
        }
    }
}
