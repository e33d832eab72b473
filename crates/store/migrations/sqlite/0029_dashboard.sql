-- The dashboard's people and their sessions. Mirrors ../postgres/0029_dashboard.sql.

-- A salon's staff who sign in to the dashboard: owner, admin (the desk) or viewer (analytics).
-- An e-mail signs in to one salon; a removed user keeps the row (the audit log names them).
CREATE TABLE staff_users (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    partner_id       BIGINT NOT NULL REFERENCES partners (id),
    email            TEXT   NOT NULL,
    role             TEXT   NOT NULL CHECK (role IN ('owner', 'admin', 'viewer')),
    -- argon2id in PHC form; NULL until the person sets one (an invitation) or when they sign in
    -- only by the bot's link.
    password_hash    TEXT,
    telegram_chat_id BIGINT,
    created_at_ms    BIGINT NOT NULL,
    removed_at_ms    BIGINT
);
CREATE UNIQUE INDEX staff_users_email ON staff_users (email) WHERE removed_at_ms IS NULL;
CREATE INDEX staff_users_partner ON staff_users (partner_id);

-- A signed-in browser: the SHA-256 of the random token in its cookie, never the token.
CREATE TABLE staff_sessions (
    token_hash    TEXT   PRIMARY KEY,
    user_id       BIGINT NOT NULL REFERENCES staff_users (id),
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    last_seen_ms  BIGINT NOT NULL,
    revoked_at_ms BIGINT
);
CREATE INDEX staff_sessions_user ON staff_sessions (user_id);

-- One-time links: an invitation to set a password, or a sign-in sent by the salon's bot.
-- Usable once, before expires_at_ms.
CREATE TABLE staff_links (
    token_hash    TEXT   PRIMARY KEY,
    user_id       BIGINT NOT NULL REFERENCES staff_users (id),
    purpose       TEXT   NOT NULL CHECK (purpose IN ('invite', 'sign_in')),
    expires_at_ms BIGINT NOT NULL,
    used_at_ms    BIGINT
);
