//! The two migration folders describe one schema (README, "Storage: one SQL code path").
//! They may differ only in the spelling of three column types; anything else (a column
//! added on one side only, a different default, a missing file) fails here.

use std::collections::BTreeSet;
use std::path::Path;

/// Postgres spelling -> SQLite spelling of the types that differ. SQLite has no
/// `BIGSERIAL` (its autoincrementing 64-bit id is `INTEGER PRIMARY KEY AUTOINCREMENT`),
/// calls binary data `BLOB` where Postgres says `BYTEA`, and stores every float as an
/// 8-byte `REAL`, which is Postgres' `DOUBLE PRECISION` (a Postgres `REAL` is 4 bytes).
const SPELLINGS: [(&str, &str); 3] = [
    ("BIGSERIAL PRIMARY KEY", "INTEGER PRIMARY KEY AUTOINCREMENT"),
    ("BYTEA", "BLOB"),
    ("DOUBLE PRECISION", "REAL"),
];

fn files(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn normalise_postgres(sql: &str) -> String {
    SPELLINGS
        .iter()
        .fold(sql.to_owned(), |s, (pg, lite)| s.replace(pg, lite))
}

#[test]
fn both_backends_have_the_same_migrations() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let (sqlite, postgres) = (root.join("sqlite"), root.join("postgres"));
    let names = files(&sqlite);
    assert_eq!(names, files(&postgres), "the folders list different files");
    assert!(!names.is_empty());
    for name in &names {
        let lite = std::fs::read_to_string(sqlite.join(name)).unwrap();
        let pg = normalise_postgres(&std::fs::read_to_string(postgres.join(name)).unwrap());
        let (lite, pg): (Vec<&str>, Vec<&str>) = (lite.lines().collect(), pg.lines().collect());
        for (i, (a, b)) in lite.iter().zip(&pg).enumerate() {
            assert_eq!(a, b, "{name} line {}: sqlite vs postgres", i + 1);
        }
        assert_eq!(lite.len(), pg.len(), "{name}: line counts differ");
    }
}

/// The normalisation only maps Postgres spellings: a SQLite file must not use them, or
/// a difference could hide behind it.
#[test]
fn sqlite_migrations_use_only_sqlite_spellings() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    for name in files(&dir) {
        let sql = std::fs::read_to_string(dir.join(&name)).unwrap();
        for (pg, _) in SPELLINGS {
            assert!(!sql.contains(pg), "{name} uses the Postgres spelling {pg}");
        }
    }
}
