package store_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"

	"github.com/hrsync/hrsync/store"
	"github.com/hrsync/hrsync/store/storetest"
)

// sqliteURL returns a sqlite:// url for a new file in the test's temp dir.
func sqliteURL(t testing.TB) string {
	return "sqlite://" + filepath.Join(t.TempDir(), "hrsync.db")
}

// mustOpen opens url and closes the store when t ends.
func mustOpen(t testing.TB, url string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), url, slog.New(slog.NewTextHandler(t.Output(), nil)), store.Migrate(true))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return db
}

func TestSQLite(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) storetest.Store { return mustOpen(t, sqliteURL(t)) })
}

func TestSQLiteConcurrency(t *testing.T) {
	t.Parallel()
	storetest.RunConcurrency(t, func(t *testing.T) storetest.Store { return mustOpen(t, sqliteURL(t)) })
}

// TestSQLiteTwoHandles opens one file through two *DB at once (as two processes
// would), migrating concurrently, then writes through both.
func TestSQLiteTwoHandles(t *testing.T) {
	t.Parallel()
	url := sqliteURL(t)
	dbs := make([]*store.DB, 2)
	var wg sync.WaitGroup
	for i := range dbs {
		wg.Go(func() {
			db, err := store.Open(t.Context(), url, nil, store.Migrate(true))
			if err != nil {
				t.Errorf("Open %d: %v", i, err)
				return
			}
			t.Cleanup(func() { db.Close() })
			dbs[i] = db
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for i, db := range dbs {
		if db.Backend() != store.SQLite {
			t.Fatalf("Backend = %q", db.Backend())
		}
		assertMigrated(t, db)
		if _, err := db.RecordFacts(t.Context(), batch(i*10, 10)); err != nil {
			t.Fatal(err)
		}
	}
	c, err := dbs[0].Counts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if c.Facts != 20 {
		t.Fatalf("Facts = %d, want 20", c.Facts)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	for _, url := range []string{"mysql://localhost/x", "hrsync.db", "sqlite://"} {
		if db, err := store.Open(t.Context(), url, nil); err == nil {
			db.Close()
			t.Errorf("Open(%q) succeeded, want an error", url)
		} else {
			t.Logf("Open(%q): %v", url, err)
		}
	}
}

func BenchmarkRecordFactsSQLite(b *testing.B) {
	benchmarkRecordFacts(b, mustOpen(b, sqliteURL(b)))
}
