-- 0004 (PostgreSQL): roster uploads. Every upload is kept with its file hash, row
-- counts, who sent it and its outcome (published, held, rejected).
CREATE TABLE uploads (
	id         BIGSERIAL   PRIMARY KEY,
	at         TIMESTAMPTZ NOT NULL,
	feed       TEXT        NOT NULL,
	mode       TEXT        NOT NULL,
	filename   TEXT        NOT NULL DEFAULT '',
	sha256     TEXT        NOT NULL,
	uploaded_by TEXT       NOT NULL DEFAULT '',
	via        TEXT        NOT NULL DEFAULT '',
	rows_total INTEGER     NOT NULL DEFAULT 0,
	active     INTEGER     NOT NULL DEFAULT 0,
	hires      INTEGER     NOT NULL DEFAULT 0,
	rehires    INTEGER     NOT NULL DEFAULT 0,
	leavers    INTEGER     NOT NULL DEFAULT 0,
	updates    INTEGER     NOT NULL DEFAULT 0,
	unchanged  INTEGER     NOT NULL DEFAULT 0,
	outcome    TEXT        NOT NULL,
	hold_id    BIGINT,
	detail     TEXT        NOT NULL DEFAULT ''
);
CREATE INDEX uploads_feed ON uploads (feed, id);
