//! Tombstones: resources deleted over SCIM whose data the application keeps.
//!
//! RFC 7644 §3.6 lets a service provider keep a deleted resource's data but requires that it
//! answer 404 for it and omit it from queries. When the legacy app keeps the record (draftt
//! deactivates instead of deleting), the gateway remembers the delete here: every operation
//! on the id is a 404, lists leave it out, and a create with its userName or externalId is
//! refused rather than matched to the kept account.

use super::{Store, StoreResult, with_pool};
use serde::Serialize;
use std::collections::HashSet;

/// One deleted resource the application keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tombstone {
    /// `User` or `Group`.
    pub resource_type: String,
    /// Its SCIM id.
    pub scim_id: String,
    /// Its userName (or displayName) lower-cased, for refusing a create that reuses it.
    pub name_key: Option<String>,
    /// Its externalId, for the same.
    pub external_id: Option<String>,
    /// When it was deleted (Unix ms).
    pub deleted_ms: i64,
}

/// Records and answers tombstones.
pub trait TombstoneStore: Send + Sync {
    /// Records a delete (replacing an earlier one of the same id); runs when the delete's
    /// plan completed.
    fn put_tombstone(&self, t: &Tombstone) -> impl Future<Output = StoreResult<()>> + Send;

    /// Whether `id` was deleted: one indexed read, before any operation on the id.
    fn is_tombstoned(
        &self,
        resource_type: &str,
        id: &str,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Which of `ids` were deleted (one query per list page).
    fn tombstoned_among(
        &self,
        resource_type: &str,
        ids: &[String],
    ) -> impl Future<Output = StoreResult<HashSet<String>>> + Send;

    /// A tombstone with this name key or externalId, if any (before a create).
    fn tombstone_matching(
        &self,
        resource_type: &str,
        name_key: Option<&str>,
        external_id: Option<&str>,
    ) -> impl Future<Output = StoreResult<Option<Tombstone>>> + Send;

    /// The tombstones of a type, newest first, at most `limit` (`scimgate deleted`).
    fn tombstones(
        &self,
        resource_type: &str,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<Tombstone>>> + Send;

    /// Removes a tombstone, so the kept record is visible over SCIM again (an operator's
    /// decision, e.g. after reactivating the same person's account in the app); `false` when
    /// there was none.
    fn remove_tombstone(
        &self,
        resource_type: &str,
        id: &str,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// How many resources of a type are tombstoned.
    fn tombstone_count(&self, resource_type: &str)
    -> impl Future<Output = StoreResult<u64>> + Send;

    /// Whether any resource of a type is tombstoned (one index probe, however many are).
    fn any_tombstoned(&self, resource_type: &str)
    -> impl Future<Output = StoreResult<bool>> + Send;
}

type Row = (String, String, Option<String>, Option<String>, i64);

fn tombstone(r: Row) -> Tombstone {
    let (resource_type, scim_id, name_key, external_id, deleted_ms) = r;
    Tombstone {
        resource_type,
        scim_id,
        name_key,
        external_id,
        deleted_ms,
    }
}

impl TombstoneStore for Store {
    async fn put_tombstone(&self, t: &Tombstone) -> StoreResult<()> {
        let sql = "INSERT INTO tombstones (resource_type, scim_id, name_key, external_id, \
                   deleted_ms) VALUES ($1, $2, $3, $4, $5) \
                   ON CONFLICT (resource_type, scim_id) DO UPDATE SET \
                   name_key = excluded.name_key, external_id = excluded.external_id, \
                   deleted_ms = excluded.deleted_ms";
        with_pool!(self, pool => sqlx::query(sql)
            .bind(&t.resource_type)
            .bind(&t.scim_id)
            .bind(&t.name_key)
            .bind(&t.external_id)
            .bind(t.deleted_ms)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    async fn is_tombstoned(&self, resource_type: &str, id: &str) -> StoreResult<bool> {
        // Every read of a type that keeps deleted records asks this.
        self.row_exists(
            "SELECT 1 FROM tombstones WHERE resource_type = $1 AND scim_id = $2",
            &[resource_type, id],
        )
        .await
    }

    async fn tombstoned_among(
        &self,
        resource_type: &str,
        ids: &[String],
    ) -> StoreResult<HashSet<String>> {
        let mut out = HashSet::new();
        for chunk in ids.chunks(500) {
            let rows: Vec<(String,)> = with_pool!(self, pool => {
                let mut qb = sqlx::QueryBuilder::new(
                    "SELECT scim_id FROM tombstones WHERE resource_type = ",
                );
                qb.push_bind(resource_type).push(" AND scim_id IN (");
                let mut sep = qb.separated(", ");
                for id in chunk {
                    sep.push_bind(id.as_str());
                }
                qb.push(")");
                qb.build_query_as().fetch_all(pool).await
            })?;
            out.extend(rows.into_iter().map(|(id,)| id));
        }
        Ok(out)
    }

    async fn tombstone_matching(
        &self,
        resource_type: &str,
        name_key: Option<&str>,
        external_id: Option<&str>,
    ) -> StoreResult<Option<Tombstone>> {
        let sql = "SELECT resource_type, scim_id, name_key, external_id, deleted_ms \
                   FROM tombstones WHERE resource_type = $1 \
                   AND (name_key = $2 OR external_id = $3) ORDER BY deleted_ms DESC LIMIT 1";
        let row: Option<Row> = with_pool!(self, pool => sqlx::query_as(sql)
            .bind(resource_type)
            .bind(name_key)
            .bind(external_id)
            .fetch_optional(pool)
            .await)?;
        Ok(row.map(tombstone))
    }

    async fn tombstones(&self, resource_type: &str, limit: u32) -> StoreResult<Vec<Tombstone>> {
        let sql = "SELECT resource_type, scim_id, name_key, external_id, deleted_ms \
                   FROM tombstones WHERE resource_type = $1 ORDER BY deleted_ms DESC LIMIT $2";
        let rows: Vec<Row> = with_pool!(self, pool => sqlx::query_as(sql)
            .bind(resource_type)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await)?;
        Ok(rows.into_iter().map(tombstone).collect())
    }

    async fn remove_tombstone(&self, resource_type: &str, id: &str) -> StoreResult<bool> {
        let sql = "DELETE FROM tombstones WHERE resource_type = $1 AND scim_id = $2";
        let n = with_pool!(self, pool => sqlx::query(sql)
            .bind(resource_type)
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    async fn tombstone_count(&self, resource_type: &str) -> StoreResult<u64> {
        let sql = "SELECT COUNT(*) FROM tombstones WHERE resource_type = $1";
        let n: i64 = with_pool!(self, pool => sqlx::query_scalar(sql)
            .bind(resource_type)
            .fetch_one(pool)
            .await)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn any_tombstoned(&self, resource_type: &str) -> StoreResult<bool> {
        // Every list of a type that keeps deleted records asks this.
        self.row_exists(
            "SELECT 1 FROM tombstones WHERE resource_type = $1 LIMIT 1",
            &[resource_type],
        )
        .await
    }
}

impl Store {
    /// Whether `sql` (binding `params` as `$1`, `$2`, …) finds a row: on this thread when the
    /// inline reader can answer, else on the pool.
    async fn row_exists(&self, sql: &str, params: &[&str]) -> StoreResult<bool> {
        if let Some(found) = self.try_inline(|c| {
            super::inline::optional_row(c, sql, rusqlite::params_from_iter(params), |_| Ok(()))
        }) {
            return Ok(found.is_some());
        }
        let row: Option<(i32,)> = with_pool!(self, pool => {
            let mut q = sqlx::query_as(sql);
            for p in params {
                q = q.bind(*p);
            }
            q.fetch_optional(pool).await
        })?;
        Ok(row.is_some())
    }
}
