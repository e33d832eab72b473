-- The CRM-owned fields of a client's card beside the name: e-mail and birth date (YYYY-MM-DD,
-- or --MM-DD when the year is not known), for birthday offers. Mirrors ../postgres/0014_client_cards.sql.
ALTER TABLE clients ADD COLUMN email TEXT;
ALTER TABLE clients ADD COLUMN birth_date TEXT;
