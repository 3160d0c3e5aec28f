//! A browser-like client of the admin listener, and parsers for what it serves.

use super::{Http, Resp, enc};
use std::collections::BTreeMap;

/// A browser-like client of the admin page: keeps the session cookie, sends forms with the
/// page's CSRF token and a same-origin `Origin`.
pub struct AdminClient {
    pub http: Http,
    pub base: String,
    pub cookie: Option<String>,
}

impl AdminClient {
    pub fn new(base: &str) -> AdminClient {
        AdminClient {
            http: Http::new(),
            base: base.trim_end_matches('/').to_string(),
            cookie: None,
        }
    }

    fn headers<'a>(&'a self, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut h: Vec<(&str, &str)> = extra.to_vec();
        if let Some(c) = &self.cookie {
            h.push(("cookie", c));
        }
        h
    }

    pub async fn get(&self, path: &str) -> Resp {
        let url = format!("{}{path}", self.base);
        self.http.raw("GET", &url, &self.headers(&[]), None).await
    }

    pub async fn post_form(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        origin: Option<&str>,
    ) -> Resp {
        let url = format!("{}{path}", self.base);
        let body = fields
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect::<Vec<_>>()
            .join("&");
        let origin = origin
            .map(str::to_string)
            .unwrap_or_else(|| self.base.clone());
        let h = self.headers(&[
            ("content-type", "application/x-www-form-urlencoded"),
            ("origin", &origin),
        ]);
        self.http
            .raw("POST", &url, &h, Some(body.into_bytes()))
            .await
    }

    /// Signs in; returns the login response (303 with a cookie when right).
    pub async fn login(&mut self, password: &str) -> Resp {
        let r = self
            .post_form("/login", &[("password", password), ("next", "/")], None)
            .await;
        if let Some(c) = r.header("set-cookie")
            && r.status == 303
        {
            self.cookie = c.split(';').next().map(str::to_string);
        }
        r
    }

    /// The CSRF token of a page this session can see.
    pub async fn csrf(&self) -> String {
        let r = self.get("/keys").await;
        assert_eq!(r.status, 200, "{}", r.text);
        csrf_of(&r.text)
    }
}

pub fn csrf_of(html: &str) -> String {
    let marker = r#"name="csrf" value=""#;
    let start = html.find(marker).expect("a form with a CSRF token") + marker.len();
    html[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The key shown in the "key created" dialog, if any.
pub fn shown_key(html: &str) -> Option<String> {
    let start = html.find(r#"id="new-key-value">"#)? + r#"id="new-key-value">"#.len();
    html[start..].split('<').next().map(str::to_string)
}

/// The metrics exposition as `series → value`, checking that every line is well formed:
/// `# HELP|TYPE|UNIT|EOF` comments, or `name{labels} value` samples with a numeric value.
pub fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let mut samples = BTreeMap::new();
    assert!(text.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
    for line in text.lines() {
        if let Some(comment) = line.strip_prefix("# ") {
            let kind = comment.split(' ').next().unwrap_or_default();
            assert!(
                ["HELP", "TYPE", "UNIT", "EOF"].contains(&kind),
                "bad comment line: {line}"
            );
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample: series value");
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "unclosed labels: {line}");
        }
        let v: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        samples.insert(series.to_string(), v);
    }
    samples
}
