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

// DeadLetterFilter selects dead letters. The zero value lists every message not
// yet replayed.
type DeadLetterFilter struct {
	Feed            string // only this feed; empty for all
	IncludeReplayed bool   // also list messages already replayed
	Limit           int    // at most this many; 0 for no limit
}

const deadLetterSelect = `SELECT id, at, feed, subject, headers, data, reason, replayed_at, stream, stream_seq,
	data_bytes, data_sha256, truncated, pruned_at FROM dead_letters`

// ListDeadLetters returns the dead letters that match f, oldest first.
func (db *DB) ListDeadLetters(ctx context.Context, f DeadLetterFilter) ([]connector.DeadLetter, error) {
	var where []string
	var args []any
	if f.Feed != "" {
		where, args = append(where, "feed = ?"), append(args, f.Feed)
	}
	if !f.IncludeReplayed {
		where = append(where, "replayed_at IS NULL")
	}
	query := deadLetterSelect + whereClause(where) + ` ORDER BY id` + limitClause(f.Limit)
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

// MarkDeadLetterReplayed records that the dead letter id was replayed at at.
// Returns an error matching connector.ErrNotFound if there is no such message.
func (db *DB) MarkDeadLetterReplayed(ctx context.Context, id int64, at time.Time) error {
	res, err := db.x.ExecContext(ctx, db.q(`UPDATE dead_letters SET replayed_at = ? WHERE id = ?`), db.ts(at), id)
	if err != nil {
		return fmt.Errorf("store: mark dead letter %d replayed: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: mark dead letter %d replayed: %w", id, err)
	} else if n == 0 {
		return notFound("dead letter %d", id)
	}
	return nil
}

type scanner interface{ Scan(dest ...any) error }

func scanDeadLetter(s scanner) (connector.DeadLetter, error) {
	var d connector.DeadLetter
	var at, replayed, pruned instant
	var seq int64
	if err := s.Scan(&d.ID, &at, &d.Feed, &d.Subject, &d.Headers, &d.Data, &d.Reason, &replayed, &d.Stream, &seq,
		&d.DataBytes, &d.DataSHA256, &d.Truncated, &pruned); err != nil {
		return connector.DeadLetter{}, err
	}
	d.At, d.ReplayedAt, d.StreamSeq, d.PrunedAt = at.T, replayed.ptr(), uint64(seq), pruned.ptr()
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

// ListReviews returns the open (unresolved) reviews that match f, oldest first.
func (db *DB) ListReviews(ctx context.Context, f ReviewFilter) ([]connector.Review, error) {
	where := []string{"resolved_at IS NULL"}
	var args []any
	if f.Feed != "" {
		where, args = append(where, "feed = ?"), append(args, f.Feed)
	}
	query := `SELECT id, at, feed, worker_id, reason, candidates FROM reviews` + whereClause(where) + ` ORDER BY id` + limitClause(f.Limit)
	rows, err := db.x.QueryContext(ctx, db.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("store: list reviews: %w", err)
	}
	defer rows.Close()
	var out []connector.Review
	for rows.Next() {
		var r connector.Review
		var at instant
		var cands string
		if err := rows.Scan(&r.ID, &at, &r.Feed, &r.WorkerID, &r.Reason, &cands); err != nil {
			return nil, fmt.Errorf("store: list reviews: %w", err)
		}
		r.At = at.T
		if r.Candidates, err = parseList(cands); err != nil {
			return nil, fmt.Errorf("store: review %d: candidates: %w", r.ID, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list reviews: %w", err)
	}
	return out, nil
}

// ResolveReview closes the review id with a note, at the store clock. Resolving
// a review that is already resolved changes nothing. Returns an error matching
// connector.ErrNotFound if there is no review id.
func (db *DB) ResolveReview(ctx context.Context, id int64, note string) error {
	res, err := db.x.ExecContext(ctx, db.q(`UPDATE reviews SET resolved_at = ?, note = ? WHERE id = ? AND resolved_at IS NULL`),
		db.ts(db.now()), note, id)
	if err != nil {
		return fmt.Errorf("store: resolve review %d: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("store: resolve review %d: %w", id, err)
	}
	if n > 0 {
		return nil
	}
	var exists int
	if err := db.x.GetContext(ctx, &exists, db.q(`SELECT COUNT(*) FROM reviews WHERE id = ?`), id); err != nil {
		return fmt.Errorf("store: resolve review %d: %w", id, err)
	}
	if exists == 0 {
		return notFound("review %d", id)
	}
	return nil
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
	DeadLetters int // dead letters not yet replayed
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
		(SELECT COUNT(*) FROM dead_letters WHERE replayed_at IS NULL),
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
