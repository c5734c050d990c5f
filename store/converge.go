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
)

// ClaimDue leases up to limit workers whose due time is at or before now, whose
// lease (if any) has expired at now, and that are not superseded, earliest due
// first. It runs as one statement: on PostgreSQL the candidate rows are taken
// with FOR UPDATE SKIP LOCKED, so concurrent callers (other replicas) skip each
// other's rows instead of waiting; on SQLite the single writer makes it atomic.
// The due time is left as is, so a lease that expires makes the worker eligible
// again. The claim clears the worker's woken flag: a wake (DecideHold, MarkDue)
// after this point sets it, and the claim's completion then leaves the worker due. A worker whose predecessor (a worker it took over through a rehire under
// a new id) is leased is not claimed until that lease ends: the predecessor's
// converge may still be acting on the same account from an older view.
func (db *DB) ClaimDue(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]connector.Claim, error) {
	if limit <= 0 {
		return nil, nil
	}
	if owner == "" {
		return nil, fmt.Errorf("store: claim: owner is required")
	}
	// The candidates: due, not leased, not superseded, no leased predecessor.
	const due = `FROM workers c
			WHERE c.due_at IS NOT NULL AND c.due_at <= ?
				AND (c.lease_until IS NULL OR c.lease_until <= ?)
				AND c.superseded_by IS NULL
				AND NOT EXISTS (SELECT 1 FROM workers p
					WHERE p.feed = c.feed AND p.superseded_by = c.worker_id AND p.lease_until > ?)
			ORDER BY c.due_at
			LIMIT ?`
	until := now.Add(lease)
	query := `UPDATE workers SET lease_owner = ?, lease_until = ?, woken = FALSE
		WHERE (feed, worker_id) IN (SELECT c.feed, c.worker_id ` + due + `)
		RETURNING feed, worker_id, version, attempts, due_at, lease_until`
	if db.backend == Postgres {
		// The rows are updated where the subquery locked them, through a TID
		// scan: matched by key, PostgreSQL hashes the candidates and scans the
		// whole workers table for them. A row locked FOR UPDATE stays where it
		// is until the transaction ends, and the lock returns the row's latest
		// version (rechecked against the conditions) with its ctid.
		query = `UPDATE workers SET lease_owner = ?, lease_until = ?, woken = FALSE
			WHERE ctid = ANY(ARRAY(SELECT c.ctid ` + due + ` FOR UPDATE SKIP LOCKED))
			RETURNING feed, worker_id, version, attempts, due_at, lease_until`
	}
	rows, err := db.x.QueryContext(ctx, db.q(query), owner, db.ts(until), db.ts(now), db.ts(now), db.ts(now), limit)
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

var _ connector.WorkerClaimer = (*DB)(nil)

// ClaimWorker leases w to owner until now+lease, due or not, under ClaimDue's
// other conditions: not leased (or its lease expired at now), not superseded,
// no leased predecessor. ok is false when one of them fails or the store has no
// row for w. Like ClaimDue it clears the woken flag and leaves the due time.
// It serves "hrsync explain --apply", which converges one person now.
func (db *DB) ClaimWorker(ctx context.Context, owner string, w connector.WorkerKey, now time.Time, lease time.Duration) (connector.Claim, bool, error) {
	if owner == "" {
		return connector.Claim{}, false, fmt.Errorf("store: claim worker: owner is required")
	}
	const query = `UPDATE workers SET lease_owner = ?, lease_until = ?, woken = FALSE
		WHERE feed = ? AND worker_id = ?
			AND (lease_until IS NULL OR lease_until <= ?)
			AND superseded_by IS NULL
			AND NOT EXISTS (SELECT 1 FROM workers p
				WHERE p.feed = workers.feed AND p.superseded_by = workers.worker_id AND p.lease_until > ?)
		RETURNING feed, worker_id, version, attempts, lease_until`
	var cl connector.Claim
	var lu instant
	err := db.x.QueryRowContext(ctx, db.q(query), owner, db.ts(now.Add(lease)), w.Feed, w.WorkerID, db.ts(now), db.ts(now)).
		Scan(&cl.Worker.Feed, &cl.Worker.WorkerID, &cl.Version, &cl.Attempts, &lu)
	if errors.Is(err, sql.ErrNoRows) {
		return connector.Claim{}, false, nil
	}
	if err != nil {
		return connector.Claim{}, false, fmt.Errorf("store: claim worker %s: %w", w, err)
	}
	cl.LeaseUntil = lu.T
	return cl, true, nil
}

// LoadHistory returns the facts of w and of its predecessors (the workers it
// succeeded, recursively), their links, and w's successor if it was taken over.
// Returns an error matching connector.ErrNotFound if the store has no row for w.
// It is LoadHistories for one worker.
func (db *DB) LoadHistory(ctx context.Context, w connector.WorkerKey) (connector.History, error) {
	hs, known, err := db.loadHistories(ctx, []connector.WorkerKey{w})
	if err != nil {
		return connector.History{Worker: w, Links: map[string]string{}}, err
	}
	if !known[0] {
		return hs[0], notFound("worker %s", w)
	}
	return hs[0], nil
}

// WorkerSchedule returns when w is next due (nil: not due) and until when a
// converger holds its lease (nil: none): the console's "sync now" waits until
// the worker it woke is no longer due and not leased, converged. Returns an
// error matching connector.ErrNotFound if the store has no row for w.
func (db *DB) WorkerSchedule(ctx context.Context, w connector.WorkerKey) (due, leased *time.Time, err error) {
	var d, l instant
	err = db.x.QueryRowContext(ctx, db.q(`SELECT due_at, lease_until FROM workers WHERE feed = ? AND worker_id = ?`),
		w.Feed, w.WorkerID).Scan(&d, &l)
	if err != nil {
		return nil, nil, noRows(err, "worker %s", w)
	}
	return d.ptr(), l.ptr(), nil
}

// LinksOf returns the account each of ws is linked to, for those that have a
// link (the console shows the accounts of a held roster's people).
func (db *DB) LinksOf(ctx context.Context, ws []connector.WorkerKey) (map[connector.WorkerKey]string, error) {
	out := map[connector.WorkerKey]string{}
	for chunk := range slices.Chunk(uniqueKeys(ws), db.chunkSize()) {
		sel, args := db.keyRows(chunk)
		rows, err := db.x.QueryContext(ctx, db.q(`SELECT feed, worker_id, account_id FROM links WHERE (feed, worker_id) IN (`+sel+`)`), args...)
		if err != nil {
			return nil, fmt.Errorf("store: links of %d workers: %w", len(ws), err)
		}
		for rows.Next() {
			var k connector.WorkerKey
			var acct string
			if err := rows.Scan(&k.Feed, &k.WorkerID, &acct); err != nil {
				rows.Close()
				return nil, fmt.Errorf("store: links of %d workers: %w", len(ws), err)
			}
			out[k] = acct
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("store: links of %d workers: %w", len(ws), err)
		}
	}
	return out, nil
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
//     moved past Claim.Version (a fact arrived meanwhile) or it was woken since
//     the claim (DecideHold approved its hold, MarkDue asked for a look);
//   - the lease is released if Owner still holds it.
//
// Returns an error matching connector.ErrNotFound if the worker does not exist.
// It is CompleteAll for one completion: the same code path.
func (db *DB) Complete(ctx context.Context, c connector.Completion) error {
	return db.completeOne(ctx, c)
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
	// A leased worker is due when its lease ends, and so is a worker whose
	// predecessor is leased (ClaimDue waits for that lease).
	// The predecessors' leases are aggregated once (superseded workers are few),
	// not looked up per due worker.
	err := db.x.QueryRowContext(ctx, `SELECT MIN(CASE WHEN e.until IS NOT NULL AND e.until > e.due_at THEN e.until ELSE e.due_at END) FROM (
		SELECT w.due_at, CASE WHEN p.until IS NOT NULL AND (w.lease_until IS NULL OR p.until > w.lease_until)
			THEN p.until ELSE w.lease_until END AS until
		FROM workers w
		LEFT JOIN (SELECT feed, superseded_by AS wid, MAX(lease_until) AS until FROM workers
			WHERE superseded_by IS NOT NULL AND lease_until IS NOT NULL GROUP BY feed, superseded_by) p
			ON p.feed = w.feed AND p.wid = w.worker_id
		WHERE w.due_at IS NOT NULL AND w.superseded_by IS NULL) e`).Scan(&t)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("store: next due: %w", err)
	}
	return t.T, t.Valid, nil
}
