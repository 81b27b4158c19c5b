//! `cds-registry`: the command line lives in [`cds_registry::cli`].

fn main() -> std::process::ExitCode {
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
