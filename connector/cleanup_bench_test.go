package connector_test

import (
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/guard"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/connector/lms/scim"
	"github.com/hrsync/hrsync/store"
)

// skipClock is a guard.Clock whose waits pass at once and move it on by their
// length: a single-threaded job under a rate limit of 1,000 calls an hour then
// takes the LMS time it would take for real, without the benchmark waiting for it.
type skipClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *skipClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *skipClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(max(d, 0))
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

// BenchmarkCleanup16k deletes 16,000 never-used accounts from the sandbox (the
// admin's old batch import) through the guard at Docebo's 1,000 calls an hour:
// the report's scan, then the approved job in bulk calls. The rate limit's waits
// run on a skipping clock, so the lms-hours metrics are the LMS time the job takes
// for real, and ns/op only hrsync's own work (and, over SCIM, the sandbox's).
// docs/cleanup.md quotes the figures.
//
//   - sandbox: the in-process adapter (bulk of 1,000, activity of 1,000 per call);
//   - scim: the SCIM client against the sandbox's SCIM server on loopback (SCIM
//     Bulk of up to 1,000 deletions, activity by an id filter of up to 1,000 per
//     call, sent as POST /Users/.search).
func BenchmarkCleanup16k(b *testing.B) {
	b.Run("sandbox", func(b *testing.B) {
		benchCleanup(b, func(sb *sandbox.LMS) connector.LMS { return sb })
	})
	b.Run("scim", func(b *testing.B) {
		benchCleanup(b, func(sb *sandbox.LMS) connector.LMS {
			srv := httptest.NewServer(sb.Handler("bench-token"))
			b.Cleanup(srv.Close)
			c, err := scim.New(srv.URL+sandbox.BasePath, scim.WithBearerToken("bench-token"))
			if err != nil {
				b.Fatal(err)
			}
			return c
		})
	})
}

func benchCleanup(b *testing.B, adapter func(*sandbox.LMS) connector.LMS) {
	const n = 16_000
	for b.Loop() {
		b.StopTimer()
		ctx := b.Context()
		created := time.Date(2021, 3, 1, 9, 0, 0, 0, time.UTC)
		sb := sandbox.New(sandbox.WithClock(func() time.Time { return created }))
		for i := range n {
			if _, err := sb.CreateAccount(ctx, connector.Account{ExternalID: fmt.Sprintf("import:%05d", i),
				UserName: fmt.Sprintf("import%05d@old.example", i), Active: true}); err != nil {
				b.Fatal(err)
			}
		}
		db, err := store.Open(ctx, "sqlite://"+filepath.Join(b.TempDir(), "b.db"), nil, store.Migrate(true))
		if err != nil {
			b.Fatal(err)
		}
		feeds, err := connector.NewFeeds(connector.DefaultFeed("hr", connector.FeedHR))
		if err != nil {
			b.Fatal(err)
		}
		clock := &skipClock{now: time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)}
		calls := 0
		lms := guard.New(adapter(sb), guard.Config{Rate: guard.Rate{N: 1000, Per: time.Hour}, Clock: clock,
			Hooks: guard.Hooks{Call: func(string, string) { calls++ }}})
		b.StartTimer()

		start := clock.Now()
		sel, err := connector.Selector{LMS: lms, Store: db, Feeds: feeds, PageSize: sandbox.MaxResults}.Select(ctx,
			connector.DormantFilter{NoLogin: true, NoEnrollments: true, CreatedBefore: time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC)})
		if err != nil {
			b.Fatal(err)
		}
		scanCalls, scanTime := calls, clock.Now().Sub(start)
		if len(sel.Items) != n {
			b.Fatalf("selected %d of %d", len(sel.Items), n)
		}
		est := connector.EstimateJob(n, 0, lms.MaxBulkDeletes(ctx), lms.MaxActivityBatch(ctx), 1000)
		hold, err := db.CreateJob(ctx, connector.Hold{Kind: connector.HoldCleanup, Reason: "bench"}, sel.Items)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := db.DecideHold(ctx, hold, connector.HoldDecision{Approve: true, By: "bench", Reason: "bench"}); err != nil {
			b.Fatal(err)
		}
		calls, start = 0, clock.Now()
		sum, err := connector.JobRunner{LMS: lms, Store: db}.Run(ctx, hold)
		if err != nil {
			b.Fatal(err)
		}
		runTime := clock.Now().Sub(start)
		if sum.Done != n || sb.Count() != 0 {
			b.Fatalf("done %d of %d; %d accounts left", sum.Done, n, sb.Count())
		}
		if sum.Calls != est.Calls {
			b.Errorf("the run made %d LMS calls; the plan said %d (%s)", sum.Calls, est.Calls, est)
		}
		b.StopTimer()
		db.Close()
		b.ReportMetric(float64(scanCalls), "scan-calls")
		b.ReportMetric(scanTime.Hours(), "scan-lms-hours")
		b.ReportMetric(float64(calls), "run-calls")
		b.ReportMetric(runTime.Hours(), "run-lms-hours")
		b.ReportMetric(est.Duration.Hours(), "planned-run-hours")
		b.ReportMetric(connector.EstimateJob(n, 0, 0, 0, 1000).Duration.Hours(), "one-by-one-hours")
		b.StartTimer()
	}
}
