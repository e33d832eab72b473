-- Custom triggers (issue 18, the Enterprise plan): each time a salon's trigger fires for an
-- event, once under (trigger, event key), written in the transaction that applies the event.
-- A message the trigger sends waits here for the reminders' delivery policy (consent, quiet
-- hours, caps, the control group): the gateway's worker decides it and records the decision
-- with the reminders'. Mirrors ../sqlite/0035_custom_triggers.sql.
CREATE TABLE trigger_fires (
    id            BIGSERIAL PRIMARY KEY,
    partner_id    BIGINT NOT NULL REFERENCES partners (id),
    trigger_name  TEXT   NOT NULL,
    -- visit | birthday | level_reached | referral_rewarded
    event         TEXT   NOT NULL,
    -- The record (connection:record), the birthday's year, the level reached, the referral.
    event_key     TEXT   NOT NULL,
    client_id     BIGINT NOT NULL REFERENCES clients (id),
    -- What its points came to when it fired (a visit's follow the visit's state after).
    points        BIGINT NOT NULL,
    record_id     TEXT,
    fired_at_ms   BIGINT NOT NULL,
    -- loyalty_core::custom::TriggerMessage as JSON; NULL: it sends none.
    message       TEXT,
    -- pending, then send | control | unreachable | no_consent | expired; NULL: no message.
    message_state TEXT,
    -- When the worker looks at a pending message next.
    next_at_ms    BIGINT,
    -- 1: it owes a trigger.fired event (written with it).
    webhook       BIGINT NOT NULL,
    UNIQUE (partner_id, trigger_name, event_key)
);
CREATE INDEX trigger_fires_due ON trigger_fires (next_at_ms);
CREATE INDEX trigger_fires_partner ON trigger_fires (partner_id, id);
