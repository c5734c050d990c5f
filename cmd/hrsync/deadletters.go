package main

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/app"
	"github.com/hrsync/hrsync/store"
)

// The dead-letter flags; retention and pruning are package app's
// (docs/dead-letters.md).

// deadLetterFlags are the daemon's dead-letter settings.
type deadLetterFlags struct {
	maxBody   int
	retention time.Duration
}

func (d *deadLetterFlags) register(fs *pflag.FlagSet) {
	fs.IntVar(&d.maxBody, "dead-letter-max-body", store.DefaultDeadLetterMaxBody,
		"bytes of a dead letter's body (and headers) kept; the rest is cut, and the size and SHA-256 of the whole body recorded")
	envFlag(fs, "dead-letter-max-body", "HRSYNC_DEAD_LETTER_MAX_BODY")
	fs.DurationVar(&d.retention, "dead-letter-retention", app.DefaultDeadLetterRetention,
		"how long a dead letter keeps its raw message; older ones keep only time, feed, subject, reason, size and SHA-256 (0: for ever)")
	envFlag(fs, "dead-letter-retention", "HRSYNC_DEAD_LETTER_RETENTION")
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
