//! Statement building shared by every store file: placeholders per backend, multi-row
//! inserts sized to the parameter limit, and JSON lists in TEXT columns.

use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, Transaction};

use super::{Backend, Result};

/// Bind parameters one statement may carry: SQLite's `SQLITE_MAX_VARIABLE_NUMBER`
/// (32,766 since 3.32) and Postgres' 16-bit parameter count (65,535). Large writes go in
/// multi-row statements sized to it, not one round trip per row (issue 17).
pub const SQLITE_MAX_BINDS: usize = 32_766;
pub const POSTGRES_MAX_BINDS: usize = 65_535;

/// Rows of `cols` parameters that fit one statement of at most `max_binds` parameters.
pub(super) fn rows_per_statement(max_binds: usize, cols: usize) -> usize {
    (max_binds / cols).max(1)
}

/// How one backend writes placeholders: Postgres numbers them (`$1`); SQLite gets plain
/// `?`, bound in order. SQLite treats `$N` as a *named* parameter and finds each name by
/// a linear scan, so a statement of 30,000 `$N` took seconds to prepare; `?` is O(1).
#[derive(Clone, Copy)]
pub(super) struct Marks {
    numbered: bool,
}

impl Marks {
    pub(super) fn for_backend(b: Backend) -> Marks {
        Marks {
            numbered: b == Backend::Postgres,
        }
    }

    pub(super) fn of(tx: &Transaction<'_, Any>) -> Marks {
        Marks {
            numbered: !tx.backend_name().eq_ignore_ascii_case("sqlite"),
        }
    }

    fn push(self, out: &mut String, i: usize) {
        if self.numbered {
            out.push('$');
            out.push_str(&i.to_string());
        } else {
            out.push('?');
        }
    }

    /// `($1, $2), ($3, $4)`: `rows` groups of `cols` placeholders.
    pub(super) fn rows(self, rows: usize, cols: usize) -> String {
        let mut out = String::with_capacity(rows * cols * 6);
        for r in 0..rows {
            if r > 0 {
                out.push_str(", ");
            }
            out.push('(');
            for c in 0..cols {
                if c > 0 {
                    out.push_str(", ");
                }
                self.push(&mut out, r * cols + c + 1);
            }
            out.push(')');
        }
        out
    }

    /// `$1, $2, …, $n`, for an `IN (…)` list.
    /// The placeholder of parameter `i` (1-based) on its own.
    pub(super) fn at(self, i: usize) -> String {
        let mut out = String::new();
        self.push(&mut out, i);
        out
    }

    pub(super) fn list(self, n: usize) -> String {
        let mut out = String::with_capacity(n * 6);
        for i in 1..=n {
            if i > 1 {
                out.push_str(", ");
            }
            self.push(&mut out, i);
        }
        out
    }
}

pub(super) type AnyQuery<'q> = Query<'q, Any, AnyArguments<'q>>;

/// One multi-row write: `INSERT INTO table (cols) VALUES (...), (...) tail`, in as few
/// statements as the parameter limit allows.
pub(super) struct MultiRow<'s> {
    /// `INSERT INTO t (a, b, c)`: the placeholders come from the number of columns.
    pub head: &'s str,
    pub cols: usize,
    /// What follows the VALUES rows (`ON CONFLICT ...`), or empty.
    pub tail: &'s str,
}

impl MultiRow<'_> {
    /// Write `items`, each bound by `bind` (which must bind exactly `cols` values), in
    /// statements of at most `max_binds` parameters, in order.
    pub(super) async fn write<T: Sync>(
        &self,
        tx: &mut Transaction<'_, Any>,
        max_binds: usize,
        items: &[T],
        bind: impl for<'q> Fn(AnyQuery<'q>, &'q T) -> AnyQuery<'q> + Sync,
    ) -> Result<()> {
        let marks = Marks::of(tx);
        for chunk in items.chunks(rows_per_statement(max_binds, self.cols)) {
            let sql = format!(
                "{} VALUES {} {}",
                self.head,
                marks.rows(chunk.len(), self.cols),
                self.tail
            );
            let mut q = sqlx::query(&sql);
            for item in chunk {
                q = bind(q, item);
            }
            q.execute(&mut **tx).await?;
        }
        Ok(())
    }
}

/// A list of strings as stored in a TEXT column.
pub(super) fn to_json_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}
