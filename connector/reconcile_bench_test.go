package connector_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/store"
)

// BenchmarkReconcile reconciles n workers in SQLite (a temp dir) against n
// sandbox accounts, in process (no network), 1% of them with profile drift. It
// reports, besides ns/op:
//   - live-MB: the highest live heap (as of each GC during the pass) above the
//     live heap before it: what the reconciler itself retains. The baseline (the
//     sandbox with its n accounts, the store's handles) is base-live-MB;
//   - peak-RSS-MB: the process's resident high-water mark (VmHWM) during the
//     pass, in-process sandbox included (Linux only; the mark is reset, and
//     freed memory returned to the OS, before the pass). The Go GC lets the heap
//     grow to twice the live heap between collections (GOGC=100), so with the
//     sandbox in process this is about twice base-live-MB plus live-MB.
//
// HRSYNC_BENCH_1M=1 adds the 1,000,000 case.
func BenchmarkReconcile(b *testing.B) {
	sizes := []int{10_000, 100_000}
	if os.Getenv("HRSYNC_BENCH_1M") == "1" {
		sizes = append(sizes, 1_000_000)
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("%dk", n/1000), func(b *testing.B) {
			ctx := context.Background()
			db, lms, feeds := seedReconcileBench(b, n)
			r, err := connector.NewReconciler(connector.ReconcilerConfig{Store: db, LMS: lms, Feeds: feeds})
			if err != nil {
				b.Fatal(err)
			}
			debug.FreeOSMemory()
			resetPeakRSS()
			stop := sampleHeap()
			b.ResetTimer()
			var s connector.ReconcileSummary
			for b.Loop() {
				s, err = r.Reconcile(ctx, func(connector.Finding) error { return nil })
				if err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			base, peak := stop()
			if s.Workers != n || s.Accounts != n || s.Counts[connector.ClassProfileDrift] != n/100 || s.Counts[connector.ClassInSync] != n-n/100 {
				b.Fatalf("summary: %+v", s)
			}
			b.ReportMetric(float64(peak-base)/(1<<20), "live-MB")
			b.ReportMetric(float64(base)/(1<<20), "base-live-MB")

			// One more pass, untimed, that collects garbage every tenth drift
			// finding (ten times per pass) and measures what is still reachable:
			// the reconciler's retained memory, without the floating garbage a
			// concurrent GC counts as live.
			var retained uint64
			seen := 0
			if _, err := r.Reconcile(ctx, func(connector.Finding) error {
				if seen++; seen%(max(n/1000, 1)) == 0 {
					runtime.GC()
					retained = max(retained, liveHeap()-base)
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(retained)/(1<<20), "retained-MB")
			if rss := peakRSS(); rss > 0 {
				b.ReportMetric(float64(rss)/(1<<20), "peak-RSS-MB")
			}
		})
	}
}

// seedReconcileBench records n hires and creates their n accounts (1% edited),
// and links them, without the converger: RecordFacts in big batches, accounts
// straight into the sandbox, links with ClaimDue and CompleteAll.
func seedReconcileBench(b *testing.B, n int) (*store.DB, *sandbox.LMS, connector.Feeds) {
	b.Helper()
	ctx := context.Background()
	feeds, err := connector.NewFeeds(connector.DefaultFeed("hr", connector.FeedHR))
	if err != nil {
		b.Fatal(err)
	}
	db, err := store.Open(ctx, "sqlite://"+filepath.Join(b.TempDir(), "bench.db"), nil, store.Migrate(true))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	// Account ids follow the worker ids: worker w0000042 has account a0000042.
	lms := sandbox.New(sandbox.WithIDs(func(seq int) string { return fmt.Sprintf("a%07d", seq-1) }))
	const batch = 10_000
	t0 := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	for start := 0; start < n; start += batch {
		facts := make([]connector.Fact, 0, batch)
		for i := start; i < min(start+batch, n); i++ {
			id := fmt.Sprintf("w%07d", i)
			p := connector.Profile{Email: id + "@example.com", GivenName: "Given" + id, FamilyName: "Family",
				EmployeeNumber: "E" + id[1:], OrgUnit: "ou-" + strconv.Itoa(i%50)}
			f := connector.Fact{Feed: "hr", WorkerID: id, Source: "/feeds/hr", ID: "h-" + id, Kind: connector.KindHired,
				Effective: t0, Time: t0, Profile: p}
			facts = append(facts, f)
			w, _ := connector.Want([]connector.Fact{f}, t0.Add(time.Hour), connector.DefaultPolicy())
			a := connector.Desired(w)
			if i%100 == 7 {
				a.Profile.GivenName = "Edited"
			}
			if _, err := lms.CreateAccount(ctx, a); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := db.RecordFacts(ctx, facts); err != nil {
			b.Fatal(err)
		}
	}
	for {
		cs, err := db.ClaimDue(ctx, "seed", time.Now().Add(time.Hour), time.Hour, batch)
		if err != nil {
			b.Fatal(err)
		}
		if len(cs) == 0 {
			break
		}
		comps := make([]connector.Completion, len(cs))
		for i, c := range cs {
			comps[i] = connector.Completion{Claim: c, Owner: "seed", AccountID: "a" + strings.TrimPrefix(c.Worker.WorkerID, "w")}
		}
		if err := db.CompleteAll(ctx, comps); err != nil {
			b.Fatal(err)
		}
	}
	return db, lms, feeds
}

// sampleHeap samples the live heap (as of the last GC) every millisecond until
// the returned function is called, which returns the live heap at the start and
// the highest sample.
func sampleHeap() func() (base, peak uint64) {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	read := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
	base := read()
	peak := base
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				peak = max(peak, read())
			}
		}
	})
	return func() (uint64, uint64) {
		close(done)
		wg.Wait()
		return base, max(peak, read())
	}
}

// liveHeap returns the live heap as of the last GC.
func liveHeap() uint64 {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(sample)
	return sample[0].Value.Uint64()
}

// resetPeakRSS resets the kernel's resident high-water mark of the process
// (Linux; ignored elsewhere).
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSS returns VmHWM from /proc/self/status in bytes, 0 if unknown.
func peakRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
