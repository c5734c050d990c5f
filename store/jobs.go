package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/jmoiron/sqlx"
)

// Jobs: clean-up and offboarding holds with their items, and closed feeds. See
// connector/cleanup.go and connector/job.go.

var _ connector.JobStore = (*DB)(nil)

const jobItemColumns = `seq, account_id, action, version, feed, worker_id, user_name, email, created, activity, status, detail, done_at`

// OpenJobError is CreateJob's refusal of a second offboarding of a feed whose
// offboarding hold is still open or approved. It matches connector.ErrConflict.
type OpenJobError struct {
	Hold connector.Hold // the existing hold
}

func (e *OpenJobError) Error() string {
	return fmt.Sprintf("feed %s already has %s hold %d (%s, created %s)", e.Hold.Feed, e.Hold.Kind, e.Hold.ID, e.Hold.Status,
		e.Hold.CreatedAt.UTC().Format(time.RFC3339))
}

func (e *OpenJobError) Unwrap() error { return connector.ErrConflict }

// OffboardHold returns the feed's offboarding hold that is still open or
// approved (its run may not have finished), the newest if there were several;
// ok is false if there is none.
func (db *DB) OffboardHold(ctx context.Context, feed string) (h connector.Hold, ok bool, err error) {
	return db.offboardHold(ctx, db.x, feed)
}

func (db *DB) offboardHold(ctx context.Context, q sqlx.QueryerContext, feed string) (connector.Hold, bool, error) {
	var id int64
	err := sqlx.GetContext(ctx, q, &id, db.q(`SELECT id FROM holds WHERE kind = ? AND feed = ? AND status IN ('open', 'approved')
		ORDER BY id DESC LIMIT 1`), string(connector.HoldOffboard), feed)
	if errors.Is(err, sql.ErrNoRows) {
		return connector.Hold{}, false, nil
	}
	if err != nil {
		return connector.Hold{}, false, fmt.Errorf("store: offboarding hold of %s: %w", feed, err)
	}
	h, err := db.getHold(ctx, q, id)
	return h, err == nil, err
}

// CreateJob creates an open hold of a job kind with its items, in one transaction,
// and returns the hold's id. Items are numbered 1, 2, ... in the order given.
// A feed is offboarded once: while its offboarding hold is open or approved, a
// second one is refused with an *OpenJobError naming it (the check and the
// insert are serialised with every other hold decision).
func (db *DB) CreateJob(ctx context.Context, h connector.Hold, items []connector.JobItem) (int64, error) {
	if !h.Kind.IsJob() {
		return 0, fmt.Errorf("store: create job: kind %q: want cleanup or offboard", h.Kind)
	}
	if h.Feed != "" && !connector.ValidFeedName(h.Feed) {
		return 0, fmt.Errorf("store: create job: feed %q is not a feed name", h.Feed)
	}
	if len(items) == 0 {
		return 0, errors.New("store: create job: no items: there is nothing to hold")
	}
	created := h.CreatedAt
	if created.IsZero() {
		created = db.now()
	}
	var id int64
	err := db.inTx(ctx, func(tx *sqlx.Tx) error {
		if h.Kind == connector.HoldOffboard {
			if err := db.lockSafeguard(ctx, tx); err != nil {
				return err
			}
			prev, ok, err := db.offboardHold(ctx, tx, h.Feed)
			if err != nil {
				return err
			}
			if ok {
				return &OpenJobError{Hold: prev}
			}
		}
		if err := tx.QueryRowContext(ctx, db.q(`INSERT INTO holds (feed, kind, status, reason, active, created_at, payload, caused_by, approvals_needed)
			VALUES (?, ?, 'open', ?, ?, ?, ?, ?, ?) RETURNING id`), h.Feed, string(h.Kind), h.Reason, h.Counts.Active, db.ts(created), h.Payload,
			h.CausedBy, h.Needed()).Scan(&id); err != nil {
			return err
		}
		for start := 0; start < len(items); start += batchRows {
			end := min(start+batchRows, len(items))
			args := make([]any, 0, 14*(end-start))
			for i := start; i < end; i++ {
				it := items[i]
				act, err := json.Marshal(it.Activity)
				if err != nil {
					return err
				}
				args = append(args, id, i+1, it.AccountID, string(it.Action), it.Version, it.Worker.Feed, it.Worker.WorkerID,
					it.UserName, it.Email, db.tsOrNull(it.Created), string(act), string(connector.JobPending), "", nil)
			}
			if _, err := tx.ExecContext(ctx, db.q(`INSERT INTO job_items (hold_id, `+jobItemColumns+`) VALUES `+placeholders(end-start, 14)), args...); err != nil {
				return fmt.Errorf("items: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: create job: %w", err)
	}
	return id, nil
}

// AllowSample lets the first n of an open hold's removals run before the hold is
// decided: "test on a small group". For a job (clean-up, offboarding) they are
// its first n items, which hrsync holds run then runs. For a live or upload hold
// they are its first n people in key order (the order its page lists them),
// marked sampled: the safeguard allows their removals (ReserveRemoval, rule 2b)
// while the rest stay held; a live hold's sampled people are due now, and an
// upload's sampled leavers are published by the caller (roster.PublishSample).
// A sample can only grow, is refused to the person who caused the hold (four
// eyes), and is audited: one row for a job, one per sampled person otherwise.
func (db *DB) AllowSample(ctx context.Context, id int64, n int, by, reason string) (connector.Hold, error) {
	if strings.TrimSpace(by) == "" || strings.TrimSpace(reason) == "" {
		return connector.Hold{}, fmt.Errorf("store: sample of hold %d: who decides and why are required", id)
	}
	if n <= 0 {
		return connector.Hold{}, fmt.Errorf("store: sample of hold %d: the sample size must be positive, not %d", id, n)
	}
	var h connector.Hold
	err := db.inTx(ctx, func(tx *sqlx.Tx) error {
		// Serialised with ReserveRemoval: a sample changes what it allows.
		if err := db.lockSafeguard(ctx, tx); err != nil {
			return err
		}
		var err error
		if h, err = db.getHold(ctx, tx, id); err != nil {
			return err
		}
		switch {
		case h.Status != connector.HoldOpen:
			return fmt.Errorf("hold %d was %s by %s: %w", id, h.Status, h.DecidedBy, connector.ErrConflict)
		case n < h.Sample:
			return fmt.Errorf("hold %d already lets a sample of %d run; a sample can only grow", id, h.Sample)
		}
		if err := h.CheckApprover(by); err != nil {
			return err
		}
		n = min(n, h.Counts.Removals)
		if _, err := tx.ExecContext(ctx, db.q(`UPDATE holds SET sample_limit = ? WHERE id = ?`), n, id); err != nil {
			return err
		}
		now := db.now()
		if h.Kind.IsJob() {
			detail := fmt.Sprintf("hold %d: a sample of the first %d of %d accounts approved by %s: %s", id, n, h.Counts.Removals, by, reason)
			if err := db.insertAudit(ctx, tx, []connector.Completion{{Audit: []connector.AuditEntry{{At: now, Feed: h.Feed,
				Action: connector.ActionDelete, Outcome: connector.OutcomeApproved, Detail: detail, Plan: "sample"}}}}, now); err != nil {
				return err
			}
		} else if err := db.sampleWorkers(ctx, tx, h, n, by, reason, now); err != nil {
			return err
		}
		h.Sample = n
		return nil
	})
	if err != nil {
		return h, fmt.Errorf("store: sample of hold %d: %w", id, err)
	}
	return h, nil
}

// sampleWorkers marks the first n people of live or upload hold h, in key order,
// sampled at now (those marked before stay), audits each newly sampled one, and
// makes a live hold's due now, as DecideHold makes an approved hold's.
func (db *DB) sampleWorkers(ctx context.Context, tx *sqlx.Tx, h connector.Hold, n int, by, reason string, now time.Time) error {
	var have int
	if err := tx.GetContext(ctx, &have, db.q(`SELECT COUNT(*) FROM hold_workers WHERE hold_id = ? AND sampled_at IS NOT NULL`), h.ID); err != nil {
		return fmt.Errorf("count sample: %w", err)
	}
	if n <= have {
		return nil
	}
	if _, err := tx.ExecContext(ctx, db.q(`UPDATE hold_workers SET sampled_at = ?
		WHERE hold_id = ? AND (feed, worker_id) IN (SELECT feed, worker_id FROM hold_workers
			WHERE hold_id = ? AND sampled_at IS NULL ORDER BY feed, worker_id LIMIT ?)`), db.ts(now), h.ID, h.ID, n-have); err != nil {
		return fmt.Errorf("mark sample: %w", err)
	}
	detail := fmt.Sprintf("hold %d: in a sample batch of %d of %d people approved by %s: %s", h.ID, n, h.Counts.Removals, by, reason)
	at := "?"
	if db.backend == Postgres {
		at = "CAST(? AS TIMESTAMPTZ)"
	}
	if _, err := tx.ExecContext(ctx, db.q(`INSERT INTO audit (`+auditColumns+`)
		SELECT `+at+`, feed, worker_id, account_id, action, ?, ?, '[]', ? FROM hold_workers WHERE hold_id = ? AND sampled_at = ? ORDER BY feed, worker_id`),
		db.ts(now), string(connector.OutcomeApproved), detail, "sample", h.ID, db.ts(now)); err != nil {
		return fmt.Errorf("audit sample: %w", err)
	}
	if h.Kind == connector.HoldLive {
		if err := db.wakeHoldWorkers(ctx, tx, h.ID, true, now); err != nil {
			return err
		}
	}
	return nil
}

func scanJobItem(s scanner) (connector.JobItem, error) {
	var it connector.JobItem
	var action, status, act string
	var created, done instant
	err := s.Scan(&it.Seq, &it.AccountID, &action, &it.Version, &it.Worker.Feed, &it.Worker.WorkerID, &it.UserName, &it.Email,
		&created, &act, &status, &it.Detail, &done)
	if err != nil {
		return it, err
	}
	it.Action, it.Status, it.Created, it.DoneAt = connector.ActionKind(action), connector.JobItemStatus(status), created.T, done.ptr()
	if act != "" {
		if err := json.Unmarshal([]byte(act), &it.Activity); err != nil {
			return it, fmt.Errorf("item %d: activity: %w", it.Seq, err)
		}
	}
	return it, nil
}

func (db *DB) jobItems(ctx context.Context, where string, args ...any) ([]connector.JobItem, error) {
	rows, err := db.x.QueryContext(ctx, db.q(`SELECT `+jobItemColumns+` FROM job_items WHERE `+where), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []connector.JobItem
	for rows.Next() {
		it, err := scanJobItem(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	return out, rows.Err()
}

// PendingJobItems returns up to limit pending items of the hold with seq at most
// maxSeq (0: any), in seq order.
func (db *DB) PendingJobItems(ctx context.Context, hold int64, maxSeq, limit int) ([]connector.JobItem, error) {
	if maxSeq <= 0 {
		maxSeq = 1 << 30
	}
	out, err := db.jobItems(ctx, `hold_id = ? AND status = 'pending' AND seq <= ? ORDER BY seq LIMIT ?`, hold, maxSeq, max(limit, 0))
	if err != nil {
		return nil, fmt.Errorf("store: pending items of hold %d: %w", hold, err)
	}
	return out, nil
}

// JobItems returns up to limit items of the hold after seq after, in seq order
// (limit 0: all).
func (db *DB) JobItems(ctx context.Context, hold int64, after, limit int) ([]connector.JobItem, error) {
	out, err := db.jobItems(ctx, `hold_id = ? AND seq > ? ORDER BY seq`+limitClause(limit), hold, after)
	if err != nil {
		return nil, fmt.Errorf("store: items of hold %d: %w", hold, err)
	}
	return out, nil
}

// FinishJobItems records the end of items and their audit rows in one transaction;
// audit[i] is items[i]'s row. Only pending items change: an item another run (at
// the same time, by mistake) finished first stays as it ended, and its audit row
// is not written twice.
func (db *DB) FinishJobItems(ctx context.Context, hold int64, items []connector.JobItem, audit []connector.AuditEntry) error {
	if len(audit) != 0 && len(audit) != len(items) {
		return fmt.Errorf("store: finish items of hold %d: %d audit rows for %d items", hold, len(audit), len(items))
	}
	err := db.inTx(ctx, func(tx *sqlx.Tx) error {
		now := db.now()
		var rows []connector.AuditEntry
		for i, it := range items {
			if it.Status == connector.JobPending || it.Status == "" {
				return fmt.Errorf("item %d of account %s: no end status", it.Seq, it.AccountID)
			}
			done := now
			if it.DoneAt != nil {
				done = *it.DoneAt
			}
			res, err := tx.ExecContext(ctx, db.q(`UPDATE job_items SET status = ?, detail = ?, done_at = ?
				WHERE hold_id = ? AND seq = ? AND status = 'pending'`), string(it.Status), it.Detail, db.ts(done), hold, it.Seq)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 0 {
				continue // finished already
			}
			if len(audit) > 0 {
				rows = append(rows, audit[i])
			}
			if it.Status == connector.JobDone && (it.Action == connector.ActionDelete || it.Action == connector.ActionAnonymise) {
				// Deleted or anonymised: the account mirror's copy goes too
				// (migration 0020), with the personal data it held.
				if _, err := tx.ExecContext(ctx, db.q(`DELETE FROM lms_mirror WHERE account_id = ?`), it.AccountID); err != nil {
					return err
				}
			}
			if it.Action == connector.ActionAnonymise && it.Status == connector.JobDone {
				// The account is anonymised: its old name and email go from the job too.
				if _, err := tx.ExecContext(ctx, db.q(`UPDATE job_items SET user_name = '', email = '' WHERE hold_id = ? AND seq = ?`), hold, it.Seq); err != nil {
					return err
				}
			}
		}
		return db.insertAudit(ctx, tx, []connector.Completion{{Audit: rows}}, now)
	})
	if err != nil {
		return fmt.Errorf("store: finish items of hold %d: %w", hold, err)
	}
	return nil
}

// JobCounts returns the hold's items counted by status.
func (db *DB) JobCounts(ctx context.Context, hold int64) (map[connector.JobItemStatus]int, error) {
	rows, err := db.x.QueryContext(ctx, db.q(`SELECT status, COUNT(*) FROM job_items WHERE hold_id = ? GROUP BY status`), hold)
	if err != nil {
		return nil, fmt.Errorf("store: counts of hold %d: %w", hold, err)
	}
	defer rows.Close()
	out := map[connector.JobItemStatus]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		out[connector.JobItemStatus(st)] = n
	}
	return out, rows.Err()
}

// ClosedFeed is a feed that was offboarded.
type ClosedFeed struct {
	Feed     string    `json:"feed" db:"feed"`
	ClosedAt time.Time `json:"closed_at"`
	ClosedBy string    `json:"closed_by" db:"closed_by"`
	Reason   string    `json:"reason" db:"reason"`
	HoldID   int64     `json:"hold_id,omitempty"`
}

// CloseFeed records that feed is closed. Closing a closed feed changes nothing.
func (db *DB) CloseFeed(ctx context.Context, c ClosedFeed) error {
	if !connector.ValidFeedName(c.Feed) {
		return fmt.Errorf("store: close feed: %q is not a feed name", c.Feed)
	}
	at := c.ClosedAt
	if at.IsZero() {
		at = db.now()
	}
	var hold any
	if c.HoldID != 0 {
		hold = c.HoldID
	}
	_, err := db.x.ExecContext(ctx, db.q(`INSERT INTO closed_feeds (feed, closed_at, closed_by, reason, hold_id) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (feed) DO NOTHING`), c.Feed, db.ts(at), c.ClosedBy, c.Reason, hold)
	if err != nil {
		return fmt.Errorf("store: close feed %s: %w", c.Feed, err)
	}
	return nil
}

// FeedClosed returns the closure of feed, or ok=false if it is open.
func (db *DB) FeedClosed(ctx context.Context, feed string) (c ClosedFeed, ok bool, err error) {
	var at instant
	var hold *int64
	err = db.x.QueryRowContext(ctx, db.q(`SELECT feed, closed_at, closed_by, reason, hold_id FROM closed_feeds WHERE feed = ?`), feed).
		Scan(&c.Feed, &at, &c.ClosedBy, &c.Reason, &hold)
	if errors.Is(err, sql.ErrNoRows) {
		return c, false, nil
	}
	if err != nil {
		return c, false, fmt.Errorf("store: feed %s closed?: %w", feed, err)
	}
	c.ClosedAt = at.T
	if hold != nil {
		c.HoldID = *hold
	}
	return c, true, nil
}

// ClosedFeedError is the permanent error of RecordFacts for a fact of a closed
// (offboarded) feed: the consumer dead-letters it with this reason.
type ClosedFeedError struct {
	Fact     string // source#id
	Feed     string
	ClosedAt time.Time
}

func (e *ClosedFeedError) Error() string {
	return fmt.Sprintf("store: fact %s: feed %s was closed on %s (partner offboarded); its events are refused; see docs/cleanup.md",
		e.Fact, e.Feed, e.ClosedAt.UTC().Format(time.DateOnly))
}

// checkClosed returns a connector.Permanent *ClosedFeedError if a fact is of a
// closed feed. It runs in the recording transaction.
func (db *DB) checkClosed(ctx context.Context, tx *sqlx.Tx, facts []connector.Fact) error {
	// One statement per batch: closed feeds are few (usually none).
	rows, err := tx.QueryContext(ctx, `SELECT feed, closed_at FROM closed_feeds`)
	if err != nil {
		return fmt.Errorf("store: closed feeds: %w", err)
	}
	defer rows.Close()
	closed := map[string]time.Time{}
	for rows.Next() {
		var feed string
		var at instant
		if err := rows.Scan(&feed, &at); err != nil {
			return fmt.Errorf("store: closed feeds: %w", err)
		}
		closed[feed] = at.T
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: closed feeds: %w", err)
	}
	for _, f := range facts {
		if at, ok := closed[f.Feed]; ok {
			return connector.Permanent(&ClosedFeedError{Fact: f.Source + "#" + f.ID, Feed: f.Feed, ClosedAt: at})
		}
	}
	return nil
}

// SetJobPayload replaces the payload of job hold id: its report summary, which
// names the report directory, and that directory is named after the hold, so it
// is known only once the hold exists. Returns an error matching
// connector.ErrNotFound if there is no job hold id.
func (db *DB) SetJobPayload(ctx context.Context, id int64, payload []byte) error {
	res, err := db.x.ExecContext(ctx, db.q(`UPDATE holds SET payload = ? WHERE id = ? AND kind IN (?, ?)`),
		payload, id, string(connector.HoldCleanup), string(connector.HoldOffboard))
	if err != nil {
		return fmt.Errorf("store: payload of hold %d: %w", id, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return notFound("job hold %d", id)
	}
	return nil
}
