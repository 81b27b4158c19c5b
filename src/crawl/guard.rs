//! Which URLs and addresses the crawler may reach (SSRF defence, DESIGN.md "Crawler safety").
//!
//! Every URL we follow is chosen by a remote server. Before a request: the scheme must be
//! https (plain http only for hosts the operator listed in `allow_http`), a literal IP in
//! the URL must be public (reqwest skips the resolver for literal IPs, CRATES.md), and a
//! host name must resolve to public addresses only — the resolver below drops the others,
//! and reqwest then connects to exactly the addresses we checked, so there is no window for
//! DNS rebinding. `allow_private` opens loopback/private addresses for named hosts or
//! networks (tests, the demo, an operator's internal mirror).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// The policy, built once from the configuration. Deliberately not `Clone`: it is shared
/// behind an `Arc` (see the allow_http note below).
#[derive(Debug, Default)]
pub struct Guard {
    /// Hosts allowed over plain http, each with its ports (`None`: any port). A map, not a
    /// list: a test web or a private deployment may open thousands of hosts, and this is
    /// consulted on every request and redirect hop.
    allow_http: HashMap<String, Vec<Option<u16>>>,
    private_hosts: Vec<String>,
    private_nets: Vec<IpNet>,
}

/// A refused URL or address, with the reason.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("blocked: {0}")]
pub struct Blocked(pub String);

impl Guard {
    pub fn new(allow_http: &[String], allow_private: &[String]) -> Guard {
        let mut map: HashMap<String, Vec<Option<u16>>> = HashMap::new();
        for (h, p) in allow_http.iter().map(|h| split_host_port(h)) {
            map.entry(h).or_default().push(p);
        }
        let allow_http = map;
        let mut private_hosts = Vec::new();
        let mut private_nets = Vec::new();
        for p in allow_private {
            let p = p.trim();
            if let Ok(net) = p.parse::<IpNet>() {
                private_nets.push(net);
            } else if let Ok(ip) = p.parse::<IpAddr>() {
                private_nets.push(IpNet::from(ip));
            } else {
                private_hosts.push(p.to_ascii_lowercase());
            }
        }
        Guard {
            allow_http,
            private_hosts,
            private_nets,
        }
    }

    /// Whether the operator allowed plain http for this URL's host (and port).
    pub fn http_allowed(&self, url: &Url) -> bool {
        let Some(host) = url.host_str() else {
            return false;
        };
        let host = host.trim_matches(['[', ']']).to_ascii_lowercase();
        let port = url.port_or_known_default();
        self.allow_http
            .get(&host)
            .is_some_and(|ports| ports.iter().any(|p| p.is_none() || *p == port))
    }

    /// Scheme and literal-IP checks, done before any request and on every redirect hop.
    pub fn check_url(&self, url: &Url) -> Result<(), Blocked> {
        match url.scheme() {
            "https" => {}
            "http" if self.http_allowed(url) => {}
            "http" => {
                return Err(Blocked(format!(
                    "plain http not allowed for {url}; for a staging server, name the host in \
                     crawl.allow_http (e.g. CDS_REGISTRY_CRAWL__ALLOW_HTTP='[{}]')",
                    crate::seeds::authority(url)
                )))
            }
            s => return Err(Blocked(format!("scheme {s:?} not allowed"))),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Blocked("URLs with credentials are not followed".into()));
        }
        let host = url
            .host()
            .ok_or_else(|| Blocked("URL without host".into()))?;
        match host {
            Host::Ipv4(ip) => self.check_ip(&ip.to_string(), IpAddr::V4(ip)),
            Host::Ipv6(ip) => self.check_ip(&ip.to_string(), IpAddr::V6(ip)),
            Host::Domain(d) => {
                // "localhost" needs no DNS to be loopback; refuse it by name as well.
                let d = d.trim_end_matches('.').to_ascii_lowercase();
                if (d == "localhost" || d.ends_with(".localhost")) && !self.host_private_ok(&d) {
                    return Err(Blocked(format!("{d} is loopback; {}", private_hint(&d))));
                }
                Ok(())
            }
        }
    }

    /// How `allow_private` applies to a literal address (for `seed --dry-run`).
    pub fn describe_ip(&self, ip: IpAddr) -> String {
        if is_public(ip) {
            "not needed (public address)".into()
        } else if self.private_nets.iter().any(|n| n.contains(&ip)) {
            format!("yes: {ip} is private and crawl.allow_private allows it")
        } else {
            format!("no: {ip} is private and will be refused (add it to crawl.allow_private)")
        }
    }

    /// How `allow_private` applies to a host name (for `seed --dry-run`): its addresses
    /// are only known when it is resolved at crawl time.
    pub fn describe_name(&self, host: &str) -> String {
        let h = host.trim_end_matches('.').to_ascii_lowercase();
        if self.host_private_ok(&h) {
            "yes: crawl.allow_private names this host".into()
        } else if h == "localhost" || h.ends_with(".localhost") {
            "no: loopback name, refused (add it to crawl.allow_private)".into()
        } else {
            "no: private addresses it resolves to at crawl time are refused".into()
        }
    }

    fn host_private_ok(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.private_hosts.contains(&host)
    }

    /// Whether an address may be connected to for `host`.
    pub fn check_ip(&self, host: &str, ip: IpAddr) -> Result<(), Blocked> {
        if is_public(ip)
            || self.host_private_ok(host)
            || self.private_nets.iter().any(|n| n.contains(&ip))
        {
            Ok(())
        } else {
            Err(Blocked(format!(
                "{host} resolves to non-public address {ip}; {}",
                private_hint(host)
            )))
        }
    }
}

/// Why a DNS name cannot exist, if it cannot: RFC 1035 §2.3.4 limits a label to 63
/// octets and RFC 1123 §2.1 a name to 253 characters (255 octets on the wire). Such a
/// name is invalid input, not a failure to connect, and is refused before any lookup.
pub fn dns_name_error(name: &str) -> Option<String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.len() > 253 {
        return Some(format!(
            "host name is {} characters long; DNS allows at most 253",
            name.len()
        ));
    }
    name.split('.').find(|l| l.len() > 63).map(|l| {
        format!(
            "host name label of {} characters; DNS allows at most 63",
            l.len()
        )
    })
}

/// `name`, `name:port`, `[v6]`, `[v6]:port` or a bare IPv6 address → (host, port).
fn split_host_port(s: &str) -> (String, Option<u16>) {
    let s = s.trim().to_ascii_lowercase();
    if let Some(rest) = s.strip_prefix('[') {
        if let Some((host, after)) = rest.split_once(']') {
            let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
            return (host.to_owned(), port);
        }
    }
    match s.split_once(':') {
        Some((host, port)) if !port.contains(':') => match port.parse() {
            Ok(p) => (host.to_owned(), Some(p)),
            Err(_) => (s.clone(), None),
        },
        _ => (s, None),
    }
}

/// True for globally routable unicast addresses; false for loopback, private (RFC 1918),
/// link-local (incl. 169.254.169.254), CGNAT 100.64/10, multicast, unspecified, broadcast,
/// documentation and benchmarking ranges, IPv6 unique-local/link-local/site-local, and the
/// IPv4-mapped, IPv4-compatible, NAT64 (64:ff9b::/96) and 6to4 forms of any of those.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0                                   // "this network"
        || (a == 100 && (64..128).contains(&b))    // CGNAT, RFC 6598
        || (a == 192 && b == 0 && c == 0)           // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19))       // benchmarking, RFC 2544
        || a >= 240) // reserved, RFC 1112
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    // IPv4-compatible ::a.b.c.d (deprecated, but still routed to the v4 address by some stacks).
    if s[0..6] == [0, 0, 0, 0, 0, 0] && !ip.is_loopback() && !ip.is_unspecified() {
        return is_public_v4(Ipv4Addr::new(
            (s[6] >> 8) as u8,
            s[6] as u8,
            (s[7] >> 8) as u8,
            s[7] as u8,
        ));
    }
    // NAT64 well-known prefix 64:ff9b::/96 (RFC 6052) and local-use 64:ff9b:1::/48 (RFC 8215).
    if s[0] == 0x64 && s[1] == 0xff9b {
        if s[2] == 1 {
            return false;
        }
        return is_public_v4(Ipv4Addr::new(
            (s[6] >> 8) as u8,
            s[6] as u8,
            (s[7] >> 8) as u8,
            s[7] as u8,
        ));
    }
    // 6to4 2002::/16 embeds an IPv4 address in bits 16..48.
    if s[0] == 0x2002 {
        return is_public_v4(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00  // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80  // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0  // site-local (deprecated) fec0::/10
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0])) // discard-only 100::/64
}

/// How to open a private address for a staging server.
fn private_hint(host: &str) -> String {
    format!(
        "for a staging server on a private network, name the host or its network in \
         crawl.allow_private (e.g. CDS_REGISTRY_CRAWL__ALLOW_PRIVATE='[{host}]' or '[10.0.0.0/8]')"
    )
}

/// A DNS resolver that drops non-public addresses (unless allowed) before reqwest connects.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    pub guard: Arc<Guard>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.guard.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut last_block = None;
            let allowed: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| match guard.check_ip(&host, a.ip()) {
                    Ok(()) => true,
                    Err(b) => {
                        last_block = Some(b);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let err: Box<dyn std::error::Error + Send + Sync> = match last_block {
                    Some(b) => Box::new(b),
                    None => format!("no addresses for {host}").into(),
                };
                return Err(err);
            }
            let it: Addrs = Box::new(allowed.into_iter());
            Ok(it)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn non_public_addresses_are_refused() {
        for s in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "224.0.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "0.1.2.3",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::7f00:1",
            "2002:7f00:1::1",
            "ff02::1",
            "::127.0.0.1",
        ] {
            assert!(!is_public(ip(s)), "{s} must not be public");
        }
        for s in [
            "8.8.8.8",
            "1.1.1.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(is_public(ip(s)), "{s} is public");
        }
    }

    #[test]
    fn urls_need_https_unless_allowed() {
        let g = Guard::new(
            &["127.0.0.2:8080".into(), "plain.example".into()],
            &["127.0.0.0/8".into()],
        );
        let u = |s: &str| Url::parse(s).unwrap();
        assert!(g.check_url(&u("https://example.com/x")).is_ok());
        assert!(g.check_url(&u("http://example.com/x")).is_err());
        assert!(g.check_url(&u("http://plain.example/x")).is_ok());
        assert!(g.check_url(&u("http://127.0.0.2:8080/x")).is_ok());
        assert!(
            g.check_url(&u("http://127.0.0.2:8081/x")).is_err(),
            "port is part of the allowance"
        );
        assert!(g.check_url(&u("ftp://example.com/x")).is_err());
        assert!(g.check_url(&u("file:///etc/passwd")).is_err());
        assert!(g.check_url(&u("https://user:pw@example.com/")).is_err());
    }

    #[test]
    fn literal_private_ips_are_checked_without_dns() {
        let g = Guard::new(&[], &[]);
        let u = |s: &str| Url::parse(s).unwrap();
        assert!(g.check_url(&u("https://127.0.0.1/")).is_err());
        assert!(g
            .check_url(&u("https://169.254.169.254/latest/meta-data"))
            .is_err());
        assert!(g.check_url(&u("https://[::ffff:10.0.0.1]/")).is_err());
        assert!(g.check_url(&u("https://localhost/")).is_err());
        assert!(g.check_url(&u("https://8.8.8.8/")).is_ok());
        let open = Guard::new(&[], &["127.0.0.0/8".into()]);
        assert!(open.check_url(&u("https://127.0.0.9/")).is_ok());
        assert!(
            open.check_url(&u("https://10.0.0.1/")).is_err(),
            "only the listed network opens"
        );
    }

    #[tokio::test]
    async fn resolver_drops_private_addresses() {
        let r = GuardedResolver {
            guard: Arc::new(Guard::new(&[], &[])),
        };
        let e = r.resolve("localhost".parse().unwrap()).await;
        assert!(e.is_err(), "localhost resolves to loopback only");
        let r = GuardedResolver {
            guard: Arc::new(Guard::new(&[], &["localhost".into()])),
        };
        assert!(r.resolve("localhost".parse().unwrap()).await.is_ok());
    }
}
