-- Salons' own Telegram bots (issue 17): a salon may connect the bot it made with @BotFather, so
-- its clients talk to "Лотос", not to the deployment's bot. One bot per salon, one salon per
-- bot; its updates come to /telegram/{webhook_secret}. Mirrors ../postgres/0031_salon_bots.sql.
CREATE TABLE salon_bots (
    partner_id     BIGINT PRIMARY KEY REFERENCES partners (id),
    -- Telegram's id of the bot (the token's number before the colon, confirmed by getMe).
    bot_id         BIGINT NOT NULL UNIQUE,
    username       TEXT   NOT NULL,
    token          TEXT   NOT NULL,
    webhook_secret TEXT   NOT NULL UNIQUE,
    created_at_ms  BIGINT NOT NULL
);

-- Which bot a client's chat was linked through: 0 the deployment's, else a salon's bot id.
-- Messages to the client go through that bot; each bot sees only the clients linked through it.
ALTER TABLE clients ADD COLUMN chat_bot_id BIGINT NOT NULL DEFAULT 0;
