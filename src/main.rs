//! `cds-registry`: the command line lives in [`cds_registry::cli`].

// jemalloc: fewer instructions per request and per crawled document than glibc's malloc
// (docs/PERFORMANCE.md, "The global allocator"); src/heap.rs has the rest.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's compiled-in options, read once when it starts (`_RJEM_MALLOC_CONF` in the
/// environment still overrides them). `oversize_threshold:0`: no dedicated arena for
/// allocations of 8 MiB and more, which frees them back to the system at once; an index
/// update allocates its grid and tables that large and drops the previous snapshot's,
/// and on Postgres the catch-up took 0.15-0.17 s of CPU with this against 0.18-0.23 s
/// without (docs/PERFORMANCE.md, "The global allocator").
#[cfg(feature = "jemalloc")]
#[export_name = "_rjem_malloc_conf"]
static MALLOC_CONF: MallocConf = MallocConf(c"oversize_threshold:0".as_ptr());

/// jemalloc reads its options through a `const char *` named `malloc_conf`.
#[cfg(feature = "jemalloc")]
#[repr(transparent)]
struct MallocConf(*const std::ffi::c_char);

// SAFETY: the pointer is to a static, NUL-terminated string that nothing writes.
#[cfg(feature = "jemalloc")]
unsafe impl Sync for MallocConf {}

fn main() -> std::process::ExitCode {
    #[cfg(feature = "jemalloc")]
    cds_registry::heap::jemalloc_is_global();
    // Before the runtime starts its threads: the limit applies to arenas made after it.
    cds_registry::heap::limit_arenas();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(cds_registry::cli::main())
}

#[cfg(all(test, feature = "jemalloc"))]
mod tests {
    /// The binary's allocator is jemalloc with the compiled-in options, and it accepts the
    /// purge that follows an index build (a wrong symbol name or arena index would leave
    /// both silently undone).
    #[test]
    fn jemalloc_takes_the_options_and_the_purge() {
        let mut threshold = usize::MAX;
        let mut len = std::mem::size_of::<usize>();
        // SAFETY: `opt.oversize_threshold` is a `size_t`; `threshold` and `len` are valid
        // for writes of that size, and nothing is written to jemalloc (null new value).
        let rc = unsafe {
            tikv_jemalloc_sys::mallctl(
                c"opt.oversize_threshold".as_ptr(),
                (&mut threshold as *mut usize).cast(),
                &mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        assert_eq!(rc, 0, "mallctl opt.oversize_threshold");
        // (`_RJEM_MALLOC_CONF=oversize_threshold:N` in the environment would override it.)
        assert_eq!(
            threshold, 0,
            "the compiled-in malloc_conf did not reach jemalloc"
        );
        let held = vec![1u8; 32 << 20];
        drop(held);
        assert!(cds_registry::heap::purge_jemalloc());
    }
}
