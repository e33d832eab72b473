-- The reconciliation poller: one cursor per connection, the last pass's counts, and a lease so
-- one gateway instance at a time polls a connection. Mirrors ../sqlite/0011_sync_cursors.sql.
CREATE TABLE sync_cursors (
    connection_id    BIGINT  PRIMARY KEY REFERENCES crm_connections (id),
    partner_id       BIGINT  NOT NULL REFERENCES partners (id),
    cursor_ms        BIGINT,  -- the start of the last pass that read every page
    last_started_ms  BIGINT,
    last_finished_ms BIGINT,
    seen             BIGINT  NOT NULL DEFAULT 0,
    applied          BIGINT  NOT NULL DEFAULT 0,
    queued           BIGINT  NOT NULL DEFAULT 0,
    errors           BIGINT  NOT NULL DEFAULT 0,
    last_error       TEXT,
    interval_s       INTEGER, -- this connection's own; NULL: the deployment's
    lease_owner      TEXT,
    lease_until_ms   BIGINT
);
