//! A fixture geocoder on loopback that speaks the Nominatim `/search?format=jsonv2` shape,
//! with knobs for the ways a real one fails: slow answers, error statuses, oversized
//! bodies and redirects. Tests never call a public geocoder.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;

/// How the fixture answers the next requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// Answers with this status and a problem body.
    Status(u16),
    /// A 2 MiB JSON array.
    Huge,
    /// 302 to another loopback address.
    Redirect,
}

#[derive(Default)]
struct Shared {
    places: Mutex<HashMap<String, (f64, f64, String, f64)>>,
    requests: AtomicUsize,
    delay_ms: AtomicU64,
    mode: Mutex<Option<Mode>>,
}

pub struct FixtureGeocoder {
    pub url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl FixtureGeocoder {
    pub async fn start() -> FixtureGeocoder {
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/search", get(search))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FixtureGeocoder { url, shared, task }
    }

    /// Answer `q` (matched case-insensitively) with this place.
    pub fn place(&self, q: &str, lat: f64, lon: f64, name: &str, importance: f64) {
        self.shared
            .places
            .lock()
            .unwrap()
            .insert(q.to_lowercase(), (lat, lon, name.to_owned(), importance));
    }

    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    pub fn set_delay(&self, d: Duration) {
        self.shared
            .delay_ms
            .store(d.as_millis() as u64, Ordering::SeqCst);
    }

    pub fn set_mode(&self, m: Mode) {
        *self.shared.mode.lock().unwrap() = Some(m);
    }
}

impl Drop for FixtureGeocoder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn search(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    s.requests.fetch_add(1, Ordering::SeqCst);
    let delay = s.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if q.get("format").map(String::as_str) != Some("jsonv2") {
        return (StatusCode::BAD_REQUEST, "format=jsonv2 expected").into_response();
    }
    let mode = s.mode.lock().unwrap().unwrap_or(Mode::Normal);
    match mode {
        Mode::Status(code) => {
            return (StatusCode::from_u16(code).unwrap(), "geocoder failure").into_response()
        }
        Mode::Huge => {
            return ([(header::CONTENT_TYPE, "application/json")], huge()).into_response()
        }
        Mode::Redirect => {
            return (
                StatusCode::FOUND,
                [(header::LOCATION, "http://127.0.0.9:9/search")],
            )
                .into_response()
        }
        Mode::Normal => {}
    }
    let key = q.get("q").cloned().unwrap_or_default().to_lowercase();
    let found = s.places.lock().unwrap().get(&key).cloned();
    let body = match found {
        Some((lat, lon, name, importance)) => json!([{
            "place_id": 1, "lat": lat.to_string(), "lon": lon.to_string(),
            "display_name": name, "importance": importance, "category": "place", "type": "city"
        }]),
        None => json!([]),
    };
    axum::Json(body).into_response()
}

fn huge() -> String {
    let one = r#"{"lat":"1","lon":"1","display_name":"x"},"#;
    let mut s = String::from("[");
    while s.len() < 2 << 20 {
        s.push_str(one);
    }
    s.push_str(r#"{"lat":"1","lon":"1"}]"#);
    s
}
