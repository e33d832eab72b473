-- The gateway's tables: how to reach each connection's CRM, what was rejected at the door,
-- and the Telegram chats that talk to the bot. Mirrors ../sqlite/0002_gateway.sql.

-- API credentials and the company's clock, one row per connection. The tokens are secrets: only
-- the gateway reads them, nothing prints them.
CREATE TABLE connection_settings (
    connection_id      BIGINT  PRIMARY KEY REFERENCES crm_connections (id),
    partner_token      TEXT,
    user_token         TEXT,
    utc_offset_minutes INTEGER NOT NULL
);

-- Webhook deliveries answered with a 4xx, kept for the operator (the newest 1,000; the body cut
-- to 4 KiB with secret-looking values replaced).
CREATE TABLE rejected_deliveries (
    id             BIGSERIAL PRIMARY KEY,
    partner_id     BIGINT  NOT NULL REFERENCES partners (id),
    connection_id  BIGINT  NOT NULL REFERENCES crm_connections (id),
    crm            TEXT    NOT NULL,
    http_status    INTEGER NOT NULL,
    reason         TEXT    NOT NULL,
    content_type   TEXT,
    body_bytes     BIGINT  NOT NULL,
    body_excerpt   TEXT    NOT NULL,
    received_at_ms BIGINT  NOT NULL
);

-- Chats that shared a phone with the bot. `active` turns 0 when Telegram says the user blocked
-- the bot; a new /start turns it back on. A client created later with this phone is linked at
-- once.
CREATE TABLE telegram_chats (
    chat_id       BIGINT   PRIMARY KEY,
    phone         TEXT,
    language      TEXT     NOT NULL,
    active        SMALLINT NOT NULL DEFAULT 1,
    updated_at_ms BIGINT   NOT NULL
);
CREATE INDEX telegram_chats_phone ON telegram_chats (phone) WHERE phone IS NOT NULL;
CREATE INDEX clients_phone ON clients (phone);

-- Delivery history is pruned by age.
CREATE INDEX deliveries_received ON deliveries (received_at_ms);
