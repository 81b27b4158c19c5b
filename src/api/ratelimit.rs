//! Per-client-IP rate limiting of the public endpoints (governor's GCRA): a polite client
//! never notices it; a runaway one gets 429 with `Retry-After` instead of starving others.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
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

pub async fn limit(State(limiter): State<Limiter>, req: Request, next: Next) -> Response {
    let Some(l) = &limiter.inner else {
        return next.run(req).await;
    };
    if exempt(req.uri().path()) {
        return next.run(req).await;
    }
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    limiter.housekeeping(l);
    match l.check_key(&ip) {
        Ok(()) => next.run(req).await,
        Err(not_until) => {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let mut r = ApiError::TooManyRequests(format!(
                "rate limit exceeded for {ip}; retry in {secs} s"
            ))
            .into_response();
            r.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_str(&secs.max(1).to_string()).expect("digits"),
            );
            r
        }
    }
}
