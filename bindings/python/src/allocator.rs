//! Tuning of the extension's allocator (mimalloc, see the crate root).
//!
//! By default mimalloc returns freed pages to the OS a while after they empty.
//! A checkpoint of many small arrays frees tens of thousands of small objects
//! at once, and the next load then faults every page in afresh: on the VMs we
//! measure that costs a third of loading 20,000 arrays. Small objects keep
//! their pages instead, as glibc's heap does; large host blocks never come
//! from mimalloc (see `storage::from_system`), so big memory is still
//! returned when freed.

use libmimalloc_sys::{mi_option_set, mi_option_t};

/// `mi_option_purge_delay` in the vendored mimalloc's option enum (v2 and v3
/// alike); the bindings do not name it.
const PURGE_DELAY: mi_option_t = 15;

/// Stops mimalloc from purging freed pages, unless the user configured
/// purging through mimalloc's own environment variables.
pub fn keep_freed_pages() {
    let configured = ["MIMALLOC_PURGE_DELAY", "MIMALLOC_RESET_DELAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some());
    if !configured {
        // SAFETY: setting an option is thread-safe, and 15 is below the
        // option count of every mimalloc version the bindings vendor.
        unsafe { mi_option_set(PURGE_DELAY, -1) };
    }
}
