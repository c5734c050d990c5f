package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/jmoiron/sqlx"
)

// ClaimDue leases up to limit workers whose due time is at or before now, whose
// lease (if any) has expired at now, and that are not superseded, earliest due
// first. It runs as one statement: on PostgreSQL the candidate rows are taken
// with FOR UPDATE SKIP LOCKED, so concurrent callers (other replicas) skip each
// other's rows instead of waiting; on SQLite the single writer makes it atomic.
// The due time is left as is, so a lease that expires makes the worker eligible
// again.
func (db *DB) ClaimDue(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]connector.Claim, error) {
	if limit <= 0 {
		return nil, nil
	}
	if owner == "" {
		return nil, fmt.Errorf("store: claim: owner is required")
	}
	lockRows := ""
	if db.backend == Postgres {
		lockRows = " FOR UPDATE SKIP LOCKED"
	}
	until := now.Add(lease)
	query := `UPDATE workers SET lease_owner = ?, lease_until = ?
		WHERE (feed, worker_id) IN (
			SELECT feed, worker_id FROM workers
			WHERE due_at IS NOT NULL AND due_at <= ?
				AND (lease_until IS NULL OR lease_until <= ?)
				AND superseded_by IS NULL
			ORDER BY due_at
			LIMIT ?` + lockRows + `)
		RETURNING feed, worker_id, version, attempts, due_at, lease_until`
	rows, err := db.x.QueryContext(ctx, db.q(query), owner, db.ts(until), db.ts(now), db.ts(now), limit)
	if err != nil {
		return nil, fmt.Errorf("store: claim: %w", err)
	}
	defer rows.Close()
	type row struct {
		c   connector.Claim
		due time.Time
	}
	var got []row
	for rows.Next() {
		var r row
		var due, lu instant
		if err := rows.Scan(&r.c.Worker.Feed, &r.c.Worker.WorkerID, &r.c.Version, &r.c.Attempts, &due, &lu); err != nil {
			return nil, fmt.Errorf("store: claim: %w", err)
		}
		r.c.LeaseUntil, r.due = lu.T, due.T
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: claim: %w", err)
	}
	slices.SortFunc(got, func(a, b row) int {
		return cmp.Or(a.due.Compare(b.due), cmp.Compare(a.c.Worker.Feed, b.c.Worker.Feed), cmp.Compare(a.c.Worker.WorkerID, b.c.Worker.WorkerID))
	})
	claims := make([]connector.Claim, len(got))
	for i, r := range got {
		claims[i] = r.c
	}
	return claims, nil
}

// chainCTE names, as chain(worker_id), the worker (first argument) and its
// predecessors in the feed (second argument), at most maxChainDepth deep.
var chainCTE = fmt.Sprintf(`WITH RECURSIVE chain(worker_id, depth) AS (
		SELECT CAST(? AS TEXT), 0
		UNION
		SELECT w.worker_id, c.depth + 1 FROM workers w JOIN chain c ON w.superseded_by = c.worker_id
		WHERE w.feed = ? AND c.depth < %d
	) `, maxChainDepth)

// LoadHistory returns the facts of w and of its predecessors (the workers it
// succeeded, recursively), their links, and w's successor if it was taken over.
// Returns an error matching connector.ErrNotFound if the store has no row for w.
func (db *DB) LoadHistory(ctx context.Context, w connector.WorkerKey) (connector.History, error) {
	h := connector.History{Worker: w, Links: map[string]string{}}
	var sup *string
	err := db.x.GetContext(ctx, &sup, db.q(`SELECT superseded_by FROM workers WHERE feed = ? AND worker_id = ?`), w.Feed, w.WorkerID)
	if err != nil {
		return h, noRows(err, "worker %s", w)
	}
	if sup != nil {
		h.SupersededBy = &connector.WorkerKey{Feed: w.Feed, WorkerID: *sup}
	}

	rows, err := db.x.QueryxContext(ctx, db.q(chainCTE+factSelect+` WHERE feed = ? AND worker_id IN (SELECT worker_id FROM chain)`),
		w.WorkerID, w.Feed, w.Feed)
	if err != nil {
		return h, fmt.Errorf("store: history of %s: %w", w, err)
	}
	if h.Facts, err = scanFacts(rows); err != nil {
		return h, fmt.Errorf("store: history of %s: %w", w, err)
	}

	rows, err = db.x.QueryxContext(ctx, db.q(chainCTE+`SELECT worker_id, account_id FROM links WHERE feed = ? AND worker_id IN (SELECT worker_id FROM chain)`),
		w.WorkerID, w.Feed, w.Feed)
	if err != nil {
		return h, fmt.Errorf("store: links of %s: %w", w, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, acct string
		if err := rows.Scan(&id, &acct); err != nil {
			return h, fmt.Errorf("store: links of %s: %w", w, err)
		}
		h.Links[id] = acct
	}
	if err := rows.Err(); err != nil {
		return h, fmt.Errorf("store: links of %s: %w", w, err)
	}
	return h, nil
}

// LinkedWorker returns the worker linked to the account, or an error matching
// connector.ErrNotFound.
func (db *DB) LinkedWorker(ctx context.Context, accountID string) (connector.WorkerKey, error) {
	var k connector.WorkerKey
	err := db.x.QueryRowContext(ctx, db.q(`SELECT feed, worker_id FROM links WHERE account_id = ?`), accountID).Scan(&k.Feed, &k.WorkerID)
	if err != nil {
		return k, noRows(err, "link of account %q", accountID)
	}
	return k, nil
}

// Links returns every link, worker to account id.
func (db *DB) Links(ctx context.Context) (map[connector.WorkerKey]string, error) {
	rows, err := db.x.QueryContext(ctx, `SELECT feed, worker_id, account_id FROM links`)
	if err != nil {
		return nil, fmt.Errorf("store: links: %w", err)
	}
	defer rows.Close()
	out := map[connector.WorkerKey]string{}
	for rows.Next() {
		var k connector.WorkerKey
		var acct string
		if err := rows.Scan(&k.Feed, &k.WorkerID, &acct); err != nil {
			return nil, fmt.Errorf("store: links: %w", err)
		}
		out[k] = acct
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: links: %w", err)
	}
	return out, nil
}

// Complete commits c in one transaction:
//   - Unlink removes the worker's link; ReleasePredecessors removes the links of
//     those worker ids (same feed);
//   - AccountID links the worker to the account. If another worker still holds
//     that account (one that is not released above), nothing is committed and the
//     error matches connector.ErrConflict;
//   - the audit entries and the review are added; an open review with the same
//     feed, worker and reason is not added twice. Empty Feed/WorkerID and zero
//     times default to the claim's worker and the store clock;
//   - attempts become 0, or Claim.Attempts+1 if Failed;
//   - the worker is next due at NextDue (never, if zero), or now if its version
//     moved past Claim.Version (a fact arrived meanwhile);
//   - the lease is released if Owner still holds it.
//
// Returns an error matching connector.ErrNotFound if the worker does not exist.
func (db *DB) Complete(ctx context.Context, c connector.Completion) error {
	w := c.Claim.Worker
	return db.inTx(ctx, func(tx *sqlx.Tx) error {
		now := db.now()
		lock := ""
		if db.backend == Postgres {
			// Hold the row so a concurrent RecordFacts cannot bump the version
			// between this read and the update below.
			lock = " FOR UPDATE"
		}
		var version int64
		err := tx.GetContext(ctx, &version, db.q(`SELECT version FROM workers WHERE feed = ? AND worker_id = ?`+lock), w.Feed, w.WorkerID)
		if err != nil {
			return noRows(err, "complete %s", w)
		}

		if c.Unlink {
			if _, err := tx.ExecContext(ctx, db.q(`DELETE FROM links WHERE feed = ? AND worker_id = ?`), w.Feed, w.WorkerID); err != nil {
				return fmt.Errorf("store: complete %s: unlink: %w", w, err)
			}
		}
		for _, id := range c.ReleasePredecessors {
			if id == w.WorkerID {
				continue
			}
			if _, err := tx.ExecContext(ctx, db.q(`DELETE FROM links WHERE feed = ? AND worker_id = ?`), w.Feed, id); err != nil {
				return fmt.Errorf("store: complete %s: release %s: %w", w, id, err)
			}
		}
		if c.AccountID != "" {
			var holder connector.WorkerKey
			err := tx.QueryRowContext(ctx, db.q(`SELECT feed, worker_id FROM links WHERE account_id = ? AND NOT (feed = ? AND worker_id = ?)`),
				c.AccountID, w.Feed, w.WorkerID).Scan(&holder.Feed, &holder.WorkerID)
			switch {
			case err == nil:
				return fmt.Errorf("store: complete %s: account %q is linked to %s: %w", w, c.AccountID, holder, connector.ErrConflict)
			case !errors.Is(err, sql.ErrNoRows):
				return fmt.Errorf("store: complete %s: link: %w", w, err)
			}
			if _, err := tx.ExecContext(ctx, db.q(`INSERT INTO links (feed, worker_id, account_id, linked_at) VALUES (?, ?, ?, ?)
				ON CONFLICT (feed, worker_id) DO UPDATE SET account_id = excluded.account_id, linked_at = excluded.linked_at
				WHERE links.account_id <> excluded.account_id`),
				w.Feed, w.WorkerID, c.AccountID, db.ts(now)); err != nil {
				return fmt.Errorf("store: complete %s: link: %w", w, err)
			}
		}

		for _, a := range c.Audit {
			if err := db.insertAudit(ctx, tx, w, a, now); err != nil {
				return fmt.Errorf("store: complete %s: %w", w, err)
			}
		}
		if c.Review != nil {
			if err := db.insertReview(ctx, tx, w, *c.Review, now); err != nil {
				return fmt.Errorf("store: complete %s: %w", w, err)
			}
		}

		attempts := 0
		if c.Failed {
			attempts = c.Claim.Attempts + 1
		}
		due := db.tsOrNull(c.NextDue)
		if version > c.Claim.Version {
			due = db.ts(now)
		}
		_, err = tx.ExecContext(ctx, db.q(`UPDATE workers SET attempts = ?, due_at = ?,
				lease_until = CASE WHEN lease_owner = ? THEN NULL ELSE lease_until END,
				lease_owner = CASE WHEN lease_owner = ? THEN NULL ELSE lease_owner END
			WHERE feed = ? AND worker_id = ?`),
			attempts, due, c.Owner, c.Owner, w.Feed, w.WorkerID)
		if err != nil {
			return fmt.Errorf("store: complete %s: %w", w, err)
		}
		return nil
	})
}

func (db *DB) insertAudit(ctx context.Context, tx *sqlx.Tx, w connector.WorkerKey, a connector.AuditEntry, now time.Time) error {
	if a.Feed == "" {
		a.Feed = w.Feed
	}
	if a.WorkerID == "" {
		a.WorkerID = w.WorkerID
	}
	if a.At.IsZero() {
		a.At = now
	}
	ids, err := jsonList(a.FactIDs)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	_, err = tx.ExecContext(ctx, db.q(`INSERT INTO audit (at, feed, worker_id, account_id, action, outcome, detail, fact_ids)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
		db.ts(a.At), a.Feed, a.WorkerID, a.AccountID, string(a.Action), string(a.Outcome), a.Detail, ids)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

func (db *DB) insertReview(ctx context.Context, tx *sqlx.Tx, w connector.WorkerKey, r connector.Review, now time.Time) error {
	if r.Feed == "" {
		r.Feed = w.Feed
	}
	if r.WorkerID == "" {
		r.WorkerID = w.WorkerID
	}
	if r.At.IsZero() {
		r.At = now
	}
	cands, err := jsonList(r.Candidates)
	if err != nil {
		return fmt.Errorf("review: %w", err)
	}
	_, err = tx.ExecContext(ctx, db.q(`INSERT INTO reviews (at, feed, worker_id, reason, candidates) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (feed, worker_id, reason) WHERE resolved_at IS NULL DO NOTHING`),
		db.ts(r.At), r.Feed, r.WorkerID, r.Reason, cands)
	if err != nil {
		return fmt.Errorf("review: %w", err)
	}
	return nil
}

// jsonList encodes a string list as JSON text, "[]" for none.
func jsonList(l []string) (string, error) {
	if len(l) == 0 {
		return "[]", nil
	}
	b, err := json.Marshal(l)
	return string(b), err
}

// parseList decodes jsonList's text; an empty list is nil.
func parseList(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	var l []string
	if err := json.Unmarshal([]byte(s), &l); err != nil {
		return nil, err
	}
	if len(l) == 0 {
		return nil, nil
	}
	return l, nil
}

// NextDue returns the earliest time at which a worker that is not superseded
// becomes claimable: its due time, or the end of its lease if that is later.
// ok is false when no worker is due at all.
func (db *DB) NextDue(ctx context.Context) (time.Time, bool, error) {
	var t instant
	err := db.x.QueryRowContext(ctx, `SELECT MIN(CASE WHEN lease_until IS NOT NULL AND lease_until > due_at THEN lease_until ELSE due_at END)
		FROM workers WHERE due_at IS NOT NULL AND superseded_by IS NULL`).Scan(&t)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("store: next due: %w", err)
	}
	return t.T, t.Valid, nil
}
