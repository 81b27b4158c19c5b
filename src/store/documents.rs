//! Fetched documents: the validators for conditional GET, and the stored bodies a 304
//! answer stands for.

use std::collections::HashMap;

use sqlx::FromRow;

use super::sql::{rows_per_statement, Marks, SQLITE_MAX_BINDS};
use super::{Result, Store};

/// Validators of a stored document, for conditional GET.
#[derive(Debug, Clone, Default, PartialEq, Eq, FromRow)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub content_hash: String,
    /// When the document was last fetched or revalidated (a 200 or a 304), ms since the
    /// epoch: how fresh the stored copy is.
    pub fetched_ms: i64,
}

#[derive(FromRow)]
struct DocumentValidators {
    url: String,
    #[sqlx(flatten)]
    validators: Validators,
}

impl Store {
    pub async fn validators(&self) -> Result<HashMap<String, Validators>> {
        let rows: Vec<DocumentValidators> = sqlx::query_as(
            "SELECT url, etag, last_modified, content_hash, fetched_ms FROM documents",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|d| (d.url, d.validators)).collect())
    }

    /// The stored body of a document (after a 304).
    pub async fn document_body(&self, url: &str) -> Result<Option<(String, String)>> {
        let r: Option<(Option<String>, String)> =
            sqlx::query_as("SELECT body, content_hash FROM documents WHERE url = $1")
                .bind(url)
                .fetch_optional(&self.pool)
                .await?;
        Ok(r.and_then(|(body, hash)| Some((body?, hash))))
    }

    /// The content hash of a stored territory source whose territory row exists (after a 304).
    pub async fn territory_hash_for(&self, source_url: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT d.content_hash FROM documents d JOIN territories t \
             ON t.source_url = d.url AND t.source_hash = d.content_hash WHERE d.url = $1",
        )
        .bind(source_url)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// [`Store::territory_hash_for`] for many URLs at once (one query per chunk of the
    /// parameter limit): the crawler asks for every territory URL of a server it holds
    /// validators for before fetching, instead of one round trip per 304 (issue 17).
    pub async fn territory_hashes_for(
        &self,
        source_urls: &[&str],
    ) -> Result<HashMap<String, String>> {
        let marks = Marks::for_backend(self.backend);
        let mut out = HashMap::with_capacity(source_urls.len());
        for chunk in source_urls.chunks(rows_per_statement(SQLITE_MAX_BINDS, 1)) {
            let sql = format!(
                "SELECT d.url, d.content_hash FROM documents d JOIN territories t \
                 ON t.source_url = d.url AND t.source_hash = d.content_hash WHERE d.url IN ({})",
                marks.list(chunk.len())
            );
            let mut q = sqlx::query_as::<_, (String, String)>(&sql);
            for u in chunk {
                q = q.bind(*u);
            }
            out.extend(q.fetch_all(&self.pool).await?);
        }
        Ok(out)
    }
}
