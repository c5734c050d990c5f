-- 0001_init (PostgreSQL): facts, workers, links, audit, reviews, dead letters.
-- Instants are TIMESTAMPTZ; the Go side always writes UTC.

CREATE TABLE facts (
	source             TEXT        NOT NULL,
	id                 TEXT        NOT NULL,
	feed               TEXT        NOT NULL,
	worker_id          TEXT        NOT NULL,
	kind               TEXT        NOT NULL,
	effective_at       TIMESTAMPTZ NOT NULL,
	event_time         TIMESTAMPTZ NOT NULL,
	email              TEXT        NOT NULL DEFAULT '',
	given_name         TEXT        NOT NULL DEFAULT '',
	family_name        TEXT        NOT NULL DEFAULT '',
	employee_number    TEXT        NOT NULL DEFAULT '',
	org_unit           TEXT        NOT NULL DEFAULT '',
	job_title          TEXT        NOT NULL DEFAULT '',
	manager_id         TEXT        NOT NULL DEFAULT '',
	locale             TEXT        NOT NULL DEFAULT '',
	reason             TEXT        NOT NULL DEFAULT '',
	previous_worker_id TEXT        NOT NULL DEFAULT '',
	recorded_at        TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (source, id)
);
CREATE INDEX facts_worker ON facts (feed, worker_id);

-- workers holds one row per (feed, worker id) with its convergence state.
-- version counts recorded facts (Complete compares it with the claim's);
-- superseded_by is the worker id (same feed) that took this person over.
CREATE TABLE workers (
	feed          TEXT        NOT NULL,
	worker_id     TEXT        NOT NULL,
	version       BIGINT      NOT NULL DEFAULT 0,
	attempts      INTEGER     NOT NULL DEFAULT 0,
	due_at        TIMESTAMPTZ,
	lease_owner   TEXT,
	lease_until   TIMESTAMPTZ,
	superseded_by TEXT,
	PRIMARY KEY (feed, worker_id)
);
CREATE INDEX workers_due ON workers (due_at) WHERE due_at IS NOT NULL AND superseded_by IS NULL;
CREATE INDEX workers_superseded_by ON workers (feed, superseded_by) WHERE superseded_by IS NOT NULL;

-- links ties a worker to its LMS account; an account belongs to one worker at most.
CREATE TABLE links (
	feed       TEXT        NOT NULL,
	worker_id  TEXT        NOT NULL,
	account_id TEXT        NOT NULL UNIQUE,
	linked_at  TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (feed, worker_id)
);

CREATE TABLE audit (
	id         BIGSERIAL   PRIMARY KEY,
	at         TIMESTAMPTZ NOT NULL,
	feed       TEXT        NOT NULL,
	worker_id  TEXT        NOT NULL,
	account_id TEXT        NOT NULL DEFAULT '',
	action     TEXT        NOT NULL,
	outcome    TEXT        NOT NULL,
	detail     TEXT        NOT NULL DEFAULT '',
	fact_ids   TEXT        NOT NULL DEFAULT '[]'
);
CREATE INDEX audit_at ON audit (at);
CREATE INDEX audit_worker ON audit (feed, worker_id, at);
CREATE INDEX audit_account ON audit (account_id, at);

CREATE TABLE reviews (
	id          BIGSERIAL   PRIMARY KEY,
	at          TIMESTAMPTZ NOT NULL,
	feed        TEXT        NOT NULL,
	worker_id   TEXT        NOT NULL,
	reason      TEXT        NOT NULL,
	candidates  TEXT        NOT NULL DEFAULT '[]',
	resolved_at TIMESTAMPTZ,
	note        TEXT        NOT NULL DEFAULT ''
);
-- At most one open review per worker and reason: converging again must not pile up items.
CREATE UNIQUE INDEX reviews_open ON reviews (feed, worker_id, reason) WHERE resolved_at IS NULL;

CREATE TABLE dead_letters (
	id          BIGSERIAL   PRIMARY KEY,
	at          TIMESTAMPTZ NOT NULL,
	feed        TEXT        NOT NULL DEFAULT '',
	subject     TEXT        NOT NULL DEFAULT '',
	headers     BYTEA,
	data        BYTEA,
	reason      TEXT        NOT NULL,
	replayed_at TIMESTAMPTZ
);
CREATE INDEX dead_letters_feed ON dead_letters (feed, id);
