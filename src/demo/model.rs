//! Records the demo app stores and the request bodies it accepts.
//!
//! Bodies are read in two steps so the status tells the client what went wrong: bytes that are
//! not JSON are a 400, JSON with unknown, read-only or ill-typed fields is a 422.

use super::error::{DemoError, DemoResult};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use chrono::{SecondsFormat, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Largest request body the demo app reads (1 MiB).
pub const BODY_LIMIT: usize = 1 << 20;

/// The current time as RFC 3339 with millisecond precision and a `Z` offset.
pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Whether a user may sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserStatus {
    /// The user can sign in.
    Active,
    /// The user is deactivated; the record is kept.
    Inactive,
}

impl UserStatus {
    /// Parses `active` / `inactive` exactly; anything else is `None`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(UserStatus::Active),
            "inactive" => Some(UserStatus::Inactive),
            _ => None,
        }
    }
}

/// A user as the demo API returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct User {
    pub id: u64,
    /// Sign-in name, unique ignoring case; defaults to the email when not given.
    pub username: String,
    /// Contact address, unique ignoring case when set.
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub display_name: Option<String>,
    pub initials: Option<String>,
    pub job_title: Option<String>,
    pub phone: Option<String>,
    pub direct_phone: Option<String>,
    pub service_email: Option<String>,
    pub office_id: Option<u64>,
    pub department: Option<String>,
    pub employee_number: Option<String>,
    pub manager_id: Option<u64>,
    pub user_type: Option<String>,
    pub role: Option<String>,
    pub status: UserStatus,
    pub external_id: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub folders: Vec<String>,
    /// Simulated signed-in sessions: 1 after creation, 0 after a revoke.
    pub active_sessions: u64,
    /// How many times sessions were revoked for this user.
    pub sessions_revoked: u64,
    pub created_at: String,
    pub updated_at: String,
}

/// The writable user fields, as sent to POST (create) and PUT (full update).
///
/// Every field is optional at the type level so a missing `username`/`email` is reported as a validation
/// failure (422) with a clear message rather than a serde error.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserInput {
    pub username: Option<String>,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub display_name: Option<String>,
    pub initials: Option<String>,
    pub job_title: Option<String>,
    pub phone: Option<String>,
    pub direct_phone: Option<String>,
    pub service_email: Option<String>,
    pub office_id: Option<u64>,
    pub department: Option<String>,
    pub employee_number: Option<String>,
    pub manager_id: Option<u64>,
    pub user_type: Option<String>,
    /// Absent: unchanged by a PUT; `null`: no role; a string: that role.
    #[serde(default, deserialize_with = "present")]
    pub role: Option<Option<String>>,
    pub status: Option<UserStatus>,
    pub external_id: Option<String>,
    pub metadata: Option<BTreeMap<String, String>>,
    pub folders: Option<Vec<String>>,
}

/// A field that was sent, as `Some(value)` with `null` as `Some(None)`; an absent field stays
/// `None` through `#[serde(default)]`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Body of `PUT /api/v1/users/{id}/role`: the role to grant, `null` to take it away.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleInput {
    pub role: Option<String>,
}

/// User fields the server owns; sending them is a 422 rather than silently ignored.
pub const USER_READ_ONLY: &[&str] = &[
    "id",
    "active_sessions",
    "sessions_revoked",
    "created_at",
    "updated_at",
];

/// A team as stored (members live in a separate index so a GET stays cheap).
#[derive(Debug, Clone, PartialEq)]
pub struct Team {
    pub id: u64,
    pub name: String,
    pub external_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// A team as the demo API returns it: the record plus its member count, never the members.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TeamView {
    pub id: u64,
    pub name: String,
    pub external_id: Option<String>,
    pub member_count: usize,
    pub created_at: String,
    pub updated_at: String,
}

impl TeamView {
    /// The API view of `team` with `member_count` members.
    pub fn new(team: &Team, member_count: usize) -> Self {
        TeamView {
            id: team.id,
            name: team.name.clone(),
            external_id: team.external_id.clone(),
            member_count,
            created_at: team.created_at.clone(),
            updated_at: team.updated_at.clone(),
        }
    }
}

/// The writable team fields (POST and PUT).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamInput {
    pub name: Option<String>,
    pub external_id: Option<String>,
}

/// Team fields the server owns.
pub const TEAM_READ_ONLY: &[&str] = &["id", "member_count", "created_at", "updated_at"];

/// One entry of a team's member listing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Member {
    pub user_id: u64,
    pub email: Option<String>,
}

/// Body of `POST /api/v1/teams/{id}/members`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MembersInput {
    pub user_ids: Vec<u64>,
}

/// An office users can be assigned to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Office {
    pub id: u64,
    pub name: String,
}

/// Body of `POST /api/v1/offices`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfficeInput {
    pub name: Option<String>,
}

/// A document folder users can be given access to, by `guid` or `external_id`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Folder {
    pub id: u64,
    pub guid: String,
    pub name: String,
    pub external_id: Option<String>,
}

/// Body of `POST /api/v1/folders`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FolderInput {
    pub name: Option<String>,
    pub external_id: Option<String>,
}

/// Fields the server owns on offices and folders.
pub const CATALOG_READ_ONLY: &[&str] = &["id", "guid"];

/// Reads a JSON object body into `T`.
///
/// Runs in every handler that takes a body. Errors: the body-limit rejection keeps its status
/// (413 over 1 MiB), an empty or non-JSON body is 400, a non-object, a `read_only` field or a
/// field `T` does not know or cannot hold is 422.
pub fn parse_body<T: DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
    read_only: &[&str],
) -> DemoResult<T> {
    let bytes = body.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            DemoError::new(status, "bad_request", "request body is larger than 1 MiB")
        } else {
            DemoError::new(status, "bad_request", rejection.body_text())
        }
    })?;
    if bytes.is_empty() {
        return Err(DemoError::bad_request("a JSON request body is required"));
    }
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| DemoError::bad_request(format!("malformed JSON: {e}")))?;
    parse_value(&value, read_only)
}

/// Reads an already parsed JSON body into `T`: a non-object, a `read_only` field or a field
/// `T` does not know or cannot hold is 422.
pub fn parse_value<T: DeserializeOwned>(value: &Value, read_only: &[&str]) -> DemoResult<T> {
    let Some(obj) = value.as_object() else {
        return Err(DemoError::validation("the body must be a JSON object"));
    };
    if let Some(field) = obj.keys().find(|k| read_only.contains(&k.as_str())) {
        return Err(DemoError::validation(format!(
            "field `{field}` is read-only"
        )));
    }
    T::deserialize(value).map_err(|e| DemoError::validation(blame_field::<T>(obj, e)))
}

/// The deserialisation error prefixed with the field that caused it, found by re-reading each
/// field alone (serde_json's own message names the type problem but not the field).
fn blame_field<T: DeserializeOwned>(
    obj: &serde_json::Map<String, Value>,
    e: serde_json::Error,
) -> String {
    let culprit = obj.iter().find(|(k, v)| {
        let single = Value::Object(std::iter::once(((*k).clone(), (*v).clone())).collect());
        T::deserialize(&single).is_err_and(|e| !e.to_string().starts_with("missing field"))
    });
    match culprit {
        Some((field, _)) => format!("`{field}`: {e}"),
        None => e.to_string(),
    }
}

/// A syntactically plausible email: one `@` with text on both sides, no whitespace, ≤ 254 chars.
pub fn is_plausible_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && s.len() <= 254
        && !s.chars().any(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Result<Bytes, BytesRejection> {
        Ok(Bytes::from(s.to_string()))
    }

    #[test]
    fn malformed_json_is_400_and_unknown_field_is_422() {
        let e = parse_body::<TeamInput>(ok("{\"name\":"), TEAM_READ_ONLY).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        let e = parse_body::<TeamInput>(ok(r#"{"name":"a","colour":"red"}"#), TEAM_READ_ONLY)
            .unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(e.message.contains("colour"), "{}", e.message);
        let e = parse_body::<TeamInput>(ok(r#"{"id":3,"name":"a"}"#), TEAM_READ_ONLY).unwrap_err();
        assert_eq!(e.message, "field `id` is read-only");
        let e = parse_body::<TeamInput>(ok("[1]"), TEAM_READ_ONLY).unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        let e = parse_body::<TeamInput>(ok(""), TEAM_READ_ONLY).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn wrong_types_are_422() {
        let e = parse_body::<UserInput>(ok(r#"{"email":"a@b","office_id":"x"}"#), USER_READ_ONLY)
            .unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        let e =
            parse_body::<UserInput>(ok(r#"{"email":"a@b","metadata":{"k":1}}"#), &[]).unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        let e = parse_body::<UserInput>(ok(r#"{"email":"a@b","status":"gone"}"#), &[]).unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        let u: UserInput = parse_body(
            ok(r#"{"email":"a@b","status":"inactive","phone":null}"#),
            &[],
        )
        .unwrap();
        assert_eq!(u.status, Some(UserStatus::Inactive));
        assert_eq!(u.phone, None);
    }

    #[test]
    fn email_plausibility() {
        assert!(is_plausible_email("jo@example.com"));
        for bad in ["", "jo", "@x", "jo@", "j o@x.com", "a@b@c"] {
            assert!(!is_plausible_email(bad), "{bad}");
        }
    }
}
