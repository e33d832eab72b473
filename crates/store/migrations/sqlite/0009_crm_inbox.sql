-- Events that need the CRM's API before they can be applied (a partial record to re-fetch, how
-- a settled bill was paid): stored when they arrive, worked by a background worker, deleted
-- once applied. Nothing leaves unapplied: an item failing for too long is kept as a dead letter
-- for the operator. Mirrors ../postgres/0009_crm_inbox.sql.
CREATE TABLE crm_inbox (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    partner_id     BIGINT   NOT NULL REFERENCES partners (id),
    connection_id  BIGINT   NOT NULL REFERENCES crm_connections (id),
    event          TEXT     NOT NULL, -- loyalty_core::CrmEvent as JSON
    source         TEXT     NOT NULL, -- webhook | poll | import | desk
    attempts       INTEGER  NOT NULL DEFAULT 0,
    next_at_ms     BIGINT   NOT NULL,
    last_error     TEXT,
    dead           SMALLINT NOT NULL DEFAULT 0,
    leased         SMALLINT NOT NULL DEFAULT 0, -- 1: a worker has it (until next_at_ms)
    received_at_ms BIGINT   NOT NULL
);
CREATE INDEX crm_inbox_due ON crm_inbox (next_at_ms) WHERE dead = 0;
