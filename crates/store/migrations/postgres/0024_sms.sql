-- Reminders by SMS for clients without Telegram. Mirrors ../sqlite/0024_sms.sql.

-- How a reminder goes out: in the client's Telegram chat, or as an SMS the salon's CRM sends.
ALTER TABLE engage_sends ADD COLUMN channel TEXT NOT NULL DEFAULT 'telegram'
    CHECK (channel IN ('telegram', 'sms'));

-- An SMS opt-in is its own consent (given at the desk, with the text the client signed), logged
-- like the others ...
ALTER TABLE consent_log DROP CONSTRAINT consent_log_kind_check;
ALTER TABLE consent_log ADD CONSTRAINT consent_log_kind_check
    CHECK (kind IN ('marketing', 'personal_data', 'marketing_sms'));
-- ... with the one in force beside the Telegram one.
CREATE TABLE sms_consents (
    partner_id BIGINT NOT NULL REFERENCES partners (id),
    client_id  BIGINT NOT NULL REFERENCES clients (id),
    granted    SMALLINT NOT NULL,
    log_id     BIGINT NOT NULL,
    at_ms      BIGINT NOT NULL,
    PRIMARY KEY (partner_id, client_id)
);
