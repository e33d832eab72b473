-- Personal offers (issue 14): made when the reminder carrying one is sent (send_id: which
-- message), posted for the visit that qualifies before the deadline (record_key: which visit),
-- taken back when that visit stops qualifying. The ledger's entries are offer:{id}:{n}.
-- Mirrors ../postgres/0026_offers.sql.
CREATE TABLE offers (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    partner_id     BIGINT NOT NULL REFERENCES partners (id),
    client_id      BIGINT NOT NULL REFERENCES clients (id),
    send_id        BIGINT NOT NULL UNIQUE REFERENCES engage_sends (id),
    trigger_name   TEXT   NOT NULL,
    variant        TEXT   NOT NULL,
    terms          TEXT   NOT NULL, -- loyalty_core::offer::OfferTerms as JSON
    sent_at_ms     BIGINT NOT NULL,
    valid_until_ms BIGINT NOT NULL,
    record_key     TEXT,            -- {connection}:{record} of the visit it is posted for
    posted         BIGINT NOT NULL DEFAULT 0,
    postings       BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX offers_client ON offers (partner_id, client_id, valid_until_ms);
