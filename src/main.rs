//! `cds-registry`: the command line lives in [`cds_registry::cli`].

// jemalloc: fewer instructions per request and per crawled document than glibc's malloc
// (docs/PERFORMANCE.md, "The global allocator"); src/heap.rs has the rest.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
