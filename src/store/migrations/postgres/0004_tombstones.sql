-- Resources deleted over SCIM whose data the application keeps (a profile whose delete runs
-- an on_delete plan and has no delete endpoint, e.g. draftt): to SCIM they are gone
-- (RFC 7644 §3.6: 404 to every operation, omitted from queries), and a new create with
-- their userName or externalId is refused, so a kept account is never handed to someone else.
CREATE TABLE tombstones (
    resource_type TEXT NOT NULL,
    scim_id       TEXT NOT NULL,
    name_key      TEXT,
    external_id   TEXT,
    deleted_ms    BIGINT NOT NULL,
    PRIMARY KEY (resource_type, scim_id)
);
CREATE INDEX tombstones_name ON tombstones (resource_type, name_key);
CREATE INDEX tombstones_external ON tombstones (resource_type, external_id);
