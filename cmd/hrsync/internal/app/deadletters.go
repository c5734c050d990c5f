package app

import (
	"context"
	"sync"
	"time"

	"github.com/hrsync/hrsync/store"
)

// Dead-letter retention (docs/dead-letters.md): the store caps each dead letter's
// body, and the daemon drops the raw message of dead letters older than the
// retention period, keeping the row with its reason and the body's SHA-256.

// The defaults of dead-letter retention.
const (
	// DefaultDeadLetterRetention is how long a dead letter keeps its raw message.
	DefaultDeadLetterRetention = 30 * 24 * time.Hour
	// DeadLetterPruneEvery is how often the daemon prunes.
	DeadLetterPruneEvery = time.Hour
)

// PruneDeadLetters drops the raw message of the dead letters stored more than
// retention before now, and returns how many it pruned.
func PruneDeadLetters(ctx context.Context, db *store.DB, now time.Time, retention time.Duration) (int, error) {
	return db.PruneDeadLetters(ctx, now.Add(-retention))
}

// ScheduleDeadLetterPrune prunes dead letters older than retention now and then
// every interval, until ctx is done or the returned function is called (which
// waits for a pass in flight). A failed pass is logged and tried again at the
// next tick: the store being away for a while must not stop the daemon.
func (s *Stack) ScheduleDeadLetterPrune(ctx context.Context, retention, every time.Duration) func() {
	ctx, cancel := context.WithCancel(ctx)
	now := time.Now
	if s.now != nil {
		now = s.now
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			n, err := PruneDeadLetters(ctx, s.db, now(), retention)
			switch {
			case err != nil && ctx.Err() == nil:
				s.log.Warn("dead letters: prune failed; trying again later", "err", err, "retry_in", every)
			case n > 0:
				s.log.Info("dead letters: pruned the raw messages of old dead letters", "pruned", n, "older_than", retention)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	s.log.Info("dead-letter pruning scheduled", "retention", retention, "every", every)
	return func() { cancel(); wg.Wait() }
}
