package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/jmoiron/sqlx"
)

// Erasure requests (facts of kind connector.KindErasureRequested) are recorded
// like any fact: once per (source, id), the worker marked due. The converger then
// erases the person (see connector.ErasureRequest), which deletes the request
// with the rest of the person's facts. Two cases are settled when recording.

// UnknownWorkerError is the permanent error of RecordFacts for an erasure request
// about a worker the store has no fact of: there is nothing to erase, and the
// consumer dead-letters the event with this reason.
type UnknownWorkerError struct {
	Fact string // source#id
}

func (e *UnknownWorkerError) Error() string {
	return fmt.Sprintf("store: fact %s: worker_id: erasure requested for a worker hrsync has no record of (never hired in this feed, or its events were refused); nothing to erase; check the worker id, or erase by hand with hrsync erase once its events are recorded; see docs/erasure.md",
		e.Fact)
}

// screenErasureRequests returns facts without the erasure requests that need not
// be recorded, and refuses those that cannot be honoured, in the recording
// transaction tx:
//   - a request for a worker that was already erased is done: it is dropped and
//     audited under the pseudonym, so that a redelivery or a repeated request
//     never brings the worker id back into the store (with any key of the ring;
//     without a key no tombstone needs one, or checkErasureKeys failed first);
//   - a request for a worker with no other fact, in the store or in the batch, is
//     refused with a connector.Permanent *UnknownWorkerError.
func (db *DB) screenErasureRequests(ctx context.Context, tx *sqlx.Tx, facts []connector.Fact, now time.Time) ([]connector.Fact, error) {
	known := map[connector.WorkerKey]bool{}
	for _, f := range facts {
		if f.Kind != connector.KindErasureRequested {
			known[f.Key()] = true
		}
	}
	k := db.erasure.Load()
	out := facts[:0:0]
	for _, f := range facts {
		if f.Kind != connector.KindErasureRequested {
			out = append(out, f)
			continue
		}
		id := f.Source + "#" + f.ID
		if k != nil {
			var hashes []string
			for _, key := range k.all {
				hashes = append(hashes, connector.ErasureHash(key, f.Key()))
			}
			query, args, err := sqlx.In(`SELECT hash, at FROM erasures WHERE hash IN (?) ORDER BY at LIMIT 1`, hashes)
			if err != nil {
				return nil, err
			}
			var hash string
			var at instant
			err = tx.QueryRowContext(ctx, db.q(query), args...).Scan(&hash, &at)
			if err == nil {
				detail := fmt.Sprintf("GDPR erasure requested again by event %s: already erased on %s; nothing to do", id, at.T.UTC().Format(time.DateOnly))
				if _, err := tx.ExecContext(ctx, db.q(`INSERT INTO audit (`+auditColumns+`) VALUES (?, ?, ?, '', ?, ?, ?, '[]', 'erase')`),
					db.ts(now), f.Feed, connector.ErasedID(hash), string(connector.ActionAnonymise), string(connector.OutcomeSkipped), detail); err != nil {
					return nil, fmt.Errorf("store: fact %s: audit a repeated erasure request: %w", id, err)
				}
				continue
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return nil, fmt.Errorf("store: fact %s: erasure tombstones: %w", id, err)
			}
		}
		if !known[f.Key()] {
			var n int
			if err := tx.GetContext(ctx, &n, db.q(`SELECT COUNT(*) FROM (SELECT 1 FROM facts WHERE feed = ? AND worker_id = ? AND kind <> ? LIMIT 1) f`),
				f.Feed, f.WorkerID, string(connector.KindErasureRequested)); err != nil {
				return nil, fmt.Errorf("store: fact %s: %w", id, err)
			}
			if n == 0 {
				return nil, connector.Permanent(&UnknownWorkerError{Fact: id})
			}
			known[f.Key()] = true
		}
		out = append(out, f)
	}
	return out, nil
}
