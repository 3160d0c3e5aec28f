//! Gateway-managed groups (`groups = "managed"`): for legacy apps without groups of their
//! own, the Group resources and their memberships live in the gateway's store, and the legacy
//! app hears about memberships only through the User script's hook
//!
//! ```text
//! fn on_membership_change(user, groups, ctx)   // → a plan, e.g. set the user's role
//! ```
//!
//! `user` is the SCIM user (the legacy record through `from_backend`), `groups` every managed
//! group the user is in once the change is made (`[#{ id, displayName }]`, one indexed store
//! query), `ctx` is `#{ op: "membership", resource_type: "User", id, profile, joined, left }`
//! where `joined` and `left` list the groups (`#{ id, displayName }`) this request put the
//! user in and took the user out of: a removal or a group delete leaves the group, a rename
//! leaves the old name and joins the new one (see [`Moves`]). The hook runs
//! once per affected user: each user a request names as a member to add or remove (PUT and a
//! members replace name the whole new list), every member when the group is renamed or
//! deleted. Per user, in one gateway process, hooks run one at a time, so of two concurrent
//! changes the plan that runs last saw both.
//!
//! ```text
//! create:  displayName? ─▶ members are users? (User get, 400 if not) ─▶ store group (409 on
//!          a taken name) ─▶ memberships ─▶ hooks ─▶ id map ─▶ respond
//!          (a failure after the group is stored deletes it again)
//! get:     store group ─▶ members, paged from the store, unless excluded ─▶ respond
//! list:    id / displayName / externalId / members.value eq → indexed lookup, else every
//!          group (at most max_scan) ─▶ evaluate the filter ─▶ sort ─▶ page ─▶ respond
//! patch:   parse ─▶ split member ops (never reading the member list) ─▶ If-Match? ─▶ members
//!          to add are users? ─▶ displayName/externalId ─▶ memberships ─▶ hooks ─▶ 204
//! replace: as patch, the member diff computed from the whole list (O(group size))
//! delete:  hooks for every member (groups without this one) ─▶ delete ─▶ id map
//! ```
//!
//! When a hook or its plan fails, the request fails with that error and:
//! - memberships already written stay: the store holds what the identity provider asked for,
//!   and since the hook runs for every user a request names (changed or not), the identity
//!   provider's retry of the request runs the hooks again and the legacy app catches up;
//! - a rename is written back, because a retry that no longer changes the name would not
//!   re-run the members' hooks;
//! - a delete has not happened yet (the hooks run first), so its retry re-runs them too.

use super::plans::{PlanSpec, Step};
use super::{
    AppError, AppResult, Gateway, Member, Output, check_version, member_of, set_members,
    take_members,
};
use crate::scim::filter::{Filter, evaluate};
use crate::scim::list::{ListBody, ListParams, page, sort_resources};
use crate::scim::patch::{apply_patch, parse_patch, retain_supported, split_members};
use crate::scim::resource::{NormalizeOptions, normalize_resource};
use crate::scim::schema::GROUP_SCHEMA;
use crate::scim::{AttrPath, ScimError, ScimType};
use crate::store::{ExternalId, Group, GroupStore, ScimId};
use chrono::SecondsFormat;
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

/// The User script's hook for membership changes, `on_membership_change(user, groups, ctx)`;
/// called only when defined with those three parameters.
pub const MEMBERSHIP_HOOK: &str = "on_membership_change";

/// Member ids read per store query when a whole member list is needed.
const MEMBER_PAGE: u64 = 1000;

const GROUP: &str = "Group";

/// What one request does to one group's membership, so each hook is told which groups its
/// user joined (`ctx.joined`) and left (`ctx.left`) — by intent: everyone the request names
/// as added or removed counts, also when the store already had it that way, so that a
/// retried request gives the hooks what the first attempt did.
struct Moves<'a> {
    /// The group before the request (its old name on a rename); `None` for a create.
    before: Option<&'a Group>,
    /// The group after the request; `None` while it is being deleted (the hooks run first,
    /// and are told the user's groups without it).
    after: Option<&'a Group>,
    /// Users the request adds (or lists anew, for a create or a member list replacement).
    added: HashSet<String>,
    /// Users the request removes.
    removed: HashSet<String>,
}

impl Moves<'_> {
    fn renamed(&self) -> bool {
        matches!((self.before, self.after), (Some(b), Some(a)) if b.display_name != a.display_name)
    }

    /// The group the hook's `groups` must leave out: the one being deleted.
    fn deleting(&self) -> Option<&ScimId> {
        match (self.before, self.after) {
            (Some(b), None) => Some(&b.id),
            _ => None,
        }
    }

    /// `ctx.joined` of `user`: this group, as it is now, if the user was added to it or it
    /// was renamed (a member of a renamed group joins the new name).
    fn joined(&self, user: &str) -> Vec<Value> {
        match self.after {
            Some(g)
                if self.added.contains(user)
                    || (self.renamed() && !self.removed.contains(user)) =>
            {
                vec![group_ref(g)]
            }
            _ => Vec::new(),
        }
    }

    /// `ctx.left` of `user`: this group, as it was, if the user was removed, the group is
    /// being deleted, or it was renamed (a member leaves the old name).
    fn left(&self, user: &str) -> Vec<Value> {
        match self.before {
            Some(g)
                if self.removed.contains(user)
                    || self.after.is_none()
                    || (self.renamed() && !self.added.contains(user)) =>
            {
                vec![group_ref(g)]
            }
            _ => Vec::new(),
        }
    }
}

/// A group as hooks see it: `#{ id, displayName }`.
fn group_ref(g: &Group) -> Value {
    json!({"id": g.id.as_str(), "displayName": g.display_name})
}

/// What a PUT or PATCH does to a managed group.
struct GroupChange {
    /// The new displayName and externalId, when the request touches them.
    attrs: Option<(String, Option<String>)>,
    /// Members to add (each verified to be a user of the application first).
    add: Vec<Member>,
    /// Member ids to remove.
    remove: Vec<String>,
    /// Users whose hook runs (besides every member, on a rename): everyone the request
    /// names, whether or not their membership changes, so a retry re-runs failed hooks.
    named: Vec<String>,
}

impl Gateway {
    // ---- operations ---------------------------------------------------------------------

    /// `GET /Groups/{id}` of a managed group.
    pub(super) async fn managed_get(&self, id: &str, params: &ListParams) -> AppResult<Output> {
        let g = self.managed_group(id).await?;
        crate::backend::note_label(Some(g.display_name.clone()));
        let mut resource = self.group_json(&g);
        if Self::wants_members(params) {
            set_members(&mut resource, self.all_members(&g.id).await?);
        }
        self.respond(GROUP, resource, params)
    }

    /// `GET /Groups` and `POST /Groups/.search` over managed groups.
    pub(super) async fn managed_list(&self, params: &ListParams) -> AppResult<Vec<u8>> {
        let ctx = self.ctx(GROUP)?;
        let count = params.page_size(self.max_results());
        // (resource, whether its members are already set)
        let (items, total): (Vec<(Value, bool)>, usize) =
            if params.filter.is_none() && params.sort_by.is_none() {
                // Fast path: the store pages for us.
                let total = self.store.count_groups().await?;
                let offset = params.start_index.saturating_sub(1) as u64;
                let groups = self.store.list_groups(offset, count as u64).await?;
                let items = groups.iter().map(|g| (self.group_json(g), false)).collect();
                (items, usize::try_from(total).unwrap_or(usize::MAX))
            } else {
                let conjuncts = params
                    .filter
                    .as_ref()
                    .map(Filter::conjuncts)
                    .unwrap_or_default();
                let (candidates, proven) = match self.indexed_candidates(&conjuncts).await? {
                    Some(found) => found,
                    None => (self.every_group().await?, None),
                };
                // A clause the lookup proves for every candidate (membership) is not evaluated
                // again, so finding a user's groups never reads those groups' members.
                let residual: Vec<&Filter> = conjuncts
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| Some(*i) != proven)
                    .map(|(_, c)| *c)
                    .collect();
                let needs_members = residual.iter().any(|c| mentions_members(c))
                    || params.sort_by.as_ref().is_some_and(is_members);
                let mut budget = self.max_scan;
                let mut matched = Vec::new();
                for g in &candidates {
                    let mut r = self.group_json(g);
                    if needs_members {
                        set_members(&mut r, self.members_within(&g.id, &mut budget).await?);
                    }
                    if residual.iter().all(|c| evaluate(c, &r, &ctx)) {
                        matched.push(r);
                    }
                }
                if let Some(by) = &params.sort_by {
                    sort_resources(&mut matched, &ctx, by, params.sort_order);
                }
                let total = matched.len();
                let items = page(matched, params.start_index, count)
                    .into_iter()
                    .map(|r| (r, needs_members))
                    .collect();
                (items, total)
            };
        let wants = Self::wants_members(params);
        let mut body = ListBody::default();
        for (mut r, has_members) in items {
            if wants && !has_members {
                let id = ScimId::from(r.get("id").and_then(Value::as_str).unwrap_or_default());
                set_members(&mut r, self.all_members(&id).await?);
            }
            self.respond_into(body.item(), GROUP, r, params)?;
        }
        Ok(body.finish(total, params.start_index))
    }

    /// `POST /Groups`: a managed group, with the members the body names.
    pub(super) async fn managed_create(
        &self,
        body: Value,
        params: &ListParams,
    ) -> AppResult<Output> {
        let ctx = self.ctx(GROUP)?;
        let mut resource = normalize_resource(body, &ctx, NormalizeOptions::default())?;
        let members = distinct_members(take_members(&mut resource).iter().map(member_of));
        let members = self.direct_members(None, members).await?;
        let (name, external) = group_attrs(&resource)?;
        crate::backend::note_label(Some(name.clone()));
        let users = self.verify_members(&members).await?;
        let external = external.map(ExternalId::from);
        let g = self.store.create_group(&name, external.as_ref()).await?;
        let written: AppResult<()> = async {
            if !members.is_empty() {
                let ids: Vec<ScimId> = members
                    .iter()
                    .map(|m| ScimId::from(m.value.as_str()))
                    .collect();
                self.store.add_members(&g.id, &ids).await?;
                let named: Vec<String> = members.iter().map(|m| m.value.clone()).collect();
                let moves = Moves {
                    before: None,
                    after: Some(&g),
                    added: named.iter().cloned().collect(),
                    removed: HashSet::new(),
                };
                self.membership_hooks(&named, &users, &moves).await?;
            }
            Ok(())
        }
        .await;
        if let Err(e) = written {
            // As for a legacy create: the error must mean "nothing was created", so that the
            // retry does not collide with a half-made group of the same name.
            match self.store.delete_group(&g.id).await {
                Ok(_) => {
                    tracing::warn!(group = %g.id, "group create failed after the group was stored; deleted again")
                }
                Err(d) => {
                    tracing::error!(group = %g.id, error = %d, "group create failed after the group was stored; deleting it failed too")
                }
            }
            return Err(e);
        }
        self.map_created(
            GROUP,
            g.id.as_str(),
            g.id.as_str(),
            external.as_ref().map(ExternalId::as_str),
        )
        .await;
        let g = self.refreshed(g).await?;
        let mut out = self.group_json(&g);
        set_members(
            &mut out,
            members
                .iter()
                .map(|m| self.member_json(&m.value, None))
                .collect(),
        );
        self.respond(GROUP, out, params)
    }

    /// `PUT /Groups/{id}` of a managed group: displayName, externalId and the whole member
    /// list (diffed against the stored one, O(group size)).
    pub(super) async fn managed_replace(
        &self,
        id: &str,
        body: Value,
        if_match_header: Option<&str>,
        params: &ListParams,
    ) -> AppResult<Output> {
        let ctx = self.ctx(GROUP)?;
        let mut resource = normalize_resource(body, &ctx, NormalizeOptions::default())?;
        let g = self.managed_group(id).await?;
        crate::backend::note_label(Some(g.display_name.clone()));
        let old = self.all_member_ids(&g.id).await?;
        if if_match_header.is_some() {
            let mut full = self.group_json(&g);
            set_members(
                &mut full,
                old.iter()
                    .map(|m| self.member_json(m.as_str(), None))
                    .collect(),
            );
            check_version(&full, if_match_header)?;
        }
        let new = distinct_members(take_members(&mut resource).iter().map(member_of));
        let new = self.direct_members(Some(id), new).await?;
        let attrs = group_attrs(&resource)?;
        let (add, remove, named) = diff_members(&old, new.clone());
        let g = self
            .write_group_change(
                &g,
                GroupChange {
                    attrs: Some(attrs),
                    add,
                    remove,
                    named,
                },
            )
            .await?;
        let g = self.refreshed(g).await?;
        let mut out = self.group_json(&g);
        set_members(
            &mut out,
            new.iter()
                .map(|m| self.member_json(&m.value, None))
                .collect(),
        );
        self.respond(GROUP, out, params)
    }

    /// `PATCH /Groups/{id}` of a managed group. Member operations become a delta that costs
    /// O(members named), whatever the group's size (a replacement of the whole member list
    /// excepted). Answers 204 unless `attributes`/`excludedAttributes` ask for the group.
    pub(super) async fn managed_patch(
        &self,
        id: &str,
        body: Value,
        if_match_header: Option<&str>,
        params: &ListParams,
    ) -> AppResult<Option<Output>> {
        let ctx = self.ctx(GROUP)?;
        let req = retain_supported(parse_patch(&body, &ctx)?, &ctx);
        let (req, mut delta) = split_members(req, &ctx)?;
        delta.add = self.direct_members(Some(id), delta.add).await?;
        if let Some(list) = delta.reset.take() {
            delta.reset = Some(self.direct_members(Some(id), list).await?);
        }
        let g = self.managed_group(id).await?;
        crate::backend::note_label(Some(g.display_name.clone()));
        let current = self.group_json(&g);
        if if_match_header.is_some() {
            let mut full = current.clone();
            set_members(&mut full, self.all_members(&g.id).await?);
            check_version(&full, if_match_header)?;
        }
        let mut attrs = None;
        if !req.ops.is_empty() {
            let mut patched = current.clone();
            apply_patch(&mut patched, &req, &ctx)?;
            if patched != current {
                attrs = Some(group_attrs(&patched)?);
            }
        }
        let change = match delta.reset {
            Some(list) => {
                let old = self.all_member_ids(&g.id).await?;
                let (add, remove, named) = diff_members(&old, distinct_members(list));
                GroupChange {
                    attrs,
                    add,
                    remove,
                    named,
                }
            }
            None => {
                let add = distinct_members(delta.add);
                let named = add
                    .iter()
                    .map(|m| m.value.clone())
                    .chain(delta.remove.iter().cloned())
                    .collect();
                GroupChange {
                    attrs,
                    add,
                    remove: delta.remove,
                    named,
                }
            }
        };
        let g = self.write_group_change(&g, change).await?;
        if params.attributes.is_empty() && params.excluded_attributes.is_empty() {
            return Ok(None);
        }
        let g = self.refreshed(g).await?;
        let mut out = self.group_json(&g);
        if Self::wants_members(params) {
            set_members(&mut out, self.all_members(&g.id).await?);
        }
        Ok(Some(self.respond(GROUP, out, params)?))
    }

    /// `DELETE /Groups/{id}` of a managed group: every member's hook first (told its groups
    /// without this one), then the group and its memberships go.
    pub(super) async fn managed_delete(
        &self,
        id: &str,
        if_match_header: Option<&str>,
    ) -> AppResult<()> {
        let g = self.managed_group(id).await?;
        crate::backend::note_label(Some(g.display_name.clone()));
        if if_match_header.is_some() {
            let mut full = self.group_json(&g);
            set_members(&mut full, self.all_members(&g.id).await?);
            check_version(&full, if_match_header)?;
        }
        if self.has_membership_hook() {
            let members: Vec<String> = self
                .all_member_ids(&g.id)
                .await?
                .into_iter()
                .map(|m| m.0)
                .collect();
            let moves = Moves {
                before: Some(&g),
                after: None,
                added: HashSet::new(),
                removed: members.iter().cloned().collect(),
            };
            self.membership_hooks(&members, &HashMap::new(), &moves)
                .await?;
        }
        self.store.delete_group(&g.id).await?;
        self.unmap(GROUP, id).await;
        Ok(())
    }

    // ---- phases -------------------------------------------------------------------------

    /// Phase: writes a PUT's or PATCH's change (see the module documentation for what a
    /// failure leaves behind) and returns the group as stored.
    async fn write_group_change(&self, g: &Group, ch: GroupChange) -> AppResult<Group> {
        // Nothing is written before every member to add is known to be a user.
        let users = self.verify_members(&ch.add).await?;
        let mut now = g.clone();
        let mut attrs_written = false;
        if let Some((name, external)) = &ch.attrs
            && (*name != g.display_name
                || external.as_deref() != g.external_id.as_ref().map(ExternalId::as_str))
        {
            let external = external.as_deref().map(ExternalId::from);
            now = self
                .store
                .update_group(&g.id, name, external.as_ref())
                .await?;
            attrs_written = true;
        }
        let renamed = now.display_name != g.display_name;
        let moves = Moves {
            before: Some(g),
            after: Some(&now),
            added: ch.add.iter().map(|m| m.value.clone()).collect(),
            removed: ch.remove.iter().cloned().collect(),
        };
        let rest: AppResult<()> = async {
            if !ch.add.is_empty() {
                let ids: Vec<ScimId> = ch
                    .add
                    .iter()
                    .map(|m| ScimId::from(m.value.as_str()))
                    .collect();
                self.store.add_members(&g.id, &ids).await?;
            }
            if !ch.remove.is_empty() {
                let ids: Vec<ScimId> = ch.remove.iter().map(|m| ScimId::from(m.as_str())).collect();
                self.store.remove_members(&g.id, &ids).await?;
            }
            if self.has_membership_hook() {
                let mut seen = HashSet::new();
                let mut affected: Vec<String> = ch
                    .named
                    .into_iter()
                    .filter(|u| seen.insert(u.clone()))
                    .collect();
                if renamed {
                    for m in self.all_member_ids(&g.id).await? {
                        if seen.insert(m.0.clone()) {
                            affected.push(m.0);
                        }
                    }
                }
                self.membership_hooks(&affected, &users, &moves).await?;
            }
            Ok(())
        }
        .await;
        if let Err(e) = rest {
            if renamed {
                match self
                    .store
                    .update_group(&g.id, &g.display_name, g.external_id.as_ref())
                    .await
                {
                    Ok(_) => {
                        tracing::warn!(group = %g.id, "rename failed in a membership hook; previous name written back")
                    }
                    Err(r) => {
                        tracing::error!(group = %g.id, error = %r, "rename failed in a membership hook; writing the previous name back failed too")
                    }
                }
            }
            return Err(e);
        }
        if attrs_written {
            self.map_external_id(
                GROUP,
                g.id.as_str(),
                g.external_id.as_ref().map(ExternalId::as_str),
                now.external_id.as_ref().map(ExternalId::as_str),
            )
            .await;
        }
        Ok(now)
    }

    /// Phase: checks that every member to add is a user of the legacy app (one User `get`
    /// each, O(members named)) before anything is written; returns them as SCIM users for
    /// the hooks. A member the app does not know → 400 invalidValue naming it.
    async fn verify_members(&self, add: &[Member]) -> AppResult<HashMap<String, Value>> {
        let mut users = HashMap::new();
        if add.is_empty() {
            return Ok(users);
        }
        let b = self.binding("User")?;
        for m in add {
            if m.value.is_empty() {
                return Err(ScimError::invalid_value("a member has no value (user id)").into());
            }
            if let Some(kind) = &m.kind
                && !kind.eq_ignore_ascii_case("User")
            {
                return Err(ScimError::invalid_value(format!(
                    "member '{}' is of type {kind}: gateway-managed groups hold users only",
                    m.value
                ))
                .into());
            }
            if users.contains_key(&m.value) {
                continue;
            }
            match self.load(b, &m.value).await {
                Ok(u) => {
                    users.insert(m.value.clone(), u);
                }
                Err(AppError::Backend(e)) if e.is_not_found() => {
                    return Err(ScimError::invalid_value(format!(
                        "member '{}' is not a user of the application",
                        m.value
                    ))
                    .into());
                }
                Err(e) => return Err(e),
            }
        }
        Ok(users)
    }

    /// Whether the User script has `on_membership_change(user, groups, ctx)`.
    fn has_membership_hook(&self) -> bool {
        self.bindings
            .get("user")
            .is_some_and(|b| self.scripts.has_fn(&b.script, MEMBERSHIP_HOOK, 3))
    }

    /// Phase: the membership hook of each user in turn; the first failure fails the request.
    async fn membership_hooks(
        &self,
        users: &[String],
        known: &HashMap<String, Value>,
        moves: &Moves<'_>,
    ) -> AppResult<()> {
        if !self.has_membership_hook() {
            return Ok(());
        }
        for id in users {
            self.membership_hook(id, known.get(id), moves).await?;
        }
        Ok(())
    }

    /// Phase: one user's hook: the user as SCIM (`known`, or read now), their groups (one
    /// indexed query), the script's plan, run step by step.
    async fn membership_hook(
        &self,
        user_id: &str,
        known: Option<&Value>,
        moves: &Moves<'_>,
    ) -> AppResult<()> {
        let b = self.binding("User")?;
        let user = match known {
            Some(u) => u.clone(),
            None => match self.load(b, user_id).await {
                Ok(u) => u,
                Err(AppError::Backend(e)) if e.is_not_found() => {
                    // Deleted in the application behind the gateway's back: nothing to tell it.
                    tracing::info!(
                        user = user_id,
                        "membership changed for a user the application no longer has; hook skipped"
                    );
                    return Ok(());
                }
                Err(e) => return Err(e),
            },
        };
        let _turn = self.user_lock(user_id).lock().await;
        let groups: Vec<Value> = self
            .store
            .groups_of(&ScimId::from(user_id))
            .await?
            .into_iter()
            .filter(|g| moves.deleting() != Some(&g.id))
            .map(|g| group_ref(&g))
            .collect();
        let mut ctx = self.script_ctx("User", "membership", Some(user_id));
        ctx["joined"] = Value::Array(moves.joined(user_id));
        ctx["left"] = Value::Array(moves.left(user_id));
        let label = super::label_of(&user);
        let plan = self.scripts.call_plan(
            &b.script,
            MEMBERSHIP_HOOK,
            vec![user, Value::Array(groups), ctx],
        )?;
        let steps = plan.len();
        let spec = PlanSpec {
            resource_type: "User".to_string(),
            resource_id: user_id.to_string(),
            slot: "membership",
            kind: MEMBERSHIP_HOOK.to_string(),
            label,
            steps: plan.into_iter().map(Step::from).collect(),
        };
        if let Err(e) = self.execute_plan(spec).await {
            tracing::warn!(user = user_id, error = ?e, "membership plan failed");
            return Err(e);
        }
        tracing::debug!(user = user_id, steps, "membership hook ran");
        Ok(())
    }

    /// The lock stripe of `user_id`.
    fn user_lock(&self, user_id: &str) -> &tokio::sync::Mutex<()> {
        let mut h = std::hash::DefaultHasher::new();
        user_id.hash(&mut h);
        let i = usize::try_from(h.finish() % self.user_locks.len() as u64).unwrap_or(0);
        &self.user_locks[i]
    }

    /// Phase: the group, or a SCIM 404.
    async fn managed_group(&self, id: &str) -> AppResult<Group> {
        self.store
            .get_group(&ScimId::from(id))
            .await?
            .ok_or_else(|| ScimError::not_found(format!("group {id} not found")).into())
    }

    /// The group read again after its memberships changed (for `meta.lastModified`); the
    /// given one if it was deleted meanwhile.
    async fn refreshed(&self, g: Group) -> AppResult<Group> {
        Ok(self.store.get_group(&g.id).await?.unwrap_or(g))
    }

    /// Phase: every member id of a group, a page at a time (O(group size): GET with members,
    /// PUT, members replace, delete with a hook).
    async fn all_member_ids(&self, id: &ScimId) -> AppResult<Vec<ScimId>> {
        let mut out = Vec::new();
        loop {
            let page = self
                .store
                .members(id, out.len() as u64, MEMBER_PAGE)
                .await?;
            let last = (page.len() as u64) < MEMBER_PAGE;
            out.extend(page);
            if last {
                return Ok(out);
            }
        }
    }

    /// Every member of a group as SCIM member values.
    async fn all_members(&self, id: &ScimId) -> AppResult<Vec<Value>> {
        Ok(self
            .all_member_ids(id)
            .await?
            .iter()
            .map(|m| self.member_json(m.as_str(), None))
            .collect())
    }

    /// Members for a filter evaluated in the gateway, charged to `budget` (what is left of
    /// max_scan); 400 tooMany rather than an unbounded read.
    async fn members_within(&self, id: &ScimId, budget: &mut usize) -> AppResult<Vec<Value>> {
        let mut out = Vec::new();
        loop {
            let want = MEMBER_PAGE.min(*budget as u64 + 1);
            let page = self.store.members(id, out.len() as u64, want).await?;
            let got = page.len();
            if got > *budget {
                return Err(too_many(format!(
                    "the filter would read more than {} group memberships; filter on \
                     displayName, externalId, id or members.value eq",
                    self.max_scan
                )));
            }
            *budget -= got;
            out.extend(page.iter().map(|m| self.member_json(m.as_str(), None)));
            if (got as u64) < want {
                return Ok(out);
            }
        }
    }

    /// The groups an indexed lookup answers for the first of the filter's top-level `and`
    /// clauses that has one (`id`, `displayName`, `externalId`, `members.value` eq), with the
    /// index of that clause when the lookup proves it for every group it returns (a
    /// membership); `None` when no clause has a lookup. The other clauses (and the name and
    /// id ones, cheap to re-check) are still evaluated on the groups.
    async fn indexed_candidates(
        &self,
        conjuncts: &[&Filter],
    ) -> AppResult<Option<(Vec<Group>, Option<usize>)>> {
        for (i, c) in conjuncts.iter().enumerate() {
            if let Some((path, value)) = c.simple_eq() {
                let top = |name: &str| path.sub.is_none() && path.same_attr(&AttrPath::new(name));
                if top("id") {
                    let g = self.store.get_group(&ScimId::from(value)).await?;
                    return Ok(Some((g.into_iter().collect(), None)));
                }
                if top("displayName") {
                    let g = self.store.group_by_display_name(value).await?;
                    return Ok(Some((g.into_iter().collect(), None)));
                }
                if top("externalId") {
                    let ext = ExternalId::from(value);
                    return Ok(Some((self.store.groups_by_external_id(&ext).await?, None)));
                }
                if is_members(path)
                    && path
                        .sub
                        .as_deref()
                        .is_some_and(|s| s.eq_ignore_ascii_case("value"))
                {
                    let groups = self.store.groups_of(&ScimId::from(value)).await?;
                    return Ok(Some((groups, Some(i))));
                }
            }
            if let Filter::ValuePath { attr, filter } = c
                && is_members(attr)
                && let Some((p, value)) = filter.simple_eq()
                && p.name.eq_ignore_ascii_case("value")
                && p.sub.is_none()
            {
                let groups = self.store.groups_of(&ScimId::from(value)).await?;
                return Ok(Some((groups, Some(i))));
            }
        }
        Ok(None)
    }

    /// Every group, for a filter or sort no index serves; 400 tooMany beyond max_scan.
    async fn every_group(&self) -> AppResult<Vec<Group>> {
        let total = self.store.count_groups().await?;
        if total > self.max_scan as u64 {
            return Err(too_many(format!(
                "the request would scan {total} groups (limit {}); filter on displayName, \
                 externalId, id or members.value eq",
                self.max_scan
            )));
        }
        Ok(self.store.list_groups(0, self.max_scan as u64).await?)
    }

    /// A managed group as SCIM, without members.
    fn group_json(&self, g: &Group) -> Value {
        let stamp =
            |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
        let mut o = Map::new();
        o.insert("schemas".into(), json!([GROUP_SCHEMA]));
        o.insert("id".into(), Value::String(g.id.0.clone()));
        o.insert("displayName".into(), Value::String(g.display_name.clone()));
        if let Some(e) = &g.external_id {
            o.insert("externalId".into(), Value::String(e.0.clone()));
        }
        // respond() turns these into meta.created / meta.lastModified.
        o.insert(
            "meta".into(),
            json!({"created": stamp(g.created), "lastModified": stamp(g.modified)}),
        );
        Value::Object(o)
    }
}

/// displayName (required, not blank) and externalId of a group resource.
fn group_attrs(resource: &Value) -> AppResult<(String, Option<String>)> {
    let name = resource
        .get("displayName")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| ScimError::invalid_value("displayName is required"))?;
    let external = resource
        .get("externalId")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    Ok((name.to_string(), external))
}

/// Members in request order, each id once.
fn distinct_members(members: impl IntoIterator<Item = Member>) -> Vec<Member> {
    let mut seen = HashSet::new();
    members
        .into_iter()
        .filter(|m| seen.insert(m.value.clone()))
        .collect()
}

/// A whole new member list against the stored one: (to add, to remove, to tell). Everyone
/// in the new list is told (see [`GroupChange::named`]), plus those removed.
fn diff_members(old: &[ScimId], new: Vec<Member>) -> (Vec<Member>, Vec<String>, Vec<String>) {
    let old_set: HashSet<&str> = old.iter().map(ScimId::as_str).collect();
    let new_set: HashSet<&str> = new.iter().map(|m| m.value.as_str()).collect();
    let remove: Vec<String> = old
        .iter()
        .filter(|m| !new_set.contains(m.as_str()))
        .map(|m| m.0.clone())
        .collect();
    let named = new
        .iter()
        .map(|m| m.value.clone())
        .chain(remove.iter().cloned())
        .collect();
    let add = new
        .into_iter()
        .filter(|m| !old_set.contains(m.value.as_str()))
        .collect();
    (add, remove, named)
}

fn is_members(path: &AttrPath) -> bool {
    path.same_attr(&AttrPath::new("members"))
}

/// Whether evaluating `f` needs the group's members.
fn mentions_members(f: &Filter) -> bool {
    match f {
        Filter::Compare { path, .. } | Filter::Present(path) => is_members(path),
        Filter::And(a, b) | Filter::Or(a, b) => mentions_members(a) || mentions_members(b),
        Filter::Not(x) => mentions_members(x),
        Filter::ValuePath { attr, .. } => is_members(attr),
    }
}

fn too_many(detail: String) -> AppError {
    ScimError::new(400, Some(ScimType::TooMany), detail).into()
}
