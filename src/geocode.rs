//! Address → point, for `GET /v1/lookup?address=`: a client for one operator-configured
//! geocoder that speaks the Nominatim `/search?format=jsonv2` or the Photon `/api` JSON API
//! (both self-hostable), with a bounded LRU cache with TTL in front and a rate limit
//! toward the geocoder behind.
//!
//! The geocoder is trusted as the operator configured it: its URL is not put through the
//! crawl guard (a self-hosted Nominatim usually sits on a private address), but nothing in
//! its answers is ever fetched, every request has a deadline, and a body is read up to
//! `max_response_bytes` only. A geocoder that is down, slow or talks nonsense costs one
//! classified error ([`GeocodeError`]) within `timeout_ms`, never a hung request.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

/// Which JSON API the geocoder speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GeocoderKind {
    /// `GET {url}/search?q=…&format=jsonv2&limit=1` → `[{lat, lon, display_name, importance}]`.
    Nominatim,
    /// `GET {url}/api?q=…&limit=1` → a GeoJSON FeatureCollection of points.
    Photon,
}

/// `[geocoder]` in the configuration. Without `url`, `address=` is refused with a 400 that
/// says how to configure one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeocoderConfig {
    /// Base URL, e.g. `http://127.0.0.1:8088` for a self-hosted Nominatim.
    pub url: Option<Url>,
    pub kind: GeocoderKind,
    /// Deadline of one address lookup, the rate-limit wait included (ms).
    pub timeout_ms: u64,
    /// Requests per second sent to the geocoder; the public Nominatim allows 1.
    pub max_requests_per_second: u32,
    /// Addresses cached (answers and "not found" alike), least recently used evicted first.
    pub cache_entries: usize,
    /// How long a cached answer is used (s).
    pub cache_ttl_secs: u64,
    /// Largest geocoder response read (bytes).
    pub max_response_bytes: usize,
    /// Longest address accepted (characters).
    pub max_address_chars: usize,
}

impl Default for GeocoderConfig {
    fn default() -> Self {
        GeocoderConfig {
            url: None,
            kind: GeocoderKind::Nominatim,
            timeout_ms: 3_000,
            max_requests_per_second: 1,
            cache_entries: 10_000,
            cache_ttl_secs: 24 * 3600,
            max_response_bytes: 1 << 20,
            max_address_chars: 300,
        }
    }
}

impl GeocoderConfig {
    /// Checks run at configuration load, so a bad `[geocoder]` stops the start, not a request.
    pub fn check(&self) -> anyhow::Result<()> {
        if let Some(url) = &self.url {
            anyhow::ensure!(
                matches!(url.scheme(), "http" | "https"),
                "geocoder.url must be an http(s) URL, got {url}"
            );
        }
        anyhow::ensure!(
            self.max_requests_per_second > 0,
            "geocoder.max_requests_per_second must be at least 1"
        );
        anyhow::ensure!(self.timeout_ms > 0, "geocoder.timeout_ms must be positive");
        Ok(())
    }
}

/// Where an address is, as the geocoder put it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Geocoded {
    pub lat: f64,
    pub lon: f64,
    /// The geocoder's name for the place it found.
    pub display_name: String,
    /// Nominatim's `importance` (0..1); Photon reports none.
    pub importance: Option<f64>,
    /// `nominatim` or `photon`.
    pub source: GeocoderKind,
}

/// Why an address gave no point. The API maps each to one status (see `api::error`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GeocodeError {
    #[error(
        "`address` needs a geocoder: set `[geocoder] url = \"http://…\"` in the configuration \
         (or CDS_REGISTRY_GEOCODER__URL) to a Nominatim- or Photon-compatible endpoint"
    )]
    NotConfigured,
    #[error("`address` must be 1..{0} characters")]
    BadAddress(usize),
    #[error("the geocoder found no place for this address")]
    NotFound,
    #[error("the geocoder did not answer within {0} ms")]
    Timeout(u64),
    #[error("the geocoder failed: {0}")]
    Upstream(String),
}

type Answer = Result<Geocoded, GeocodeError>;

/// A geocoder client with its cache and rate limit; cheap to clone.
#[derive(Clone)]
pub struct Geocoder {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    cfg: GeocoderConfig,
    base: Url,
    http: reqwest::Client,
    limiter: DefaultDirectRateLimiter,
    cache: Mutex<Lru>,
}

impl Geocoder {
    /// A client for `cfg`; without a URL every call says how to configure one.
    pub fn new(cfg: &GeocoderConfig, user_agent: &str) -> anyhow::Result<Geocoder> {
        cfg.check()?;
        let Some(base) = cfg.url.clone() else {
            return Ok(Geocoder { inner: None });
        };
        let rate = NonZeroU32::new(cfg.max_requests_per_second)
            .ok_or_else(|| anyhow::anyhow!("geocoder.max_requests_per_second must be > 0"))?;
        let http = reqwest::Client::builder()
            .user_agent(user_agent)
            .timeout(Duration::from_millis(cfg.timeout_ms))
            // Only the configured endpoint: a redirect could lead anywhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Geocoder {
            inner: Some(Arc::new(Inner {
                base,
                http,
                limiter: RateLimiter::direct(Quota::per_second(rate)),
                cache: Mutex::new(Lru::new(cfg.cache_entries)),
                cfg: cfg.clone(),
            })),
        })
    }

    /// A client that is not configured (tests, and registries without `[geocoder]`).
    pub fn disabled() -> Geocoder {
        Geocoder { inner: None }
    }

    pub fn is_configured(&self) -> bool {
        self.inner.is_some()
    }

    /// The point for `address`, from the cache when it holds a fresh answer.
    pub async fn geocode(&self, address: &str) -> Answer {
        let inner = self.inner.as_ref().ok_or(GeocodeError::NotConfigured)?;
        let key = cache_key(address);
        let max = inner.cfg.max_address_chars;
        if key.is_empty() || key.chars().count() > max {
            return Err(GeocodeError::BadAddress(max));
        }
        let ttl = Duration::from_secs(inner.cfg.cache_ttl_secs);
        if let Some(hit) = inner.lock_cache().get(&key, ttl) {
            return hit;
        }
        let timeout = inner.cfg.timeout_ms;
        let answer = tokio::time::timeout(Duration::from_millis(timeout), inner.fetch(&key))
            .await
            .unwrap_or(Err(GeocodeError::Timeout(timeout)));
        // Answers and "not found" are cached; failures are not, so a geocoder that was down
        // is asked again once it is back.
        if matches!(answer, Ok(_) | Err(GeocodeError::NotFound)) {
            inner.lock_cache().put(key, answer.clone());
        }
        answer
    }
}

impl Inner {
    fn lock_cache(&self) -> std::sync::MutexGuard<'_, Lru> {
        // A panic while holding the lock cannot leave the map inconsistent in a way that
        // matters for a cache; keep serving.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn fetch(&self, address: &str) -> Answer {
        // Waits for a permit inside the caller's deadline: the rate limit delays, the
        // timeout bounds the delay.
        self.limiter.until_ready().await;
        let url = self.request_url(address);
        let failed = |e| transport_error(e, self.cfg.timeout_ms);
        let mut resp = self.http.get(url).send().await.map_err(failed)?;
        if !resp.status().is_success() {
            return Err(GeocodeError::Upstream(format!("HTTP {}", resp.status())));
        }
        let max = self.cfg.max_response_bytes;
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(failed)? {
            if body.len() + chunk.len() > max {
                return Err(GeocodeError::Upstream(format!("response over {max} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| GeocodeError::Upstream(format!("not JSON: {e}")))?;
        match self.cfg.kind {
            GeocoderKind::Nominatim => parse_nominatim(&v),
            GeocoderKind::Photon => parse_photon(&v),
        }
    }

    fn request_url(&self, address: &str) -> Url {
        let mut url = self.base.clone();
        let path = match self.cfg.kind {
            GeocoderKind::Nominatim => "search",
            GeocoderKind::Photon => "api",
        };
        // The base may carry a path prefix (`https://example.org/nominatim/`).
        let prefix = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{prefix}/{path}"));
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("q", address).append_pair("limit", "1");
            if self.cfg.kind == GeocoderKind::Nominatim {
                q.append_pair("format", "jsonv2");
            }
        }
        url
    }
}

fn transport_error(e: reqwest::Error, timeout_ms: u64) -> GeocodeError {
    if e.is_timeout() {
        GeocodeError::Timeout(timeout_ms)
    } else if e.is_connect() {
        GeocodeError::Upstream("connection failed".into())
    } else {
        GeocodeError::Upstream(e.without_url().to_string())
    }
}

/// Cache key: the address with runs of whitespace collapsed and letters lower-cased, so
/// `"1 Main St"` and `" 1  main st "` share an entry.
fn cache_key(address: &str) -> String {
    address
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

fn coordinate(v: &Value, range: f64) -> Option<f64> {
    // Nominatim sends coordinates as strings, Photon as numbers.
    let x = match v {
        Value::String(s) => s.parse().ok()?,
        other => other.as_f64()?,
    };
    (x.is_finite() && x.abs() <= range).then_some(x)
}

fn bad_shape(what: &str) -> GeocodeError {
    GeocodeError::Upstream(format!("unexpected answer: {what}"))
}

/// Nominatim `format=jsonv2`: an array of places, best first.
fn parse_nominatim(v: &Value) -> Answer {
    let places = v.as_array().ok_or_else(|| bad_shape("not an array"))?;
    let Some(p) = places.first() else {
        return Err(GeocodeError::NotFound);
    };
    let lat = coordinate(&p["lat"], 90.0).ok_or_else(|| bad_shape("lat"))?;
    let lon = coordinate(&p["lon"], 180.0).ok_or_else(|| bad_shape("lon"))?;
    Ok(Geocoded {
        lat,
        lon,
        display_name: text(&p["display_name"]),
        importance: p["importance"].as_f64().filter(|x| x.is_finite()),
        source: GeocoderKind::Nominatim,
    })
}

/// Photon: a GeoJSON FeatureCollection of points; the name is assembled from the parts
/// Photon returns, most specific first.
fn parse_photon(v: &Value) -> Answer {
    let features = v["features"]
        .as_array()
        .ok_or_else(|| bad_shape("no features"))?;
    let Some(f) = features.first() else {
        return Err(GeocodeError::NotFound);
    };
    let c = &f["geometry"]["coordinates"];
    let lon = coordinate(&c[0], 180.0).ok_or_else(|| bad_shape("coordinates"))?;
    let lat = coordinate(&c[1], 90.0).ok_or_else(|| bad_shape("coordinates"))?;
    let p = &f["properties"];
    let parts: Vec<String> = ["name", "street", "city", "state", "country"]
        .iter()
        .map(|k| text(&p[*k]))
        .filter(|s| !s.is_empty())
        .collect();
    Ok(Geocoded {
        lat,
        lon,
        display_name: parts.join(", "),
        importance: None,
        source: GeocoderKind::Photon,
    })
}

/// A string field, bounded: the geocoder is trusted, but its text goes into our answers.
fn text(v: &Value) -> String {
    v.as_str().unwrap_or("").chars().take(500).collect()
}

/// Least recently used map with per-entry age: `order` maps a use counter to the key, so
/// the oldest use is the first entry and eviction is O(log n).
struct Lru {
    cap: usize,
    tick: u64,
    map: HashMap<String, (u64, Instant, Answer)>,
    order: BTreeMap<u64, String>,
}

impl Lru {
    fn new(cap: usize) -> Lru {
        Lru {
            cap,
            tick: 0,
            map: HashMap::new(),
            order: BTreeMap::new(),
        }
    }

    fn get(&mut self, key: &str, ttl: Duration) -> Option<Answer> {
        let (used, at, answer) = self.map.get_mut(key)?;
        if at.elapsed() > ttl {
            let used = *used;
            self.order.remove(&used);
            self.map.remove(key);
            return None;
        }
        self.tick += 1;
        self.order.remove(used);
        *used = self.tick;
        self.order.insert(self.tick, key.to_owned());
        Some(answer.clone())
    }

    fn put(&mut self, key: String, answer: Answer) {
        if self.cap == 0 {
            return;
        }
        self.tick += 1;
        if let Some((used, _, _)) = self.map.get(&key) {
            self.order.remove(used);
        } else if self.map.len() >= self.cap {
            if let Some((_, oldest)) = self.order.pop_first() {
                self.map.remove(&oldest);
            }
        }
        self.order.insert(self.tick, key.clone());
        self.map.insert(key, (self.tick, Instant::now(), answer));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn place(name: &str) -> Answer {
        Ok(Geocoded {
            lat: 1.0,
            lon: 2.0,
            display_name: name.into(),
            importance: None,
            source: GeocoderKind::Nominatim,
        })
    }

    #[test]
    fn the_least_recently_used_entry_goes_first() {
        let mut lru = Lru::new(2);
        let ttl = Duration::from_secs(60);
        lru.put("a".into(), place("a"));
        lru.put("b".into(), place("b"));
        assert!(lru.get("a", ttl).is_some()); // a is now newer than b
        lru.put("c".into(), place("c"));
        assert_eq!(lru.len(), 2);
        assert!(lru.get("b", ttl).is_none(), "b was the least recently used");
        assert!(lru.get("a", ttl).is_some() && lru.get("c", ttl).is_some());
        // Re-putting a key replaces it without evicting another.
        lru.put("a".into(), place("a2"));
        assert_eq!(lru.len(), 2);
        assert_eq!(lru.get("a", ttl), Some(place("a2")));
        assert_eq!(lru.order.len(), lru.map.len());
    }

    #[test]
    fn expired_entries_are_not_used() {
        let mut lru = Lru::new(4);
        lru.put("a".into(), place("a"));
        assert!(lru.get("a", Duration::ZERO).is_none());
        assert_eq!(lru.len(), 0);
        assert!(lru.order.is_empty());
    }

    #[test]
    fn addresses_share_a_key_regardless_of_spacing_and_case() {
        assert_eq!(cache_key("  1  Main\tSt "), cache_key("1 main st"));
        assert_eq!(cache_key("   "), "");
    }

    #[test]
    fn nominatim_answers_are_read_with_string_coordinates() {
        let v = json!([{"lat": "36.6002", "lon": "-121.8947", "display_name": "Monterey, CA",
                        "importance": 0.61}]);
        let g = parse_nominatim(&v).unwrap();
        assert_eq!((g.lat, g.lon), (36.6002, -121.8947));
        assert_eq!(g.display_name, "Monterey, CA");
        assert_eq!(g.importance, Some(0.61));
        assert_eq!(parse_nominatim(&json!([])), Err(GeocodeError::NotFound));
        for bad in [
            json!({"lat": 1}),
            json!([{"lat": "95", "lon": "0"}]),
            json!([{"lat": "x", "lon": "0"}]),
            json!([{"lat": "1"}]),
        ] {
            assert!(
                matches!(parse_nominatim(&bad), Err(GeocodeError::Upstream(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn photon_answers_are_read_from_geojson() {
        let v = json!({"type": "FeatureCollection", "features": [{"type": "Feature",
            "geometry": {"type": "Point", "coordinates": [-97.74, 30.27]},
            "properties": {"name": "Austin", "state": "Texas", "country": "United States"}}]});
        let g = parse_photon(&v).unwrap();
        assert_eq!((g.lat, g.lon), (30.27, -97.74));
        assert_eq!(g.display_name, "Austin, Texas, United States");
        assert_eq!(g.importance, None);
        assert_eq!(
            parse_photon(&json!({"features": []})),
            Err(GeocodeError::NotFound)
        );
    }

    #[tokio::test]
    async fn an_unconfigured_geocoder_says_how_to_configure_one() {
        let g = Geocoder::new(&GeocoderConfig::default(), "t").unwrap();
        assert!(!g.is_configured());
        let e = g.geocode("1 Main St").await.unwrap_err();
        assert_eq!(e, GeocodeError::NotConfigured);
        assert!(e.to_string().contains("[geocoder] url"), "{e}");
    }

    #[test]
    fn request_urls_keep_a_path_prefix() {
        let cfg = GeocoderConfig {
            url: Some("http://127.0.0.1:9/nominatim/".parse().unwrap()),
            ..GeocoderConfig::default()
        };
        let g = Geocoder::new(&cfg, "t").unwrap();
        let u = g.inner.as_ref().unwrap().request_url("1 Main St & Co");
        assert_eq!(u.path(), "/nominatim/search");
        let q: HashMap<_, _> = u.query_pairs().into_owned().collect();
        assert_eq!(q["q"], "1 Main St & Co");
        assert_eq!(q["format"], "jsonv2");
    }
}
