//! Durable plans: how an operation that needs more than one legacy call completes.
//!
//! ```text
//! request:  script plan ─▶ record (slot replaced, leased to this run) ─▶ step ─▶ progress
//!           ─▶ … ─▶ done                      (a failure: pending, next attempt with backoff)
//! worker:   claim due plans whose lease lapsed (one replica wins each) ─▶ resume from the
//!           first step not marked done ─▶ done, or pending again, or failed when spent
//! ```
//!
//! The record is written before the plan's first call and a step is marked done as it
//! succeeds (every `POST`, which HTTP does not promise to be idempotent; other steps at least
//! every [`MARK_EVERY`] steps and at the end, since re-running an idempotent `PUT`/`DELETE`
//! after a crash is harmless and a 20,000-step group delete should not cost 20,000 writes).
//! A step's `forget` names a resource whose delete it is, so the id map forgets it as soon as
//! the step succeeds. Single-call operations never come here: they stay one call and one
//! audit row.
//!
//! Plans are idempotent by contract (the bundled scripts' plans are; `missing_ok` makes a
//! delete of what is already gone succeed), so a retry, Entra's or the worker's, may re-run
//! steps that reached the app before a crash.

use super::{AppError, AppResult, Gateway};
use crate::backend::BackendRequest;
use crate::mapping::PlanStep;
use crate::metrics::PlanStepOutcome;
use crate::store::{NewPlan, PlanRecord, PlanStore, now_ms};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

/// Idempotent steps are marked done at least this often (and every `POST` at once).
const MARK_EVERY: usize = 32;

/// How the gateway retries plans; `[plans]` in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanSettings {
    /// Attempts (the request's own first one included) before a plan is marked failed.
    pub max_attempts: u32,
    /// Wait before the second attempt; doubled for each further one (with jitter).
    pub backoff_initial: Duration,
    /// Longest wait between attempts (the legacy app's `Retry-After` may ask for more).
    pub backoff_max: Duration,
    /// How long a runner holds a plan without progress before another may take it over
    /// (a crashed process's plans are resumed after this; a SQLite store's own restart
    /// releases them at once).
    pub lease: Duration,
}

impl Default for PlanSettings {
    fn default() -> Self {
        PlanSettings {
            max_attempts: 10,
            backoff_initial: Duration::from_secs(2),
            backoff_max: Duration::from_secs(600),
            lease: Duration::from_secs(120),
        }
    }
}

impl From<&crate::config::PlansConfig> for PlanSettings {
    /// The `[plans]` section as the runner takes it (zero attempts → one, a maximum below
    /// the initial backoff → the initial backoff, a lease of at least a second).
    fn from(c: &crate::config::PlansConfig) -> Self {
        PlanSettings {
            max_attempts: c.max_attempts.max(1),
            backoff_initial: Duration::from_millis(c.backoff_initial_ms),
            backoff_max: Duration::from_millis(c.backoff_max_ms.max(c.backoff_initial_ms)),
            lease: Duration::from_millis(c.lease_ms.max(1000)),
        }
    }
}

impl PlanSettings {
    /// When attempt `attempts + 1` is due after `attempts` failures, or `None` when they are
    /// spent: `initial × 2^(attempts-1)`, capped at `max`, with full jitter in its upper half
    /// (so plans that failed together do not return together), and never before `retry_after`.
    pub fn next_attempt(&self, attempts: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if attempts >= self.max_attempts {
            return None;
        }
        let exp = attempts.saturating_sub(1).min(30);
        let base = self
            .backoff_initial
            .saturating_mul(1u32 << exp)
            .min(self.backoff_max);
        let jitter = (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0;
        let wait = base.mul_f64(0.5 + jitter / 2.0);
        // A legacy app's Retry-After is honoured up to a day (a larger one is taken as a day).
        let retry_after = retry_after.map(|r| r.min(Duration::from_secs(86_400)));
        Some(retry_after.map_or(wait, |r| wait.max(r)))
    }
}

/// One step as a durable plan stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Step {
    pub method: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub missing_ok: bool,
    /// (resource type, SCIM id) this step deletes: forgotten in the id map once it succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forget: Option<(String, String)>,
    /// A resource whose delete this step completes while the application keeps its data:
    /// tombstoned once the step succeeds (see `store::tombstones`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bury: Option<Bury>,
}

/// What a tombstone records of a deleted resource the application keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Bury {
    pub resource_type: String,
    pub scim_id: String,
    pub name_key: Option<String>,
    pub external_id: Option<String>,
}

impl From<PlanStep> for Step {
    fn from(s: PlanStep) -> Self {
        Step {
            method: s.method,
            path: s.path,
            query: s.query,
            body: s.body,
            missing_ok: s.missing_ok,
            forget: None,
            bury: None,
        }
    }
}

impl Step {
    /// A step that calls a rendered endpoint request.
    pub(crate) fn of_request(req: BackendRequest) -> Step {
        Step {
            method: req.method.to_string(),
            path: req.path,
            query: req.query,
            body: req.body,
            missing_ok: false,
            forget: None,
            bury: None,
        }
    }

    pub(crate) fn request(&self) -> AppResult<BackendRequest> {
        let method = http::Method::from_bytes(self.method.as_bytes())
            .map_err(|_| AppError::Internal(format!("plan step method '{}'", self.method)))?;
        let mut req = BackendRequest::new(method, self.path.clone());
        req.query = self.query.clone();
        req.body = self.body.clone();
        Ok(req)
    }
}

/// A plan about to run: what it is about and its steps.
#[derive(Debug, Clone)]
pub(crate) struct PlanSpec {
    /// `User` or `Group`.
    pub resource_type: String,
    /// The resource's SCIM id.
    pub resource_id: String,
    /// The slot it replaces: `active`, `membership`, `delete`, `create`, `restore`.
    pub slot: &'static str,
    /// What it does (the hook's name, or e.g. `create rollback`).
    pub kind: String,
    /// userName / displayName, for the status page.
    pub label: Option<String>,
    /// The calls, in order.
    pub steps: Vec<Step>,
}

/// How a run of a plan ended.
#[derive(Debug)]
pub(crate) enum RunEnd {
    /// Every step succeeded.
    Done,
    /// Someone else owns the plan now (a newer plan replaced it, an operator abandoned it,
    /// or this runner's lease lapsed and another took over): this run stopped.
    Lost,
}

/// A step that failed: how many succeeded before it, and why.
struct StepFailure {
    done: usize,
    error: AppError,
    description: String,
}

/// A plan recorded and leased to this request, not yet run (a create's rollback, run only
/// if the create does not complete). While it exists a ticker renews its lease, so however
/// long the guarded operation takes, the worker never runs the rollback under its feet; a
/// crash stops the ticker and the lease lapses.
pub(crate) struct Begun {
    run: Run,
    renewal: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Begun {
    fn drop(&mut self) {
        if let Some(t) = self.renewal.take() {
            t.abort();
        }
    }
}

/// One run of a recorded plan: which plan, who runs it, from which step.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    id: String,
    owner: String,
    resource_type: String,
    resource_id: String,
    steps: Vec<Step>,
    from: usize,
    attempts_before: u32,
}

impl Gateway {
    /// Phase: records `spec` (leased to this request) without running it; `None` when it
    /// has no steps. A crash leaves it pending, so the worker runs it once the lease lapses.
    pub(crate) async fn begin(&self, spec: PlanSpec) -> AppResult<Option<Begun>> {
        if spec.steps.is_empty() {
            return Ok(None);
        }
        let id = uuid::Uuid::new_v4().to_string();
        let owner = format!("req/{id}");
        let steps = serde_json::to_value(&spec.steps)
            .map_err(|e| AppError::Internal(format!("plan encoding: {e}")))?;
        let new = NewPlan {
            id: id.clone(),
            resource_type: spec.resource_type.clone(),
            resource_id: spec.resource_id.clone(),
            slot: spec.slot.to_string(),
            kind: spec.kind,
            label: spec.label,
            steps,
            needs_caller: self.backend.passes_caller_credentials(),
        };
        self.store
            .begin_plan(&new, &owner, self.lease_until())
            .await?;
        Ok(Some(Begun {
            run: Run {
                id,
                owner,
                resource_type: spec.resource_type,
                resource_id: spec.resource_id,
                steps: spec.steps,
                from: 0,
                attempts_before: 0,
            },
            renewal: None,
        }))
    }

    /// [`Gateway::begin`], with the lease renewed every third of its length until the plan
    /// is run or discarded.
    pub(crate) async fn begin_guard(&self, spec: PlanSpec) -> AppResult<Option<Begun>> {
        let Some(mut b) = self.begin(spec).await? else {
            return Ok(None);
        };
        let store = self.store.clone();
        let (id, owner) = (b.run.id.clone(), b.run.owner.clone());
        let lease = self.plan_settings.lease;
        b.renewal = Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                let until = now_ms().saturating_add(millis(lease));
                match store.plan_progress(&id, &owner, 0, until).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => tracing::warn!(plan = %id, error = %e, "could not renew a lease"),
                }
            }
        }));
        Ok(Some(b))
    }

    /// Runs a begun plan now; a failure leaves it to the worker (logged, not returned).
    pub(crate) async fn run_begun(&self, mut b: Begun) {
        if let Some(t) = b.renewal.take() {
            t.abort();
        }
        let _turn = self
            .plan_lock(&b.run.resource_type, &b.run.resource_id)
            .lock()
            .await;
        if let Err(e) = self.run_locked(&b.run, true).await {
            tracing::error!(plan = %b.run.id, error = ?e, "plan failed; the worker retries it");
        }
    }

    /// Drops a begun plan that is not needed (the operation it guarded completed).
    pub(crate) async fn discard(&self, mut b: Begun) {
        if let Some(t) = b.renewal.take() {
            t.abort();
        }
        if let Err(e) = self.store.discard_plan(&b.run.id, &b.run.owner).await {
            tracing::error!(plan = %b.run.id, error = %e, "could not discard a rollback plan that is not needed; it may run later");
        }
    }

    /// Phase: records `spec` and runs it now, in the request. `Ok(())` once every step
    /// succeeded, or when a newer plan replaced this one in its slot (the newer request owns
    /// the outcome). On a failure the plan stays pending for the worker (or failed, once its
    /// attempts are spent) and the error is the request's; a plan an operator abandoned or
    /// another runner took over is a 503 saying so. A store that cannot take the record fails
    /// the request before any call.
    pub(crate) async fn execute_plan(&self, spec: PlanSpec) -> AppResult<()> {
        if spec.steps.is_empty() {
            return Ok(());
        }
        let kind = spec.kind.clone();
        // The resource's turn is taken before the plan is recorded, so no other plan of it
        // can be recorded and run in between: this run needs no ownership check first.
        let _turn = self
            .plan_lock(&spec.resource_type, &spec.resource_id)
            .lock()
            .await;
        let Some(b) = self.begin(spec).await? else {
            return Ok(());
        };
        tracing::debug!(plan = %b.run.id, %kind, steps = b.run.steps.len(), "plan recorded");
        match self.run_locked(&b.run, false).await? {
            RunEnd::Done => Ok(()),
            RunEnd::Lost => match self.store.plan(&b.run.id).await? {
                // Replaced in its slot: a newer request's plan decides the outcome.
                None => Ok(()),
                Some(p) if p.state == crate::store::PlanState::Abandoned => {
                    Err(crate::scim::ScimError::new(
                        503,
                        None,
                        "an operator abandoned this operation's plan before it completed",
                    )
                    .into())
                }
                Some(_) => Err(crate::scim::ScimError::new(
                    503,
                    None,
                    "the operation did not finish in time and is being completed in the \
                     background; retry shortly",
                )
                .into()),
            },
        }
    }

    /// Runs a recorded plan from `run.from` under `run.owner`'s lease, then records the
    /// outcome: done, or pending with its next attempt (or failed when its attempts are
    /// spent). The caller holds the resource's turn ([`Gateway::plan_lock`]: runs of one
    /// resource's plans take turns within this process). With `confirm`, the run first
    /// checks that it still holds its plan (extending the lease), so a plan replaced or taken
    /// over while it waited does not run. The step's error is returned so a request can
    /// answer with it.
    async fn run_locked(&self, run: &Run, confirm: bool) -> AppResult<RunEnd> {
        if confirm
            && !self
                .store
                .plan_progress(&run.id, &run.owner, run.from, self.lease_until())
                .await?
        {
            tracing::info!(plan = %run.id, "plan replaced, abandoned or taken over before it ran");
            return Ok(RunEnd::Lost);
        }
        let (id, owner, steps) = (run.id.as_str(), run.owner.as_str(), &run.steps);
        match self.run_steps(id, owner, steps, run.from).await {
            Ok(RunEnd::Done) => {
                if !self.store.plan_complete(id, owner, steps.len()).await? {
                    return Ok(RunEnd::Lost);
                }
                Ok(RunEnd::Done)
            }
            Ok(RunEnd::Lost) => Ok(RunEnd::Lost),
            Err(f) => {
                let attempts = run.attempts_before + 1;
                let retry_after = match &f.error {
                    AppError::Backend(b) => b.retry_after(),
                    _ => None,
                };
                let next = self.plan_settings.next_attempt(attempts, retry_after);
                let retry_at = next.map(|d| now_ms().saturating_add(millis(d)));
                let recorded = self
                    .store
                    .plan_attempt_failed(id, owner, f.done, &f.description, retry_at)
                    .await;
                match (&recorded, next) {
                    (Err(e), _) => {
                        tracing::error!(plan = id, error = %e, "could not record a failed plan attempt; its lease lapses and it is retried then")
                    }
                    (Ok(_), Some(wait)) => {
                        tracing::warn!(plan = id, attempts, retry_in_ms = millis(wait), error = %f.description, "plan step failed; retried later")
                    }
                    (Ok(_), None) => {
                        tracing::error!(plan = id, attempts, error = %f.description, "plan failed: its attempts are spent; it waits for an operator")
                    }
                }
                Err(f.error)
            }
        }
    }

    /// The lock stripe under which runs of one resource's plans take turns.
    fn plan_lock(&self, rt: &str, id: &str) -> &tokio::sync::Mutex<()> {
        let mut h = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&(rt, id), &mut h);
        let i = usize::try_from(std::hash::Hasher::finish(&h) % self.plan_locks.len() as u64)
            .unwrap_or(0);
        &self.plan_locks[i]
    }

    /// Runs the steps from `from`, marking progress; stops at the first failure (a 404 on a
    /// `missing_ok` step is success) or when the plan is no longer this runner's.
    async fn run_steps(
        &self,
        id: &str,
        owner: &str,
        steps: &[Step],
        from: usize,
    ) -> Result<RunEnd, StepFailure> {
        let fail = |done: usize, error: AppError| {
            let step = steps.get(done);
            let description = match (&error, step) {
                (AppError::Backend(b), Some(s)) => format!(
                    "step {}/{} {} {}: {b}",
                    done + 1,
                    steps.len(),
                    s.method,
                    s.path
                ),
                (e, _) => format!("step {}/{}: {e:?}", done + 1, steps.len()),
            };
            StepFailure {
                done,
                error,
                description,
            }
        };
        let mut marked = from;
        let mut renewed = std::time::Instant::now();
        // Deleted resources the id map forgets, in batches (one statement per batch).
        let mut forgets: Vec<(String, String)> = Vec::new();
        for (i, step) in steps.iter().enumerate().skip(from) {
            let req = step.request().map_err(|e| fail(i, e))?;
            let outcome = match self.backend.call(req).await {
                Ok(_) => PlanStepOutcome::Ok,
                Err(e) if step.missing_ok && e.is_not_found() => PlanStepOutcome::Missing,
                Err(e) => {
                    self.count_step(PlanStepOutcome::Failed);
                    self.unmap_all(forgets).await;
                    return Err(fail(i, AppError::Backend(e)));
                }
            };
            self.count_step(outcome);
            if let Some(f) = &step.forget {
                forgets.push(f.clone());
            }
            if let Some(b) = &step.bury {
                self.bury(b).await;
            }
            let done = i + 1;
            let last = done == steps.len();
            if last || forgets.len() >= MARK_EVERY {
                self.unmap_all(std::mem::take(&mut forgets)).await;
            }
            // Marked (and the lease renewed) after a POST, every MARK_EVERY steps, and when a
            // third of the lease has passed, so a slow run never loses its plan to another.
            if !last
                && (step.method == "POST"
                    || done - marked >= MARK_EVERY
                    || renewed.elapsed() > self.plan_settings.lease / 3)
            {
                renewed = std::time::Instant::now();
                match self
                    .store
                    .plan_progress(id, owner, done, self.lease_until())
                    .await
                {
                    Ok(true) => marked = done,
                    Ok(false) => {
                        self.unmap_all(forgets).await;
                        tracing::info!(
                            plan = id,
                            done,
                            "plan taken over or abandoned; this run stops"
                        );
                        return Ok(RunEnd::Lost);
                    }
                    Err(e) => {
                        self.unmap_all(forgets).await;
                        return Err(fail(done, AppError::Store(e)));
                    }
                }
            }
        }
        Ok(RunEnd::Done)
    }

    /// Phase: records a deleted resource's tombstone. The delete itself succeeded, so a store
    /// failure is logged and counted, not returned (as for the id map).
    pub(crate) async fn bury(&self, b: &Bury) {
        let t = crate::store::Tombstone {
            resource_type: b.resource_type.clone(),
            scim_id: b.scim_id.clone(),
            name_key: b.name_key.clone(),
            external_id: b.external_id.clone(),
            deleted_ms: now_ms(),
        };
        if let Err(e) = crate::store::TombstoneStore::put_tombstone(&self.store, &t).await {
            self.id_map_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::error!(
                resource_type = %t.resource_type, scim_id = %t.scim_id, error = %e,
                "recording a deleted resource's tombstone failed; the delete itself succeeded"
            );
        }
    }

    fn count_step(&self, outcome: PlanStepOutcome) {
        if let Some(m) = &self.metrics {
            m.plan_step(outcome);
        }
    }

    /// The lease a runner takes from now.
    fn lease_until(&self) -> i64 {
        now_ms().saturating_add(millis(self.plan_settings.lease))
    }

    /// The worker's turn: claims up to `limit` due plans (see [`PlanStore::claim_due_plans`])
    /// and resumes each; returns how many it claimed. Runs on every replica; each plan is
    /// claimed by one.
    pub async fn resume_due_plans(&self, worker: &str, limit: u32) -> AppResult<usize> {
        let claimed = self
            .store
            .claim_due_plans(worker, now_ms(), self.lease_until(), limit)
            .await?;
        let n = claimed.len();
        for plan in claimed {
            self.resume(worker, plan).await;
        }
        Ok(n)
    }

    /// Resumes one claimed plan from its first step not marked done.
    async fn resume(&self, worker: &str, plan: PlanRecord) {
        let steps: Vec<Step> = match serde_json::from_value(plan.steps.clone()) {
            Ok(s) => s,
            Err(e) => {
                let why = format!("the stored steps cannot be read: {e}");
                let _ = self
                    .store
                    .plan_attempt_failed(&plan.id, worker, plan.done, &why, None)
                    .await;
                tracing::error!(plan = %plan.id, %why, "plan failed");
                return;
            }
        };
        tracing::info!(
            plan = %plan.id, kind = %plan.kind, resource_type = %plan.resource_type,
            resource_id = %plan.resource_id, from_step = plan.done + 1, steps = steps.len(),
            attempt = plan.attempts + 1, "resuming plan"
        );
        let run = Run {
            id: plan.id.clone(),
            owner: worker.to_string(),
            resource_type: plan.resource_type.clone(),
            resource_id: plan.resource_id.clone(),
            steps,
            from: plan.done,
            attempts_before: plan.attempts,
        };
        let _turn = self
            .plan_lock(&run.resource_type, &run.resource_id)
            .lock()
            .await;
        match self.run_locked(&run, true).await {
            Ok(RunEnd::Done) => {
                tracing::info!(plan = %plan.id, kind = %plan.kind, resource_id = %plan.resource_id, "plan completed")
            }
            Ok(RunEnd::Lost) | Err(_) => {}
        }
    }

    /// The last plan of `slot` for a resource once no one is running it: while its lease
    /// is live (the first attempt of a retried request still running after its client's
    /// deadline, or the worker on it) this waits, up to one lease, rather than start a
    /// second run beside it. `None` when no plan was recorded.
    pub(crate) async fn settled_slot_plan(
        &self,
        rt: &str,
        id: &str,
        slot: &str,
    ) -> AppResult<Option<PlanRecord>> {
        let give_up = std::time::Instant::now() + self.plan_settings.lease;
        loop {
            let plan = self.store.slot_plan(rt, id, slot).await?;
            match &plan {
                Some(p) if p.running(now_ms()) && std::time::Instant::now() < give_up => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                _ => return Ok(plan),
            }
        }
    }
}

/// A duration in whole milliseconds, saturating.
fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Marks each step that deletes one of `ids` (of type `rt`) through `delete`, the profile's
/// delete endpoint, so the id map forgets the resource once the step succeeds. One hash
/// lookup per step, so a 20,000-member group delete stays linear.
pub(crate) fn mark_forgets(
    steps: &mut [Step],
    rt: &str,
    ids: &[&str],
    delete: &crate::backend::Endpoint,
) {
    let mut by_call = std::collections::HashMap::with_capacity(ids.len());
    for id in ids {
        if let Ok(req) = delete.request(&[("id", id)], None) {
            by_call.insert((req.method.to_string(), req.path), *id);
        }
    }
    if by_call.is_empty() {
        return;
    }
    for s in steps.iter_mut() {
        if let Some(id) = by_call.get(&(s.method.clone(), s.path.clone())) {
            s.forget = Some((rt.to_string(), (*id).to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_honours_retry_after() {
        let s = PlanSettings {
            max_attempts: 4,
            backoff_initial: Duration::from_secs(2),
            backoff_max: Duration::from_secs(5),
            lease: Duration::from_secs(60),
        };
        for _ in 0..50 {
            let w1 = s.next_attempt(1, None).unwrap();
            assert!(
                w1 >= Duration::from_secs(1) && w1 <= Duration::from_secs(2),
                "{w1:?}"
            );
            let w2 = s.next_attempt(2, None).unwrap();
            assert!(
                w2 >= Duration::from_secs(2) && w2 <= Duration::from_secs(4),
                "{w2:?}"
            );
            let w3 = s.next_attempt(3, None).unwrap();
            assert!(w3 <= Duration::from_secs(5), "capped: {w3:?}");
        }
        assert_eq!(s.next_attempt(4, None), None, "attempts spent");
        let w = s.next_attempt(1, Some(Duration::from_secs(30))).unwrap();
        assert_eq!(w, Duration::from_secs(30));
    }

    #[test]
    fn steps_round_trip_and_forgets_are_marked() {
        let ep: crate::backend::Endpoint = toml::from_str(
            r#"method = "DELETE"
path = "/api/v1/users/{id}""#,
        )
        .unwrap();
        let mut steps: Vec<Step> = vec![
            Step::from(PlanStep {
                method: "DELETE".into(),
                path: "/api/v1/users/5".into(),
                query: vec![],
                body: None,
                missing_ok: true,
            }),
            Step::from(PlanStep {
                method: "POST".into(),
                path: "/api/v1/users/6/deactivate".into(),
                query: vec![("a".into(), "b".into())],
                body: Some(serde_json::json!({"x": 1})),
                missing_ok: false,
            }),
        ];
        mark_forgets(&mut steps, "User", &["5", "6"], &ep);
        assert_eq!(steps[0].forget, Some(("User".into(), "5".into())));
        assert_eq!(steps[1].forget, None);
        let v = serde_json::to_value(&steps).unwrap();
        let back: Vec<Step> = serde_json::from_value(v).unwrap();
        assert_eq!(back, steps);
    }
}
