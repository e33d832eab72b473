-- Program versions, levels and the terms a record was first applied with.
-- Mirrors ../postgres/0018_levels.sql.

-- Every program a partner has had; partners.program is the newest, in force from
-- partners.program_from_ms. A visit is computed with the version in force at its time.
ALTER TABLE partners ADD COLUMN program_version BIGINT NOT NULL DEFAULT 1;
ALTER TABLE partners ADD COLUMN program_from_ms BIGINT NOT NULL DEFAULT 0;
CREATE TABLE program_versions (
    partner_id        BIGINT NOT NULL REFERENCES partners (id),
    version           BIGINT NOT NULL,
    effective_from_ms BIGINT NOT NULL,
    program           TEXT   NOT NULL, -- loyalty_core::Program as JSON
    created_at_ms     BIGINT NOT NULL,
    PRIMARY KEY (partner_id, version)
);
INSERT INTO program_versions (partner_id, version, effective_from_ms, program, created_at_ms)
    SELECT id, 1, 0, program, created_at_ms FROM partners;

-- A client's level (NULL: the first one), the floor staff set by hand, and since when the
-- level holds (reached or last confirmed by a review).
ALTER TABLE clients ADD COLUMN level TEXT;
ALTER TABLE clients ADD COLUMN level_floor TEXT;
ALTER TABLE clients ADD COLUMN level_since_ms BIGINT;
CREATE INDEX clients_level_review ON clients (partner_id, level_since_ms) WHERE level IS NOT NULL;

CREATE TABLE level_changes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    partner_id  BIGINT NOT NULL REFERENCES partners (id),
    client_id   BIGINT NOT NULL REFERENCES clients (id),
    from_level  TEXT,
    to_level    TEXT,
    reason      TEXT   NOT NULL CHECK (reason IN ('rise', 'review', 'hand')),
    measure     BIGINT NOT NULL, -- the qualifying measure then, in the program's unit
    actor       TEXT,
    at_ms       BIGINT NOT NULL
);
CREATE INDEX level_changes_client ON level_changes (partner_id, client_id, id);

-- The level measure at the summary's last refresh: what came within the program's window.
ALTER TABLE client_summaries ADD COLUMN level_visits BIGINT NOT NULL DEFAULT 0;
ALTER TABLE client_summaries ADD COLUMN level_paid_minor BIGINT NOT NULL DEFAULT 0;

-- loyalty_core::level::Terms as JSON: fixed when the record is first applied to a client.
ALTER TABLE crm_records ADD COLUMN terms TEXT;
