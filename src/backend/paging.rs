//! Translating SCIM list windows (1-based `startIndex`, `count`) into the backend's paging.
//!
//! A SCIM window rarely lines up with backend pages, so the window is covered by as few
//! backend calls as possible (one whenever some page size up to `max_size` contains the
//! whole window) and the items outside it are dropped.

use super::client::{Backend, BackendRequest};
use super::endpoint::{ListEndpoint, PagingStyle};
use super::error::BackendError;
use super::jsonpath::as_count;
use serde_json::Value;

/// What a run of page calls produced.
struct Collected {
    items: Vec<Value>,
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
        self.list_in(ep, &[], query, start_index, count).await
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
        let offset = start_index.max(1) - 1;
        if count == 0 {
            // Only the total is wanted: one single-item page when the backend reports a total,
            // otherwise the items have to be counted.
            let got = if ep.total.is_some() {
                self.collect(ep, vars, &query, 0, 1, 1).await?
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
        let got = self.collect(ep, vars, &[], 0, usize::MAX, max).await?;
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

    async fn window(
        &self,
        ep: &ListEndpoint,
        vars: &[(&str, &str)],
        query: &[(String, String)],
        offset: usize,
        count: usize,
    ) -> Result<Collected, BackendError> {
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
    async fn collect(
        &self,
        ep: &ListEndpoint,
        vars: &[(&str, &str)],
        query: &[(String, String)],
        mut start: usize,
        want_end: usize,
        size: usize,
    ) -> Result<Collected, BackendError> {
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
            let resp = self
                .call(BackendRequest {
                    method: ep.method.clone(),
                    path: path.clone(),
                    query: params,
                    body: None,
                    auth: None,
                })
                .await?;
            if call == 0 {
                out.total = read_total(ep, &path, &resp.body)?;
            }
            let page = ep.items.take(resp.body);
            let n = page.len();
            out.items.extend(page);
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

fn read_total(ep: &ListEndpoint, path: &str, body: &Value) -> Result<Option<usize>, BackendError> {
    let Some(expr) = &ep.total else {
        return Ok(None);
    };
    match expr.first(body).and_then(as_count) {
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
