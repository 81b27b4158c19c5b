//! Text folding for names: case- and accent-insensitive comparison without a collation
//! library. Names come from utilities in many languages ("Hydro-Québec", "Énergie NB",
//! "Stadtwerke Münster"), and a client typing `montreal` expects to find "Montréal".

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// Push `c` (already lowercased) with the letters that have no Unicode decomposition
/// spelled out, so "Ørsted" and "orsted" meet. NFKD handles the rest (é, ü, ligatures,
/// full-width forms).
fn push_folded(out: &mut String, c: char) {
    match c {
        'ø' => out.push('o'),
        'æ' => out.push_str("ae"),
        'œ' => out.push_str("oe"),
        'ß' => out.push_str("ss"),
        'ł' => out.push('l'),
        'đ' | 'ð' => out.push('d'),
        'þ' => out.push_str("th"),
        'ı' => out.push('i'),
        _ => out.push(c),
    }
}

/// Lowercase, accent-free characters of `s`, in order, each passed to `f`.
fn for_each_folded(s: &str, mut f: impl FnMut(char)) {
    for c in s.nfkd() {
        if is_combining_mark(c) {
            continue;
        }
        for l in c.to_lowercase() {
            f(l);
        }
    }
}

/// The key entities are grouped by: lowercased, accents folded, whitespace collapsed to
/// single spaces and trimmed. Punctuation is kept, so "AT&T" and "AT T" stay apart.
pub fn entity_key(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for_each_folded(s, |c| {
        if c.is_whitespace() {
            space = !out.is_empty();
        } else {
            if space {
                out.push(' ');
                space = false;
            }
            push_folded(&mut out, c);
        }
    });
    out
}

/// Text as the `q` search sees it: folded like [`entity_key`], and every character that
/// is not a letter or digit becomes a separator, so "Hydro-Québec" is searched as
/// "hydro quebec" and `q=hydro quebec` or `q=hydro-quebec` both find it.
pub fn search_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for_each_folded(s, |c| {
        if c.is_alphanumeric() {
            if space {
                out.push(' ');
                space = false;
            }
            push_folded(&mut out, c);
        } else {
            space = !out.is_empty();
        }
    });
    out
}

/// The tokens of a `q` string; an entry matches when every token is a substring of its
/// folded names (so partial words match: `q=montr` finds "Montréal").
pub fn query_tokens(q: &str) -> Vec<String> {
    search_text(q)
        .split(' ')
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_case_accents_and_whitespace() {
        assert_eq!(
            entity_key("  Hydro-Québec \t Distribution "),
            "hydro-quebec distribution"
        );
        assert_eq!(entity_key("MONTRÉAL"), "montreal");
        assert_eq!(entity_key("Ørsted Æblegård"), "orsted aeblegard");
        assert_eq!(entity_key("Stadtwerke Münster"), "stadtwerke munster");
        assert_eq!(entity_key("ﬁeld"), "field");
    }

    #[test]
    fn search_text_splits_on_punctuation() {
        assert_eq!(search_text("Hydro-Québec (HQ)"), "hydro quebec hq");
        assert_eq!(
            query_tokens(" montréal,  hydro "),
            vec!["montreal", "hydro"]
        );
        assert!(query_tokens(" - ").is_empty());
    }
}
