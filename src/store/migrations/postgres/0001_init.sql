-- scimgate store, PostgreSQL dialect (same tables and meaning as the SQLite folder).

-- API keys: only the SHA-256 of the secret is kept; the public id is the lookup key.
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    secret_hash  BYTEA NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);

-- Basic-auth users: argon2id PHC strings (salt and parameters included).
CREATE TABLE basic_credentials (
    username   TEXT PRIMARY KEY,
    phc        TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE audit_log (
    id            BIGSERIAL PRIMARY KEY,
    time          TIMESTAMPTZ NOT NULL,
    actor         TEXT NOT NULL,
    operation     TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id   TEXT,
    scim_status   INTEGER NOT NULL,
    backend_calls TEXT NOT NULL,
    duration_ms   BIGINT NOT NULL
);
CREATE INDEX audit_log_time ON audit_log (time);

-- One row (id = 1): facts about traffic that are not derivable from other tables.
CREATE TABLE sync_state (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    last_request TIMESTAMPTZ
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
    id           TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    external_id  TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    modified_at  TIMESTAMPTZ NOT NULL
);

-- The primary key serves add/remove/page by group; the second index serves groups_of(user).
CREATE TABLE group_members (
    group_id  TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    member_id TEXT NOT NULL,
    PRIMARY KEY (group_id, member_id)
);
CREATE INDEX group_members_member ON group_members (member_id);
