package main

import (
	"context"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/erasure"
	"github.com/hrsync/hrsync/connector"
)

// The erasure's names that the assembly (app.go) and the tests use; the logic is
// package erasure's.
const (
	erasureKeyEnv     = erasure.KeyEnv
	erasureKeysOldEnv = erasure.KeysOldEnv
)

// retentionPolicy is every feed's retention policy (erasure.Retention).
type retentionPolicy = erasure.Retention

// oldErasureKeys reads HRSYNC_ERASURE_KEYS_OLD.
var oldErasureKeys = erasure.OldKeys

// eraseRequested is the daemon converger's EraseFunc: erasure.Requested with the
// daemon's erasure key and the feed's retention policy.
func (a *app) eraseRequested(ctx context.Context, r connector.ErasureRequest) error {
	lms, err := a.LMS()
	if err != nil {
		return err
	}
	return erasure.Requested(ctx, a.db, lms, a.set.erasureKey, a.set.retention.Keep(r.Worker.Feed), r, a.log)
}
