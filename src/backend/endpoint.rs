//! Legacy API endpoints as a profile declares them.
//!
//! An [`Endpoint`] is one call (method, path template, optional body and id extraction); a
//! [`ListEndpoint`] is a collection call with item/total extraction and a paging style.
//! Both are deserialized (and their templates and JSONPath expressions compiled) when the
//! profile loads.

use super::client::BackendRequest;
use super::jsonpath::JsonPath;
use super::template::{BodyTemplate, PathTemplate, TemplateError};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::collections::BTreeMap;

/// One declared backend call, e.g. `{ method = "PUT", path = "/api/v1/users/{id}" }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// HTTP method (any case in the file; normalised to upper case).
    #[serde(deserialize_with = "de_method")]
    pub method: http::Method,
    /// Path below the backend's base URL, with `{placeholders}`.
    pub path: PathTemplate,
    /// Fixed query parameters sent with every call.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Where the response carries the (new) legacy id, e.g. `$.id` for a create.
    #[serde(default)]
    pub id: Option<JsonPath>,
    /// A fixed request body with placeholders, for calls whose body is not built by a script
    /// (e.g. `{ user_ids = "{members}" }` for a membership add).
    #[serde(default)]
    pub body: Option<BodyTemplate>,
}

impl Endpoint {
    /// Builds a request for this endpoint: renders the path with `vars` (percent-encoded) and
    /// adds the fixed query parameters; `body` is sent as given. Fails when a placeholder of
    /// the path has no value.
    pub fn request(
        &self,
        vars: &[(&str, &str)],
        body: Option<Value>,
    ) -> Result<BackendRequest, TemplateError> {
        Ok(BackendRequest {
            method: self.method.clone(),
            path: self.path.render(vars)?,
            query: fixed_query(&self.query),
            body,
            auth: None,
        })
    }
}

/// A declared collection call: `{ path, items = "$.data[*]", total = "$.total", paging }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListEndpoint {
    /// HTTP method; GET unless the legacy API searches by POST.
    #[serde(default = "get_method", deserialize_with = "de_method")]
    pub method: http::Method,
    /// Path below the backend's base URL, with `{placeholders}`.
    pub path: PathTemplate,
    /// Fixed query parameters sent with every call.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Selects the items of one response page.
    pub items: JsonPath,
    /// Selects the total number of items across all pages; without it the total is inferred
    /// from where the pages run out.
    #[serde(default)]
    pub total: Option<JsonPath>,
    /// How pages are requested.
    #[serde(default)]
    pub paging: Paging,
}

impl ListEndpoint {
    /// The fixed query parameters as request pairs.
    pub fn fixed_query(&self) -> Vec<(String, String)> {
        fixed_query(&self.query)
    }
}

/// How a list endpoint pages, with the query parameter names it uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PagingStyle {
    /// 1-based page number plus page size (`?page=2&per_page=100`).
    Page {
        /// Name of the page-number parameter.
        page: String,
        /// Name of the page-size parameter.
        size: String,
    },
    /// 0-based item offset plus limit (`?offset=100&limit=100`).
    Offset {
        /// Name of the offset parameter.
        offset: String,
        /// Name of the limit parameter.
        limit: String,
    },
    /// One call returns every item.
    None,
}

/// Paging style plus the bounds the gateway keeps to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawPaging")]
pub struct Paging {
    /// How pages are requested.
    pub style: PagingStyle,
    /// Largest page size the backend accepts.
    pub max_size: usize,
    /// Most backend calls one list or fetch may make; protects against a backend that
    /// ignores the paging parameters and returns full pages forever.
    pub max_pages: usize,
}

const DEFAULT_MAX_SIZE: usize = 100;
const DEFAULT_MAX_PAGES: usize = 100;

impl Default for Paging {
    fn default() -> Self {
        Paging {
            style: PagingStyle::None,
            max_size: DEFAULT_MAX_SIZE,
            max_pages: DEFAULT_MAX_PAGES,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPaging {
    style: String,
    page: Option<String>,
    size: Option<String>,
    offset: Option<String>,
    limit: Option<String>,
    max_size: Option<usize>,
    max_pages: Option<usize>,
}

impl TryFrom<RawPaging> for Paging {
    type Error = String;

    fn try_from(r: RawPaging) -> Result<Self, String> {
        let (style, stray) = match r.style.as_str() {
            "page" => (
                PagingStyle::Page {
                    page: r.page.unwrap_or_else(|| "page".into()),
                    size: r.size.unwrap_or_else(|| "per_page".into()),
                },
                [("offset", r.offset.is_some()), ("limit", r.limit.is_some())],
            ),
            "offset" => (
                PagingStyle::Offset {
                    offset: r.offset.unwrap_or_else(|| "offset".into()),
                    limit: r.limit.unwrap_or_else(|| "limit".into()),
                },
                [("page", r.page.is_some()), ("size", r.size.is_some())],
            ),
            "none" => {
                let extra = r.page.is_some() || r.size.is_some();
                (
                    PagingStyle::None,
                    [
                        ("page/size", extra),
                        ("offset/limit", r.offset.is_some() || r.limit.is_some()),
                    ],
                )
            }
            other => {
                return Err(format!(
                    "unknown paging style `{other}`, expected `page`, `offset` or `none`"
                ));
            }
        };
        if let Some((key, _)) = stray.iter().find(|(_, set)| *set) {
            return Err(format!(
                "`{key}` does not apply to paging style `{}`",
                r.style
            ));
        }
        let max_size = r.max_size.unwrap_or(DEFAULT_MAX_SIZE);
        let max_pages = r.max_pages.unwrap_or(DEFAULT_MAX_PAGES);
        if max_size == 0 || max_pages == 0 {
            return Err("`max_size` and `max_pages` must be at least 1".into());
        }
        Ok(Paging {
            style,
            max_size,
            max_pages,
        })
    }
}

fn fixed_query(q: &BTreeMap<String, String>) -> Vec<(String, String)> {
    q.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn get_method() -> http::Method {
    http::Method::GET
}

fn de_method<'de, D: Deserializer<'de>>(d: D) -> Result<http::Method, D::Error> {
    let s = String::deserialize(d)?;
    let upper = s.to_ascii_uppercase();
    http::Method::from_bytes(upper.as_bytes())
        .map_err(|_| serde::de::Error::custom(format!("invalid HTTP method `{s}`")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_styles_and_defaults() {
        let p: Paging = toml::from_str("style = 'page'\nmax_size = 200").unwrap();
        assert_eq!(
            p.style,
            PagingStyle::Page {
                page: "page".into(),
                size: "per_page".into()
            }
        );
        assert_eq!((p.max_size, p.max_pages), (200, DEFAULT_MAX_PAGES));
        let p: Paging = toml::from_str("style = 'offset'\nlimit = 'take'").unwrap();
        assert_eq!(
            p.style,
            PagingStyle::Offset {
                offset: "offset".into(),
                limit: "take".into()
            }
        );
        let e = toml::from_str::<Paging>("style = 'page'\noffset = 'o'").unwrap_err();
        assert!(e.message().contains("`offset` does not apply"), "{e}");
        assert!(toml::from_str::<Paging>("style = 'cursor'").is_err());
        assert!(toml::from_str::<Paging>("style = 'none'\nmax_size = 0").is_err());
        assert!(toml::from_str::<Paging>("style = 'none'\nbogus = 1").is_err());
    }

    #[test]
    fn endpoint_request_renders_path_and_query() {
        let ep: Endpoint = toml::from_str(
            "method = 'post'\npath = '/api/v1/users/{id}/deactivate'\nquery = { notify = 'false' }",
        )
        .unwrap();
        assert_eq!(ep.method, http::Method::POST);
        let req = ep.request(&[("id", "a b")], None).unwrap();
        assert_eq!(req.path, "/api/v1/users/a%20b/deactivate");
        assert_eq!(req.query, vec![("notify".to_string(), "false".to_string())]);
        assert!(ep.request(&[], None).is_err());
        assert!(toml::from_str::<Endpoint>("method = 'GET'\npath = '/u/{id'").is_err());
    }
}
