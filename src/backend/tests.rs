//! The client against real HTTP listeners on loopback (small axum apps standing in for the
//! legacy app): auth injection, encoding, paging math, and every failure class.

use super::*;
use crate::config::{BackendAuth, BackendConfig, PassthroughScheme, Secret};
use crate::scim::ScimType;
use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::{any, get};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

fn backend(base: &str, auth: BackendAuth) -> Backend {
    let mut cfg = BackendConfig::new(base);
    cfg.auth = auth;
    cfg.timeout_ms = 2_000;
    cfg.connect_timeout_ms = 500;
    Backend::new(&cfg).unwrap()
}

/// Echoes what the legacy app received: method, raw path and query, selected headers, body.
async fn echo(method: http::Method, uri: Uri, headers: HeaderMap, body: String) -> Json<Value> {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    Json(json!({
        "method": method.as_str(),
        "path": uri.path(),
        "query": uri.query(),
        "authorization": h("authorization"),
        "x_api_key": h("x-api-key"),
        "accept": h("accept"),
        "content_type": h("content-type"),
        "user_agent": h("user-agent"),
        "body": body,
    }))
}

fn echo_app() -> Router {
    Router::new().fallback(any(echo))
}

fn get_req(path: &str) -> BackendRequest {
    BackendRequest::new(http::Method::GET, path)
}

#[tokio::test]
async fn success_returns_status_body_and_elapsed() {
    let base = serve(echo_app()).await;
    let b = backend(&base, BackendAuth::None);
    let r = b.call(get_req("/api/v1/users/42")).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body["method"], "GET");
    assert_eq!(r.body["path"], "/api/v1/users/42");
    assert_eq!(r.body["accept"], "application/json");
    assert!(
        r.body["user_agent"]
            .as_str()
            .unwrap()
            .starts_with("scimgate/")
    );
    assert_eq!(r.body["authorization"], Value::Null);
    assert!(r.elapsed > Duration::ZERO);
}

#[tokio::test]
async fn json_body_is_sent_with_content_type() {
    let base = serve(echo_app()).await;
    let b = backend(&base, BackendAuth::None);
    let mut req = BackendRequest::new(http::Method::POST, "/api/v1/users");
    req.body = Some(json!({"email": "ana@example.com", "active": true}));
    let r = b.call(req).await.unwrap();
    assert_eq!(r.body["method"], "POST");
    assert_eq!(r.body["content_type"], "application/json");
    let sent: Value = serde_json::from_str(r.body["body"].as_str().unwrap()).unwrap();
    assert_eq!(sent, json!({"email": "ana@example.com", "active": true}));
}

#[tokio::test]
async fn auth_is_injected_per_mode_and_overridden_per_call() {
    let base = serve(echo_app()).await;
    let call = |auth: BackendAuth, caller: Option<CallerAuth>| {
        let b = backend(&base, auth);
        async move {
            let mut req = get_req("/x");
            req.auth = caller;
            b.call(req).await.unwrap().body
        }
    };
    let r = call(
        BackendAuth::Header {
            name: "X-Api-Key".into(),
            value: Secret::new("demo-legacy-key"),
        },
        None,
    )
    .await;
    assert_eq!(r["x_api_key"], "demo-legacy-key");
    assert_eq!(r["authorization"], Value::Null);

    let r = call(
        BackendAuth::Bearer {
            token: Secret::new("tok"),
        },
        None,
    )
    .await;
    assert_eq!(r["authorization"], "Bearer tok");

    let r = call(
        BackendAuth::Basic {
            username: "svc".into(),
            password: Secret::new("p@ss:word"),
        },
        None,
    )
    .await;
    // base64("svc:p@ss:word")
    assert_eq!(r["authorization"], "Basic c3ZjOnBAc3M6d29yZA==");

    let passthrough = || BackendAuth::Passthrough {
        scheme: PassthroughScheme::AsIs,
    };
    let r = call(passthrough(), None).await;
    assert_eq!(r["authorization"], Value::Null);
    let caller = CallerAuth::authorization(http::HeaderValue::from_static("Bearer caller"));
    let r = call(passthrough(), Some(caller.clone())).await;
    assert_eq!(r["authorization"], "Bearer caller");
    // The SCIM request's credential, in scope for the task, reaches a pass-through backend
    // only; a backend with its own credential ignores it.
    let r = with_caller(caller.clone(), call(passthrough(), None)).await;
    assert_eq!(r["authorization"], "Bearer caller");
    let r = with_caller(
        caller.clone(),
        call(
            BackendAuth::Bearer {
                token: Secret::new("own"),
            },
            None,
        ),
    )
    .await;
    assert_eq!(r["authorization"], "Bearer own");

    // A per-call credential replaces the configured one rather than adding to it.
    let r = call(
        BackendAuth::Header {
            name: "X-Api-Key".into(),
            value: Secret::new("configured"),
        },
        Some(caller),
    )
    .await;
    assert_eq!(
        (r["authorization"].as_str(), r["x_api_key"].as_str()),
        (Some("Bearer caller"), None)
    );
    assert!(
        !format!(
            "{:?}",
            CallerAuth::authorization(http::HeaderValue::from_static("Bearer s"))
        )
        .contains("Bearer s")
    );
}

#[tokio::test]
async fn path_and_query_values_are_percent_encoded() {
    let base = serve(echo_app()).await;
    let b = backend(&format!("{base}/"), BackendAuth::None);
    let ep: Endpoint =
        toml::from_str("method = 'GET'\npath = '/api/v1/users/{id}'\nquery = { fields = 'a,b' }")
            .unwrap();
    let mut req = ep.request(&[("id", "a/b c?#%")], None).unwrap();
    req.query.push(("email".into(), "ana+x@example.com".into()));
    req.query.push(("name".into(), "Åsa & Co=1".into()));
    let r = b.call(req).await.unwrap();
    assert_eq!(r.body["path"], "/api/v1/users/a%2Fb%20c%3F%23%25");
    assert_eq!(
        r.body["query"],
        "fields=a%2Cb&email=ana%2Bx%40example.com&name=%C3%85sa%20%26%20Co%3D1"
    );
}

#[tokio::test]
async fn query_parameters_decode_to_the_original_values() {
    let app = Router::new().route(
        "/q",
        get(|Query(q): Query<HashMap<String, String>>| async move { Json(json!(q)) }),
    );
    let base = serve(app).await;
    let b = backend(&base, BackendAuth::None);
    let mut req = get_req("/q");
    req.query = vec![
        ("email".into(), "ana+x@example.com".into()),
        ("external_id".into(), "a&b=c d".into()),
    ];
    let r = b.call(req).await.unwrap();
    assert_eq!(
        r.body,
        json!({"email": "ana+x@example.com", "external_id": "a&b=c d"})
    );
}

#[tokio::test]
async fn connection_refused_is_connect_error_and_503() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let base = format!("http://{addr}");
    let b = backend(&base, BackendAuth::None);
    let err = b.call(get_req("/x")).await.unwrap_err();
    assert!(
        matches!(&err, BackendError::Connect { backend, .. } if backend == &base),
        "{err:?}"
    );
    let scim = err.to_scim();
    assert_eq!(scim.status, 503);
    assert!(scim.detail.contains(&base));
    // Not retried for a POST, and still a connect error.
    let err = b
        .call(BackendRequest::new(http::Method::POST, "/x"))
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::Connect { .. }));
}

#[tokio::test]
async fn slow_backend_times_out_as_504() {
    let app = Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            "late"
        }),
    );
    let base = serve(app).await;
    let mut cfg = BackendConfig::new(&base);
    cfg.timeout_ms = 200;
    let b = Backend::new(&cfg).unwrap();
    let started = Instant::now();
    let err = b.call(get_req("/slow")).await.unwrap_err();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert_eq!(
        err,
        BackendError::Timeout {
            backend: base,
            after: Duration::from_millis(200)
        }
    );
    assert_eq!(err.to_scim().status, 504);
}

fn status_app() -> Router {
    Router::new()
        .route(
            "/boom",
            get(|| async {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Traceback: db password=x",
                )
            }),
        )
        .route("/html", get(|| async { "<html>maintenance</html>" }))
        .route(
            "/conflict",
            get(|| async {
                (
                    StatusCode::CONFLICT,
                    Json(json!({"error": {"code": "conflict", "message": "email already exists"}})),
                )
            }),
        )
        .route(
            "/invalid",
            get(|| async {
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Json(json!({"error": {"code": "invalid", "message": "unknown office"}})),
                )
            }),
        )
        .route("/missing", get(|| async { StatusCode::NOT_FOUND }))
        .route("/denied", get(|| async { StatusCode::UNAUTHORIZED }))
        .route("/empty", get(|| async { StatusCode::NO_CONTENT }))
}

#[tokio::test]
async fn failures_are_classified_and_never_2xx() {
    let base = serve(status_app()).await;
    let b = backend(&base, BackendAuth::None);
    let err = b.call(get_req("/boom")).await.unwrap_err();
    assert!(
        matches!(err, BackendError::Status { status: 500, .. }),
        "{err:?}"
    );
    let scim = err.to_scim();
    assert_eq!(scim.status, 502);
    assert!(scim.detail.contains("500") && !scim.detail.contains("password"));

    let err = b.call(get_req("/html")).await.unwrap_err();
    assert!(
        matches!(err, BackendError::InvalidBody { status: 200, .. }),
        "{err:?}"
    );
    assert_eq!(err.to_scim().status, 502);

    let err = b.call(get_req("/conflict")).await.unwrap_err();
    assert_eq!(
        err,
        BackendError::Status {
            status: 409,
            message: "email already exists".into(),
            retry_after: None,
        }
    );
    let scim = err.to_scim();
    assert_eq!(
        (scim.status, scim.scim_type, scim.detail.as_str()),
        (409, Some(ScimType::Uniqueness), "email already exists")
    );

    let scim = b.call(get_req("/invalid")).await.unwrap_err().to_scim();
    assert_eq!(
        (scim.status, scim.scim_type, scim.detail.as_str()),
        (400, Some(ScimType::InvalidValue), "unknown office")
    );
    assert_eq!(
        b.call(get_req("/missing"))
            .await
            .unwrap_err()
            .to_scim()
            .status,
        404
    );
    let scim = b.call(get_req("/denied")).await.unwrap_err().to_scim();
    assert_eq!(scim.status, 502);
    assert!(scim.detail.contains("credentials"));

    let r = b.call(get_req("/empty")).await.unwrap();
    assert_eq!((r.status, r.body), (204, Value::Null));
}

/// A legacy list endpoint over `n` users that pages as `style` says and records each query.
#[derive(Clone)]
struct Users {
    n: usize,
    style: &'static str,
    with_total: bool,
    calls: Arc<Mutex<Vec<String>>>,
}

async fn list_users(
    State(s): State<Users>,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    s.calls
        .lock()
        .unwrap()
        .push(uri.query().unwrap_or("").to_string());
    let num = |k: &str| q.get(k).and_then(|v| v.parse::<usize>().ok());
    let (from, len) = match s.style {
        "page" => {
            let size = num("per_page").unwrap_or(10);
            ((num("page").unwrap_or(1) - 1) * size, size)
        }
        "offset" => (num("offset").unwrap_or(0), num("limit").unwrap_or(10)),
        // Ignores paging parameters: always the first 5 items (a misconfigured backend).
        "stuck" => (0, 5),
        _ => (0, s.n),
    };
    let data: Vec<Value> = (from..from.saturating_add(len).min(s.n))
        .map(|i| json!({"id": i + 1}))
        .collect();
    let mut body = json!({ "data": data });
    if s.with_total {
        body["total"] = json!(s.n);
    }
    Json(body)
}

async fn users_backend(
    n: usize,
    style: &'static str,
    with_total: bool,
) -> (Backend, Arc<Mutex<Vec<String>>>) {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let state = Users {
        n,
        style,
        with_total,
        calls: calls.clone(),
    };
    let app = Router::new()
        .route("/users", get(list_users))
        .route("/teams/{id}/members", get(list_users))
        .with_state(state);
    let base = serve(app).await;
    (backend(&base, BackendAuth::None), calls)
}

fn list_ep(paging: &str, total: bool) -> ListEndpoint {
    let total = if total { "total = '$.total'\n" } else { "" };
    toml::from_str(&format!(
        "path = '/users'\nitems = '$.data[*]'\n{total}paging = {paging}"
    ))
    .unwrap()
}

fn ids(items: &[Value]) -> Vec<u64> {
    items.iter().map(|v| v["id"].as_u64().unwrap()).collect()
}

fn take(calls: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
    std::mem::take(&mut *calls.lock().unwrap())
}

#[tokio::test]
async fn page_style_maps_scim_windows_onto_pages() {
    let (b, calls) = users_backend(23, "page", true).await;
    let ep = list_ep("{ style = 'page', max_size = 200 }", true);

    let (items, total) = b.list(&ep, vec![], 1, 10).await.unwrap();
    assert_eq!((ids(&items), total), ((1..=10).collect(), 23));
    assert_eq!(take(&calls), ["page=1&per_page=10"]);

    // startIndex not aligned to the count: one larger page still holds the window.
    let (items, total) = b.list(&ep, vec![], 6, 10).await.unwrap();
    assert_eq!((ids(&items), total), ((6..=15).collect(), 23));
    assert_eq!(take(&calls), ["page=1&per_page=15"]);

    // The last, partial page.
    let (items, total) = b.list(&ep, vec![], 21, 10).await.unwrap();
    assert_eq!((ids(&items), total), ((21..=23).collect(), 23));
    assert_eq!(take(&calls).len(), 1);

    // count=0 asks for the total only.
    let (items, total) = b.list(&ep, vec![], 1, 0).await.unwrap();
    assert_eq!((items.len(), total), (0, 23));
    assert_eq!(take(&calls), ["page=1&per_page=1"]);

    // Beyond the end.
    let (items, total) = b.list(&ep, vec![], 40, 10).await.unwrap();
    assert_eq!((items.len(), total), (0, 23));

    // Filters are passed through next to the paging parameters.
    b.list(&ep, vec![("email".into(), "a@b.c".into())], 1, 5)
        .await
        .unwrap();
    assert_eq!(
        take(&calls).last().unwrap(),
        "email=a%40b.c&page=1&per_page=5"
    );
}

#[tokio::test]
async fn page_style_spans_several_pages_when_the_window_exceeds_max_size() {
    let (b, calls) = users_backend(23, "page", true).await;
    let ep = list_ep("{ style = 'page', max_size = 4 }", true);
    let (items, total) = b.list(&ep, vec![], 3, 9).await.unwrap();
    assert_eq!((ids(&items), total), ((3..=11).collect(), 23));
    assert_eq!(
        take(&calls),
        [
            "page=1&per_page=4",
            "page=2&per_page=4",
            "page=3&per_page=4"
        ]
    );
}

#[tokio::test]
async fn offset_style_and_inferred_totals() {
    let (b, calls) = users_backend(23, "offset", false).await;
    let ep = list_ep("{ style = 'offset', max_size = 10 }", false);
    // No total in the response: a window that ends before the data does claims one more.
    let (items, total) = b.list(&ep, vec![], 5, 4).await.unwrap();
    assert_eq!((ids(&items), total), ((5..=8).collect(), 9));
    assert_eq!(take(&calls), ["offset=4&limit=4"]);
    // Across two calls to the end: the short page gives the exact total.
    let (items, total) = b.list(&ep, vec![], 11, 20).await.unwrap();
    assert_eq!((ids(&items), total), ((11..=23).collect(), 23));
    assert_eq!(take(&calls), ["offset=10&limit=10", "offset=20&limit=10"]);
    // count=0 without a declared total counts every item.
    let (items, total) = b.list(&ep, vec![], 1, 0).await.unwrap();
    assert_eq!((items.len(), total), (0, 23));
}

#[tokio::test]
async fn none_style_slices_one_response() {
    let (b, calls) = users_backend(7, "none", true).await;
    let ep = list_ep("{ style = 'none' }", true);
    let (items, total) = b.list(&ep, vec![], 3, 2).await.unwrap();
    assert_eq!((ids(&items), total), (vec![3, 4], 7));
    assert_eq!(take(&calls), [""]);
    let (items, total) = b.list(&ep, vec![], 10, 2).await.unwrap();
    assert_eq!((items.len(), total), (0, 7));
}

#[tokio::test]
async fn fetch_all_pages_to_the_end_and_refuses_endless_paging() {
    let (b, calls) = users_backend(12, "page", false).await;
    let ep = list_ep("{ style = 'page', max_size = 5 }", false);
    let items = b.fetch_all(&ep).await.unwrap();
    assert_eq!(ids(&items), (1..=12).collect::<Vec<_>>());
    assert_eq!(take(&calls).len(), 3);

    let members: ListEndpoint = toml::from_str(
        "path = '/teams/{id}/members'\nitems = '$.data[*]'\npaging = { style = 'page', max_size = 5 }",
    )
    .unwrap();
    let items = b.fetch_all_in(&members, &[("id", "t 1")]).await.unwrap();
    assert_eq!(items.len(), 12);
    let (items, total) = b
        .list_in(&members, &[("id", "t1")], vec![], 1, 2)
        .await
        .unwrap();
    assert_eq!((ids(&items), total), (vec![1, 2], 3));

    let (b, _) = users_backend(100, "stuck", false).await;
    let ep = list_ep("{ style = 'page', max_size = 5, max_pages = 4 }", false);
    let err = b.fetch_all(&ep).await.unwrap_err();
    assert!(matches!(err, BackendError::Paging { .. }), "{err:?}");
    assert_eq!(err.to_scim().status, 502);
}

#[tokio::test]
async fn missing_total_is_a_paging_error() {
    let (b, _) = users_backend(3, "page", false).await;
    let ep = list_ep("{ style = 'page' }", true);
    let err = b.list(&ep, vec![], 1, 10).await.unwrap_err();
    assert!(
        matches!(&err, BackendError::Paging { message, .. } if message.contains("$.total")),
        "{err:?}"
    );
}

/// The same windows read with each item as its text: the same items, totals, calls and
/// errors as read as `Value`s.
#[tokio::test]
async fn lists_read_as_text_are_the_lists_read_as_values() {
    let windows = [
        (1, 10),
        (6, 10),
        (21, 10),
        (1, 0),
        (40, 10),
        (3, 9),
        (5, 4),
        (11, 20),
    ];
    for (style, paging, with_total, declares_total) in [
        ("page", "{ style = 'page', max_size = 200 }", true, true),
        ("page", "{ style = 'page', max_size = 7 }", true, true),
        ("offset", "{ style = 'offset', max_size = 6 }", false, false),
        ("none", "{ style = 'none' }", true, true),
        ("page", "{ style = 'page', max_size = 5 }", false, false),
        ("page", "{ style = 'page' }", false, true),
        (
            "stuck",
            "{ style = 'page', max_size = 5, max_pages = 4 }",
            false,
            false,
        ),
    ] {
        let (b, calls) = users_backend(23, style, with_total).await;
        let ep = list_ep(paging, declares_total);
        for (start, count) in windows {
            let values = b.list(&ep, vec![], start, count).await;
            let value_calls = take(&calls);
            let texts = b
                .list_of::<crate::backend::ListRecord>(&ep, vec![], start, count)
                .await;
            let text_calls = take(&calls);
            let what = format!("{style} {paging} {start}+{count}");
            assert_eq!(text_calls, value_calls, "{what}");
            match (values, texts) {
                (Ok((values, total)), Ok((texts, text_total))) => {
                    let read: Vec<Value> = texts
                        .iter()
                        .map(|t| match t {
                            crate::backend::ListRecord::Text(t) => {
                                serde_json::from_slice(t).unwrap()
                            }
                            crate::backend::ListRecord::Value(v) => v.clone(),
                        })
                        .collect();
                    assert_eq!((read, text_total), (values, total), "{what}");
                }
                (Err(v), Err(t)) => assert_eq!(t.to_string(), v.to_string(), "{what}"),
                (v, t) => panic!("{what}: {v:?} against {:?}", t.map(|(i, n)| (i.len(), n))),
            }
        }
    }
}

#[tokio::test]
async fn members_add_body_template_renders_member_ids() {
    let base = serve(echo_app()).await;
    let b = backend(&base, BackendAuth::None);
    let ep: Endpoint = toml::from_str(
        "method = 'POST'\npath = '/api/v1/teams/{id}/members'\nbody = { user_ids = '{members}' }",
    )
    .unwrap();
    let body = ep
        .body
        .as_ref()
        .unwrap()
        .render(&[("members", json!(["u1", "u2"]))])
        .unwrap();
    let r = b
        .call(ep.request(&[("id", "t9")], Some(body)).unwrap())
        .await
        .unwrap();
    assert_eq!(r.body["path"], "/api/v1/teams/t9/members");
    let sent: Value = serde_json::from_str(r.body["body"].as_str().unwrap()).unwrap();
    assert_eq!(sent, json!({"user_ids": ["u1", "u2"]}));
}

#[test]
fn bad_configuration_is_refused_at_construction() {
    assert!(matches!(
        Backend::new(&BackendConfig::new("localhost:8081")),
        Err(BackendInitError::BaseUrl(_))
    ));
    let mut cfg = BackendConfig::new("http://h");
    cfg.auth = BackendAuth::Header {
        name: "Bad Header".into(),
        value: Secret::new("v"),
    };
    assert!(matches!(Backend::new(&cfg), Err(BackendInitError::Auth(_))));
    cfg.auth = BackendAuth::Bearer {
        token: Secret::new("line\nbreak"),
    };
    assert!(matches!(Backend::new(&cfg), Err(BackendInitError::Auth(_))));
    // A credential cannot be a header that frames the request or governs its connection:
    // the request would carry two framings.
    for name in [
        "Content-Length",
        "transfer-encoding",
        "Connection",
        "TE",
        "Upgrade",
        "Keep-Alive",
        "Trailer",
    ] {
        cfg.auth = BackendAuth::Header {
            name: name.into(),
            value: Secret::new("1"),
        };
        assert!(
            matches!(Backend::new(&cfg), Err(BackendInitError::Auth(_))),
            "{name}"
        );
    }
}

#[tokio::test]
async fn extreme_windows_do_not_overflow() {
    let (b, _) = users_backend(3, "offset", true).await;
    let ep = list_ep("{ style = 'offset', max_size = 10, max_pages = 2 }", true);
    let (items, total) = b.list(&ep, vec![], usize::MAX, usize::MAX).await.unwrap();
    assert_eq!((items.len(), total), (0, 3));
    let (b, _) = users_backend(3, "page", true).await;
    let ep = list_ep("{ style = 'page', max_size = 10, max_pages = 2 }", true);
    let (items, total) = b.list(&ep, vec![], usize::MAX, 5).await.unwrap();
    assert_eq!((items.len(), total), (0, 3));
}

/// Request handlers run on a multi-threaded runtime, so the client, the configuration and
/// the futures of `call`/`list` must be `Send`.
#[test]
fn client_and_futures_are_send() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<F: std::future::Future + Send>(_: F) {}
    let b = Backend::new(&BackendConfig::new("http://127.0.0.1:1")).unwrap();
    send_sync(&b);
    let ep = list_ep("{ style = 'page' }", true);
    send_sync(&ep);
    send(b.call(get_req("/x")));
    send(b.list(&ep, vec![], 1, 10));
    send(b.list_of::<crate::backend::ListRecord>(&ep, vec![], 1, 10));
    send(b.fetch_all(&ep));
}

#[tokio::test]
async fn reachability_is_a_tcp_connect_and_calls_are_counted() {
    let base = serve(echo_app()).await;
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let mut cfg = BackendConfig::new(&base);
    cfg.connect_timeout_ms = 500;
    let b = Backend::instrumented(&cfg, metrics.clone()).unwrap();
    b.reachable(Duration::from_secs(1)).await.unwrap();
    b.call(get_req("/x")).await.unwrap();

    // A port nothing listens on: refused at once, and the reason names the address only.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let down = backend(&format!("http://user:pw@{closed}/api"), BackendAuth::None);
    let started = Instant::now();
    let e = down.reachable(Duration::from_secs(1)).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(e.contains(&closed.to_string()), "{e}");
    assert!(!e.contains("pw"), "no credentials in the reason: {e}");
    let down = Backend::instrumented(
        &BackendConfig::new(format!("http://{closed}")),
        metrics.clone(),
    )
    .unwrap();
    assert!(down.call(get_req("/x")).await.is_err());
    let text = metrics.encode();
    for line in [
        r#"scimgate_backend_requests_total{outcome="2xx"} 1"#,
        r#"scimgate_backend_requests_total{outcome="connect"} 1"#,
        "scimgate_backend_request_duration_seconds_count 2",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
    }
}

#[tokio::test]
async fn caller_credentials_are_checked_and_converted_per_scheme() {
    let base = serve(echo_app()).await;
    let sent = |h: &'static str, scheme: PassthroughScheme| {
        let b = backend(&base, BackendAuth::Passthrough { scheme });
        async move {
            let c = CallerAuth::from_caller(h, scheme)?;
            let r = with_caller(c, b.call(get_req("/x"))).await.ok()?;
            r.body["authorization"].as_str().map(str::to_string)
        }
    };
    // base64("key:pass:word") — the password may itself hold colons.
    assert_eq!(
        sent("Bearer key:pass:word", PassthroughScheme::Basic)
            .await
            .as_deref(),
        Some("Basic a2V5OnBhc3M6d29yZA==")
    );
    assert_eq!(
        sent("Basic a2V5OnB3", PassthroughScheme::Basic)
            .await
            .as_deref(),
        Some("Basic a2V5OnB3")
    );
    assert_eq!(
        sent("Bearer abc", PassthroughScheme::AsIs).await.as_deref(),
        Some("Bearer abc")
    );
    for bad in [
        "Bearer nocolon",
        "Bearer :pw",
        "Bearer key:",
        "Bearer ",
        "Digest x:y",
        "key:pw",
    ] {
        assert!(
            CallerAuth::from_caller(bad, PassthroughScheme::Basic).is_none(),
            "{bad}"
        );
    }
    assert!(CallerAuth::from_caller("Digest abc", PassthroughScheme::AsIs).is_none());
}

#[tokio::test]
async fn a_refused_caller_credential_is_the_callers_401_not_a_502() {
    let app = Router::new().fallback(any(|| async {
        (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"message": "bad key"}})),
        )
    }));
    let base = serve(app).await;
    let passthrough = backend(
        &base,
        BackendAuth::Passthrough {
            scheme: PassthroughScheme::Basic,
        },
    );
    let caller = CallerAuth::from_caller("Bearer k:wrong", PassthroughScheme::Basic).unwrap();
    let e = with_caller(caller, passthrough.call(get_req("/x")))
        .await
        .unwrap_err();
    assert_eq!(e, BackendError::CallerRejected { status: 401 });
    assert_eq!(e.to_scim().status, 401);
    // The gateway's own credential refused is a configuration problem: 502.
    let own = backend(
        &base,
        BackendAuth::Bearer {
            token: Secret::new("t"),
        },
    );
    assert_eq!(
        own.call(get_req("/x")).await.unwrap_err().to_scim().status,
        502
    );
}

/// Reads from `stream` into `buf` until it holds a request's head whole: where the head
/// ends, `None` when the connection ended first.
async fn read_head(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
    buf: &mut Vec<u8>,
) -> Option<usize> {
    use tokio::io::AsyncReadExt;
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(i + 4);
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
        }
    }
}

/// A legacy app written on raw TCP, to see its connections: each accepted connection is
/// counted, every request's head is kept, and each answer is `{"n":…}` after `delay`. With
/// `per_connection`, the app closes a connection after that many answers (as a keep-alive
/// limit does, without saying so in the answer); with `say_close` it says so
/// (`Connection: close`).
#[derive(Clone, Default)]
struct RawApp {
    accepted: Arc<std::sync::atomic::AtomicUsize>,
    heads: Arc<Mutex<Vec<String>>>,
    per_connection: Option<usize>,
    say_close: bool,
    delay: Duration,
    /// Only requests for this path wait `delay` (all do when `None`).
    slow_path: Option<&'static str>,
    /// Connections the app saw end (closed by the client, or by the app after answering).
    closed: Arc<std::sync::atomic::AtomicUsize>,
    /// Answers as soon as a request's head is read, and reads nothing more of that
    /// connection (as an app refusing an upload early does), keeping it open.
    answer_before_body: bool,
}

impl RawApp {
    async fn serve(self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let n = self
                    .accepted
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let app = self.clone();
                tokio::spawn(async move {
                    app.connection(&mut stream, n).await;
                    app.closed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                });
            }
        });
        format!("http://{addr}")
    }

    /// Serves one connection until the client or the app ends it.
    async fn connection(&self, stream: &mut tokio::net::TcpStream, n: usize) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let app = self;
        let mut buf = Vec::new();
        let mut answered = 0;
        loop {
            // One request: the head, then a body of its Content-Length.
            let Some(head_end) = read_head(stream, &mut buf).await else {
                return;
            };
            let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
            if app.answer_before_body {
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{{\"n\":{n}}}"
                );
                let _ = stream.write_all(answer.as_bytes()).await;
                app.heads.lock().unwrap().push(head);
                // Reads nothing more: a body being sent fills the socket.
                tokio::time::sleep(Duration::from_secs(30)).await;
                return;
            }
            let length = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            while buf.len() < head_end + length {
                let mut chunk = [0u8; 4096];
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(k) => buf.extend_from_slice(&chunk[..k]),
                }
            }
            buf.drain(..head_end + length);
            let target = head.split(' ').nth(1).unwrap_or("").to_string();
            app.heads.lock().unwrap().push(head);
            if app.slow_path.is_none_or(|p| target == p) {
                tokio::time::sleep(app.delay).await;
            }
            answered += 1;
            let last = app.per_connection.is_some_and(|p| answered >= p);
            let body = format!("{{\"n\":{n}}}");
            let close = if app.say_close {
                "Connection: close\r\n"
            } else {
                ""
            };
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{close}Content-Length: {}\r\n\r\n{body}",
                body.len()
            );
            if stream.write_all(answer.as_bytes()).await.is_err() {
                return;
            }
            if last || app.say_close {
                return;
            }
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

fn post_req(path: &str) -> BackendRequest {
    let mut r = BackendRequest::new(http::Method::POST, path);
    r.body = Some(json!({"username": "a"}));
    r
}

/// Calls one after another share one kept-alive connection; each names the base URL's
/// path in origin form and its host and port in `Host`.
#[tokio::test]
async fn calls_reuse_one_connection_to_the_legacy_app() {
    let app = RawApp::default();
    let base = app.clone().serve().await;
    let b = backend(&format!("{base}/api/"), BackendAuth::None);
    for i in 0..10 {
        let r = b.call(get_req(&format!("/users/{i}"))).await.unwrap();
        assert_eq!(r.body["n"], 0, "call {i} on the first connection");
        b.call(post_req("/users")).await.unwrap();
    }
    assert_eq!(app.accepted(), 1);
    let heads = app.heads.lock().unwrap().clone();
    assert_eq!(heads.len(), 20);
    assert!(
        heads[0].starts_with("GET /api/users/0 HTTP/1.1\r\n"),
        "{}",
        heads[0]
    );
    assert!(
        heads[1].starts_with("POST /api/users HTTP/1.1\r\n"),
        "{}",
        heads[1]
    );
    let host = base.trim_start_matches("http://");
    for h in &heads {
        let hosts: Vec<&str> = h
            .lines()
            .filter_map(|l| l.split_once(':'))
            .filter(|(k, _)| k.eq_ignore_ascii_case("host"))
            .map(|(_, v)| v.trim())
            .collect();
        assert_eq!(hosts, [host], "one Host header naming the origin: {h}");
    }
}

/// The `Host` of a base URL on the scheme's default port names the host alone, as a
/// browser or curl sends it.
#[test]
fn the_host_header_leaves_out_a_default_port() {
    use super::client::split_base;
    let host = |base: &str| split_base(base).unwrap().2;
    assert_eq!(host("http://legacy.example:80/api"), "legacy.example");
    assert_eq!(host("https://legacy.example:443"), "legacy.example");
    assert_eq!(host("https://legacy.example:8443/x"), "legacy.example:8443");
    assert_eq!(host("http://user:pw@10.0.0.1:8080"), "10.0.0.1:8080");
    assert_eq!(host("http://[::1]:8080"), "[::1]:8080");
    let (origin, prefix, _) = split_base("http://user:pw@h:1/a/b").unwrap();
    assert_eq!(origin.to_string(), "http://user:pw@h:1/");
    assert_eq!(prefix, "/a/b");
    assert_eq!(split_base("http://h:1").unwrap().1, "");
}

/// A connection the legacy app closed while it sat idle (its keep-alive limit) costs the
/// next call nothing, whatever its method: the call goes out on a new connection.
#[tokio::test]
async fn a_connection_closed_by_the_legacy_app_while_idle_is_replaced() {
    let app = RawApp {
        per_connection: Some(1),
        ..RawApp::default()
    };
    let base = app.clone().serve().await;
    let b = backend(&base, BackendAuth::None);
    for i in 0..3 {
        b.call(get_req("/users/1")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        b.call(post_req("/users")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut patch = BackendRequest::new(http::Method::PATCH, "/users/1");
        patch.body = Some(json!({"title": i}));
        b.call(patch).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.accepted(), 9, "one connection per answer");
}

/// An answer saying `Connection: close` is read whole and its connection not used again.
#[tokio::test]
async fn an_answer_that_closes_its_connection_is_not_reused() {
    let app = RawApp {
        say_close: true,
        ..RawApp::default()
    };
    let base = app.clone().serve().await;
    let b = backend(&base, BackendAuth::None);
    for i in 0..5 {
        let r = b.call(post_req("/users")).await.unwrap();
        assert_eq!(r.body["n"], i);
    }
    assert_eq!(app.accepted(), 5);
}

/// Calls at once get a connection each; afterwards at most `pool_max_idle_per_host` stay
/// open for the next ones, which reuse them before connecting again.
#[tokio::test]
async fn concurrent_calls_connect_and_at_most_max_idle_stay() {
    let app = RawApp {
        delay: Duration::from_millis(100),
        ..RawApp::default()
    };
    let base = app.clone().serve().await;
    let mut cfg = BackendConfig::new(&base);
    cfg.pool_max_idle_per_host = 2;
    let b = Backend::new(&cfg).unwrap();
    let burst = |n: usize| {
        let b = b.clone();
        async move {
            let calls: Vec<_> = (0..n)
                .map(|_| {
                    let b = b.clone();
                    tokio::spawn(async move { b.call(get_req("/users/1")).await.unwrap() })
                })
                .collect();
            for c in calls {
                c.await.unwrap();
            }
        }
    };
    burst(5).await;
    assert_eq!(app.accepted(), 5, "five calls at once, five connections");
    for _ in 0..4 {
        b.call(get_req("/users/1")).await.unwrap();
    }
    assert_eq!(app.accepted(), 5, "one after another on a kept connection");
    burst(3).await;
    assert_eq!(app.accepted(), 6, "two kept connections, one new");
}

/// A call given up at the timeout closes its connection; the pool does not hand that
/// connection to the next call, which is answered on a new one.
#[tokio::test]
async fn a_call_cut_off_by_the_timeout_leaves_the_pool_usable() {
    let app = RawApp {
        delay: Duration::from_millis(400),
        slow_path: Some("/slow"),
        ..RawApp::default()
    };
    let base = app.clone().serve().await;
    let mut cfg = BackendConfig::new(&base);
    cfg.timeout_ms = 200;
    let b = Backend::new(&cfg).unwrap();
    b.call(get_req("/users/1")).await.unwrap();
    let e = b.call(get_req("/slow")).await.unwrap_err();
    assert!(matches!(e, BackendError::Timeout { .. }), "{e:?}");
    for _ in 0..3 {
        b.call(get_req("/users/1")).await.unwrap();
    }
    assert_eq!(app.accepted(), 2, "the cut-off connection was not reused");
}

/// Idle connections are closed after the idle timeout even when no call comes to find
/// them expired.
#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout_without_traffic() {
    let app = RawApp::default();
    let base = app.clone().serve().await;
    let (_, _, host) = super::client::split_base(&base).unwrap();
    let pool = raw_pool_kept(&base, Duration::from_millis(200));
    let request = format!(
        "GET /users/1 HTTP/1.1\r\nhost: {}\r\n\r\n",
        host.to_str().unwrap()
    );
    for _ in 0..3 {
        let answer = pool.send(request.as_bytes(), false, 1 << 20).await.unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(&answer.body[..], br#"{"n":0}"#);
    }
    assert_eq!(app.accepted(), 1, "kept and reused");
    let closed = || app.closed.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(closed(), 0);
    let started = Instant::now();
    while closed() == 0 && started.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(closed(), 1, "closed while idle, with no call to notice");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

/// An app that answers a large upload before reading it leaves its connection busy: the
/// next call does not wait for it (until its timeout) but takes a new connection.
#[tokio::test]
async fn a_connection_still_sending_is_not_waited_for() {
    let app = RawApp {
        answer_before_body: true,
        ..RawApp::default()
    };
    let base = app.clone().serve().await;
    let mut cfg = BackendConfig::new(&base);
    cfg.timeout_ms = 3_000;
    let b = Backend::new(&cfg).unwrap();
    let mut upload = BackendRequest::new(http::Method::POST, "/files");
    upload.body = Some(json!({"data": "x".repeat(16 * 1024 * 1024)}));
    let r = b.call(upload).await.unwrap();
    assert_eq!(r.body["n"], 0);
    let started = Instant::now();
    let r = b.call(get_req("/users/1")).await.unwrap();
    assert_eq!(r.body["n"], 1, "answered on a new connection");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(app.accepted(), 2);
}

/// A credential header named `Host` is the one `Host` sent (it was set only when absent).
#[tokio::test]
async fn a_credential_header_named_host_is_the_only_host() {
    let app = RawApp::default();
    let base = app.clone().serve().await;
    let b = backend(
        &base,
        BackendAuth::Header {
            name: "Host".into(),
            value: Secret::new("legacy.internal"),
        },
    );
    b.call(get_req("/users/1")).await.unwrap();
    let heads = app.heads.lock().unwrap().clone();
    let hosts: Vec<&str> = heads[0]
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.eq_ignore_ascii_case("host"))
        .map(|(_, v)| v.trim())
        .collect();
    assert_eq!(hosts, ["legacy.internal"]);
}

/// A legacy app on raw TCP that answers each request (its head read to the blank line) with
/// `answer`, written in pieces of `piece` bytes with a pause between them, and then closes
/// the connection when `close` is set. Counts the connections it accepted.
#[derive(Clone)]
struct ScriptedApp {
    answer: Vec<u8>,
    piece: usize,
    close: bool,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
}

impl ScriptedApp {
    fn new(answer: &[u8]) -> ScriptedApp {
        ScriptedApp {
            answer: answer.to_vec(),
            piece: usize::MAX,
            close: false,
            accepted: Arc::default(),
        }
    }

    async fn serve(self) -> String {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                self.accepted
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let app = self.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        if read_head(&mut stream, &mut buf).await.is_none() {
                            return;
                        }
                        buf.clear();
                        for piece in app.answer.chunks(app.piece.min(app.answer.len()).max(1)) {
                            if stream.write_all(piece).await.is_err() {
                                return;
                            }
                            if app.piece != usize::MAX {
                                tokio::time::sleep(Duration::from_millis(2)).await;
                            }
                        }
                        if app.close {
                            return;
                        }
                    }
                });
            }
        });
        format!("http://{addr}")
    }

    fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The pool alone, to `base`, keeping idle connections `idle`.
fn raw_pool_kept(base: &str, idle: Duration) -> super::pool::Pool {
    let (origin, _, _) = super::client::split_base(base).unwrap();
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
        .unwrap()
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    super::pool::Pool::new(https, origin, 8, idle)
}

/// The pool alone, to `base`, and a GET of `/x` to send on it.
fn raw_pool(base: &str) -> (super::pool::Pool, Vec<u8>) {
    let (_, _, host) = super::client::split_base(base).unwrap();
    let request = format!(
        "GET /x HTTP/1.1\r\nhost: {}\r\n\r\n",
        host.to_str().unwrap()
    );
    (
        raw_pool_kept(base, Duration::from_secs(30)),
        request.into_bytes(),
    )
}

/// Every way an answer's body may be framed (RFC 9112 §6.3) is read whole, also when the
/// answer arrives a few bytes at a time; the connection is used again only after an answer
/// framed by its length or its chunks, with nothing after it.
#[tokio::test]
async fn answers_are_read_whole_however_framed_and_whatever_pieces_they_come_in() {
    let cases: [(&[u8], u16, &[u8], bool); 8] = [
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n{\"n\":1}",
            200,
            b"{\"n\":1}",
            true,
        ),
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3;ext=1\r\n{\"n\r\n4\r\n\":2}\r\n0\r\nX-Trailer: t\r\n\r\n",
            200,
            b"{\"n\":2}",
            true,
        ),
        (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\nRetry-After: 5\r\n\r\n{}",
            201,
            b"{}",
            true,
        ),
        (b"HTTP/1.1 204 No Content\r\n\r\n", 204, b"", true),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\nConnection: keep-alive, close\r\n\r\n{\"n\":3}",
            200,
            b"{\"n\":3}",
            false,
        ),
        (
            b"HTTP/1.0 200 OK\r\nContent-Length: 7\r\n\r\n{\"n\":4}",
            200,
            b"{\"n\":4}",
            false,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n{\"n\":5}{}",
            200,
            b"{\"n\":5}",
            false,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
            200,
            b"{}",
            false,
        ),
    ];
    for piece in [usize::MAX, 5, 1] {
        for (answer, status, body, kept) in cases {
            // Bytes after an answer that come after it in time are the next answer's start:
            // only an answer written whole with them is a case here.
            if piece != usize::MAX && answer.ends_with(b"}{}") {
                continue;
            }
            let app = ScriptedApp {
                piece,
                ..ScriptedApp::new(answer)
            };
            let base = app.clone().serve().await;
            let (pool, request) = raw_pool(&base);
            for _ in 0..2 {
                let got = pool.send(&request, false, 1 << 20).await.unwrap();
                let what = String::from_utf8_lossy(answer);
                assert_eq!((got.status, &got.body[..]), (status, body), "{what}");
            }
            let want = if kept { 1 } else { 2 };
            assert_eq!(app.accepted(), want, "{}", String::from_utf8_lossy(answer));
        }
    }
}

/// A body that runs to the end of the connection is read to that end, and the connection
/// is not kept.
#[tokio::test]
async fn an_answer_without_length_runs_to_the_end_of_its_connection() {
    let app = ScriptedApp {
        close: true,
        ..ScriptedApp::new(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"n\":6}")
    };
    let base = app.clone().serve().await;
    let (pool, request) = raw_pool(&base);
    for i in 1..=2 {
        let got = pool.send(&request, false, 1 << 20).await.unwrap();
        assert_eq!((got.status, &got.body[..]), (200, &b"{\"n\":6}"[..]));
        assert_eq!(app.accepted(), i);
    }
}

/// What is not a whole HTTP/1.1 answer within the limits is an error of the call, never an
/// answer: a body beyond the limit (by its length, its chunks or its end), a length that
/// is not one number, a chunk size that is no number or a chunk longer than it says, a head
/// of no HTTP, and a connection ending before the answer is whole.
#[tokio::test]
async fn answers_that_are_not_whole_http_or_beyond_the_limit_are_refused() {
    use super::pool::PoolError;
    let too_large = |e: &PoolError| matches!(e, PoolError::TooLarge { status: 200 });
    let transport = |e: &PoolError| matches!(e, PoolError::Transport(_));
    type Check = fn(&PoolError) -> bool;
    let cases: [(&[u8], bool, Check); 10] = [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"n\":\"abc\"}", false, too_large),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n{\"n\":1\r\n6\r\n}     \r\n0\r\n\r\n", false, too_large),
        (b"HTTP/1.1 200 OK\r\n\r\n{\"n\":\"abcdef\"}", true, too_large),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\n{}", false, transport),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\n{}", false, transport),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", false, transport),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{}\r\n0\r\n\r\n", false, transport),
        (b"hello there\r\n\r\n", false, transport),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{}", true, transport),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n", true, transport),
    ];
    for (answer, close, check) in cases {
        let app = ScriptedApp {
            close,
            ..ScriptedApp::new(answer)
        };
        let base = app.clone().serve().await;
        let (pool, request) = raw_pool(&base);
        let e = pool.send(&request, false, 10).await.unwrap_err();
        assert!(check(&e), "{}: {e:?}", String::from_utf8_lossy(answer));
    }
}

/// Over TLS the same: the request goes out whole (flushed through the TLS layer), the
/// chunked answer comes back whole, and the connection is kept for the next call; a
/// connection the app closed while idle (with TLS's close_notify) is not used again.
#[tokio::test]
async fn answers_come_whole_over_tls_and_connections_are_kept() {
    use tokio::io::AsyncWriteExt;
    let provider = || Arc::new(rustls::crypto::ring::default_provider());
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "legacy");
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let der = cert.der().clone();
    let server = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![der.clone()],
            rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = Vec::new();
                for answered in 1.. {
                    if read_head(&mut tls, &mut buf).await.is_none() {
                        return;
                    }
                    assert!(buf.starts_with(b"GET /x HTTP/1.1\r\n"));
                    buf.clear();
                    let answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"n\"\r\n3\r\n:7}\r\n0\r\n\r\n";
                    tls.write_all(answer).await.unwrap();
                    if answered == 3 {
                        // A keep-alive limit: closed after the third answer.
                        let _ = tls.shutdown().await;
                        return;
                    }
                }
            });
        }
    });
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(client)
        .https_only()
        .enable_http1()
        .wrap_connector(http);
    let origin: Uri = format!("https://127.0.0.1:{port}").parse().unwrap();
    let pool = super::pool::Pool::new(https, origin, 8, Duration::from_secs(30));
    let request = format!("GET /x HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n\r\n");
    for i in 1..=4 {
        let got = pool.send(request.as_bytes(), false, 1 << 20).await.unwrap();
        assert_eq!(
            (got.status, &got.body[..]),
            (200, &b"{\"n\":7}"[..]),
            "call {i}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "three calls on the first connection, the fourth on a new one"
    );
}

/// An app that answers before it has read a large upload and closes at once (its unread
/// data turning the close into a reset): its answer arrives with the reset, and is the
/// call's answer, not the failed write of the rest of the upload.
#[tokio::test]
async fn an_answer_that_comes_before_the_upload_failed_is_the_answer() {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                if read_head(&mut stream, &mut buf).await.is_none() {
                    return;
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
                    .await;
                // Dropped with the upload unread: the close is a reset.
            });
        }
    });
    let (pool, _) = raw_pool(&base);
    let (_, _, host) = super::client::split_base(&base).unwrap();
    let body = vec![b'x'; 16 << 20];
    let mut request = format!(
        "POST /x HTTP/1.1\r\nhost: {}\r\ncontent-length: {}\r\n\r\n",
        host.to_str().unwrap(),
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    for _ in 0..3 {
        let got = pool.send(&request, false, 1 << 20).await.unwrap();
        assert_eq!((got.status, &got.body[..]), (413, &b"{}"[..]));
    }
}

/// A kept connection the app closed while idle is seen closed also when the call's task has
/// used up its tokio budget (a task's resources then all say "not ready"): the call goes out
/// on a new connection, not on the closed one.
#[tokio::test]
async fn a_closed_idle_connection_is_seen_closed_with_the_budget_used_up() {
    let app = RawApp {
        per_connection: Some(1),
        ..RawApp::default()
    };
    let base = app.clone().serve().await;
    let (pool, request) = raw_pool(&base);
    assert_eq!(
        pool.send(&request, false, 1 << 20).await.unwrap().status,
        200
    );
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    for _ in 0..2 {
        // The app has closed the kept connection by now.
        tokio::time::sleep(Duration::from_millis(50)).await;
        for i in 0..256 {
            tx.try_send(i).unwrap();
        }
        let mut call = std::pin::pin!(pool.send(&request, false, 1 << 20));
        let got = std::future::poll_fn(|cx| {
            // Spends the task's budget (128 a poll), then takes a connection in the same
            // poll: only the call's first poll finds the budget spent.
            for _ in 0..200 {
                if rx.poll_recv(cx).is_pending() {
                    break;
                }
            }
            call.as_mut().poll(cx)
        })
        .await;
        assert_eq!(got.unwrap().status, 200);
        while rx.try_recv().is_ok() {}
    }
    assert_eq!(app.accepted(), 3);
}

/// Chunked bodies are read as RFC 9112 §7.1 writes them and as hyper read them: CRLF after
/// every size line, chunk and trailer (a bare LF, a CR inside an extension, white space
/// before a size are refused), lines and trailers bounded, sizes with leading zeros read,
/// and none beyond `usize`. Heads are bounded also when they come whole, a status below 100
/// is no status, and an HTTP/1.0 answer cannot be chunked.
#[tokio::test]
async fn answers_framed_loosely_or_beyond_bounds_are_refused() {
    use super::pool::PoolError;
    let long_ext = format!(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;e={}\r\n{{}}\r\n0\r\n\r\n",
        "x".repeat(6000)
    );
    let many_trailers = format!(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{{}}\r\n0\r\n{}\r\n",
        "T: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n".repeat(400)
    );
    let big_head = format!(
        "HTTP/1.1 200 OK\r\n{}Content-Length: 2\r\n\r\n{{}}",
        "X-Filler: yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\r\n".repeat(900)
    );
    let refused: Vec<Vec<u8>> = vec![
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\n{}\r\n0\r\n\r\n".to_vec(),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\n0\r\n\r\n".to_vec(),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n 2\r\n{}\r\n0\r\n\r\n".to_vec(),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;a\rb\r\n{}\r\n0\r\n\r\n".to_vec(),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\nT: t\n\r\n".to_vec(),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000002\r\n{}\r\n0\r\n\r\n".to_vec(),
        b"HTTP/1.1 000 Zero\r\nContent-Length: 2\r\n\r\n{}".to_vec(),
        b"HTTP/1.1 099 Low\r\nContent-Length: 2\r\n\r\n{}".to_vec(),
        b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n".to_vec(),
        long_ext.into_bytes(),
        many_trailers.into_bytes(),
        big_head.into_bytes(),
    ];
    for answer in refused {
        let app = ScriptedApp::new(&answer);
        let base = app.clone().serve().await;
        let (pool, request) = raw_pool(&base);
        // A first call fills the buffer past a large head; the second reads one whole.
        for _ in 0..2 {
            let e = pool.send(&request, false, 1 << 20).await.unwrap_err();
            let what = String::from_utf8_lossy(&answer[..answer.len().min(120)]).to_string();
            assert!(matches!(e, PoolError::Transport(_)), "{what}: {e:?}");
        }
    }
    let read: [(&[u8], &[u8]); 2] = [
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n00000000000000000002\r\n{}\r\n0\r\n\r\n",
            b"{}",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2 \t;name=\"v\"\r\n{}\r\n0\r\nT: t\r\n\r\n",
            b"{}",
        ),
    ];
    for (answer, body) in read {
        let app = ScriptedApp::new(answer);
        let base = app.clone().serve().await;
        let (pool, request) = raw_pool(&base);
        let got = pool.send(&request, false, 1 << 20).await.unwrap();
        assert_eq!(&got.body[..], body, "{}", String::from_utf8_lossy(answer));
    }
}
