-- Loyalty Bridge schema, SQLite (the embedded default); mirrors ../postgres/0001_ledger.sql. Every table carries partner_id (the tenant) and every
-- query the store issues filters on it. Times are Unix milliseconds (BIGINT), points and money
-- are BIGINT integers; flags are SMALLINT 0/1 so one SQL text serves PostgreSQL and SQLite.

CREATE TABLE partners (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT   NOT NULL,
    program       TEXT   NOT NULL, -- loyalty_core::Program as JSON
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE crm_connections (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    partner_id      BIGINT NOT NULL REFERENCES partners (id),
    kind            TEXT   NOT NULL,
    company_id      TEXT   NOT NULL,
    credentials_ref TEXT   NOT NULL,
    webhook_secret  TEXT   NOT NULL UNIQUE,
    created_at_ms   BIGINT NOT NULL,
    UNIQUE (partner_id, kind, company_id)
);

CREATE TABLE clients (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    partner_id        BIGINT   NOT NULL REFERENCES partners (id),
    phone             TEXT     NOT NULL, -- E.164
    name              TEXT,
    telegram_chat_id  BIGINT,
    notifications_off SMALLINT NOT NULL DEFAULT 0,
    created_at_ms     BIGINT   NOT NULL,
    UNIQUE (partner_id, phone)
);
CREATE INDEX clients_chat ON clients (telegram_chat_id) WHERE telegram_chat_id IS NOT NULL;

CREATE TABLE client_external_ids (
    partner_id    BIGINT NOT NULL REFERENCES partners (id),
    connection_id BIGINT NOT NULL REFERENCES crm_connections (id),
    external_id   TEXT   NOT NULL,
    client_id     BIGINT NOT NULL REFERENCES clients (id),
    PRIMARY KEY (partner_id, connection_id, external_id)
);

-- The materialized balance of each client; always equal to the sum of the client's entries.
CREATE TABLE balances (
    partner_id BIGINT NOT NULL REFERENCES partners (id),
    client_id  BIGINT NOT NULL REFERENCES clients (id),
    balance    BIGINT NOT NULL,
    PRIMARY KEY (partner_id, client_id)
);

-- The ledger: append-only (see the trigger below).
CREATE TABLE ledger_entries (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    partner_id        BIGINT NOT NULL REFERENCES partners (id),
    idempotency_key   TEXT   NOT NULL,
    kind              TEXT   NOT NULL,
    debit_account     TEXT   NOT NULL,
    credit_account    TEXT   NOT NULL,
    amount            BIGINT NOT NULL CHECK (amount > 0),
    client_id         BIGINT NOT NULL REFERENCES clients (id),
    reverses_entry_id BIGINT REFERENCES ledger_entries (id),
    reason            TEXT,
    fingerprint       TEXT   NOT NULL,
    created_at_ms     BIGINT NOT NULL,
    CHECK (debit_account <> credit_account),
    UNIQUE (partner_id, idempotency_key)
);
CREATE INDEX ledger_entries_client ON ledger_entries (partner_id, client_id, id);

CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries
BEGIN
    SELECT RAISE(ABORT, 'ledger_entries is append-only: post a correcting entry instead');
END;
CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries
BEGIN
    SELECT RAISE(ABORT, 'ledger_entries is append-only: post a correcting entry instead');
END;

-- What is left of each accrual, with its expiry.
CREATE TABLE lots (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    partner_id    BIGINT NOT NULL REFERENCES partners (id),
    client_id     BIGINT NOT NULL REFERENCES clients (id),
    entry_id      BIGINT NOT NULL REFERENCES ledger_entries (id),
    source        TEXT,
    amount        BIGINT NOT NULL CHECK (amount > 0),
    remaining     BIGINT NOT NULL CHECK (remaining >= 0 AND remaining <= amount),
    expires_at_ms BIGINT,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX lots_open ON lots (partner_id, client_id) WHERE remaining > 0;
CREATE INDEX lots_due ON lots (partner_id, expires_at_ms) WHERE remaining > 0;

-- What each debiting entry took from which lot (a voided hold gives it back).
CREATE TABLE lot_draws (
    partner_id BIGINT NOT NULL REFERENCES partners (id),
    entry_id   BIGINT NOT NULL REFERENCES ledger_entries (id),
    lot_id     BIGINT NOT NULL REFERENCES lots (id),
    amount     BIGINT NOT NULL CHECK (amount > 0),
    PRIMARY KEY (entry_id, lot_id)
);

CREATE TABLE holds (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    partner_id      BIGINT NOT NULL REFERENCES partners (id),
    client_id       BIGINT NOT NULL REFERENCES clients (id),
    amount          BIGINT NOT NULL CHECK (amount > 0),
    status          TEXT   NOT NULL CHECK (status IN ('pending', 'posted', 'voided')),
    idempotency_key TEXT   NOT NULL,
    created_at_ms   BIGINT NOT NULL,
    resolved_at_ms  BIGINT,
    UNIQUE (partner_id, idempotency_key)
);

-- Per CRM record: what was applied and what it accrued, so a delivery posts only the delta.
CREATE TABLE crm_records (
    partner_id    BIGINT NOT NULL REFERENCES partners (id),
    connection_id BIGINT NOT NULL REFERENCES crm_connections (id),
    record_id     TEXT   NOT NULL,
    version       BIGINT,
    fingerprint   TEXT,
    status        TEXT,
    client_id     BIGINT REFERENCES clients (id),
    accrued       BIGINT NOT NULL DEFAULT 0,
    postings      BIGINT NOT NULL DEFAULT 0,
    last_accrual  BIGINT REFERENCES ledger_entries (id),
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (partner_id, connection_id, record_id)
);

-- Every delivery applied and what it did, for the operator.
CREATE TABLE deliveries (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    partner_id     BIGINT NOT NULL REFERENCES partners (id),
    connection_id  BIGINT NOT NULL REFERENCES crm_connections (id),
    resource       TEXT   NOT NULL,
    resource_id    TEXT,
    outcome        TEXT   NOT NULL,
    delta          BIGINT NOT NULL,
    received_at_ms BIGINT NOT NULL
);
CREATE INDEX deliveries_partner ON deliveries (partner_id, id);

-- Notifications, enqueued in the transaction that posts the points.
CREATE TABLE outbox (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    partner_id    BIGINT NOT NULL REFERENCES partners (id),
    client_id     BIGINT NOT NULL REFERENCES clients (id),
    partition_key TEXT   NOT NULL,
    payload       TEXT   NOT NULL,
    status        TEXT   NOT NULL CHECK (status IN ('pending', 'sent', 'dead')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    run_at_ms     BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    sent_at_ms    BIGINT,
    last_error    TEXT
);
CREATE INDEX outbox_due ON outbox (run_at_ms, id) WHERE status = 'pending';
CREATE INDEX outbox_partition ON outbox (partition_key, id) WHERE status = 'pending';
CREATE INDEX outbox_partner ON outbox (partner_id, id);
