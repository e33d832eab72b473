-- People who join through the bot: the salon whose link they started it from (a client is made
-- for them there), and per connection whether such clients are created in the CRM too.
-- Mirrors ../postgres/0015_client_push.sql.
ALTER TABLE telegram_chats ADD COLUMN joined_partner_id BIGINT;
ALTER TABLE connection_settings ADD COLUMN create_clients SMALLINT NOT NULL DEFAULT 0;
