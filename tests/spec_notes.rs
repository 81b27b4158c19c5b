//! The rule ids of `docs/CDS-SPEC-NOTES.md` (`[RULE-ID: severity]`) are the ones the
//! validator reports and the README's conformance table lists, with the same severity.

const NOTES: &str = include_str!("../docs/CDS-SPEC-NOTES.md");
const README: &str = include_str!("../README.md");
const RULES: &str = include_str!("../src/cds/validate/mod.rs");

/// `(id, severity)` for every `[ID: severity ...]` or `[ID:<field>: severity ...]`.
fn notes_rules() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, _) in NOTES.match_indices('[') {
        let rest = &NOTES[i + 1..];
        let id_len = rest
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-'))
            .unwrap_or(0);
        let id = &rest[..id_len];
        if id.len() < 4 || !id.contains('-') {
            continue;
        }
        let after = rest[id_len..].trim_start_matches(":<field>");
        let Some(sev) = after.strip_prefix(": ") else {
            continue;
        };
        let word: String = sev.chars().take_while(char::is_ascii_alphabetic).collect();
        let severity = match word.as_str() {
            "warn" => "warning",
            "error" | "info" => word.as_str(),
            _ => continue,
        };
        out.push((id.to_owned(), severity.to_owned()));
    }
    out
}

#[test]
fn every_rule_in_the_notes_is_known_and_listed_with_its_severity() {
    let rules = notes_rules();
    assert!(rules.len() >= 40, "parsed only {} rules", rules.len());
    let table: Vec<&str> = README
        .split_once("## Conformance rules")
        .expect("README has the conformance section")
        .1
        .lines()
        .filter(|l| l.starts_with("| `"))
        .collect();
    for (id, severity) in &rules {
        assert!(
            RULES.contains(&format!("\"{id}\"")),
            "{id} is not a rule constant of the validator"
        );
        let row = table
            .iter()
            .find(|l| {
                l.split('|').nth(1).is_some_and(|c| {
                    c.split(" / ").any(|name| {
                        let name = name.trim().trim_matches('`');
                        name == id || name.strip_suffix(":<field>") == Some(id.as_str())
                    })
                })
            })
            .unwrap_or_else(|| panic!("{id} is not in the README's conformance table"));
        let listed = row.split('|').nth(2).unwrap_or_default().trim();
        assert!(
            listed.starts_with(severity.as_str()),
            "{id}: the notes say {severity}, the README says {listed:?}"
        );
    }
}
