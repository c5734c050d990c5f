-- 0019 (postgres): four eyes on holds. caused_by is who caused a hold (the uploader of
-- a held roster, who started a clean-up or offboarding; empty for live holds),
-- who may not approve it. approvals_needed is how many different people must
-- approve (holds.approvals in the configuration file); hold_approvals keeps each
-- approval given while more are needed, so that nobody approves twice.
ALTER TABLE holds ADD COLUMN caused_by TEXT NOT NULL DEFAULT '';
ALTER TABLE holds ADD COLUMN approvals_needed INTEGER NOT NULL DEFAULT 1;
CREATE TABLE hold_approvals (
	hold_id     BIGINT      NOT NULL REFERENCES holds (id),
	approver    TEXT        NOT NULL,
	at          TIMESTAMPTZ NOT NULL,
	reason      TEXT        NOT NULL DEFAULT '',
	PRIMARY KEY (hold_id, approver)
);
