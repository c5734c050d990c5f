package store_test

import (
	"sync"
	"testing"

	"github.com/hrsync/hrsync/store"
	"github.com/hrsync/hrsync/store/pgtest"
	"github.com/hrsync/hrsync/store/storetest"
)

func TestPostgres(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) storetest.Store { return mustOpen(t, pgtest.URL(t)) })
}

func TestPostgresConcurrency(t *testing.T) {
	t.Parallel()
	storetest.RunConcurrency(t, func(t *testing.T) storetest.Store { return mustOpen(t, pgtest.URL(t)) })
}

// TestPostgresConcurrentMigrate opens one fresh schema from several goroutines at
// once, each with its own *DB, as replicas starting together would.
func TestPostgresConcurrentMigrate(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	const n = 4
	dbs := make([]*store.DB, n)
	var wg sync.WaitGroup
	for i := range n {
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
	for _, db := range dbs {
		if db.Backend() != store.Postgres {
			t.Fatalf("Backend = %q", db.Backend())
		}
		assertMigrated(t, db)
	}
	if _, err := dbs[0].RecordFacts(t.Context(), batch(0, 5)); err != nil {
		t.Fatal(err)
	}
	if c, err := dbs[n-1].Counts(t.Context()); err != nil || c.Facts != 5 {
		t.Fatalf("Counts = %+v, %v; want 5 facts seen through another handle", c, err)
	}
}

// TestPostgresSchemaIsolation checks that pgtest's search_path really confines a
// store to its schema.
func TestPostgresSchemaIsolation(t *testing.T) {
	t.Parallel()
	a, b := mustOpen(t, pgtest.URL(t)), mustOpen(t, pgtest.URL(t))
	if _, err := a.RecordFacts(t.Context(), batch(0, 3)); err != nil {
		t.Fatal(err)
	}
	if c, err := b.Counts(t.Context()); err != nil || c.Facts != 0 {
		t.Fatalf("other schema Counts = %+v, %v; want 0 facts", c, err)
	}
}

func BenchmarkRecordFactsPostgres(b *testing.B) {
	benchmarkRecordFacts(b, mustOpen(b, pgtest.URL(b)))
}
