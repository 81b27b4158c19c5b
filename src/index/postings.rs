//! Inverted posting lists for the enum-like fields (country, commodity, ...): one sorted
//! `Vec<u32>` of entry positions per distinct value, plus the reverse (each entry's value
//! ids) for per-entry checks and facet counts. Values are normalised once at build time,
//! so a query compares integers, never strings.

use std::collections::HashMap;

/// One enum-like field of the index.
#[derive(Debug, Default)]
pub(crate) struct Field {
    /// Value id -> normalised value.
    pub values: Vec<String>,
    ids: HashMap<String, u32>,
    /// Value id -> sorted, distinct entry positions.
    pub postings: Vec<Vec<u32>>,
    /// Entry position -> its sorted, distinct value ids (CSR: `vals[offsets[i]..offsets[i+1]]`).
    offsets: Vec<u32>,
    vals: Vec<u32>,
}

impl Field {
    pub fn new() -> Field {
        Field {
            offsets: vec![0],
            ..Field::default()
        }
    }

    /// Append the next entry (positions must be added in order 0, 1, 2, ...) with its
    /// already-normalised values; empty values are dropped, duplicates counted once.
    pub fn push_entry<I: IntoIterator<Item = String>>(&mut self, values: I) {
        let pos = (self.offsets.len() - 1) as u32;
        let start = self.vals.len();
        for v in values {
            if v.is_empty() {
                continue;
            }
            let id = match self.ids.get(&v) {
                Some(&id) => id,
                None => {
                    let id = self.values.len() as u32;
                    self.ids.insert(v.clone(), id);
                    self.values.push(v);
                    self.postings.push(Vec::new());
                    id
                }
            };
            self.vals.push(id);
        }
        let mine = &mut self.vals[start..];
        mine.sort_unstable();
        let mut n = 0;
        for j in 0..mine.len() {
            if j == 0 || mine[j] != mine[n - 1] {
                mine[n] = mine[j];
                n += 1;
            }
        }
        self.vals.truncate(start + n);
        for &id in &self.vals[start..] {
            self.postings[id as usize].push(pos);
        }
        self.offsets.push(self.vals.len() as u32);
    }

    /// Append the next entry with the values entry `pos` has in `old` (an earlier
    /// index's field): no string is normalised again. `remap` (old value id -> this
    /// field's, `u32::MAX` until first seen; start it at `old.values.len()` of `u32::MAX`)
    /// carries the translation from one call to the next.
    pub fn push_entry_from(&mut self, old: &Field, pos: usize, remap: &mut [u32]) {
        let me = (self.offsets.len() - 1) as u32;
        let start = self.vals.len();
        for &v in old.entry_values(pos) {
            let id = match remap[v as usize] {
                u32::MAX => {
                    let value = &old.values[v as usize];
                    let id = match self.ids.get(value) {
                        Some(&id) => id,
                        None => {
                            let id = self.values.len() as u32;
                            self.ids.insert(value.clone(), id);
                            self.values.push(value.clone());
                            self.postings.push(Vec::new());
                            id
                        }
                    };
                    remap[v as usize] = id;
                    id
                }
                id => id,
            };
            self.vals.push(id);
        }
        // Ids of this field need not follow the old order.
        self.vals[start..].sort_unstable();
        for &id in &self.vals[start..] {
            self.postings[id as usize].push(me);
        }
        self.offsets.push(self.vals.len() as u32);
    }

    pub fn id_of(&self, normalised: &str) -> Option<u32> {
        self.ids.get(normalised).copied()
    }

    /// The value ids of entry `pos`, sorted.
    pub fn entry_values(&self, pos: usize) -> &[u32] {
        &self.vals[self.offsets[pos] as usize..self.offsets[pos + 1] as usize]
    }

    /// Entry positions having any of `ids` (sorted, distinct).
    pub fn union(&self, ids: &[u32], universe: usize) -> Vec<u32> {
        union_many(
            ids.iter().map(|&id| self.postings[id as usize].as_slice()),
            universe,
        )
    }
}

/// Union of sorted lists of positions below `universe`.
pub(crate) fn union_many<'a>(
    lists: impl Iterator<Item = &'a [u32]> + Clone,
    universe: usize,
) -> Vec<u32> {
    let total: usize = lists.clone().map(<[u32]>::len).sum();
    let mut it = lists.clone();
    match (it.next(), it.next()) {
        (None, _) => return Vec::new(),
        (Some(one), None) => return one.to_vec(),
        _ => {}
    }
    if total * 8 > universe {
        // Dense: a bitmap is linear in the universe and avoids a sort.
        let mut bits = vec![0u64; universe.div_ceil(64)];
        for l in lists {
            for &p in l {
                bits[p as usize / 64] |= 1 << (p % 64);
            }
        }
        bits_to_vec(&bits, total)
    } else {
        let mut out: Vec<u32> = Vec::with_capacity(total);
        for l in lists {
            out.extend_from_slice(l);
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// Set positions of a bitmap, ascending.
pub(crate) fn bits_to_vec(bits: &[u64], capacity: usize) -> Vec<u32> {
    let mut out = Vec::with_capacity(capacity);
    for (w, &word) in bits.iter().enumerate() {
        let mut word = word;
        while word != 0 {
            let b = word.trailing_zeros();
            out.push(w as u32 * 64 + b);
            word &= word - 1;
        }
    }
    out
}

/// Intersection of two sorted, distinct lists. Gallops through the longer list when the
/// sizes differ a lot (a rare value against "country=US").
pub(crate) fn intersect(a: &[u32], b: &[u32]) -> Vec<u32> {
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    let mut out = Vec::with_capacity(small.len());
    if small.len() * 16 < large.len() {
        let mut rest = large;
        for &x in small {
            match gallop(rest, x) {
                Ok(i) => {
                    out.push(x);
                    rest = &rest[i + 1..];
                }
                Err(i) => rest = &rest[i..],
            }
            if rest.is_empty() {
                break;
            }
        }
    } else {
        let (mut i, mut j) = (0, 0);
        while i < small.len() && j < large.len() {
            match small[i].cmp(&large[j]) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    out.push(small[i]);
                    i += 1;
                    j += 1;
                }
            }
        }
    }
    out
}

/// Exponential then binary search for `x` in sorted `s`.
fn gallop(s: &[u32], x: u32) -> Result<usize, usize> {
    let mut hi = 1;
    while hi < s.len() && s[hi - 1] < x {
        hi *= 2;
    }
    let lo = hi / 2;
    let hi = hi.min(s.len());
    match s[lo..hi].binary_search(&x) {
        Ok(i) => Ok(lo + i),
        Err(i) => Err(lo + i),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_dedups_and_posts_in_order() {
        let mut f = Field::new();
        f.push_entry(["a".to_owned(), "b".to_owned(), "a".to_owned()]);
        f.push_entry(Vec::<String>::new());
        f.push_entry(["b".to_owned(), String::new()]);
        let (a, b) = (f.id_of("a").unwrap(), f.id_of("b").unwrap());
        assert_eq!(f.postings[a as usize], vec![0]);
        assert_eq!(f.postings[b as usize], vec![0, 2]);
        assert_eq!(f.entry_values(0).len(), 2);
        assert!(f.entry_values(1).is_empty());
        assert_eq!(f.entry_values(2), &[b]);
        assert_eq!(f.union(&[a, b], 3), vec![0, 2]);
        assert!(f.id_of("").is_none());
    }

    #[test]
    fn set_operations_agree_with_naive_ones() {
        let a: Vec<u32> = (0..1000).filter(|x| x % 3 == 0).collect();
        let b: Vec<u32> = (0..1000).filter(|x| x % 5 == 0).collect();
        let c: Vec<u32> = vec![15, 500, 999];
        let naive = |x: &[u32], y: &[u32]| {
            x.iter()
                .copied()
                .filter(|v| y.contains(v))
                .collect::<Vec<_>>()
        };
        assert_eq!(intersect(&a, &b), naive(&a, &b));
        assert_eq!(intersect(&c, &a), naive(&c, &a));
        assert_eq!(intersect(&a, &c), naive(&c, &a));
        assert_eq!(intersect(&[], &a), Vec::<u32>::new());
        let mut u: Vec<u32> = a.iter().chain(&b).copied().collect();
        u.sort_unstable();
        u.dedup();
        // Sparse (sort) and dense (bitmap) paths.
        assert_eq!(
            union_many([a.as_slice(), b.as_slice()].into_iter(), 1_000_000),
            u
        );
        assert_eq!(
            union_many([a.as_slice(), b.as_slice()].into_iter(), 1000),
            u
        );
    }
}
