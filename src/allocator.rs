//! The process's allocator: mimalloc for every allocation, Rust's and (through the `override`
//! feature) DuckDB's; see the workspace manifest for why.

use std::ffi::{c_int, c_long};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (v3, as `Cargo.lock` pins it).
const PURGE_DELAY: c_int = 15;

unsafe extern "C" {
    fn mi_option_set(option: c_int, value: c_long);
    #[cfg(test)]
    fn mi_option_get(option: c_int) -> c_long;
}

/// Freed memory goes back to the OS at once instead of after mimalloc's default delay (1 s):
/// a sync frees its pages as fast as it reads new ones, and the delay kept tens of megabytes
/// of them resident (Parquet at `large`: 161 → 102 MB peak).
pub fn return_freed_memory_at_once() {
    // SAFETY: sets a plain integer option; mimalloc reads it on its next purge.
    unsafe { mi_option_set(PURGE_DELAY, 0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_set_is_the_purge_delay() {
        // SAFETY: reads a plain integer option.
        let before = unsafe { mi_option_get(PURGE_DELAY) };
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            // mimalloc v3's documented default: a different number means another option.
            assert_eq!(before, 1000);
        }
        return_freed_memory_at_once();
        // SAFETY: as above.
        assert_eq!(unsafe { mi_option_get(PURGE_DELAY) }, 0);
    }
}
