package store

import (
	"context"
	"fmt"
	"time"

	"github.com/hrsync/hrsync/connector"
)

// ExtendLeases moves the lease of each of ws that owner still holds to until, in
// one statement, and returns the workers whose lease it extended.
func (db *DB) ExtendLeases(ctx context.Context, owner string, ws []connector.WorkerKey, until time.Time) ([]connector.WorkerKey, error) {
	if len(ws) == 0 {
		return nil, nil
	}
	var held []connector.WorkerKey
	keys := uniqueKeys(ws)
	for start := 0; start < len(keys); start += db.chunkSize() {
		chunk := keys[start:min(start+db.chunkSize(), len(keys))]
		sel, args := db.keyRows(chunk)
		rows, err := db.x.QueryContext(ctx, db.q(`UPDATE workers SET lease_until = ?
			WHERE lease_owner = ? AND (feed, worker_id) IN (`+sel+`) RETURNING feed, worker_id`),
			append([]any{db.ts(until), owner}, args...)...)
		if err != nil {
			return held, fmt.Errorf("store: extend leases: %w", err)
		}
		for rows.Next() {
			var k connector.WorkerKey
			if err := rows.Scan(&k.Feed, &k.WorkerID); err != nil {
				rows.Close()
				return held, fmt.Errorf("store: extend leases: %w", err)
			}
			held = append(held, k)
		}
		if err := rows.Close(); err != nil {
			return held, fmt.Errorf("store: extend leases: %w", err)
		}
	}
	return held, nil
}
