-- 0016 (SQLite): a review item is resolved by a person, who is named
-- (`hrsync review resolve ID --reason TEXT --by NAME`). resolved_at and note (the
-- reason) exist since 0001; resolving also makes the worker due again, so that
-- the converger acts on the fix without a full reconcile.
ALTER TABLE reviews ADD COLUMN resolved_by TEXT NOT NULL DEFAULT '';
