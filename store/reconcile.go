package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/jmoiron/sqlx"
)

// The reads and the one write of full reconciliation (connector.Reconciler). Every
// read is by page: a page of workers in key order, or the links and audit rows of
// one page of LMS accounts, so that a reconciliation holds one page in memory
// whatever the size of the store.

var _ connector.ReconcileStore = (*DB)(nil)

// ListWorkerLinks returns up to limit workers whose key comes after after (the zero
// key: from the start), in key order, each with the account it is linked to ("" if
// none) and whether it is superseded. It is keyset pagination over the workers'
// primary key: one statement per page, whatever the page's position.
func (db *DB) ListWorkerLinks(ctx context.Context, after connector.WorkerKey, limit int) ([]connector.WorkerLink, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := db.x.QueryContext(ctx, db.q(`SELECT w.feed, w.worker_id, w.superseded_by,
			(SELECT l.account_id FROM links l WHERE l.feed = w.feed AND l.worker_id = w.worker_id)
		FROM workers w
		WHERE (w.feed, w.worker_id) > (?, ?)
		ORDER BY w.feed, w.worker_id
		LIMIT ?`), after.Feed, after.WorkerID, limit)
	if err != nil {
		return nil, fmt.Errorf("store: list worker links: %w", err)
	}
	defer rows.Close()
	out := make([]connector.WorkerLink, 0, limit)
	for rows.Next() {
		var wl connector.WorkerLink
		var sup, acct *string
		if err := rows.Scan(&wl.Worker.Feed, &wl.Worker.WorkerID, &sup, &acct); err != nil {
			return nil, fmt.Errorf("store: list worker links: %w", err)
		}
		wl.Superseded = sup != nil
		if acct != nil {
			wl.AccountID = *acct
		}
		out = append(out, wl)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list worker links: %w", err)
	}
	return out, nil
}

// LinkedWorkers returns, for those of accountIDs that are linked, the worker each
// is linked to. One statement per chunk of ids (one on PostgreSQL); an id that is
// not linked is absent from the map.
func (db *DB) LinkedWorkers(ctx context.Context, accountIDs []string) (map[string]connector.WorkerKey, error) {
	out := make(map[string]connector.WorkerKey, len(accountIDs))
	for chunk := range slices.Chunk(accountIDs, db.chunkSize()) {
		in, args := db.inList("account_id", chunk)
		rows, err := db.x.QueryContext(ctx, db.q(`SELECT account_id, feed, worker_id FROM links WHERE `+in), args...)
		if err != nil {
			return nil, fmt.Errorf("store: linked workers: %w", err)
		}
		for rows.Next() {
			var acct string
			var k connector.WorkerKey
			if err := rows.Scan(&acct, &k.Feed, &k.WorkerID); err != nil {
				rows.Close()
				return nil, fmt.Errorf("store: linked workers: %w", err)
			}
			out[acct] = k
		}
		if err := rows.Close(); err != nil {
			return nil, fmt.Errorf("store: linked workers: %w", err)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("store: linked workers: %w", err)
		}
	}
	return out, nil
}

// LastStateActions returns, for each of accountIDs that has one, the latest audit
// entry with outcome ok whose action set the account's active state: create,
// deactivate or reactivate. The reconciler reads it to tell an account that hrsync
// deactivated from one an admin deactivated by hand. FactIDs are not read.
func (db *DB) LastStateActions(ctx context.Context, accountIDs []string) (map[string]connector.AuditEntry, error) {
	out := map[string]connector.AuditEntry{}
	for chunk := range slices.Chunk(accountIDs, db.chunkSize()) {
		in, args := db.inList("account_id", chunk)
		args = append([]any{string(connector.OutcomeOK), string(connector.ActionCreate), string(connector.ActionDeactivate), string(connector.ActionReactivate)}, args...)
		rows, err := db.x.QueryContext(ctx, db.q(`SELECT id, at, feed, worker_id, account_id, action, outcome, detail FROM audit
			WHERE outcome = ? AND action IN (?, ?, ?) AND `+in+` ORDER BY at, id`), args...)
		if err != nil {
			return nil, fmt.Errorf("store: last state actions: %w", err)
		}
		for rows.Next() {
			var a connector.AuditEntry
			var at instant
			if err := rows.Scan(&a.ID, &at, &a.Feed, &a.WorkerID, &a.AccountID, &a.Action, &a.Outcome, &a.Detail); err != nil {
				rows.Close()
				return nil, fmt.Errorf("store: last state actions: %w", err)
			}
			a.At = at.T
			out[a.AccountID] = a // rows come oldest first: the last one wins
		}
		if err := rows.Close(); err != nil {
			return nil, fmt.Errorf("store: last state actions: %w", err)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("store: last state actions: %w", err)
		}
	}
	return out, nil
}

// MarkDue makes the workers ws due at now, so that a converger converges them
// again, and returns how many of them the store knows (each of those is due at now
// at the latest afterwards). A worker already due at or
// before now keeps its due time. Nothing else moves: not the version, the
// attempts, the lease, the links. Unknown workers are ignored.
func (db *DB) MarkDue(ctx context.Context, ws []connector.WorkerKey, now time.Time) (int, error) {
	if len(ws) == 0 {
		return 0, nil
	}
	keys := uniqueKeys(ws)
	total := 0
	err := db.inTx(ctx, func(tx *sqlx.Tx) error {
		total = 0
		for chunk := range slices.Chunk(keys, db.chunkSize()) {
			sel, args := db.keyRows(chunk)
			args = append([]any{db.ts(now), db.ts(now)}, args...)
			res, err := tx.ExecContext(ctx, db.q(`UPDATE workers
				SET due_at = CASE WHEN due_at IS NOT NULL AND due_at <= ? THEN due_at ELSE ? END
				WHERE (feed, worker_id) IN (`+sel+`)`), args...)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			total += int(n)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: mark %d workers due: %w", len(keys), err)
	}
	return total, nil
}
