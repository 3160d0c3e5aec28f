//! The embedded demo legacy app: a small, non-SCIM REST API that scimgate can front.
//!
//! It stands in for the legacy applications scimgate is built for, so it speaks its own
//! dialect on purpose: snake_case JSON, integer ids, an `X-Api-Key` header, a
//! `{"data","total","page","per_page"}` list envelope and a `{"error":{"code","message"}}`
//! error shape. `scimgate demo` runs it next to the gateway; integration tests start it on
//! `127.0.0.1:0` and read its state over its own API to see what reached the legacy side.
//!
//! Routes (every one needs `X-Api-Key`, else 401):
//! - `/api/v1/users` GET (list: `email`, `external_id`, `status`, `page`, `per_page`), POST;
//!   `/api/v1/users/{id}` GET, PUT, DELETE; `/{id}/deactivate`, `/{id}/activate`,
//!   `/{id}/sessions/revoke` POST.
//! - `/api/v1/teams` GET (`name`, `external_id`, paging), POST; `/api/v1/teams/{id}` GET,
//!   PUT, DELETE; `/{id}/members` GET (paged), POST `{"user_ids":[…]}`;
//!   `/{id}/members/{user_id}` DELETE.
//! - `/api/v1/offices` GET (`name`, paging), POST; `/api/v1/folders` GET, POST.
//! - `/__demo/faults` POST and `/__demo/state` GET, for tests.

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
use axum::routing::{delete, get, post};
use faults::{Counters, FaultPlan};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use store::Db;
use subtle::ConstantTimeEq;

/// Settings of one demo app instance.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// The key every request must send in `X-Api-Key`.
    pub api_key: String,
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
    api_key: String,
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
                api_key: cfg.api_key,
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

    /// Whether `headers` carry the configured `X-Api-Key` (compared in constant time).
    fn authorized(&self, headers: &HeaderMap) -> bool {
        headers
            .get("x-api-key")
            .is_some_and(|v| bool::from(v.as_bytes().ct_eq(self.inner.api_key.as_bytes())))
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
