-- The analytics page's heavy figures (the books by month, linked vs not) per partner, kept for
-- a few minutes so a view reads them instead of every ledger entry and visit. Mirrors
-- ../sqlite/0030_analytics_snapshots.sql.
CREATE TABLE analytics_snapshots (
    partner_id     BIGINT PRIMARY KEY REFERENCES partners (id),
    computed_at_ms BIGINT NOT NULL,
    -- The month bounds the figures were computed for (JSON array of Unix ms).
    bounds         TEXT   NOT NULL,
    -- loyalty_store::Snapshot's books and linked, as JSON.
    body           TEXT   NOT NULL
);
