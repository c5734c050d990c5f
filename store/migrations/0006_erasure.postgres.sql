-- 0006 (PostgreSQL): GDPR erasure tombstones. One row per erased (feed, worker id),
-- keyed by HMAC-SHA256(erasure key, "feed:worker_id") in hex, never the worker id.
-- key_check is HMAC-SHA256(key, "hrsync erasure key check"): a store opened with
-- another key can tell. reason and erased_by are the operator's words.
CREATE TABLE erasures (
	hash       TEXT        PRIMARY KEY,
	feed       TEXT        NOT NULL,
	at         TIMESTAMPTZ NOT NULL,
	reason     TEXT        NOT NULL DEFAULT '',
	erased_by  TEXT        NOT NULL DEFAULT '',
	key_check  TEXT        NOT NULL
);
