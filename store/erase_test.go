package store_test

import (
	"testing"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
	"github.com/hrsync/hrsync/store/pgtest"
	"github.com/hrsync/hrsync/store/storetest"
)

// The erasure suite also runs inside storetest.Run; these run it on its own.

func TestEraseSQLite(t *testing.T) {
	t.Parallel()
	storetest.RunErase(t, func(t *testing.T) storetest.Store { return mustOpen(t, sqliteURL(t)) })
}

func TestErasePostgres(t *testing.T) {
	t.Parallel()
	storetest.RunErase(t, func(t *testing.T) storetest.Store { return mustOpen(t, pgtest.URL(t)) })
}

// TestEraseWithoutKeyFailsClosed: a store handle without the erasure key must not
// record facts once tombstones exist (it could not tell an erased person), and
// says why; the facts are not refused permanently, so they are retried, not lost.
func TestEraseWithoutKeyFailsClosed(t *testing.T) {
	t.Parallel()
	url := sqliteURL(t)
	a, b := mustOpen(t, url), mustOpen(t, url)
	ctx := t.Context()
	if err := b.UseErasureKey(ctx, nil); err != nil {
		t.Fatalf("UseErasureKey(nil) with no tombstones: %v", err)
	}
	if err := a.UseErasureKey(ctx, []byte("k")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Erase(ctx, store.Erasure{Worker: connector.WorkerKey{Feed: "hr", WorkerID: "gone-1"}, By: "dpo"}); err != nil {
		t.Fatal(err)
	}
	_, err := b.RecordFacts(ctx, batch(0, 1))
	if err == nil || connector.IsPermanent(err) {
		t.Fatalf("RecordFacts without key after an erasure = %v; want a temporary error", err)
	}
	if err := b.UseErasureKey(ctx, nil); err == nil {
		t.Fatal("UseErasureKey(nil) with tombstones succeeded")
	}
	if err := b.UseErasureKey(ctx, []byte("k")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.RecordFacts(ctx, batch(0, 1)); err != nil {
		t.Fatalf("RecordFacts with the key: %v", err)
	}
}
