//! `cds-registry`: the command line lives in [`cds_registry::cli`].

#[tokio::main]
async fn main() -> std::process::ExitCode {
    cds_registry::cli::main().await
}
