-- Points exchanged for rewards. The hold stays pending while the code can be used. Mirrors
-- ../sqlite/0004_redemptions.sql.
CREATE TABLE redemptions (
    id              BIGSERIAL PRIMARY KEY,
    partner_id      BIGINT NOT NULL REFERENCES partners (id),
    client_id       BIGINT NOT NULL REFERENCES clients (id),
    reward_id       BIGINT NOT NULL REFERENCES rewards (id),
    hold_id         BIGINT NOT NULL UNIQUE REFERENCES holds (id),
    code            TEXT   NOT NULL UNIQUE, -- unique across the deployment: staff type only the code
    strategy        TEXT   NOT NULL,
    status          TEXT   NOT NULL CHECK (status IN ('pending', 'issued', 'used', 'cancelled', 'expired', 'failed')),
    cost            BIGINT NOT NULL CHECK (cost > 0),
    idempotency_key TEXT   NOT NULL,
    expires_at_ms   BIGINT NOT NULL,
    created_at_ms   BIGINT NOT NULL,
    updated_at_ms   BIGINT NOT NULL,
    UNIQUE (partner_id, idempotency_key)
);
CREATE INDEX redemptions_client ON redemptions (partner_id, client_id, id);
