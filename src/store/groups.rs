//! Groups the gateway keeps itself, for legacy apps that have no groups of their own (the
//! profile maps membership to roles or nothing).
//!
//! Entra sends membership changes as PATCH add/remove of a few members, even for groups of
//! 100,000. Every membership operation therefore touches only the rows it names: one `UPDATE`
//! of the group's `modified` plus one multi-row statement per 500 members, each an indexed
//! write on the `(group_id, member_id)` primary key. Nothing reads or counts the whole group.

use super::{ExternalId, ScimId, Store, StoreError, StoreResult, conflict_or, db_time, with_pool};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Members per statement: well under SQLite's and PostgreSQL's bind-parameter limits.
const CHUNK: usize = 500;

/// A gateway-managed group, without its members (page them with [`GroupStore::members`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// The SCIM id scimgate assigned.
    pub id: ScimId,
    /// SCIM `displayName`.
    pub display_name: String,
    /// Entra's externalId, if sent.
    pub external_id: Option<ExternalId>,
    /// `meta.created`.
    pub created: DateTime<Utc>,
    /// `meta.lastModified`: any change to the group or its membership.
    pub modified: DateTime<Utc>,
}

/// Gateway-managed groups and their memberships.
pub trait GroupStore: Send + Sync {
    /// Creates a group with a fresh id (POST /Groups). [`StoreError::Conflict`] when another
    /// group has the same displayName ignoring case (Entra matches groups by it).
    fn create_group(
        &self,
        display_name: &str,
        external_id: Option<&ExternalId>,
    ) -> impl Future<Output = StoreResult<Group>> + Send;

    /// The group, or `None` if unknown (GET /Groups/{id}).
    fn get_group(&self, id: &ScimId) -> impl Future<Output = StoreResult<Option<Group>>> + Send;

    /// Groups ordered by id, a page at a time (GET /Groups).
    fn list_groups(
        &self,
        offset: u64,
        limit: u64,
    ) -> impl Future<Output = StoreResult<Vec<Group>>> + Send;

    /// How many groups there are (`totalResults` of an unfiltered GET /Groups).
    fn count_groups(&self) -> impl Future<Output = StoreResult<u64>> + Send;

    /// The group named `display_name` ignoring case, if any (`filter=displayName eq "…"`,
    /// Entra's way of finding a group); one indexed read.
    fn group_by_display_name(
        &self,
        display_name: &str,
    ) -> impl Future<Output = StoreResult<Option<Group>>> + Send;

    /// The groups whose externalId is exactly `external_id` (`filter=externalId eq "…"`);
    /// one indexed read.
    fn groups_by_external_id(
        &self,
        external_id: &ExternalId,
    ) -> impl Future<Output = StoreResult<Vec<Group>>> + Send;

    /// Replaces displayName and externalId (PUT, or PATCH of those attributes);
    /// [`StoreError::NotFound`] if the group does not exist, [`StoreError::Conflict`] if
    /// another group has the new displayName ignoring case.
    fn update_group(
        &self,
        id: &ScimId,
        display_name: &str,
        external_id: Option<&ExternalId>,
    ) -> impl Future<Output = StoreResult<Group>> + Send;

    /// Deletes the group and its memberships; `false` if it did not exist.
    fn delete_group(&self, id: &ScimId) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Adds members (PATCH add); ids already present are skipped. Returns how many were new;
    /// [`StoreError::NotFound`] if the group does not exist. Cost is O(`members`).
    fn add_members(
        &self,
        group: &ScimId,
        members: &[ScimId],
    ) -> impl Future<Output = StoreResult<u64>> + Send;

    /// Removes members (PATCH remove); absent ids are skipped. Returns how many were removed;
    /// [`StoreError::NotFound`] if the group does not exist. Cost is O(`members`).
    fn remove_members(
        &self,
        group: &ScimId,
        members: &[ScimId],
    ) -> impl Future<Output = StoreResult<u64>> + Send;

    /// A page of member ids ordered by id (GET of a group with members).
    fn members(
        &self,
        group: &ScimId,
        offset: u64,
        limit: u64,
    ) -> impl Future<Output = StoreResult<Vec<ScimId>>> + Send;

    /// The groups `member` belongs to, ordered by id (what a membership hook is told, a user's
    /// `groups` attribute); one indexed read joined to the groups it names.
    fn groups_of(&self, member: &ScimId) -> impl Future<Output = StoreResult<Vec<Group>>> + Send;

    /// Removes `member` from every group (the user was deleted) and marks those groups
    /// modified; returns how many memberships were dropped. One transaction of indexed writes.
    fn drop_member(&self, member: &ScimId) -> impl Future<Output = StoreResult<u64>> + Send;
}

type GroupRow = (String, String, Option<String>, DateTime<Utc>, DateTime<Utc>);

const GROUP_COLUMNS: &str = "id, display_name, external_id, created_at, modified_at";

/// The key displayName uniqueness and lookups use: the name lower-cased the way the SCIM
/// filter evaluator compares case-insensitive strings, so the indexed lookup and a filter
/// evaluated in the gateway agree.
pub(crate) fn display_key(display_name: &str) -> String {
    display_name.to_lowercase()
}

fn name_conflict(err: sqlx::Error, display_name: &str) -> StoreError {
    conflict_or(
        err,
        &format!("a group named '{display_name}' (ignoring case) already exists"),
    )
}

fn group(row: GroupRow) -> Group {
    let (id, display_name, external_id, created, modified) = row;
    Group {
        id: ScimId(id),
        display_name,
        external_id: external_id.map(ExternalId),
        created,
        modified,
    }
}

/// Marks the group modified; runs first in every membership transaction, so it also tells
/// whether the group exists and (PostgreSQL) locks its row for the rest of the transaction.
pub(crate) const TOUCH_GROUP_SQL: &str = "UPDATE groups SET modified_at = $2 WHERE id = $1";

/// `INSERT` of `n` memberships of group `$1`, members in `$2..=$n+1`.
pub(crate) fn insert_members_sql(n: usize) -> String {
    let rows: Vec<String> = (0..n).map(|i| format!("($1, ${})", i + 2)).collect();
    format!(
        "INSERT INTO group_members (group_id, member_id) VALUES {} ON CONFLICT DO NOTHING",
        rows.join(", ")
    )
}

/// `DELETE` of `n` memberships of group `$1`, members in `$2..=$n+1`.
pub(crate) fn delete_members_sql(n: usize) -> String {
    let params: Vec<String> = (0..n).map(|i| format!("${}", i + 2)).collect();
    format!(
        "DELETE FROM group_members WHERE group_id = $1 AND member_id IN ({})",
        params.join(", ")
    )
}

/// Sorted, deduplicated ids: one statement never names a member twice, and the write order is
/// the same in every transaction, so concurrent changes do not deadlock.
fn distinct(members: &[ScimId]) -> Vec<&str> {
    let mut ids: Vec<&str> = members.iter().map(ScimId::as_str).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

enum Change {
    Add,
    Remove,
}

impl Store {
    /// Applies one membership change in a transaction; `None` when the group does not exist.
    async fn change_members(
        &self,
        group: &ScimId,
        members: &[ScimId],
        change: Change,
    ) -> StoreResult<u64> {
        let ids = distinct(members);
        let now = db_time(Utc::now());
        let changed: Option<u64> = with_pool!(self, pool => async {
            let mut tx = pool.begin().await?;
            let touched = sqlx::query(TOUCH_GROUP_SQL)
                .bind(group.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if touched == 0 {
                return Ok::<_, sqlx::Error>(None);
            }
            let mut changed = 0;
            for chunk in ids.chunks(CHUNK) {
                let sql = match change {
                    Change::Add => insert_members_sql(chunk.len()),
                    Change::Remove => delete_members_sql(chunk.len()),
                };
                let mut q = sqlx::query(&sql).bind(group.as_str());
                for id in chunk {
                    q = q.bind(*id);
                }
                changed += q.execute(&mut *tx).await?.rows_affected();
            }
            tx.commit().await?;
            Ok(Some(changed))
        }
        .await)?;
        changed.ok_or(StoreError::NotFound)
    }
}

impl GroupStore for Store {
    async fn create_group(
        &self,
        display_name: &str,
        external_id: Option<&ExternalId>,
    ) -> StoreResult<Group> {
        let now = db_time(Utc::now());
        let g = Group {
            id: ScimId(uuid::Uuid::new_v4().to_string()),
            display_name: display_name.to_string(),
            external_id: external_id.cloned(),
            created: now,
            modified: now,
        };
        let sql = "INSERT INTO groups \
                   (id, display_name, external_id, created_at, modified_at, display_key) \
                   VALUES ($1, $2, $3, $4, $4, $5)";
        with_pool!(self, pool => sqlx::query(sql)
            .bind(g.id.as_str())
            .bind(&g.display_name)
            .bind(g.external_id.as_ref().map(ExternalId::as_str))
            .bind(now)
            .bind(display_key(display_name))
            .execute(pool)
            .await
            .map(|_| ()))
        .map_err(|e| name_conflict(e, display_name))?;
        Ok(g)
    }

    async fn get_group(&self, id: &ScimId) -> StoreResult<Option<Group>> {
        let sql = format!("SELECT {GROUP_COLUMNS} FROM groups WHERE id = $1");
        let row: Option<GroupRow> = with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(id.as_str())
            .fetch_optional(pool)
            .await)?;
        Ok(row.map(group))
    }

    async fn list_groups(&self, offset: u64, limit: u64) -> StoreResult<Vec<Group>> {
        let sql = format!("SELECT {GROUP_COLUMNS} FROM groups ORDER BY id LIMIT $1 OFFSET $2");
        let rows: Vec<GroupRow> = with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(as_i64(limit))
            .bind(as_i64(offset))
            .fetch_all(pool)
            .await)?;
        Ok(rows.into_iter().map(group).collect())
    }

    async fn update_group(
        &self,
        id: &ScimId,
        display_name: &str,
        external_id: Option<&ExternalId>,
    ) -> StoreResult<Group> {
        let sql = format!(
            "UPDATE groups SET display_name = $2, external_id = $3, modified_at = $4, \
             display_key = $5 WHERE id = $1 RETURNING {GROUP_COLUMNS}"
        );
        let row: Option<GroupRow> = with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(id.as_str())
            .bind(display_name)
            .bind(external_id.map(ExternalId::as_str))
            .bind(db_time(Utc::now()))
            .bind(display_key(display_name))
            .fetch_optional(pool)
            .await)
        .map_err(|e| name_conflict(e, display_name))?;
        row.map(group).ok_or(StoreError::NotFound)
    }

    async fn delete_group(&self, id: &ScimId) -> StoreResult<bool> {
        let n = with_pool!(self, pool => sqlx::query("DELETE FROM groups WHERE id = $1")
            .bind(id.as_str())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    async fn add_members(&self, group: &ScimId, members: &[ScimId]) -> StoreResult<u64> {
        self.change_members(group, members, Change::Add).await
    }

    async fn remove_members(&self, group: &ScimId, members: &[ScimId]) -> StoreResult<u64> {
        self.change_members(group, members, Change::Remove).await
    }

    async fn members(&self, group: &ScimId, offset: u64, limit: u64) -> StoreResult<Vec<ScimId>> {
        let sql = "SELECT member_id FROM group_members WHERE group_id = $1 \
                   ORDER BY member_id LIMIT $2 OFFSET $3";
        let rows: Vec<(String,)> = with_pool!(self, pool => sqlx::query_as(sql)
            .bind(group.as_str())
            .bind(as_i64(limit))
            .bind(as_i64(offset))
            .fetch_all(pool)
            .await)?;
        Ok(rows.into_iter().map(|(id,)| ScimId(id)).collect())
    }

    async fn groups_of(&self, member: &ScimId) -> StoreResult<Vec<Group>> {
        let sql = "SELECT g.id, g.display_name, g.external_id, g.created_at, g.modified_at \
                   FROM group_members m JOIN groups g ON g.id = m.group_id \
                   WHERE m.member_id = $1 ORDER BY g.id";
        let rows: Vec<GroupRow> = with_pool!(self, pool => sqlx::query_as(sql)
            .bind(member.as_str())
            .fetch_all(pool)
            .await)?;
        Ok(rows.into_iter().map(group).collect())
    }

    async fn drop_member(&self, member: &ScimId) -> StoreResult<u64> {
        let now = db_time(Utc::now());
        let touch = "UPDATE groups SET modified_at = $2 WHERE id IN \
                     (SELECT group_id FROM group_members WHERE member_id = $1)";
        let delete = "DELETE FROM group_members WHERE member_id = $1";
        let dropped = with_pool!(self, pool => async {
            let mut tx = pool.begin().await?;
            sqlx::query(touch)
                .bind(member.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let n = sqlx::query(delete)
                .bind(member.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            Ok::<_, sqlx::Error>(n)
        }
        .await)?;
        Ok(dropped)
    }

    async fn count_groups(&self) -> StoreResult<u64> {
        let (n,): (i64,) = with_pool!(self, pool => sqlx::query_as("SELECT COUNT(*) FROM groups")
            .fetch_one(pool)
            .await)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn group_by_display_name(&self, display_name: &str) -> StoreResult<Option<Group>> {
        let sql = format!("SELECT {GROUP_COLUMNS} FROM groups WHERE display_key = $1");
        let row: Option<GroupRow> = with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(display_key(display_name))
            .fetch_optional(pool)
            .await)?;
        Ok(row.map(group))
    }

    async fn groups_by_external_id(&self, external_id: &ExternalId) -> StoreResult<Vec<Group>> {
        let sql = format!("SELECT {GROUP_COLUMNS} FROM groups WHERE external_id = $1 ORDER BY id");
        let rows: Vec<GroupRow> = with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(external_id.as_str())
            .fetch_all(pool)
            .await)?;
        Ok(rows.into_iter().map(group).collect())
    }
}

fn as_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
