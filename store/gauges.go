package store

import (
	"context"
	"fmt"
	"time"
)

// Gauges are what an operator alerts on in the store: see docs/metrics.md.
type Gauges struct {
	// OpenHolds are the safeguard's holds waiting for a person's decision.
	OpenHolds int
	// Due are the workers due now (due_at at or before now, not superseded),
	// leased or not; OldestDue is the earliest of their due times (zero if none).
	// A backlog that grows, or an oldest due time that falls behind, means the
	// converger does not keep up (or is paused: a quarantined LMS, a hold).
	Due       int
	OldestDue time.Time
}

// Gauges reads the store's gauges at now: two small queries, each on an index
// (holds_status, workers_due).
func (db *DB) Gauges(ctx context.Context, now time.Time) (Gauges, error) {
	var g Gauges
	if err := db.x.GetContext(ctx, &g.OpenHolds, `SELECT COUNT(*) FROM holds WHERE status = 'open'`); err != nil {
		return Gauges{}, fmt.Errorf("store: open holds: %w", err)
	}
	var oldest instant
	err := db.x.QueryRowContext(ctx, db.q(`SELECT COUNT(*), MIN(due_at) FROM workers
		WHERE due_at IS NOT NULL AND due_at <= ? AND superseded_by IS NULL`), db.ts(now)).Scan(&g.Due, &oldest)
	if err != nil {
		return Gauges{}, fmt.Errorf("store: due workers: %w", err)
	}
	g.OldestDue = oldest.T
	return g, nil
}
