-- The CRM's service list per connection, as last synced (`services sync`, the periodic sync,
-- a service webhook), and which services the partner lets points buy.
-- Mirrors ../postgres/0007_crm_services.sql.
CREATE TABLE crm_services (
    connection_id   BIGINT   NOT NULL REFERENCES crm_connections (id),
    service_id      TEXT     NOT NULL,
    partner_id      BIGINT   NOT NULL REFERENCES partners (id),
    title           TEXT     NOT NULL,
    category_id     TEXT,
    price_min_minor BIGINT,
    price_max_minor BIGINT,
    in_crm          SMALLINT NOT NULL DEFAULT 1, -- 0: gone from the CRM's list
    redeemable      SMALLINT NOT NULL DEFAULT 1, -- 0: the partner keeps it out of rewards
    synced_at_ms    BIGINT   NOT NULL,
    PRIMARY KEY (connection_id, service_id)
);
CREATE INDEX crm_services_partner ON crm_services (partner_id, service_id);
