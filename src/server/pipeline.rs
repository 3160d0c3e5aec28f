//! The operation pipeline: what happens to a SCIM request between the router and the legacy
//! API. Each operation is a short sequence of named phases:
//!
//! ```text
//! create:  normalise ─▶ one create of this resource at a time ─▶ externalId already mapped?
//!          (409) ─▶ to_backend ─▶ backend create ─▶ [rollback plan recorded] ─▶ members
//!          ─▶ from_backend ─▶ respond   (a failure after the backend create runs the rollback)
//! get:     backend get ─▶ from_backend ─▶ members? ─▶ respond (meta, ETag, projection)
//! list:    push simple filters down ─▶ backend list (paged) ─▶ from_backend ─▶ evaluate the
//!          whole filter ─▶ sort ─▶ page ─▶ respond
//! replace: normalise ─▶ load ─▶ If-Match ─▶ to_backend ─▶ backend replace ─▶ members diff
//!          ─▶ activation (desired state) ─▶ respond
//! patch:   parse (Entra dialects normalised) ─▶ group members as a delta, never loading the
//!          member list ─▶ other ops: load ─▶ apply ─▶ to_backend ─▶ replace ─▶ activation
//!          (desired state, also when nothing changed) ─▶ respond
//! delete:  one call, or one durable plan: on_group_delete's pages ─▶ on_delete's plan or the
//!          delete call ─▶ (users) leave every managed group
//! ```
//! Every operation that needs more than one legacy call runs its follow-up calls as a
//! **durable plan** (see the `plans` module): recorded before its first call, progress marked,
//! resumed by the plan worker after a failure or a crash, visible on the status page. A
//! single-call write records none. "Activation" is desired state: a user left inactive runs
//! `on_deactivate` until its plan is recorded complete (see `Gateway::assert_activation`).
//! Before any of create, replace and patch, attributes the profile marks `unsupported` are
//! refused (400), multi-valued attributes beyond `max_attribute_values` are refused (400), and
//! with `ignore_nested_groups` group members that are groups are left out (see
//! [`Gateway::nested_groups`]). Every successful create, externalId change and delete is
//! recorded in the store's id map (see [`Gateway::map_created`]). With `groups = "managed"`
//! the Group operations are served from the store instead, and membership changes call the
//! User script's `on_membership_change` hook: see the `managed` module.
//!
//! Scripts never do I/O: they map records and return plans; this module makes the calls.

mod managed;
mod plans;

pub use managed::MEMBERSHIP_HOOK;
pub use plans::PlanSettings;
use plans::{Bury, PlanSpec, Step, mark_forgets};

/// The Group script's hook before a group is deleted, `on_group_delete(group, members, ctx)`:
/// called only when defined with those three parameters, and only then are the group's
/// members read (O(group size)). Its plan runs before the delete call, e.g. to delete the
/// group's users in an application where deleting a group removes its people.
pub const GROUP_DELETE_HOOK: &str = "on_group_delete";

/// Members handed to one call of [`GROUP_DELETE_HOOK`]: each member is a map of three
/// entries, and a script's maps may hold 10,000 entries in all.
pub const GROUP_DELETE_PAGE: usize = 500;

use super::error::{AppError, AppResult};
use crate::backend::{Backend, BackendRequest, Endpoint, ListEndpoint, ListRecord};
use crate::config::GroupsMode;
use crate::mapping::{Answer, ScriptSet};
use crate::scim::filter::{Filter, evaluate, read_names, view};
use crate::scim::list::{ListBody, ListParams, page, sort_resources};
use crate::scim::meta::{etag, if_match, set_meta};
use crate::scim::patch::{
    Member, MemberDelta, apply_patch, parse_patch, retain_supported, split_members,
};
use crate::scim::resource::{
    HiddenByDefault, NormalizeOptions, get_ci, normalize_resource, project_owned_with,
};
use crate::scim::response::{
    Doc, Finish, NotResource, Written, finish_doc, finish_value, write_doc, write_resource,
};
use crate::scim::schema::{SchemaContext, ServiceProviderConfig};
use crate::scim::{AttrPath, SchemaRegistry, ScimError};
use crate::store::{
    ExternalId, GroupStore, IdMap, IdMapping, LegacyId, PlanState, ScimId, Store, TombstoneStore,
};
use bytes::Bytes;
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The backend calls of a gateway-forwarded group's membership.
#[derive(Debug, Clone)]
pub struct MemberEndpoints {
    /// Adds members: path placeholders `{id}` and `{member}` (one call per member) or a body
    /// template with `{members}` (one call for all).
    pub add: Endpoint,
    /// Removes one member: placeholders `{id}` and `{member}`.
    pub remove: Endpoint,
    /// Lists members: placeholder `{id}`.
    pub list: ListEndpoint,
    /// Where a member record carries the member's id (e.g. `user_id`).
    pub id_field: String,
    /// Where a member record carries a display value (e.g. `email`), if any.
    pub display_field: Option<String>,
}

/// How one SCIM resource type reaches the legacy API, as the profile declares it.
#[derive(Debug, Clone)]
pub struct Binding {
    /// SCIM resource type name (`User`, `Group`).
    pub resource_type: String,
    /// Script (file stem) holding `to_backend` / `from_backend` and hooks.
    pub script: String,
    /// Read one record: placeholder `{id}`.
    pub get: Endpoint,
    /// List records.
    pub list: ListEndpoint,
    /// Create a record; its `id` JSONPath finds the new id in the response.
    pub create: Endpoint,
    /// Replace a record: placeholder `{id}`.
    pub replace: Endpoint,
    /// Delete a record: placeholder `{id}`; `None` when only an `on_delete` hook may delete.
    pub delete: Option<Endpoint>,
    /// SCIM `attr eq "x"` clauses pushed down as query parameters: (attribute, parameter).
    pub pushdown: Vec<(AttrPath, String)>,
    /// Group membership endpoints (groups forwarded to the legacy app's own groups).
    pub members: Option<MemberEndpoints>,
    /// Keep attributes no schema defines instead of rejecting them.
    pub keep_unknown: bool,
    /// Top-level attributes unique within the application (`unique` in the profile).
    pub unique: Vec<String>,
}

/// A resource ready to send: its response body, with its version for the `ETag` header and
/// its `meta.location` for a `Location` header.
#[derive(Debug, Clone)]
pub struct Output {
    /// The projected resource as JSON text.
    pub body: Vec<u8>,
    /// Weak ETag of the full resource.
    pub etag: String,
    /// `meta.location`.
    pub location: String,
}

/// Everything a SCIM operation needs: schemas, scripts, the backend and the bindings.
pub struct Gateway {
    registry: Arc<SchemaRegistry>,
    /// Per resource type (by name), what a response naming no attributes leaves out.
    hidden: Vec<(String, HiddenByDefault)>,
    spc: ServiceProviderConfig,
    base_url: String,
    profile: String,
    backend: Backend,
    scripts: Arc<ScriptSet>,
    bindings: HashMap<String, Binding>,
    /// Most backend records a filter that cannot be pushed down may scan; beyond it the
    /// request fails with 400 tooMany instead of walking an unbounded legacy table.
    max_scan: usize,
    /// The gateway's own state: the id map, and the groups when they are managed here.
    store: Store,
    /// `groups = "managed"`: Group operations are served from `store`.
    managed_groups: bool,
    /// Serialises the membership hooks of one user (striped by user id), so that of two
    /// concurrent membership changes the plan that runs last is computed from both.
    user_locks: Vec<tokio::sync::Mutex<()>>,
    /// Id map writes that failed after the legacy app had accepted the write (logged each).
    id_map_failures: AtomicU64,
    /// Lower-case resource type → attributes refused with a 400 (see [`GatewaySettings`]).
    unsupported: HashMap<String, Vec<String>>,
    /// Leave out group members that are groups (see [`GatewaySettings`]).
    ignore_nested_groups: bool,
    /// How durable plans are retried.
    plan_settings: PlanSettings,
    /// Most values a multi-valued attribute may carry (see [`GatewaySettings`]).
    max_values: usize,
    /// Plan step outcomes are counted here when set.
    metrics: Option<Arc<crate::metrics::Metrics>>,
    /// Serialises creates of one resource (striped by its key, see [`Gateway::create`]).
    create_locks: Vec<tokio::sync::Mutex<()>>,
    /// Runs of one resource's plans take turns (striped by resource, see `plans`).
    plan_locks: Vec<tokio::sync::Mutex<()>>,
}

/// Lock stripes for [`Gateway::user_locks`]: enough that unrelated users rarely wait.
const USER_LOCK_STRIPES: usize = 64;

/// Settings for [`Gateway::new`] that do not come from the profile's bindings.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// External URL of the SCIM root, used in `meta.location` (`http://host:port/scim/v2`).
    pub base_url: String,
    /// Profile name, passed to scripts in `ctx.profile`.
    pub profile: String,
    /// Largest page returned.
    pub max_results: usize,
    /// Largest accepted body (advertised in `/ServiceProviderConfig`).
    pub max_payload: usize,
    /// Most backend records scanned for a filter evaluated in the gateway.
    pub max_scan: usize,
    /// Where groups live: the legacy app's own (`Backend`) or the gateway's store (`Managed`).
    pub groups: GroupsMode,
    /// Resource type (any case) → attribute names the application refuses (`unsupported`):
    /// a request carrying one is a 400 before anything is written.
    pub unsupported: HashMap<String, Vec<String>>,
    /// Group members that are themselves groups are left out (and logged) instead of being
    /// forwarded or refused (`ignore_nested_groups`).
    pub ignore_nested_groups: bool,
    /// How multi-call operations are retried (`[plans]`).
    pub plans: PlanSettings,
    /// Most values one multi-valued attribute (e.g. `emails`) may carry; more is a 400
    /// `invalidValue` naming it, before any script runs (`[server] max_attribute_values`).
    /// Group members are not counted: they never pass through a script as one value.
    pub max_values: usize,
}

impl Gateway {
    /// Assembles a gateway; runs once at start (or reload). Fails if a binding names a resource
    /// type the registry lacks or a script that is not loaded, or if managed groups are asked
    /// for with a Group binding or without a User binding.
    pub fn new(
        registry: Arc<SchemaRegistry>,
        backend: Backend,
        scripts: Arc<ScriptSet>,
        bindings: Vec<Binding>,
        settings: GatewaySettings,
        store: Store,
    ) -> Result<Gateway, String> {
        let mut map = HashMap::new();
        for b in bindings {
            if registry.resource_type(&b.resource_type).is_none() {
                return Err(format!("unknown resource type '{}'", b.resource_type));
            }
            for f in ["to_backend", "from_backend"] {
                if !scripts.has_fn(&b.script, f, 2) {
                    return Err(format!(
                        "script '{}' has no function {f}(resource, ctx) for {}",
                        b.script, b.resource_type
                    ));
                }
            }
            map.insert(b.resource_type.to_ascii_lowercase(), b);
        }
        let managed_groups = settings.groups == GroupsMode::Managed;
        if managed_groups {
            if map.contains_key("group") {
                return Err("groups = \"managed\" but Group is also bound to the backend".into());
            }
            if !map.contains_key("user") {
                return Err("groups = \"managed\" needs a User binding to verify members".into());
            }
        }
        let spc = ServiceProviderConfig {
            max_results: settings.max_results,
            max_payload_size: settings.max_payload,
            ..ServiceProviderConfig::default()
        };
        let hidden = registry
            .resource_types()
            .iter()
            .filter_map(|rt| {
                let ctx = SchemaContext::new(&registry, &rt.name)?;
                Some((rt.name.clone(), HiddenByDefault::of(&ctx)))
            })
            .collect();
        Ok(Gateway {
            hidden,
            registry,
            spc,
            base_url: settings.base_url.trim_end_matches('/').to_string(),
            profile: settings.profile,
            backend,
            scripts,
            bindings: map,
            max_scan: settings.max_scan.max(1),
            store,
            managed_groups,
            user_locks: (0..USER_LOCK_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            id_map_failures: AtomicU64::new(0),
            unsupported: settings
                .unsupported
                .into_iter()
                .map(|(rt, attrs)| (rt.to_ascii_lowercase(), attrs))
                .filter(|(_, attrs)| !attrs.is_empty())
                .collect(),
            ignore_nested_groups: settings.ignore_nested_groups,
            plan_settings: settings.plans,
            max_values: settings.max_values.max(1),
            metrics: None,
            create_locks: (0..USER_LOCK_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            plan_locks: (0..USER_LOCK_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        })
    }

    /// Also counts plan steps in `metrics` (set at start).
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// How many id map writes failed after the legacy app had accepted the write since start
    /// (each is logged with the ids); for `/metrics` and the status page. Non-zero means the
    /// "managed by SCIM" counts are behind.
    pub fn id_map_failures(&self) -> u64 {
        self.id_map_failures.load(Ordering::Relaxed)
    }

    /// Whether `rt` is served from the store (Group with `groups = "managed"`).
    fn is_managed(&self, rt: &str) -> bool {
        self.managed_groups && rt.eq_ignore_ascii_case("Group")
    }

    /// The schemas served.
    pub fn registry(&self) -> &SchemaRegistry {
        &self.registry
    }

    /// The `/ServiceProviderConfig` settings.
    pub fn spc(&self) -> &ServiceProviderConfig {
        &self.spc
    }

    /// External URL of the SCIM root: what a trusted proxy said the client used (see
    /// [`super::forwarded`]), else the configured one.
    pub fn base_url(&self) -> std::borrow::Cow<'_, str> {
        match super::forwarded::request_base() {
            Some(b) => std::borrow::Cow::Owned(b.to_string()),
            None => std::borrow::Cow::Borrowed(&self.base_url),
        }
    }

    /// Largest page size.
    pub fn max_results(&self) -> usize {
        self.spc.max_results
    }

    /// The schema context of resource type `rt`; 404 when the profile does not serve it.
    pub fn ctx(&self, rt: &str) -> AppResult<SchemaContext<'_>> {
        if self.find_binding(rt).is_none() && !self.is_managed(rt) {
            return Err(ScimError::not_found(format!(
                "this gateway does not serve {rt} resources"
            ))
            .into());
        }
        SchemaContext::new(&self.registry, rt)
            .ok_or_else(|| AppError::Internal(format!("resource type {rt} not registered")))
    }

    fn binding(&self, rt: &str) -> AppResult<&Binding> {
        self.find_binding(rt).ok_or_else(|| {
            ScimError::not_found(format!("this gateway does not serve {rt} resources")).into()
        })
    }

    /// The binding of `rt`, its name compared ignoring case (the map's keys are lower case):
    /// a profile binds a handful of resource types, and looking them over costs less than
    /// a lower-cased copy of the name and a hash on every phase of every request.
    fn find_binding(&self, rt: &str) -> Option<&Binding> {
        self.bindings
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(rt))
            .map(|(_, b)| b)
    }

    fn script_ctx(&self, rt: &str, op: &str, id: Option<&str>) -> Value {
        json!({
            "op": op,
            "resource_type": rt,
            "id": id,
            "profile": self.profile,
        })
    }

    // ---- phases -------------------------------------------------------------------------

    /// Phase: one backend call.
    async fn call(&self, req: BackendRequest) -> AppResult<Value> {
        Ok(self.backend.call(req).await?.body)
    }

    /// Phase: render an endpoint and call it.
    async fn call_endpoint(
        &self,
        ep: &Endpoint,
        vars: &[(&str, &str)],
        body: Option<Value>,
    ) -> AppResult<Value> {
        self.call(render(ep, vars, body)?).await
    }

    /// Phase: legacy record → SCIM resource through the script, with `id` as a string and
    /// `schemas` listing the core schema and each extension present.
    fn map_from_backend(&self, b: &Binding, record: Value, op: &str) -> AppResult<Value> {
        let r = self.scripts.call_with_ctx_then(
            &b.script,
            "from_backend",
            &record,
            || self.script_ctx(&b.resource_type, op, None),
            |a| a.to_json(),
        )?;
        self.finish_from_backend(b, r)
    }

    /// [`Gateway::map_from_backend`] with the script's `ctx` made by the caller: once per
    /// page of a list instead of once per record.
    fn map_from_backend_in(&self, b: &Binding, record: &Value, ctx: &Value) -> AppResult<Value> {
        let r = self
            .scripts
            .call_with(&b.script, "from_backend", &[record, ctx])?;
        self.finish_from_backend(b, r)
    }

    /// What `from_backend` returned, made a resource: `id` a string, `schemas` as present.
    fn finish_from_backend(&self, b: &Binding, mut r: Value) -> AppResult<Value> {
        let ctx = self.ctx(&b.resource_type)?;
        finish_value(&ctx, &mut r).map_err(|e| not_resource(b, e))?;
        Ok(r)
    }

    /// Phase: SCIM resource → legacy record through the script. A multi-valued attribute
    /// with more than `max_values` values is refused first (400 naming it), so no script
    /// ever meets a collection beyond its size limits.
    fn map_to_backend(
        &self,
        b: &Binding,
        resource: &Value,
        op: &str,
        id: Option<&str>,
    ) -> AppResult<Value> {
        self.check_value_counts(resource)?;
        let ctx = self.script_ctx(&b.resource_type, op, id);
        Ok(self
            .scripts
            .call_with(&b.script, "to_backend", &[resource, &ctx])?)
    }

    /// 400 `invalidValue` when an attribute (top level or in an extension object) carries
    /// more than `max_values` values; `members` is exempt (membership is never a script
    /// value: it goes to the member endpoints or the store).
    fn check_value_counts(&self, resource: &Value) -> AppResult<()> {
        fn find(obj: &Map<String, Value>, max: usize) -> Option<(&str, usize)> {
            obj.iter().find_map(|(k, v)| match v {
                Value::Array(a) if a.len() > max && !k.eq_ignore_ascii_case("members") => {
                    Some((k.as_str(), a.len()))
                }
                Value::Object(inner) if k.contains(':') => find(inner, max),
                _ => None,
            })
        }
        match resource.as_object().and_then(|o| find(o, self.max_values)) {
            None => Ok(()),
            Some((name, n)) => Err(ScimError::invalid_value(format!(
                "'{name}' has {n} values; at most {} are accepted per attribute",
                self.max_values
            ))
            .into()),
        }
    }

    /// Phase: an optional hook's plan (e.g. `on_deactivate`) as durable plan steps; empty
    /// when the script does not define the hook.
    fn hook_steps(
        &self,
        b: &Binding,
        hook: &str,
        resource: &Value,
        id: &str,
    ) -> AppResult<Vec<Step>> {
        if !self.scripts.has_fn(&b.script, hook, 2) {
            return Ok(Vec::new());
        }
        let ctx = self.script_ctx(&b.resource_type, hook, Some(id));
        let plan = self
            .scripts
            .call_plan(&b.script, hook, vec![resource.clone(), ctx])?;
        let mut steps: Vec<Step> = plan.into_iter().map(Step::from).collect();
        if let Some(ep) = &b.delete {
            mark_forgets(&mut steps, canonical_rt(&b.resource_type), &[id], ep);
        }
        Ok(steps)
    }

    /// Phase: runs an optional hook's plan as a durable plan in `slot`; returns whether the
    /// plan deleted the resource itself through the profile's delete endpoint (a deactivation
    /// that deletes, as softdrive's and smartfile's do).
    async fn run_hook(
        &self,
        b: &Binding,
        hook: &str,
        resource: &Value,
        id: &str,
        slot: &'static str,
    ) -> AppResult<bool> {
        let steps = self.hook_steps(b, hook, resource, id)?;
        let me = (canonical_rt(&b.resource_type).to_string(), id.to_string());
        let deletes_itself = steps.iter().any(|s| s.forget.as_ref() == Some(&me));
        self.execute_plan(PlanSpec {
            resource_type: canonical_rt(&b.resource_type).to_string(),
            resource_id: id.to_string(),
            slot,
            kind: hook.to_string(),
            label: label_of(resource),
            steps,
        })
        .await?;
        Ok(deletes_itself)
    }

    /// Phase: refuses a request that carries an attribute the application does not support
    /// (`unsupported` in the profile, e.g. a Group's `owners`): 400 `invalidValue` naming it,
    /// before anything is read or written. The name is matched ignoring case at the top
    /// level, as the last segment of a URN-qualified key, inside an extension object, and as
    /// the attribute of a PATCH operation's `path` or of its value's keys.
    fn refuse_unsupported(&self, rt: &str, body: &Value, is_patch: bool) -> AppResult<()> {
        let Some(refused) = self.unsupported.get(&rt.to_ascii_lowercase()) else {
            return Ok(());
        };
        let found = if is_patch {
            body.get("Operations")
                .or_else(|| body.get("operations"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find_map(|op| {
                    let by_path = op
                        .get("path")
                        .and_then(Value::as_str)
                        .and_then(|p| refused_name(refused, path_attribute(p)));
                    by_path.or_else(|| op.get("value").and_then(|v| refused_key(refused, v)))
                })
        } else {
            refused_key(refused, body)
        };
        match found {
            None => Ok(()),
            Some(name) => Err(ScimError::invalid_value(format!(
                "'{name}' is not supported for {rt} resources by this application; \
                 the request was not applied"
            ))
            .into()),
        }
    }

    /// Phase (`ignore_nested_groups`): the ids among `members` that are groups rather than
    /// users, which the caller leaves out (each is logged). A member is a group when its
    /// `type` says so, or, having no type (Entra sends none), when its value is not a user's
    /// id but a group's: one User read per such member, and a Group read when that is a 404
    /// (gateway-managed groups: a store read instead). Needs user and group ids that never
    /// collide (UUIDs, or one id sequence, as the demo app has); a value that is both is
    /// taken for the user.
    async fn nested_groups(
        &self,
        group: Option<&str>,
        members: &[Member],
    ) -> AppResult<HashSet<String>> {
        let mut nested = HashSet::new();
        if !self.ignore_nested_groups || members.is_empty() {
            return Ok(nested);
        }
        let user = self.binding("User")?;
        for m in members {
            if nested.contains(&m.value) || m.value.is_empty() {
                continue;
            }
            let is_group = match m.kind.as_deref() {
                Some(k) if k.eq_ignore_ascii_case("Group") => true,
                Some(_) => false,
                None if self.managed_groups => self
                    .store
                    .get_group(&ScimId::from(m.value.as_str()))
                    .await?
                    .is_some(),
                None => match self.load(user, &m.value).await {
                    Ok(_) => false,
                    Err(AppError::Backend(e)) if e.is_not_found() => match self.binding("Group") {
                        Ok(g) => {
                            match self.call_endpoint(&g.get, &[("id", &m.value)], None).await {
                                Ok(_) => true,
                                Err(AppError::Backend(e)) if e.is_not_found() => false,
                                Err(e) => return Err(e),
                            }
                        }
                        Err(_) => false,
                    },
                    Err(e) => return Err(e),
                },
            };
            if is_group {
                tracing::info!(
                    group = group.unwrap_or("(new)"),
                    member = %m.value,
                    "group member that is itself a group ignored: only direct members are synced"
                );
                nested.insert(m.value.clone());
            }
        }
        Ok(nested)
    }

    /// `members` without those [`Gateway::nested_groups`] finds.
    async fn direct_members(
        &self,
        group: Option<&str>,
        members: Vec<Member>,
    ) -> AppResult<Vec<Member>> {
        let nested = self.nested_groups(group, &members).await?;
        Ok(members
            .into_iter()
            .filter(|m| !nested.contains(&m.value))
            .collect())
    }

    /// Member values (as a create or PUT body has them) without the nested groups.
    async fn direct_member_values(
        &self,
        group: Option<&str>,
        members: Vec<Value>,
    ) -> AppResult<Vec<Value>> {
        let parsed: Vec<Member> = members.iter().map(member_of).collect();
        let nested = self.nested_groups(group, &parsed).await?;
        Ok(members
            .into_iter()
            .filter(|v| member_value(v).is_none_or(|x| !nested.contains(&x)))
            .collect())
    }

    /// Whether this resource type's deletes keep the data in the application (no delete
    /// endpoint; `on_delete` plans what happens instead, e.g. draftt): deleted resources are
    /// then tombstoned, and gone for SCIM (RFC 7644 §3.6).
    fn keeps_deleted(&self, b: &Binding) -> bool {
        b.delete.is_none() && self.scripts.has_fn(&b.script, "on_delete", 2)
    }

    /// Phase: which of the scanned resources were deleted (and are kept by the app); `None`
    /// when the type's deletes really delete.
    async fn kept_deleted_among(
        &self,
        b: &Binding,
        page: &[Value],
    ) -> AppResult<Option<HashSet<String>>> {
        if !self.keeps_deleted(b) {
            return Ok(None);
        }
        let ids: Vec<String> = page
            .iter()
            .filter_map(|r| r.get("id").and_then(Value::as_str).map(str::to_string))
            .collect();
        let found = self
            .store
            .tombstoned_among(canonical_rt(&b.resource_type), &ids)
            .await?;
        Ok(Some(found))
    }

    /// Phase: load one resource (without members). A resource deleted over SCIM whose
    /// record the application keeps is missing here like a record the app no longer has
    /// (every operation on it, and a member naming it, sees a 404).
    async fn load(&self, b: &Binding, id: &str) -> AppResult<Value> {
        self.refuse_deleted(b, id).await?;
        self.get_mapped(b, id, "get").await
    }

    /// 404 for a resource deleted over SCIM whose record the application keeps.
    async fn refuse_deleted(&self, b: &Binding, id: &str) -> AppResult<()> {
        if self.keeps_deleted(b)
            && self
                .store
                .is_tombstoned(canonical_rt(&b.resource_type), id)
                .await?
        {
            return Err(AppError::Backend(crate::backend::BackendError::Status {
                status: 404,
                message: format!("{} {id} was deleted", b.resource_type),
                retry_after: None,
            }));
        }
        Ok(())
    }

    /// Phases: the legacy record `id` and its SCIM resource, mapped as it is read.
    async fn get_mapped(&self, b: &Binding, id: &str, op: &str) -> AppResult<Value> {
        self.read_record(b, id, op, |answer| {
            self.finish_from_backend(b, answer.to_json())
        })
        .await
    }

    /// Phases: the legacy record `id` read by `from_backend`, whose answer `finish` takes
    /// where it lies: the compiled mapping reads the record straight from the answer's text
    /// (the reader given to `call_reading`), so no `Value` is built for the record, nor for
    /// the answer unless `finish` builds one. A 2xx whose body is not JSON is the backend's
    /// invalid answer as for any call; one that is not a record (a JSON object) a 502
    /// naming the endpoint, never a script failure.
    async fn read_record<T: Send>(
        &self,
        b: &Binding,
        id: &str,
        op: &str,
        finish: impl Fn(Answer<'_, '_>) -> AppResult<T> + Sync,
    ) -> AppResult<T> {
        let req = render(&b.get, &[("id", id)], None)?;
        let not_record = || {
            bad_answer(
                &format!("{} {}", b.get.method, b.get.path),
                "the answer is not a record (a JSON object)",
            )
        };
        let read = |bytes: Bytes| -> Result<AppResult<T>, String> {
            if bytes.iter().find(|c| !c.is_ascii_whitespace()) != Some(&b'{') {
                // Not an object, if JSON at all.
                return crate::backend::parse_body(&bytes).map(|_| Err(not_record()));
            }
            let mapped = self
                .scripts
                .call_on_text_ctx_then(
                    &b.script,
                    "from_backend",
                    &bytes,
                    || self.script_ctx(&b.resource_type, op, None),
                    &finish,
                )
                .map_err(crate::backend::not_json)?;
            Ok(mapped.map_err(AppError::from).and_then(|r| r))
        };
        self.backend.call_reading(req, &read).await?.body
    }

    /// Phase: every member of group `id` as SCIM member values (O(group size); only for GET
    /// with members, PUT and a PATCH that replaces all members).
    async fn load_members(&self, m: &MemberEndpoints, id: &str) -> AppResult<Vec<Value>> {
        let records = self.backend.fetch_all_in(&m.list, &[("id", id)]).await?;
        Ok(records
            .iter()
            .filter_map(|r| {
                let obj = r.as_object()?;
                let value = id_string(get_ci(obj, &m.id_field)?)?;
                let display = m
                    .display_field
                    .as_deref()
                    .and_then(|f| get_ci(obj, f))
                    .and_then(Value::as_str);
                Some(self.member_json(&value, display))
            })
            .collect())
    }

    /// A SCIM member value: members are users of this gateway, so `$ref` and `type` follow
    /// from the id.
    fn member_json(&self, value: &str, display: Option<&str>) -> Value {
        let mut out = Map::new();
        out.insert("value".into(), Value::String(value.to_string()));
        out.insert(
            "$ref".into(),
            Value::String(format!("{}/Users/{value}", self.base_url())),
        );
        out.insert("type".into(), Value::String("User".into()));
        if let Some(d) = display {
            out.insert("display".into(), Value::String(d.to_string()));
        }
        Value::Object(out)
    }

    /// The member values a create or replace stored, in the response's shape.
    fn members_out(&self, members: &[Value]) -> Vec<Value> {
        members
            .iter()
            .filter_map(member_value)
            .map(|v| self.member_json(&v, None))
            .collect()
    }

    /// Phase: apply a membership delta with one backend call per member added or removed.
    /// Removing a member that is not there is not an error (Entra retries removals).
    async fn apply_members(
        &self,
        m: &MemberEndpoints,
        id: &str,
        add: &[Member],
        remove: &[String],
    ) -> AppResult<()> {
        if !add.is_empty() {
            if m.add.body.is_some() {
                let ids: Vec<Value> = add.iter().map(|x| member_id_value(&x.value)).collect();
                let body = m
                    .add
                    .body
                    .as_ref()
                    .map(|t| t.render(&[("members", Value::Array(ids))]))
                    .transpose()
                    .map_err(|e| AppError::Internal(format!("members body: {e}")))?;
                let req = BackendRequest {
                    body,
                    ..m.add
                        .request(&[("id", id)], None)
                        .map_err(|e| AppError::Internal(format!("members path: {e}")))?
                };
                self.call(req).await?;
            } else {
                for x in add {
                    self.call_endpoint(&m.add, &[("id", id), ("member", &x.value)], None)
                        .await?;
                }
            }
        }
        for member in remove {
            match self
                .call_endpoint(&m.remove, &[("id", id), ("member", member)], None)
                .await
            {
                Ok(_) => {}
                Err(AppError::Backend(e)) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Phase: the response: `meta`, ETag, `attributes`/`excludedAttributes`, the body.
    fn respond(&self, rt: &str, resource: Value, params: &ListParams) -> AppResult<Output> {
        let mut body = Vec::with_capacity(512);
        let Written { etag, location } = self.respond_into(&mut body, rt, resource, params)?;
        Ok(Output {
            body,
            etag,
            location,
        })
    }

    /// What a response naming no attributes leaves out of `ctx`'s resources.
    fn hidden_of(&self, ctx: &SchemaContext<'_>) -> Option<&HiddenByDefault> {
        self.hidden
            .iter()
            .find(|(name, _)| *name == ctx.rt.name)
            .map(|(_, h)| h)
    }

    /// Phases: what `from_backend` answered, made a resource ([`Gateway::finish_from_backend`])
    /// and its response written ([`Gateway::respond`]) for a request naming no attributes,
    /// straight from the answer: its `id` as text and `schemas` as present are written in
    /// place of the answer's. An answer that is not an object or has no id as text or integer
    /// takes the general path (and its errors).
    fn respond_answer(&self, b: &Binding, answer: Answer<'_, '_>) -> AppResult<Output> {
        let ctx = self.ctx(&b.resource_type)?;
        let Some((id, schemas)) = finish_doc(&ctx, answer) else {
            let resource = self.finish_from_backend(b, answer.to_json())?;
            return self.respond(&b.resource_type, resource, &ListParams::default());
        };
        let finish = Finish {
            id: Some(&id),
            schemas: Some(&schemas),
        };
        let mut body = Vec::with_capacity(512);
        let base = self.base_url();
        let Written { etag, location } =
            write_doc(&mut body, answer, finish, &ctx, self.hidden_of(&ctx), &base)
                .ok_or_else(|| not_resource(b, NotResource::NotObject))?;
        Ok(Output {
            body,
            etag,
            location,
        })
    }

    /// [`Gateway::respond`] into `out` (a list's body, say).
    fn respond_into(
        &self,
        out: &mut Vec<u8>,
        rt: &str,
        mut resource: Value,
        params: &ListParams,
    ) -> AppResult<Written> {
        let ctx = self.ctx(rt)?;
        let hidden = self.hidden_of(&ctx);
        // A response naming no attributes (Entra's) is written in one pass.
        if params.attributes.is_empty()
            && params.excluded_attributes.is_empty()
            && let Some(w) = write_resource(out, &resource, &ctx, hidden, &self.base_url())
        {
            return Ok(w);
        }
        // Scripts pass the legacy record's timestamps as meta.created / meta.lastModified;
        // the rest of meta is the gateway's.
        let stamp = |k: &str| {
            resource
                .get("meta")
                .and_then(|m| m.get(k))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let (created, modified) = (stamp("created"), stamp("lastModified"));
        let etag = set_meta(
            &mut resource,
            ctx.rt,
            &self.base_url(),
            created.as_deref(),
            modified.as_deref(),
        );
        // Taken before the projection, which may leave `meta` out.
        let location = resource
            .pointer("/meta/location")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let resource = project_owned_with(
            resource,
            &ctx,
            hidden,
            &params.attributes,
            &params.excluded_attributes,
        );
        crate::json::write_value(out, &resource);
        Ok(Written { etag, location })
    }

    fn wants_members(params: &ListParams) -> bool {
        let members = AttrPath::new("members");
        if params
            .excluded_attributes
            .iter()
            .any(|p| p.same_attr(&members) && p.sub.is_none())
        {
            return false;
        }
        params.attributes.is_empty() || params.attributes.iter().any(|p| p.same_attr(&members))
    }

    // ---- operations ---------------------------------------------------------------------

    /// `GET /{rt}/{id}`.
    pub async fn get(&self, rt: &str, id: &str, params: &ListParams) -> AppResult<Output> {
        if self.is_managed(rt) {
            return self.managed_get(id, params).await;
        }
        let b = self.binding(rt)?;
        // A resource without members, answered whole (Entra's GET): written straight from
        // the mapping's answer.
        if b.members.is_none()
            && params.attributes.is_empty()
            && params.excluded_attributes.is_empty()
        {
            self.refuse_deleted(b, id).await?;
            return self
                .read_record(b, id, "get", |answer| self.respond_answer(b, answer))
                .await;
        }
        let mut resource = self.load(b, id).await?;
        if let Some(m) = &b.members
            && Self::wants_members(params)
        {
            let members = self.load_members(m, id).await?;
            set_members(&mut resource, members);
        }
        self.respond(rt, resource, params)
    }

    /// `GET /{rt}` and `POST /{rt}/.search`.
    pub async fn list(&self, rt: &str, params: &ListParams) -> AppResult<Vec<u8>> {
        if self.is_managed(rt) {
            return self.managed_list(params).await;
        }
        let b = self.binding(rt)?;
        let ctx = self.ctx(rt)?;
        let count = params.page_size(self.max_results());
        let mut query = b.list.fixed_query();
        let pushed = params
            .filter
            .as_ref()
            .map(|f| self.pushdown(b, f, &mut query))
            .unwrap_or(false);
        // Deleted-but-kept records must not count in totals nor shift pages: when there are
        // any, the list is paged here (bounded by max_scan) instead of by the app.
        let kept_any = self.keeps_deleted(b)
            && self
                .store
                .any_tombstoned(canonical_rt(&b.resource_type))
                .await?;
        let in_gateway = params.filter.is_some() || params.sort_by.is_some() || kept_any;
        let window = (in_gateway, pushed, params.start_index, count);
        // Resources without members, answered whole and neither sorted nor weeded of kept
        // deletions (Entra's filter): each record read from its text and written straight
        // from the mapping's answer, as a GET.
        if b.members.is_none()
            && params.attributes.is_empty()
            && params.excluded_attributes.is_empty()
            && params.sort_by.is_none()
            && !kept_any
        {
            let (records, paged_total) = self.list_records::<ListRecord>(b, query, window).await?;
            return self.list_answers(b, &ctx, params, records, paged_total, count);
        }
        let (records, paged_total) = self.list_records::<Value>(b, query, window).await?;
        let script_ctx = self.script_ctx(&b.resource_type, "list", None);
        let mut mapped = Vec::with_capacity(records.len());
        // Each raw record is dropped once mapped (a scan may hold `max_scan` of them).
        for r in records {
            mapped.push(self.map_from_backend_in(b, &r, &script_ctx)?);
        }
        let (resources, total) = match paged_total {
            Some(total) => (mapped, total),
            None => {
                if let Some(ids) = self.kept_deleted_among(b, &mapped).await? {
                    mapped.retain(|r| {
                        !r.get("id")
                            .and_then(Value::as_str)
                            .is_some_and(|id| ids.contains(id))
                    });
                }
                let mut matched = Vec::new();
                for res in mapped {
                    if params
                        .filter
                        .as_ref()
                        .is_none_or(|f| evaluate(f, &res, &ctx))
                    {
                        matched.push(res);
                    }
                }
                if let Some(by) = &params.sort_by {
                    sort_resources(&mut matched, &ctx, by, params.sort_order);
                }
                let total = matched.len();
                (page(matched, params.start_index, count), total)
            }
        };
        let mut body = ListBody::default();
        for mut r in resources {
            if let (Some(m), true) = (&b.members, Self::wants_members(params)) {
                let id = r
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let members = self.load_members(m, &id).await?;
                set_members(&mut r, members);
            }
            self.respond_into(body.item(), rt, r, params)?;
        }
        Ok(body.finish(total, params.start_index))
    }

    /// Phase: a list's records, read as `T`, with the app's
    /// total where the app made the page (`None`: a scan of up to `max_scan` records, made
    /// when the list is filtered, sorted or weeded here, that the gateway filters and
    /// pages). `window` is (made here, a filter pushed down, startIndex, count).
    async fn list_records<T: crate::backend::ListItem>(
        &self,
        b: &Binding,
        query: Vec<(String, String)>,
        (in_gateway, pushed, start_index, count): (bool, bool, usize, usize),
    ) -> AppResult<(Vec<T>, Option<usize>)> {
        if !in_gateway {
            // The legacy app pages for us.
            let (records, total) = self
                .backend
                .list_of(&b.list, query, start_index, count)
                .await?;
            return Ok((records, Some(total)));
        }
        let (records, total) = self
            .backend
            .list_of(&b.list, query, 1, self.max_scan)
            .await?;
        // Evaluating a partial scan would give a wrong answer, so refuse instead.
        if total > self.max_scan {
            let hint = if pushed {
                "narrow the filter"
            } else {
                "filter on an attribute the profile pushes down to the application"
            };
            return Err(ScimError::new(
                400,
                Some(crate::scim::ScimType::TooMany),
                format!(
                    "the request would scan {total} application records (limit {}); {hint}",
                    self.max_scan
                ),
            )
            .into());
        }
        Ok((records, None))
    }

    /// [`Gateway::list`]'s body for resources without members, named whole, neither sorted
    /// nor weeded of kept deletions: each record mapped and its resource written straight
    /// from the mapping's answer ([`Gateway::respond_answer`]'s way). A filter is evaluated
    /// on what it reads of the answer ([`view`]), so no resource is built as a `Value`; a
    /// scan is paged here as [`page`] pages it. An answer that is not a resource as it lies
    /// takes the general path (and its errors).
    fn list_answers(
        &self,
        b: &Binding,
        ctx: &SchemaContext<'_>,
        params: &ListParams,
        records: Vec<ListRecord>,
        paged_total: Option<usize>,
        count: usize,
    ) -> AppResult<Vec<u8>> {
        let filter = params.filter.as_ref().filter(|_| paged_total.is_none());
        let names = filter.map(|f| read_names(f, ctx));
        let first = params.start_index.saturating_sub(1);
        let hidden = self.hidden_of(ctx);
        let base = self.base_url();
        let mut body = ListBody::default();
        let mut matched = 0usize;
        let mut write = |answer: Answer<'_, '_>| -> AppResult<()> {
            // Within the page: all of a page the app made, `count` from `first` of a scan's
            // matches.
            let shown = |matched: usize| {
                paged_total.is_some() || (matched >= first && matched - first < count)
            };
            let Some((id, schemas)) = finish_doc(ctx, answer) else {
                let res = self.finish_from_backend(b, answer.to_json())?;
                if filter.is_none_or(|f| evaluate(f, &res, ctx)) {
                    if shown(matched) {
                        self.respond_into(body.item(), &b.resource_type, res, params)?;
                    }
                    matched += 1;
                }
                return Ok(());
            };
            if let (Some(f), Some(names)) = (filter, &names)
                && !evaluate(f, &view(answer, names, &id, &schemas), ctx)
            {
                return Ok(());
            }
            if shown(matched) {
                let finish = Finish {
                    id: Some(&id),
                    schemas: Some(&schemas),
                };
                write_doc(body.item(), answer, finish, ctx, hidden, &base)
                    .ok_or_else(|| not_resource(b, NotResource::NotObject))?;
            }
            matched += 1;
            Ok(())
        };
        let script_ctx = || self.script_ctx(&b.resource_type, "list", None);
        for r in records {
            let written = match &r {
                ListRecord::Text(text) => self
                    .scripts
                    .call_on_text_ctx_then(&b.script, "from_backend", text, script_ctx, &mut write)
                    // Never: each text is a value the page was read as.
                    .map_err(|e| {
                        let endpoint = format!("{} {}", b.list.method, b.list.path);
                        bad_answer(&endpoint, &crate::backend::not_json(e))
                    })?,
                ListRecord::Value(v) => self.scripts.call_with_ctx_then(
                    &b.script,
                    "from_backend",
                    v,
                    script_ctx,
                    &mut write,
                ),
            };
            written??;
        }
        Ok(body.finish(paged_total.unwrap_or(matched), params.start_index))
    }

    /// Adds query parameters for the top-level `attr eq "value"` clauses the profile can push
    /// down; returns whether any was. The whole filter is still evaluated on the results, so
    /// a legacy app that matches more loosely cannot widen the answer.
    fn pushdown(&self, b: &Binding, f: &Filter, query: &mut Vec<(String, String)>) -> bool {
        let mut pushed = false;
        for c in f.conjuncts() {
            let Some((path, value)) = c.simple_eq() else {
                continue;
            };
            if let Some((_, param)) = b.pushdown.iter().find(|(p, _)| {
                p.same_attr(path)
                    && match (&p.sub, &path.sub) {
                        (None, None) => true,
                        (Some(a), Some(c)) => a.eq_ignore_ascii_case(c),
                        _ => false,
                    }
            }) && !query.iter().any(|(k, _)| k == param)
            {
                query.push((param.clone(), value.to_string()));
                pushed = true;
            }
        }
        pushed
    }

    /// `POST /{rt}` → the created resource.
    ///
    /// Creates of the same resource (same externalId, else userName / displayName) run one
    /// at a time in this process, and a resource whose externalId the id map already holds
    /// (and the application still has) is a 409 `uniqueness`: a retried create whose first
    /// attempt timed out at the client but completed never makes a duplicate. When the
    /// create needs follow-up calls (members), a rollback plan is recorded as soon as the
    /// record exists, so a failure or a crash before the follow-ups finish deletes it again
    /// (at once, or by the plan worker).
    pub async fn create(&self, rt: &str, body: Value, params: &ListParams) -> AppResult<Output> {
        self.refuse_unsupported(rt, &body, false)?;
        if self.is_managed(rt) {
            return self.managed_create(body, params).await;
        }
        let b = self.binding(rt)?;
        let ctx = self.ctx(rt)?;
        let mut resource = normalize_resource(body, &ctx, normalize_options(b))?;
        crate::backend::note_label(label_of(&resource));
        let _turn = self.create_lock(rt, &resource).lock().await;
        self.refuse_known_external_id(b, &resource).await?;
        self.refuse_kept_deleted(b, &resource).await?;
        self.refuse_taken(b, &resource, None, None).await?;
        let members = match &b.members {
            Some(_) => {
                self.direct_member_values(None, take_members(&mut resource))
                    .await?
            }
            None => Vec::new(),
        };
        let record = self.map_to_backend(b, &resource, "create", None)?;
        let endpoint = format!("{} {}", b.create.method, b.create.path);
        let created = match self.call_endpoint(&b.create, &[], Some(record)).await {
            // A create endpoint has no record to miss: a 404 means the endpoint is wrong or
            // the application is broken, not that the client asked for something absent.
            Err(AppError::Backend(e)) if e.is_not_found() => {
                return Err(bad_answer(
                    &endpoint,
                    "answered 404 (does the create endpoint exist?)",
                ));
            }
            other => other?,
        };
        let id = b
            .create
            .id
            .as_ref()
            .and_then(|p| p.first(&created))
            .or_else(|| created.get("id"))
            .and_then(id_string)
            .ok_or_else(|| bad_answer(&endpoint, "the answer carries no id of the new record"))?;
        let rollback = if members.is_empty() {
            None
        } else {
            match self
                .begin_guard(self.undo_create_spec(b, &id, label_of(&resource)))
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    // No record of the intent, so no follow-up calls: undo the create now.
                    self.undo_create(b, &id, label_of(&resource)).await;
                    return Err(e);
                }
            }
        };
        let finished: AppResult<(Output, Option<String>)> = async {
            // A resource without members answered whole (Entra's create): written straight
            // from the mapping's answer, as a GET is.
            if b.members.is_none()
                && params.attributes.is_empty()
                && params.excluded_attributes.is_empty()
            {
                let answered = |a: Answer<'_, '_>| -> AppResult<(Output, Option<String>)> {
                    // What Entra sent, also when the legacy app cannot store it.
                    let external = a
                        .get("externalId")
                        .and_then(Doc::as_str)
                        .filter(|s| !s.is_empty())
                        .or_else(|| external_id_of(&resource))
                        .map(str::to_string);
                    Ok((self.respond_answer(b, a)?, external))
                };
                return if created.is_object() && created.get("id").is_some() {
                    self.scripts.call_with_ctx_then(
                        &b.script,
                        "from_backend",
                        &created,
                        || self.script_ctx(&b.resource_type, "create", None),
                        answered,
                    )?
                } else {
                    self.read_record(b, &id, "create", answered).await
                };
            }
            let mut out = if created.is_object() && created.get("id").is_some() {
                self.map_from_backend(b, created, "create")?
            } else {
                self.get_mapped(b, &id, "create").await?
            };
            // What Entra sent, also when the legacy app cannot store it (the id map can).
            let external = external_id_of(&out)
                .or_else(|| external_id_of(&resource))
                .map(str::to_string);
            if let Some(m) = &b.members {
                let add: Vec<Member> = members.iter().map(member_of).collect();
                self.apply_members(m, &id, &add, &[]).await?;
                set_members(&mut out, self.members_out(&members));
            }
            Ok((self.respond(rt, out, params)?, external))
        }
        .await;
        match finished {
            Ok((out, external)) => {
                self.map_created(rt, &id, &id, external.as_deref()).await;
                if let Some(r) = rollback {
                    self.discard(r).await;
                }
                Ok(out)
            }
            Err(e) => {
                match rollback {
                    Some(r) => self.run_begun(r).await,
                    None => self.undo_create(b, &id, label_of(&resource)).await,
                }
                Err(e)
            }
        }
    }

    /// The stripe that serialises creates of one resource (its externalId, else its
    /// userName / displayName, ignoring case) within this process.
    fn create_lock(&self, rt: &str, resource: &Value) -> &tokio::sync::Mutex<()> {
        let key = external_id_of(resource)
            .map(str::to_string)
            .or_else(|| label_of(resource).map(|l| l.to_lowercase()))
            .unwrap_or_default();
        let mut h = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&(rt.to_ascii_lowercase(), key), &mut h);
        let i = usize::try_from(std::hash::Hasher::finish(&h) % self.create_locks.len() as u64)
            .unwrap_or(0);
        &self.create_locks[i]
    }

    /// Phase: 409 `uniqueness` when the id map already holds this externalId for a record
    /// the application still has (a stale mapping, whose record is gone, is forgotten).
    async fn refuse_known_external_id(&self, b: &Binding, resource: &Value) -> AppResult<()> {
        let Some(external) = external_id_of(resource) else {
            return Ok(());
        };
        let rt = canonical_rt(&b.resource_type);
        let Some(known) = self
            .store
            .by_external_id(rt, &ExternalId::from(external))
            .await?
        else {
            return Ok(());
        };
        let id = known.scim_id.as_str();
        match self.call_endpoint(&b.get, &[("id", id)], None).await {
            Ok(_) => Err(ScimError::uniqueness(format!(
                "a {rt} with externalId '{external}' already exists (id {id})"
            ))
            .into()),
            Err(AppError::Backend(e)) if e.is_not_found() => {
                tracing::info!(%rt, id, external, "id map named a record the application no longer has; mapping forgotten");
                self.unmap(rt, id).await;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Phase (types whose deletes keep the data): a create whose userName (displayName) or
    /// externalId is a deleted account the application keeps is a 409: the kept account is
    /// never matched to, or handed over to, whoever is created now.
    async fn refuse_kept_deleted(&self, b: &Binding, resource: &Value) -> AppResult<()> {
        if !self.keeps_deleted(b) {
            return Ok(());
        }
        let rt = canonical_rt(&b.resource_type);
        let name_key = label_of(resource).map(|l| l.to_lowercase());
        let external = external_id_of(resource);
        if name_key.is_none() && external.is_none() {
            return Ok(());
        }
        let Some(t) = self
            .store
            .tombstone_matching(rt, name_key.as_deref(), external)
            .await?
        else {
            return Ok(());
        };
        let by = if t.name_key.is_some() && t.name_key == name_key {
            if rt == "User" {
                "userName"
            } else {
                "displayName"
            }
        } else {
            "externalId"
        };
        Err(ScimError::uniqueness(format!(
            "a {rt} with this {by} was deleted and the application keeps its account (id {}); \
             it is not reused for a new {rt}",
            t.scim_id
        ))
        .into())
    }

    /// Phase: 409 `uniqueness` when another resource holds the value of an attribute the
    /// profile declares unique (compared with `before`, only changed values are checked):
    /// one list query per such attribute, `attr eq "value"`, pushed down where the profile
    /// maps it. Runs before anything is written.
    async fn refuse_taken(
        &self,
        b: &Binding,
        resource: &Value,
        own_id: Option<&str>,
        before: Option<&Value>,
    ) -> AppResult<()> {
        let Some(obj) = resource.as_object() else {
            return Ok(());
        };
        for attr in &b.unique {
            let Some(value) = get_ci(obj, attr)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
            else {
                continue;
            };
            let old = before
                .and_then(Value::as_object)
                .and_then(|o| get_ci(o, attr))
                .and_then(Value::as_str);
            if old == Some(value) {
                continue;
            }
            let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
            let pairs = [
                ("filter".to_string(), format!("{attr} eq \"{escaped}\"")),
                ("attributes".to_string(), "id".to_string()),
            ];
            let params = ListParams::from_query(&pairs, &self.ctx(&b.resource_type)?, 2)?;
            // The list's own body, read back (a page of at most two ids).
            let found = crate::json::from_slice(&self.list(&b.resource_type, &params).await?)
                .map_err(|e| AppError::Internal(format!("a list body did not read back: {e}")))?;
            let holder = found["Resources"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r.get("id").and_then(Value::as_str))
                .find(|id| Some(*id) != own_id);
            if let Some(holder) = holder {
                return Err(ScimError::uniqueness(format!(
                    "{attr} '{value}' is already used by {} {holder}; it must be unique",
                    b.resource_type
                ))
                .into());
            }
        }
        Ok(())
    }

    /// The plan that deletes a record a failed create made.
    fn undo_create_spec(&self, b: &Binding, id: &str, label: Option<String>) -> PlanSpec {
        let rt = canonical_rt(&b.resource_type);
        let steps = b
            .delete
            .as_ref()
            .and_then(|ep| ep.request(&[("id", id)], None).ok())
            .map(|req| {
                let mut s = Step::of_request(req);
                s.missing_ok = true;
                s.forget = Some((rt.to_string(), id.to_string()));
                vec![s]
            })
            .unwrap_or_default();
        PlanSpec {
            resource_type: rt.to_string(),
            resource_id: id.to_string(),
            slot: "create",
            kind: "create rollback".to_string(),
            label,
            steps,
        }
    }

    /// Phase: a replace or patch whose membership changes failed after the record itself was
    /// rewritten: write the previous state back, so the error means "nothing changed". The
    /// write back is a durable plan: if it fails too, the worker retries it.
    async fn restore(&self, b: &Binding, id: &str, previous: &Value) {
        let rt = canonical_rt(&b.resource_type);
        let mut previous = previous.clone();
        take_members(&mut previous);
        let restored = async {
            let record = self.map_to_backend(b, &previous, "replace", Some(id))?;
            let req = render(&b.replace, &[("id", id)], Some(record))?;
            self.execute_plan(PlanSpec {
                resource_type: rt.to_string(),
                resource_id: id.to_string(),
                slot: "restore",
                kind: "restore after a failed membership change".to_string(),
                label: label_of(&previous),
                steps: vec![Step::of_request(req)],
            })
            .await
        }
        .await;
        match restored {
            Ok(()) => {
                tracing::warn!(%rt, id, "membership change failed; record restored to its previous state")
            }
            Err(e) => {
                tracing::error!(%rt, id, error = ?e, "membership change failed; restoring the record failed too (its plan is retried)")
            }
        }
    }

    /// Phase: a create failed after the legacy record was made (e.g. a script failed on the
    /// answer): delete the record again, so the client's error means "nothing was created"
    /// and its retry does not collide with a half-provisioned record. A durable plan: a
    /// failed undo is retried by the worker.
    async fn undo_create(&self, b: &Binding, id: &str, label: Option<String>) {
        let rt = &b.resource_type;
        let spec = self.undo_create_spec(b, id, label);
        if spec.steps.is_empty() {
            tracing::error!(%rt, id, "create failed after the record was made; no delete endpoint to undo it");
            return;
        }
        let direct = spec.steps.first().map(Step::request);
        match self.execute_plan(spec).await {
            Ok(()) => {
                tracing::warn!(%rt, id, "create failed after the record was made; record deleted again")
            }
            Err(AppError::Store(e)) => {
                // The store cannot take the plan: one direct attempt, logged either way.
                tracing::error!(%rt, id, error = %e, "create failed after the record was made; the store cannot record its undo, deleting it directly");
                let outcome = match direct {
                    Some(Ok(req)) => self.call(req).await.map(|_| ()),
                    Some(Err(e)) => Err(e),
                    None => Ok(()),
                };
                if let Err(e) = outcome {
                    tracing::error!(%rt, id, error = ?e, "deleting the record failed too: it is left in the application");
                } else {
                    self.unmap(rt, id).await;
                }
            }
            Err(e) => {
                tracing::error!(%rt, id, error = ?e, "create failed after the record was made; deleting it failed too (its plan is retried)")
            }
        }
    }

    /// `PUT /{rt}/{id}`: `Some(resource)` for 200, `None` for 204 when the write's
    /// deactivation deleted the resource.
    pub async fn replace(
        &self,
        rt: &str,
        id: &str,
        body: Value,
        if_match_header: Option<&str>,
        params: &ListParams,
    ) -> AppResult<Option<Output>> {
        self.refuse_unsupported(rt, &body, false)?;
        if self.is_managed(rt) {
            return self
                .managed_replace(id, body, if_match_header, params)
                .await
                .map(Some);
        }
        let b = self.binding(rt)?;
        let ctx = self.ctx(rt)?;
        let mut resource = normalize_resource(body, &ctx, normalize_options(b))?;
        let mut current = self.load(b, id).await?;
        crate::backend::note_label(label_of(&current));
        let old_members = match &b.members {
            Some(m) => {
                let list = self.load_members(m, id).await?;
                set_members(&mut current, list.clone());
                list
            }
            None => Vec::new(),
        };
        check_version(&current, if_match_header)?;
        self.refuse_taken(b, &resource, Some(id), Some(&current))
            .await?;
        let new_members = match &b.members {
            Some(_) => {
                self.direct_member_values(Some(id), take_members(&mut resource))
                    .await?
            }
            None => Vec::new(),
        };
        if let Some(o) = resource.as_object_mut() {
            o.insert("id".into(), Value::String(id.to_string()));
        }
        let record = self.map_to_backend(b, &resource, "replace", Some(id))?;
        let updated = self
            .call_endpoint(&b.replace, &[("id", id)], Some(record))
            .await?;
        let (mut out, deleted) = self.after_write(b, id, &current, updated).await?;
        if deleted {
            return Ok(None);
        }
        if let Some(m) = &b.members {
            let old: HashSet<String> = old_members.iter().filter_map(member_value).collect();
            let new: HashSet<String> = new_members.iter().filter_map(member_value).collect();
            let add: Vec<Member> = new_members
                .iter()
                .filter(|v| member_value(v).is_some_and(|x| !old.contains(&x)))
                .map(member_of)
                .collect();
            let remove: Vec<String> = old.difference(&new).cloned().collect();
            if let Err(e) = self.apply_members(m, id, &add, &remove).await {
                self.restore(b, id, &current).await;
                return Err(e);
            }
            set_members(&mut out, self.members_out(&new_members));
        }
        let external = external_id_of(&out).or_else(|| external_id_of(&resource));
        self.map_external_id(rt, id, external_id_of(&current), external)
            .await;
        self.respond(rt, out, params).map(Some)
    }

    /// After a replace: the stored record (from the response or read back), mapped, plus the
    /// activation hooks; `true` beside it when a hook deleted the resource (the write's
    /// answer is then 204: the resource no longer exists).
    async fn after_write(
        &self,
        b: &Binding,
        id: &str,
        before: &Value,
        updated: Value,
    ) -> AppResult<(Value, bool)> {
        let out = if updated.is_object() && updated.get("id").is_some() {
            self.map_from_backend(b, updated, "replace")?
        } else {
            self.get_mapped(b, id, "replace").await?
        };
        let deleted = self.assert_activation(b, id, before, &out).await?;
        Ok((out, deleted))
    }

    /// Phase (desired state, not transitions): a user that is inactive after a write is not
    /// deprovisioned until its `on_deactivate` plan is recorded complete. The hook's plan runs
    /// when `active` became false, and again on any write (Entra's retry, or its next sync of
    /// a disabled user) that finds the user already inactive while the last plan of its
    /// `active` slot is pending, failed, or was never recorded (deactivated in the app itself,
    /// or before plans were kept). Reactivation runs `on_reactivate` in the same slot.
    /// `true` when the plan deleted the resource.
    async fn assert_activation(
        &self,
        b: &Binding,
        id: &str,
        before: &Value,
        after: &Value,
    ) -> AppResult<bool> {
        let was = before.get("active").and_then(Value::as_bool);
        let now = after.get("active").and_then(Value::as_bool);
        match (was, now) {
            (Some(true) | None, Some(false)) => {
                return self.run_hook(b, "on_deactivate", after, id, "active").await;
            }
            (Some(false), Some(false)) if self.scripts.has_fn(&b.script, "on_deactivate", 2) => {
                let rt = canonical_rt(&b.resource_type);
                match self.settled_slot_plan(rt, id, "active").await? {
                    Some(p) if p.state == PlanState::Done && p.kind == "on_deactivate" => {}
                    last => {
                        tracing::info!(
                            %rt, id, last_plan = ?last.map(|p| (p.kind, p.state)),
                            "inactive, but its deprovisioning is not recorded complete: on_deactivate runs again"
                        );
                        return self.run_hook(b, "on_deactivate", after, id, "active").await;
                    }
                }
            }
            (Some(false), Some(true)) => {
                return self.run_hook(b, "on_reactivate", after, id, "active").await;
            }
            _ => {}
        }
        Ok(false)
    }

    /// `PATCH /{rt}/{id}`: `Some(resource)` for 200, `None` for 204 (a group whose only
    /// changes were memberships, applied without reading the member list, or a resource its
    /// deactivation deleted).
    pub async fn patch(
        &self,
        rt: &str,
        id: &str,
        body: Value,
        if_match_header: Option<&str>,
        params: &ListParams,
    ) -> AppResult<Option<Output>> {
        self.refuse_unsupported(rt, &body, true)?;
        if self.is_managed(rt) {
            return self.managed_patch(id, body, if_match_header, params).await;
        }
        let b = self.binding(rt)?;
        let ctx = self.ctx(rt)?;
        let req = retain_supported(parse_patch(&body, &ctx)?, &ctx);
        let (req, mut delta) = match &b.members {
            Some(_) => split_members(req, &ctx)?,
            None => (req, MemberDelta::default()),
        };
        delta.add = self.direct_members(Some(id), delta.add).await?;
        if let Some(list) = delta.reset.take() {
            delta.reset = Some(self.direct_members(Some(id), list).await?);
        }
        let mut current = self.load(b, id).await?;
        crate::backend::note_label(label_of(&current));
        if if_match_header.is_some() {
            let mut full = current.clone();
            if let Some(m) = &b.members {
                set_members(&mut full, self.load_members(m, id).await?);
            }
            check_version(&full, if_match_header)?;
        }
        let mut out = current.clone();
        // The resource as it was, once the record has been rewritten (to undo that write if
        // the membership changes then fail).
        let mut rewritten_from = None;
        // externalId before and after the patch, for the id map.
        let mut external_change = None;
        if !req.ops.is_empty() {
            apply_patch(&mut current, &req, &ctx)?;
            let (before, after) = (external_id_of(&out), external_id_of(&current));
            if before != after {
                external_change = Some((before.map(str::to_string), after.map(str::to_string)));
            }
            if current != out {
                self.refuse_taken(b, &current, Some(id), Some(&out)).await?;
                let record = self.map_to_backend(b, &current, "patch", Some(id))?;
                let updated = self
                    .call_endpoint(&b.replace, &[("id", id)], Some(record))
                    .await?;
                let (written, deleted) = self.after_write(b, id, &out, updated).await?;
                if deleted {
                    // The deactivation deleted the resource (softdrive, smartfile): there is
                    // nothing left to change or to show.
                    return Ok(None);
                }
                rewritten_from = Some(std::mem::replace(&mut out, written));
            } else {
                // Nothing to write, but the state it asserts may not be complete yet (a
                // retried deactivation whose plan failed).
                if self.assert_activation(b, id, &out, &out).await? {
                    return Ok(None);
                }
            }
        }
        if let Some(m) = &b.members {
            let applied = match self.member_changes(m, id, delta).await {
                Ok((add, remove)) => self.apply_members(m, id, &add, &remove).await,
                Err(e) => Err(e),
            };
            if let Err(e) = applied {
                if let Some(previous) = &rewritten_from {
                    self.restore(b, id, previous).await;
                }
                return Err(e);
            }
        }
        if let Some((before, after)) = &external_change {
            self.map_external_id(rt, id, before.as_deref(), after.as_deref())
                .await;
        }
        if let Some(m) = &b.members {
            if params.attributes.is_empty() && params.excluded_attributes.is_empty() {
                return Ok(None);
            }
            if Self::wants_members(params) {
                set_members(&mut out, self.load_members(m, id).await?);
            }
        }
        Ok(Some(self.respond(rt, out, params)?))
    }

    /// The members a PATCH adds and removes: its delta as parsed, or for a replacement of
    /// the whole member list, the difference from the current members (O(group size)).
    async fn member_changes(
        &self,
        m: &MemberEndpoints,
        id: &str,
        delta: MemberDelta,
    ) -> AppResult<(Vec<Member>, Vec<String>)> {
        let Some(list) = delta.reset else {
            return Ok((delta.add, delta.remove));
        };
        let old: HashSet<String> = self
            .load_members(m, id)
            .await?
            .iter()
            .filter_map(member_value)
            .collect();
        let new: HashSet<&str> = list.iter().map(|x| x.value.as_str()).collect();
        let remove = old
            .iter()
            .filter(|x| !new.contains(x.as_str()))
            .cloned()
            .collect();
        let add = list
            .into_iter()
            .filter(|x| !old.contains(&x.value))
            .collect();
        Ok((add, remove))
    }

    /// `DELETE /{rt}/{id}`: the script's `on_delete` plan when it has one (e.g. deactivate
    /// and keep the data), otherwise the delete endpoint; for a group with
    /// `on_group_delete`, that hook's plan first (e.g. delete the group's users).
    ///
    /// A plain delete is one call. Anything more is one durable plan in the resource's
    /// `delete` slot (replacing whatever else was planned for it): a failure leaves it
    /// pending for the worker, and Entra's retry of the delete plans and runs it afresh.
    /// A deleted user first leaves every gateway-managed group (before the legacy call, so a
    /// failure either way leaves a state a retry completes); the id map forgets the resource
    /// once it is deleted (and each user a plan step deleted, as the step succeeds).
    pub async fn delete(&self, rt: &str, id: &str, if_match_header: Option<&str>) -> AppResult<()> {
        if self.is_managed(rt) {
            return self.managed_delete(id, if_match_header).await;
        }
        let b = self.binding(rt)?;
        let has_hook = self.scripts.has_fn(&b.script, "on_delete", 2);
        let group_hook =
            b.members.is_some() && self.scripts.has_fn(&b.script, GROUP_DELETE_HOOK, 3);
        if !has_hook && b.delete.is_none() {
            return Err(ScimError::new(
                405,
                None,
                format!("{rt} resources cannot be deleted here"),
            )
            .into());
        }
        let mut steps: Vec<Step> = Vec::new();
        let mut label = None;
        let mut loaded_external = None;
        let mut hook_planned = false;
        if if_match_header.is_some() || has_hook || group_hook {
            let loaded = self.load(b, id).await?;
            label = label_of(&loaded);
            loaded_external = external_id_of(&loaded).map(str::to_string);
            crate::backend::note_label(label.clone());
            // The members only when something needs them: If-Match (the version covers
            // them) or on_group_delete; a plain group delete stays one legacy call.
            let members = match &b.members {
                Some(m) if if_match_header.is_some() || group_hook => {
                    Some(self.load_members(m, id).await?)
                }
                _ => None,
            };
            if if_match_header.is_some() {
                let mut full = loaded.clone();
                if let Some(list) = &members {
                    set_members(&mut full, list.clone());
                }
                check_version(&full, if_match_header)?;
            }
            if group_hook {
                // Before the delete, so that a failure leaves the group for the retry.
                steps = self.group_delete_steps(b, id, &loaded, members.unwrap_or_default())?;
            }
            if has_hook {
                let planned = self.hook_steps(b, "on_delete", &loaded, id)?;
                hook_planned = !planned.is_empty();
                steps.extend(planned);
            }
        }
        if !hook_planned && let Some(ep) = &b.delete {
            let req = render(ep, &[("id", id)], None)?;
            steps.push(Step::of_request(req));
        }
        // The worker, too, must forget the resource once its plan completes, and when the
        // application keeps the data, record the tombstone that makes it gone for SCIM.
        if let Some(last) = steps.last_mut() {
            if last.forget.is_none() {
                last.forget = Some((canonical_rt(rt).to_string(), id.to_string()));
            }
            if self.keeps_deleted(b) {
                last.bury = Some(Bury {
                    resource_type: canonical_rt(rt).to_string(),
                    scim_id: id.to_string(),
                    name_key: label.as_ref().map(|l| l.to_lowercase()),
                    external_id: loaded_external.clone(),
                });
            }
        }
        if self.managed_groups && rt.eq_ignore_ascii_case("User") {
            let dropped = self.store.drop_member(&ScimId::from(id)).await?;
            if dropped > 0 {
                tracing::info!(
                    user = id,
                    groups = dropped,
                    "deleted user left its managed groups"
                );
            }
        }
        let me = (canonical_rt(rt).to_string(), id.to_string());
        let plan_forgets = steps.iter().any(|s| s.forget.as_ref() == Some(&me));
        let one_call = steps.len() == 1 && !has_hook && !group_hook;
        if steps.is_empty() {
            // Nothing to call (an on_delete that plans nothing, e.g. for an account already
            // inactive): the delete is complete at once, and where the app keeps the data it
            // is buried now.
            if self.keeps_deleted(b) {
                self.bury(&Bury {
                    resource_type: canonical_rt(rt).to_string(),
                    scim_id: id.to_string(),
                    name_key: label.as_ref().map(|l| l.to_lowercase()),
                    external_id: loaded_external,
                })
                .await;
            }
        } else if one_call {
            // One call: no plan record.
            let req = steps[0].request()?;
            self.call(req).await?;
        } else {
            let n = steps.len();
            self.execute_plan(PlanSpec {
                resource_type: canonical_rt(rt).to_string(),
                resource_id: id.to_string(),
                slot: "delete",
                kind: if group_hook {
                    GROUP_DELETE_HOOK.to_string()
                } else if hook_planned {
                    "on_delete".to_string()
                } else {
                    "delete".to_string()
                },
                label,
                steps,
            })
            .await?;
            tracing::info!(%rt, id, steps = n, "delete plan completed");
        }
        // A plan's step already forgot the resource as it succeeded; otherwise forget it now.
        if !plan_forgets || one_call {
            self.unmap(rt, id).await;
        }
        Ok(())
    }

    /// Phase: the `on_group_delete` plan over the group's members, the hook called once per
    /// page of at most [`GROUP_DELETE_PAGE`] members (`ctx.page`, `ctx.pages`), so a group of
    /// any size stays within the scripts' collection limits; the pages' plans run in order.
    fn group_delete_steps(
        &self,
        b: &Binding,
        id: &str,
        group: &Value,
        members: Vec<Value>,
    ) -> AppResult<Vec<Step>> {
        let user_delete = self.binding("User").ok().and_then(|u| u.delete.as_ref());
        let pages = members.len().div_ceil(GROUP_DELETE_PAGE).max(1);
        let mut steps = Vec::new();
        let mut chunks: Vec<Vec<Value>> = Vec::with_capacity(pages);
        let mut rest = members.into_iter().peekable();
        while rest.peek().is_some() || chunks.is_empty() {
            chunks.push(rest.by_ref().take(GROUP_DELETE_PAGE).collect());
        }
        for (page, chunk) in chunks.into_iter().enumerate() {
            let ids: Vec<String> = chunk.iter().filter_map(member_value).collect();
            let mut ctx = self.script_ctx(&b.resource_type, GROUP_DELETE_HOOK, Some(id));
            ctx["page"] = Value::from(page + 1);
            ctx["pages"] = Value::from(pages);
            let plan = self.scripts.call_plan(
                &b.script,
                GROUP_DELETE_HOOK,
                vec![group.clone(), Value::Array(chunk), ctx],
            )?;
            let mut page_steps: Vec<Step> = plan.into_iter().map(Step::from).collect();
            if let Some(ep) = user_delete {
                let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                mark_forgets(&mut page_steps, "User", &ids, ep);
            }
            steps.extend(page_steps);
        }
        Ok(steps)
    }

    // ---- id map -------------------------------------------------------------------------
    //
    // The legacy write has already succeeded when these run, so a store failure must not
    // turn it into an error: Entra would retry a create and make a duplicate. It must not be
    // lost silently either: each failure is logged at error level with every id (enough to
    // repair the map by hand) and counted in `id_map_failures` for metrics.

    /// Phase: records a created resource (`scim_id` == `legacy_id` for records the legacy
    /// app keeps; a managed group is its own legacy record).
    async fn map_created(
        &self,
        rt: &str,
        scim_id: &str,
        legacy_id: &str,
        external_id: Option<&str>,
    ) {
        let mapping = IdMapping {
            resource_type: canonical_rt(rt).to_string(),
            scim_id: ScimId::from(scim_id),
            legacy_id: LegacyId::from(legacy_id),
            external_id: external_id.map(ExternalId::from),
        };
        // Inside an audited write the mapping is committed with the request's audit entry
        // (one transaction, before the response leaves); elsewhere it is written now.
        let Err(mapping) = super::audit::defer_id_mapping(mapping) else {
            return;
        };
        if let Err(e) = self.store.put(&mapping).await {
            self.id_map_failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                resource_type = %mapping.resource_type, scim_id, legacy_id,
                external_id = external_id.unwrap_or_default(), error = %e,
                "id map: recording a created resource failed; the write itself succeeded"
            );
        }
    }

    /// Phase: after a replace or patch, records a changed externalId (nothing when it is
    /// unchanged).
    async fn map_external_id(&self, rt: &str, id: &str, before: Option<&str>, after: Option<&str>) {
        if before != after {
            self.map_created(rt, id, id, after).await;
        }
    }

    /// Phase: forgets a deleted resource.
    async fn unmap(&self, rt: &str, id: &str) {
        let rt = canonical_rt(rt);
        if let Err(e) = self.store.remove(rt, &ScimId::from(id)).await {
            self.id_map_failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                resource_type = rt, scim_id = id, error = %e,
                "id map: forgetting a deleted resource failed; the delete itself succeeded"
            );
        }
    }

    /// Phase: forgets resources a plan deleted, one statement per resource type.
    async fn unmap_all(&self, forgets: Vec<(String, String)>) {
        let mut by_type: HashMap<String, Vec<ScimId>> = HashMap::new();
        for (rt, id) in forgets {
            by_type.entry(rt).or_default().push(ScimId::from(id));
        }
        for (rt, ids) in by_type {
            if let Err(e) = self.store.remove_many(&rt, &ids).await {
                self.id_map_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    resource_type = %rt, count = ids.len(), error = %e,
                    "id map: forgetting deleted resources failed; the deletes themselves succeeded"
                );
            }
        }
    }

    /// Reads every record of a list endpoint (for lookups).
    pub async fn fetch_all(&self, ep: &ListEndpoint) -> AppResult<Vec<Value>> {
        Ok(self.backend.fetch_all(ep).await?)
    }

    /// The script set (for lookups refresh and reload).
    pub fn scripts(&self) -> &Arc<ScriptSet> {
        &self.scripts
    }
}

/// 412 unless `If-Match` admits the resource's current version.
fn check_version(current: &Value, header: Option<&str>) -> AppResult<()> {
    let Some(h) = header else {
        return Ok(());
    };
    // The same content hash a response for this resource carries as its ETag.
    let current = etag(current);
    if if_match(h, &current) {
        Ok(())
    } else {
        Err(ScimError::precondition_failed(format!(
            "If-Match {h} does not match the current version {current}"
        ))
        .into())
    }
}

fn normalize_options(b: &Binding) -> NormalizeOptions {
    NormalizeOptions {
        keep_unknown: b.keep_unknown,
    }
}

/// The resource type's own spelling (`User`, `Group`), as the id map and the status page's
/// counts key it; the router already resolved `rt` from the endpoint, this only fixes case.
fn canonical_rt(rt: &str) -> &str {
    if rt.eq_ignore_ascii_case("User") {
        "User"
    } else if rt.eq_ignore_ascii_case("Group") {
        "Group"
    } else {
        rt
    }
}

/// A resource's `externalId`, when it has a non-empty one.
fn external_id_of(v: &Value) -> Option<&str> {
    v.get("externalId")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn id_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Member ids are sent to the legacy app as numbers when they look like numbers, since
/// legacy APIs with integer keys reject strings.
fn member_id_value(id: &str) -> Value {
    id.parse::<u64>()
        .map(Value::from)
        .unwrap_or_else(|_| Value::String(id.to_string()))
}

fn take_members(resource: &mut Value) -> Vec<Value> {
    match resource.as_object_mut().and_then(|o| o.remove("members")) {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    }
}

fn set_members(resource: &mut Value, members: Vec<Value>) {
    if let Some(o) = resource.as_object_mut() {
        o.insert("members".into(), Value::Array(members));
    }
}

fn member_value(v: &Value) -> Option<String> {
    v.get("value").and_then(id_string)
}

fn member_of(v: &Value) -> Member {
    Member {
        value: member_value(v).unwrap_or_default(),
        display: v.get("display").and_then(Value::as_str).map(str::to_string),
        kind: v.get("type").and_then(Value::as_str).map(str::to_string),
    }
}

/// A 502 for a legacy answer the operation cannot use, naming the endpoint.
/// An endpoint's request for `vars` (and `body`).
fn render(ep: &Endpoint, vars: &[(&str, &str)], body: Option<Value>) -> AppResult<BackendRequest> {
    ep.request(vars, body)
        .map_err(|e| AppError::Internal(format!("endpoint template: {e}")))
}

/// A script's answer that is not a resource: the script's bug, a 500.
fn not_resource(b: &Binding, why: NotResource) -> AppError {
    AppError::Internal(match why {
        NotResource::NotObject => format!("{}.from_backend returned a non-object", b.script),
        NotResource::NoId => format!("{}.from_backend did not set a resource id", b.script),
    })
}

fn bad_answer(endpoint: &str, message: &str) -> AppError {
    AppError::Backend(crate::backend::BackendError::BadAnswer {
        endpoint: endpoint.to_string(),
        message: message.to_string(),
    })
}

/// The name a person reads for a resource: its userName, else its displayName.
fn label_of(v: &Value) -> Option<String> {
    ["userName", "displayName"]
        .iter()
        .find_map(|k| v.get(k).and_then(Value::as_str))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// The attribute a PATCH `path` addresses: `owners`, `owners[value eq "x"]`, `owners.value`
/// and `urn:…:Group:owners` all give `owners`.
fn path_attribute(path: &str) -> &str {
    let head = path.split('[').next().unwrap_or(path);
    let attr = head.rsplit(':').next().unwrap_or(head);
    attr.split('.').next().unwrap_or(attr).trim()
}

/// The refused name `attr` is, if any (ignoring case).
fn refused_name<'a>(refused: &'a [String], attr: &str) -> Option<&'a str> {
    refused
        .iter()
        .find(|r| r.eq_ignore_ascii_case(attr))
        .map(String::as_str)
}

/// The first refused attribute among an object's keys: plain, URN-qualified
/// (`urn:…:owners`, `urn:…:owners.value`) or inside an extension object (`"urn:…": {"owners": …}`).
fn refused_key<'a>(refused: &'a [String], v: &Value) -> Option<&'a str> {
    let obj = v.as_object()?;
    obj.iter().find_map(|(k, v)| {
        refused_name(refused, path_attribute(k)).or_else(|| {
            // An extension's attributes sit in an object under its schema URN.
            if k.contains(':') {
                refused_key(refused, v)
            } else {
                None
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_path_names_its_attribute() {
        for (path, want) in [
            ("owners", "owners"),
            ("owners.value", "owners"),
            ("owners[value eq \"a:b.c\"]", "owners"),
            ("owners[value eq \"x\"].display", "owners"),
            (
                "urn:ietf:params:scim:schemas:extension:x:2.0:Group:owners",
                "owners",
            ),
            (
                "urn:ietf:params:scim:schemas:extension:x:2.0:Group:owners.value",
                "owners",
            ),
            ("members[value eq \"urn:x:owners\"]", "members"),
            ("displayName", "displayName"),
        ] {
            assert_eq!(path_attribute(path), want, "{path}");
        }
    }

    #[test]
    fn refused_attributes_are_found_where_clients_put_them() {
        let refused = vec!["owners".to_string()];
        let found = |v: Value| refused_key(&refused, &v);
        assert_eq!(
            found(json!({"displayName": "g", "Owners": []})),
            Some("owners")
        );
        assert_eq!(
            found(json!({"urn:ietf:params:scim:schemas:extension:x:2.0:Group:owners": []})),
            Some("owners")
        );
        assert_eq!(
            found(json!({"http://schemas.example/Group": {"owners": [{"value": "1"}]}})),
            Some("owners")
        );
        assert_eq!(
            found(json!({"displayName": "owners", "members": [{"value": "owners"}]})),
            None
        );
        // A core attribute's sub-attributes are not searched: only extension objects.
        assert_eq!(found(json!({"name": {"owners": "x"}})), None);
    }
}
