-- Telegram chats of a salon's staff: they may check and mark used the salon's codes in the bot
-- (/check, /use). Mirrors ../sqlite/0006_staff_chats.sql.
CREATE TABLE staff_chats (
    partner_id  BIGINT NOT NULL REFERENCES partners (id),
    chat_id     BIGINT NOT NULL,
    added_at_ms BIGINT NOT NULL,
    PRIMARY KEY (partner_id, chat_id)
);
CREATE INDEX staff_chats_chat ON staff_chats (chat_id);
