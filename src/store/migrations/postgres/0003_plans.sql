-- Durable plans: the intent of every operation that needs more than one legacy call,
-- written before its first call, with each step's progress (see src/store/plans.rs).
-- Times are Unix milliseconds, the same in both dialects.
CREATE TABLE plans (
    id            TEXT PRIMARY KEY NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    slot          TEXT NOT NULL,
    kind          TEXT NOT NULL,
    label         TEXT,
    steps         TEXT NOT NULL,
    done          BIGINT NOT NULL,
    state         TEXT NOT NULL,
    attempts      BIGINT NOT NULL,
    last_error    TEXT,
    next_at       BIGINT NOT NULL,
    lease_owner   TEXT,
    lease_until   BIGINT,
    needs_caller  BIGINT NOT NULL,
    created_ms    BIGINT NOT NULL,
    updated_ms    BIGINT NOT NULL
);
-- The worker's question: which pending plans are due.
CREATE INDEX plans_due ON plans (state, next_at);
-- One plan per resource and slot (a new one replaces it: INSERT … ON CONFLICT), which is also
-- a request's question: what is the last plan of this resource in this slot.
CREATE UNIQUE INDEX plans_slot ON plans (resource_type, resource_id, slot);

-- Audit entries keep why a request failed, the request id, and whom it was about.
ALTER TABLE audit_log ADD COLUMN request_id TEXT;
ALTER TABLE audit_log ADD COLUMN scim_type TEXT;
ALTER TABLE audit_log ADD COLUMN detail TEXT;
ALTER TABLE audit_log ADD COLUMN label TEXT;
ALTER TABLE audit_log ADD COLUMN client_status INTEGER;
