-- Referrals: who invited whom, and the friend's visit that pays both while one does.
-- Mirrors ../postgres/0022_referrals.sql.
CREATE TABLE referrals (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    partner_id      BIGINT NOT NULL REFERENCES partners (id),
    referrer_id     BIGINT NOT NULL REFERENCES clients (id),
    friend_id       BIGINT NOT NULL REFERENCES clients (id),
    created_at_ms   BIGINT NOT NULL,
    record_key      TEXT,   -- {connection}:{record} of the friend's visit that pays it
    qualified_at_ms BIGINT, -- that visit's time
    referrer_points BIGINT NOT NULL DEFAULT 0,
    friend_points   BIGINT NOT NULL DEFAULT 0,
    postings        BIGINT NOT NULL DEFAULT 0,
    UNIQUE (partner_id, friend_id)
);
CREATE INDEX referrals_referrer ON referrals (partner_id, referrer_id);

-- The client whose link (r<partner>_<client>) started a chat.
ALTER TABLE telegram_chats ADD COLUMN referrer_client_id BIGINT;
