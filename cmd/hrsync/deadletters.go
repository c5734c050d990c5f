package main

import (
	"context"
	"flag"
	"fmt"
	"sync"
	"time"

	"github.com/hrsync/hrsync/store"
)

// Dead-letter retention (docs/dead-letters.md): the store caps each dead letter's
// body, and the daemon drops the raw message of dead letters older than the
// retention period, keeping the row with its reason and the body's SHA-256.

// The defaults of dead-letter retention.
const (
	// defaultDeadLetterRetention is how long a dead letter keeps its raw message.
	defaultDeadLetterRetention = 30 * 24 * time.Hour
	// deadLetterPruneEvery is how often the daemon prunes.
	deadLetterPruneEvery = time.Hour
)

// deadLetterFlags are the daemon's dead-letter settings.
type deadLetterFlags struct {
	maxBody   int
	retention time.Duration
}

func (d *deadLetterFlags) register(fs *flag.FlagSet, vars map[string]string) {
	fs.IntVar(&d.maxBody, "dead-letter-max-body", store.DefaultDeadLetterMaxBody,
		"bytes of a dead letter's body (and headers) kept; the rest is cut, and the size and SHA-256 of the whole body recorded")
	vars["dead-letter-max-body"] = "HRSYNC_DEAD_LETTER_MAX_BODY"
	fs.DurationVar(&d.retention, "dead-letter-retention", defaultDeadLetterRetention,
		"how long a dead letter keeps its raw message; older ones keep only time, feed, subject, reason, size and SHA-256 (0: for ever)")
	vars["dead-letter-retention"] = "HRSYNC_DEAD_LETTER_RETENTION"
}

// check names the flag that is wrong and why.
func (d *deadLetterFlags) check() error {
	if d.maxBody < 1 {
		return fmt.Errorf("--dead-letter-max-body %d: must be at least 1 byte", d.maxBody)
	}
	if d.retention < 0 {
		return fmt.Errorf("--dead-letter-retention %s: must not be negative (0 keeps messages for ever)", d.retention)
	}
	return nil
}

// pruneDeadLetters drops the raw message of the dead letters stored more than
// retention before now, and returns how many it pruned.
func pruneDeadLetters(ctx context.Context, db *store.DB, now time.Time, retention time.Duration) (int, error) {
	return db.PruneDeadLetters(ctx, now.Add(-retention))
}

// scheduleDeadLetterPrune prunes dead letters older than retention now and then
// every interval, until ctx is done or the returned function is called (which
// waits for a pass in flight). A failed pass is logged and tried again at the
// next tick: the store being away for a while must not stop the daemon.
func (s *stack) scheduleDeadLetterPrune(ctx context.Context, retention, every time.Duration) func() {
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
			n, err := pruneDeadLetters(ctx, s.db, now(), retention)
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
