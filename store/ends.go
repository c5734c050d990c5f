package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/jmoiron/sqlx"
)

// Dead letters and review items have an end (issue #11): a dead letter is
// replayed after a fix or discarded by a person; a review item is resolved by a
// person. Each end is one transaction that records who, when and why, writes an
// audit row, and (for a replay or a resolution) makes the worker due again, so
// that the converger acts on it without a full reconcile.

// Resolution is a person closing an item: who, and why. Both are required.
type Resolution struct {
	By     string
	Reason string
}

// check returns an error naming the first empty field.
func (r Resolution) check() error {
	switch {
	case strings.TrimSpace(r.Reason) == "":
		return errors.New("reason: required (why the item is closed)")
	case strings.TrimSpace(r.By) == "":
		return errors.New("by: required (who closes the item)")
	}
	return nil
}

// The actions of a dead letter's history (DeadLetterEvent.Action).
const (
	DeadLetterReplayedAction     = "replayed"      // the message was recorded
	DeadLetterReplayFailedAction = "replay_failed" // decoding or recording it failed again
	DeadLetterDiscardedAction    = "discarded"     // a person gave it up
)

// DeadLetterEvent is one line of a dead letter's history: a replay, a failed
// replay or the discard, with who (may be empty for a replay) and what.
type DeadLetterEvent struct {
	At     time.Time `json:"at"`
	Action string    `json:"action"`
	By     string    `json:"by,omitempty"`
	Detail string    `json:"detail,omitempty"`
}

// The plan labels of the audit rows these ends write (audit.plan).
const (
	PlanDeadLetterReplayed  = "dead letter replayed"
	PlanDeadLetterDiscarded = "dead letter discarded"
	PlanReviewResolved      = "review resolved"
)

// DeadLetterHistory returns the history of dead letter id, oldest first; none
// for an unknown id.
func (db *DB) DeadLetterHistory(ctx context.Context, id int64) ([]DeadLetterEvent, error) {
	rows, err := db.x.QueryContext(ctx, db.q(`SELECT at, action, actor, detail FROM dead_letter_history WHERE dead_letter_id = ? ORDER BY id`), id)
	if err != nil {
		return nil, fmt.Errorf("store: dead letter %d history: %w", id, err)
	}
	defer rows.Close()
	var out []DeadLetterEvent
	for rows.Next() {
		var e DeadLetterEvent
		var at instant
		if err := rows.Scan(&at, &e.Action, &e.By, &e.Detail); err != nil {
			return nil, fmt.Errorf("store: dead letter %d history: %w", id, err)
		}
		e.At = at.T
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: dead letter %d history: %w", id, err)
	}
	return out, nil
}

func (db *DB) deadLetterHistoryTx(ctx context.Context, tx *sqlx.Tx, id int64, at time.Time, action, by, detail string) error {
	if _, err := tx.ExecContext(ctx, db.q(`INSERT INTO dead_letter_history (dead_letter_id, at, action, actor, detail) VALUES (?, ?, ?, ?, ?)`),
		id, db.ts(at), action, by, detail); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	return nil
}

// NoteDeadLetterReplayFailed adds a failed replay of dead letter id to its
// history: who tried (may be empty) and the error. The dead letter stays open.
// Returns an error matching connector.ErrNotFound if there is no dead letter id.
func (db *DB) NoteDeadLetterReplayFailed(ctx context.Context, id int64, by string, cause error) error {
	err := db.inTx(ctx, func(tx *sqlx.Tx) error {
		if _, err := db.lockDeadLetter(ctx, tx, id); err != nil {
			return err
		}
		return db.deadLetterHistoryTx(ctx, tx, id, db.now(), DeadLetterReplayFailedAction, by, cause.Error())
	})
	if err != nil {
		return fmt.Errorf("store: dead letter %d: note a failed replay: %w", id, err)
	}
	return nil
}

// lockDeadLetter reads dead letter id in tx, locking its row on PostgreSQL (a
// SQLite transaction holds the write lock from its start).
func (db *DB) lockDeadLetter(ctx context.Context, tx *sqlx.Tx, id int64) (connector.DeadLetter, error) {
	query := deadLetterSelect + ` WHERE id = ?`
	if db.backend == Postgres {
		query += ` FOR UPDATE`
	}
	d, err := scanDeadLetter(tx.QueryRowContext(ctx, db.q(query), id))
	if err != nil {
		return d, noRows(err, "dead letter %d", id)
	}
	return d, nil
}

// closedDeadLetter returns an error matching connector.ErrConflict if d is not
// open any more, saying how it ended.
func closedDeadLetter(d connector.DeadLetter) error {
	switch {
	case d.DiscardedAt != nil:
		return fmt.Errorf("dead letter %d was discarded by %s at %s (%s): %w",
			d.ID, d.DiscardedBy, d.DiscardedAt.UTC().Format(time.RFC3339), d.DiscardReason, connector.ErrConflict)
	case d.ReplayedAt != nil:
		return fmt.Errorf("dead letter %d was already replayed at %s: %w", d.ID, d.ReplayedAt.UTC().Format(time.RFC3339), connector.ErrConflict)
	}
	return nil
}

// DiscardDeadLetter gives up the open dead letter id, in one transaction: it is
// marked discarded (never replayed again, left out of the default listing, kept
// for the record) with who, why and when; the history and the audit (action
// none, plan "dead letter discarded", the dead letter's feed, no worker: the
// message may name none) get a row each. Returns the discarded dead letter; an
// error matching connector.ErrNotFound if there is no dead letter id, and
// connector.ErrConflict if it was replayed or discarded already.
func (db *DB) DiscardDeadLetter(ctx context.Context, id int64, r Resolution) (connector.DeadLetter, error) {
	if err := r.check(); err != nil {
		return connector.DeadLetter{}, fmt.Errorf("store: discard dead letter %d: %w", id, err)
	}
	var d connector.DeadLetter
	err := db.inTx(ctx, func(tx *sqlx.Tx) error {
		var err error
		if d, err = db.lockDeadLetter(ctx, tx, id); err != nil {
			return err
		}
		if err := closedDeadLetter(d); err != nil {
			return err
		}
		now := db.now().UTC().Truncate(time.Microsecond) // as stored
		if _, err := tx.ExecContext(ctx, db.q(`UPDATE dead_letters SET discarded_at = ?, discarded_by = ?, discard_reason = ? WHERE id = ?`),
			db.ts(now), r.By, r.Reason, id); err != nil {
			return err
		}
		if err := db.deadLetterHistoryTx(ctx, tx, id, now, DeadLetterDiscardedAction, r.By, r.Reason); err != nil {
			return err
		}
		// The detail names the dead letter, not its reason: a reason may quote
		// the message's personal data, and this row names no worker that an
		// erasure would pseudonymise.
		detail := fmt.Sprintf("dead letter %d discarded by %s: %s", id, r.By, r.Reason)
		if _, err := tx.ExecContext(ctx, db.q(`INSERT INTO audit (`+auditColumns+`) VALUES (?, ?, '', '', ?, ?, ?, '[]', ?)`),
			db.ts(now), d.Feed, string(connector.ActionNone), string(connector.OutcomeOK), detail, PlanDeadLetterDiscarded); err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		d.DiscardedAt, d.DiscardedBy, d.DiscardReason = &now, r.By, r.Reason
		return nil
	})
	if err != nil {
		return connector.DeadLetter{}, fmt.Errorf("store: discard dead letter %d: %w", id, err)
	}
	return d, nil
}

// DeadLetterReplay is what ReplayDeadLetter did.
type DeadLetterReplay struct {
	// Recorded is 1 if the fact was new, 0 if the store had it already.
	Recorded int
	// Woken is the worker made due: the fact's worker, or the end of its chain
	// of successors (the worker that converges the account). Zero if the store
	// has no worker for the fact (an erasure request for someone erased before).
	Woken connector.WorkerKey
}

// ReplayDeadLetter records fact, decoded again from the open dead letter id
// after a fix, and ends the dead letter, in one transaction: the fact is
// recorded as RecordFacts does; the worker (or the end of its chain of
// successors) becomes due now and is marked woken, so that a converger acts on
// it at its next poll even if the fact was recorded before or a claim is in
// flight; the dead letter is marked replayed; its history and the audit (action
// none, plan "dead letter replayed", the fact's worker) get a row each. by may
// be empty. Nothing is written if any step fails: a fact the store refuses (a
// closed feed, an erased person) leaves the dead letter open.
//
// Returns an error matching connector.ErrNotFound if there is no dead letter
// id, connector.ErrConflict if it was replayed or discarded already, and one
// marked connector.Permanent for an invalid fact.
func (db *DB) ReplayDeadLetter(ctx context.Context, id int64, fact connector.Fact, by string) (DeadLetterReplay, error) {
	if err := fact.Validate(); err != nil {
		return DeadLetterReplay{}, connector.Permanent(fmt.Errorf("store: replay dead letter %d: fact %s#%s: %w", id, fact.Source, fact.ID, err))
	}
	var out DeadLetterReplay
	err := db.inTx(ctx, func(tx *sqlx.Tx) error {
		out = DeadLetterReplay{}
		d, err := db.lockDeadLetter(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := closedDeadLetter(d); err != nil {
			return err
		}
		now := db.now().UTC().Truncate(time.Microsecond) // as stored
		if out.Recorded, err = db.recordFacts(ctx, tx, []connector.Fact{fact}, now); err != nil {
			return err
		}
		last, err := db.lastSuccessor(ctx, tx, fact.Key())
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, db.q(`UPDATE workers
			SET due_at = CASE WHEN due_at IS NOT NULL AND due_at <= ? THEN due_at ELSE ? END, woken = TRUE
			WHERE feed = ? AND worker_id = ?`), db.ts(now), db.ts(now), last.Feed, last.WorkerID)
		if err != nil {
			return fmt.Errorf("wake %s: %w", last, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n > 0 {
			out.Woken = last
		}
		if _, err := tx.ExecContext(ctx, db.q(`UPDATE dead_letters SET replayed_at = ? WHERE id = ?`), db.ts(now), id); err != nil {
			return err
		}
		ref := fact.Source + "#" + fact.ID
		what := fmt.Sprintf("recorded fact %s (%s of %s)", ref, fact.Kind, fact.Key())
		if out.Recorded == 0 {
			what = fmt.Sprintf("fact %s (%s of %s) was recorded already", ref, fact.Kind, fact.Key())
		}
		if err := db.deadLetterHistoryTx(ctx, tx, id, now, DeadLetterReplayedAction, by, what); err != nil {
			return err
		}
		facts, err := jsonList([]string{ref})
		if err != nil {
			return err
		}
		detail := fmt.Sprintf("dead letter %d replayed by %s: %s", id, orNone(by), what)
		if _, err := tx.ExecContext(ctx, db.q(`INSERT INTO audit (`+auditColumns+`) VALUES (?, ?, ?, '', ?, ?, ?, ?, ?)`),
			db.ts(now), fact.Feed, fact.WorkerID, string(connector.ActionNone), string(connector.OutcomeOK), detail, facts, PlanDeadLetterReplayed); err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		return nil
	})
	if err != nil {
		return DeadLetterReplay{}, fmt.Errorf("store: replay dead letter %d: %w", id, err)
	}
	return out, nil
}

// ResolveReview closes the open review id in one transaction: resolved_at (the
// store clock), who and why; an audit row for the worker (action none, plan
// "review resolved"); and the worker (or the end of its chain of successors)
// due now and marked woken, so that a converger converges it again at its next
// poll: with the fix a person made (an account merged in the LMS, a feed
// declared), or raising the item anew if nothing changed. Returns the resolved
// review; an error matching connector.ErrNotFound if there is no review id, and
// connector.ErrConflict if it was resolved already.
func (db *DB) ResolveReview(ctx context.Context, id int64, r Resolution) (connector.Review, error) {
	if err := r.check(); err != nil {
		return connector.Review{}, fmt.Errorf("store: resolve review %d: %w", id, err)
	}
	var rv connector.Review
	err := db.inTx(ctx, func(tx *sqlx.Tx) error {
		query := reviewSelect + ` WHERE id = ?`
		if db.backend == Postgres {
			query += ` FOR UPDATE`
		}
		var err error
		if rv, err = scanReview(tx.QueryRowContext(ctx, db.q(query), id)); err != nil {
			return noRows(err, "review %d", id)
		}
		if rv.ResolvedAt != nil {
			return fmt.Errorf("review %d was already resolved by %s at %s (%s): %w",
				id, orNone(rv.ResolvedBy), rv.ResolvedAt.UTC().Format(time.RFC3339), rv.Resolution, connector.ErrConflict)
		}
		now := db.now().UTC().Truncate(time.Microsecond) // as stored
		if _, err := tx.ExecContext(ctx, db.q(`UPDATE reviews SET resolved_at = ?, resolved_by = ?, note = ? WHERE id = ?`),
			db.ts(now), r.By, r.Reason, id); err != nil {
			return err
		}
		w := connector.WorkerKey{Feed: rv.Feed, WorkerID: rv.WorkerID}
		last, err := db.lastSuccessor(ctx, tx, w)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, db.q(`UPDATE workers
			SET due_at = CASE WHEN due_at IS NOT NULL AND due_at <= ? THEN due_at ELSE ? END, woken = TRUE
			WHERE feed = ? AND worker_id = ?`), db.ts(now), db.ts(now), last.Feed, last.WorkerID); err != nil {
			return fmt.Errorf("wake %s: %w", last, err)
		}
		// The detail names the item, not its reason, which may quote an email.
		detail := fmt.Sprintf("review %d resolved by %s: %s", id, r.By, r.Reason)
		if _, err := tx.ExecContext(ctx, db.q(`INSERT INTO audit (`+auditColumns+`) VALUES (?, ?, ?, '', ?, ?, ?, '[]', ?)`),
			db.ts(now), rv.Feed, rv.WorkerID, string(connector.ActionNone), string(connector.OutcomeOK), detail, PlanReviewResolved); err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		rv.ResolvedAt, rv.ResolvedBy, rv.Resolution = &now, r.By, r.Reason
		return nil
	})
	if err != nil {
		return connector.Review{}, fmt.Errorf("store: resolve review %d: %w", id, err)
	}
	return rv, nil
}
