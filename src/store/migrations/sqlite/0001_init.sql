-- scimgate store, SQLite dialect. Times are RFC 3339 UTC text (sqlx's chrono encoding), which
-- sorts chronologically as text, so range filters and indexes on them work.

-- API keys: only the SHA-256 of the secret is kept; the public id is the lookup key.
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL,
    secret_hash  BLOB NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT,
    last_used_at TEXT,
    revoked_at   TEXT
);

-- Basic-auth users: argon2id PHC strings (salt and parameters included).
CREATE TABLE basic_credentials (
    username   TEXT PRIMARY KEY NOT NULL,
    phc        TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE audit_log (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    time          TEXT NOT NULL,
    actor         TEXT NOT NULL,
    operation     TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id   TEXT,
    scim_status   INTEGER NOT NULL,
    backend_calls TEXT NOT NULL,
    duration_ms   INTEGER NOT NULL
);
CREATE INDEX audit_log_time ON audit_log (time);

-- One row (id = 1): facts about traffic that are not derivable from other tables.
CREATE TABLE sync_state (
    id           INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    last_request TEXT
);

CREATE TABLE id_map (
    resource_type TEXT NOT NULL,
    scim_id       TEXT NOT NULL,
    legacy_id     TEXT NOT NULL,
    external_id   TEXT,
    PRIMARY KEY (resource_type, scim_id)
);
CREATE UNIQUE INDEX id_map_legacy ON id_map (resource_type, legacy_id);
CREATE UNIQUE INDEX id_map_external ON id_map (resource_type, external_id);

-- Groups the gateway keeps itself because the legacy app has none.
CREATE TABLE groups (
    id           TEXT PRIMARY KEY NOT NULL,
    display_name TEXT NOT NULL,
    external_id  TEXT,
    created_at   TEXT NOT NULL,
    modified_at  TEXT NOT NULL
);

-- The primary key serves add/remove/page by group; the second index serves groups_of(user).
CREATE TABLE group_members (
    group_id  TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    member_id TEXT NOT NULL,
    PRIMARY KEY (group_id, member_id)
) WITHOUT ROWID;
CREATE INDEX group_members_member ON group_members (member_id);
