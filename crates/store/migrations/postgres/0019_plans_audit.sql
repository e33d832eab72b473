-- Plans (what a partner's subscription serves) and the audit log of what people do.
-- Mirrors ../sqlite/0019_plans_audit.sql.
ALTER TABLE partners ADD COLUMN plan TEXT NOT NULL DEFAULT 'pro'
    CHECK (plan IN ('basic', 'pro', 'enterprise'));

-- Append-only: who (actor, and where from: via), when, what (action, detail as JSON).
CREATE TABLE audit_log (
    id         BIGSERIAL PRIMARY KEY,
    partner_id BIGINT NOT NULL REFERENCES partners (id),
    actor      TEXT   NOT NULL,
    via        TEXT   NOT NULL,
    action     TEXT   NOT NULL,
    detail     TEXT   NOT NULL,
    at_ms      BIGINT NOT NULL
);
CREATE INDEX audit_log_partner ON audit_log (partner_id, id);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
