-- The history import: a job per connection, its place (phase and page) committed after each
-- page so a killed import continues where it was, under a lease so one instance runs it. And
-- the connection's points boundary: visits before it are history only.
-- Mirrors ../postgres/0013_history_import.sql.
ALTER TABLE crm_connections ADD COLUMN points_since_ms BIGINT;

CREATE TABLE import_jobs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    partner_id      BIGINT  NOT NULL REFERENCES partners (id),
    connection_id   BIGINT  NOT NULL REFERENCES crm_connections (id),
    phase           TEXT    NOT NULL, -- clients | records | done
    next_page       INTEGER NOT NULL,
    since_ms        BIGINT  NOT NULL,
    until_ms        BIGINT  NOT NULL,
    accrue_since_ms BIGINT  NOT NULL,
    clients_seen    BIGINT  NOT NULL DEFAULT 0,
    records_seen    BIGINT  NOT NULL DEFAULT 0,
    records_applied BIGINT  NOT NULL DEFAULT 0,
    records_queued  BIGINT  NOT NULL DEFAULT 0,
    errors          BIGINT  NOT NULL DEFAULT 0,
    last_error      TEXT,
    total_clients   BIGINT,
    total_records   BIGINT,
    lease_owner     TEXT,
    lease_until_ms  BIGINT,
    created_at_ms   BIGINT  NOT NULL,
    updated_at_ms   BIGINT  NOT NULL,
    finished_at_ms  BIGINT
);
CREATE INDEX import_jobs_open ON import_jobs (connection_id) WHERE phase <> 'done';
