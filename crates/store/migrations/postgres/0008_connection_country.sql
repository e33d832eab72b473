-- A connection may be a location in another country than its partner's (the partner's country
-- is in its program): phones from that CRM are read as typed there. NULL: the partner's.
-- Mirrors ../sqlite/0008_connection_country.sql.
ALTER TABLE connection_settings ADD COLUMN country TEXT;
