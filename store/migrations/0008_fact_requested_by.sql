-- 0008: who asked for an erasure (facts of kind erasure_requested; '' for every other kind).
ALTER TABLE facts ADD COLUMN requested_by TEXT NOT NULL DEFAULT '';
