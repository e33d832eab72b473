-- Reminders by SMS for clients without Telegram. Mirrors ../postgres/0024_sms.sql.

-- How a reminder goes out: in the client's Telegram chat, or as an SMS the salon's CRM sends.
ALTER TABLE engage_sends ADD COLUMN channel TEXT NOT NULL DEFAULT 'telegram'
    CHECK (channel IN ('telegram', 'sms'));

-- An SMS opt-in is its own consent (given at the desk, with the text the client signed), logged
-- like the others (SQLite cannot change a CHECK: the log is copied into a table that allows
-- the new kind) ...
CREATE TABLE consent_log_new (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    partner_id BIGINT NOT NULL REFERENCES partners (id),
    client_id  BIGINT NOT NULL REFERENCES clients (id),
    kind       TEXT   NOT NULL CHECK (kind IN ('marketing', 'personal_data', 'marketing_sms')),
    granted    SMALLINT NOT NULL,
    channel    TEXT   NOT NULL, -- telegram:{chat id}, cli:{actor}
    text       TEXT   NOT NULL, -- the exact text agreed to or withdrawn from
    at_ms      BIGINT NOT NULL
);
INSERT INTO consent_log_new (id, partner_id, client_id, kind, granted, channel, text, at_ms)
    SELECT id, partner_id, client_id, kind, granted, channel, text, at_ms FROM consent_log;
DROP TABLE consent_log;
ALTER TABLE consent_log_new RENAME TO consent_log;
CREATE INDEX consent_log_client ON consent_log (partner_id, client_id, id);
-- ... with the one in force beside the Telegram one.
CREATE TABLE sms_consents (
    partner_id BIGINT NOT NULL REFERENCES partners (id),
    client_id  BIGINT NOT NULL REFERENCES clients (id),
    granted    SMALLINT NOT NULL,
    log_id     BIGINT NOT NULL,
    at_ms      BIGINT NOT NULL,
    PRIMARY KEY (partner_id, client_id)
);
