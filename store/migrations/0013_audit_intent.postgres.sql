-- 0013 (PostgreSQL): the audit records an LMS call before it is made (outcome
-- pending) and its outcome after, so that a crash between the call and its commit
-- leaves a row to resolve, never none (docs/audit.md). The structured fields a
-- decision may read: the hold that allowed the action, its cause, and the
-- account's version before the call (to tell whether an update landed).
ALTER TABLE audit ADD COLUMN hold_id BIGINT NOT NULL DEFAULT 0;
ALTER TABLE audit ADD COLUMN cause TEXT NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN before_version TEXT NOT NULL DEFAULT '';
-- The converger looks up a batch's pending rows on every claim: few, by worker.
CREATE INDEX audit_pending ON audit (feed, worker_id) WHERE outcome = 'pending';
