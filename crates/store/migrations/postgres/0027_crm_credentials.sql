-- Credentials of the CRMs beyond the YCLIENTS platform, as JSON their crate's gateway wiring
-- reads (Arnica: the integrator's e-mail, password and the API base; Beauty Pro: the
-- application and the salon's database), and the tokens such a CRM hands out (Beauty Pro's
-- access and refresh pair), with a version every save must name so that two instances never
-- write an older pair over a newer one.
ALTER TABLE connection_settings ADD COLUMN crm_credentials TEXT;
ALTER TABLE connection_settings ADD COLUMN crm_tokens TEXT;
ALTER TABLE connection_settings ADD COLUMN tokens_version BIGINT NOT NULL DEFAULT 0;
