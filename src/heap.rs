//! How the process uses its allocators. Every setting comes from measurements of the
//! 100,000-territory aggregator and of `GET /v1/lookup` (docs/PERFORMANCE.md, "Scale").
//!
//! The `cds-registry` binary gives Rust's allocations to jemalloc (feature `jemalloc`, on
//! by default; the `#[global_allocator]` and jemalloc's options are in src/main.rs, so
//! that tests and benchmark programs linking the library keep their own allocators). C
//! code (SQLite) still calls glibc's malloc, which [`limit_arenas`] tunes. Without the
//! feature, both are glibc's. Elsewhere than glibc (musl, macOS) the glibc settings do
//! nothing.

#[cfg(feature = "jemalloc")]
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether this process's global allocator is jemalloc ([`jemalloc_is_global`]).
#[cfg(feature = "jemalloc")]
static JEMALLOC_GLOBAL: AtomicBool = AtomicBool::new(false);

/// Tell [`release_free_heap`] that the binary's `#[global_allocator]` is jemalloc, so that
/// it purges jemalloc's arenas too; elsewhere it leaves jemalloc alone (asking it anything
/// would start it, with nothing to give back).
#[cfg(feature = "jemalloc")]
pub fn jemalloc_is_global() {
    JEMALLOC_GLOBAL.store(true, Ordering::Relaxed);
}

/// Arenas glibc may create when threads contend for the heap (see [`limit_arenas`]).
const ARENAS: i32 = 2;

/// Cap glibc's malloc arenas at [`ARENAS`], unless the environment already chose (`MALLOC_ARENA_MAX`,
/// or `arena_max` in `GLIBC_TUNABLES`). Call before any thread starts.
///
/// Why: glibc gives a thread that finds the heap locked an arena of its own, up to eight
/// per core. The crawler's and the index build's long-lived data (entries, geometry) is
/// then allocated in several arenas between the temporaries of whichever thread made
/// it, and each arena keeps the pages those temporaries leave half-used: an API replica
/// of 100,000 territories sat at 469 MiB after its start with the default arenas, at
/// 385 MiB with one and at 386–399 MiB in most starts with two (~464 in some, when the
/// load and the build land in different arenas), and a crawl of them peaked at 790 MiB
/// against 664 with two. One arena made `GET /v1/lookup` ~15 % slower (every thread
/// takes the same lock for larger blocks); two were as fast as sixteen.
pub fn limit_arenas() {
    let chosen = std::env::var_os("MALLOC_ARENA_MAX").is_some()
        || std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("arena_max"));
    if chosen {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` takes two integers and changes a setting of glibc's allocator; it
    // is called before the process starts any thread.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
    }
}

/// Hand the heap a whole build left free back to the system. Both allocators keep freed
/// memory for reuse (glibc in its free lists, jemalloc as dirty pages it returns only after
/// a ten-second decay), so after loading 100,000 rows and their WKB, decoding and building,
/// `serve` stayed resident at the peak of the load (docs/PERFORMANCE.md "Scale"). Public
/// for the benchmarks that measure the index's live memory.
pub fn release_free_heap() {
    #[cfg(feature = "jemalloc")]
    if JEMALLOC_GLOBAL.load(Ordering::Relaxed) && !purge_jemalloc() {
        tracing::debug!("jemalloc refused to purge its arenas");
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` takes no pointer and only walks glibc's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Return every jemalloc arena's unused dirty pages to the system now; whether jemalloc
/// accepted the call. Public for the binary's test, where jemalloc is the allocator.
#[cfg(feature = "jemalloc")]
pub fn purge_jemalloc() -> bool {
    // SAFETY: the name is a NUL-terminated string of jemalloc's mallctl namespace;
    // `arena.<MALLCTL_ARENAS_ALL>.purge` (4096 in jemalloc 5) reads and writes no value,
    // so every pointer is null.
    let rc = unsafe {
        tikv_jemalloc_sys::mallctl(
            c"arena.4096.purge".as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        )
    };
    rc == 0
}
