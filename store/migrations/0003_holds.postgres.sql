-- holds (PostgreSQL): the safeguard's holds, the workers they hold, the removals of the
-- sliding window, and the active-account base of each feed's window.

-- holds are sets of removals that wait for a person: live (a window of events
-- crossed a threshold) or upload (a roster, held before it was published).
CREATE TABLE holds (
	id          BIGSERIAL   PRIMARY KEY,
	feed        TEXT        NOT NULL,
	kind        TEXT        NOT NULL,
	status      TEXT        NOT NULL DEFAULT 'open',
	reason      TEXT        NOT NULL DEFAULT '',
	active      INTEGER     NOT NULL DEFAULT 0,
	created_at  TIMESTAMPTZ     NOT NULL,
	decided_at  TIMESTAMPTZ,
	decided_by  TEXT        NOT NULL DEFAULT '',
	decision    TEXT        NOT NULL DEFAULT '',
	payload     BYTEA
);
-- One open live hold per feed collects every further removal of that feed.
CREATE UNIQUE INDEX holds_open_live ON holds (feed) WHERE kind = 'live' AND status = 'open';
CREATE INDEX holds_status ON holds (status, id);

-- hold_workers: version is the worker's fact version the hold is about (0: not
-- bound yet, uploads).
CREATE TABLE hold_workers (
	hold_id    BIGINT     NOT NULL REFERENCES holds (id),
	feed       TEXT        NOT NULL,
	worker_id  TEXT        NOT NULL,
	account_id TEXT        NOT NULL DEFAULT '',
	action     TEXT        NOT NULL,
	version    BIGINT     NOT NULL DEFAULT 0,
	name       TEXT        NOT NULL DEFAULT '',
	email      TEXT        NOT NULL DEFAULT '',
	added_at   TIMESTAMPTZ     NOT NULL,
	PRIMARY KEY (hold_id, feed, worker_id)
);
CREATE INDEX hold_workers_worker ON hold_workers (feed, worker_id);

-- removals: the latest removal decided for a worker, counted in the window unless
-- a hold approved it (hold_id).
CREATE TABLE removals (
	feed       TEXT        NOT NULL,
	worker_id  TEXT        NOT NULL,
	version    BIGINT     NOT NULL,
	at         TIMESTAMPTZ     NOT NULL,
	hold_id    BIGINT,
	PRIMARY KEY (feed, worker_id)
);
CREATE INDEX removals_at ON removals (feed, at);

-- safeguard_windows: the active accounts of a feed ('' for all feeds) when its
-- window was last measured.
CREATE TABLE safeguard_windows (
	scope      TEXT        PRIMARY KEY,
	active     INTEGER     NOT NULL,
	started_at TIMESTAMPTZ     NOT NULL
);
