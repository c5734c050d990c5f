-- 0009 (PostgreSQL): dead letters keep a capped body and are pruned after a
-- retention period, so a hostile feed cannot fill the store with them. A row
-- keeps the size and SHA-256 of the whole body, so that an operator can still
-- identify the message once the body is truncated or pruned (docs/dead-letters.md).
ALTER TABLE dead_letters ADD COLUMN data_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE dead_letters ADD COLUMN data_sha256 TEXT NOT NULL DEFAULT '';
ALTER TABLE dead_letters ADD COLUMN truncated BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE dead_letters ADD COLUMN pruned_at TIMESTAMPTZ;
UPDATE dead_letters SET data_bytes = octet_length(data), data_sha256 = encode(sha256(data), 'hex') WHERE data IS NOT NULL;
-- The pruner looks for old rows that still hold a body.
CREATE INDEX dead_letters_unpruned ON dead_letters (at) WHERE pruned_at IS NULL;
