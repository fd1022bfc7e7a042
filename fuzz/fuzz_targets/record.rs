//! The single-record reader (pickled NDArray bytes) on arbitrary input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mxparams::format::array_from_record_bytes(data);
});
