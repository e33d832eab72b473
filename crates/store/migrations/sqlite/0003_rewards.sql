-- The rewards catalog: what points buy. Mirrors ../postgres/0003_rewards.sql.
CREATE TABLE rewards (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    partner_id    BIGINT   NOT NULL REFERENCES partners (id),
    title         TEXT     NOT NULL,
    cost          BIGINT   NOT NULL CHECK (cost > 0),
    kind          TEXT     NOT NULL, -- loyalty_core::RewardKind as JSON
    active        SMALLINT NOT NULL DEFAULT 1,
    created_at_ms BIGINT   NOT NULL
);
CREATE INDEX rewards_partner ON rewards (partner_id, id);
