//! The process's allocator: mimalloc for every allocation, Rust's and (through the `override`
//! feature) DuckDB's; see the workspace manifest for why.

use std::ffi::{c_int, c_long};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (v3, as `Cargo.lock` pins it).
const PURGE_DELAY: c_int = 15;
/// `mi_option_arena_eager_commit`, in the same enum.
const ARENA_EAGER_COMMIT: c_int = 4;

unsafe extern "C" {
    fn mi_option_set(option: c_int, value: c_long);
    #[cfg(test)]
    fn mi_option_get(option: c_int) -> c_long;
}

/// How long freed memory stays mapped before it goes back to the OS (mimalloc's default is
/// 1 s). A sync frees its pages as fast as it reads new ones: at 1 s tens of megabytes of them
/// stay resident (Parquet at `large`: 154 MB peak), and at 0 reused memory is faulted in
/// and zeroed again (Parquet at `large` 34.5 s with 11 s in the kernel, DuckDB 74 s). 100 ms:
/// Parquet 29 s and 134 MB, DuckDB 64.5 s, back to back.
const PURGE_DELAY_MS: c_long = 100;

/// Arenas committed on demand rather than up front: with eager commit (mimalloc's default on
/// Linux) and transparent huge pages on `madvise`, a DuckDB sync at `medium` peaked at 225–236 MB;
/// without, at 200–203 MB in the same time (back to back). mimalloc reserves its arena at the
/// process's first allocation, before `main` (set in `main`, the option changed nothing:
/// 220–223 MB), so it is set from a constructor, which the loader runs before `main`;
/// `MIMALLOC_ARENA_EAGER_COMMIT` still overrides it.
#[used]
#[unsafe(link_section = ".init_array")]
static COMMIT_ARENAS_ON_DEMAND: extern "C" fn() = commit_arenas_on_demand;

extern "C" fn commit_arenas_on_demand() {
    // SAFETY: `getenv` reads the environment without allocating (an allocation here would
    // reserve the arena before the option is set); `mi_option_set` sets a plain integer option.
    unsafe {
        if libc::getenv(c"MIMALLOC_ARENA_EAGER_COMMIT".as_ptr()).is_null() {
            mi_option_set(ARENA_EAGER_COMMIT, 0);
        }
    }
}

/// Sets the purge delay, unless mimalloc's own `MIMALLOC_PURGE_DELAY` says otherwise.
pub fn set_purge_delay() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: sets a plain integer option; mimalloc reads it on its next purge.
    unsafe { mi_option_set(PURGE_DELAY, PURGE_DELAY_MS) }
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
        set_purge_delay();
        let expected = match std::env::var("MIMALLOC_PURGE_DELAY") {
            Ok(delay) => delay.parse().unwrap(),
            Err(_) => PURGE_DELAY_MS,
        };
        // SAFETY: as above.
        assert_eq!(unsafe { mi_option_get(PURGE_DELAY) }, expected);
    }

    #[test]
    fn arenas_are_committed_on_demand_from_the_start() {
        let expected = match std::env::var("MIMALLOC_ARENA_EAGER_COMMIT") {
            Ok(value) => value.parse().unwrap(),
            Err(_) => 0,
        };
        // SAFETY: reads a plain integer option (set by the constructor, before this test ran).
        assert_eq!(unsafe { mi_option_get(ARENA_EAGER_COMMIT) }, expected);
    }
}
