-- Reminders (loyalty-engage). Mirrors ../postgres/0023_engage.sql.

-- A record's service categories (loyalty_core::history::record_categories), and what the
-- client's summary keeps for triggers: the latest no-show or cancelled record, the latest
-- booked one, and the latest visits that came with their categories ("{ms}:{cat}|{cat},…",
-- newest first; loyalty_core::history::Rhythm). Rows refresh with the client's next record.
ALTER TABLE crm_records ADD COLUMN categories TEXT;
ALTER TABLE client_summaries ADD COLUMN missed_ms BIGINT;
ALTER TABLE client_summaries ADD COLUMN booked_ms BIGINT;
ALTER TABLE client_summaries ADD COLUMN recent TEXT;
-- The summaries there are: their visits now (categories come as records are applied again).
UPDATE client_summaries SET
    missed_ms = (SELECT MAX(c.visit_at_ms) FROM crm_records c
                 WHERE c.partner_id = client_summaries.partner_id
                   AND c.client_id = client_summaries.client_id
                   AND c.status IN ('no_show', 'deleted')),
    booked_ms = (SELECT MAX(c.visit_at_ms) FROM crm_records c
                 WHERE c.partner_id = client_summaries.partner_id
                   AND c.client_id = client_summaries.client_id
                   AND c.status IN ('waiting', 'confirmed')),
    recent = (SELECT group_concat(r.visit_at_ms || ':', ',' ORDER BY r.visit_at_ms DESC) FROM (
                SELECT c.visit_at_ms FROM crm_records c
                WHERE c.partner_id = client_summaries.partner_id
                  AND c.client_id = client_summaries.client_id
                  AND c.status = 'came' AND c.visit_at_ms IS NOT NULL
                ORDER BY c.visit_at_ms DESC LIMIT 30) r);

-- A scan pages a salon's clients by id: `partner_id = $1 AND id > $2 ORDER BY id LIMIT n` must
-- be a range of this index, whatever plan the server caches for the prepared statement (without
-- it a generic plan walks the primary key from the first client of every salon).
CREATE INDEX clients_partner_id ON clients (partner_id, id);

-- The salt of the salon's control-group draw: random, fixed once drawn.
ALTER TABLE partners ADD COLUMN engage_salt BIGINT NOT NULL DEFAULT 0;
UPDATE partners SET engage_salt = abs(random() % 9007199254740991);

-- Consent (38-FZ art. 18: marketing needs a prior opt-in the sender can show; 152-FZ: the
-- personal-data notice): every grant and withdrawal as given, never changed or deleted...
CREATE TABLE consent_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    partner_id BIGINT NOT NULL REFERENCES partners (id),
    client_id  BIGINT NOT NULL REFERENCES clients (id),
    kind       TEXT   NOT NULL CHECK (kind IN ('marketing', 'personal_data')),
    granted    SMALLINT NOT NULL,
    channel    TEXT   NOT NULL, -- telegram:{chat id}, cli:{actor}
    text       TEXT   NOT NULL, -- the exact text agreed to or withdrawn from
    at_ms      BIGINT NOT NULL
);
CREATE INDEX consent_log_client ON consent_log (partner_id, client_id, id);
-- ... and the marketing consent in force, which scans read (the latest of the log).
CREATE TABLE marketing_consents (
    partner_id      BIGINT NOT NULL REFERENCES partners (id),
    client_id       BIGINT NOT NULL REFERENCES clients (id),
    granted         SMALLINT NOT NULL,
    log_id          BIGINT NOT NULL,
    at_ms           BIGINT NOT NULL,
    PRIMARY KEY (partner_id, client_id)
);

-- Every reminder decided: sent (queued, then sent / dead / cancelled when consent went before it
-- could go) or held out (control), once per (client, trigger, cycle). It is also the marketing
-- queue: its own worker, its own pace.
CREATE TABLE engage_sends (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    partner_id    BIGINT NOT NULL REFERENCES partners (id),
    client_id     BIGINT NOT NULL REFERENCES clients (id),
    trigger_name  TEXT   NOT NULL,
    cycle         TEXT   NOT NULL,
    status        TEXT   NOT NULL CHECK (status IN ('queued', 'sent', 'dead', 'cancelled', 'control')),
    why           TEXT   NOT NULL, -- in words, for the salon
    payload       TEXT   NOT NULL, -- what the message says (loyalty_engage::message::Reminder as JSON)
    decided_at_ms BIGINT NOT NULL,
    run_at_ms     BIGINT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    sent_at_ms    BIGINT,
    snoozed_at_ms BIGINT,
    last_error    TEXT,
    UNIQUE (partner_id, client_id, trigger_name, cycle)
);
CREATE INDEX engage_sends_client ON engage_sends (partner_id, client_id, decided_at_ms);
CREATE INDEX engage_sends_queued ON engage_sends (run_at_ms, id) WHERE status = 'queued';

-- One scan of a salon at a time, on any number of instances; its last report.
CREATE TABLE engage_scans (
    partner_id     BIGINT PRIMARY KEY REFERENCES partners (id),
    owner          TEXT,
    leased_until_ms BIGINT NOT NULL DEFAULT 0,
    last_scan_ms   BIGINT,
    report         TEXT
);
