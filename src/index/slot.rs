//! One indexed entry as a snapshot holds it ([`Slot`]), and the view the index hands out
//! ([`EntryRef`]).
//!
//! Why the entry is not kept as an [`IndexEntry`]: a `CoverageEntry` is 13 owned strings,
//! three lists and an origin, 632 bytes before any of its text, and each string is an
//! allocation of its own. At 100,000 entries that was ~120 MB of an API replica's heap for
//! ~20 MB of text (docs/PERFORMANCE.md, "Scale"). A slot keeps the strings back to back in
//! one block ([`Packed`]), the rarely present parts (OAuth scopes, a copy's origin) behind
//! one pointer, and rebuilds an `IndexEntry` only when asked ([`EntryRef::to_entry`]):
//! the hot paths, the lookup's response rows among them ([`EntryRef::row_fields`]), read
//! the block in place.

use std::sync::Arc;

use geo::MultiPolygon;

use super::text;
use super::IndexEntry;
use crate::cds::oauth::OAuthOffer;
use crate::cds::origin::Origin;
use crate::cds::CoverageEntry;

/// Numbers of the single strings in a [`Packed`] block; the three lists follow them.
pub(super) mod at {
    pub const ID: usize = 0;
    pub const CREATED: usize = 1;
    pub const UPDATED: usize = 2;
    pub const ENTITY_NAME: usize = 3;
    pub const ENTITY_ABBREVIATION: usize = 4;
    pub const COUNTRY: usize = 5;
    pub const NAME: usize = 6;
    pub const DESCRIPTION: usize = 7;
    pub const KIND: usize = 8;
    pub const ROLE: usize = 9;
    pub const MAP_RESOURCE: usize = 10;
    pub const MAP_CONTENT_TYPE: usize = 11;
    pub const GEOJSON_RESOURCE: usize = 12;
    /// Derived: the folded names `q` searches.
    pub const TEXT: usize = 13;
    /// Derived: the entity grouping's name key and country.
    pub const ENTITY_KEY: usize = 14;
    pub const ENTITY_COUNTRY: usize = 15;
    /// How many single strings come before the lists.
    pub const SINGLE: usize = 16;
}

/// The entry's lists, in block order.
#[derive(Clone, Copy)]
pub(super) enum List {
    Infrastructure = 0,
    Commodity = 1,
    Capability = 2,
}

/// Header words before the string ends: which optional strings are present (bit `k` for
/// string `k`; an absent one is stored empty), then the length of each list.
const HEAD: usize = 4;

/// Strings back to back in one allocation: `HEAD` u32 words, one u32 end offset per
/// string, then the UTF-8 text. Offsets are relative to the text's start.
struct Packed(Box<[u8]>);

impl Packed {
    fn new(head: [u32; HEAD], strs: &[&str]) -> Packed {
        let text_len: usize = strs.iter().map(|s| s.len()).sum();
        let end_bytes = 4 * (HEAD + strs.len());
        let text_len32 = u32::try_from(text_len).expect("an entry's text is under 4 GiB");
        let mut buf = Vec::with_capacity(end_bytes + text_len);
        for w in head {
            buf.extend_from_slice(&w.to_le_bytes());
        }
        let mut end = 0u32;
        for s in strs {
            // Cannot overflow: the total fits in a u32 (checked above).
            end += s.len() as u32;
            buf.extend_from_slice(&end.to_le_bytes());
        }
        debug_assert_eq!(end, text_len32);
        for s in strs {
            buf.extend_from_slice(s.as_bytes());
        }
        Packed(buf.into_boxed_slice())
    }

    fn word(&self, w: usize) -> u32 {
        let b = &self.0[4 * w..4 * w + 4];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    /// String number `k`.
    fn get(&self, k: usize) -> &str {
        let start = if k == 0 { 0 } else { self.word(HEAD + k - 1) };
        let end = self.word(HEAD + k);
        let text = &self.0[4 * (HEAD + self.count())..];
        let bytes = &text[start as usize..end as usize];
        // SAFETY: the text is the concatenation of `&str`s ([`Packed::new`]) and `start`
        // and `end` are offsets where one of them begins and ends, so the slice is one
        // whole `&str`'s bytes: valid UTF-8. The block is never written after `new`.
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }

    /// Strings `from..to` in order, each end offset read once (the row writer reads a
    /// dozen strings of an entry on every lookup hit).
    fn range(&self, from: usize, to: usize) -> impl Iterator<Item = &str> {
        let text = &self.0[4 * (HEAD + self.count())..];
        let mut start = if from == 0 {
            0
        } else {
            self.word(HEAD + from - 1)
        } as usize;
        (from..to).map(move |k| {
            let end = self.word(HEAD + k) as usize;
            let bytes = &text[start..end];
            start = end;
            // SAFETY: as in `get`: the bytes of one whole `&str` given to `new`.
            unsafe { std::str::from_utf8_unchecked(bytes) }
        })
    }

    /// The lengths of the three lists, and their items one list after the other.
    fn lists(&self) -> ([usize; 3], impl Iterator<Item = &str>) {
        let lens = [1, 2, 3].map(|w| self.word(w) as usize);
        let items = self.range(at::SINGLE, at::SINGLE + lens.iter().sum::<usize>());
        (lens, items)
    }

    /// Number of strings.
    fn count(&self) -> usize {
        at::SINGLE + (0..3).map(|l| self.word(1 + l) as usize).sum::<usize>()
    }
}

/// A hash of an entry's `id` that its slot keeps, so that a catch-up finds the entries it
/// replaces without reading every entry's string block: that read, a cache miss per
/// entry, was ~4 % of a replica's catch-up of a 100,000-entry server (docs/PERFORMANCE.md,
/// "Scale"). A fixed seed: equal ids hash alike in every snapshot and process.
pub fn id_hash(id: &str) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(0x6364_732d_7265_6769).hash_one(id)
}

/// What few entries have: OAuth scopes offered for them, or an origin (a registry's copy).
struct Rare {
    scopes: Vec<String>,
    scope_types: Vec<String>,
    origin: Option<Origin>,
}

/// One indexed entry with what the index derives from it alone. Snapshots share it (`Arc`):
/// an entry that [`super::SearchIndex::update`] keeps costs the next snapshot a reference
/// count, not a copy of its strings or its folded names.
pub(super) struct Slot {
    pub key: i64,
    pub server_id: i64,
    /// [`id_hash`] of the entry's `id`.
    id_hash: u64,
    pub server_url: Arc<str>,
    pub server_name: Arc<str>,
    pub territory_id: Option<i64>,
    pub territory: Option<Arc<MultiPolygon<f64>>>,
    oauth: Option<Arc<OAuthOffer>>,
    rare: Option<Box<Rare>>,
    strings: Packed,
    /// The lookup order's first keys: role rank, then registry hops to the origin.
    pub order: (u8, u32),
    /// No string of the entry's response row (its own, its lists', its server's URL and
    /// name) needs escaping in JSON, so a row writer copies them as they are
    /// ([`EntryRef::json_plain`]).
    json_plain: bool,
}

/// The entry's strings in one block, in the order of [`at`]: its single strings (absent
/// ones empty, with a bit each saying which are present), the derived search keys, then
/// the three lists.
fn pack_strings(c: &CoverageEntry) -> Packed {
    // Folded names for `q` ([`text::search_text`] of entity_name, abbreviation and
    // name), joined by '\n' so a token never spans two names.
    let mut folded = text::search_text(&c.entity_name);
    for extra in [c.entity_abbreviation.as_deref().unwrap_or(""), &c.name] {
        folded.push('\n');
        folded.push_str(&text::search_text(extra));
    }
    let entity_key = text::entity_key(&c.entity_name);
    let entity_country = super::norm_country(&c.country);
    fn opt(o: &Option<String>) -> &str {
        o.as_deref().unwrap_or("")
    }
    let mut strs: Vec<&str> = vec![
        &c.id,
        opt(&c.created),
        opt(&c.updated),
        &c.entity_name,
        opt(&c.entity_abbreviation),
        &c.country,
        &c.name,
        opt(&c.description),
        &c.kind,
        &c.role,
        opt(&c.map_resource),
        opt(&c.map_content_type),
        opt(&c.geojson_resource),
        &folded,
        &entity_key,
        &entity_country,
    ];
    debug_assert_eq!(strs.len(), at::SINGLE);
    let lists = [&c.infrastructure_types, &c.commodity_types, &c.capabilities];
    for l in lists {
        strs.extend(l.iter().map(String::as_str));
    }
    let present = [
        (at::CREATED, &c.created),
        (at::UPDATED, &c.updated),
        (at::ENTITY_ABBREVIATION, &c.entity_abbreviation),
        (at::DESCRIPTION, &c.description),
        (at::MAP_RESOURCE, &c.map_resource),
        (at::MAP_CONTENT_TYPE, &c.map_content_type),
        (at::GEOJSON_RESOURCE, &c.geojson_resource),
    ]
    .iter()
    .fold(0u32, |m, (k, o)| m | (u32::from(o.is_some()) << k));
    let len = |l: &Vec<String>| u32::try_from(l.len()).expect("a list under 4 G items");
    Packed::new(
        [present, len(lists[0]), len(lists[1]), len(lists[2])],
        &strs,
    )
}

/// Does JSON write `s` as it is between two quotes (RFC 8259 §7: only `"`, `\` and the
/// control characters below U+0020 must be escaped, and serde_json escapes no more)?
pub fn plain_in_json(s: &str) -> bool {
    s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\')
}

impl Slot {
    pub fn new(entry: IndexEntry, role_rank: u8) -> Arc<Slot> {
        let IndexEntry {
            key,
            server_id,
            server_url,
            server_name,
            entry: c,
            territory_id,
            territory,
            scopes,
            scope_types,
            oauth,
        } = entry;
        let strings = pack_strings(&c);
        // Read back from the block: the single strings up to the derived ones (`created`
        // and `updated`, which the row leaves out, only make the flag stricter) and the
        // lists, as the row writer reads them.
        let (_, list_items) = strings.lists();
        let json_plain = strings
            .range(0, at::GEOJSON_RESOURCE + 1)
            .chain(list_items)
            .chain([&*server_url, &*server_name])
            .all(plain_in_json);
        let hops = Origin::hops(c.origin.as_ref());
        let rare =
            (!scopes.is_empty() || !scope_types.is_empty() || c.origin.is_some()).then(|| {
                Box::new(Rare {
                    scopes,
                    scope_types,
                    origin: c.origin,
                })
            });
        Arc::new(Slot {
            id_hash: id_hash(&c.id),
            key,
            server_id,
            server_url,
            server_name,
            territory_id,
            territory,
            oauth,
            rare,
            strings,
            order: (role_rank, u32::try_from(hops).unwrap_or(u32::MAX)),
            json_plain,
        })
    }

    /// Single string number `k` ([`at`]).
    pub fn str(&self, k: usize) -> &str {
        self.strings.get(k)
    }

    /// Optional single string number `k`, `None` when the entry had none.
    fn opt(&self, k: usize) -> Option<String> {
        (self.strings.word(0) >> k & 1 == 1).then(|| self.str(k).to_owned())
    }

    /// The folded names `q` searches.
    pub fn text(&self) -> &str {
        self.str(at::TEXT)
    }

    /// ([`text::entity_key`] of entity_name, uppercased country): the entity grouping.
    pub fn entity_key(&self) -> (&str, &str) {
        (self.str(at::ENTITY_KEY), self.str(at::ENTITY_COUNTRY))
    }

    /// The items of list `l`.
    pub fn list(&self, l: List) -> impl ExactSizeIterator<Item = &str> + '_ {
        let l = l as usize;
        let before: usize = (0..l).map(|j| self.strings.word(1 + j) as usize).sum();
        let start = at::SINGLE + before;
        (start..start + self.strings.word(1 + l) as usize).map(|k| self.str(k))
    }

    pub fn scopes(&self) -> &[String] {
        self.rare.as_ref().map_or(&[], |r| &r.scopes)
    }

    pub fn scope_types(&self) -> &[String] {
        self.rare.as_ref().map_or(&[], |r| &r.scope_types)
    }

    pub fn origin(&self) -> Option<&Origin> {
        self.rare.as_ref().and_then(|r| r.origin.as_ref())
    }

    /// The entry as it was given to [`Slot::new`].
    pub fn to_entry(&self) -> IndexEntry {
        let list = |l| self.list(l).map(str::to_owned).collect();
        IndexEntry {
            key: self.key,
            server_id: self.server_id,
            server_url: Arc::clone(&self.server_url),
            server_name: Arc::clone(&self.server_name),
            entry: CoverageEntry {
                id: self.str(at::ID).to_owned(),
                created: self.opt(at::CREATED),
                updated: self.opt(at::UPDATED),
                origin: self.origin().cloned(),
                entity_name: self.str(at::ENTITY_NAME).to_owned(),
                entity_abbreviation: self.opt(at::ENTITY_ABBREVIATION),
                country: self.str(at::COUNTRY).to_owned(),
                name: self.str(at::NAME).to_owned(),
                description: self.opt(at::DESCRIPTION),
                kind: self.str(at::KIND).to_owned(),
                role: self.str(at::ROLE).to_owned(),
                infrastructure_types: list(List::Infrastructure),
                commodity_types: list(List::Commodity),
                capabilities: list(List::Capability),
                map_resource: self.opt(at::MAP_RESOURCE),
                map_content_type: self.opt(at::MAP_CONTENT_TYPE),
                geojson_resource: self.opt(at::GEOJSON_RESOURCE),
            },
            territory_id: self.territory_id,
            territory: self.territory.clone(),
            scopes: self.scopes().to_vec(),
            scope_types: self.scope_types().to_vec(),
            oauth: self.oauth.clone(),
        }
    }
}

/// The single strings of an entry that its response row shows ([`EntryRef::row_fields`]).
pub struct RowFields<'a> {
    pub id: &'a str,
    pub entity_name: &'a str,
    pub entity_abbreviation: Option<&'a str>,
    pub country: &'a str,
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub kind: &'a str,
    pub role: &'a str,
    pub map_resource: Option<&'a str>,
    pub map_content_type: Option<&'a str>,
    pub geojson_resource: Option<&'a str>,
}

/// Entry `i` of a [`super::SearchIndex`], read in place. What a search or a lookup needs
/// (key, server, id, names, territory) costs no allocation; [`EntryRef::to_entry`] makes
/// the whole [`IndexEntry`].
#[derive(Clone, Copy)]
pub struct EntryRef<'a>(pub(super) &'a Slot);

impl<'a> EntryRef<'a> {
    /// The entry's key (its row id in the store).
    pub fn key(self) -> i64 {
        self.0.key
    }

    pub fn server_id(self) -> i64 {
        self.0.server_id
    }

    pub fn server_url(self) -> &'a str {
        &self.0.server_url
    }

    pub fn server_name(self) -> &'a str {
        &self.0.server_name
    }

    /// The entry's `id` at its server.
    pub fn id(self) -> &'a str {
        self.0.str(at::ID)
    }

    /// [`id_hash`] of [`EntryRef::id`], without reading the id itself.
    pub fn id_hash(self) -> u64 {
        self.0.id_hash
    }

    pub fn entity_name(self) -> &'a str {
        self.0.str(at::ENTITY_NAME)
    }

    /// The territory, `None` for a logical entry.
    pub fn territory(self) -> Option<&'a Arc<MultiPolygon<f64>>> {
        self.0.territory.as_ref()
    }

    /// The entry's fields as its response row shows them, read in place.
    pub fn row_fields(self) -> RowFields<'a> {
        let packed = &self.0.strings;
        let mut it = packed.range(0, at::GEOJSON_RESOURCE + 1);
        let s: [&'a str; at::GEOJSON_RESOURCE + 1] =
            std::array::from_fn(|_| it.next().unwrap_or(""));
        let present = packed.word(0);
        let opt = |k: usize| (present >> k & 1 == 1).then_some(s[k]);
        RowFields {
            id: s[at::ID],
            entity_name: s[at::ENTITY_NAME],
            entity_abbreviation: opt(at::ENTITY_ABBREVIATION),
            country: s[at::COUNTRY],
            name: s[at::NAME],
            description: opt(at::DESCRIPTION),
            kind: s[at::KIND],
            role: s[at::ROLE],
            map_resource: opt(at::MAP_RESOURCE),
            map_content_type: opt(at::MAP_CONTENT_TYPE),
            geojson_resource: opt(at::GEOJSON_RESOURCE),
        }
    }

    /// The lengths of the entry's `infrastructure_types`, `commodity_types` and
    /// `capabilities`, and their items one list after the other.
    pub fn lists(self) -> ([usize; 3], impl Iterator<Item = &'a str>) {
        self.0.strings.lists()
    }

    pub fn scopes(self) -> &'a [String] {
        self.0.scopes()
    }

    pub fn scope_types(self) -> &'a [String] {
        self.0.scope_types()
    }

    pub fn oauth(self) -> Option<&'a OAuthOffer> {
        self.0.oauth.as_deref()
    }

    pub fn origin(self) -> Option<&'a Origin> {
        self.0.origin()
    }

    /// [`plain_in_json`] holds for every string of [`EntryRef::row_fields`],
    /// [`EntryRef::lists`], [`EntryRef::server_url`] and [`EntryRef::server_name`].
    pub fn json_plain(self) -> bool {
        self.0.json_plain
    }

    /// The whole entry (its strings copied out of the block).
    pub fn to_entry(self) -> IndexEntry {
        self.0.to_entry()
    }

    /// Is this the same stored entry as `other` (one slot shared by two snapshots)?
    pub fn same_as(self, other: EntryRef<'_>) -> bool {
        std::ptr::eq(self.0, other.0)
    }
}

impl std::fmt::Debug for EntryRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntryRef")
            .field("key", &self.key())
            .field("id", &self.id())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::tests::entry;

    fn round_trip(e: IndexEntry) {
        let slot = Slot::new(e.clone(), 0);
        let back = EntryRef(&slot).to_entry();
        assert_eq!(back.entry, e.entry);
        assert_eq!(
            (back.key, back.server_id, back.territory_id),
            (e.key, e.server_id, e.territory_id)
        );
        assert_eq!((back.scopes, back.scope_types), (e.scopes, e.scope_types));
        assert!(Arc::ptr_eq(&back.server_url, &e.server_url));
        assert_eq!(back.territory.is_some(), e.territory.is_some());
        assert_eq!(back.oauth.is_some(), e.oauth.is_some());
        let view = EntryRef(&slot);
        assert_eq!(view.id(), e.entry.id);
        assert_eq!(view.entity_name(), e.entry.entity_name);
        assert_eq!(slot.str(at::COUNTRY), e.entry.country);
        assert_eq!(
            slot.list(List::Capability).collect::<Vec<_>>(),
            e.entry.capabilities
        );
    }

    /// Every field comes back as it went in: a missing optional string stays missing, an
    /// empty one stays empty, list items keep their order and their boundaries (an item may
    /// contain any character, separators included), text keeps its multi-byte characters.
    #[test]
    fn a_slot_gives_back_the_entry_it_was_made_of() {
        round_trip(entry(1, |_| {}));
        round_trip(entry(2, |e| {
            let c = &mut e.entry;
            c.created = Some(String::new());
            c.updated = Some("2024-01-15T00:00:00Z".into());
            c.entity_abbreviation = Some("ÉDF".into());
            c.description = Some("Überlandwerk \u{0} «tab»\t\n".into());
            c.map_resource = Some(String::new());
            c.geojson_resource = Some("https://example.com/t.geojson".into());
            c.infrastructure_types = vec!["".into(), "a\u{0}b".into()];
            c.commodity_types = vec!["electricity".into(); 300];
            c.capabilities = vec!["coverage".into(), "oauth".into(), "😀".into()];
            c.origin = Some(Origin {
                server: "https://up.example/.well-known/cds-server-metadata.json".into(),
                id: "x".into(),
                role: "authoritative".into(),
                capabilities: vec!["coverage".into()],
                via: vec!["https://r.example/m.json".into()],
            });
            e.scopes = vec!["s1".into()];
            e.scope_types = vec!["t1".into(), "t2".into()];
            e.territory_id = Some(9);
        }));
        // Only the lists.
        round_trip(entry(3, |e| {
            e.entry.id = String::new();
            e.entry.commodity_types = vec!["water".into()];
        }));
    }
}
