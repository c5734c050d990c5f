package moodle_test

import (
	"log/slog"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/faulty"
	"github.com/hrsync/hrsync/connector/lms/guard"
	"github.com/hrsync/hrsync/connector/lms/lmstest"
	"github.com/hrsync/hrsync/connector/lms/moodle"
	"github.com/hrsync/hrsync/connector/lms/moodle/moodlesim"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
)

// TestConformanceBehindFaults runs the suite on the guard over the adapter over
// the fault injector over the simulated site: 5xx, timeouts and 429s, half of
// the 5xx and timeouts after the site applied the call (FAULTY_SEED, or 1).
func TestConformanceBehindFaults(t *testing.T) {
	t.Parallel()
	seed := uint64(1)
	if s := os.Getenv("FAULTY_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("FAULTY_SEED: %v", err)
		}
		seed = n
	}
	var mu sync.Mutex
	var total faulty.Counts
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		t.Logf("seed %d: injected %+v", seed, total)
		if !t.Failed() && (total.ServerErrAfter == 0 || total.ServerErrBefore == 0 || total.TimeoutAfter == 0 || total.RateLimited == 0) {
			t.Errorf("the suite did not meet every kind of fault: %+v", total)
		}
	})
	n := uint64(0)
	sites := map[connector.LMS]*testBundle{}
	newLMS := func(t *testing.T) connector.LMS {
		mu.Lock()
		n++
		s := seed + n
		mu.Unlock()
		sb := sandbox.New(sandbox.WithDuplicateExternalIDs())
		sim := moodlesim.New(sb, conformanceSite)
		inj, err := faulty.New(sim, faulty.Config{Latency: 200 * time.Microsecond, Jitter: time.Millisecond,
			ServerErrors: 0.10, Timeouts: 0.05, Hold: 4 * time.Second, RateLimited: 0.02, RetryAfter: time.Second,
			After: 0.5, Seed: s})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(inj)
		t.Cleanup(srv.Close)
		c, err := moodle.New(srv.URL, testToken, moodle.WithHTTPClient(srv.Client()), moodle.WithTimeout(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		g := guard.New(c, guard.Config{MaxAttempts: 10, RetryBase: 5 * time.Millisecond, RetryMax: 100 * time.Millisecond,
			Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))})
		mu.Lock()
		sites[g] = &testBundle{sb: sb, sim: sim, client: c}
		mu.Unlock()
		t.Cleanup(func() {
			cn := inj.Counts()
			mu.Lock()
			defer mu.Unlock()
			total.Requests += cn.Requests
			total.ServerErrBefore += cn.ServerErrBefore
			total.ServerErrAfter += cn.ServerErrAfter
			total.TimeoutBefore += cn.TimeoutBefore
			total.TimeoutAfter += cn.TimeoutAfter
			total.RateLimited += cn.RateLimited
			if st := g.Status(); st.Quarantined {
				t.Errorf("the guard quarantined the LMS: %s", st)
			}
		})
		return g
	}
	lmstest.Run(t, lmstest.Features{DuplicateExternalIDs: true, NamesWithoutTags: true, LostAnswers: true}, newLMS)
}
