-- 0005 (SQLite): every audit row names the whole plan it was part of.
ALTER TABLE audit ADD COLUMN plan TEXT NOT NULL DEFAULT '';
