//! `cds-registry migrate`: apply the database migrations.

use crate::cli::open_store;
use crate::config::Config;

/// The `migrate` command.
pub async fn command(cfg: &Config) -> anyhow::Result<()> {
    let store = open_store(cfg).await?;
    store.close().await;
    println!("migrations applied to {}", redact_url(&cfg.database_url));
    Ok(())
}

/// Never print a database password.
fn redact_url(u: &str) -> String {
    match url::Url::parse(u) {
        Ok(mut p) if p.password().is_some() => {
            let _ = p.set_password(Some("***"));
            p.to_string()
        }
        _ => u.to_owned(),
    }
}
