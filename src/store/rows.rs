//! Reading rows into types: the JSON columns, and coverage entries (a `cds` type, so its
//! mapping lives here rather than as a derive in `cds`). Every other row type derives
//! `sqlx::FromRow` where it is defined; the vocabularies of [`crate::model`] decode
//! themselves.

use sqlx::any::AnyRow;
use sqlx::error::BoxDynError;
use sqlx::{Any, Database, Decode, FromRow, Row, Type};

use crate::cds::CoverageEntry;

/// A TEXT column holding a JSON list of strings (an unreadable one reads as empty).
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct JsonList(pub Vec<String>);

/// A TEXT column holding a JSON document (an unreadable one reads as `null`).
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct JsonDoc(pub serde_json::Value);

macro_rules! json_text_column {
    ($name:ident) => {
        impl Type<Any> for $name {
            fn type_info() -> sqlx::any::AnyTypeInfo {
                <String as Type<Any>>::type_info()
            }
        }

        impl<'r> Decode<'r, Any> for $name {
            fn decode(value: <Any as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
                let text = <String as Decode<'r, Any>>::decode(value)?;
                Ok($name(serde_json::from_str(&text).unwrap_or_default()))
            }
        }
    };
}
json_text_column!(JsonList);
json_text_column!(JsonDoc);

impl From<JsonList> for Vec<String> {
    fn from(l: JsonList) -> Vec<String> {
        l.0
    }
}

impl From<JsonDoc> for serde_json::Value {
    fn from(d: JsonDoc) -> serde_json::Value {
        d.0
    }
}

/// The columns of a coverage entry in `coverage_entries e` (without the registry's own
/// `e.id`, `e.server_id`, `e.page_url`, `e.territory_id`, `e.raw_json`).
macro_rules! entry_cols {
    () => {
        "e.entry_id, e.created, e.updated, e.entity_name, e.entity_abbreviation, e.country, e.name, \
         e.description, e.entry_type, e.role, e.infrastructure_types, e.commodity_types, e.capabilities, \
         e.map_resource, e.map_content_type, e.geojson_resource, e.origin"
    };
}
pub(super) use entry_cols;

/// SQL: the server aliased `s` is in search, as [`crate::model::ServerStatus::searchable`]
/// says (a test checks that the two agree).
macro_rules! searchable {
    () => {
        "s.status IN ('active', 'stale')"
    };
}
pub(super) use searchable;

/// SQL: the outcomes whose host kept its data, as [`crate::model::Outcome::keeps_data`]
/// says, as a list for `IN` (a test checks that the two agree).
macro_rules! data_kept {
    () => {
        "('ok', 'partial')"
    };
}
pub(super) use data_kept;

/// A stored coverage entry ([`entry_cols!`]): `entry_id` is its own `id`, `entry_type`
/// its `type`, and the lists are JSON.
impl<'r> FromRow<'r, AnyRow> for CoverageEntry {
    fn from_row(r: &'r AnyRow) -> Result<Self, sqlx::Error> {
        let list = |col: &str| r.try_get::<JsonList, _>(col).map(Vec::from);
        Ok(CoverageEntry {
            id: r.try_get("entry_id")?,
            created: r.try_get("created")?,
            updated: r.try_get("updated")?,
            // Written by the crawler from a parsed `Origin`; a row it cannot read is
            // taken as the server's own entry (it then ranks as an original).
            origin: r
                .try_get::<Option<String>, _>("origin")?
                .and_then(|s| serde_json::from_str(&s).ok()),
            entity_name: r.try_get("entity_name")?,
            entity_abbreviation: r.try_get("entity_abbreviation")?,
            country: r.try_get("country")?,
            name: r.try_get("name")?,
            description: r.try_get("description")?,
            kind: r.try_get("entry_type")?,
            role: r.try_get("role")?,
            infrastructure_types: list("infrastructure_types")?,
            commodity_types: list("commodity_types")?,
            capabilities: list("capabilities")?,
            map_resource: r.try_get("map_resource")?,
            map_content_type: r.try_get("map_content_type")?,
            geojson_resource: r.try_get("geojson_resource")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{Outcome, ServerStatus};

    #[test]
    fn the_searchable_predicate_lists_the_searchable_statuses() {
        let statuses: Vec<String> = ServerStatus::ALL
            .iter()
            .filter(|s| s.searchable())
            .map(|s| format!("'{}'", s.as_str()))
            .collect();
        assert_eq!(
            searchable!(),
            format!("s.status IN ({})", statuses.join(", "))
        );
    }

    #[test]
    fn the_data_kept_list_lists_the_outcomes_that_keep_data() {
        let outcomes: Vec<String> = Outcome::all()
            .filter(|o| o.keeps_data())
            .map(|o| format!("'{o}'"))
            .collect();
        assert_eq!(data_kept!(), format!("({})", outcomes.join(", ")));
    }
}
