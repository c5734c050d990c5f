package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/jmoiron/sqlx"
)

// DefaultDeadLetterMaxBody is the default of DB.DeadLetterMaxBody: the decoder's
// default limit on a message body (events.DefaultMaxDataBytes), so a message
// refused for anything but its size is kept whole.
const DefaultDeadLetterMaxBody = 64 << 10

// DeadLetter stores a message that could not be applied and returns its id.
// A zero At defaults to the store clock. The store records the size and SHA-256
// of the whole body, and keeps at most DeadLetterMaxBody bytes of the body and
// of the headers each, marking the row Truncated if it cut either.
func (db *DB) DeadLetter(ctx context.Context, d connector.DeadLetter) (int64, error) {
	if d.At.IsZero() {
		d.At = db.now()
	}
	max := db.DeadLetterMaxBody
	if max <= 0 {
		max = DefaultDeadLetterMaxBody
	}
	sum := sha256.Sum256(d.Data)
	d.DataBytes, d.DataSHA256 = int64(len(d.Data)), hex.EncodeToString(sum[:])
	if d.Data == nil {
		d.DataSHA256 = ""
	}
	if len(d.Data) > max {
		d.Data, d.Truncated = d.Data[:max], true
	}
	if len(d.Headers) > max {
		d.Headers, d.Truncated = d.Headers[:max], true
	}
	var id int64
	err := db.x.QueryRowContext(ctx, db.q(`INSERT INTO dead_letters (at, feed, subject, headers, data, reason, replayed_at, stream, stream_seq,
			data_bytes, data_sha256, truncated)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (stream, stream_seq) WHERE stream_seq > 0 DO NOTHING RETURNING id`),
		db.ts(d.At), d.Feed, d.Subject, d.Headers, d.Data, d.Reason, db.tsPtr(d.ReplayedAt), d.Stream, int64(d.StreamSeq),
		d.DataBytes, d.DataSHA256, d.Truncated).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		// Already stored: a redelivery of the same JetStream message.
		err = db.x.GetContext(ctx, &id, db.q(`SELECT id FROM dead_letters WHERE stream = ? AND stream_seq = ?`), d.Stream, int64(d.StreamSeq))
	}
	if err != nil {
		return 0, fmt.Errorf("store: dead letter: %w", err)
	}
	return id, nil
}

func (db *DB) tsPtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return db.ts(*t)
}

// DeadLetterFilter selects dead letters. The zero value lists the open ones:
// neither replayed nor discarded.
type DeadLetterFilter struct {
	Feed string // only this feed; empty for all
	// Status selects by status: connector.DeadLetterOpen (the default),
	// DeadLetterReplayed, DeadLetterDiscarded, or DeadLetterAll.
	Status string
	Limit  int // at most this many, the newest; 0 for no limit
}

// DeadLetterAll is the DeadLetterFilter.Status that selects every dead letter.
const DeadLetterAll = "all"

// DeadLetterStatuses are the values DeadLetterFilter.Status takes, for help and
// error messages.
var DeadLetterStatuses = []string{connector.DeadLetterOpen, connector.DeadLetterReplayed, connector.DeadLetterDiscarded, DeadLetterAll}

const deadLetterSelect = `SELECT id, at, feed, subject, headers, data, reason, replayed_at, stream, stream_seq,
	data_bytes, data_sha256, truncated, pruned_at, discarded_at, discarded_by, discard_reason FROM dead_letters`

// ListDeadLetters returns the dead letters that match f, newest first (by id,
// the order the store took them in): with a Limit, the newest Limit of them.
// An unknown Status is an error that lists the known ones.
func (db *DB) ListDeadLetters(ctx context.Context, f DeadLetterFilter) ([]connector.DeadLetter, error) {
	var where []string
	var args []any
	if f.Feed != "" {
		where, args = append(where, "feed = ?"), append(args, f.Feed)
	}
	status := f.Status
	switch status {
	case "", connector.DeadLetterOpen:
		where = append(where, "replayed_at IS NULL", "discarded_at IS NULL")
	case connector.DeadLetterReplayed:
		where = append(where, "replayed_at IS NOT NULL")
	case connector.DeadLetterDiscarded:
		where = append(where, "discarded_at IS NOT NULL")
	case DeadLetterAll:
	default:
		return nil, fmt.Errorf("store: list dead letters: status %q: want one of %s", status, strings.Join(DeadLetterStatuses, ", "))
	}
	query := deadLetterSelect + whereClause(where) + ` ORDER BY id DESC` + limitClause(f.Limit)
	rows, err := db.x.QueryContext(ctx, db.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("store: list dead letters: %w", err)
	}
	defer rows.Close()
	var out []connector.DeadLetter
	for rows.Next() {
		d, err := scanDeadLetter(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list dead letters: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list dead letters: %w", err)
	}
	return out, nil
}

// GetDeadLetter returns the dead letter id, or an error matching connector.ErrNotFound.
func (db *DB) GetDeadLetter(ctx context.Context, id int64) (connector.DeadLetter, error) {
	d, err := scanDeadLetter(db.x.QueryRowContext(ctx, db.q(deadLetterSelect+` WHERE id = ?`), id))
	if err != nil {
		return d, noRows(err, "dead letter %d", id)
	}
	return d, nil
}

// MarkDeadLetterReplayed records that the dead letter id was replayed at at,
// with a line in its history. ReplayDeadLetter records the fact and the replay
// in one transaction, and is what replays should use. Returns an error matching
// connector.ErrNotFound if there is no such message, connector.ErrConflict if it
// was discarded (a discarded dead letter is never replayed).
func (db *DB) MarkDeadLetterReplayed(ctx context.Context, id int64, at time.Time) error {
	err := db.inTx(ctx, func(tx *sqlx.Tx) error {
		d, err := db.lockDeadLetter(ctx, tx, id)
		if err != nil {
			return err
		}
		if d.DiscardedAt != nil {
			return closedDeadLetter(d)
		}
		if _, err := tx.ExecContext(ctx, db.q(`UPDATE dead_letters SET replayed_at = ? WHERE id = ?`), db.ts(at), id); err != nil {
			return err
		}
		return db.deadLetterHistoryTx(ctx, tx, id, at, DeadLetterReplayedAction, "", "replayed")
	})
	if err != nil && !errors.Is(err, connector.ErrNotFound) {
		return fmt.Errorf("store: mark dead letter %d replayed: %w", id, err)
	}
	return err
}

type scanner interface{ Scan(dest ...any) error }

func scanDeadLetter(s scanner) (connector.DeadLetter, error) {
	var d connector.DeadLetter
	var at, replayed, pruned instant
	var seq int64
	var discarded instant
	if err := s.Scan(&d.ID, &at, &d.Feed, &d.Subject, &d.Headers, &d.Data, &d.Reason, &replayed, &d.Stream, &seq,
		&d.DataBytes, &d.DataSHA256, &d.Truncated, &pruned, &discarded, &d.DiscardedBy, &d.DiscardReason); err != nil {
		return connector.DeadLetter{}, err
	}
	d.At, d.ReplayedAt, d.StreamSeq, d.PrunedAt = at.T, replayed.ptr(), uint64(seq), pruned.ptr()
	d.DiscardedAt = discarded.ptr()
	return d, nil
}

// PruneDeadLetters drops the raw message (body and headers) of every dead letter
// stored before before, keeping the row: time, feed, subject, reason, stream
// position, and the body's size and SHA-256. It stamps pruned_at with the store
// clock and returns how many rows it pruned; rows pruned before are not counted.
// One statement: a crash leaves every row either pruned or whole.
func (db *DB) PruneDeadLetters(ctx context.Context, before time.Time) (int, error) {
	res, err := db.x.ExecContext(ctx, db.q(`UPDATE dead_letters SET data = NULL, headers = NULL, pruned_at = ?
		WHERE at < ? AND pruned_at IS NULL`), db.ts(db.now()), db.ts(before))
	if err != nil {
		return 0, fmt.Errorf("store: prune dead letters: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("store: prune dead letters: %w", err)
	}
	return int(n), nil
}

// ReviewFilter selects open reviews.
type ReviewFilter struct {
	Feed  string // only this feed; empty for all
	Limit int    // at most this many; 0 for no limit
}

const reviewSelect = `SELECT id, at, feed, worker_id, reason, candidates, resolved_at, resolved_by, note FROM reviews`

// ListReviews returns the open (unresolved) reviews that match f, oldest first.
func (db *DB) ListReviews(ctx context.Context, f ReviewFilter) ([]connector.Review, error) {
	where := []string{"resolved_at IS NULL"}
	var args []any
	if f.Feed != "" {
		where, args = append(where, "feed = ?"), append(args, f.Feed)
	}
	query := reviewSelect + whereClause(where) + ` ORDER BY id` + limitClause(f.Limit)
	rows, err := db.x.QueryContext(ctx, db.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("store: list reviews: %w", err)
	}
	defer rows.Close()
	var out []connector.Review
	for rows.Next() {
		r, err := scanReview(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list reviews: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list reviews: %w", err)
	}
	return out, nil
}

// GetReview returns the review id, open or resolved, or an error matching
// connector.ErrNotFound.
func (db *DB) GetReview(ctx context.Context, id int64) (connector.Review, error) {
	r, err := scanReview(db.x.QueryRowContext(ctx, db.q(reviewSelect+` WHERE id = ?`), id))
	if err != nil {
		return r, noRows(err, "review %d", id)
	}
	return r, nil
}

func scanReview(s scanner) (connector.Review, error) {
	var r connector.Review
	var at, resolved instant
	var cands string
	if err := s.Scan(&r.ID, &at, &r.Feed, &r.WorkerID, &r.Reason, &cands, &resolved, &r.ResolvedBy, &r.Resolution); err != nil {
		return connector.Review{}, err
	}
	r.At, r.ResolvedAt = at.T, resolved.ptr()
	var err error
	if r.Candidates, err = parseList(cands); err != nil {
		return connector.Review{}, fmt.Errorf("review %d: candidates: %w", r.ID, err)
	}
	return r, nil
}

// AuditFilter selects audit entries. Empty fields do not filter.
type AuditFilter struct {
	Feed      string
	WorkerID  string
	AccountID string
	Action    connector.ActionKind
	Since     time.Time // entries at or after Since
	Until     time.Time // entries before Until
	Limit     int       // at most this many; 0 for no limit
}

// ListAudit returns the audit entries that match f, newest first.
func (db *DB) ListAudit(ctx context.Context, f AuditFilter) ([]connector.AuditEntry, error) {
	var where []string
	var args []any
	add := func(cond string, arg any) { where, args = append(where, cond), append(args, arg) }
	if f.Feed != "" {
		add("feed = ?", f.Feed)
	}
	if f.WorkerID != "" {
		add("worker_id = ?", f.WorkerID)
	}
	if f.AccountID != "" {
		add("account_id = ?", f.AccountID)
	}
	if f.Action != "" {
		add("action = ?", string(f.Action))
	}
	if !f.Since.IsZero() {
		add("at >= ?", db.ts(f.Since))
	}
	if !f.Until.IsZero() {
		add("at < ?", db.ts(f.Until))
	}
	query := `SELECT id, at, feed, worker_id, account_id, action, outcome, detail, fact_ids, plan, hold_id, cause, before_version FROM audit` +
		whereClause(where) + ` ORDER BY at DESC, id DESC` + limitClause(f.Limit)
	rows, err := db.x.QueryContext(ctx, db.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("store: list audit: %w", err)
	}
	defer rows.Close()
	var out []connector.AuditEntry
	for rows.Next() {
		var a connector.AuditEntry
		var at instant
		var ids string
		if err := rows.Scan(&a.ID, &at, &a.Feed, &a.WorkerID, &a.AccountID, &a.Action, &a.Outcome, &a.Detail, &ids, &a.Plan, &a.HoldID, &a.Cause, &a.Before); err != nil {
			return nil, fmt.Errorf("store: list audit: %w", err)
		}
		a.At = at.T
		if a.FactIDs, err = parseList(ids); err != nil {
			return nil, fmt.Errorf("store: audit %d: fact ids: %w", a.ID, err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list audit: %w", err)
	}
	return out, nil
}

// Counts is a summary of the store, for status output and metrics.
type Counts struct {
	Facts       int // recorded facts
	Workers     int // known workers, superseded ones included
	Due         int // workers with a due time, now or later (not superseded)
	DeadLetters int // open dead letters: neither replayed nor discarded
	OpenReviews int // reviews not yet resolved
	Links       int // worker-to-account links
}

// Counts returns the summary counts.
func (db *DB) Counts(ctx context.Context) (Counts, error) {
	var c Counts
	err := db.x.QueryRowContext(ctx, `SELECT
		(SELECT COUNT(*) FROM facts),
		(SELECT COUNT(*) FROM workers),
		(SELECT COUNT(*) FROM workers WHERE due_at IS NOT NULL AND superseded_by IS NULL),
		(SELECT COUNT(*) FROM dead_letters WHERE replayed_at IS NULL AND discarded_at IS NULL),
		(SELECT COUNT(*) FROM reviews WHERE resolved_at IS NULL),
		(SELECT COUNT(*) FROM links)`).Scan(&c.Facts, &c.Workers, &c.Due, &c.DeadLetters, &c.OpenReviews, &c.Links)
	if err != nil {
		return c, fmt.Errorf("store: counts: %w", err)
	}
	return c, nil
}

func whereClause(conds []string) string {
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}

func limitClause(n int) string {
	if n <= 0 {
		return ""
	}
	return fmt.Sprintf(" LIMIT %d", n)
}
