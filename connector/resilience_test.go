package connector_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/faulty"
	"github.com/hrsync/hrsync/connector/lms/guard"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/connector/lms/scim"
	"github.com/hrsync/hrsync/store"
)

// resilienceBundle is the converger on a real SQLite store, driving the sandbox
// over HTTP behind the fault injector, through the SCIM client and the guard.
type resilienceBundle struct {
	db       *store.DB
	feeds    connector.Feeds
	sandbox  *sandbox.LMS
	faults   *faulty.Injector
	guard    *guard.LMS
	conv     *connector.Converger
	seq      int
	failures atomic.Int64 // converge attempts that failed and were rescheduled
}

func setupResilience(t *testing.T, fc faulty.Config, gc guard.Config, claim int) *resilienceBundle {
	t.Helper()
	b := &resilienceBundle{sandbox: sandbox.New()}
	var err error
	b.feeds, err = connector.NewFeeds(connector.DefaultFeed("hr", connector.FeedHR))
	if err != nil {
		t.Fatal(err)
	}
	b.db, err = store.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "x.db"), nil, store.Migrate(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.db.Close() })
	b.faults, err = faulty.New(b.sandbox.Handler(""), fc)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(b.faults)
	t.Cleanup(srv.Close)
	client, err := scim.New(srv.URL+sandbox.BasePath, scim.WithHTTPClient(srv.Client()), scim.WithTimeout(time.Second)) // loaded CI machines must not add timeouts
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError}))
	gc.Logger = log
	b.guard = guard.New(client, gc)
	b.conv, err = connector.NewConverger(connector.ConvergerConfig{Store: b.db, LMS: b.guard, Feeds: b.feeds, Logger: log,
		Batch: claim, PollInterval: 20 * time.Millisecond, RetryBase: 10 * time.Millisecond, RetryMax: 200 * time.Millisecond,
		Hooks: connector.ConvergerHooks{Converged: func(_ connector.WorkerKey, _ time.Duration, err error) {
			if err != nil {
				b.failures.Add(1)
			}
		}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.conv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return b
}

func (b *resilienceBundle) record(t *testing.T, facts ...connector.Fact) {
	t.Helper()
	for i := range facts {
		b.seq++
		facts[i].Feed, facts[i].Source, facts[i].ID = "hr", b.feeds["hr"].Source, fmt.Sprintf("e%d", b.seq)
		if facts[i].Time.IsZero() {
			facts[i].Time = time.Now()
		}
	}
	if _, err := b.db.RecordFacts(context.Background(), facts); err != nil {
		t.Fatal(err)
	}
	b.conv.Notify()
}

// want is the account state a worker should end in.
type want struct {
	active  bool
	profile connector.Profile
}

// settled reports whether the sandbox holds exactly the wanted accounts and no
// worker is due; it says what differs otherwise.
func (b *resilienceBundle) settled(wants map[string]want) (bool, string) {
	snap := b.sandbox.Snapshot()
	if len(snap) != len(wants) {
		return false, fmt.Sprintf("%d accounts, want %d", len(snap), len(wants))
	}
	for _, r := range snap {
		w, ok := wants[r.Account.ExternalID]
		if !ok {
			return false, fmt.Sprintf("unexpected account %+v", r.Account)
		}
		if r.Account.Active != w.active || r.Account.Profile != w.profile {
			return false, fmt.Sprintf("account %s: active %v profile %+v, want %v %+v",
				r.Account.ExternalID, r.Account.Active, r.Account.Profile, w.active, w.profile)
		}
	}
	if _, due, err := b.db.NextDue(context.Background()); err != nil || due {
		return false, fmt.Sprintf("workers still due (err %v)", err)
	}
	return true, ""
}

func (b *resilienceBundle) awaitSettled(t *testing.T, wants map[string]want) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		ok, why := b.settled(wants)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not converged after 90s: %s (faults %+v)", why, b.faults.Counts())
		}
		<-time.After(20 * time.Millisecond)
	}
}

// TestConvergeThroughFaults runs the converger over 100 workers, hires then leaves
// and profile changes, against an LMS that fails 10% of calls with 5xx, times out
// on 5% and rate-limits some, half of the failures after applying the request. It
// must end in exactly the expected LMS state, with one account per worker, every
// worker linked, no review items and no dead letters.
func TestConvergeThroughFaults(t *testing.T) {
	t.Parallel()
	seed := uint64(1)
	if s := os.Getenv("FAULTY_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatal(err)
		}
	}
	b := setupResilience(t, faulty.Config{Latency: 200 * time.Microsecond, Jitter: time.Millisecond,
		ServerErrors: 0.10, Timeouts: 0.05, Hold: 4 * time.Second, RateLimited: 0.03, RetryAfter: time.Second,
		After: 0.5, Seed: seed},
		// Few attempts per call, so that some failures reach the converger's own retries.
		guard.Config{MaxAttempts: 2, RetryBase: 5 * time.Millisecond, RetryMax: 50 * time.Millisecond},
		// Small claims: a claim's reads are one POST /Users/.search per rule and its
		// writes one Bulk request a kind, so claims of 64 would make too few
		// requests (about 20 for this run) for the faults to be met.
		8)
	const n = 100
	wants := map[string]want{}
	now := time.Now()
	var hires []connector.Fact
	for i := range n {
		id := fmt.Sprintf("w%03d", i)
		p := connector.Profile{Email: id + "@example.com", GivenName: "Given" + id, FamilyName: "Family",
			EmployeeNumber: "E" + id, JobTitle: "Engineer"}
		hires = append(hires, connector.Fact{WorkerID: id, Kind: connector.KindHired, Effective: now, Profile: p})
		wants["hr:"+id] = want{active: true, profile: p}
	}
	b.record(t, hires...)
	b.awaitSettled(t, wants)

	var changes []connector.Fact
	for i := range 30 { // leavers
		id := fmt.Sprintf("w%03d", i)
		changes = append(changes, connector.Fact{WorkerID: id, Kind: connector.KindLeft, Effective: time.Now()})
		w := wants["hr:"+id]
		w.active = false
		wants["hr:"+id] = w
	}
	for i := 30; i < 45; i++ { // promotions
		id := fmt.Sprintf("w%03d", i)
		changes = append(changes, connector.Fact{WorkerID: id, Kind: connector.KindUpdated, Effective: time.Now(),
			Profile: connector.Profile{JobTitle: "Lead"}})
		w := wants["hr:"+id]
		w.profile.JobTitle = "Lead"
		wants["hr:"+id] = w
	}
	b.record(t, changes...)
	b.awaitSettled(t, wants)

	ctx := context.Background()
	if reviews, err := b.db.ListReviews(ctx, store.ReviewFilter{}); err != nil || len(reviews) != 0 {
		t.Errorf("review items %+v (err %v); transient faults must raise none", reviews, err)
	}
	if dead, err := b.db.ListDeadLetters(ctx, store.DeadLetterFilter{Status: store.DeadLetterAll}); err != nil || len(dead) != 0 {
		t.Errorf("dead letters %+v (err %v); transient faults must put nothing there", dead, err)
	}
	links, err := b.db.Links(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]string{}
	for _, r := range b.sandbox.Snapshot() {
		byID[r.Account.ID] = r.Account.ExternalID
	}
	if len(links) != n {
		t.Errorf("%d links, want %d", len(links), n)
	}
	for w, acc := range links {
		if byID[acc] != w.ExternalID() {
			t.Errorf("worker %s is linked to %s (%q)", w, acc, byID[acc])
		}
	}
	creates := 0
	for _, op := range b.sandbox.Ops() {
		if op.Kind == sandbox.OpCreate {
			creates++
		}
	}
	if creates != n {
		t.Errorf("%d creates reached the LMS, want %d: a lost answer was retried into a second create", creates, n)
	}
	c := b.faults.Counts()
	t.Logf("seed %d: faults %+v; %d converge attempts failed and were retried", seed, c, b.failures.Load())
	if c.ServerErrAfter == 0 || c.TimeoutAfter == 0 || c.RateLimited == 0 {
		t.Errorf("the run met too few faults to mean anything: %+v", c)
	}
	if st := b.guard.Status(); st.Quarantined {
		t.Errorf("quarantined: %s", st)
	}
}

// TestConvergeThroughOutage: an outage quarantines the LMS, the converger pauses
// instead of burning retries, and once the LMS is back it resumes on its own and
// finishes the work.
func TestConvergeThroughOutage(t *testing.T) {
	t.Parallel()
	b := setupResilience(t, faulty.Config{},
		guard.Config{MaxAttempts: 2, RetryBase: time.Millisecond, RetryMax: 2 * time.Millisecond,
			Quarantine: guard.QuarantineConfig{Consecutive: 5, ProbeInterval: 50 * time.Millisecond, MaxProbeInterval: 100 * time.Millisecond}},
		0) // one claim holds all 20 hires
	b.faults.SetOutage(http.StatusServiceUnavailable)
	wants := map[string]want{}
	var hires []connector.Fact
	for i := range 20 {
		id := fmt.Sprintf("w%03d", i)
		p := connector.Profile{Email: id + "@example.com", GivenName: "G", FamilyName: "F"}
		hires = append(hires, connector.Fact{WorkerID: id, Kind: connector.KindHired, Effective: time.Now(), Profile: p})
		wants["hr:"+id] = want{active: true, profile: p}
	}
	b.record(t, hires...)
	// The first batch fails (the quarantine begins during it); then the converger
	// pauses: no more converge attempts, and only probes reach the LMS.
	pollUntil(t, 30*time.Second, "no quarantine during the outage", func() bool {
		return b.guard.Status().Quarantined && b.failures.Load() >= int64(len(hires))
	})
	before, failuresBefore := b.faults.Counts().Requests, b.failures.Load()
	pollUntil(t, 30*time.Second, "no probe failed", func() bool {
		return b.faults.Counts().Requests >= before+3 // three probes, at 50ms, 100ms, 100ms
	})
	if got := b.failures.Load() - failuresBefore; got != 0 {
		t.Errorf("%d converge attempts failed during the quarantine; the converger should have paused", got)
	}
	if got := b.faults.Counts().Requests - before; got > 4 {
		t.Errorf("%d requests reached the LMS during the quarantine, want only the probes", got)
	}
	b.faults.SetOutage(0)
	b.awaitSettled(t, wants)
	if reviews, err := b.db.ListReviews(context.Background(), store.ReviewFilter{}); err != nil || len(reviews) != 0 {
		t.Errorf("review items %+v (err %v)", reviews, err)
	}
}
