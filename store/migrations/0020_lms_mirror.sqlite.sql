-- 0020 (SQLite): the account mirror (issue #12, docs/design.md "The account
-- mirror"): the last hrsync saw of each LMS account it read or wrote, refreshed
-- by reads, by every write's answer and by every reconciliation page. It saves
-- reads and never decides an outcome on its own (connector/mirror.go). The
-- columns are the account's keys, for people who look; account holds the whole
-- account as JSON (connector.Account), which is what hrsync reads back.
CREATE TABLE lms_mirror (
    account_id      TEXT PRIMARY KEY,
    external_id     TEXT NOT NULL DEFAULT '',
    user_name       TEXT NOT NULL DEFAULT '',
    email           TEXT NOT NULL DEFAULT '',
    employee_number TEXT NOT NULL DEFAULT '',
    active          INTEGER NOT NULL,
    version         TEXT NOT NULL DEFAULT '',
    organization    TEXT NOT NULL DEFAULT '',
    account         TEXT NOT NULL,
    seen_at         INTEGER NOT NULL
);
