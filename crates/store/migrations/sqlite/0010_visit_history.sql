-- The visit history: each CRM record's row (crm_records) keeps the state last applied, written
-- in the transaction that applies its points; and a summary per client, refreshed in that
-- transaction, so scans read one row per client. Records applied before this migration get
-- their history when they next change or are imported. Mirrors ../postgres/0010_visit_history.sql.
ALTER TABLE crm_records ADD COLUMN visit_at_ms BIGINT;
ALTER TABLE crm_records ADD COLUMN staff_id TEXT;
ALTER TABLE crm_records ADD COLUMN staff_name TEXT;
ALTER TABLE crm_records ADD COLUMN paid_minor BIGINT NOT NULL DEFAULT 0;
ALTER TABLE crm_records ADD COLUMN loyalty_paid_minor BIGINT NOT NULL DEFAULT 0;
ALTER TABLE crm_records ADD COLUMN lines TEXT; -- [loyalty_core::event::VisitLine] as JSON
ALTER TABLE crm_records ADD COLUMN source TEXT; -- webhook | poll | import | desk; NULL: before history
CREATE INDEX crm_records_client ON crm_records (partner_id, client_id, visit_at_ms);

CREATE TABLE client_summaries (
    partner_id     BIGINT NOT NULL REFERENCES partners (id),
    client_id      BIGINT NOT NULL REFERENCES clients (id),
    first_visit_ms BIGINT,
    last_visit_ms  BIGINT,
    visits         BIGINT NOT NULL, -- records that came
    paid_minor     BIGINT NOT NULL, -- what their bills came to
    PRIMARY KEY (partner_id, client_id)
);
CREATE INDEX client_summaries_last ON client_summaries (partner_id, last_visit_ms);
