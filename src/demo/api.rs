//! HTTP handlers of the demo REST API (`/api/v1/...`).
//!
//! Each handler takes the lock once, does one [`Db`](super::store::Db) operation and renders
//! the result; extractor rejections are turned into the demo error shape here so no axum
//! plain-text error ever reaches a client.

use super::DemoState;
use super::error::{DemoError, DemoResult};
use super::model::{
    CATALOG_READ_ONLY, FolderInput, MembersInput, OfficeInput, RoleInput, TEAM_READ_ONLY,
    TeamInput, USER_READ_ONLY, UserInput, UserStatus, parse_body,
};
use super::store::{DEFAULT_PER_PAGE, MAX_PER_PAGE, Page, TeamFilter, UserFilter};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

type Body = Result<Bytes, BytesRejection>;
type IdPath = Result<Path<u64>, PathRejection>;
type ListQuery = Result<Query<ListParams>, QueryRejection>;

/// Query parameters any list endpoint may read; each endpoint ignores the ones it does not use.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListParams {
    username: Option<String>,
    email: Option<String>,
    external_id: Option<String>,
    status: Option<String>,
    name: Option<String>,
    page: Option<String>,
    per_page: Option<String>,
}

/// The list envelope: `{"data":[…],"total":N,"page":p,"per_page":n}`.
#[derive(Debug, Serialize)]
struct Envelope<T> {
    data: Vec<T>,
    total: usize,
    page: usize,
    per_page: usize,
}

fn envelope<T: Serialize>((data, total): (Vec<T>, usize), page: Page) -> Json<Envelope<T>> {
    Json(Envelope {
        data,
        total,
        page: page.page,
        per_page: page.per_page,
    })
}

fn positive(raw: Option<&str>, name: &str, default: usize) -> DemoResult<usize> {
    match raw {
        None => Ok(default),
        Some(s) => {
            s.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                DemoError::bad_request(format!("`{name}` must be a positive integer"))
            })
        }
    }
}

fn params(query: ListQuery) -> DemoResult<(ListParams, Page)> {
    let Query(p) = query.map_err(|e| DemoError::bad_request(e.body_text()))?;
    let page = Page {
        page: positive(p.page.as_deref(), "page", 1)?,
        per_page: positive(p.per_page.as_deref(), "per_page", DEFAULT_PER_PAGE)?.min(MAX_PER_PAGE),
    };
    Ok((p, page))
}

fn id_of(path: IdPath, what: &str) -> DemoResult<u64> {
    path.map(|Path(id)| id)
        .map_err(|_| DemoError::not_found(format!("{what} not found: ids are integers")))
}

fn created<T: Serialize>(value: T) -> Response {
    (StatusCode::CREATED, Json(value)).into_response()
}

// ---- users ----

/// `GET /api/v1/users?username=&email=&external_id=&status=&page=&per_page=`
pub(crate) async fn list_users(
    State(state): State<DemoState>,
    query: ListQuery,
) -> DemoResult<Response> {
    let (p, page) = params(query)?;
    let status = match p.status.as_deref() {
        None => None,
        Some(s) => Some(
            UserStatus::parse(s)
                .ok_or_else(|| DemoError::bad_request("`status` must be `active` or `inactive`"))?,
        ),
    };
    let filter = UserFilter {
        username: p.username,
        email: p.email,
        external_id: p.external_id,
        status,
    };
    let result = state.read().list_users(&filter, page);
    Ok(envelope(result, page).into_response())
}

/// `POST /api/v1/users` → 201 and the new user.
pub(crate) async fn create_user(
    State(state): State<DemoState>,
    body: Body,
) -> DemoResult<Response> {
    let input: UserInput = parse_body(body, USER_READ_ONLY)?;
    let user = state.write().create_user(input)?;
    Ok(created(user))
}

/// `GET /api/v1/users/{id}`
pub(crate) async fn get_user(State(state): State<DemoState>, id: IdPath) -> DemoResult<Response> {
    let id = id_of(id, "user")?;
    let user = state.read().user(id)?.clone();
    Ok(Json(user).into_response())
}

/// `PUT /api/v1/users/{id}`: full update of the writable fields.
pub(crate) async fn put_user(
    State(state): State<DemoState>,
    id: IdPath,
    body: Body,
) -> DemoResult<Response> {
    let id = id_of(id, "user")?;
    let input: UserInput = parse_body(body, USER_READ_ONLY)?;
    let user = state.write().replace_user(id, input)?;
    Ok(Json(user).into_response())
}

/// `DELETE /api/v1/users/{id}` → 204.
pub(crate) async fn delete_user(
    State(state): State<DemoState>,
    id: IdPath,
) -> DemoResult<StatusCode> {
    let id = id_of(id, "user")?;
    state.write().delete_user(id)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/users/{id}/deactivate`
pub(crate) async fn deactivate(State(state): State<DemoState>, id: IdPath) -> DemoResult<Response> {
    let id = id_of(id, "user")?;
    let user = state.write().set_status(id, UserStatus::Inactive)?;
    Ok(Json(user).into_response())
}

/// `POST /api/v1/users/{id}/activate`
pub(crate) async fn activate(State(state): State<DemoState>, id: IdPath) -> DemoResult<Response> {
    let id = id_of(id, "user")?;
    let user = state.write().set_status(id, UserStatus::Active)?;
    Ok(Json(user).into_response())
}

/// `PUT /api/v1/users/{id}/role` `{"role": "Admin"}` (or `null` to take the role away).
pub(crate) async fn put_role(
    State(state): State<DemoState>,
    id: IdPath,
    body: Body,
) -> DemoResult<Response> {
    let id = id_of(id, "user")?;
    let input: RoleInput = parse_body(body, &[])?;
    let user = state.write().set_role(id, input.role)?;
    Ok(Json(user).into_response())
}

/// `POST /api/v1/users/{id}/sessions/revoke`
pub(crate) async fn revoke_sessions(
    State(state): State<DemoState>,
    id: IdPath,
) -> DemoResult<Response> {
    let id = id_of(id, "user")?;
    let user = state.write().revoke_sessions(id)?;
    Ok(Json(user).into_response())
}

// ---- teams ----

/// `GET /api/v1/teams?name=&external_id=&page=&per_page=`
pub(crate) async fn list_teams(
    State(state): State<DemoState>,
    query: ListQuery,
) -> DemoResult<Response> {
    let (p, page) = params(query)?;
    let filter = TeamFilter {
        name: p.name,
        external_id: p.external_id,
    };
    let result = state.read().list_teams(&filter, page);
    Ok(envelope(result, page).into_response())
}

/// `POST /api/v1/teams` → 201 and the new (empty) team.
pub(crate) async fn create_team(
    State(state): State<DemoState>,
    body: Body,
) -> DemoResult<Response> {
    let input: TeamInput = parse_body(body, TEAM_READ_ONLY)?;
    let team = state.write().create_team(input)?;
    Ok(created(team))
}

/// `GET /api/v1/teams/{id}` (member count, never members).
pub(crate) async fn get_team(State(state): State<DemoState>, id: IdPath) -> DemoResult<Response> {
    let id = id_of(id, "team")?;
    let team = state.read().team(id)?;
    Ok(Json(team).into_response())
}

/// `PUT /api/v1/teams/{id}`: replaces name and external_id.
pub(crate) async fn put_team(
    State(state): State<DemoState>,
    id: IdPath,
    body: Body,
) -> DemoResult<Response> {
    let id = id_of(id, "team")?;
    let input: TeamInput = parse_body(body, TEAM_READ_ONLY)?;
    let team = state.write().replace_team(id, input)?;
    Ok(Json(team).into_response())
}

/// `DELETE /api/v1/teams/{id}` → 204; member users are kept.
pub(crate) async fn delete_team(
    State(state): State<DemoState>,
    id: IdPath,
) -> DemoResult<StatusCode> {
    let id = id_of(id, "team")?;
    state.write().delete_team(id)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/teams/{id}/members?page=&per_page=`
pub(crate) async fn list_members(
    State(state): State<DemoState>,
    id: IdPath,
    query: ListQuery,
) -> DemoResult<Response> {
    let id = id_of(id, "team")?;
    let (_, page) = params(query)?;
    let result = state.read().list_members(id, page)?;
    Ok(envelope(result, page).into_response())
}

/// `POST /api/v1/teams/{id}/members` with `{"user_ids":[…]}`.
pub(crate) async fn add_members(
    State(state): State<DemoState>,
    id: IdPath,
    body: Body,
) -> DemoResult<Response> {
    let id = id_of(id, "team")?;
    let input: MembersInput = parse_body(body, &[])?;
    let added = state.write().add_members(id, &input.user_ids)?;
    Ok(Json(added).into_response())
}

/// `DELETE /api/v1/teams/{id}/members/{user_id}` → 204.
pub(crate) async fn remove_member(
    State(state): State<DemoState>,
    ids: Result<Path<(u64, u64)>, PathRejection>,
) -> DemoResult<StatusCode> {
    let Path((team_id, user_id)) =
        ids.map_err(|_| DemoError::not_found("membership not found: ids are integers"))?;
    state.write().remove_member(team_id, user_id)?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- offices and folders ----

/// `GET /api/v1/offices?name=&page=&per_page=`
pub(crate) async fn list_offices(
    State(state): State<DemoState>,
    query: ListQuery,
) -> DemoResult<Response> {
    let (p, page) = params(query)?;
    let result = state.read().list_offices(p.name.as_deref(), page);
    Ok(envelope(result, page).into_response())
}

/// `POST /api/v1/offices` with `{"name":…}` → 201.
pub(crate) async fn create_office(
    State(state): State<DemoState>,
    body: Body,
) -> DemoResult<Response> {
    let input: OfficeInput = parse_body(body, CATALOG_READ_ONLY)?;
    let office = state.write().create_office(input)?;
    Ok(created(office))
}

/// `GET /api/v1/folders?page=&per_page=`
pub(crate) async fn list_folders(
    State(state): State<DemoState>,
    query: ListQuery,
) -> DemoResult<Response> {
    let (_, page) = params(query)?;
    let result = state.read().list_folders(page);
    Ok(envelope(result, page).into_response())
}

/// `POST /api/v1/folders` with `{"name":…, "external_id":…}` → 201.
pub(crate) async fn create_folder(
    State(state): State<DemoState>,
    body: Body,
) -> DemoResult<Response> {
    let input: FolderInput = parse_body(body, CATALOG_READ_ONLY)?;
    let folder = state.write().create_folder(input)?;
    Ok(created(folder))
}

/// Any path no route matches.
pub(crate) async fn not_found() -> DemoError {
    DemoError::not_found("no such route")
}

/// A known path with a method it does not serve.
pub(crate) async fn method_not_allowed() -> DemoError {
    DemoError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "bad_request",
        "method not allowed on this route",
    )
}
