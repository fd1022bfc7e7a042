//! Any bytes given to the file reader (`.params`, `.npz`, `.npy`) must give
//! arrays or an error: no panic, no overflow, no unbounded allocation. What
//! loads must also re-save and load back to the same shapes.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use mxparams::format::{self, SaveOptions};
use mxparams::SharedSource;

fuzz_target!(|data: &[u8]| {
    let Ok(loaded) = format::from_bytes(data) else {
        return;
    };
    let shared = format::from_shared(Arc::new(SharedSource::Bytes(data.to_vec())))
        .expect("zero-copy load must accept what the owned load accepts");
    assert_eq!(loaded.arrays.len(), shared.arrays.len());
    let refs: Vec<_> = loaded.arrays.iter().collect();
    let names: Option<Vec<&str>> = loaded
        .names
        .as_ref()
        .map(|n| n.iter().map(String::as_str).collect());
    let opts = SaveOptions {
        version: format::RecordVersion::V2,
        fsync: false,
    };
    // Names with NUL are legal in a file but refused by the writer.
    if let Ok(bytes) = format::to_bytes(names.as_deref(), &refs, &opts) {
        let again = format::from_bytes(&bytes).expect("our own output must load");
        for (a, b) in loaded.arrays.iter().zip(&again.arrays) {
            assert_eq!(a.shape(), b.shape());
            assert_eq!(a.stype(), b.stype());
        }
    }
});
