//! The demo app's in-memory data and the rules a legacy app would enforce on it.
//!
//! Everything lives in one [`Db`] behind one lock so cross-record rules (deleting a user drops
//! its memberships and clears its reports' `manager_id`) stay atomic. Indexes keep the hot
//! paths sublinear: email → user, team → members, user → teams, manager → reports.

use super::error::{DemoError, DemoResult};
use super::model::{
    Folder, FolderInput, Member, Office, OfficeInput, Team, TeamInput, TeamView, User, UserInput,
    UserStatus, is_plausible_email, now_rfc3339,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Offices every fresh demo app starts with, ids 1..=4 in this order.
pub const SEED_OFFICES: &[&str] = &["Sydney", "Melbourne", "London", "New York"];

/// Folders every fresh demo app starts with: (name, external_id), ids 1 and 2.
pub const SEED_FOLDERS: &[(&str, &str)] = &[("Client Files", "client-files"), ("HR", "hr")];

/// Default and largest page sizes of every list endpoint.
pub const DEFAULT_PER_PAGE: usize = 50;
/// Page sizes above this are clamped to it.
pub const MAX_PER_PAGE: usize = 200;

/// A validated 1-based page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// 1-based page number.
    pub page: usize,
    /// Items per page, 1..=[`MAX_PER_PAGE`].
    pub per_page: usize,
}

impl Page {
    /// How many items precede this page.
    fn skip(self) -> usize {
        (self.page - 1).saturating_mul(self.per_page)
    }
}

/// Filters of `GET /api/v1/users`; `None` means "any".
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    /// Matches the user name ignoring case.
    pub username: Option<String>,
    /// Matches the email ignoring case.
    pub email: Option<String>,
    /// Matches `external_id` exactly.
    pub external_id: Option<String>,
    /// Matches the status.
    pub status: Option<UserStatus>,
}

/// Filters of `GET /api/v1/teams`.
#[derive(Debug, Clone, Default)]
pub struct TeamFilter {
    /// Matches the name ignoring case.
    pub name: Option<String>,
    /// Matches `external_id` exactly.
    pub external_id: Option<String>,
}

/// Outcome of adding members to a team.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct MembersAdded {
    /// The team.
    pub team_id: u64,
    /// Users that were not members before this call.
    pub added: usize,
    /// Members after the call.
    pub member_count: usize,
}

/// All demo data plus its indexes.
#[derive(Debug)]
pub struct Db {
    users: BTreeMap<u64, User>,
    /// Lower-cased email → user id; emails are unique ignoring case.
    email_index: HashMap<String, u64>,
    /// Lower-cased user name → user id; user names are unique ignoring case.
    username_index: HashMap<String, u64>,
    /// Manager id → ids of users whose `manager_id` points at it.
    reports: HashMap<u64, BTreeSet<u64>>,
    teams: BTreeMap<u64, Team>,
    members: HashMap<u64, BTreeSet<u64>>,
    /// User id → teams it belongs to; lets a user delete skip teams it is not in.
    user_teams: HashMap<u64, BTreeSet<u64>>,
    offices: BTreeMap<u64, Office>,
    folders: BTreeMap<u64, Folder>,
    /// Users and teams draw their ids from one sequence, so an id names one record of
    /// either kind (as in apps with global ids): a SCIM client's group member value that is
    /// a team's id can never also be a user's.
    next_id: u64,
    next_office: u64,
    next_folder: u64,
}

fn page_of<T: Clone>(items: impl Iterator<Item = T>, page: Page) -> Vec<T> {
    items.skip(page.skip()).take(page.per_page).collect()
}

fn required(value: Option<String>, field: &str) -> DemoResult<String> {
    match value {
        Some(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(DemoError::validation(format!("`{field}` is required"))),
    }
}

impl Db {
    /// A database holding only the seed offices and folders.
    pub fn seeded() -> Self {
        let mut db = Db {
            users: BTreeMap::new(),
            email_index: HashMap::new(),
            username_index: HashMap::new(),
            reports: HashMap::new(),
            teams: BTreeMap::new(),
            members: HashMap::new(),
            user_teams: HashMap::new(),
            offices: BTreeMap::new(),
            folders: BTreeMap::new(),
            next_id: 1,
            next_office: 1,
            next_folder: 1,
        };
        for name in SEED_OFFICES {
            let id = db.next_office;
            db.next_office += 1;
            db.offices.insert(
                id,
                Office {
                    id,
                    name: (*name).to_string(),
                },
            );
        }
        for (name, external_id) in SEED_FOLDERS {
            let id = db.next_folder;
            db.next_folder += 1;
            db.folders.insert(
                id,
                Folder {
                    id,
                    guid: uuid::Uuid::new_v4().to_string(),
                    name: (*name).to_string(),
                    external_id: Some((*external_id).to_string()),
                },
            );
        }
        db
    }

    /// Number of users.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Number of teams.
    pub fn team_count(&self) -> usize {
        self.teams.len()
    }

    // ---- users ----

    /// The user with `id`, or 404.
    pub fn user(&self, id: u64) -> DemoResult<&User> {
        self.users
            .get(&id)
            .ok_or_else(|| DemoError::not_found(format!("user {id} not found")))
    }

    fn user_mut(&mut self, id: u64) -> DemoResult<&mut User> {
        self.users
            .get_mut(&id)
            .ok_or_else(|| DemoError::not_found(format!("user {id} not found")))
    }

    /// One page of users matching `filter`, in id order, and how many match in total.
    pub fn list_users(&self, filter: &UserFilter, page: Page) -> (Vec<User>, usize) {
        let matches = |u: &&User| {
            filter
                .external_id
                .as_ref()
                .is_none_or(|x| u.external_id.as_ref() == Some(x))
                && filter.status.is_none_or(|s| u.status == s)
                && filter.email.as_ref().is_none_or(|e| {
                    u.email
                        .as_deref()
                        .is_some_and(|x| x.eq_ignore_ascii_case(e))
                })
        };
        // User names and emails are indexed: such a lookup touches at most one user, no scan.
        let indexed = [
            (&filter.username, &self.username_index),
            (&filter.email, &self.email_index),
        ];
        if let Some((key, index)) = indexed
            .into_iter()
            .find_map(|(k, i)| Some((k.as_ref()?, i)))
        {
            let hit: Vec<User> = index
                .get(&key.to_lowercase())
                .and_then(|id| self.users.get(id))
                .filter(matches)
                .cloned()
                .into_iter()
                .collect();
            let total = hit.len();
            return (page_of(hit.into_iter(), page), total);
        }
        let total = self.users.values().filter(matches).count();
        let items = page_of(self.users.values().filter(matches).cloned(), page);
        (items, total)
    }

    /// Checks the references and formats of a user body; `self_id` is the user being updated.
    fn validate_user(
        &self,
        input: &UserInput,
        self_id: Option<u64>,
    ) -> DemoResult<(String, Option<String>)> {
        let email = input.email.clone().filter(|e| !e.trim().is_empty());
        if let Some(email) = email.as_deref().filter(|e| !is_plausible_email(e)) {
            return Err(DemoError::validation(format!(
                "`email` is not a valid email address: {email}"
            )));
        }
        if let Some(se) = &input.service_email
            && !se.is_empty()
            && !is_plausible_email(se)
        {
            return Err(DemoError::validation(format!(
                "`service_email` is not a valid email address: {se}"
            )));
        }
        if let Some(office) = input.office_id
            && !self.offices.contains_key(&office)
        {
            return Err(DemoError::validation(format!(
                "`office_id` {office} does not reference an existing office"
            )));
        }
        if let Some(manager) = input.manager_id {
            if Some(manager) == self_id {
                return Err(DemoError::validation("a user cannot be their own manager"));
            }
            if !self.users.contains_key(&manager) {
                return Err(DemoError::validation(format!(
                    "`manager_id` {manager} does not reference an existing user"
                )));
            }
        }
        for folder in input.folders.iter().flatten() {
            if !self.folder_exists(folder) {
                return Err(DemoError::validation(format!(
                    "`folders` entry {folder:?} matches no folder guid or external_id"
                )));
            }
        }
        let username = match &input.username {
            Some(u) if u.trim().is_empty() || u.len() > 254 => {
                return Err(DemoError::validation(
                    "`username` must be 1 to 254 characters",
                ));
            }
            Some(u) => u.clone(),
            None => email
                .clone()
                .ok_or_else(|| DemoError::validation("`username` or `email` is required"))?,
        };
        if let Some(email) = &email
            && let Some(owner) = self.email_index.get(&email.to_lowercase())
            && Some(*owner) != self_id
        {
            return Err(DemoError::duplicate_email(email));
        }
        if let Some(owner) = self.username_index.get(&username.to_lowercase())
            && Some(*owner) != self_id
        {
            return Err(DemoError::duplicate_username(&username));
        }
        Ok((username, email))
    }

    fn folder_exists(&self, reference: &str) -> bool {
        self.folders.values().any(|f| {
            f.guid.eq_ignore_ascii_case(reference) || f.external_id.as_deref() == Some(reference)
        })
    }

    fn set_manager(&mut self, user_id: u64, old: Option<u64>, new: Option<u64>) {
        if old == new {
            return;
        }
        if let Some(old) = old
            && let Some(set) = self.reports.get_mut(&old)
        {
            set.remove(&user_id);
            if set.is_empty() {
                self.reports.remove(&old);
            }
        }
        if let Some(new) = new {
            self.reports.entry(new).or_default().insert(user_id);
        }
    }

    /// Creates a user from a POST body: active, one simulated session, fresh timestamps.
    pub fn create_user(&mut self, input: UserInput) -> DemoResult<User> {
        let (username, email) = self.validate_user(&input, None)?;
        let id = self.next_id;
        self.next_id += 1;
        let now = now_rfc3339();
        let user = User {
            id,
            username,
            email,
            first_name: input.first_name,
            last_name: input.last_name,
            display_name: input.display_name,
            initials: input.initials,
            job_title: input.job_title,
            phone: input.phone,
            direct_phone: input.direct_phone,
            service_email: input.service_email,
            office_id: input.office_id,
            department: input.department,
            employee_number: input.employee_number,
            manager_id: input.manager_id,
            user_type: input.user_type,
            role: input.role.flatten(),
            status: input.status.unwrap_or(UserStatus::Active),
            external_id: input.external_id,
            metadata: input.metadata.unwrap_or_default(),
            folders: input.folders.unwrap_or_default(),
            active_sessions: 1,
            sessions_revoked: 0,
            created_at: now.clone(),
            updated_at: now,
        };
        if let Some(e) = &user.email {
            self.email_index.insert(e.to_lowercase(), id);
        }
        self.username_index.insert(user.username.to_lowercase(), id);
        self.set_manager(id, None, user.manager_id);
        self.users.insert(id, user.clone());
        Ok(user)
    }

    /// Replaces every writable field from a PUT body. Omitted fields become null / empty,
    /// except `status` and `role`, which keep their value when omitted (`role: null` takes the
    /// role away): access is also granted by its own calls (activate / deactivate,
    /// `PUT …/role`), which a profile update that does not mention it must not undo.
    pub fn replace_user(&mut self, id: u64, input: UserInput) -> DemoResult<User> {
        self.user(id)?;
        let (username, email) = self.validate_user(&input, Some(id))?;
        let user = self.user_mut(id)?;
        let old_email = std::mem::replace(&mut user.email, email);
        let old_username = std::mem::replace(&mut user.username, username);
        let old_manager = user.manager_id;
        user.first_name = input.first_name;
        user.last_name = input.last_name;
        user.display_name = input.display_name;
        user.initials = input.initials;
        user.job_title = input.job_title;
        user.phone = input.phone;
        user.direct_phone = input.direct_phone;
        user.service_email = input.service_email;
        user.office_id = input.office_id;
        user.department = input.department;
        user.employee_number = input.employee_number;
        user.manager_id = input.manager_id;
        user.user_type = input.user_type;
        if let Some(role) = input.role {
            user.role = role;
        }
        if let Some(status) = input.status {
            user.status = status;
        }
        user.external_id = input.external_id;
        user.metadata = input.metadata.unwrap_or_default();
        user.folders = input.folders.unwrap_or_default();
        user.updated_at = now_rfc3339();
        let updated = user.clone();
        if let Some(e) = &old_email {
            self.email_index.remove(&e.to_lowercase());
        }
        if let Some(e) = &updated.email {
            self.email_index.insert(e.to_lowercase(), id);
        }
        self.username_index.remove(&old_username.to_lowercase());
        self.username_index
            .insert(updated.username.to_lowercase(), id);
        self.set_manager(id, old_manager, updated.manager_id);
        Ok(updated)
    }

    /// Deletes a user, its memberships, and the `manager_id` of users reporting to it.
    pub fn delete_user(&mut self, id: u64) -> DemoResult<()> {
        let user = self
            .users
            .remove(&id)
            .ok_or_else(|| DemoError::not_found(format!("user {id} not found")))?;
        if let Some(e) = &user.email {
            self.email_index.remove(&e.to_lowercase());
        }
        self.username_index.remove(&user.username.to_lowercase());
        self.set_manager(id, user.manager_id, None);
        let now = now_rfc3339();
        for team_id in self.user_teams.remove(&id).unwrap_or_default() {
            if let Some(set) = self.members.get_mut(&team_id) {
                set.remove(&id);
            }
            if let Some(team) = self.teams.get_mut(&team_id) {
                team.updated_at.clone_from(&now);
            }
        }
        for report in self.reports.remove(&id).unwrap_or_default() {
            if let Some(u) = self.users.get_mut(&report) {
                u.manager_id = None;
                u.updated_at.clone_from(&now);
            }
        }
        Ok(())
    }

    /// Sets `status` (activate / deactivate); sessions are left alone.
    pub fn set_status(&mut self, id: u64, status: UserStatus) -> DemoResult<User> {
        let user = self.user_mut(id)?;
        user.status = status;
        user.updated_at = now_rfc3339();
        Ok(user.clone())
    }

    /// Grants `role` (or, with `None`, takes the role away).
    pub fn set_role(&mut self, id: u64, role: Option<String>) -> DemoResult<User> {
        let user = self.user_mut(id)?;
        user.role = role;
        user.updated_at = now_rfc3339();
        Ok(user.clone())
    }

    /// Drops every simulated session of the user and counts the revocation.
    pub fn revoke_sessions(&mut self, id: u64) -> DemoResult<User> {
        let user = self.user_mut(id)?;
        user.active_sessions = 0;
        user.sessions_revoked += 1;
        user.updated_at = now_rfc3339();
        Ok(user.clone())
    }

    // ---- teams ----

    fn team_view(&self, team: &Team) -> TeamView {
        TeamView::new(team, self.members.get(&team.id).map_or(0, BTreeSet::len))
    }

    /// The team with `id` (without members), or 404.
    pub fn team(&self, id: u64) -> DemoResult<TeamView> {
        self.teams
            .get(&id)
            .map(|t| self.team_view(t))
            .ok_or_else(|| DemoError::not_found(format!("team {id} not found")))
    }

    /// One page of teams matching `filter`, in id order, and the total match count.
    pub fn list_teams(&self, filter: &TeamFilter, page: Page) -> (Vec<TeamView>, usize) {
        let name = filter.name.as_ref().map(|n| n.to_lowercase());
        let matches = |t: &&Team| {
            name.as_ref().is_none_or(|n| t.name.to_lowercase() == *n)
                && filter
                    .external_id
                    .as_ref()
                    .is_none_or(|x| t.external_id.as_ref() == Some(x))
        };
        let total = self.teams.values().filter(matches).count();
        let items = page_of(
            self.teams
                .values()
                .filter(matches)
                .map(|t| self.team_view(t)),
            page,
        );
        (items, total)
    }

    /// Creates an empty team.
    pub fn create_team(&mut self, input: TeamInput) -> DemoResult<TeamView> {
        let name = required(input.name, "name")?;
        let id = self.next_id;
        self.next_id += 1;
        let now = now_rfc3339();
        let team = Team {
            id,
            name,
            external_id: input.external_id,
            created_at: now.clone(),
            updated_at: now,
        };
        let view = self.team_view(&team);
        self.teams.insert(id, team);
        Ok(view)
    }

    /// Replaces `name` and `external_id` (omitted `external_id` becomes null); members stay.
    pub fn replace_team(&mut self, id: u64, input: TeamInput) -> DemoResult<TeamView> {
        let name = required(input.name, "name")?;
        let team = self
            .teams
            .get_mut(&id)
            .ok_or_else(|| DemoError::not_found(format!("team {id} not found")))?;
        team.name = name;
        team.external_id = input.external_id;
        team.updated_at = now_rfc3339();
        let team = team.clone();
        Ok(self.team_view(&team))
    }

    /// Deletes a team and its memberships; the users stay.
    pub fn delete_team(&mut self, id: u64) -> DemoResult<()> {
        self.teams
            .remove(&id)
            .ok_or_else(|| DemoError::not_found(format!("team {id} not found")))?;
        for user_id in self.members.remove(&id).unwrap_or_default() {
            if let Some(set) = self.user_teams.get_mut(&user_id) {
                set.remove(&id);
                if set.is_empty() {
                    self.user_teams.remove(&user_id);
                }
            }
        }
        Ok(())
    }

    /// One page of a team's members in user-id order, and the member count.
    pub fn list_members(&self, team_id: u64, page: Page) -> DemoResult<(Vec<Member>, usize)> {
        self.team(team_id)?;
        let Some(set) = self.members.get(&team_id) else {
            return Ok((Vec::new(), 0));
        };
        let items = page_of(
            set.iter().filter_map(|id| {
                self.users.get(id).map(|u| Member {
                    user_id: u.id,
                    email: u.email.clone(),
                })
            }),
            page,
        );
        Ok((items, set.len()))
    }

    /// Adds users to a team, all or nothing: any unknown user id fails the call with 422.
    /// Users already in the team are accepted and not counted as added.
    pub fn add_members(&mut self, team_id: u64, user_ids: &[u64]) -> DemoResult<MembersAdded> {
        if !self.teams.contains_key(&team_id) {
            return Err(DemoError::not_found(format!("team {team_id} not found")));
        }
        let unknown: Vec<u64> = user_ids
            .iter()
            .copied()
            .filter(|id| !self.users.contains_key(id))
            .take(10)
            .collect();
        if !unknown.is_empty() {
            return Err(DemoError::validation(format!(
                "unknown user ids: {unknown:?}"
            )));
        }
        let set = self.members.entry(team_id).or_default();
        let mut added = 0;
        for &user_id in user_ids {
            if set.insert(user_id) {
                added += 1;
                self.user_teams.entry(user_id).or_default().insert(team_id);
            }
        }
        let member_count = set.len();
        if added > 0
            && let Some(team) = self.teams.get_mut(&team_id)
        {
            team.updated_at = now_rfc3339();
        }
        Ok(MembersAdded {
            team_id,
            added,
            member_count,
        })
    }

    /// Removes one member; 404 when the team does not exist or the user is not a member.
    pub fn remove_member(&mut self, team_id: u64, user_id: u64) -> DemoResult<()> {
        let team = self
            .teams
            .get_mut(&team_id)
            .ok_or_else(|| DemoError::not_found(format!("team {team_id} not found")))?;
        let removed = self
            .members
            .get_mut(&team_id)
            .is_some_and(|set| set.remove(&user_id));
        if !removed {
            return Err(DemoError::not_found(format!(
                "user {user_id} is not a member of team {team_id}"
            )));
        }
        team.updated_at = now_rfc3339();
        if let Some(set) = self.user_teams.get_mut(&user_id) {
            set.remove(&team_id);
            if set.is_empty() {
                self.user_teams.remove(&user_id);
            }
        }
        Ok(())
    }

    // ---- offices and folders ----

    /// One page of offices (optionally only the one named `name`, ignoring case).
    pub fn list_offices(&self, name: Option<&str>, page: Page) -> (Vec<Office>, usize) {
        let name = name.map(str::to_lowercase);
        let matches = |o: &&Office| name.as_ref().is_none_or(|n| o.name.to_lowercase() == *n);
        let total = self.offices.values().filter(matches).count();
        (
            page_of(self.offices.values().filter(matches).cloned(), page),
            total,
        )
    }

    /// Creates an office; names are unique ignoring case (409 `duplicate_name`).
    pub fn create_office(&mut self, input: OfficeInput) -> DemoResult<Office> {
        let name = required(input.name, "name")?;
        let lower = name.to_lowercase();
        if self
            .offices
            .values()
            .any(|o| o.name.to_lowercase() == lower)
        {
            return Err(DemoError::duplicate_name(&name));
        }
        let id = self.next_office;
        self.next_office += 1;
        let office = Office { id, name };
        self.offices.insert(id, office.clone());
        Ok(office)
    }

    /// One page of folders.
    pub fn list_folders(&self, page: Page) -> (Vec<Folder>, usize) {
        (
            page_of(self.folders.values().cloned(), page),
            self.folders.len(),
        )
    }

    /// Creates a folder with a fresh v4 guid.
    pub fn create_folder(&mut self, input: FolderInput) -> DemoResult<Folder> {
        let name = required(input.name, "name")?;
        let id = self.next_folder;
        self.next_folder += 1;
        let folder = Folder {
            id,
            guid: uuid::Uuid::new_v4().to_string(),
            name,
            external_id: input.external_id,
        };
        self.folders.insert(id, folder.clone());
        Ok(folder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    const ALL: Page = Page {
        page: 1,
        per_page: MAX_PER_PAGE,
    };

    fn user(email: &str) -> UserInput {
        UserInput {
            email: Some(email.into()),
            ..Default::default()
        }
    }

    #[test]
    fn email_is_unique_ignoring_case_and_freed_on_change() {
        let mut db = Db::seeded();
        let a = db.create_user(user("Ann@Example.com")).unwrap();
        let e = db.create_user(user("ann@example.COM")).unwrap_err();
        assert_eq!(e.status, StatusCode::CONFLICT);
        // Updating a user to its own email in another case is not a conflict.
        db.replace_user(a.id, user("ANN@example.com")).unwrap();
        db.replace_user(a.id, user("ann2@example.com")).unwrap();
        db.create_user(user("ann@example.com")).unwrap();
        let f = UserFilter {
            email: Some("ANN2@EXAMPLE.COM".into()),
            ..Default::default()
        };
        assert_eq!(db.list_users(&f, ALL).0[0].id, a.id);
    }

    #[test]
    fn deleting_a_manager_clears_reports_and_memberships() {
        let mut db = Db::seeded();
        let boss = db.create_user(user("boss@x.io")).unwrap();
        let mut input = user("rep@x.io");
        input.manager_id = Some(boss.id);
        let rep = db.create_user(input).unwrap();
        let team = db.create_team(TeamInput {
            name: Some("t".into()),
            external_id: None,
        });
        let team = team.unwrap();
        db.add_members(team.id, &[boss.id, rep.id]).unwrap();
        db.delete_user(boss.id).unwrap();
        assert_eq!(db.user(rep.id).unwrap().manager_id, None);
        assert_eq!(db.team(team.id).unwrap().member_count, 1);
        assert!(!db.user_teams.contains_key(&boss.id));
        db.delete_team(team.id).unwrap();
        assert!(db.user(rep.id).is_ok());
        assert!(db.user_teams.is_empty());
    }

    #[test]
    fn references_are_validated() {
        let mut db = Db::seeded();
        let mut input = user("a@x.io");
        input.office_id = Some(99);
        assert_eq!(db.create_user(input).unwrap_err().code, "validation_failed");
        let mut input = user("a@x.io");
        input.manager_id = Some(1);
        assert_eq!(db.create_user(input).unwrap_err().code, "validation_failed");
        let mut input = user("a@x.io");
        input.folders = Some(vec!["hr".into(), "nope".into()]);
        assert!(db.create_user(input).unwrap_err().message.contains("nope"));
        let guid = db.folders[&1].guid.to_uppercase();
        let mut input = user("a@x.io");
        input.folders = Some(vec!["hr".into(), guid]);
        let a = db.create_user(input).unwrap();
        let mut input = user("a@x.io");
        input.manager_id = Some(a.id);
        assert!(db.replace_user(a.id, input).is_err());
    }

    #[test]
    fn add_members_is_all_or_nothing() {
        let mut db = Db::seeded();
        let a = db.create_user(user("a@x.io")).unwrap();
        let t = db
            .create_team(TeamInput {
                name: Some("t".into()),
                external_id: None,
            })
            .unwrap();
        assert!(db.add_members(t.id, &[a.id, 999]).is_err());
        assert_eq!(db.team(t.id).unwrap().member_count, 0);
        let r = db.add_members(t.id, &[a.id, a.id]).unwrap();
        assert_eq!((r.added, r.member_count), (1, 1));
        assert_eq!(
            db.remove_member(t.id, 999).unwrap_err().status,
            StatusCode::NOT_FOUND
        );
    }
}
