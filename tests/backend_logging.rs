//! What the backend client writes to the log: one event per call with method, path, status
//! and elapsed time, never a credential; and the single retry of a GET whose connect failed.
//!
//! This is its own test binary with a single test because tracing caches per-callsite
//! interest globally: tests that install and drop scoped subscribers in parallel with other
//! tests can miss events.

use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use scimgate::backend::{Backend, BackendRequest};
use scimgate::config::{BackendAuth, BackendConfig, Secret};
use serde_json::json;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuf {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

fn backend(base: &str, auth: BackendAuth) -> Backend {
    let mut cfg = BackendConfig::new(base);
    cfg.auth = auth;
    cfg.connect_timeout_ms = 500;
    Backend::new(&cfg).unwrap()
}

#[tokio::test]
async fn logs_show_each_call_without_credentials_and_the_get_retry() {
    let buf = LogBuf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let app = Router::new()
        .route("/empty", get(|| async { StatusCode::NO_CONTENT }))
        .route(
            "/conflict",
            get(|| async {
                (
                    StatusCode::CONFLICT,
                    Json(json!({"error": {"code": "conflict", "message": "email already exists"}})),
                )
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let b = backend(
        &base,
        BackendAuth::Bearer {
            token: Secret::new("very-secret-token"),
        },
    );
    b.call(BackendRequest::new(http::Method::GET, "/empty"))
        .await
        .unwrap();
    b.call(BackendRequest::new(http::Method::GET, "/conflict"))
        .await
        .unwrap_err();
    let logs = buf.text();
    let lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("backend call"))
        .collect();
    assert_eq!(lines.len(), 2, "{logs}");
    assert!(
        lines[0].contains("method=GET path=/empty") && lines[0].contains("status=204"),
        "{logs}"
    );
    assert!(lines[0].contains("elapsed_ms="), "{logs}");
    assert!(
        lines[1].contains("status=409") && lines[1].contains("email already exists"),
        "{logs}"
    );
    assert!(!logs.contains("very-secret-token"), "{logs}");

    // Only a GET is tried again after a failed connect.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refused = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let b = backend(&refused, BackendAuth::None);
    let count = |needle: &str| buf.text().matches(needle).count();
    let connects = count("connecting to");
    b.call(BackendRequest::new(http::Method::GET, "/x"))
        .await
        .unwrap_err();
    assert_eq!(count("retrying once"), 1);
    assert_eq!(count("connecting to"), connects + 2);
    b.call(BackendRequest::new(http::Method::PUT, "/x"))
        .await
        .unwrap_err();
    assert_eq!(count("retrying once"), 1);
    assert_eq!(count("connecting to"), connects + 3);
}
