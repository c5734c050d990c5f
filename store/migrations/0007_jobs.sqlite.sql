-- 0007 (SQLite): clean-up and offboarding jobs, and closed feeds.
--
-- A job is a hold (kind cleanup or offboard) whose items are LMS accounts to
-- delete or anonymise, in the order of seq. Before the hold is approved, a person
-- may let a sample run: items with seq <= holds.sample_limit. Each item ends done,
-- skipped (it became active since the report, changed, or is linked to someone
-- employed) or failed, with a detail in words; pending items are what a resumed
-- run picks up. activity is the item's activity as the report saw it (JSON).
ALTER TABLE holds ADD COLUMN sample_limit INTEGER NOT NULL DEFAULT 0;

CREATE TABLE job_items (
	hold_id    INTEGER     NOT NULL REFERENCES holds (id),
	seq        INTEGER     NOT NULL,
	account_id TEXT        NOT NULL,
	action     TEXT        NOT NULL,
	version    TEXT        NOT NULL DEFAULT '',
	feed       TEXT        NOT NULL DEFAULT '',
	worker_id  TEXT        NOT NULL DEFAULT '',
	user_name  TEXT        NOT NULL DEFAULT '',
	email      TEXT        NOT NULL DEFAULT '',
	created    INTEGER,
	activity   TEXT        NOT NULL DEFAULT '',
	status     TEXT        NOT NULL DEFAULT 'pending',
	detail     TEXT        NOT NULL DEFAULT '',
	done_at    INTEGER,
	PRIMARY KEY (hold_id, seq)
);
CREATE UNIQUE INDEX job_items_account ON job_items (hold_id, account_id);
CREATE INDEX job_items_pending ON job_items (hold_id, status, seq);

-- closed_feeds: feeds that were offboarded. Their events are dead-lettered and
-- their roster uploads and tokens refused.
CREATE TABLE closed_feeds (
	feed       TEXT        PRIMARY KEY,
	closed_at  INTEGER     NOT NULL,
	closed_by  TEXT        NOT NULL DEFAULT '',
	reason     TEXT        NOT NULL DEFAULT '',
	hold_id    INTEGER
);
