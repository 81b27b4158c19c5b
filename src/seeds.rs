//! The operator's seeds file: one host per line (`name`, `name:port`, or the full URL of a
//! metadata document); `#` starts a comment; blank lines are ignored (DESIGN.md).

use url::Url;

/// One parsed seed: what the crawler starts from for a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seed {
    /// `host` or `host:port`: try the well-known paths on it.
    Host(String),
    /// An explicit metadata document URL.
    Url(String),
}

impl Seed {
    /// The stable key stored in `hosts.seed` (lower-cased host, URL as normalised by `url`).
    pub fn key(&self) -> &str {
        match self {
            Seed::Host(h) | Seed::Url(h) => h,
        }
    }
}

/// Why a seed line was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SeedError {
    #[error("line {line}: {reason}: {text:?}")]
    Invalid {
        line: usize,
        text: String,
        reason: String,
    },
}

/// Parse one seed (also used by the admin API).
pub fn parse_seed(text: &str) -> Result<Seed, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty".into());
    }
    if t.contains("://") {
        let u = Url::parse(t).map_err(|e| format!("not a URL ({e})"))?;
        if !matches!(u.scheme(), "http" | "https") {
            return Err("only http(s) URLs".into());
        }
        if u.host_str().is_none() {
            return Err("URL without host".into());
        }
        if !u.username().is_empty() || u.password().is_some() {
            return Err("URLs with credentials are not accepted".into());
        }
        return Ok(Seed::Url(u.to_string()));
    }
    // A bare host[:port]: validate it by parsing as the authority of a URL.
    let u = Url::parse(&format!("https://{t}/")).map_err(|e| format!("not a host name ({e})"))?;
    if u.path() != "/" || u.query().is_some() || !u.username().is_empty() || t.contains('/') {
        return Err("a host is `name` or `name:port`; give a full URL for a path".into());
    }
    let host = u.host_str().ok_or("no host")?;
    Ok(Seed::Host(match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    }))
}

/// Parse a whole seeds file; the first bad line is an error naming it.
pub fn parse_seeds(text: &str) -> Result<Vec<Seed>, SeedError> {
    let mut out: Vec<Seed> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let seed = parse_seed(line).map_err(|reason| SeedError::Invalid {
            line: i + 1,
            text: line.to_owned(),
            reason,
        })?;
        if !out.contains(&seed) {
            out.push(seed);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_ports_urls_and_comments() {
        let s = parse_seeds(
            "# utilities\n\nDemoUtility.com\n127.0.0.2:8080  # fixture\nhttps://x.example/cds.json\ndemoutility.com\n",
        )
        .unwrap();
        assert_eq!(
            s,
            vec![
                Seed::Host("demoutility.com".into()),
                Seed::Host("127.0.0.2:8080".into()),
                Seed::Url("https://x.example/cds.json".into()),
            ]
        );
    }

    #[test]
    fn bad_lines_are_named() {
        let e = parse_seeds("ok.example\nftp://x.example/\n").unwrap_err();
        assert!(e.to_string().starts_with("line 2:"), "{e}");
        assert!(parse_seed("a b").is_err());
        assert!(parse_seed("host.example/path").is_err());
        assert!(parse_seed("https://user:pw@x.example/").is_err());
    }
}
