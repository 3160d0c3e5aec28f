//! Shared helpers for integration tests: a small real HTTP client over loopback.
#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

pub mod admin;
pub mod entra;
pub mod pg;
pub mod process;

/// A response as tests look at it.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A pooled HTTP/1 client for tests.
#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for Http {
    fn default() -> Self {
        Self::new()
    }
}

impl Http {
    pub fn new() -> Self {
        Http {
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Sends a request with optional raw body bytes; panics if no response arrives.
    pub async fn raw(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Resp {
        self.try_raw(method, url, headers, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"))
    }

    /// Sends a request; `Err` when the connection fails or the response is cut off (a server
    /// killed mid-request).
    pub async fn try_raw(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Resp, String> {
        let mut b = http::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .expect("request");
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| format!("send: {e}"))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes).to_string();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Resp {
            status,
            headers,
            text,
            json,
        })
    }

    /// Sends JSON with the given headers.
    pub async fn json(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Resp {
        let mut h: Vec<(&str, &str)> = headers.to_vec();
        if body.is_some() {
            h.push(("content-type", "application/scim+json"));
        }
        self.raw(
            method,
            url,
            &h,
            body.map(|b| serde_json::to_vec(b).expect("json")),
        )
        .await
    }
}

/// A SCIM client bound to a base URL and bearer token.
#[derive(Clone)]
pub struct Scim {
    pub http: Http,
    pub base: String,
    pub auth: String,
}

impl Scim {
    pub fn new(base: &str, token: &str) -> Self {
        Scim {
            http: Http::new(),
            base: base.trim_end_matches('/').to_string(),
            auth: format!("Bearer {token}"),
        }
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Resp {
        let url = format!("{}{}", self.base, path);
        self.http
            .json(method, &url, &[("authorization", &self.auth)], body)
            .await
    }

    /// Like [`Scim::call`], but `Err` instead of a panic when no response arrives.
    pub async fn try_call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Resp, String> {
        let url = format!("{}{}", self.base, path);
        let body = body.map(|b| serde_json::to_vec(b).expect("json"));
        self.http
            .try_raw(
                method,
                &url,
                &[
                    ("authorization", &self.auth),
                    ("content-type", "application/scim+json"),
                ],
                body,
            )
            .await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.call("GET", path, None).await
    }
    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.call("POST", path, Some(body)).await
    }
    pub async fn put(&self, path: &str, body: &Value) -> Resp {
        self.call("PUT", path, Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: &Value) -> Resp {
        self.call("PATCH", path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> Resp {
        self.call("DELETE", path, None).await
    }
}

/// A client for the demo legacy app's own API (X-Api-Key auth, or any one header).
#[derive(Clone)]
pub struct Legacy {
    pub http: Http,
    pub base: String,
    /// The header that authenticates: (`x-api-key`, key) or (`authorization`, `Basic …`).
    pub auth: (String, String),
}

impl Legacy {
    pub fn new(base: &str, key: &str) -> Self {
        Self::with_header(base, "x-api-key", key)
    }

    /// A client authenticating with `name: value` (e.g. the demo app in HTTP Basic mode).
    pub fn with_header(base: &str, name: &str, value: &str) -> Self {
        Legacy {
            http: Http::new(),
            base: base.trim_end_matches('/').to_string(),
            auth: (name.to_string(), value.to_string()),
        }
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Resp {
        let url = format!("{}{}", self.base, path);
        self.http
            .json(method, &url, &[(&self.auth.0, &self.auth.1)], body)
            .await
    }

    pub async fn get(&self, path: &str) -> Value {
        let r = self.call("GET", path, None).await;
        assert_eq!(r.status, 200, "legacy GET {path}: {}", r.text);
        r.json
    }
}

/// Percent-encodes a query value.
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
pub mod webdriver;

/// Polls `check` every 25 ms until it holds; panics naming `what` after `within`.
pub async fn eventually<F, Fut>(within: std::time::Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + within;
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "not within {within:?}: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}
