//! The process's allocator: jemalloc for every allocation, Rust's and (through its unprefixed
//! `malloc`/`free`) DuckDB's C++; see the workspace manifest for why.

use std::ffi::c_char;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options for this process, read from the `malloc_conf` symbol at its first
/// allocation; the `MALLOC_CONF` environment variable still overrides each of them.
///
/// - `narenas:1`: one arena instead of four per core. A sync's pages are parsed on one thread
///   and freed on another, and DuckDB allocates on whichever thread writes; with one arena the
///   next page can reuse what the last one freed (two arenas peaked 5–13 MB higher, below).
/// - `dirty_decay_ms:100`, `muzzy_decay_ms:0`: freed pages go back to the OS after 100 ms (the
///   default is 10 s), in one step, by a background thread rather than by whichever thread
///   happens to free.
///
/// Measured with the bench's streams at `large` into DuckDB, back to back: mimalloc (purge
/// delay 100 ms, arenas committed on demand) 77 s and 218 MB peak; jemalloc with these options
/// 64–69 s and 180–181 MB; with its defaults 13 s and 278 MB at `medium` (mimalloc 17 s and
/// 205 MB). Two arenas and 100 or 300 ms took 63–67 s and 186–193 MB; no decay at all
/// (`dirty_decay_ms:0`), 165 MB but 99 s, 25 of them in the kernel.
const OPTIONS: &std::ffi::CStr =
    c"narenas:1,background_thread:true,dirty_decay_ms:100,muzzy_decay_ms:0";

/// The symbol jemalloc reads its compiled-in options from (declared weak inside jemalloc, so
/// this definition wins at link time).
#[used]
#[unsafe(no_mangle)]
static malloc_conf: Option<&'static c_char> = Some(
    // SAFETY: a pointer to the first byte of a NUL-terminated static string.
    unsafe { &*OPTIONS.as_ptr() },
);

#[cfg(test)]
mod tests {
    use std::ffi::{CStr, c_void};

    /// One of jemalloc's read-only `opt.*` values, through `mallctl`.
    fn option<T: Default>(name: &CStr) -> T {
        let mut value = T::default();
        let mut size = std::mem::size_of::<T>();
        // SAFETY: `value` is a `T` of `size` bytes, the type jemalloc documents for `name`.
        let status = unsafe {
            tikv_jemalloc_sys::mallctl(
                name.as_ptr(),
                (&raw mut value).cast::<c_void>(),
                &mut size,
                std::ptr::null_mut(),
                0,
            )
        };
        assert_eq!(status, 0, "mallctl {name:?}");
        value
    }

    #[test]
    fn jemalloc_runs_with_the_compiled_in_options() {
        if std::env::var_os("MALLOC_CONF").is_some() {
            // The environment overrides the compiled-in options by design.
            return;
        }
        assert_eq!(option::<u32>(c"opt.narenas"), 1);
        assert_eq!(option::<isize>(c"opt.dirty_decay_ms"), 100);
        assert_eq!(option::<isize>(c"opt.muzzy_decay_ms"), 0);
        assert!(option::<bool>(c"opt.background_thread"));
    }
}
