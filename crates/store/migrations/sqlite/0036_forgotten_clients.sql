-- A client's personal data removed on request (152-FZ, issue 19): the row stays under its id, so
-- the ledger's amounts and the books stand, with an anonymous number no real phone can be
-- (+999…, a country code never assigned) and no name, e-mail, birth date or chat. When.
-- Mirrors ../postgres/0036_forgotten_clients.sql.
ALTER TABLE clients ADD COLUMN forgotten_at_ms BIGINT;
