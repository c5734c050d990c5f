-- 0015 (SQLite): a dead letter has an end (issue #11). It is replayed once the
-- configuration is fixed, or a person discards it: it is then never replayed,
-- and kept for the record with who discarded it, when and why. Every replay,
-- failed replay and discard is kept in dead_letter_history, which `hrsync dead
-- show` prints; the history goes with its dead letter (an erasure deletes both;
-- the store turns foreign_keys on for every connection).
ALTER TABLE dead_letters ADD COLUMN discarded_at INTEGER;
ALTER TABLE dead_letters ADD COLUMN discarded_by TEXT NOT NULL DEFAULT '';
ALTER TABLE dead_letters ADD COLUMN discard_reason TEXT NOT NULL DEFAULT '';

-- action: 'replayed', 'replay_failed' or 'discarded'; actor: who (may be empty
-- for a replay); detail: the fact recorded, the error, or the reason.
CREATE TABLE dead_letter_history (
	id             INTEGER     PRIMARY KEY AUTOINCREMENT,
	dead_letter_id INTEGER     NOT NULL REFERENCES dead_letters (id) ON DELETE CASCADE,
	at             INTEGER     NOT NULL,
	action         TEXT        NOT NULL,
	actor          TEXT        NOT NULL DEFAULT '',
	detail         TEXT        NOT NULL DEFAULT ''
);
CREATE INDEX dead_letter_history_letter ON dead_letter_history (dead_letter_id, id);

-- Replays made before this migration keep their time; who and what were not recorded.
INSERT INTO dead_letter_history (dead_letter_id, at, action, detail)
	SELECT id, replayed_at, 'replayed', 'replayed before migration 0015, which began the history'
	FROM dead_letters WHERE replayed_at IS NOT NULL ORDER BY id;
