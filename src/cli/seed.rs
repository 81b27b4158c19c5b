//! `cds-registry seed FILE [--dry-run]`: add the hosts of a seeds file, or show what
//! each line would crawl.

use std::path::Path;

use crate::cli::open_store;
use crate::config::Config;
use crate::crawl;
use crate::seeds;
use crate::store::Store;

/// `seed FILE`: add the file's hosts; returns (parsed, newly added). A file with any bad
/// line stores nothing (every bad line is named in the error).
pub async fn seed_file(store: &Store, path: &Path) -> anyhow::Result<(usize, usize)> {
    let text = read_seeds_file(path)?;
    let seeds = seeds::parse_seeds(&text)?;
    let added = store.add_hosts(&seeds, "seed").await?;
    Ok((seeds.len(), added))
}

fn read_seeds_file(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))
}

/// `seed --dry-run FILE`: what each line will crawl, without storing anything. For each
/// line: the normalised host, the URL tried first, whether `allow_http` / `allow_private`
/// apply, and whether the host is new, already present, or a repeat of an earlier line.
pub async fn seed_dry_run(cfg: &Config, path: &Path) -> anyhow::Result<String> {
    let text = read_seeds_file(path)?;
    let lines = seeds::parse_seed_lines(&text).map_err(seeds::SeedErrors)?;
    let store = open_store(cfg).await?;
    let present: std::collections::HashSet<String> = store
        .list_hosts()
        .await?
        .into_iter()
        .map(|h| h.seed)
        .collect();
    store.close().await;
    let guard = crawl::guard::Guard::new(&cfg.crawl.allow_http, &cfg.crawl.allow_private);
    let mut out = String::new();
    let (mut new, mut known, mut repeated) = (0, 0, 0);
    for l in &lines {
        let status = match l.duplicate_of {
            Some(first) => {
                repeated += 1;
                format!("same host as line {first}")
            }
            None if present.contains(l.seed.key()) => {
                known += 1;
                "already present".to_owned()
            }
            None => {
                new += 1;
                "new".to_owned()
            }
        };
        let plan = crawl::host::plan(&l.seed, &guard);
        out.push_str(&format!(
            "line {}: {} -> {} ({status})\n    first URL: {}\n    allow_http: {}; allow_private: {}\n",
            l.line, l.text, plan.host, plan.first_url, plan.http, plan.private
        ));
    }
    out.push_str(&format!(
        "{} hosts in {}: {new} new, {known} already present, {repeated} repeated lines; dry run, nothing stored",
        new + known,
        path.display()
    ));
    Ok(out)
}

/// The `seed` command.
pub async fn command(cfg: &Config, file: &Path, dry_run: bool) -> anyhow::Result<()> {
    if dry_run {
        println!("{}", seed_dry_run(cfg, file).await?);
        return Ok(());
    }
    let store = open_store(cfg).await?;
    let (n, added) = seed_file(&store, file).await?;
    store.close().await;
    println!("{n} hosts in {}, {added} new", file.display());
    Ok(())
}
