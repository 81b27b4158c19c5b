//! The one pagination scheme of the list endpoints: `limit` (a page size with a default
//! and a maximum per endpoint) and an opaque `cursor` taken from the previous answer's
//! `next_cursor`, which is `null` on the last page.
//!
//! A cursor is the hex of `"<kind>:<position>"`: clients do not build or read them, and
//! one endpoint's cursor given to another is a 400 rather than a silently wrong page.
//! Because `:` is `3a` in hex, every cursor holds a letter; a string of digits is never
//! one, which lets `/v1/crawls` and `/v1/findings` keep taking the plain run or finding
//! id their `cursor` was before it became opaque.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use serde::Deserialize;
use utoipa::IntoParams;

use super::ApiError;

/// Which listing a cursor walks; the tag is the `<kind>` of the cursor text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    Coverage,
    Entities,
    Hosts,
    Servers,
    Findings,
    Runs,
    Changes,
}

impl Listing {
    fn tag(self) -> &'static str {
        match self {
            // `k` and `e` are what the search listings have always sent: cursors that
            // clients hold keep working.
            Listing::Coverage => "k",
            Listing::Entities => "e",
            Listing::Hosts => "h",
            Listing::Servers => "s",
            Listing::Findings => "f",
            Listing::Runs => "r",
            Listing::Changes => "c",
        }
    }

    /// The cursor that continues this listing after `position`.
    pub fn cursor(self, position: impl std::fmt::Display) -> String {
        hex::encode(format!("{}:{position}", self.tag()))
    }

    /// The position a cursor of this listing stands for.
    pub fn position(self, cursor: &str) -> Result<String, ApiError> {
        let text = hex::decode(cursor.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| bad("`cursor` is not a cursor this API returned"))?;
        match text.split_once(':') {
            Some((k, v)) if k == self.tag() => Ok(v.to_owned()),
            _ => Err(bad("`cursor` belongs to another endpoint")),
        }
    }

    /// The id a cursor of an id-ordered listing stands for. With `legacy_ids`, a plain
    /// integer (what the endpoint took before its cursors were opaque) is taken as is.
    pub fn id(self, cursor: &str, legacy_ids: bool) -> Result<i64, ApiError> {
        let c = cursor.trim();
        if legacy_ids && !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()) {
            return c.parse().map_err(|_| bad("`cursor` is out of range"));
        }
        self.position(c)?
            .parse()
            .map_err(|_| bad("`cursor` is not a cursor this API returned"))
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::BadRequest(msg.into())
}

/// `limit`: `default` when absent, else 1..=`max`.
pub fn limit(given: Option<i64>, default: i64, max: i64) -> Result<i64, ApiError> {
    let l = given.unwrap_or(default);
    if (1..=max).contains(&l) {
        Ok(l)
    } else {
        Err(bad(format!("`limit` must be 1..{max}")))
    }
}

/// The query of a list endpoint that takes nothing but the page.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1..1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// One page of `items`, which are in ascending `key` order: those after the cursor's
/// key, at most `limit`, and the cursor of the next page when more remain.
pub fn after_key<'a, T, K>(
    items: &'a [T],
    cursor: Option<&String>,
    listing: Listing,
    limit: usize,
    key: impl Fn(&T) -> K,
) -> Result<(&'a [T], Option<String>), ApiError>
where
    K: PartialOrd + std::fmt::Display + std::str::FromStr,
{
    let start = match cursor {
        Some(c) => {
            let k: K = listing
                .position(c)?
                .parse()
                .map_err(|_| bad("`cursor` is not a cursor this API returned"))?;
            items.partition_point(|x| key(x) <= k)
        }
        None => 0,
    };
    let page = &items[start..items.len().min(start + limit)];
    let next = page
        .last()
        .filter(|_| start + page.len() < items.len())
        .map(|x| listing.cursor(key(x)));
    Ok((page, next))
}

/// A page of a listing read whole and ordered by id (`/v1/hosts`, `/v1/servers`).
pub fn slice_by_id<T: Clone>(
    rows: Vec<T>,
    listing: Listing,
    q: &PageQuery,
    id: impl Fn(&T) -> i64,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let limit = limit(q.limit, 100, 1000)? as usize;
    let (page, next) = after_key(&rows, q.cursor.as_ref(), listing, limit, id)?;
    Ok((page.to_vec(), next))
}

/// Rows read with one more than the page size: the page, and the cursor of the next one
/// when the extra row shows that there is one (so the last page says `null`, not an
/// empty page after it).
pub fn split_extra<T>(
    mut rows: Vec<T>,
    limit: i64,
    listing: Listing,
    position: impl Fn(&T) -> i64,
) -> (Vec<T>, Option<String>) {
    if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        let next = rows.last().map(|r| listing.cursor(position(r)));
        (rows, next)
    } else {
        (rows, None)
    }
}

/// A registry id in the path (`/v1/hosts/{id}`, `/v1/servers/{id}`, ...): a non-integer
/// is a 400 problem+json, where axum's own `Path<i64>` would answer plain text.
pub struct Id(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| bad(e.body_text()))?;
        raw.parse()
            .map(Id)
            .map_err(|_| bad(format!("`id` must be an integer, got {raw:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_are_checked() {
        let c = Listing::Coverage.cursor(42);
        assert_eq!(Listing::Coverage.position(&c).unwrap(), "42");
        assert_eq!(Listing::Coverage.id(&c, false).unwrap(), 42);
        assert!(Listing::Entities.position(&c).is_err());
        assert!(Listing::Coverage.position("zz").is_err());
        // Every cursor holds a letter, so a legacy integer is never mistaken for one.
        for l in [Listing::Runs, Listing::Findings, Listing::Hosts] {
            assert!(l.cursor(7).bytes().any(|b| b.is_ascii_alphabetic()));
        }
        assert_eq!(Listing::Runs.id("17", true).unwrap(), 17);
        assert!(Listing::Hosts.id("17", false).is_err());
        assert_eq!(Listing::Runs.id(&Listing::Runs.cursor(9), true).unwrap(), 9);
    }

    #[test]
    fn slices_walk_every_row_once() {
        let rows: Vec<i64> = (1..=7).collect();
        let mut q = PageQuery {
            cursor: None,
            limit: Some(3),
        };
        let mut seen = Vec::new();
        loop {
            let (page, next) = slice_by_id(rows.clone(), Listing::Hosts, &q, |r| *r).unwrap();
            seen.extend(page);
            match next {
                Some(c) => q.cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen, rows);
        q.limit = Some(0);
        assert!(slice_by_id(rows, Listing::Hosts, &q, |r| *r).is_err());
    }
}
