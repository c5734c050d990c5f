-- 0011 (PostgreSQL): erasure key rotation and the lost-key way out (docs/erasure.md).
-- key_check is the fingerprint of the key that made a tombstone; a store handle
-- checks facts against the tombstones of every key it holds (current and old),
-- and must hold the key of every tombstone whose key is not declared lost.
-- key_lost_at is set by "hrsync erase forget-key": from then on the tombstone no
-- longer needs its key (nobody can check it), and the audit says who decided it.
ALTER TABLE erasures ADD COLUMN key_lost_at TIMESTAMPTZ;
CREATE INDEX erasures_key_check ON erasures (key_check) WHERE key_lost_at IS NULL;
