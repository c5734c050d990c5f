package store_test

import (
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
	"github.com/hrsync/hrsync/store/pgtest"
)

func TestGaugesSQLite(t *testing.T) { testGauges(t, mustOpen(t, sqliteURL(t))) }

func TestGaugesPostgres(t *testing.T) {
	t.Parallel()
	testGauges(t, mustOpen(t, pgtest.URL(t)))
}

// testGauges: open holds and the due backlog, with the oldest due time, as the
// metrics read them.
func testGauges(t *testing.T, db *store.DB) {
	ctx := t.Context()
	now := time.Now().UTC()
	g, err := db.Gauges(ctx, now)
	if err != nil || g != (store.Gauges{}) {
		t.Fatalf("empty store: Gauges = %+v, %v; want zeros", g, err)
	}
	if _, err := db.RecordFacts(ctx, batch(0, 5)); err != nil {
		t.Fatal(err)
	}
	later := now.Add(time.Hour)
	g, err = db.Gauges(ctx, later)
	if err != nil || g.Due != 5 || g.OldestDue.IsZero() || g.OldestDue.After(later) {
		t.Fatalf("after 5 facts: Gauges = %+v, %v; want 5 due, the oldest at or before %v", g, err, later)
	}
	// Nothing is due before the oldest due time.
	if g2, err := db.Gauges(ctx, g.OldestDue.Add(-time.Second)); err != nil || g2.Due != 0 {
		t.Fatalf("before the oldest due time: Gauges = %+v, %v; want none due", g2, err)
	}
	if _, err := db.CreateHold(ctx, connector.Hold{Feed: "hr", Kind: connector.HoldUpload, Reason: "x"}); err != nil {
		t.Fatal(err)
	}
	if g, err = db.Gauges(ctx, later); err != nil || g.OpenHolds != 1 {
		t.Fatalf("with a hold: Gauges = %+v, %v; want 1 open hold", g, err)
	}
}
