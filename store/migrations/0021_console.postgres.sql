-- 0021 (postgres): the admin console.
--
-- A sample batch of a live or upload hold: hold_workers.sampled_at is when a
-- person let this held removal run before the decision on the rest (hrsync
-- holds approve --sample-batch, the console's sample batch); NULL: it waits
-- with the hold. A newer fact for the worker clears it: the sample approved
-- the removal the approver saw.
ALTER TABLE hold_workers ADD COLUMN sampled_at TIMESTAMPTZ;

-- console_sessions: the admin console's sign-ins, so that they survive a
-- restart and work on every replica behind one address. id_hash is the
-- SHA-256 (hex) of the session cookie's value: the cookie itself is never
-- stored, so a reader of this table cannot sign in with a row. csrf is the
-- session's form token; user_name, role and feeds (JSON) who signed in and
-- what they may do.
CREATE TABLE console_sessions (
	id_hash     TEXT        PRIMARY KEY,
	user_name   TEXT        NOT NULL,
	role        TEXT        NOT NULL,
	feeds       TEXT        NOT NULL DEFAULT '[]',
	csrf        TEXT        NOT NULL,
	created_at  TIMESTAMPTZ NOT NULL,
	expires_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);
