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

// reconcileChunk is the number of account ids per statement of LinkedHistories
// and LastStateActions on SQLite: one bind parameter each, far below its limit.
const reconcileChunk = 1000

func (db *DB) accountChunk() int {
	if db.backend == Postgres {
		return pgChunk
	}
	return reconcileChunk
}

// LinkedHistories returns, for each of accountIDs that is linked, the history of
// the worker linked to it, as LoadHistories returns it. A page of accounts costs
// two statements per chunk of ids (one chunk on PostgreSQL): the links with their
// workers' succession, and the facts of those workers. Workers that are
// superseded or succeeded someone (a short minority) go through LoadHistories.
func (db *DB) LinkedHistories(ctx context.Context, accountIDs []string) (map[string]connector.History, error) {
	out := make(map[string]connector.History, len(accountIDs))
	for chunk := range slices.Chunk(accountIDs, db.accountChunk()) {
		if err := db.linkedHistories(ctx, chunk, out); err != nil {
			return nil, fmt.Errorf("store: linked histories: %w", err)
		}
	}
	return out, nil
}

func (db *DB) linkedHistories(ctx context.Context, ids []string, out map[string]connector.History) error {
	in, args := db.inList("l.account_id", ids)
	rows, err := db.x.QueryContext(ctx, db.q(`SELECT l.account_id, l.feed, l.worker_id,
			CASE WHEN w.superseded_by IS NOT NULL OR EXISTS (SELECT 1 FROM workers p WHERE p.feed = l.feed AND p.superseded_by = l.worker_id) THEN 1 ELSE 0 END
		FROM links l JOIN workers w ON w.feed = l.feed AND w.worker_id = l.worker_id
		WHERE `+in), args...)
	if err != nil {
		return err
	}
	simple := map[connector.WorkerKey]string{} // worker -> account
	var chained []connector.WorkerKey
	chainedAcct := map[connector.WorkerKey]string{}
	for rows.Next() {
		var acct string
		var k connector.WorkerKey
		var chain int
		if err := rows.Scan(&acct, &k.Feed, &k.WorkerID, &chain); err != nil {
			rows.Close()
			return err
		}
		if chain != 0 {
			chained = append(chained, k)
			chainedAcct[k] = acct
			continue
		}
		simple[k] = acct
		out[acct] = connector.History{Worker: k, Links: map[string]string{k.WorkerID: acct}}
	}
	if err := rows.Close(); err != nil {
		return err
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(simple) > 0 {
		frows, err := db.x.QueryxContext(ctx, db.q(`SELECT f.source, f.id, f.feed, f.worker_id, f.kind, f.effective_at, f.event_time,
				f.email, f.given_name, f.family_name, f.employee_number, f.org_unit, f.job_title, f.manager_id, f.locale,
				f.reason, f.previous_worker_id, f.requested_by
			FROM links l JOIN facts f ON f.feed = l.feed AND f.worker_id = l.worker_id
			WHERE `+in), args...)
		if err != nil {
			return err
		}
		facts, err := scanFacts(frows) // in fold order
		if err != nil {
			return err
		}
		for _, f := range facts {
			acct, ok := simple[f.Key()]
			if !ok {
				continue // became chained between the two statements; read below
			}
			h := out[acct]
			h.Facts = append(h.Facts, f)
			out[acct] = h
		}
	}
	if len(chained) > 0 {
		hs, err := db.LoadHistories(ctx, chained)
		if err != nil {
			return err
		}
		for i, h := range hs {
			out[chainedAcct[chained[i]]] = h
		}
	}
	return nil
}

// LastStateActions returns, for each of accountIDs that has one, the latest audit
// entry with outcome ok whose action set the account's active state: create,
// deactivate or reactivate. The reconciler reads it to tell an account that hrsync
// deactivated from one an admin deactivated by hand. FactIDs are not read.
func (db *DB) LastStateActions(ctx context.Context, accountIDs []string) (map[string]connector.AuditEntry, error) {
	out := map[string]connector.AuditEntry{}
	for chunk := range slices.Chunk(accountIDs, db.accountChunk()) {
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
