//! Per-client-IP rate limiting of the public endpoints (governor's GCRA): a polite client
//! never notices it; a runaway one gets 429 with `Retry-After` instead of starving others.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::ApiError;
use crate::config::ApiConfig;

#[derive(Clone)]
pub struct Limiter {
    inner: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
    seen: Arc<AtomicU64>,
}

impl Limiter {
    pub fn new(cfg: &ApiConfig) -> Limiter {
        let inner = NonZeroU32::new(cfg.rate_limit_per_second).map(|rate| {
            let burst = NonZeroU32::new(cfg.rate_limit_burst).unwrap_or(rate);
            Arc::new(RateLimiter::keyed(
                Quota::per_second(rate).allow_burst(burst),
            ))
        });
        Limiter {
            inner,
            seen: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Every 10,000 requests, forget clients that have been idle, so the per-IP state
    /// stays bounded however many addresses pass by.
    fn housekeeping(&self, l: &DefaultKeyedRateLimiter<IpAddr>) {
        if self.seen.fetch_add(1, Ordering::Relaxed) % 10_000 == 9_999 {
            l.retain_recent();
        }
    }
}

/// Probes and metrics are never limited: orchestrators poll them.
fn exempt(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
}

impl Limiter {
    /// The 429 for a request over its client's rate (`Retry-After` in whole seconds), or
    /// `None` to let it through. Health probes and metrics are never limited.
    pub fn check(&self, req: &Request) -> Option<Response> {
        let l = self.inner.as_ref()?;
        if exempt(req.uri().path()) {
            return None;
        }
        let ip = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        self.housekeeping(l);
        let not_until = l.check_key(&ip).err()?;
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut r =
            ApiError::TooManyRequests(format!("rate limit exceeded for {ip}; retry in {secs} s"))
                .into_response();
        r.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_str(&secs.max(1).to_string()).expect("digits"),
        );
        Some(r)
    }
}
