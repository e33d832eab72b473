-- Plans (what a partner's subscription serves) and the audit log of what people do.
-- Mirrors ../postgres/0019_plans_audit.sql.
ALTER TABLE partners ADD COLUMN plan TEXT NOT NULL DEFAULT 'pro'
    CHECK (plan IN ('basic', 'pro', 'enterprise'));

-- Append-only: who (actor, and where from: via), when, what (action, detail as JSON).
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    partner_id BIGINT NOT NULL REFERENCES partners (id),
    actor      TEXT   NOT NULL,
    via        TEXT   NOT NULL,
    action     TEXT   NOT NULL,
    detail     TEXT   NOT NULL,
    at_ms      BIGINT NOT NULL
);
CREATE INDEX audit_log_partner ON audit_log (partner_id, id);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
