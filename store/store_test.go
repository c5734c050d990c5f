package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
	"github.com/hrsync/hrsync/store/pgtest"
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

// BenchmarkConvergeBatch measures the store's share of one converge round, as
// connector.Converger does it: claim 256 due workers, LoadHistories, then
// CompleteAll with a link and one audit row each, leaving them due again. The
// "each" variants do the same with LoadHistory and Complete per worker, for
// comparison. The "intent" variants add what the converger does for the audit's
// intent rows (docs/audit.md): one PendingActions read after the claim, one
// BeginActions insert of the batch's 256 calls before them, and the completion
// updating those rows instead of inserting. One worker in eight is a rehire with
// a predecessor.
func BenchmarkConvergeBatch(b *testing.B) {
	for _, backend := range []struct {
		name string
		url  func(testing.TB) string
	}{{"sqlite", sqliteURL}, {"postgres", pgtest.URL}} {
		for _, v := range []struct {
			name             string
			batched, intents bool
		}{{"batch", true, false}, {"batch+intent", true, true}, {"each", false, false}} {
			b.Run(backend.name+"/"+v.name, func(b *testing.B) {
				benchmarkConverge(b, mustOpen(b, backend.url(b)), v.batched, v.intents)
			})
		}
	}
}

func benchmarkConverge(b *testing.B, db *store.DB, batched, intents bool) {
	const pool, size = 1024, 256
	ctx := b.Context()
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	var facts []connector.Fact
	for i := range pool {
		id := fmt.Sprintf("w%05d", i)
		hire := connector.Fact{Feed: "hr", WorkerID: id, Source: "/feeds/hr", ID: "h-" + id, Kind: connector.KindHired,
			Effective: t0, Time: t0, Profile: connector.Profile{Email: id + "@example.com", GivenName: "Ann", FamilyName: "Lee"}}
		upd := hire
		upd.ID, upd.Kind, upd.Effective = "u-"+id, connector.KindUpdated, t0.Add(time.Hour)
		upd.Profile = connector.Profile{JobTitle: "Rep"}
		if i%8 == 0 {
			prev := "p" + id
			ph, pl := hire, hire
			ph.WorkerID, ph.ID = prev, "h-"+prev
			pl.WorkerID, pl.ID, pl.Kind, pl.Effective = prev, "l-"+prev, connector.KindLeft, t0.Add(-time.Hour)
			hire.Kind, hire.PreviousWorkerID = connector.KindRehired, prev
			facts = append(facts, ph, pl)
		}
		facts = append(facts, hire, upd)
	}
	if _, err := db.RecordFacts(ctx, facts); err != nil {
		b.Fatal(err)
	}
	claimAt := time.Now().Add(1000 * time.Hour)
	b.ReportAllocs()
	n, round := 0, 0
	for b.Loop() {
		claims, err := db.ClaimDue(ctx, "bench", claimAt, time.Minute, size)
		if err != nil {
			b.Fatal(err)
		}
		if len(claims) != size {
			b.Fatalf("claimed %d, want %d", len(claims), size)
		}
		keys := make([]connector.WorkerKey, len(claims))
		for i, c := range claims {
			keys[i] = c.Worker
		}
		if batched {
			hs, err := db.LoadHistories(ctx, keys)
			if err != nil || len(hs) != len(keys) || len(hs[0].Facts) < 2 {
				b.Fatalf("LoadHistories: %d histories, %v", len(hs), err)
			}
		} else {
			for _, k := range keys {
				if h, err := db.LoadHistory(ctx, k); err != nil || len(h.Facts) < 2 {
					b.Fatalf("LoadHistory(%s): %d facts, %v", k, len(h.Facts), err)
				}
			}
		}
		round++
		var ids []int64
		if intents {
			if _, err := db.PendingActions(ctx, keys, claimAt); err != nil {
				b.Fatal(err)
			}
			es := make([]connector.AuditEntry, len(claims))
			for i, c := range claims {
				es[i] = connector.AuditEntry{Feed: c.Worker.Feed, WorkerID: c.Worker.WorkerID, AccountID: "acct-" + c.Worker.WorkerID,
					Action: connector.ActionUpdate, Cause: "profile changed", FactIDs: []string{"/feeds/hr#u-" + c.Worker.WorkerID}}
			}
			if ids, err = db.BeginActions(ctx, es); err != nil {
				b.Fatal(err)
			}
		}
		cs := make([]connector.Completion, len(claims))
		for i, c := range claims {
			cs[i] = connector.Completion{Claim: c, Owner: "bench", AccountID: "acct-" + c.Worker.WorkerID,
				NextDue: t0.Add(time.Duration(round) * time.Second),
				Audit:   []connector.AuditEntry{{Action: connector.ActionUpdate, Outcome: connector.OutcomeOK, FactIDs: []string{"/feeds/hr#u-" + c.Worker.WorkerID}}}}
			if intents {
				cs[i].Audit[0].ID = ids[i]
			}
		}
		if batched {
			if err := db.CompleteAll(ctx, cs); err != nil {
				b.Fatal(err)
			}
		} else {
			for _, c := range cs {
				if err := db.Complete(ctx, c); err != nil {
					b.Fatal(err)
				}
			}
		}
		n += len(claims)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "workers/s")
}

// TestRedactURL: a database url in a log or an error keeps where it points and
// loses its password, wherever lib/pq would read one.
func TestRedactURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"postgres://hrsync:s3cret@db:5432/hr?sslmode=require":     "postgres://hrsync:xxxxx@db:5432/hr?sslmode=require",
		"postgres://hrsync@db/hr?password=s3cret&sslmode=disable": "postgres://hrsync@db/hr?password=xxxxx&sslmode=disable",
		"postgres://db/hr?sslpassword=s3cret&sslkey=%2Fetc%2Fk":   "postgres://db/hr?sslkey=%2Fetc%2Fk&sslpassword=xxxxx",
		"postgres://hrsync@db/hr?sslmode=disable":                 "postgres://hrsync@db/hr?sslmode=disable",
		"sqlite:///var/lib/hrsync.db":                             "sqlite:///var/lib/hrsync.db",
		"hrsync:s3cret@db/hr":                                     "(unparseable database url)",
		"postgres://hrsync:s3c%ret@db/hr":                         "(unparseable database url)",
	} {
		if got := store.RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
