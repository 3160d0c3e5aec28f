//! The id map: which legacy record a SCIM id stands for, and Entra's externalId for it.
//!
//! Each of the three ids is unique within a resource type, and each has an index, so every
//! lookup is one indexed read.

use super::{ExternalId, LegacyId, ScimId, Store, StoreResult, conflict_or, with_lane, with_pool};
use serde::{Deserialize, Serialize};

/// One mapped resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMapping {
    /// SCIM resource type, e.g. `User` or `Group`.
    pub resource_type: String,
    /// The id published over SCIM.
    pub scim_id: ScimId,
    /// The legacy application's id.
    pub legacy_id: LegacyId,
    /// Entra's externalId, when it sent one.
    pub external_id: Option<ExternalId>,
}

/// Reads and writes the id map.
pub trait IdMap: Send + Sync {
    /// Inserts the mapping, or replaces the one with the same type and SCIM id (e.g. the
    /// externalId changed). Runs after a create or when a PATCH changes externalId.
    /// [`StoreError::Conflict`](super::StoreError::Conflict) when another SCIM id already holds
    /// the legacy id or externalId.
    fn put(&self, mapping: &IdMapping) -> impl Future<Output = StoreResult<()>> + Send;

    /// The mapping for a SCIM id (GET/PATCH/DELETE by id); `None` if unknown.
    fn by_scim_id(
        &self,
        resource_type: &str,
        id: &ScimId,
    ) -> impl Future<Output = StoreResult<Option<IdMapping>>> + Send;

    /// The mapping for a legacy id (turning legacy list results into SCIM ids).
    fn by_legacy_id(
        &self,
        resource_type: &str,
        id: &LegacyId,
    ) -> impl Future<Output = StoreResult<Option<IdMapping>>> + Send;

    /// The mapping for an externalId (Entra's `filter=externalId eq "…"` matching).
    fn by_external_id(
        &self,
        resource_type: &str,
        id: &ExternalId,
    ) -> impl Future<Output = StoreResult<Option<IdMapping>>> + Send;

    /// Forgets several deleted resources of one type in one statement; returns how many
    /// were mapped (a plan that deleted a group's users forgets them in batches).
    fn remove_many(
        &self,
        resource_type: &str,
        ids: &[ScimId],
    ) -> impl Future<Output = StoreResult<u64>> + Send;

    /// Forgets a SCIM id after the resource is deleted; `false` if it was not mapped.
    fn remove(
        &self,
        resource_type: &str,
        id: &ScimId,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
}

type MapRow = (String, String, String, Option<String>);

fn mapping(row: MapRow) -> IdMapping {
    let (resource_type, scim, legacy, external) = row;
    IdMapping {
        resource_type,
        scim_id: ScimId(scim),
        legacy_id: LegacyId(legacy),
        external_id: external.map(ExternalId),
    }
}

/// The lookup of a mapping by one column, written out at compile time (every create runs
/// one: no SQL is formatted per request).
macro_rules! select_by {
    ($column:literal) => {
        concat!(
            "SELECT resource_type, scim_id, legacy_id, external_id FROM id_map ",
            "WHERE resource_type = $1 AND ",
            $column,
            " = $2"
        )
    };
}

impl Store {
    /// The one mapping `sql` (`select_by!`: `column = $2` within resource type `$1`)
    /// finds.
    async fn mapping_by(
        &self,
        sql: &'static str,
        resource_type: &str,
        value: &str,
    ) -> StoreResult<Option<IdMapping>> {
        // Every create looks up its externalId here: on a file store on this thread when the
        // inline reader can answer at once, else on the read lane.
        if let Some(row) = self.try_inline(|conn| {
            super::inline::optional_row(conn, sql, (resource_type, value), |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
        }) {
            return Ok(row.map(mapping));
        }
        let row: Option<MapRow> = with_lane!(self, read, conn => sqlx::query_as(sql)
            .bind(resource_type)
            .bind(value)
            .fetch_optional(conn)
            .await)?;
        Ok(row.map(mapping))
    }
}

/// Records (or replaces) one mapping.
pub(crate) const UPSERT_MAPPING: &str = "INSERT INTO id_map (resource_type, scim_id, legacy_id, \
     external_id) VALUES ($1, $2, $3, $4) ON CONFLICT (resource_type, scim_id) DO UPDATE \
     SET legacy_id = excluded.legacy_id, external_id = excluded.external_id";

/// [`UPSERT_MAPPING`] in two parts around its rows, for a multi-row upsert.
pub(crate) const MAPPING_COLUMNS: &str =
    "INSERT INTO id_map (resource_type, scim_id, legacy_id, external_id) ";
pub(crate) const ON_MAPPING_CONFLICT: &str = " ON CONFLICT (resource_type, scim_id) DO UPDATE \
     SET legacy_id = excluded.legacy_id, external_id = excluded.external_id";

/// Binds a mapping's columns to [`UPSERT_MAPPING`], for either dialect.
pub(crate) fn bind_mapping<'q, DB: sqlx::Database>(
    q: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    m: &'q IdMapping,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    q.bind(m.resource_type.as_str())
        .bind(m.scim_id.as_str())
        .bind(m.legacy_id.as_str())
        .bind(m.external_id.as_ref().map(ExternalId::as_str))
}

impl IdMap for Store {
    async fn put(&self, m: &IdMapping) -> StoreResult<()> {
        with_pool!(self, pool => bind_mapping(sqlx::query(UPSERT_MAPPING), m)
            .execute(pool)
            .await
            .map(|_| ()))
        .map_err(|e| {
            conflict_or(
                e,
                &format!(
                    "{} legacy id {} or externalId already mapped to another id",
                    m.resource_type, m.legacy_id
                ),
            )
        })?;
        Ok(())
    }

    async fn by_scim_id(&self, resource_type: &str, id: &ScimId) -> StoreResult<Option<IdMapping>> {
        self.mapping_by(select_by!("scim_id"), resource_type, id.as_str())
            .await
    }

    async fn by_legacy_id(
        &self,
        resource_type: &str,
        id: &LegacyId,
    ) -> StoreResult<Option<IdMapping>> {
        self.mapping_by(select_by!("legacy_id"), resource_type, id.as_str())
            .await
    }

    async fn by_external_id(
        &self,
        resource_type: &str,
        id: &ExternalId,
    ) -> StoreResult<Option<IdMapping>> {
        self.mapping_by(select_by!("external_id"), resource_type, id.as_str())
            .await
    }

    async fn remove_many(&self, resource_type: &str, ids: &[ScimId]) -> StoreResult<u64> {
        let mut n = 0;
        // Bounded statements: SQLite allows 32,766 parameters, PostgreSQL 65,535.
        for chunk in ids.chunks(500) {
            n += with_pool!(self, pool => {
                let mut qb = sqlx::QueryBuilder::new("DELETE FROM id_map WHERE resource_type = ");
                qb.push_bind(resource_type).push(" AND scim_id IN (");
                let mut sep = qb.separated(", ");
                for id in chunk {
                    sep.push_bind(id.as_str());
                }
                qb.push(")");
                qb.build().execute(pool).await.map(|r| r.rows_affected())
            })?;
        }
        Ok(n)
    }

    async fn remove(&self, resource_type: &str, id: &ScimId) -> StoreResult<bool> {
        let sql = "DELETE FROM id_map WHERE resource_type = $1 AND scim_id = $2";
        let n = with_pool!(self, pool => sqlx::query(sql)
            .bind(resource_type)
            .bind(id.as_str())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }
}
