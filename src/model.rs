//! The registry's closed vocabularies: every status, outcome, severity and kind that is
//! stored in a TEXT column or shown in the API, defined once with its spelling.
//!
//! Each type has one `as_str()` (the stored and serialised spelling, unchanged from when
//! these were plain strings), `FromStr`, serde, and the `sqlx::Any` conversion, so a row
//! struct can hold the type itself and no caller compares or builds the strings.

use std::fmt;
use std::str::FromStr;

use sqlx::any::{Any, AnyTypeInfo};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::{Database, Decode, Encode, Type};

/// A stored or received value that is not one of a vocabulary's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
}

/// Stored as TEXT through `sqlx::Any`: encoded by its spelling, decoded through `FromStr`.
macro_rules! text_column {
    ($name:ty) => {
        impl Type<Any> for $name {
            fn type_info() -> AnyTypeInfo {
                <str as Type<Any>>::type_info()
            }
        }

        impl<'q> Encode<'q, Any> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut <Any as Database>::ArgumentBuffer<'q>,
            ) -> Result<IsNull, BoxDynError> {
                <&str as Encode<'q, Any>>::encode(self.as_str(), buf)
            }
        }

        impl<'r> Decode<'r, Any> for $name {
            fn decode(value: <Any as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
                Ok(<String as Decode<'r, Any>>::decode(value)?.parse()?)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A closed set of words: the enum, `ALL`, `as_str`, `FromStr` and [`text_column!`].
macro_rules! vocabulary {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($(#[$vm])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored and serialised spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $s),+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, UnknownValue> {
                match s {
                    $($s => Ok($name::$variant),)+
                    _ => Err(UnknownValue { what: stringify!($name), value: s.to_owned() }),
                }
            }
        }

        text_column!($name);
    };
}

vocabulary! {
    /// A host's place in its lifecycle ([`crate::crawl::lifecycle`]).
    HostStatus {
        Active = "active",
        /// Its well-known URL redirected permanently elsewhere.
        Moved = "moved",
        /// Failing: still searchable, flagged.
        Stale = "stale",
        /// Failing for long: out of search, history kept.
        Gone = "gone",
        /// Removed by an operator: not crawled, its servers out of search.
        Removed = "removed",
    }
}

vocabulary! {
    /// A server's status: `active` and `stale` ones are searchable.
    ServerStatus {
        Active = "active",
        Stale = "stale",
        Gone = "gone",
    }
}

impl ServerStatus {
    /// Whether the server's entries are in search (active or stale).
    pub fn searchable(self) -> bool {
        self != ServerStatus::Gone
    }
}

vocabulary! {
    /// How a host was added.
    HostSource {
        /// From a seed list (`cds-registry seed`).
        Seed = "seed",
        /// Through the admin API.
        Admin = "admin",
        /// Reached through `related_metadata` or a migration of another host.
        Discovered = "discovered",
    }
}

vocabulary! {
    /// A crawl run's state.
    RunStatus {
        Running = "running",
        Finished = "finished",
    }
}

vocabulary! {
    /// What a change-log row is about.
    ChangeEntity {
        Server = "server",
        Entry = "entry",
        /// A scope offered at an entry (`scope@entry_id`, WG1-02 §3.3).
        Scope = "scope",
        Host = "host",
    }
}

vocabulary! {
    /// What happened to a change-log row's entity. A server's status changes are logged
    /// with the status it got (`active`, `stale`, `gone`).
    ChangeOp {
        Added = "added",
        Updated = "updated",
        Removed = "removed",
        Moved = "moved",
        Active = "active",
        Stale = "stale",
        Gone = "gone",
    }
}

impl From<ServerStatus> for ChangeOp {
    fn from(s: ServerStatus) -> ChangeOp {
        match s {
            ServerStatus::Active => ChangeOp::Active,
            ServerStatus::Stale => ChangeOp::Stale,
            ServerStatus::Gone => ChangeOp::Gone,
        }
    }
}

vocabulary! {
    /// How bad a finding is. Ordered so that `Error > Warning > Info`.
    Severity {
        Info = "info",
        Warning = "warning",
        Error = "error",
    }
}

impl Severity {
    /// A severity as people write it (also `warn`), for filters and options.
    pub fn parse(s: &str) -> Option<Severity> {
        match s {
            "warn" => Some(Severity::Warning),
            _ => s.parse().ok(),
        }
    }
}

vocabulary! {
    /// The kinds of document we fetch; each has its own size limit.
    DocKind {
        Metadata = "metadata",
        CoveragePage = "coverage_page",
        GeoJson = "geojson",
        OAuth = "oauth",
    }
}

vocabulary! {
    /// Classified failure outcomes, stored per host and run.
    FailureClass {
        Dns = "dns",
        Connect = "connect",
        Tls = "tls",
        Timeout = "timeout",
        HttpStatus = "http_status",
        TooLarge = "too_large",
        InvalidJson = "invalid_json",
        Blocked = "blocked",
        TooManyRedirects = "too_many_redirects",
        /// The documents were fetched but do not make a usable server (e.g. not an object).
        Invalid = "invalid",
        /// A crawl limit (pages, documents per host) was reached.
        Limit = "limit",
        /// The host was crawled but committing a server failed.
        StoreError = "store_error",
        Other = "other",
    }
}

/// The outcome of one crawl of a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Outcome {
    /// Every server was read and committed.
    #[default]
    Ok,
    /// What was read is committed, but a related server failed or a listing was not read
    /// to its end (CDS-SPEC-NOTES §3, §5a).
    Partial,
    Failed(FailureClass),
}

impl Outcome {
    /// Every value: `ok`, `partial`, then each failure class.
    pub fn all() -> impl Iterator<Item = Outcome> {
        [Outcome::Ok, Outcome::Partial]
            .into_iter()
            .chain(FailureClass::ALL.iter().map(|c| Outcome::Failed(*c)))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Partial => "partial",
            Outcome::Failed(c) => c.as_str(),
        }
    }

    /// Whether the host answered, so its crawled state was kept: it counts as a success
    /// (failures reset, no back-off) although a partial crawl says why it is partial.
    pub fn keeps_data(self) -> bool {
        matches!(self, Outcome::Ok | Outcome::Partial)
    }
}

impl FromStr for Outcome {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, UnknownValue> {
        match s {
            "ok" => Ok(Outcome::Ok),
            "partial" => Ok(Outcome::Partial),
            _ => s.parse().map(Outcome::Failed).map_err(|_| UnknownValue {
                what: "Outcome",
                value: s.to_owned(),
            }),
        }
    }
}

impl From<FailureClass> for Outcome {
    fn from(c: FailureClass) -> Outcome {
        Outcome::Failed(c)
    }
}

text_column!(Outcome);

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<T>(all: impl IntoIterator<Item = T>)
    where
        T: Copy + fmt::Debug + PartialEq + FromStr + fmt::Display + serde::Serialize,
        T: serde::de::DeserializeOwned,
        <T as FromStr>::Err: fmt::Debug,
    {
        for v in all {
            let s = v.to_string();
            assert_eq!(s.parse::<T>().unwrap(), v);
            let json = serde_json::to_string(&v).unwrap();
            assert_eq!(json, format!("\"{s}\""));
            assert_eq!(serde_json::from_str::<T>(&json).unwrap(), v);
        }
    }

    #[test]
    fn every_word_round_trips() {
        round_trips(HostStatus::ALL.iter().copied());
        round_trips(ServerStatus::ALL.iter().copied());
        round_trips(HostSource::ALL.iter().copied());
        round_trips(RunStatus::ALL.iter().copied());
        round_trips(ChangeEntity::ALL.iter().copied());
        round_trips(ChangeOp::ALL.iter().copied());
        round_trips(Severity::ALL.iter().copied());
        round_trips(DocKind::ALL.iter().copied());
        round_trips(FailureClass::ALL.iter().copied());
        round_trips(Outcome::all());
    }

    #[test]
    fn unknown_words_are_refused() {
        assert!("ok ".parse::<Outcome>().is_err());
        assert!("Active".parse::<HostStatus>().is_err());
        assert_eq!(Severity::parse("warn"), Some(Severity::Warning));
        assert!(Severity::Error > Severity::Warning && Severity::Warning > Severity::Info);
    }

    #[test]
    fn only_ok_and_partial_keep_data() {
        let kept: Vec<_> = Outcome::all().filter(|o| o.keeps_data()).collect();
        assert_eq!(kept, [Outcome::Ok, Outcome::Partial]);
    }

    /// The API documents the outcome list in prose (`CrawlOutcome.outcome`); it must name
    /// every outcome the crawler can record.
    #[test]
    fn the_documented_outcome_list_is_complete() {
        use utoipa::PartialSchema;
        let schema = serde_json::to_string(&crate::store::OutcomeRow::schema()).unwrap();
        for o in Outcome::all() {
            assert!(schema.contains(&format!("`{o}`")), "{o} not documented");
        }
    }
}
