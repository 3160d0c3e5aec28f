//! Translating SCIM list windows (1-based `startIndex`, `count`) into the backend's paging.
//!
//! A SCIM window rarely lines up with backend pages, so the window is covered by as few
//! backend calls as possible (one whenever some page size up to `max_size` contains the
//! whole window) and the items outside it are dropped.

use super::client::{Backend, BackendRequest, parse_body};
use super::endpoint::{ListEndpoint, PagingStyle};
use super::error::BackendError;
use super::jsonpath::as_count;
use hyper::body::Bytes;
use serde_json::Value;

/// What a run of page calls produced.
struct Collected<T> {
    items: Vec<T>,
    /// The total the backend reported on the first page, when the endpoint declares one.
    total: Option<usize>,
    /// Index one past the last backend item, known once a short page showed the end.
    end: Option<usize>,
}

/// The smallest page size in `count..=max_size` whose page holds the whole window
/// `[offset, offset + count)`, else `max_size` (the window then spans several pages).
fn page_size_for(offset: usize, count: usize, max_size: usize) -> usize {
    let last = offset.saturating_add(count.max(1) - 1);
    (count.max(1)..=max_size)
        .find(|p| offset / p == last / p)
        .unwrap_or(max_size)
}

fn paging_params(style: &PagingStyle, start: usize, len: usize) -> Vec<(String, String)> {
    match style {
        PagingStyle::Page { page, size } => vec![
            (page.clone(), (start / len + 1).to_string()),
            (size.clone(), len.to_string()),
        ],
        PagingStyle::Offset { offset, limit } => vec![
            (offset.clone(), start.to_string()),
            (limit.clone(), len.to_string()),
        ],
        PagingStyle::None => Vec::new(),
    }
}

/// One page as read: its items, and the count at the endpoint's `total` where it declares
/// one and the page has a count there.
pub struct Page<T> {
    items: Vec<T>,
    total: Option<usize>,
}

/// What a list's items are read as: `Value`s, or [`ListRecord`]s (for a mapping that reads a
/// record from its text).
pub trait ListItem: Sized + Send {
    /// A page's body as its items and the count at the endpoint's `total` (where it
    /// declares one and the page has a count there); `Err` says the body is not JSON (the
    /// call's `InvalidBody`).
    fn read_page(ep: &ListEndpoint, bytes: Bytes) -> Result<Page<Self>, String>;
}

impl ListItem for Value {
    /// The page parsed into a `Value`, its items taken out of it.
    fn read_page(ep: &ListEndpoint, bytes: Bytes) -> Result<Page<Value>, String> {
        let body = parse_body(&bytes)?;
        let total = ep
            .total
            .as_ref()
            .and_then(|expr| expr.first(&body))
            .and_then(as_count);
        Ok(Page {
            items: ep.items.take(body),
            total,
        })
    }
}

/// A list item as a mapping reads it: its JSON text where the page was found where it
/// lies, else the value the page was read into (written out again, a float could read back
/// one unit in the last place off: serde_json's parser rounds twice).
#[derive(Debug, Clone, PartialEq)]
pub enum ListRecord {
    Text(Bytes),
    Value(Value),
}

impl ListItem for ListRecord {
    /// Where the page is a document the plain reader reads and the endpoint's `items` is
    /// `$.name…[*]` (and its `total`, if any, `$.name…`), each item is its text, a slice of
    /// the page found where it lies (`json::plain::locate`), and nothing is built;
    /// otherwise the page is read as `Value`s are. Either way the items are the values read
    /// as `Value`s, and the errors the same.
    fn read_page(ep: &ListEndpoint, bytes: Bytes) -> Result<Page<ListRecord>, String> {
        if let Some(page) = locate_texts(ep, &bytes) {
            return Ok(page);
        }
        let page = Value::read_page(ep, bytes)?;
        Ok(Page {
            items: page.items.into_iter().map(ListRecord::Value).collect(),
            total: page.total,
        })
    }
}

fn locate_texts(ep: &ListEndpoint, bytes: &Bytes) -> Option<Page<ListRecord>> {
    let items = ep.items.array_at()?;
    let total = match &ep.total {
        Some(expr) => Some(expr.member_at()?),
        None => None,
    };
    let found = crate::json::plain::locate(std::str::from_utf8(bytes).ok()?, items, total)?;
    let total = match found.total {
        Some(at) => as_count(&crate::json::from_slice(bytes.get(at)?).ok()?),
        None => None,
    };
    Some(Page {
        items: found
            .items
            .into_iter()
            .map(|at| ListRecord::Text(bytes.slice(at)))
            .collect(),
        total,
    })
}

impl Backend {
    /// Lists through the endpoint's paging style: the SCIM window (1-based `start_index`,
    /// `count`; 0 asks only for the total) becomes backend pages, at most `max_pages` calls.
    /// `query` carries pushed-down filters. Returns the window's items and the total.
    pub async fn list(
        &self,
        ep: &ListEndpoint,
        query: Vec<(String, String)>,
        start_index: usize,
        count: usize,
    ) -> Result<(Vec<Value>, usize), BackendError> {
        self.list_of(ep, query, start_index, count).await
    }

    /// [`Backend::list`] with the items read as `T` ([`ListRecord`]: each item's JSON text
    /// where it can be found where it lies, for a mapping that reads a record from its
    /// text): the same items, the same total, the same errors.
    pub async fn list_of<T: ListItem>(
        &self,
        ep: &ListEndpoint,
        query: Vec<(String, String)>,
        start_index: usize,
        count: usize,
    ) -> Result<(Vec<T>, usize), BackendError> {
        self.list_read(ep, &[], query, start_index, count).await
    }

    /// [`Backend::list`] for an endpoint whose path has placeholders (e.g. a group's
    /// members at `/teams/{id}/members`), rendered with `vars`.
    pub async fn list_in(
        &self,
        ep: &ListEndpoint,
        vars: &[(&str, &str)],
        query: Vec<(String, String)>,
        start_index: usize,
        count: usize,
    ) -> Result<(Vec<Value>, usize), BackendError> {
        self.list_read(ep, vars, query, start_index, count).await
    }

    async fn list_read<T: ListItem>(
        &self,
        ep: &ListEndpoint,
        vars: &[(&str, &str)],
        query: Vec<(String, String)>,
        start_index: usize,
        count: usize,
    ) -> Result<(Vec<T>, usize), BackendError> {
        let offset = start_index.max(1) - 1;
        if count == 0 {
            // Only the total is wanted: one single-item page when the backend reports a total,
            // otherwise the items have to be counted.
            let got = if ep.total.is_some() {
                self.collect::<T>(ep, vars, &query, 0, 1, 1).await?
            } else {
                let max = ep.paging.max_size;
                self.collect(ep, vars, &query, 0, usize::MAX, max).await?
            };
            let total = got.total.or(got.end).unwrap_or(got.items.len());
            return Ok((Vec::new(), total));
        }
        let got = self.window(ep, vars, &query, offset, count).await?;
        let total = match (got.total, got.end) {
            (Some(t), _) => t,
            (None, Some(end)) => end,
            // The end was not seen: claim one more item so the client asks for the next page.
            (None, None) => offset.saturating_add(got.items.len() + 1),
        };
        Ok((got.items, total))
    }

    /// Fetches every item of a list endpoint (lookups), in pages of `max_size`; fails rather
    /// than returning a partial list when `max_pages` pages did not reach the end.
    pub async fn fetch_all(&self, ep: &ListEndpoint) -> Result<Vec<Value>, BackendError> {
        self.fetch_all_in(ep, &[]).await
    }

    /// [`Backend::fetch_all`] for an endpoint whose path has placeholders.
    pub async fn fetch_all_in(
        &self,
        ep: &ListEndpoint,
        vars: &[(&str, &str)],
    ) -> Result<Vec<Value>, BackendError> {
        let max = ep.paging.max_size;
        let got = self
            .collect::<Value>(ep, vars, &[], 0, usize::MAX, max)
            .await?;
        let complete = got.end.is_some() || got.total.is_some_and(|t| got.items.len() >= t);
        if !complete && ep.paging.style != PagingStyle::None {
            return Err(BackendError::Paging {
                path: ep.path.to_string(),
                message: format!(
                    "still more items after {} pages of {max}; check the paging settings",
                    ep.paging.max_pages
                ),
            });
        }
        Ok(got.items)
    }

    async fn window<T: ListItem>(
        &self,
        ep: &ListEndpoint,
        vars: &[(&str, &str)],
        query: &[(String, String)],
        offset: usize,
        count: usize,
    ) -> Result<Collected<T>, BackendError> {
        let max = ep.paging.max_size;
        match ep.paging.style {
            PagingStyle::Page { .. } => {
                let size = page_size_for(offset, count, max);
                let start = offset / size * size;
                let mut got = self
                    .collect(ep, vars, query, start, offset.saturating_add(count), size)
                    .await?;
                got.items = got
                    .items
                    .into_iter()
                    .skip(offset - start)
                    .take(count)
                    .collect();
                Ok(got)
            }
            PagingStyle::Offset { .. } => {
                self.collect(ep, vars, query, offset, offset.saturating_add(count), max)
                    .await
            }
            PagingStyle::None => {
                let mut got = self.collect(ep, vars, query, 0, usize::MAX, max).await?;
                got.items = got.items.into_iter().skip(offset).take(count).collect();
                Ok(got)
            }
        }
    }

    /// Calls pages starting at item `start` until `want_end` items are covered, a short page
    /// shows the end, the reported total is reached, or `max_pages` calls were made. Page
    /// style keeps `size` fixed (its pages must align); offset style shrinks the last limit.
    async fn collect<T: ListItem>(
        &self,
        ep: &ListEndpoint,
        vars: &[(&str, &str)],
        query: &[(String, String)],
        mut start: usize,
        want_end: usize,
        size: usize,
    ) -> Result<Collected<T>, BackendError> {
        let path = ep
            .path
            .render(vars)
            .map_err(|e| BackendError::Request(e.to_string()))?;
        let mut out = Collected {
            items: Vec::new(),
            total: None,
            end: None,
        };
        for call in 0..ep.paging.max_pages {
            let len = match ep.paging.style {
                PagingStyle::Offset { .. } => size.min(want_end - start),
                _ => size,
            };
            let mut params = ep.fixed_query();
            params.extend_from_slice(query);
            params.extend(paging_params(&ep.paging.style, start, len));
            let page = self
                .call_reading(
                    BackendRequest {
                        method: ep.method.clone(),
                        path: path.clone(),
                        query: params,
                        body: None,
                        auth: None,
                    },
                    &|bytes| T::read_page(ep, bytes),
                )
                .await?
                .body;
            if call == 0 {
                out.total = read_total(ep, &path, page.total)?;
            }
            let n = page.items.len();
            out.items.extend(page.items);
            if ep.paging.style == PagingStyle::None || n < len {
                out.end = Some(start + n);
                break;
            }
            start += n;
            if start >= want_end || out.total.is_some_and(|t| start >= t) {
                break;
            }
        }
        Ok(out)
    }
}

/// The first page's total where the endpoint declares one: its count, or the error that
/// the page has none.
fn read_total(
    ep: &ListEndpoint,
    path: &str,
    count: Option<usize>,
) -> Result<Option<usize>, BackendError> {
    let Some(expr) = &ep.total else {
        return Ok(None);
    };
    match count {
        Some(t) => Ok(Some(t)),
        None => Err(BackendError::Paging {
            path: path.to_string(),
            message: format!("no count at `{expr}` in the response"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_covers_window_in_one_page_when_possible() {
        assert_eq!(page_size_for(0, 100, 200), 100);
        assert_eq!(page_size_for(100, 100, 200), 100);
        // startIndex 6, count 10 → items 5..15: size 10 splits it, size 15 holds it.
        let p = page_size_for(5, 10, 200);
        assert_eq!(5 / p, 14 / p);
        assert_eq!(p, 15);
        // Window wider than any allowed page: fall back to max_size.
        assert_eq!(page_size_for(150, 100, 120), 120);
        assert_eq!(page_size_for(0, 1, 10), 1);
        // Client-supplied extremes must not overflow.
        let p = page_size_for(usize::MAX - 1, 100, 200);
        assert!((100..=200).contains(&p));
    }

    #[test]
    fn paging_parameters_per_style() {
        let page = PagingStyle::Page {
            page: "page".into(),
            size: "per_page".into(),
        };
        assert_eq!(
            paging_params(&page, 30, 15),
            vec![
                ("page".into(), "3".into()),
                ("per_page".into(), "15".into())
            ]
        );
        let off = PagingStyle::Offset {
            offset: "skip".into(),
            limit: "take".into(),
        };
        assert_eq!(
            paging_params(&off, 7, 3),
            vec![("skip".into(), "7".into()), ("take".into(), "3".into())]
        );
        assert!(paging_params(&PagingStyle::None, 0, 1).is_empty());
    }
}

/// A page read as each item's text gives what it gives read as `Value`s.
#[cfg(test)]
mod read_as_text {
    use super::*;
    use proptest::prelude::*;

    /// A JSON document as text, members possibly given twice, keys possibly escaped.
    #[derive(Debug, Clone)]
    enum Node {
        Leaf(&'static str),
        Array(Vec<Node>),
        Object(Vec<(&'static str, Node)>),
    }

    impl Node {
        fn write(&self, out: &mut String, spaced: bool) {
            let sep = if spaced { ", " } else { "," };
            match self {
                Node::Leaf(t) => out.push_str(t),
                Node::Array(items) => {
                    out.push('[');
                    for (i, item) in items.iter().enumerate() {
                        if i > 0 {
                            out.push_str(sep);
                        }
                        item.write(out, spaced);
                    }
                    out.push(']');
                }
                Node::Object(members) => {
                    out.push('{');
                    for (i, (k, v)) in members.iter().enumerate() {
                        if i > 0 {
                            out.push_str(sep);
                        }
                        out.push_str(&format!("\"{k}\":"));
                        if spaced {
                            out.push(' ');
                        }
                        v.write(out, spaced);
                    }
                    out.push('}');
                }
            }
        }
    }

    fn node() -> impl Strategy<Value = Node> {
        let leaf = prop::sample::select(vec![
            "1",
            "-3",
            "95.775007933935228",
            "0.99622830388368595",
            "0",
            "\"x\"",
            "\"a\\\"b\"",
            "\"\\u00e9\"",
            "1.5",
            "null",
            "true",
            "\"7\"",
            "\" 12 \"",
            "12345678901234567890",
            "-0",
            "{}",
            "[]",
        ])
        .prop_map(Node::Leaf);
        let key = prop::sample::select(vec![
            "data",
            "total",
            "meta",
            "users",
            "result",
            "a",
            "d\\u0061ta",
            "",
        ]);
        leaf.prop_recursive(4, 40, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Node::Array),
                prop::collection::vec((key.clone(), inner), 0..6).prop_map(Node::Object),
            ]
        })
    }

    /// A page of the usual shape: items under `data`, a `total`, other members, in any
    /// order.
    fn page() -> impl Strategy<Value = Node> {
        (
            prop::collection::vec(node(), 0..4),
            node(),
            prop::collection::vec(
                (
                    prop::sample::select(vec!["meta", "a", "users", "x"]),
                    node(),
                ),
                0..3,
            ),
        )
            .prop_flat_map(|(items, total, mut members)| {
                members.push(("data", Node::Array(items)));
                members.push(("total", total));
                Just(members).prop_shuffle().prop_map(Node::Object)
            })
    }

    fn endpoint(items: &str, total: Option<&str>) -> ListEndpoint {
        let total = total.map_or(String::new(), |t| format!("total = '{t}'\n"));
        toml::from_str(&format!("path = '/users'\nitems = '{items}'\n{total}"))
            .expect("a list endpoint")
    }

    const ITEMS: [&str; 5] = [
        "$.data[*]",
        "$[*]",
        "$.result.users[*]",
        "$.meta.data[*]",
        "$..data[*]",
    ];
    const TOTALS: [Option<&str>; 5] = [
        None,
        Some("$.total"),
        Some("$.meta.total"),
        Some("$.data.total"),
        Some("$..total"),
    ];

    fn as_value(r: &ListRecord) -> Value {
        match r {
            ListRecord::Text(b) => crate::json::from_slice(b).expect("an item is JSON"),
            ListRecord::Value(v) => v.clone(),
        }
    }

    /// Both readers on `text` for every endpoint shape: the same items, totals and errors;
    /// returns whether the page was found where it lies (nothing written again) for
    /// `$.data[*]` with `$.total`.
    fn same_page(text: &str) -> bool {
        let bytes = Bytes::copy_from_slice(text.as_bytes());
        for items in ITEMS {
            for total in TOTALS {
                let ep = endpoint(items, total);
                let values = Value::read_page(&ep, bytes.clone());
                let texts = ListRecord::read_page(&ep, bytes.clone());
                match (values, texts) {
                    (Ok(v), Ok(t)) => {
                        let read: Vec<Value> = t.items.iter().map(as_value).collect();
                        assert_eq!(read, v.items, "{items} of {text}");
                        assert_eq!(t.total, v.total, "{total:?} of {text}");
                    }
                    (Err(v), Err(t)) => assert_eq!(t, v, "{text}"),
                    (v, t) => panic!(
                        "{items} {total:?} of {text}: values {:?}, texts {:?}",
                        v.map(|p| p.items),
                        t.map(|p| p.items.len())
                    ),
                }
            }
        }
        locate_texts(&endpoint(ITEMS[0], TOTALS[1]), &bytes).is_some()
    }

    #[test]
    fn pages_of_the_usual_shapes_are_found_where_they_lie() {
        for text in [
            r#"{"data":[{"id":1,"userName":"a"},{"id":2}],"total":2}"#,
            r#" { "total" : "7" , "data" : [ 1 , "x" , null , [ ] , { } ] } "#,
            r#"{"data":[],"total":0,"meta":{"total":9,"data":[1]}}"#,
            // No total where one is declared: none either way (the list then says so).
            r#"{"data":[1]}"#,
        ] {
            assert!(same_page(text), "{text}");
        }
        // Left to the reader of `Value`s: a member on the way given twice, an escape, the
        // items not an array, no total where one is declared, text that is no JSON.
        for text in [
            r#"{"data":[1],"data":[2],"total":1}"#,
            r#"{"data":[1],"total":1,"total":2}"#,
            r#"{"d\u0061ta":[1],"total":1}"#,
            r#"{"data":["\"q\""],"total":1}"#,
            r#"{"data":{"a":1},"total":1}"#,
            r#"{"data":[1],"total":1"#,
            "",
            "  ",
            "[1,2]",
        ] {
            assert!(!same_page(text), "{text}");
        }
        // A duplicate off the way does not matter (the last is the value either way).
        assert!(same_page(
            r#"{"a":1,"a":2,"data":[{"k":1,"k":2}],"total":1}"#
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn a_page_read_as_text_is_the_page_read_as_values(doc in node(), spaced: bool) {
            let mut text = String::new();
            doc.write(&mut text, spaced);
            same_page(&text);
        }

        #[test]
        fn a_usual_page_read_as_text_is_the_page_read_as_values(doc in page(), spaced: bool) {
            let mut text = String::new();
            doc.write(&mut text, spaced);
            same_page(&text);
        }
    }
}
