-- A connection's health: incidents (the CRM refusing the credentials or the licence, dead
-- letters, webhooks silent while the poller finds records), at most one open per connection and
-- kind, and the messages that tell the salon's staff chats of each one opening and closing.
-- Mirrors ../postgres/0017_connection_health.sql.
CREATE TABLE connection_incidents (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    connection_id BIGINT NOT NULL REFERENCES crm_connections (id),
    partner_id    BIGINT NOT NULL REFERENCES partners (id),
    kind          TEXT   NOT NULL CHECK (kind IN ('crm_refused', 'dead_letters', 'webhooks_silent')),
    detail        TEXT   NOT NULL,
    opened_at_ms  BIGINT NOT NULL,
    closed_at_ms  BIGINT
);
CREATE UNIQUE INDEX connection_incidents_open ON connection_incidents (connection_id, kind)
    WHERE closed_at_ms IS NULL;

CREATE TABLE staff_messages (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    partner_id    BIGINT  NOT NULL REFERENCES partners (id),
    chat_id       BIGINT  NOT NULL,
    payload       TEXT    NOT NULL, -- loyalty_core::health::StaffNotice as JSON
    status        TEXT    NOT NULL CHECK (status IN ('pending', 'sent', 'dead')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    run_at_ms     BIGINT  NOT NULL,
    created_at_ms BIGINT  NOT NULL,
    sent_at_ms    BIGINT,
    last_error    TEXT
);
CREATE INDEX staff_messages_due ON staff_messages (run_at_ms, id) WHERE status = 'pending';

-- When the last webhook of the connection arrived, and the last poller pass that applied
-- records (found what no webhook had brought).
ALTER TABLE sync_cursors ADD COLUMN last_webhook_ms BIGINT;
ALTER TABLE sync_cursors ADD COLUMN last_found_ms BIGINT;
