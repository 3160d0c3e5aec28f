//! Durable plans: the intent of an operation that needs more than one legacy call.
//!
//! A plan is written before its first call (steps, resource, a lease held by whoever runs it),
//! its progress is written as steps succeed, and it ends `done`, or `failed` once its retries
//! are spent. A failure, a timeout or a crash leaves it `pending`: the plan worker claims due
//! plans whose lease has lapsed (a conditional `UPDATE`, so of several replicas exactly one
//! wins) and resumes them from the first step not marked done.
//!
//! Plans live in *slots* per resource (`active`, `membership`, `delete`, `create`, …): a new
//! plan replaces whatever the slot held, so a stale plan never runs after a newer one, and the
//! slot's row answers "did the last plan for this resource complete?". A plan in the `delete`
//! slot replaces every slot of its resource. A runner that lost its row (replaced, abandoned)
//! sees its next progress write affect no row and stops.

use super::{Store, StoreError, StoreResult, with_pool};
use chrono::Utc;
use serde::Serialize;
use serde_json::Value;

/// Where a plan stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PlanState {
    /// Not complete: running (its lease is live) or waiting for its next attempt.
    Pending,
    /// Every step succeeded.
    Done,
    /// Its attempts are spent; waits for an operator ("retry now" or "abandon").
    Failed,
    /// An operator gave it up; kept for the record.
    Abandoned,
}

impl PlanState {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PlanState::Pending => "pending",
            PlanState::Done => "done",
            PlanState::Failed => "failed",
            PlanState::Abandoned => "abandoned",
        }
    }

    fn parse(s: &str) -> StoreResult<PlanState> {
        Ok(match s {
            "pending" => PlanState::Pending,
            "done" => PlanState::Done,
            "failed" => PlanState::Failed,
            "abandoned" => PlanState::Abandoned,
            other => {
                return Err(StoreError::Internal(format!(
                    "unknown plan state '{other}'"
                )));
            }
        })
    }
}

/// A plan about to run, as [`PlanStore::begin_plan`] records it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPlan {
    /// Unique id (a UUID), also the operation id in logs.
    pub id: String,
    /// `User` or `Group`.
    pub resource_type: String,
    /// SCIM id of the resource the plan is about.
    pub resource_id: String,
    /// The slot it replaces (see the module documentation).
    pub slot: String,
    /// What it does, e.g. `on_deactivate`, `on_group_delete`, `create rollback`.
    pub kind: String,
    /// userName or displayName, for the status page.
    pub label: Option<String>,
    /// The steps, as the runner encodes them.
    pub steps: Value,
    /// Its calls need the SCIM caller's own credential (pass-through auth): the background
    /// worker cannot run it; only the client's retry can.
    pub needs_caller: bool,
}

/// A stored plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanRecord {
    /// Unique id.
    pub id: String,
    /// `User` or `Group`.
    pub resource_type: String,
    /// SCIM id of the resource.
    pub resource_id: String,
    /// Its slot.
    pub slot: String,
    /// What it does.
    pub kind: String,
    /// userName or displayName, when known.
    pub label: Option<String>,
    /// The steps, as the runner encoded them.
    pub steps: Value,
    /// How many steps are known to have succeeded (the next one to run is `steps[done]`).
    pub done: usize,
    /// Where it stands.
    pub state: PlanState,
    /// Attempts that failed so far.
    pub attempts: u32,
    /// The last failure, as the runner described it.
    pub last_error: Option<String>,
    /// When the next attempt is due (Unix ms).
    pub next_at: i64,
    /// Who holds it, while it runs.
    pub lease_owner: Option<String>,
    /// Until when the lease holds (Unix ms); a lapsed lease means nobody runs it.
    pub lease_until: Option<i64>,
    /// See [`NewPlan::needs_caller`].
    pub needs_caller: bool,
    /// When it was recorded (Unix ms).
    pub created_ms: i64,
    /// When it last changed (Unix ms).
    pub updated_ms: i64,
}

impl PlanRecord {
    /// Whether someone holds a live lease on it at `now_ms` (it is running).
    pub fn running(&self, now_ms: i64) -> bool {
        self.state == PlanState::Pending && self.lease_until.is_some_and(|u| u > now_ms)
    }

    /// Number of steps.
    pub fn step_count(&self) -> usize {
        self.steps.as_array().map_or(0, Vec::len)
    }
}

/// How many plans wait, by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanCounts {
    /// Pending (running or waiting for a retry).
    pub pending: u64,
    /// Failed (attempts spent).
    pub failed: u64,
}

/// The current time in Unix milliseconds, the unit plan times are kept in.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Records and moves durable plans.
pub trait PlanStore: Send + Sync {
    /// Records `plan` as pending, leased to `owner` until `lease_until`, replacing its slot
    /// (every slot of the resource for `delete`). Runs before the plan's first call.
    fn begin_plan(
        &self,
        plan: &NewPlan,
        owner: &str,
        lease_until: i64,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Marks the first `done` steps as succeeded and extends the lease; `false` when `owner`
    /// no longer holds the plan (replaced, abandoned, lease taken over): the caller stops.
    fn plan_progress(
        &self,
        id: &str,
        owner: &str,
        done: usize,
        lease_until: i64,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Marks the plan done (all `done` steps) and releases it; `false` when `owner` no longer
    /// holds it.
    fn plan_complete(
        &self,
        id: &str,
        owner: &str,
        done: usize,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Deletes a plan `owner` holds that is no longer needed (a rollback whose operation
    /// completed); `false` when `owner` no longer holds it.
    fn discard_plan(&self, id: &str, owner: &str)
    -> impl Future<Output = StoreResult<bool>> + Send;

    /// Records a failed attempt after `done` steps: pending again from `retry_at` (Unix ms),
    /// or `failed` when `retry_at` is `None`; the lease is released. `false` when `owner`
    /// no longer holds it.
    fn plan_attempt_failed(
        &self,
        id: &str,
        owner: &str,
        done: usize,
        error: &str,
        retry_at: Option<i64>,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Claims up to `limit` pending plans due at `now` whose lease has lapsed, for `owner`
    /// until `lease_until`; each claim is a conditional update, so two replicas never claim
    /// the same plan. Plans that need the caller's credential are left alone.
    fn claim_due_plans(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<PlanRecord>>> + Send;

    /// The plan in a resource's slot, whatever its state; `None` when the slot is empty.
    fn slot_plan(
        &self,
        resource_type: &str,
        resource_id: &str,
        slot: &str,
    ) -> impl Future<Output = StoreResult<Option<PlanRecord>>> + Send;

    /// One plan by id.
    fn plan(&self, id: &str) -> impl Future<Output = StoreResult<Option<PlanRecord>>> + Send;

    /// Plans in one of `states`, oldest first, at most `limit` (status page, `scimgate plans`).
    fn plans_in(
        &self,
        states: &[PlanState],
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<PlanRecord>>> + Send;

    /// How many plans are pending and failed (metrics, status page).
    fn plan_counts(&self) -> impl Future<Output = StoreResult<PlanCounts>> + Send;

    /// An operator's "retry now": a pending or failed plan becomes due at once, with its
    /// attempts counted afresh. `false` when no such plan waits.
    fn retry_plan_now(&self, id: &str) -> impl Future<Output = StoreResult<bool>> + Send;

    /// An operator's "abandon": a pending or failed plan stops for good (a runner holding it
    /// stops at its next step). `false` when no such plan waits.
    fn abandon_plan(&self, id: &str) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Drops every lease (the single process of a SQLite store starting: whoever held them is
    /// gone). Returns how many plans were released.
    fn release_plan_leases(&self) -> impl Future<Output = StoreResult<u64>> + Send;
}

#[derive(sqlx::FromRow)]
struct PlanRow {
    id: String,
    resource_type: String,
    resource_id: String,
    slot: String,
    kind: String,
    label: Option<String>,
    steps: String,
    done: i64,
    state: String,
    attempts: i64,
    last_error: Option<String>,
    next_at: i64,
    lease_owner: Option<String>,
    lease_until: Option<i64>,
    needs_caller: i64,
    created_ms: i64,
    updated_ms: i64,
}

const COLUMNS: &str = "id, resource_type, resource_id, slot, kind, label, steps, done, state, \
                       attempts, last_error, next_at, lease_owner, lease_until, needs_caller, \
                       created_ms, updated_ms";

fn record(row: PlanRow) -> StoreResult<PlanRecord> {
    let PlanRow {
        id,
        resource_type,
        resource_id,
        slot,
        kind,
        label,
        steps,
        done,
        state,
        attempts,
        last_error,
        next_at,
        lease_owner,
        lease_until,
        needs_caller,
        created_ms,
        updated_ms,
    } = row;
    Ok(PlanRecord {
        steps: serde_json::from_str(&steps)
            .map_err(|e| StoreError::Internal(format!("plan {id}: bad steps: {e}")))?,
        id,
        resource_type,
        resource_id,
        slot,
        kind,
        label,
        done: usize::try_from(done).unwrap_or(0),
        state: PlanState::parse(&state)?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        last_error,
        next_at,
        lease_owner,
        lease_until,
        needs_caller: needs_caller != 0,
        created_ms,
        updated_ms,
    })
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl PlanStore for Store {
    async fn begin_plan(&self, p: &NewPlan, owner: &str, lease_until: i64) -> StoreResult<()> {
        let steps = serde_json::to_string(&p.steps)
            .map_err(|e| StoreError::Internal(format!("plan encoding: {e}")))?;
        let now = now_ms();
        // The slot's row is replaced in one statement (the unique index on the slot makes two
        // concurrent replacements, on any replica, leave exactly one plan); the replaced
        // runner's next write then matches no row (its id is gone) and it stops. A delete
        // also drops the resource's other slots: nothing planned before it may run after it.
        let upsert = format!(
            "INSERT INTO plans ({COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, 0, 'pending', 0, NULL, $8, $9, $10, $11, $12, $12) \
             ON CONFLICT (resource_type, resource_id, slot) DO UPDATE SET \
             id = excluded.id, kind = excluded.kind, label = excluded.label, \
             steps = excluded.steps, done = 0, state = 'pending', attempts = 0, \
             last_error = NULL, next_at = excluded.next_at, lease_owner = excluded.lease_owner, \
             lease_until = excluded.lease_until, needs_caller = excluded.needs_caller, \
             created_ms = excluded.created_ms, updated_ms = excluded.updated_ms"
        );
        let others = "DELETE FROM plans WHERE resource_type = $1 AND resource_id = $2 \
                      AND slot <> 'delete'";
        macro_rules! upsert {
            ($exec:expr) => {
                sqlx::query(&upsert)
                    .bind(&p.id)
                    .bind(&p.resource_type)
                    .bind(&p.resource_id)
                    .bind(&p.slot)
                    .bind(&p.kind)
                    .bind(&p.label)
                    .bind(&steps)
                    .bind(now)
                    .bind(owner)
                    .bind(lease_until)
                    .bind(i64::from(p.needs_caller))
                    .bind(now)
                    .execute($exec)
                    .await
                    .map(|_| ())
            };
        }
        if p.slot == "delete" {
            with_pool!(self, pool => {
                let mut tx = pool.begin().await?;
                sqlx::query(others)
                    .bind(&p.resource_type)
                    .bind(&p.resource_id)
                    .execute(&mut *tx)
                    .await?;
                upsert!(&mut *tx)?;
                tx.commit().await
            })?;
        } else {
            // One statement, atomic by itself: no transaction round trips.
            with_pool!(self, pool => upsert!(pool))?;
        }
        Ok(())
    }

    async fn plan_progress(
        &self,
        id: &str,
        owner: &str,
        done: usize,
        lease_until: i64,
    ) -> StoreResult<bool> {
        let sql = "UPDATE plans SET done = $1, lease_until = $2, updated_ms = $3 \
                   WHERE id = $4 AND lease_owner = $5 AND state = 'pending'";
        let n = with_pool!(self, pool => sqlx::query(sql)
            .bind(to_i64(done))
            .bind(lease_until)
            .bind(now_ms())
            .bind(id)
            .bind(owner)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    async fn plan_complete(&self, id: &str, owner: &str, done: usize) -> StoreResult<bool> {
        let sql = "UPDATE plans SET state = 'done', done = $4, last_error = NULL, \
                   lease_owner = NULL, lease_until = NULL, updated_ms = $1 \
                   WHERE id = $2 AND lease_owner = $3 AND state = 'pending'";
        let n = with_pool!(self, pool => sqlx::query(sql)
            .bind(now_ms())
            .bind(id)
            .bind(owner)
            .bind(to_i64(done))
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    async fn discard_plan(&self, id: &str, owner: &str) -> StoreResult<bool> {
        let sql = "DELETE FROM plans WHERE id = $1 AND lease_owner = $2";
        let n = with_pool!(self, pool => sqlx::query(sql)
            .bind(id)
            .bind(owner)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    async fn plan_attempt_failed(
        &self,
        id: &str,
        owner: &str,
        done: usize,
        error: &str,
        retry_at: Option<i64>,
    ) -> StoreResult<bool> {
        let now = now_ms();
        let (state, next) = match retry_at {
            Some(t) => ("pending", t),
            None => ("failed", now),
        };
        let sql = "UPDATE plans SET state = $1, done = $2, attempts = attempts + 1, \
                   last_error = $3, next_at = $4, lease_owner = NULL, lease_until = NULL, \
                   updated_ms = $5 WHERE id = $6 AND lease_owner = $7 AND state = 'pending'";
        let n = with_pool!(self, pool => sqlx::query(sql)
            .bind(state)
            .bind(to_i64(done))
            .bind(error)
            .bind(next)
            .bind(now)
            .bind(id)
            .bind(owner)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    async fn claim_due_plans(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> StoreResult<Vec<PlanRecord>> {
        let due = "SELECT id FROM plans WHERE state = 'pending' AND next_at <= $1 \
                   AND needs_caller = 0 AND (lease_until IS NULL OR lease_until < $1) \
                   ORDER BY next_at LIMIT $2";
        let ids: Vec<(String,)> = with_pool!(self, pool => sqlx::query_as(due)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await)?;
        // The same condition again in the UPDATE: of two claimers that read the same ids,
        // only one update matches each row.
        let claim = "UPDATE plans SET lease_owner = $1, lease_until = $2, updated_ms = $3 \
                     WHERE id = $4 AND state = 'pending' \
                     AND (lease_until IS NULL OR lease_until < $3)";
        let read = format!("SELECT {COLUMNS} FROM plans WHERE id = $1");
        let mut out = Vec::new();
        for (id,) in ids {
            let n = with_pool!(self, pool => sqlx::query(claim)
                .bind(owner)
                .bind(lease_until)
                .bind(now)
                .bind(&id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected()))?;
            if n != 1 {
                continue;
            }
            let row: Option<PlanRow> = with_pool!(self, pool => sqlx::query_as(&read)
                .bind(&id)
                .fetch_optional(pool)
                .await)?;
            if let Some(row) = row {
                out.push(record(row)?);
            }
        }
        Ok(out)
    }

    async fn slot_plan(
        &self,
        resource_type: &str,
        resource_id: &str,
        slot: &str,
    ) -> StoreResult<Option<PlanRecord>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM plans WHERE resource_type = $1 AND resource_id = $2 \
             AND slot = $3"
        );
        let row: Option<PlanRow> = with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(resource_type)
            .bind(resource_id)
            .bind(slot)
            .fetch_optional(pool)
            .await)?;
        row.map(record).transpose()
    }

    async fn plan(&self, id: &str) -> StoreResult<Option<PlanRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM plans WHERE id = $1");
        let row: Option<PlanRow> = with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await)?;
        row.map(record).transpose()
    }

    async fn plans_in(&self, states: &[PlanState], limit: u32) -> StoreResult<Vec<PlanRecord>> {
        if states.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<PlanRow> = with_pool!(self, pool => {
            let mut qb = sqlx::QueryBuilder::new(format!(
                "SELECT {COLUMNS} FROM plans WHERE state IN ("
            ));
            let mut sep = qb.separated(", ");
            for s in states {
                sep.push_bind(s.as_str());
            }
            qb.push(") ORDER BY created_ms, id LIMIT ")
                .push_bind(i64::from(limit));
            qb.build_query_as().fetch_all(pool).await
        })?;
        rows.into_iter().map(record).collect()
    }

    async fn plan_counts(&self) -> StoreResult<PlanCounts> {
        let sql = "SELECT state, COUNT(*) FROM plans \
                   WHERE state IN ('pending', 'failed') GROUP BY state";
        let rows: Vec<(String, i64)> =
            with_pool!(self, pool => sqlx::query_as(sql).fetch_all(pool).await)?;
        let mut c = PlanCounts::default();
        for (state, n) in rows {
            let n = u64::try_from(n).unwrap_or(0);
            match state.as_str() {
                "pending" => c.pending = n,
                "failed" => c.failed = n,
                _ => {}
            }
        }
        Ok(c)
    }

    async fn retry_plan_now(&self, id: &str) -> StoreResult<bool> {
        let now = now_ms();
        let sql = "UPDATE plans SET state = 'pending', attempts = 0, next_at = $1, \
                   updated_ms = $1 WHERE id = $2 AND state IN ('pending', 'failed')";
        let n = with_pool!(self, pool => sqlx::query(sql)
            .bind(now)
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    async fn abandon_plan(&self, id: &str) -> StoreResult<bool> {
        let sql = "UPDATE plans SET state = 'abandoned', lease_owner = NULL, \
                   lease_until = NULL, updated_ms = $1 \
                   WHERE id = $2 AND state IN ('pending', 'failed')";
        let n = with_pool!(self, pool => sqlx::query(sql)
            .bind(now_ms())
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    async fn release_plan_leases(&self) -> StoreResult<u64> {
        let sql = "UPDATE plans SET lease_owner = NULL, lease_until = NULL \
                   WHERE state = 'pending' AND lease_owner IS NOT NULL";
        let n = with_pool!(self, pool => sqlx::query(sql)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n)
    }
}
