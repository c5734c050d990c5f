-- 0014: the account's active state after a create, deactivate or reactivate that
-- succeeded ('true' or 'false'; '' for other rows and rows written before). The
-- reconciler and the converger read it to tell an account hrsync left inactive
-- from one an admin deactivated, instead of reading the audit's prose.
ALTER TABLE audit ADD COLUMN active_after TEXT NOT NULL DEFAULT '';
