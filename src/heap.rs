//! How the process uses glibc's allocator. Both settings come from measurements of the
//! 100,000-territory aggregator (docs/PERFORMANCE.md, "Scale"); elsewhere (musl, macOS)
//! they do nothing.

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

/// Hand the heap a whole build left free back to the system. glibc keeps freed memory for
/// reuse, so after loading 100,000 rows and their WKB, decoding and building, `serve`
/// stayed resident at the peak of the load (docs/PERFORMANCE.md "Scale"). Public for the
/// benchmarks that measure the index's live memory.
pub fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` takes no pointer and only walks glibc's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}
