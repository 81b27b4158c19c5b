//! The machine's HTTP floor: a bare hyper HTTP/1.1 server that answers every request with
//! the same 600-byte JSON body. No router, no middleware, no logging: what any server on
//! this stack pays per request (accept, parse, write, the kernel's loopback work), so the
//! distance from it to `/healthz` is the cost of the registry's shared layers.
//!
//! `cds-bench floor` runs it in a process of its own (so its CPU is measured as `serve`'s
//! is), on a tokio runtime with two workers like `serve` on this machine, and prints
//! `listen=ADDR` once bound. It binds only to loopback.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::Response;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Bytes in the fixed body (about a one-row `/v1/lookup` answer).
pub(crate) const BODY_BYTES: usize = 600;

/// A JSON object of exactly `BODY_BYTES` bytes.
pub(crate) fn body() -> Bytes {
    let head = r#"{"floor":true,"pad":""#;
    let tail = r#""}"#;
    let pad = "x".repeat(BODY_BYTES - head.len() - tail.len());
    Bytes::from(format!("{head}{pad}{tail}"))
}

/// Serve forever on `listen` (a loopback address; port 0 picks one).
pub(crate) fn serve(listen: SocketAddr) -> Result<()> {
    ensure!(listen.ip().is_loopback(), "--listen must be loopback");
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(listen).await?;
            println!("listen={}", listener.local_addr()?);
            let body = body();
            loop {
                let (stream, _) = listener.accept().await?;
                stream.set_nodelay(true)?;
                let body = body.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |_req| {
                        let mut r = Response::new(Full::new(body.clone()));
                        r.headers_mut()
                            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                        async move { Ok::<_, Infallible>(r) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        })
}

/// The floor server as a child process of this driver: its pid and base URL.
pub(crate) struct Floor {
    pub(crate) child: Child,
    pub(crate) pid: u32,
    pub(crate) base: String,
}

impl Floor {
    pub(crate) async fn start() -> Result<Floor> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["floor", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting the floor server")?;
        let pid = child.id().context("floor pid")?;
        let out = child.stdout.take().context("floor stdout")?;
        let mut line = String::new();
        tokio::time::timeout(
            Duration::from_secs(10),
            BufReader::new(out).read_line(&mut line),
        )
        .await
        .context("the floor server did not report its address")??;
        let addr = line
            .trim()
            .strip_prefix("listen=")
            .context("floor: no listen= line")?
            .to_owned();
        Ok(Floor {
            child,
            pid,
            base: format!("http://{addr}"),
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_body_is_600_bytes_of_json() {
        let b = super::body();
        assert_eq!(b.len(), super::BODY_BYTES);
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["floor"], true);
    }
}
