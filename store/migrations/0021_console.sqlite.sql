-- 0021 (sqlite): a sample batch of a live or upload hold. sampled_at is when a
-- person let this held removal run before the decision on the rest (hrsync holds
-- approve --sample-batch, the console's sample batch); NULL: it waits with the
-- hold. A newer fact for the worker clears it: the sample approved the removal
-- the approver saw.
ALTER TABLE hold_workers ADD COLUMN sampled_at INTEGER;
