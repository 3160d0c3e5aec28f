//! Sync status for the status page: is Entra still talking to us, and is it going well?
//!
//! Only the time of the last request is stored; the counts are derived from the id map, the
//! gateway-managed groups and the audit log, so they can never disagree with them.

use super::{Store, StoreResult, db_time, with_pool};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// A snapshot of provisioning health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncState {
    /// When the last SCIM request arrived; `None` if none ever did.
    pub last_request: Option<DateTime<Utc>>,
    /// Users in the id map.
    pub users_managed: u64,
    /// Groups in the id map plus gateway-managed groups that are not in it (the gateway maps
    /// the groups it creates, so each group counts once).
    pub groups_managed: u64,
    /// Requests answered with 5xx (gateway or legacy app failing) in the last 24 hours.
    pub errors_24h: u64,
    /// Requests answered with 4xx (rejected as invalid, conflicting, unknown) in the last
    /// 24 hours.
    pub rejected_24h: u64,
}

/// Records traffic and reports provisioning health.
pub trait SyncStatus: Send + Sync {
    /// Notes that a SCIM request arrived at `time`; runs on every request. An earlier time
    /// than the one stored (a slow replica) is ignored.
    fn record_request(&self, time: DateTime<Utc>) -> impl Future<Output = StoreResult<()>> + Send;

    /// The current snapshot, for the status page and `/metrics`.
    fn status(&self) -> impl Future<Output = StoreResult<SyncState>> + Send;
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl SyncStatus for Store {
    async fn record_request(&self, time: DateTime<Utc>) -> StoreResult<()> {
        let sql = "INSERT INTO sync_state (id, last_request) VALUES (1, $1) \
                   ON CONFLICT (id) DO UPDATE SET last_request = excluded.last_request \
                   WHERE sync_state.last_request IS NULL \
                   OR sync_state.last_request < excluded.last_request";
        with_pool!(self, pool => sqlx::query(sql)
            .bind(db_time(time))
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    async fn status(&self) -> StoreResult<SyncState> {
        let since = db_time(Utc::now() - Duration::hours(24));
        // One round trip; each count is an index range scan.
        let sql = "SELECT \
             (SELECT last_request FROM sync_state WHERE id = 1), \
             (SELECT COUNT(*) FROM id_map WHERE resource_type = 'User'), \
             (SELECT COUNT(*) FROM id_map WHERE resource_type = 'Group'), \
             (SELECT COUNT(*) FROM groups g WHERE NOT EXISTS (SELECT 1 FROM id_map m \
                WHERE m.resource_type = 'Group' AND m.scim_id = g.id)), \
             (SELECT COUNT(*) FROM audit_log WHERE time >= $1 AND scim_status >= 500), \
             (SELECT COUNT(*) FROM audit_log WHERE time >= $1 \
                AND scim_status >= 400 AND scim_status < 500)";
        type Row = (Option<DateTime<Utc>>, i64, i64, i64, i64, i64);
        let (last_request, users, mapped_groups, own_groups, errors, rejected): Row =
            with_pool!(self, pool => sqlx::query_as(sql).bind(since).fetch_one(pool).await)?;
        Ok(SyncState {
            last_request,
            users_managed: count(users),
            groups_managed: count(mapped_groups) + count(own_groups),
            errors_24h: count(errors),
            rejected_24h: count(rejected),
        })
    }
}
