-- One budget per CRM egress (YCLIENTS limits per IP): the calls started within the vendor's
-- windows, the waiters of every gateway instance (who goes next is decided here: priority, then
-- the connection served longest ago, then arrival), and a pause after a 429.
-- Mirrors ../postgres/0012_crm_budget.sql.
CREATE TABLE crm_budget_calls (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    budget        TEXT     NOT NULL,
    started_ms    BIGINT   NOT NULL,
    connection_id BIGINT,
    priority      SMALLINT NOT NULL
);
CREATE INDEX crm_budget_calls_recent ON crm_budget_calls (budget, started_ms);

CREATE TABLE crm_budget_waiters (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    budget        TEXT     NOT NULL,
    priority      SMALLINT NOT NULL,
    connection_id BIGINT,
    joined_ms     BIGINT   NOT NULL,
    seen_ms       BIGINT   NOT NULL
);
CREATE INDEX crm_budget_waiters_queue ON crm_budget_waiters (budget, priority, joined_ms);

CREATE TABLE crm_budget_pauses (
    budget   TEXT   PRIMARY KEY,
    until_ms BIGINT NOT NULL
);
