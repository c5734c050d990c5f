-- 0005 (PostgreSQL): every audit row names the whole plan it was part of.
ALTER TABLE audit ADD COLUMN plan TEXT NOT NULL DEFAULT '';
