//! Reading: JSON straight into compact nodes.
//!
//! Only what a territory can use is kept: the members `type`, `features`, `geometry`,
//! `geometries` and `coordinates` of objects, arrays (scalars in them only counted), and
//! positions, which are stored as bare coordinates; a ring of positions is one
//! `Vec<Coord>` (16 bytes a position, less than its JSON text). Member order is free in
//! JSON (sorted keys put `coordinates` before `type`), so coordinates are kept until the
//! object ends.

use std::fmt;

use geo::Coord;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::Budget;

/// One JSON value as the territory reader sees it.
pub(super) enum Item {
    Null,
    Num(f64),
    /// A string or boolean: nothing a territory can use, except as `type`.
    Scalar,
    Node(Node),
}

pub(super) enum Node {
    /// An array whose first two elements are numbers (any further ones are ignored, as
    /// RFC 7946 §3.1.1 allows altitude and more).
    Pos(Coord<f64>),
    /// A non-empty array of positions only.
    Ring(Vec<Coord<f64>>),
    /// Any other array: its length, and its array and object elements with their index.
    Arr {
        len: usize,
        items: Vec<(usize, Node)>,
    },
    Obj(Box<Obj>),
}

#[derive(Default)]
pub(super) struct Obj {
    pub(super) ty: Option<String>,
    pub(super) features: Option<Item>,
    pub(super) geometry: Option<Item>,
    pub(super) geometries: Option<Item>,
    pub(super) coordinates: Option<Item>,
}

pub(super) struct ItemSeed<'b>(pub(super) &'b Budget);

impl ItemSeed<'_> {
    fn counted<E: de::Error>(&self, n: Node) -> Result<Item, E> {
        self.0.count(1).map_err(|_| E::custom("limit reached"))?;
        Ok(Item::Node(n))
    }
}

impl<'de> DeserializeSeed<'de> for ItemSeed<'_> {
    type Value = Item;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Item, D::Error> {
        d.deserialize_any(self)
    }
}

/// Builds a generic array from its elements in order.
struct ArrBuilder {
    len: usize,
    items: Vec<(usize, Node)>,
}

impl ArrBuilder {
    fn push(&mut self, it: Item) {
        if let Item::Node(n) = it {
            self.items.push((self.len, n));
        }
        self.len += 1;
    }
}

impl<'de> Visitor<'de> for ItemSeed<'_> {
    type Value = Item;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Item, E> {
        Ok(Item::Scalar)
    }
    fn visit_i64<E>(self, v: i64) -> Result<Item, E> {
        Ok(Item::Num(v as f64))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Item, E> {
        Ok(Item::Num(v as f64))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Item, E> {
        Ok(Item::Num(v))
    }
    fn visit_str<E>(self, _: &str) -> Result<Item, E> {
        Ok(Item::Scalar)
    }
    fn visit_unit<E>(self) -> Result<Item, E> {
        Ok(Item::Null)
    }
    fn visit_none<E>(self) -> Result<Item, E> {
        Ok(Item::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Item, A::Error> {
        let b = self.0;
        let mut arr = ArrBuilder {
            len: 0,
            items: Vec::new(),
        };
        match seq.next_element_seed(ItemSeed(b))? {
            None => {
                return self.counted(Node::Arr {
                    len: 0,
                    items: vec![],
                })
            }
            Some(Item::Num(x)) => match seq.next_element_seed(ItemSeed(b))? {
                Some(Item::Num(y)) => {
                    while seq.next_element::<IgnoredAny>()?.is_some() {}
                    return self.counted(Node::Pos(Coord { x, y }));
                }
                second => {
                    arr.push(Item::Num(x));
                    if let Some(s) = second {
                        arr.push(s);
                    }
                }
            },
            Some(Item::Node(Node::Pos(c))) => {
                let mut coords = vec![c];
                loop {
                    match seq.next_element_seed(ItemSeed(b))? {
                        None => {
                            coords.shrink_to_fit();
                            return Ok(Item::Node(Node::Ring(coords)));
                        }
                        Some(Item::Node(Node::Pos(c))) => coords.push(c),
                        Some(other) => {
                            // Mixed: fall back to a generic array (a broken ring).
                            for c in coords {
                                arr.push(Item::Node(Node::Pos(c)));
                            }
                            arr.push(other);
                            break;
                        }
                    }
                }
            }
            Some(first) => arr.push(first),
        }
        while let Some(it) = seq.next_element_seed(ItemSeed(b))? {
            arr.push(it);
        }
        self.counted(Node::Arr {
            len: arr.len,
            items: arr.items,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Item, A::Error> {
        let b = self.0;
        let mut o = Obj::default();
        // A repeated member replaces the earlier one, as serde_json's own maps do.
        while let Some(k) = map.next_key::<String>()? {
            match k.as_str() {
                "type" => o.ty = map.next_value_seed(TypeSeed)?,
                "features" => o.features = Some(map.next_value_seed(ItemSeed(b))?),
                "geometry" => o.geometry = Some(map.next_value_seed(ItemSeed(b))?),
                "geometries" => o.geometries = Some(map.next_value_seed(ItemSeed(b))?),
                "coordinates" => o.coordinates = Some(map.next_value_seed(ItemSeed(b))?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        self.counted(Node::Obj(Box::new(o)))
    }
}

/// An object's `type`: its text when it is a string.
struct TypeSeed;

impl<'de> DeserializeSeed<'de> for TypeSeed {
    type Value = Option<String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TypeSeed {
    type Value = Option<String>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_str<E>(self, v: &str) -> Result<Option<String>, E> {
        Ok(Some(v.to_owned()))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Option<String>, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Option<String>, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Option<String>, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Option<String>, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Option<String>, E> {
        Ok(None)
    }
    fn visit_none<E>(self) -> Result<Option<String>, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<String>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<String>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

/// The elements of a value read as an array, in order; `None` for scalars and for a
/// value that is no array at all.
pub(super) enum Elements {
    Arr {
        len: usize,
        next: usize,
        items: std::iter::Peekable<std::vec::IntoIter<(usize, Node)>>,
    },
    Ring(std::iter::Enumerate<std::vec::IntoIter<Coord<f64>>>),
}

impl Elements {
    pub(super) fn of(item: Item) -> Option<Elements> {
        match item {
            Item::Node(n) => Elements::of_node(n),
            _ => None,
        }
    }

    pub(super) fn of_node(n: Node) -> Option<Elements> {
        match n {
            // A position read as an array: two numbers (extra members were not kept; no
            // rule ever looks past the first element of a position used as a container).
            Node::Pos(_) => Some(Elements::Arr {
                len: 2,
                next: 0,
                items: Vec::new().into_iter().peekable(),
            }),
            Node::Ring(coords) => Some(Elements::Ring(coords.into_iter().enumerate())),
            Node::Arr { len, items } => Some(Elements::Arr {
                len,
                next: 0,
                items: items.into_iter().peekable(),
            }),
            Node::Obj(_) => None,
        }
    }
}

impl Iterator for Elements {
    /// (index, the element if it is an array or object)
    type Item = (usize, Option<Node>);
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Elements::Ring(it) => it.next().map(|(i, c)| (i, Some(Node::Pos(c)))),
            Elements::Arr { len, next, items } => {
                if *next >= *len {
                    return None;
                }
                let i = *next;
                *next += 1;
                if items.peek().is_some_and(|(j, _)| *j == i) {
                    let (_, n) = items.next()?;
                    Some((i, Some(n)))
                } else {
                    Some((i, None))
                }
            }
        }
    }
}
