-- Partners' webhook endpoints and the deliveries owed to them (issue 18): an event is written
-- in the transaction that makes the change, one delivery per live endpoint that wants it;
-- the gateway sends it signed (Standard Webhooks), on Svix's schedule, until a 2xx or the
-- schedule's end (dead: listed and replayable). `partners.webhook_endpoints` counts the live
-- endpoints, read with the program, so a salon without any writes no event at all. Mirrors
-- ../postgres/0034_partner_webhooks.sql.
CREATE TABLE webhook_endpoints (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    partner_id        BIGINT NOT NULL REFERENCES partners (id),
    url               TEXT   NOT NULL,
    -- Space-separated event types, or '*'.
    events            TEXT   NOT NULL,
    -- whsec_…; the previous one still signs until previous_until_ms (a rotation).
    secret            TEXT   NOT NULL,
    previous_secret   TEXT,
    previous_until_ms BIGINT,
    created_at_ms     BIGINT NOT NULL,
    -- The first failure since the last success.
    failing_since_ms  BIGINT,
    disabled_at_ms    BIGINT,
    disabled_reason   TEXT
);
CREATE TABLE webhook_deliveries (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    partner_id     BIGINT NOT NULL REFERENCES partners (id),
    endpoint_id    BIGINT NOT NULL,
    event_type     TEXT   NOT NULL,
    body           TEXT   NOT NULL,
    created_at_ms  BIGINT NOT NULL,
    attempts       BIGINT NOT NULL DEFAULT 0,
    -- Due at; NULL once delivered or dead.
    next_at_ms     BIGINT,
    -- A sender's claim: another instance leaves it alone until then.
    lease_until_ms BIGINT,
    state          TEXT   NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
    last_status    BIGINT,
    last_error     TEXT,
    done_at_ms     BIGINT
);
CREATE INDEX webhook_endpoints_partner ON webhook_endpoints (partner_id);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_at_ms);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);
ALTER TABLE partners ADD COLUMN webhook_endpoints BIGINT NOT NULL DEFAULT 0;
