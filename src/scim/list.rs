//! List and search parameters and the ListResponse (RFC 7644 §3.4.2, §3.4.3).

use super::error::{ScimError, ScimResult};
use super::filter::{Filter, parse_filter, validate_filter};
use super::path::AttrPath;
use super::resource::leaf_values;
use super::schema::{AttrType, LIST_RESPONSE_SCHEMA, SEARCH_REQUEST_SCHEMA, SchemaContext};
use serde_json::Value;
use std::cmp::Ordering;

/// Sort direction for `sortOrder`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortOrder {
    /// `ascending` (the default).
    #[default]
    Ascending,
    /// `descending`.
    Descending,
}

/// The parameters of a list or `/.search` request, validated against the resource type.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ListParams {
    /// Parsed and validated filter.
    pub filter: Option<Filter>,
    /// 1-based index of the first result (values below 1 are read as 1, RFC 7644 §3.4.2.4).
    pub start_index: usize,
    /// Page size; `None` means the server's maximum. `Some(0)` asks only for totalResults.
    pub count: Option<usize>,
    /// Attribute to sort by.
    pub sort_by: Option<AttrPath>,
    /// Sort direction.
    pub sort_order: SortOrder,
    /// `attributes`: return only these (plus the always-returned ones).
    pub attributes: Vec<AttrPath>,
    /// `excludedAttributes`: leave these out.
    pub excluded_attributes: Vec<AttrPath>,
}

impl ListParams {
    /// Reads query parameters (names matched ignoring case, as clients vary them) for a
    /// `GET /Users` or `GET /Groups`. `count` is capped at `max_results`.
    /// Fails with `invalidFilter` for a bad filter and `invalidValue` for non-numeric
    /// paging values, unknown sort orders or unknown attribute names.
    pub fn from_query(
        pairs: &[(String, String)],
        ctx: &SchemaContext<'_>,
        max_results: usize,
    ) -> ScimResult<Self> {
        let mut raw = RawParams::default();
        for (k, v) in pairs {
            if let Some(slot) = raw.slot(k) {
                *slot = Some(Value::String(v.clone()));
            }
        }
        raw.build(ctx, max_results)
    }

    /// Reads a `POST /.search` body (RFC 7644 §3.4.3). `attributes` may be a JSON array or a
    /// comma list. Fails with `invalidSyntax` when the body is not a SearchRequest.
    pub fn from_search_body(
        body: &Value,
        ctx: &SchemaContext<'_>,
        max_results: usize,
    ) -> ScimResult<Self> {
        let Some(obj) = body.as_object() else {
            return Err(ScimError::invalid_syntax(
                "the search body must be a JSON object",
            ));
        };
        let mut raw = RawParams::default();
        let mut has_schema = false;
        for (k, v) in obj {
            if k.eq_ignore_ascii_case("schemas") {
                has_schema = v.as_array().is_some_and(|a| {
                    a.iter().any(|s| {
                        s.as_str()
                            .is_some_and(|s| s.eq_ignore_ascii_case(SEARCH_REQUEST_SCHEMA))
                    })
                });
                continue;
            }
            let Some(slot) = raw.slot(k) else {
                return Err(ScimError::invalid_syntax(format!(
                    "unknown SearchRequest member '{k}'"
                )));
            };
            *slot = Some(v.clone());
        }
        if !has_schema {
            return Err(ScimError::invalid_syntax(format!(
                "'schemas' must contain '{SEARCH_REQUEST_SCHEMA}'"
            )));
        }
        raw.build(ctx, max_results)
    }

    /// The page size to use: `count` or the server maximum.
    pub fn page_size(&self, max_results: usize) -> usize {
        self.count.unwrap_or(max_results).min(max_results)
    }
}

#[derive(Default)]
struct RawParams {
    filter: Option<Value>,
    start_index: Option<Value>,
    count: Option<Value>,
    sort_by: Option<Value>,
    sort_order: Option<Value>,
    attributes: Option<Value>,
    excluded: Option<Value>,
}

impl RawParams {
    /// Where parameter `name` (matched ignoring case, as clients vary it) goes; `None` for a
    /// name that is not a list parameter.
    fn slot(&mut self, name: &str) -> Option<&mut Option<Value>> {
        Some(match name.to_ascii_lowercase().as_str() {
            "filter" => &mut self.filter,
            "startindex" => &mut self.start_index,
            "count" => &mut self.count,
            "sortby" => &mut self.sort_by,
            "sortorder" => &mut self.sort_order,
            "attributes" => &mut self.attributes,
            "excludedattributes" => &mut self.excluded,
            _ => return None,
        })
    }

    fn build(self, ctx: &SchemaContext<'_>, max_results: usize) -> ScimResult<ListParams> {
        let filter = match self.filter {
            None => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => {
                let f = parse_filter(&s, Some(ctx.registry))?;
                validate_filter(&f, ctx)?;
                Some(f)
            }
            Some(_) => return Err(ScimError::invalid_filter("'filter' must be a string")),
        };
        let start_index =
            int_param("startIndex", self.start_index)?.map_or(1, |i| i.max(1) as usize);
        let count = int_param("count", self.count)?.map(|c| (c.max(0) as usize).min(max_results));
        let sort_by = match self.sort_by {
            None => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => {
                let p = ctx
                    .parse_path(&s)
                    .map_err(|e| ScimError::invalid_value(e.detail))?;
                if ctx.resolve(&p).is_none() {
                    return Err(ScimError::invalid_value(format!(
                        "cannot sort by unknown attribute '{s}'"
                    )));
                }
                Some(p)
            }
            Some(_) => return Err(ScimError::invalid_value("'sortBy' must be a string")),
        };
        let sort_order = match self.sort_order.as_ref().and_then(Value::as_str) {
            None => SortOrder::Ascending,
            Some(s) if s.eq_ignore_ascii_case("ascending") => SortOrder::Ascending,
            Some(s) if s.eq_ignore_ascii_case("descending") => SortOrder::Descending,
            Some(s) => {
                return Err(ScimError::invalid_value(format!(
                    "sortOrder must be 'ascending' or 'descending', got '{s}'"
                )));
            }
        };
        Ok(ListParams {
            filter,
            start_index,
            count,
            sort_by,
            sort_order,
            attributes: attr_list("attributes", self.attributes, ctx)?,
            excluded_attributes: attr_list("excludedAttributes", self.excluded, ctx)?,
        })
    }
}

fn int_param(name: &str, v: Option<Value>) -> ScimResult<Option<i64>> {
    match v {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| ScimError::invalid_value(format!("'{name}' must be an integer"))),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s.trim().parse::<i64>().map(Some).map_err(|_| {
            ScimError::invalid_value(format!("'{name}' must be an integer, got '{s}'"))
        }),
        Some(_) => Err(ScimError::invalid_value(format!(
            "'{name}' must be an integer"
        ))),
    }
}

/// Parses an `attributes` / `excludedAttributes` list. A bare schema URN stands for every
/// attribute of that schema and is kept as `AttrPath { urn, name: "*" }`.
fn attr_list(name: &str, v: Option<Value>, ctx: &SchemaContext<'_>) -> ScimResult<Vec<AttrPath>> {
    let items: Vec<String> = match v {
        None => return Ok(Vec::new()),
        Some(Value::String(s)) => s.split(',').map(|x| x.trim().to_string()).collect(),
        Some(Value::Array(a)) => a
            .into_iter()
            .map(|x| match x {
                Value::String(s) => Ok(s.trim().to_string()),
                _ => Err(ScimError::invalid_value(format!(
                    "'{name}' must list attribute names"
                ))),
            })
            .collect::<ScimResult<_>>()?,
        Some(_) => {
            return Err(ScimError::invalid_value(format!(
                "'{name}' must list attribute names"
            )));
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items.into_iter().filter(|s| !s.is_empty()) {
        if let Some((urn, "")) = ctx.registry.match_urn(&item) {
            out.push(AttrPath {
                urn: Some(urn.to_string()),
                name: "*".into(),
                sub: None,
            });
            continue;
        }
        let p = ctx
            .parse_path(&item)
            .map_err(|e| ScimError::invalid_value(format!("'{name}': {}", e.detail)))?;
        if ctx.resolve(&p).is_none() {
            return Err(ScimError::invalid_value(format!(
                "'{name}' names unknown attribute '{item}'"
            )));
        }
        out.push(p);
    }
    Ok(out)
}

/// A ListResponse (RFC 7644 §3.4.2) written as its resources are: each resource's body is
/// appended to [`ListBody::item`] by the response path (no `Value` of the page is built and
/// serialised), the counts come last. Members are in key order, as a serialised map has them.
#[derive(Debug)]
pub struct ListBody {
    out: Vec<u8>,
    items: usize,
}

impl Default for ListBody {
    fn default() -> Self {
        let mut out = Vec::with_capacity(1024);
        out.extend_from_slice(b"{\"Resources\":[");
        ListBody { out, items: 0 }
    }
}

impl ListBody {
    /// The buffer to append the page's next resource to.
    pub fn item(&mut self) -> &mut Vec<u8> {
        if self.items > 0 {
            self.out.push(b',');
        }
        self.items += 1;
        &mut self.out
    }

    /// The whole body; `total` counts every match.
    pub fn finish(mut self, total: usize, start_index: usize) -> Vec<u8> {
        let out = &mut self.out;
        out.extend_from_slice(b"],\"itemsPerPage\":");
        out.extend_from_slice(self.items.to_string().as_bytes());
        out.extend_from_slice(b",\"schemas\":[");
        crate::json::write_str(out, LIST_RESPONSE_SCHEMA);
        out.extend_from_slice(b"],\"startIndex\":");
        out.extend_from_slice(start_index.max(1).to_string().as_bytes());
        out.extend_from_slice(b",\"totalResults\":");
        out.extend_from_slice(total.to_string().as_bytes());
        out.push(b'}');
        self.out
    }
}

/// The slice of `items` that startIndex/count select (1-based; clamps at the end).
pub fn page<T>(items: Vec<T>, start_index: usize, count: usize) -> Vec<T> {
    items
        .into_iter()
        .skip(start_index.saturating_sub(1))
        .take(count)
        .collect()
}

/// Sorts resources by `by` (RFC 7644 §3.4.2.3): strings ignoring case unless caseExact,
/// dateTimes as instants, numbers numerically; for multi-valued attributes the primary value
/// (or the first) decides; resources without a value sort last in either order.
pub fn sort_resources(
    items: &mut [Value],
    ctx: &SchemaContext<'_>,
    by: &AttrPath,
    order: SortOrder,
) {
    let resolved = ctx.resolve(by);
    let case_exact = resolved.is_some_and(|r| r.case_exact());
    let attr_type = resolved.map(|r| r.attr_type()).unwrap_or(AttrType::String);
    let key_path = match (resolved.and_then(|r| r.attr), &by.sub) {
        (Some(a), None) if a.attr_type == AttrType::Complex => AttrPath {
            sub: Some("value".into()),
            ..by.clone()
        },
        _ => by.clone(),
    };
    let key = |v: &Value| -> Option<Value> {
        let values = leaf_values(v, ctx, &key_path);
        values.first().map(|x| (*x).clone())
    };
    items.sort_by(|a, b| {
        let (ka, kb) = (key(a), key(b));
        match (ka, kb) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(x), Some(y)) => {
                let o = compare_values(&x, &y, case_exact, attr_type);
                match order {
                    SortOrder::Ascending => o,
                    SortOrder::Descending => o.reverse(),
                }
            }
        }
    });
}

fn compare_values(a: &Value, b: &Value, case_exact: bool, t: AttrType) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::String(x), Value::String(y)) => {
            if t == AttrType::DateTime
                && let (Ok(dx), Ok(dy)) = (
                    chrono::DateTime::parse_from_rfc3339(x),
                    chrono::DateTime::parse_from_rfc3339(y),
                )
            {
                return dx.cmp(&dy);
            }
            if case_exact {
                x.cmp(y)
            } else {
                x.to_lowercase().cmp(&y.to_lowercase())
            }
        }
        _ => a.to_string().cmp(&b.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::ScimType;
    use crate::scim::schema::SchemaRegistry;
    use serde_json::json;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn query_params_parse_and_clamp() {
        let reg = SchemaRegistry::core();
        let ctx = SchemaContext::new(&reg, "User").unwrap();
        let p = ListParams::from_query(
            &q(&[
                (
                    "filter",
                    "userName eq \"Test_User_dfeef4c5-5681-4387-b016-bdf221e82081\"",
                ),
                ("startIndex", "0"),
                ("count", "5000"),
                ("sortBy", "name.familyName"),
                ("sortOrder", "Descending"),
                ("attributes", "userName, emails"),
            ]),
            &ctx,
            200,
        )
        .unwrap();
        assert!(p.filter.is_some());
        assert_eq!(p.start_index, 1);
        assert_eq!(p.count, Some(200));
        assert_eq!(p.sort_order, SortOrder::Descending);
        assert_eq!(p.attributes.len(), 2);
        let p = ListParams::from_query(&q(&[("count", "-3")]), &ctx, 200).unwrap();
        assert_eq!(p.count, Some(0));
        let gctx = SchemaContext::new(&reg, "Group").unwrap();
        let p = ListParams::from_query(
            &q(&[
                ("excludedAttributes", "members"),
                ("filter", "displayName eq \"Group1\""),
            ]),
            &gctx,
            200,
        )
        .unwrap();
        assert_eq!(p.excluded_attributes, vec![AttrPath::new("members")]);
    }

    #[test]
    fn query_param_errors() {
        let reg = SchemaRegistry::core();
        let ctx = SchemaContext::new(&reg, "User").unwrap();
        let e = ListParams::from_query(&q(&[("filter", "userName eq")]), &ctx, 200).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidFilter));
        let e = ListParams::from_query(&q(&[("count", "ten")]), &ctx, 200).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
        let e = ListParams::from_query(&q(&[("sortOrder", "sideways")]), &ctx, 200).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
        let e = ListParams::from_query(&q(&[("attributes", "shoeSize")]), &ctx, 200).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
        let e = ListParams::from_query(&q(&[("filter", "shoeSize eq 1")]), &ctx, 200).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidFilter));
    }

    #[test]
    fn search_body() {
        let reg = SchemaRegistry::core();
        let ctx = SchemaContext::new(&reg, "User").unwrap();
        let p = ListParams::from_search_body(
            &json!({"schemas": [SEARCH_REQUEST_SCHEMA], "filter": "active eq true", "startIndex": 3, "count": 2,
                    "attributes": ["userName"]}),
            &ctx,
            100,
        )
        .unwrap();
        assert_eq!((p.start_index, p.count), (3, Some(2)));
        assert_eq!(p.attributes, vec![AttrPath::new("userName")]);
        assert!(ListParams::from_search_body(&json!({"filter": "x pr"}), &ctx, 10).is_err());
        assert!(
            ListParams::from_search_body(
                &json!({"schemas": [SEARCH_REQUEST_SCHEMA], "bogus": 1}),
                &ctx,
                10
            )
            .is_err()
        );
    }

    #[test]
    fn paging_and_response() {
        let items: Vec<u32> = (1..=10).collect();
        assert_eq!(page(items.clone(), 1, 3), vec![1, 2, 3]);
        assert_eq!(page(items.clone(), 9, 5), vec![9, 10]);
        assert!(page(items.clone(), 11, 5).is_empty());
        assert!(page(items, 1, 0).is_empty());
        let body = |page: &[Value], total, start| {
            let mut list = ListBody::default();
            for r in page {
                crate::json::write_value(list.item(), r);
            }
            String::from_utf8(list.finish(total, start)).unwrap()
        };
        let text = |v: Value| serde_json::to_string(&v).unwrap();
        assert_eq!(
            body(&[], 0, 1),
            text(json!({
                "schemas": [LIST_RESPONSE_SCHEMA],
                "totalResults": 0,
                "itemsPerPage": 0,
                "startIndex": 1,
                "Resources": [],
            }))
        );
        let page = vec![
            json!({"id": "1", "emails": [{"value": "a@b.c"}]}),
            json!({"id": "2"}),
        ];
        assert_eq!(
            body(&page, 7, 0),
            text(json!({
                "schemas": [LIST_RESPONSE_SCHEMA],
                "totalResults": 7,
                "itemsPerPage": 2,
                "startIndex": 1,
                "Resources": page,
            }))
        );
    }

    #[test]
    fn sorting() {
        let reg = SchemaRegistry::core();
        let ctx = SchemaContext::new(&reg, "User").unwrap();
        let mut v = vec![
            json!({"userName": "bob", "emails": [{"value": "z@x"}]}),
            json!({"userName": "Alice", "emails": [{"value": "a@x"}]}),
            json!({"emails": [{"value": "m@x"}]}),
        ];
        sort_resources(
            &mut v,
            &ctx,
            &AttrPath::new("userName"),
            SortOrder::Ascending,
        );
        assert_eq!(v[0]["userName"], "Alice");
        assert!(v[2].get("userName").is_none());
        sort_resources(
            &mut v,
            &ctx,
            &AttrPath::new("userName"),
            SortOrder::Descending,
        );
        assert_eq!(v[0]["userName"], "bob");
        assert!(v[2].get("userName").is_none(), "missing values sort last");
        sort_resources(&mut v, &ctx, &AttrPath::new("emails"), SortOrder::Ascending);
        assert_eq!(v[0]["emails"][0]["value"], "a@x");
    }
}
