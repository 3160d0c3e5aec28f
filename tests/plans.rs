//! Every write Entra asks for completes (README "Writes that complete"): multi-call operations
//! run as durable plans that a failure leaves pending and the plan worker — or Entra's own
//! retry — finishes; an operation outlives its client's deadline; large collections and
//! broken legacy answers get SCIM errors, never a 500. Each test drives `scimgate demo` over
//! real sockets with the demo app's fault injection and reads the demo app's real state.

mod common;

use common::eventually;

use common::entra::{Dialect, clients, create_user, legacy_user_count};
use common::{Legacy, Scim};
use scimgate::app::{DemoOptions, DemoStack};
use scimgate::config::PlansConfig;
use scimgate::store::{AuditFilter, AuditLog, PlanState, PlanStore};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Retries fast enough for a test: 100 ms, doubling, at most 400 ms between attempts.
fn quick_plans() -> PlansConfig {
    PlansConfig {
        max_attempts: 6,
        backoff_initial_ms: 100,
        backoff_max_ms: 400,
        lease_ms: 5_000,
        poll_ms: 50,
    }
}

/// Retries that never come within a test: only a client's retry can finish a plan.
fn no_worker_retries() -> PlansConfig {
    PlansConfig {
        backoff_initial_ms: 3_600_000,
        backoff_max_ms: 3_600_000,
        ..quick_plans()
    }
}

async fn start(profile: &str, plans: PlansConfig) -> DemoStack {
    start_with_deadline(profile, plans, None).await
}

/// A demo stack whose clients are answered 504 after `deadline` (the profile's default when
/// `None`).
async fn start_with_deadline(
    profile: &str,
    plans: PlansConfig,
    deadline: Option<Duration>,
) -> DemoStack {
    DemoStack::start(DemoOptions {
        plans: Some(plans),
        request_timeout: deadline,
        ..DemoOptions::for_tests(profile)
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#?}"))
}

async fn fault(legacy: &Legacy, spec: Value) {
    let r = legacy.call("POST", "/__demo/faults", Some(&spec)).await;
    assert_eq!(r.status, 200, "arming {spec}: {}", r.text);
}

async fn create(scim: &Scim, user_name: &str) -> String {
    let body = create_user(&[
        ("userName", json!(user_name)),
        ("externalId", json!(format!("ext-{user_name}"))),
        (
            "emails",
            json!([{"primary": true, "type": "work", "value": user_name}]),
        ),
    ]);
    let r = scim.post("/Users", &body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json["id"].as_str().unwrap().to_string()
}

/// (status, active sessions, sessions revoked) of a demo app user.
async fn sessions(legacy: &Legacy, id: &str) -> (String, u64, u64) {
    let r = legacy.get(&format!("/api/v1/users/{id}")).await;
    (
        r["status"].as_str().unwrap_or_default().to_string(),
        r["active_sessions"].as_u64().unwrap(),
        r["sessions_revoked"].as_u64().unwrap(),
    )
}

const REVOKE: &str = "POST /api/v1/users/{id}/sessions/revoke";

/// draftt: Entra disables a user; the session revoke answers 503. The request says so (503),
/// the deactivation plan stays pending (visible with its error), and the worker retries it
/// until the sessions are revoked — the ex-employee is not left logged in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_deprovisioning_is_finished_by_the_worker() {
    let stack = start("draftt", quick_plans()).await;
    let (scim, legacy) = clients(&stack);
    let id = create(&scim, "leaver@example.com").await;
    assert_eq!(sessions(&legacy, &id).await, ("active".into(), 1, 0));

    fault(
        &legacy,
        json!({"mode": "status", "status": 503, "route": REVOKE, "count": 2}),
    )
    .await;
    let r = scim
        .patch(&format!("/Users/{id}"), &Dialect::Legacy.disable_user())
        .await;
    assert_eq!(
        r.status, 503,
        "the failed revoke is the request's answer: {}",
        r.text
    );
    // The account is already Inactive (the write went through); the revoke is pending.
    let store = stack.gateway.store();
    let pending = store.plans_in(&[PlanState::Pending], 10).await.unwrap();
    assert_eq!(pending.len(), 1, "{pending:?}");
    let p = &pending[0];
    assert_eq!(
        (p.resource_type.as_str(), p.resource_id.as_str()),
        ("User", id.as_str())
    );
    assert_eq!(p.kind, "on_deactivate");
    assert_eq!(p.label.as_deref(), Some("leaver@example.com"));
    assert!(
        p.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("sessions/revoke"),
        "{p:?}"
    );

    // The worker's retries: the second fails too (count 2), the third revokes.
    eventually(
        Duration::from_secs(10),
        "sessions revoked by the worker",
        || {
            let legacy = legacy.clone();
            let id = id.clone();
            async move { sessions(&legacy, &id).await == ("inactive".into(), 0, 1) }
        },
    )
    .await;
    eventually(Duration::from_secs(5), "plan recorded done", || async {
        store
            .slot_plan("User", &id, "active")
            .await
            .unwrap()
            .is_some_and(|p| p.state == PlanState::Done && p.attempts == 2)
    })
    .await;
    assert_eq!(store.plan_counts().await.unwrap().pending, 0);

    // The status page lists nothing pending now; /metrics counts the steps.
    let m = common::admin::AdminClient::new(&stack.admin_url)
        .get("/metrics")
        .await;
    let metrics = common::admin::parse_metrics(&m.text);
    let steps = |o: &str| {
        metrics
            .iter()
            .find(|(k, _)| k.contains("plan_steps_total") && k.contains(&format!("\"{o}\"")))
            .map_or(0.0, |(_, v)| *v)
    };
    assert_eq!((steps("ok"), steps("failed")), (1.0, 2.0), "{}", m.text);
    stack.gateway.shutdown().await;
}

/// draftt: the worker would wait an hour; Entra's retry of the same PATCH finds the user
/// already inactive but its deprovisioning not complete, runs the plan again and answers with
/// its real outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_retry_of_a_failed_deactivation_finishes_it() {
    let stack = start("draftt", no_worker_retries()).await;
    let (scim, legacy) = clients(&stack);
    let id = create(&scim, "retry@example.com").await;
    fault(
        &legacy,
        json!({"mode": "status", "status": 503, "route": REVOKE, "count": 1}),
    )
    .await;
    for dialect in [Dialect::Legacy, Dialect::Compliant] {
        let r = scim
            .patch(&format!("/Users/{id}"), &dialect.disable_user())
            .await;
        if dialect == Dialect::Legacy {
            assert_eq!(r.status, 503, "{}", r.text);
            assert_eq!(sessions(&legacy, &id).await, ("inactive".into(), 1, 0));
        } else {
            assert_eq!(r.status, 200, "the retry completes: {}", r.text);
            assert_eq!(r.json["active"], false);
        }
    }
    assert_eq!(sessions(&legacy, &id).await, ("inactive".into(), 0, 1));
    let p = stack
        .gateway
        .store()
        .slot_plan("User", &id, "active")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.state, PlanState::Done);

    // Once complete, asserting the same state again calls nothing more.
    let before = legacy.get("/__demo/state").await["by_route"][REVOKE].as_u64();
    let r = scim
        .patch(&format!("/Users/{id}"), &Dialect::Legacy.disable_user())
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let after = legacy.get("/__demo/state").await["by_route"][REVOKE].as_u64();
    assert_eq!(before, after, "a completed deprovisioning is not re-run");
    stack.gateway.shutdown().await;
}

/// default profile: a Group POST whose member add is slower than the client's deadline. The
/// client gets 504, the operation completes anyway (no orphan team, members added), the
/// audit log has its entry (201, the client saw 504), and Entra's retry makes no second team.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_create_completes_and_its_retry_makes_no_duplicate() {
    let stack =
        start_with_deadline("default", quick_plans(), Some(Duration::from_millis(400))).await;
    let (scim, legacy) = clients(&stack);
    let member = create(&scim, "member@example.com").await;
    fault(
        &legacy,
        json!({"mode": "delay", "delay_ms": 1200, "route": "POST /api/v1/teams/{id}/members"}),
    )
    .await;
    let group = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "Slow Team",
        "externalId": "8f2c2a43-1ef0-4b7e-9d1c-000000000001",
        "members": [{"value": member}],
    });
    let r = scim.post("/Groups", &group).await;
    assert_eq!(r.status, 504, "{}", r.text);
    assert!(
        r.json["detail"].as_str().unwrap().contains("retrying"),
        "{}",
        r.text
    );

    let teams = || {
        let legacy = legacy.clone();
        async move { legacy.get("/api/v1/teams?name=Slow%20Team").await["data"].clone() }
    };
    eventually(Duration::from_secs(5), "team with its member", || async {
        let t = teams().await;
        t.as_array().is_some_and(|a| a.len() == 1)
            && legacy
                .get(&format!("/api/v1/teams/{}/members", t[0]["id"]))
                .await["total"]
                == 1
    })
    .await;
    let team_id = teams().await[0]["id"].to_string();
    let store = stack.gateway.store();
    eventually(Duration::from_secs(5), "audit entry", || async {
        store
            .query(&AuditFilter::default())
            .await
            .unwrap()
            .iter()
            .any(|e| {
                e.operation == "create"
                    && e.resource_type == "Group"
                    && e.scim_status == 201
                    && e.context.client_status == Some(504)
                    && e.resource_id.as_deref() == Some(team_id.as_str())
                    && e.context.label.as_deref() == Some("Slow Team")
            })
    })
    .await;

    // Entra retries the create: a conflict naming the first attempt's group, not a duplicate.
    let r = scim.post("/Groups", &group).await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.json["scimType"], "uniqueness");
    assert!(
        r.json["detail"].as_str().unwrap().contains(&team_id),
        "{}",
        r.text
    );
    assert_eq!(teams().await.as_array().unwrap().len(), 1);
    // No rollback plan was left behind.
    assert_eq!(store.plan_counts().await.unwrap().pending, 0);
    stack.gateway.shutdown().await;
}

/// default profile: a create whose member add fails (a member the app does not know) deletes
/// the team again. When that delete fails too, the rollback stays pending as a plan and the
/// worker deletes the orphan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_create_is_rolled_back_by_a_durable_plan() {
    let stack = start("default", quick_plans()).await;
    let (scim, legacy) = clients(&stack);
    let group = |name: &str| {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": name,
            "members": [{"value": "999999"}],
        })
    };
    let r = scim.post("/Groups", &group("Doomed")).await;
    assert_eq!(r.status, 400, "the app refuses the member: {}", r.text);
    assert_eq!(legacy.get("/api/v1/teams?name=Doomed").await["total"], 0);

    fault(
        &legacy,
        json!({"mode": "status", "status": 503, "route": "DELETE /api/v1/teams/{id}"}),
    )
    .await;
    let r = scim.post("/Groups", &group("Orphan")).await;
    assert_eq!(r.status, 400, "{}", r.text);
    let store = stack.gateway.store();
    eventually(
        Duration::from_secs(10),
        "orphan deleted by the worker",
        || async { legacy.get("/api/v1/teams?name=Orphan").await["total"] == 0 },
    )
    .await;
    let deletes = legacy.get("/__demo/state").await["by_route"]["DELETE /api/v1/teams/{id}"]
        .as_u64()
        .unwrap();
    assert_eq!(deletes, 3, "Doomed's, Orphan's failed one, the worker's");
    eventually(Duration::from_secs(5), "rollback plan done", || async {
        store.plan_counts().await.unwrap().pending == 0
    })
    .await;
    stack.gateway.shutdown().await;
}

/// softdrive: deleting a group deletes its users first (on_group_delete). With 20,000 members
/// the hook is called page by page and the plan runs every delete: 204, all users gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn softdrive_deletes_a_20000_member_group() {
    const N: usize = 20_000;
    let stack =
        start_with_deadline("softdrive", quick_plans(), Some(Duration::from_secs(120))).await;
    let (scim, legacy) = clients(&stack);
    let mut ids = Vec::with_capacity(N);
    for i in 0..N {
        let email = format!("u{i}@example.com");
        let id = stack
            .legacy
            .state
            .create_user(&json!({"username": email, "email": email}))
            .unwrap();
        ids.push(id);
    }
    let r = scim
        .post(
            "/Groups",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Everyone"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let group = r.json["id"].as_str().unwrap().to_string();
    for chunk in ids.chunks(5_000) {
        let r = legacy
            .call(
                "POST",
                &format!("/api/v1/teams/{group}/members"),
                Some(&json!({"user_ids": chunk})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    assert_eq!(legacy_user_count(&legacy).await, N as u64);
    let started = Instant::now();
    let r = scim.delete(&format!("/Groups/{group}")).await;
    assert_eq!(r.status, 204, "{}", r.text);
    eprintln!("20,000-member group delete: {:?}", started.elapsed());
    assert_eq!(legacy_user_count(&legacy).await, 0);
    let r = legacy
        .call("GET", &format!("/api/v1/teams/{group}"), None)
        .await;
    assert_eq!(r.status, 404);
    let p = stack
        .gateway
        .store()
        .slot_plan("Group", &group, "delete")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (p.state, p.done, p.step_count()),
        (PlanState::Done, N + 1, N + 1)
    );
    stack.gateway.shutdown().await;
}

/// A user with more e-mail addresses than `max_attribute_values` is a 400 naming the
/// attribute, not a script's 500; nothing reaches the app.
#[tokio::test]
async fn too_many_values_is_a_400_naming_the_attribute() {
    let stack = start("default", quick_plans()).await;
    let (scim, legacy) = clients(&stack);
    let emails: Vec<Value> = (0..5_000)
        .map(|i| json!({"value": format!("a{i}@example.com"), "type": "work"}))
        .collect();
    let body = create_user(&[
        ("userName", json!("many@example.com")),
        ("emails", json!(emails)),
    ]);
    let r = scim.post("/Users", &body).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json["scimType"], "invalidValue");
    assert!(
        r.json["detail"].as_str().unwrap().contains("emails"),
        "{}",
        r.text
    );
    assert_eq!(legacy_user_count(&legacy).await, 0);
    stack.gateway.shutdown().await;
}

/// A legacy create answering 2xx without an id, or 404, is a 502 naming the endpoint.
#[tokio::test]
async fn broken_create_answers_are_502_naming_the_endpoint() {
    let stack = start("default", quick_plans()).await;
    let (scim, legacy) = clients(&stack);
    let body = create_user(&[("userName", json!("noid@example.com"))]);
    for spec in [
        json!({"mode": "body", "body": {"ok": true}, "route": "POST /api/v1/users"}),
        json!({"mode": "body", "body": [1, 2], "route": "POST /api/v1/users"}),
        json!({"mode": "status", "status": 404, "route": "POST /api/v1/users"}),
    ] {
        fault(&legacy, spec.clone()).await;
        let r = scim.post("/Users", &body).await;
        assert_eq!(r.status, 502, "{spec}: {}", r.text);
        let detail = r.json["detail"].as_str().unwrap();
        assert!(detail.contains("POST /api/v1/users"), "{spec}: {detail}");
    }
    // A read whose body is not a record.
    let id = create(&scim, "rec@example.com").await;
    fault(
        &legacy,
        json!({"mode": "body", "body": "just a string", "route": "GET /api/v1/users/{id}"}),
    )
    .await;
    let r = scim.get(&format!("/Users/{id}")).await;
    assert_eq!(r.status, 502, "{}", r.text);
    assert!(
        r.json["detail"]
            .as_str()
            .unwrap()
            .contains("GET /api/v1/users/{id}")
    );
    stack.gateway.shutdown().await;
}

/// The admin page lists a failed plan (resource, name, operation, step, error) with "retry
/// now" and "abandon": a retry runs it at once, an abandon stops it; both are audited and
/// need the page's CSRF token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_see_retry_and_abandon_plans_on_the_status_page() {
    let plans = PlansConfig {
        max_attempts: 1,
        ..no_worker_retries()
    };
    let stack = start("draftt", plans).await;
    let (scim, legacy) = clients(&stack);
    let mut admin = common::admin::AdminClient::new(&stack.admin_url);
    assert_eq!(admin.login(&stack.admin_password).await.status, 303);
    let csrf = admin.csrf().await;
    let mut plan_ids = Vec::new();
    for name in ["retried@example.com", "abandoned@example.com"] {
        let id = create(&scim, name).await;
        fault(
            &legacy,
            json!({"mode": "status", "status": 503, "route": REVOKE}),
        )
        .await;
        let r = scim
            .patch(&format!("/Users/{id}"), &Dialect::Compliant.disable_user())
            .await;
        assert_eq!(r.status, 503, "{}", r.text);
        let p = stack
            .gateway
            .store()
            .slot_plan("User", &id, "active")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(p.state, PlanState::Failed, "one attempt allowed: {p:?}");
        plan_ids.push((id, p.id));
    }
    let page = admin.get("/").await;
    assert_eq!(page.status, 200);
    for (id, plan) in &plan_ids {
        assert!(
            page.text.contains(&format!("data-plan=\"{plan}\"")),
            "{}",
            page.text
        );
        assert!(page.text.contains(id.as_str()));
    }
    assert!(page.text.contains("retried@example.com") && page.text.contains("on_deactivate"));
    assert!(
        page.text.contains("sessions/revoke"),
        "the last error is shown"
    );

    // Without the CSRF token: refused, nothing changes.
    let (retried, abandoned) = (&plan_ids[0], &plan_ids[1]);
    let r = admin
        .post_form(
            &format!("/plans/{}/retry", retried.1),
            &[("csrf", "nope")],
            None,
        )
        .await;
    assert!(r.status >= 400, "{}", r.status);
    let r = admin
        .post_form(
            &format!("/plans/{}/retry", retried.1),
            &[("csrf", &csrf)],
            None,
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    eventually(Duration::from_secs(5), "retried plan ran", || {
        let legacy = legacy.clone();
        let id = retried.0.clone();
        async move { sessions(&legacy, &id).await.2 == 1 }
    })
    .await;
    let r = admin
        .post_form(
            &format!("/plans/{}/abandon", abandoned.1),
            &[("csrf", &csrf)],
            None,
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    let store = stack.gateway.store();
    let p = store.plan(&abandoned.1).await.unwrap().unwrap();
    assert_eq!(p.state, PlanState::Abandoned);
    assert_eq!(
        sessions(&legacy, &abandoned.0).await.2,
        0,
        "abandoned: never run"
    );
    let page = admin.get("/").await;
    assert!(
        page.text
            .contains("Every multi-step operation has completed"),
        "{}",
        page.text
    );
    let audit = store.query(&AuditFilter::default()).await.unwrap();
    for (op, id) in [("plan retry", &retried.0), ("plan abandon", &abandoned.0)] {
        assert!(
            audit.iter().any(|e| e.operation == op
                && e.actor == "admin"
                && e.resource_id.as_deref() == Some(id.as_str())),
            "{op} audited"
        );
    }
    // A failed request's audit entry keeps why it failed, the request id and whom it was about.
    let failed = audit
        .iter()
        .rfind(|e| e.operation == "patch" && e.scim_status == 503)
        .expect("the failed PATCH is audited");
    assert!(failed.context.detail.is_some() && failed.context.request_id.is_some());
    assert_eq!(failed.context.label.as_deref(), Some("retried@example.com"));
    stack.gateway.shutdown().await;
}

/// draftt: a deactivation whose session revoke outlasts the client's deadline answers 504 and
/// goes on; Entra's immediate retry waits for that run instead of starting a second one, and
/// answers with its outcome. The revoke is called once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_waits_for_the_running_plan_instead_of_running_it_twice() {
    let stack =
        start_with_deadline("draftt", quick_plans(), Some(Duration::from_millis(300))).await;
    let (scim, legacy) = clients(&stack);
    let id = create(&scim, "slow-revoke@example.com").await;
    fault(
        &legacy,
        json!({"mode": "delay", "delay_ms": 1000, "route": REVOKE}),
    )
    .await;
    let r = scim
        .patch(&format!("/Users/{id}"), &Dialect::Legacy.disable_user())
        .await;
    assert_eq!(r.status, 504, "{}", r.text);
    // The retry's own client deadline passes too, but its answer is written to the audit.
    let r = scim
        .patch(&format!("/Users/{id}"), &Dialect::Legacy.disable_user())
        .await;
    assert_eq!(r.status, 504, "{}", r.text);
    eventually(Duration::from_secs(5), "sessions revoked", || {
        let legacy = legacy.clone();
        let id = id.clone();
        async move { sessions(&legacy, &id).await == ("inactive".into(), 0, 1) }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let revokes = legacy.get("/__demo/state").await["by_route"][REVOKE].as_u64();
    assert_eq!(revokes, Some(1), "one run of the plan, not two");
    let store = stack.gateway.store();
    eventually(
        Duration::from_secs(5),
        "both PATCHes audited as 200",
        || async {
            let all = store.query(&AuditFilter::default()).await.unwrap();
            all.iter()
                .filter(|e| e.operation == "patch" && e.scim_status == 200)
                .filter(|e| e.context.client_status == Some(504))
                .count()
                == 2
        },
    )
    .await;
    stack.gateway.shutdown().await;
}

/// A client that gives up and closes its connection mid-operation does not cancel the write:
/// the deactivation plan still completes and the request is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_hanging_up_does_not_cancel_the_write() {
    let stack = start("draftt", no_worker_retries()).await;
    let (scim, legacy) = clients(&stack);
    let id = create(&scim, "hangup@example.com").await;
    fault(
        &legacy,
        json!({"mode": "delay", "delay_ms": 600, "route": REVOKE}),
    )
    .await;
    let gave_up = tokio::time::timeout(
        Duration::from_millis(150),
        scim.patch(&format!("/Users/{id}"), &Dialect::Legacy.disable_user()),
    )
    .await;
    assert!(
        gave_up.is_err(),
        "the client stopped waiting and dropped its connection"
    );
    eventually(Duration::from_secs(5), "sessions revoked anyway", || {
        let legacy = legacy.clone();
        let id = id.clone();
        async move { sessions(&legacy, &id).await == ("inactive".into(), 0, 1) }
    })
    .await;
    let store = stack.gateway.store();
    eventually(
        Duration::from_secs(5),
        "the PATCH audited with its outcome",
        || async {
            store
                .query(&AuditFilter::default())
                .await
                .unwrap()
                .iter()
                .any(|e| e.operation == "patch" && e.scim_status == 200)
        },
    )
    .await;
    assert_eq!(
        store
            .slot_plan("User", &id, "active")
            .await
            .unwrap()
            .map(|p| p.state),
        Some(PlanState::Done)
    );
    stack.gateway.shutdown().await;
}
