-- Pending points: an accrual spendable only after the program's refund window.
-- Mirrors ../sqlite/0020_pending.sql.

-- The client's pending points (the `pending:{client}` account), beside the spendable balance.
ALTER TABLE balances ADD COLUMN pending BIGINT NOT NULL DEFAULT 0;

-- What is still pending of each accrual: it matures into a lot of the client's balance at
-- matures_at_ms, keeping its expiry (counted from the accrual).
CREATE TABLE pending_lots (
    id            BIGSERIAL PRIMARY KEY,
    partner_id    BIGINT NOT NULL REFERENCES partners (id),
    client_id     BIGINT NOT NULL REFERENCES clients (id),
    entry_id      BIGINT NOT NULL REFERENCES ledger_entries (id),
    source        TEXT,
    amount        BIGINT NOT NULL CHECK (amount > 0),
    remaining     BIGINT NOT NULL CHECK (remaining >= 0 AND remaining <= amount),
    matures_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX pending_lots_open ON pending_lots (partner_id, client_id) WHERE remaining > 0;
CREATE INDEX pending_lots_due ON pending_lots (partner_id, matures_at_ms) WHERE remaining > 0;
