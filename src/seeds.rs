//! Hosts as operators write them. One parser serves the seeds file, `POST /v1/hosts`,
//! `crawl HOST…` and `validate`, so a line means the same thing everywhere.
//!
//! Accepted forms (`#` starts a comment in a seeds file; blank lines are ignored):
//!
//! | written | means |
//! |---|---|
//! | `utility.example`, `utility.example:8443` | discover at this host: the well-known paths over https (plain http where `crawl.allow_http` names the host) |
//! | `https://utility.example`, `http://127.0.0.12:8443/` | discover at this origin (empty path or `/`): the well-known paths on that scheme, host and port; `http` without `allow_http` is upgraded to https |
//! | `https://utility.example/cds/metadata.json` | the metadata document itself (a real path) |
//!
//! Host names are case-folded, a trailing dot is dropped, and internationalised names are
//! kept as punycode (shown as unicode by [`display_host`]). Two lines that normalise to the
//! same key are one host.

use std::fmt;

use url::{Host, Url};

/// The forms a host may be written in, for error messages.
pub const EXPECTED_FORMS: &str = "expected a host name (`utility.example`), `host:port`, \
an origin URL (`https://utility.example/`), or the URL of a metadata document \
(`https://utility.example/.well-known/cds-server-metadata.json`)";

/// The scheme an origin seed asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    /// The stored form (`hosts.scheme`); anything else is "no preference".
    pub fn parse(s: &str) -> Option<Scheme> {
        match s {
            "http" => Some(Scheme::Http),
            "https" => Some(Scheme::Https),
            _ => None,
        }
    }
}

/// One parsed seed: what the crawler starts from for a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seed {
    /// `host` or `host:port` (normalised): discover over https, or plain http where
    /// `allow_http` names the host.
    Host(String),
    /// `scheme://host[:port]/`: discover at this origin.
    Origin { scheme: Scheme, host: String },
    /// An explicit metadata document URL (normalised).
    Url(String),
}

impl Seed {
    /// The stable key stored in `hosts.seed`: the normalised `host[:port]` for the two
    /// discovery forms (so `utility.example` and `https://Utility.Example/` are one host),
    /// the normalised URL for a document.
    pub fn key(&self) -> &str {
        match self {
            Seed::Host(h) | Seed::Origin { host: h, .. } | Seed::Url(h) => h,
        }
    }

    /// The scheme an origin seed asked for (stored in `hosts.scheme`).
    pub fn scheme(&self) -> Option<Scheme> {
        match self {
            Seed::Origin { scheme, .. } => Some(*scheme),
            _ => None,
        }
    }

    /// The metadata URL of a document seed.
    pub fn metadata_url(&self) -> Option<&str> {
        match self {
            Seed::Url(u) => Some(u),
            _ => None,
        }
    }

    /// Rebuild a seed from its stored columns (`hosts.seed`, `metadata_url`, `scheme`).
    pub fn from_stored(seed: &str, metadata_url: Option<&str>, scheme: Option<&str>) -> Seed {
        if let Some(u) = metadata_url {
            return Seed::Url(u.to_owned());
        }
        match scheme.and_then(Scheme::parse) {
            Some(scheme) => Seed::Origin {
                scheme,
                host: seed.to_owned(),
            },
            None => Seed::Host(seed.to_owned()),
        }
    }
}

impl fmt::Display for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Seed::Host(h) => f.write_str(&display_host(h)),
            Seed::Origin { scheme, host } => {
                write!(f, "{}://{}/", scheme.as_str(), display_host(host))
            }
            Seed::Url(u) => f.write_str(u),
        }
    }
}

/// A `host[:port]` key (or a URL) as people read it: punycode labels shown in unicode.
pub fn display_host(key: &str) -> String {
    if !key.contains("xn--") {
        return key.to_owned();
    }
    let (host, port) = match key.rsplit_once(':') {
        Some((h, p)) if !h.contains(']') && p.chars().all(|c| c.is_ascii_digit()) => (h, Some(p)),
        _ => (key, None),
    };
    let (unicode, result) = idna::domain_to_unicode(host);
    let host = if result.is_ok() {
        unicode
    } else {
        host.to_owned()
    };
    match port {
        Some(p) => format!("{host}:{p}"),
        None => host,
    }
}

/// Why a seed line was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SeedError {
    #[error("line {line}: {text:?}: {reason}; {EXPECTED_FORMS}")]
    Invalid {
        line: usize,
        text: String,
        reason: String,
    },
}

/// The longest DNS name and label (RFC 1035 §2.3.4).
const MAX_NAME: usize = 253;
const MAX_LABEL: usize = 63;

/// Normalise the host of a parsed URL: case-folded and punycode (done by `url`), without
/// a trailing dot, within DNS length limits.
fn normalise_host(u: &mut Url) -> Result<(), String> {
    let host = match u.host() {
        Some(Host::Domain(d)) => d.to_owned(),
        Some(_) => return Ok(()),
        None => return Err("no host name".into()),
    };
    let trimmed = host.strip_suffix('.').unwrap_or(&host);
    if trimmed.is_empty() {
        return Err("no host name".into());
    }
    // Letters, digits and hyphens (RFC 1123 §2.1), and `_`, which some internal names
    // carry; `url` accepts more (`!`, `$`, …) that no DNS name holds.
    if let Some(c) = trimmed
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')))
    {
        return Err(format!("not a host name ({c:?} is not allowed in one)"));
    }
    if trimmed.len() > MAX_NAME {
        return Err(format!("host name longer than {MAX_NAME} characters"));
    }
    if trimmed
        .split('.')
        .any(|l| l.is_empty() || l.len() > MAX_LABEL)
    {
        return Err(format!(
            "host name with an empty label or a label longer than {MAX_LABEL} characters"
        ));
    }
    if trimmed.len() != host.len() {
        u.set_host(Some(trimmed))
            .map_err(|e| format!("not a host name ({e})"))?;
    }
    Ok(())
}

/// `host[:port]` of a URL, the port only when it is not the scheme's default: the form of
/// a host key, an `allow_http` entry and a discovered host.
pub fn authority(u: &Url) -> String {
    let host = u.host_str().unwrap_or_default();
    match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    }
}

/// Parse one host as an operator wrote it (also used by the admin API, `crawl` and
/// `validate`). The error says what is wrong; callers add [`EXPECTED_FORMS`].
pub fn parse_seed(text: &str) -> Result<Seed, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty".into());
    }
    if t.chars().any(char::is_whitespace) {
        return Err("contains a space".into());
    }
    if let Some((scheme, _)) = t.split_once("://") {
        let mut u = Url::parse(t).map_err(|e| format!("not a URL ({e})"))?;
        let scheme = match u.scheme() {
            "https" => Scheme::Https,
            "http" => Scheme::Http,
            _ => return Err(format!("scheme {scheme:?}: only http and https")),
        };
        if !u.username().is_empty() || u.password().is_some() {
            return Err("URLs with credentials are not accepted".into());
        }
        normalise_host(&mut u)?;
        u.set_fragment(None);
        if (u.path() == "/" || u.path().is_empty()) && u.query().is_none() {
            return Ok(Seed::Origin {
                scheme,
                host: authority(&u),
            });
        }
        return Ok(Seed::Url(u.to_string()));
    }
    if t.contains('/') {
        return Err(
            "a path needs a scheme: write `https://` in front to name a metadata document".into(),
        );
    }
    // A bare host[:port]: validate it as the authority of a URL.
    let mut u = Url::parse(&format!("https://{t}/")).map_err(|e| format!("not a host ({e})"))?;
    if u.query().is_some() || u.fragment().is_some() || !u.username().is_empty() {
        return Err("not a host".into());
    }
    normalise_host(&mut u)?;
    // `url` drops :443 as https's default; a bare host is tried over https first.
    Ok(Seed::Host(authority(&u)))
}

/// The stored keys of hosts named on a command line or in `POST /v1/crawls`, written in
/// any accepted form (`https://Utility.Example/` names the host `utility.example`).
pub fn seed_keys(texts: &[String]) -> Result<Vec<String>, String> {
    let mut keys: Vec<String> = Vec::new();
    for t in texts {
        let seed = parse_seed(t).map_err(|e| format!("{t:?}: {e}; {EXPECTED_FORMS}"))?;
        if !keys.iter().any(|k| k == seed.key()) {
            keys.push(seed.key().to_owned());
        }
    }
    Ok(keys)
}

/// One non-blank line of a seeds file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedLine {
    /// 1-based line number.
    pub line: usize,
    /// The text as written (comment removed, trimmed).
    pub text: String,
    pub seed: Seed,
    /// The line number of an earlier line with the same key, when this one repeats it.
    pub duplicate_of: Option<usize>,
}

/// Parse a whole seeds file. Every bad line is reported (each naming its line), and a
/// file with any bad line yields no seeds at all: nothing of a rejected file is stored.
pub fn parse_seed_lines(text: &str) -> Result<Vec<SeedLine>, Vec<SeedError>> {
    let mut out: Vec<SeedLine> = Vec::new();
    let mut errors = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        match parse_seed(line) {
            Ok(seed) => {
                let duplicate_of = out
                    .iter()
                    .find(|l| l.duplicate_of.is_none() && l.seed.key() == seed.key())
                    .map(|l| l.line);
                out.push(SeedLine {
                    line: i + 1,
                    text: line.to_owned(),
                    seed,
                    duplicate_of,
                });
            }
            Err(reason) => errors.push(SeedError::Invalid {
                line: i + 1,
                text: line.to_owned(),
                reason,
            }),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Parse a whole seeds file into its distinct seeds (the first line of each key wins).
pub fn parse_seeds(text: &str) -> Result<Vec<Seed>, SeedErrors> {
    Ok(parse_seed_lines(text)
        .map_err(SeedErrors)?
        .into_iter()
        .filter(|l| l.duplicate_of.is_none())
        .map(|l| l.seed)
        .collect())
}

/// Every bad line of a seeds file.
#[derive(Debug, PartialEq, Eq)]
pub struct SeedErrors(pub Vec<SeedError>);

impl fmt::Display for SeedErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "{n} bad line{}; nothing was stored:",
            if n == 1 { "" } else { "s" }
        )?;
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SeedErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(scheme: Scheme, host: &str) -> Seed {
        Seed::Origin {
            scheme,
            host: host.into(),
        }
    }

    #[test]
    fn every_accepted_form() {
        let cases: &[(&str, Seed)] = &[
            ("DemoUtility.com", Seed::Host("demoutility.com".into())),
            ("demoutility.com.", Seed::Host("demoutility.com".into())),
            ("127.0.0.2:8080", Seed::Host("127.0.0.2:8080".into())),
            ("utility.example:443", Seed::Host("utility.example".into())),
            ("[::1]:8443", Seed::Host("[::1]:8443".into())),
            (
                "https://utility.example",
                origin(Scheme::Https, "utility.example"),
            ),
            (
                "https://Utility.Example./",
                origin(Scheme::Https, "utility.example"),
            ),
            (
                "https://utility.example/#top",
                origin(Scheme::Https, "utility.example"),
            ),
            (
                "http://127.0.0.12:8443",
                origin(Scheme::Http, "127.0.0.12:8443"),
            ),
            (
                "http://127.0.0.12:8443/",
                origin(Scheme::Http, "127.0.0.12:8443"),
            ),
            (
                "https://bücher.example/",
                origin(Scheme::Https, "xn--bcher-kva.example"),
            ),
            ("Bücher.Example", Seed::Host("xn--bcher-kva.example".into())),
            (
                "https://X.example./cds.json",
                Seed::Url("https://x.example/cds.json".into()),
            ),
            (
                "https://x.example/?page=1",
                Seed::Url("https://x.example/?page=1".into()),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(&parse_seed(text).unwrap(), want, "{text}");
        }
    }

    #[test]
    fn every_refusal_says_why() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("a b", "space"),
            ("host.example/path", "needs a scheme"),
            ("ftp://x.example/", "only http and https"),
            ("https://user:pw@x.example/", "credentials"),
            ("https://", "not a URL"),
            ("exa mple", "space"),
            ("bad_host!.example", "not a host"),
            ("x.example:99999", "not a host"),
        ];
        for (text, why) in cases {
            let e = parse_seed(text).unwrap_err();
            assert!(e.contains(why), "{text:?}: {e}");
        }
        let long_label = format!("{}.example", "a".repeat(64));
        assert!(parse_seed(&long_label).unwrap_err().contains("label"));
        let long_name = format!("{}example", "abcdefghi.".repeat(26));
        assert!(parse_seed(&long_name)
            .unwrap_err()
            .contains("longer than 253"));
        assert!(parse_seed(&format!("https://{long_label}/")).is_err());
    }

    #[test]
    fn files_dedupe_after_normalising_and_name_every_bad_line() {
        let lines = parse_seed_lines(
            "# utilities\n\nDemoUtility.com\n127.0.0.2:8080  # fixture\nhttps://demoutility.com/\n\
             https://x.example/cds.json\ndemoutility.com.\n",
        )
        .unwrap();
        let dups: Vec<Option<usize>> = lines.iter().map(|l| l.duplicate_of).collect();
        assert_eq!(dups, vec![None, None, Some(3), None, Some(3)]);
        assert_eq!(
            parse_seeds("DemoUtility.com\nhttps://demoutility.com\n").unwrap(),
            vec![Seed::Host("demoutility.com".into())]
        );
        let e = parse_seeds("ok.example\nftp://x.example/\nfine.example\nbad host\n").unwrap_err();
        assert_eq!(e.0.len(), 2);
        let text = e.to_string();
        assert!(
            text.contains("line 2:") && text.contains("line 4:"),
            "{text}"
        );
        assert!(text.contains("nothing was stored"), "{text}");
        assert!(text.contains("https://utility.example/"), "{text}");
    }

    #[test]
    fn idns_are_shown_in_unicode() {
        assert_eq!(display_host("xn--bcher-kva.example"), "bücher.example");
        assert_eq!(
            display_host("xn--bcher-kva.example:8443"),
            "bücher.example:8443"
        );
        assert_eq!(display_host("plain.example"), "plain.example");
        let s = parse_seed("https://bücher.example:8443").unwrap();
        assert_eq!(s.to_string(), "https://bücher.example:8443/");
    }

    #[test]
    fn stored_columns_round_trip() {
        for text in [
            "utility.example",
            "http://127.0.0.1:9/",
            "https://x.example/",
            "https://x.example/m.json",
        ] {
            let s = parse_seed(text).unwrap();
            let back = Seed::from_stored(s.key(), s.metadata_url(), s.scheme().map(Scheme::as_str));
            assert_eq!(back, s, "{text}");
        }
    }
}
