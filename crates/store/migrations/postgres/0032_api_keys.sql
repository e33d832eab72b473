-- The partner API's keys (issue 18): shown once, kept as the SHA-256 of the whole key, told
-- apart by a visible prefix; `read` or `write`; revoked, never deleted. Mirrors
-- ../sqlite/0032_api_keys.sql.
CREATE TABLE api_keys (
    id            BIGSERIAL PRIMARY KEY,
    partner_id    BIGINT NOT NULL REFERENCES partners (id),
    prefix        TEXT   NOT NULL UNIQUE,
    key_hash      TEXT   NOT NULL UNIQUE,
    scope         TEXT   NOT NULL CHECK (scope IN ('read', 'write')),
    created_at_ms BIGINT NOT NULL,
    revoked_at_ms BIGINT
);
CREATE INDEX api_keys_partner ON api_keys (partner_id, id);
