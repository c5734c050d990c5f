-- 0017 (PostgreSQL): an upload applies its valid rows and reports the others, so its
-- record keeps how many rows were not applied, how many people a snapshot kept
-- because their row was invalid (unknown, not absent), how many leavers it
-- withheld because a row named no one, and the per-row report (JSON: the
-- problems with line, column, reason, fix and effect) that the admin API and
-- `hrsync roster report` hand out.
ALTER TABLE uploads ADD COLUMN invalid INTEGER NOT NULL DEFAULT 0;
ALTER TABLE uploads ADD COLUMN kept INTEGER NOT NULL DEFAULT 0;
ALTER TABLE uploads ADD COLUMN withheld INTEGER NOT NULL DEFAULT 0;
ALTER TABLE uploads ADD COLUMN report TEXT NOT NULL DEFAULT '';
