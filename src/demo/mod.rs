//! The embedded demo legacy app: a small, non-SCIM REST API that scimgate can front.
//!
//! It stands in for the legacy applications scimgate is built for, so it speaks its own
//! dialect on purpose: snake_case JSON, integer ids (one sequence shared by users and teams,
//! so an id never names both), an `X-Api-Key` header, a
//! `{"data","total","page","per_page"}` list envelope and a `{"error":{"code","message"}}`
//! error shape. `scimgate demo` runs it next to the gateway; integration tests start it on
//! `127.0.0.1:0` and read its state over its own API to see what reached the legacy side.
//!
//! Routes (every one needs `X-Api-Key`, or HTTP Basic `key:password` when started with
//! [`DemoAuth::Basic`], else 401):
//! - `/api/v1/users` GET (list: `email`, `external_id`, `status`, `page`, `per_page`), POST;
//!   `/api/v1/users/{id}` GET, PUT (role and status kept when omitted), DELETE;
//!   `/{id}/deactivate`, `/{id}/activate`, `/{id}/sessions/revoke` POST; `/{id}/role` PUT
//!   `{"role": "Admin"}` (`null` takes it away).
//! - `/api/v1/teams` GET (`name`, `external_id`, paging), POST; `/api/v1/teams/{id}` GET,
//!   PUT, DELETE; `/{id}/members` GET (paged), POST `{"user_ids":[…]}`;
//!   `/{id}/members/{user_id}` DELETE.
//! - `/api/v1/offices` GET (`name`, paging), POST; `/api/v1/folders` GET, POST.
//! - `/__demo/faults` POST (`mode`: `status`, `garbage`, `truncated` (a record cut off), `delay`, `close` or `body` (answer
//!   `status` with the JSON `body`), `status`, `delay_ms`, `retry_after`, `count`, `body`, and `route`
//!   to fault only one route, e.g. `"DELETE /api/v1/users/{id}"`) and `/__demo/state` GET, for
//!   tests.

mod api;
mod error;
mod faults;
mod model;
mod server;
mod store;

pub use error::{DemoError, DemoResult};
pub use server::DemoApp;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::HeaderMap;
use axum::middleware::from_fn_with_state;
use axum::routing::{delete, get, post, put};
use faults::{Counters, FaultPlan};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use store::Db;
use subtle::ConstantTimeEq;

/// How clients of the demo app authenticate.
#[derive(Clone, PartialEq, Eq)]
pub enum DemoAuth {
    /// Every request sends this key in `X-Api-Key`.
    ApiKey(String),
    /// Every request sends HTTP Basic `key:password` (as SmartFile's product key and product
    /// password); `X-Api-Key` is not accepted.
    Basic {
        /// The user-name part (SmartFile's Product Key).
        key: String,
        /// The password part (SmartFile's Product Password).
        password: String,
    },
}

impl std::fmt::Debug for DemoAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DemoAuth::ApiKey(_) => f.write_str("ApiKey(<redacted>)"),
            DemoAuth::Basic { key, .. } => write!(f, "Basic({key}:<redacted>)"),
        }
    }
}

/// Settings of one demo app instance.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// The credential every request must carry.
    pub auth: DemoAuth,
}

impl DemoConfig {
    /// A demo app that wants `key` in `X-Api-Key` (its usual dialect).
    pub fn with_api_key(key: impl Into<String>) -> Self {
        DemoConfig {
            auth: DemoAuth::ApiKey(key.into()),
        }
    }
}

/// Shared state of one demo app: its data, API key, armed fault and counters.
///
/// Cheap to clone (an `Arc`); every clone sees the same data. Safe to use from many threads.
#[derive(Debug, Clone)]
pub struct DemoState {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// The exact header value that authenticates (`X-Api-Key` value, or `Basic …`).
    credential: Vec<u8>,
    basic: bool,
    db: RwLock<Db>,
    faults: Mutex<FaultPlan>,
    counters: Mutex<Counters>,
}

impl DemoState {
    /// Fresh state: no users or teams, the seed offices (Sydney, Melbourne, London, New York)
    /// and two seed folders, no fault armed.
    pub fn new(cfg: DemoConfig) -> Self {
        DemoState {
            inner: Arc::new(Shared {
                basic: matches!(cfg.auth, DemoAuth::Basic { .. }),
                credential: match cfg.auth {
                    DemoAuth::ApiKey(k) => k.into_bytes(),
                    DemoAuth::Basic { key, password } => {
                        use base64::Engine as _;
                        let pair = format!("{key}:{password}");
                        let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
                        format!("Basic {encoded}").into_bytes()
                    }
                },
                db: RwLock::new(Db::seeded()),
                faults: Mutex::new(FaultPlan::default()),
                counters: Mutex::new(Counters::default()),
            }),
        }
    }

    // A panic while a lock is held cannot leave the data half-updated in a way that matters
    // more than refusing all further requests would, so poisoning is ignored.
    fn read(&self) -> RwLockReadGuard<'_, Db> {
        self.inner.db.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Db> {
        self.inner.db.write().unwrap_or_else(|e| e.into_inner())
    }

    fn faults(&self) -> MutexGuard<'_, FaultPlan> {
        self.inner.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn counters(&self) -> MutexGuard<'_, Counters> {
        self.inner
            .counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Creates a user exactly as `POST /api/v1/users` would (same validation, defaults and
    /// errors) without going through HTTP, and returns its id. For seeding sample data and
    /// large test fixtures; the request counters do not see it.
    pub fn create_user(&self, body: &serde_json::Value) -> DemoResult<u64> {
        let input = model::parse_value(body, model::USER_READ_ONLY)?;
        Ok(self.write().create_user(input)?.id)
    }

    /// Whether `headers` carry the configured credential (compared in constant time): the
    /// `X-Api-Key`, or in Basic mode the `Authorization: Basic` value.
    fn authorized(&self, headers: &HeaderMap) -> bool {
        let name = if self.inner.basic {
            "authorization"
        } else {
            "x-api-key"
        };
        headers
            .get(name)
            .is_some_and(|v| bool::from(v.as_bytes().ct_eq(&self.inner.credential)))
    }

    /// Whether this app wants HTTP Basic instead of `X-Api-Key` (for its 401 message).
    fn wants_basic(&self) -> bool {
        self.inner.basic
    }
}

/// The demo API as an axum router over `state`, with auth, counters, faults and a 1 MiB
/// body limit applied. [`DemoApp::start`] serves it; it can also be mounted elsewhere, except
/// that `close` faults then answer 503 instead of dropping the connection.
pub fn router(state: DemoState) -> Router {
    Router::new()
        .route("/api/v1/users", get(api::list_users).post(api::create_user))
        .route(
            "/api/v1/users/{id}",
            get(api::get_user)
                .put(api::put_user)
                .delete(api::delete_user),
        )
        .route("/api/v1/users/{id}/deactivate", post(api::deactivate))
        .route("/api/v1/users/{id}/activate", post(api::activate))
        .route(
            "/api/v1/users/{id}/sessions/revoke",
            post(api::revoke_sessions),
        )
        .route("/api/v1/users/{id}/role", put(api::put_role))
        .route("/api/v1/teams", get(api::list_teams).post(api::create_team))
        .route(
            "/api/v1/teams/{id}",
            get(api::get_team)
                .put(api::put_team)
                .delete(api::delete_team),
        )
        .route(
            "/api/v1/teams/{id}/members",
            get(api::list_members).post(api::add_members),
        )
        .route(
            "/api/v1/teams/{id}/members/{user_id}",
            delete(api::remove_member),
        )
        .route(
            "/api/v1/offices",
            get(api::list_offices).post(api::create_office),
        )
        .route(
            "/api/v1/folders",
            get(api::list_folders).post(api::create_folder),
        )
        .route("/__demo/faults", post(faults::set_faults))
        .route("/__demo/state", get(faults::get_state))
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(from_fn_with_state(state.clone(), faults::gate))
        .layer(DefaultBodyLimit::max(model::BODY_LIMIT))
        .with_state(state)
}
