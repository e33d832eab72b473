-- Writing rewards into the CRM: how each connection does it, and how far each redemption got,
-- so a restarted gateway finishes what a stopped one began. Mirrors ../postgres/0005_write_back.sql.

-- JSON naming the strategy and the CRM objects it uses (card type, certificate good); NULL:
-- the gateway's own codes, checked by staff.
ALTER TABLE connection_settings ADD COLUMN reward_setup TEXT;

ALTER TABLE redemptions ADD COLUMN connection_id BIGINT REFERENCES crm_connections (id);
ALTER TABLE redemptions ADD COLUMN wb_attempts BIGINT NOT NULL DEFAULT 0;
-- When the next try is due; NULL when nothing is scheduled.
ALTER TABLE redemptions ADD COLUMN wb_next_at_ms BIGINT;
-- The certificate's or card's id in the CRM.
ALTER TABLE redemptions ADD COLUMN wb_external_id TEXT;
-- A card's balance before the top-up was first sent.
ALTER TABLE redemptions ADD COLUMN wb_witness_minor BIGINT;
ALTER TABLE redemptions ADD COLUMN wb_last_error TEXT;
CREATE INDEX redemptions_write_back_due ON redemptions (wb_next_at_ms) WHERE wb_next_at_ms IS NOT NULL;
