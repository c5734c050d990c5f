package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
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
// one statement per chunk of ids (one chunk on PostgreSQL): the links with their
// workers' succession and facts. Workers that are superseded or succeeded
// someone (a short minority) go through LoadHistories.
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
	// One statement: each link with its worker's succession and its facts (a
	// row per fact; a worker without facts gets one row of NULLs).
	in, args := db.inList("l.account_id", ids)
	rows, err := db.x.QueryContext(ctx, db.q(`SELECT l.account_id, l.feed, l.worker_id,
			CASE WHEN w.superseded_by IS NOT NULL OR EXISTS (SELECT 1 FROM workers p WHERE p.feed = l.feed AND p.superseded_by = l.worker_id) THEN 1 ELSE 0 END,
			COALESCE(f.source, ''), COALESCE(f.id, ''), COALESCE(f.kind, ''), f.effective_at, f.event_time,
			COALESCE(f.email, ''), COALESCE(f.given_name, ''), COALESCE(f.family_name, ''), COALESCE(f.employee_number, ''),
			COALESCE(f.org_unit, ''), COALESCE(f.job_title, ''), COALESCE(f.manager_id, ''), COALESCE(f.locale, ''),
			COALESCE(f.reason, ''), COALESCE(f.previous_worker_id, ''), COALESCE(f.requested_by, ''), f.recorded_at
		FROM links l JOIN workers w ON w.feed = l.feed AND w.worker_id = l.worker_id
			LEFT JOIN facts f ON f.feed = l.feed AND f.worker_id = l.worker_id
		WHERE `+in), args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	var chained []connector.WorkerKey
	chainedAcct := map[connector.WorkerKey]string{}
	// The facts of the plain workers are read into one slice, and each history
	// gets a sub-slice of it: a page costs a few allocations of facts, not one
	// per worker. Scanning goes into r in place: one allocation, not one per row.
	type row struct {
		acct  string
		chain int
		f     connector.Fact
	}
	all := make([]row, 0, len(ids))
	var r row
	var eff, at, rec instant
	f := &r.f
	p := &f.Profile
	dest := []any{&r.acct, &f.Feed, &f.WorkerID, &r.chain, &f.Source, &f.ID, &f.Kind, &eff, &at,
		&p.Email, &p.GivenName, &p.FamilyName, &p.EmployeeNumber, &p.OrgUnit, &p.JobTitle, &p.ManagerID, &p.Locale,
		&f.Reason, &f.PreviousWorkerID, &f.RequestedBy, &rec}
	for rows.Next() {
		r = row{}
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		k := f.Key()
		if r.chain != 0 {
			if _, ok := chainedAcct[k]; !ok {
				chained = append(chained, k)
				chainedAcct[k] = r.acct
			}
			continue
		}
		if _, ok := out[r.acct]; !ok {
			out[r.acct] = connector.History{Worker: k, Links: map[string]string{k.WorkerID: r.acct}}
		}
		if eff.Valid {
			f.Effective, f.Time, f.Recorded = eff.T, at.T, rec.T
			all = append(all, r)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if err := rows.Close(); err != nil {
		return err
	}
	// Rows come grouped by account (the IN list is walked in order); if they
	// do not, group them.
	byAcct := func(a, b row) int { return strings.Compare(a.acct, b.acct) }
	if !slices.IsSortedFunc(all, byAcct) {
		slices.SortStableFunc(all, byAcct)
	}
	facts := make([]connector.Fact, len(all))
	for i := range all {
		facts[i] = all[i].f
	}
	for i := 0; i < len(all); {
		j := i + 1
		for j < len(all) && all[j].acct == all[i].acct {
			j++
		}
		h := out[all[i].acct]
		h.Facts = facts[i:j:j] // capped: an append never writes into the next one's
		slices.SortFunc(h.Facts, connector.CompareFacts)
		out[all[i].acct] = h
		i = j
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
		rows, err := db.x.QueryContext(ctx, db.q(`SELECT id, at, feed, worker_id, account_id, action, outcome, detail, active_after FROM audit
			WHERE outcome = ? AND action IN (?, ?, ?) AND `+in+` ORDER BY at, id`), args...)
		if err != nil {
			return nil, fmt.Errorf("store: last state actions: %w", err)
		}
		for rows.Next() {
			var a connector.AuditEntry
			var at instant
			var active string
			if err := rows.Scan(&a.ID, &at, &a.Feed, &a.WorkerID, &a.AccountID, &a.Action, &a.Outcome, &a.Detail, &active); err != nil {
				rows.Close()
				return nil, fmt.Errorf("store: last state actions: %w", err)
			}
			a.ActiveAfter = activeOf(active)
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
// attempts, the lease, the links. Unknown workers are ignored. A worker leased
// meanwhile stays due after its claim's completion (the woken flag, as DecideHold).
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
				SET due_at = CASE WHEN due_at IS NOT NULL AND due_at <= ? THEN due_at ELSE ? END, woken = TRUE
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
