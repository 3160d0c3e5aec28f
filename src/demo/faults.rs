//! Authentication, request counters and fault injection, plus the `/__demo/*` control routes.
//!
//! Every request passes [`gate`]: the API key is checked for all routes; `/api/...` requests
//! are then counted and may be answered by the armed fault instead of the handler, so the
//! gateway's error handling can be tested against a misbehaving legacy app.

use super::DemoState;
use super::error::{DemoError, DemoResult};
use super::model::parse_body;
use super::server::ConnectionKill;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

/// Longest delay a `delay` fault may ask for.
const MAX_DELAY_MS: u64 = 60_000;

/// What an armed fault does to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum FaultMode {
    /// No fault: requests are served normally.
    None,
    /// Answer with `status` and a JSON error body (`code` = `fault_injected`).
    Status,
    /// Answer 200 with a body that is not JSON.
    Garbage,
    /// Answer 200 with a JSON record cut off in the middle (starts as a record does, so it
    /// reaches the parser a record's reader uses).
    Truncated,
    /// Wait `delay_ms`, then serve normally.
    Delay,
    /// Close the connection without writing a response.
    Close,
    /// Answer `status` (200 unless given) with the JSON `body` given: a well-formed answer
    /// that is not what the endpoint promises (e.g. a create answer without an id).
    Body,
}

/// The armed fault and how many more requests it applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct FaultPlan {
    mode: FaultMode,
    status: u16,
    delay_ms: u64,
    retry_after: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<serde_json::Value>,
    remaining: u64,
    /// Only requests of this route (`"DELETE /api/v1/users/{id}"`, ids folded as in
    /// `by_route`) are faulted, and only they use up `remaining`; `None`: every request.
    #[serde(skip_serializing_if = "Option::is_none")]
    route: Option<String>,
}

impl Default for FaultPlan {
    fn default() -> Self {
        FaultPlan {
            mode: FaultMode::None,
            status: 503,
            delay_ms: 1000,
            retry_after: None,
            body: None,
            remaining: 0,
            route: None,
        }
    }
}

/// Body of `POST /__demo/faults`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultRequest {
    mode: FaultMode,
    status: Option<u16>,
    delay_ms: Option<u64>,
    retry_after: Option<u64>,
    count: Option<u64>,
    route: Option<String>,
    body: Option<serde_json::Value>,
}

impl FaultPlan {
    fn from_request(req: FaultRequest) -> DemoResult<Self> {
        let defaults = FaultPlan::default();
        let status = req.status.unwrap_or(if req.mode == FaultMode::Body {
            200
        } else {
            defaults.status
        });
        if !(200..=599).contains(&status) {
            return Err(DemoError::validation("`status` must be 200..=599"));
        }
        let delay_ms = req.delay_ms.unwrap_or(defaults.delay_ms);
        if delay_ms > MAX_DELAY_MS {
            return Err(DemoError::validation(format!(
                "`delay_ms` must be at most {MAX_DELAY_MS}"
            )));
        }
        let remaining = match req.mode {
            FaultMode::None => 0,
            _ => req.count.unwrap_or(1),
        };
        if req.mode != FaultMode::None && remaining == 0 {
            return Err(DemoError::validation("`count` must be at least 1"));
        }
        Ok(FaultPlan {
            mode: if remaining == 0 {
                FaultMode::None
            } else {
                req.mode
            },
            status,
            delay_ms,
            retry_after: req.retry_after,
            body: req.body,
            remaining,
            route: req.route,
        })
    }

    /// Consumes one use of the armed fault, if any applies to a request of `route`.
    fn take(&mut self, route: &str) -> Option<FaultPlan> {
        if self.mode == FaultMode::None || self.remaining == 0 {
            return None;
        }
        if self.route.as_deref().is_some_and(|r| r != route) {
            return None;
        }
        let taken = self.clone();
        self.remaining -= 1;
        if self.remaining == 0 {
            self.mode = FaultMode::None;
        }
        Some(taken)
    }
}

/// Request counters read by tests through `GET /__demo/state`.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Counters {
    /// Authenticated `/api/...` requests, including those answered by a fault.
    requests_total: u64,
    /// Requests (any path) rejected for a missing or wrong API key.
    unauthorized_total: u64,
    /// Requests answered (or delayed, or dropped) by an injected fault.
    faults_injected: u64,
    /// `"METHOD /path"` with every all-digit segment replaced by `{id}` → count.
    by_route: BTreeMap<String, u64>,
}

/// `METHOD /path` with numeric path segments replaced by `{id}`, so ids do not split counters.
fn route_key(method: &Method, path: &str) -> String {
    let mut key = String::with_capacity(method.as_str().len() + 1 + path.len());
    key.push_str(method.as_str());
    key.push(' ');
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            key.push('/');
        }
        if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
            key.push_str("{id}");
        } else {
            key.push_str(seg);
        }
    }
    key
}

/// Middleware in front of every route: API key, then (for `/api/...`) counting and faults.
pub(crate) async fn gate(State(state): State<DemoState>, req: Request, next: Next) -> Response {
    if !state.authorized(req.headers()) {
        state.counters().unauthorized_total += 1;
        let e = if state.wants_basic() {
            DemoError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or invalid HTTP Basic credentials (product key and password)",
            )
        } else {
            DemoError::unauthorized()
        };
        let mut resp = e.into_response();
        if state.wants_basic() {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"demo\""),
            );
        }
        return resp;
    }
    if !req.uri().path().starts_with("/api/") {
        return next.run(req).await;
    }
    let key = route_key(req.method(), req.uri().path());
    let fault = {
        let fault = state.faults().take(&key);
        let mut counters = state.counters();
        counters.requests_total += 1;
        *counters.by_route.entry(key).or_insert(0) += 1;
        if fault.is_some() {
            counters.faults_injected += 1;
        }
        fault
    };
    match fault {
        None => next.run(req).await,
        Some(plan) => inject(plan, req, next).await,
    }
}

async fn inject(plan: FaultPlan, req: Request, next: Next) -> Response {
    match plan.mode {
        FaultMode::None => next.run(req).await,
        FaultMode::Delay => {
            tokio::time::sleep(Duration::from_millis(plan.delay_ms)).await;
            next.run(req).await
        }
        FaultMode::Status => status_fault(&plan),
        FaultMode::Body => (
            StatusCode::from_u16(plan.status).unwrap_or(StatusCode::OK),
            axum::Json(plan.body.clone().unwrap_or(serde_json::Value::Null)),
        )
            .into_response(),
        FaultMode::Garbage => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            "<html><body>Temporarily unavailable</body></html> {not json",
        )
            .into_response(),
        FaultMode::Truncated => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"id":1,"username":"cut.off","email":"cut.off@exa"#,
        )
            .into_response(),
        FaultMode::Close => match req.extensions().get::<ConnectionKill>() {
            Some(kill) => {
                kill.fire();
                // The connection task drops this request's future once it sees the signal.
                std::future::pending::<Response>().await
            }
            None => DemoError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "fault_injected",
                "close faults need the DemoApp listener; answered 503 instead",
            )
            .into_response(),
        },
    }
}

fn status_fault(plan: &FaultPlan) -> Response {
    let status = StatusCode::from_u16(plan.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut resp = DemoError::new(
        status,
        "fault_injected",
        format!("injected fault: status {}", status.as_u16()),
    )
    .into_response();
    if let Some(secs) = plan.retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

/// `POST /__demo/faults`: arms (or with `mode: none` clears) the fault; returns the plan.
pub(crate) async fn set_faults(
    State(state): State<DemoState>,
    body: Result<Bytes, BytesRejection>,
) -> DemoResult<Response> {
    let req: FaultRequest = parse_body(body, &[])?;
    let plan = FaultPlan::from_request(req)?;
    *state.faults() = plan.clone();
    Ok(Json(plan).into_response())
}

/// `GET /__demo/state`: counters, the armed fault, and user/team counts.
pub(crate) async fn get_state(State(state): State<DemoState>) -> Response {
    let (users, teams) = {
        let db = state.read();
        (db.user_count(), db.team_count())
    };
    let fault = state.faults().clone();
    let counters = state.counters();
    Json(json!({
        "requests_total": counters.requests_total,
        "unauthorized_total": counters.unauthorized_total,
        "faults_injected": counters.faults_injected,
        "by_route": counters.by_route,
        "fault": fault,
        "users": users,
        "teams": teams,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_keys_fold_ids() {
        assert_eq!(
            route_key(&Method::DELETE, "/api/v1/teams/12/members/7"),
            "DELETE /api/v1/teams/{id}/members/{id}"
        );
        assert_eq!(
            route_key(&Method::GET, "/api/v1/users"),
            "GET /api/v1/users"
        );
        assert_eq!(route_key(&Method::GET, "/api/v1/x2"), "GET /api/v1/x2");
    }

    #[test]
    fn a_plan_runs_out() {
        let mut plan = FaultPlan::from_request(FaultRequest {
            mode: FaultMode::Status,
            status: Some(500),
            delay_ms: None,
            retry_after: None,
            count: Some(2),
            route: None,
            body: None,
        })
        .unwrap();
        assert_eq!(plan.take("GET /x").unwrap().status, 500);
        assert!(plan.take("GET /x").is_some());
        assert!(plan.take("GET /x").is_none());
        assert_eq!(plan.mode, FaultMode::None);
    }

    #[test]
    fn a_routed_plan_waits_for_its_route() {
        let mut plan = FaultPlan::from_request(FaultRequest {
            mode: FaultMode::Status,
            status: Some(503),
            delay_ms: None,
            retry_after: None,
            count: Some(1),
            route: Some("DELETE /api/v1/users/{id}".into()),
            body: None,
        })
        .unwrap();
        assert!(plan.take("GET /api/v1/users/{id}").is_none());
        assert!(plan.take("DELETE /api/v1/users/{id}").is_some());
        assert!(plan.take("DELETE /api/v1/users/{id}").is_none());
    }

    #[test]
    fn plans_are_validated() {
        let req = |status, delay_ms, count| FaultRequest {
            mode: FaultMode::Delay,
            status,
            delay_ms,
            retry_after: None,
            count,
            route: None,
            body: None,
        };
        assert!(FaultPlan::from_request(req(Some(99), None, None)).is_err());
        assert!(FaultPlan::from_request(req(None, Some(MAX_DELAY_MS + 1), None)).is_err());
        assert!(FaultPlan::from_request(req(None, None, Some(0))).is_err());
        assert_eq!(
            FaultPlan::from_request(req(None, None, None))
                .unwrap()
                .remaining,
            1
        );
    }
}
