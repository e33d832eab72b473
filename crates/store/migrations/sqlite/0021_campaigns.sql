-- Campaign limits: what each visit reserved of a limited campaign, counted per client and
-- period of the visit's time. Mirrors ../postgres/0021_campaigns.sql.
CREATE TABLE campaign_uses (
    partner_id  BIGINT NOT NULL REFERENCES partners (id),
    client_id   BIGINT NOT NULL REFERENCES clients (id),
    campaign    TEXT   NOT NULL,
    record_key  TEXT   NOT NULL, -- {connection}:{record}
    visit_at_ms BIGINT NOT NULL,
    points      BIGINT NOT NULL CHECK (points >= 0),
    PRIMARY KEY (partner_id, record_key, campaign)
);
CREATE INDEX campaign_uses_client ON campaign_uses (partner_id, client_id, campaign, visit_at_ms);
