package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
)

// batch returns n valid hire facts for workers from..from+n-1.
func batch(from, n int) []connector.Fact {
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	facts := make([]connector.Fact, n)
	for i := range facts {
		id := from + i
		facts[i] = connector.Fact{
			Feed: "hr", WorkerID: fmt.Sprintf("w%07d", id), Source: "/feeds/hr", ID: fmt.Sprintf("e%09d", id),
			Kind: connector.KindHired, Effective: t0, Time: t0,
			Profile: connector.Profile{Email: fmt.Sprintf("w%d@example.com", id), GivenName: "Ann", FamilyName: "Lee"},
		}
	}
	return facts
}

// assertMigrated checks that every embedded migration is recorded exactly once.
func assertMigrated(t *testing.T, db *store.DB) {
	t.Helper()
	versions, err := db.AppliedMigrations(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(versions) == 0 || versions[0] != 1 {
		t.Fatalf("applied migrations = %v, want 1 first", versions)
	}
	for i := 1; i < len(versions); i++ {
		if versions[i] <= versions[i-1] {
			t.Fatalf("applied migrations = %v, want each once, in order", versions)
		}
	}
}

// benchmarkRecordFacts records batches of 100 new facts (each a new worker, as a
// bulk roster load would), and one batch in ten repeated (redeliveries).
func benchmarkRecordFacts(b *testing.B, db *store.DB) {
	const size = 100
	ctx := b.Context()
	b.ReportAllocs()
	n, i := 0, 0
	for ; b.Loop(); i++ {
		from := i * size
		if i%10 == 9 {
			from = (i - 1) * size
		}
		rec, err := db.RecordFacts(ctx, batch(from, size))
		if err != nil {
			b.Fatal(err)
		}
		n += rec
	}
	b.ReportMetric(float64(i*size)/b.Elapsed().Seconds(), "facts/s")
	b.ReportMetric(float64(n)/float64(i*size), "new/fact")
}
