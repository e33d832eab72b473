-- What each connection's CRM lists besides services, synced like the service list: masters
-- (staff), service categories and goods, by id with their current names (names change; ids
-- stay). Mirrors ../sqlite/0016_crm_directory.sql.
CREATE TABLE crm_directory (
    connection_id BIGINT   NOT NULL REFERENCES crm_connections (id),
    kind          TEXT     NOT NULL, -- staff | category | good
    item_id       TEXT     NOT NULL,
    partner_id    BIGINT   NOT NULL REFERENCES partners (id),
    name          TEXT     NOT NULL,
    in_crm        SMALLINT NOT NULL DEFAULT 1, -- 0: gone from the CRM's list
    synced_at_ms  BIGINT   NOT NULL,
    PRIMARY KEY (connection_id, kind, item_id)
);
