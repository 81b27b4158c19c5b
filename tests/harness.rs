//! The test harness cleans up after itself: a test's Postgres database is dropped when the
//! test ends, also when it fails.

mod common;

use common::{postgres_admin_url, Backend, TestDb};
use sqlx::Connection;

async fn database_exists(name: &str) -> bool {
    let mut conn = sqlx::postgres::PgConnection::connect(&postgres_admin_url())
        .await
        .expect("Postgres is required for this test");
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    n == 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_test_drops_its_postgres_database() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    // A "test" that opens its database, uses it, then panics while holding it.
    let failed = tokio::spawn(async move {
        let db = TestDb::new(Backend::Postgres).await;
        let store = db.store().await;
        let name = db.url.rsplit('/').next().unwrap().to_owned();
        tx.send(name).unwrap();
        let _still_open = store;
        panic!("a test assertion failed");
    })
    .await;
    assert!(failed.is_err_and(|e| e.is_panic()));
    let name = rx.await.unwrap();
    assert!(name.starts_with("cds_test_"), "{name}");
    assert!(!database_exists(&name).await, "{name} was left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passing_test_drops_its_database_and_file() {
    let pg = TestDb::new(Backend::Postgres).await;
    let name = pg.url.rsplit('/').next().unwrap().to_owned();
    assert!(database_exists(&name).await);
    drop(pg);
    assert!(!database_exists(&name).await, "{name} was left behind");

    let lite = TestDb::new(Backend::Sqlite).await;
    let store = lite.store().await;
    store.close().await;
    let path = lite.url.trim_start_matches("sqlite://").to_owned();
    assert!(std::path::Path::new(&path).exists());
    drop(lite);
    assert!(
        !std::path::Path::new(&path).exists(),
        "{path} was left behind"
    );
}
