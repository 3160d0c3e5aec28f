//! SCIM HTTP endpoints: request parsing and response shaping around the pipeline.
//!
//! Handlers stay thin: they turn HTTP into pipeline calls and pipeline results into SCIM
//! responses (status, `Location`, `ETag`, media type). All protocol logic lives in
//! `crate::scim`, all backend work in [`super::pipeline`].

use super::AppState;
use super::error::{AppError, AppResult, scim_body, scim_json};
use crate::scim::ScimError;
use crate::scim::list::ListParams;
use axum::body::{Body, to_bytes};
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// A request body parsed as JSON, with SCIM errors for oversized (413) or malformed (400
/// invalidSyntax) bodies instead of the framework's plain-text rejections.
pub struct ScimBody(pub Value);

impl FromRequest<AppState> for ScimBody {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let limit = state.limits.max_body_bytes;
        if let Some(len) = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
            && len > limit
        {
            return Err(too_large(limit));
        }
        let bytes = to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| too_large(limit))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ScimError::invalid_syntax("the request body is empty").into());
        }
        let value: Value = crate::json::from_slice(&bytes).map_err(|e| {
            ScimError::invalid_syntax(format!(
                "the body is not valid JSON (line {}, column {}): {}",
                e.line(),
                e.column(),
                e
            ))
        })?;
        Ok(ScimBody(value))
    }
}

fn too_large(limit: usize) -> AppError {
    ScimError::payload_too_large(format!("the request body exceeds {limit} bytes")).into()
}

/// `/{endpoint}/{id}`: the path of a single resource, with SCIM errors instead of the
/// framework's plain-text rejections. An id that is not valid UTF-8 once decoded, is empty,
/// is a dot segment (`.`, `..`), or holds `/`, `\` or a control character names no
/// resource: 404 before any legacy call, so it can never reach a legacy path.
pub struct ResourcePath(pub String, pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ResourcePath {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let not_found = || AppError::from(ScimError::not_found("no resource has this id"));
        let Path((endpoint, id)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|_| not_found())?;
        if !valid_id(&id) {
            return Err(not_found());
        }
        Ok(ResourcePath(endpoint, id))
    }
}

/// Whether `id` can name a resource: non-empty, not `.` or `..`, no `/`, `\` or control
/// characters.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id != "."
        && id != ".."
        && !id.chars().any(|c| c == '/' || c == '\\' || c.is_control())
}

/// A path parameter with a SCIM 404 instead of the framework's plain-text rejection (a
/// segment that is not UTF-8 once decoded names nothing here).
pub struct ScimPath<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> axum::extract::FromRequestParts<S>
    for ScimPath<T>
{
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(t)| ScimPath(t))
            .map_err(|_| ScimError::not_found("no such endpoint or resource").into())
    }
}

/// The request's query string as name/value pairs, read as `application/x-www-form-urlencoded`
/// (the pairs axum's `Query<Vec<(String, String)>>` gives: `+` is a space, `%XX` a byte, a
/// `%` without two hex digits itself, bytes that are no UTF-8 replaced, empty pairs skipped),
/// without serde's layers: a filter's query took about 4k instructions that way.
pub struct QueryPairs(Vec<(String, String)>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for QueryPairs {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(QueryPairs(form_pairs(
            parts.uri.query().unwrap_or_default(),
        )))
    }
}

fn form_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (form_decode(name), form_decode(value))
        })
        .collect()
}

/// One name or value of a form: `+` a space, `%XX` the byte it names, all else as it is;
/// the bytes then read as UTF-8, what is none replaced by U+FFFD.
fn form_decode(text: &str) -> String {
    if !text.bytes().any(|b| b == b'+' || b == b'%') {
        return text.to_string();
    }
    let hex = |b: u8| char::from(b).to_digit(16);
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        i += 1;
        match b {
            b'+' => out.push(b' '),
            b'%' => match (
                bytes.get(i).and_then(|&h| hex(h)),
                bytes.get(i + 1).and_then(|&l| hex(l)),
            ) {
                (Some(h), Some(l)) => {
                    // Two hex digits: below 256.
                    out.push(u8::try_from(h * 16 + l).unwrap_or(b'%'));
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            _ => out.push(b),
        }
    }
    match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// The resource type served at `/{endpoint}` (`Users` → `User`), or a SCIM 404.
pub(crate) fn resource_type(state: &AppState, endpoint: &str) -> AppResult<String> {
    state
        .gateway
        .registry()
        .resource_types()
        .iter()
        .find(|rt| {
            rt.endpoint
                .trim_start_matches('/')
                .eq_ignore_ascii_case(endpoint)
        })
        .map(|rt| rt.name.clone())
        .ok_or_else(|| ScimError::not_found(format!("no SCIM endpoint '/{endpoint}'")).into())
}

/// The resource type at `/{endpoint}` and the request's query parameters read as SCIM list
/// parameters (`attributes`, `excludedAttributes`, and for lists `filter`, paging, sorting).
fn typed_query(state: &AppState, endpoint: &str, q: QueryPairs) -> AppResult<(String, ListParams)> {
    let rt = resource_type(state, endpoint)?;
    let gw = &state.gateway;
    let params = ListParams::from_query(&q.0, &gw.ctx(&rt)?, gw.max_results())?;
    Ok((rt, params))
}

/// The request's `If-Match` and `If-None-Match` (RFC 7644 §3.14): the two headers a
/// resource operation reads, copied out of the request rather than the whole header map.
pub struct Preconditions {
    if_match: Option<String>,
    if_none_match: Option<String>,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Preconditions {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let get = |name| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        Ok(Preconditions {
            if_match: get(header::IF_MATCH),
            if_none_match: get(header::IF_NONE_MATCH),
        })
    }
}

fn with_etag(mut resp: Response, etag: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(etag) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

/// `GET /{Users|Groups}`: list with filter, paging, sorting and projection.
pub async fn list(
    State(state): State<AppState>,
    ScimPath(endpoint): ScimPath<String>,
    q: QueryPairs,
) -> AppResult<Response> {
    let (rt, params) = typed_query(&state, &endpoint, q)?;
    let gw = &state.gateway;
    let body = gw.list(&rt, &params).await?;
    Ok(scim_body(StatusCode::OK, body))
}

/// `POST /{Users|Groups}/.search`.
pub async fn search(
    State(state): State<AppState>,
    ScimPath(endpoint): ScimPath<String>,
    ScimBody(body): ScimBody,
) -> AppResult<Response> {
    let rt = resource_type(&state, &endpoint)?;
    let gw = &state.gateway;
    let params = ListParams::from_search_body(&body, &gw.ctx(&rt)?, gw.max_results())?;
    let body = gw.list(&rt, &params).await?;
    Ok(scim_body(StatusCode::OK, body))
}

/// `POST /{Users|Groups}`: create → 201 with `Location` and `ETag`.
pub async fn create(
    State(state): State<AppState>,
    ScimPath(endpoint): ScimPath<String>,
    q: QueryPairs,
    ScimBody(body): ScimBody,
) -> AppResult<Response> {
    let (rt, params) = typed_query(&state, &endpoint, q)?;
    let gw = &state.gateway;
    let out = gw.create(&rt, body, &params).await?;
    let mut resp = with_etag(scim_body(StatusCode::CREATED, out.body), &out.etag);
    if !out.location.is_empty()
        && let Ok(loc) = HeaderValue::from_str(&out.location)
    {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
    Ok(resp)
}

/// `GET /{Users|Groups}/{id}`; honours `If-None-Match` with 304.
pub async fn get_one(
    State(state): State<AppState>,
    ResourcePath(endpoint, id): ResourcePath,
    pre: Preconditions,
    q: QueryPairs,
) -> AppResult<Response> {
    let (rt, params) = typed_query(&state, &endpoint, q)?;
    let gw = &state.gateway;
    let out = gw.get(&rt, &id, &params).await?;
    if let Some(inm) = pre.if_none_match.as_deref()
        && crate::scim::meta::if_none_match(inm, &out.etag)
    {
        return Ok(with_etag(
            StatusCode::NOT_MODIFIED.into_response(),
            &out.etag,
        ));
    }
    Ok(with_etag(scim_body(StatusCode::OK, out.body), &out.etag))
}

/// `PUT /{Users|Groups}/{id}`: full replace; 204 when its deactivation deleted the resource.
pub async fn replace(
    State(state): State<AppState>,
    ResourcePath(endpoint, id): ResourcePath,
    pre: Preconditions,
    q: QueryPairs,
    ScimBody(body): ScimBody,
) -> AppResult<Response> {
    let (rt, params) = typed_query(&state, &endpoint, q)?;
    let gw = &state.gateway;
    match gw
        .replace(&rt, &id, body, pre.if_match.as_deref(), &params)
        .await?
    {
        Some(out) => Ok(with_etag(scim_body(StatusCode::OK, out.body), &out.etag)),
        // The write's deactivation deleted the resource (softdrive, smartfile).
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

/// `PATCH /{Users|Groups}/{id}`: 200 with the resource, or 204 when the group's members
/// were changed without reading the group (so as not to load a large member list).
pub async fn patch(
    State(state): State<AppState>,
    ResourcePath(endpoint, id): ResourcePath,
    pre: Preconditions,
    q: QueryPairs,
    ScimBody(body): ScimBody,
) -> AppResult<Response> {
    let (rt, params) = typed_query(&state, &endpoint, q)?;
    let gw = &state.gateway;
    match gw
        .patch(&rt, &id, body, pre.if_match.as_deref(), &params)
        .await?
    {
        Some(out) => Ok(with_etag(scim_body(StatusCode::OK, out.body), &out.etag)),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

/// `DELETE /{Users|Groups}/{id}` → 204.
pub async fn delete(
    State(state): State<AppState>,
    ResourcePath(endpoint, id): ResourcePath,
    pre: Preconditions,
) -> AppResult<Response> {
    let rt = resource_type(&state, &endpoint)?;
    state
        .gateway
        .delete(&rt, &id, pre.if_match.as_deref())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /ServiceProviderConfig`.
pub async fn service_provider_config(State(state): State<AppState>) -> Response {
    let gw = &state.gateway;
    scim_json(StatusCode::OK, &gw.spc().to_json(&gw.base_url()))
}

/// `GET /Schemas`.
pub async fn schemas(State(state): State<AppState>) -> Response {
    let gw = &state.gateway;
    scim_json(
        StatusCode::OK,
        &gw.registry().schemas_document(&gw.base_url()),
    )
}

/// `GET /Schemas/{urn}`.
pub async fn schema(
    State(state): State<AppState>,
    ScimPath(urn): ScimPath<String>,
) -> AppResult<Response> {
    let gw = &state.gateway;
    let s = gw
        .registry()
        .schema(&urn)
        .filter(|s| gw.registry().is_published(&s.id))
        .ok_or_else(|| ScimError::not_found(format!("no schema '{urn}'")))?;
    Ok(scim_json(StatusCode::OK, &s.to_json(&gw.base_url())))
}

/// `GET /ResourceTypes`.
pub async fn resource_types(State(state): State<AppState>) -> Response {
    let gw = &state.gateway;
    scim_json(
        StatusCode::OK,
        &gw.registry().resource_types_document(&gw.base_url()),
    )
}

/// `GET /ResourceTypes/{name}`.
pub async fn resource_type_doc(
    State(state): State<AppState>,
    ScimPath(name): ScimPath<String>,
) -> AppResult<Response> {
    let gw = &state.gateway;
    let rt = gw
        .registry()
        .resource_type(&name)
        .ok_or_else(|| ScimError::not_found(format!("no resource type '{name}'")))?;
    Ok(scim_json(
        StatusCode::OK,
        &gw.registry().resource_type_document(rt, &gw.base_url()),
    ))
}

/// Any method a discovery or resource endpoint does not support → SCIM 405.
pub async fn method_not_allowed(method: Method) -> AppError {
    ScimError::method_not_allowed(format!("method {method} is not allowed on this endpoint")).into()
}

/// Endpoints RFC 7644 defines that this gateway does not offer (`/Bulk`, `/Me`) → SCIM 501.
pub async fn not_implemented() -> AppError {
    ScimError::not_implemented("this service provider does not support this endpoint").into()
}

/// Every unknown path → SCIM 404.
pub async fn not_found(req: Request<Body>) -> AppError {
    ScimError::not_found(format!("no SCIM endpoint at '{}'", req.uri().path())).into()
}

#[cfg(test)]
mod tests {
    use super::form_pairs;
    use proptest::prelude::*;

    /// The pairs are those axum's `Query<Vec<(String, String)>>` reads (serde_urlencoded).
    fn same(query: &str) {
        let theirs: Vec<(String, String)> =
            serde_urlencoded::from_str(query).expect("serde_urlencoded reads every query");
        assert_eq!(form_pairs(query), theirs, "{query}");
    }

    #[test]
    fn queries_read_as_forms_are_read_so() {
        for q in [
            "",
            "filter=userName%20eq%20%22a%40b.c%22",
            "filter=userName+eq+%22x%22&startIndex=2&count=10",
            "a&&b=&=c&d==e&",
            "%zz=%4&%e9=%C3%A9&%FF%FE=+%2B",
            "attributes=emails%5Btype+eq+%22work%22%5D.value",
            "x=%",
            "x=%4",
            "x=%%41",
        ] {
            same(q);
        }
    }

    proptest! {
        #[test]
        fn any_query_reads_as_serde_urlencoded_reads_it(
            parts in prop::collection::vec(
                prop_oneof![
                    Just("&".to_string()),
                    Just("=".to_string()),
                    Just("+".to_string()),
                    Just("%".to_string()),
                    "%[0-9a-fA-FgG]{0,2}",
                    "[a-zé€\\x00-\\x7f]{0,4}",
                ],
                0..16,
            ),
        ) {
            same(&parts.concat());
        }
    }
}
