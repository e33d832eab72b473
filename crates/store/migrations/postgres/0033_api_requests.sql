-- The partner API's answers kept by Idempotency-Key (issue 18): the first answer to a key's
-- request is replayed for 24 hours to the same request; another request under the key is a
-- conflict. `answer_status` NULL: the first request is still being answered. Rows older than a
-- day are let go (the ledger's own key, derived from the Idempotency-Key, still keeps a second
-- effect out). Mirrors ../sqlite/0033_api_requests.sql.
CREATE TABLE api_requests (
    key_id        BIGINT NOT NULL REFERENCES api_keys (id),
    idem_key      TEXT   NOT NULL,
    fingerprint   TEXT   NOT NULL,
    answer_status BIGINT,
    answer_body   TEXT,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (key_id, idem_key)
);
CREATE INDEX api_requests_age ON api_requests (created_at_ms);
