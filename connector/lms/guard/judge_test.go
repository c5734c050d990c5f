package guard_test

import (
	"context"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/guard"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
)

// answer is how the simulated LMS answers one call: after d of fake time, with err.
type answer struct {
	d   time.Duration
	err error
}

type answerKey struct{}

// timedLMS answers ListAccounts after the fake time the caller's plan says (put
// in the context by the worker), then with the plan's error or a page.
type timedLMS struct {
	connector.LMS
	clock *fakeClock
}

func (l *timedLMS) ListAccounts(ctx context.Context, start, count int) (connector.AccountPage, error) {
	a, _ := ctx.Value(answerKey{}).(answer)
	if a.d > 0 {
		<-l.clock.After(a.d)
	}
	if a.err != nil {
		return connector.AccountPage{}, a.err
	}
	return connector.AccountPage{}, nil
}

// timeout is what the scim client returns when its HTTP timeout fires.
func timeout() error {
	return &connector.LMSError{Kind: connector.KindUnavailable, Op: "ListAccounts", Reason: "no answer", Err: context.DeadlineExceeded}
}

// plan decides the answer to worker w's call n, which starts at elapsed fake time
// since the simulation began. rng is the worker's own.
type plan func(w, n int, elapsed time.Duration, rng *rand.Rand) answer

// badSlot reports whether the 50ms slot i is one in which the LMS stalls every
// call that starts (4% of the slots, chosen by a hash: the same in every run).
func badSlot(i int64, pct uint32) bool {
	h := fnv.New32a()
	_, _ = h.Write([]byte{byte(i), byte(i >> 8), byte(i >> 16), byte(i >> 24)})
	return h.Sum32()%100 < pct
}

const (
	fast  = 50 * time.Millisecond
	stall = 15 * time.Second
)

// simResult is what a simulation saw.
type simResult struct {
	calls, failed, fast int           // attempts that reached the LMS, failed there, failed fast
	quarantinedAt       time.Duration // since the start; -1 if never
	status              guard.Status  // at the moment the quarantine began
	end                 time.Duration // fake time at the end
}

// simulate runs workers callers, each making calls sequential calls through g, on
// the fake clock: it advances the clock only when every caller waits for it, so
// that the run is the same whatever the goroutine scheduling. No real time passes.
func simulate(t *testing.T, workers, calls int, p plan) simResult {
	t.Helper()
	clock := newFakeClock()
	t0 := clock.Now()
	res := simResult{quarantinedAt: -1}
	var mu sync.Mutex
	var g *guard.LMS
	g = guard.New(&timedLMS{LMS: sandbox.New(), clock: clock}, guard.Config{MaxAttempts: 1, Clock: clock,
		Hooks: guard.Hooks{Quarantine: func(q bool) {
			mu.Lock()
			defer mu.Unlock()
			if q && res.quarantinedAt < 0 {
				res.quarantinedAt = clock.Now().Sub(t0)
				res.status = g.Status()
			}
		}},
		Quarantine: guard.QuarantineConfig{ProbeInterval: 30 * time.Second, MaxProbeInterval: time.Minute}})

	var live atomic.Int64
	live.Store(int64(workers))
	var nCalls, nFailed, nFast atomic.Int64
	for w := range workers {
		go func() {
			defer func() {
				live.Add(-1)
				select {
				case clock.registered <- struct{}{}:
				default:
				}
			}()
			rng := rand.New(rand.NewPCG(uint64(w)+1, 7))
			for n := range calls {
				a := p(w, n, clock.Now().Sub(t0), rng)
				_, err := g.ListAccounts(context.WithValue(context.Background(), answerKey{}, a), 1, 1)
				switch {
				case err == nil:
					nCalls.Add(1)
				case strings.Contains(err.Error(), "quarantined"):
					nFast.Add(1)
				default:
					nCalls.Add(1)
					nFailed.Add(1)
				}
			}
		}()
	}
	// Bounded: every step fires at least one timer, and each call sets at most one.
	for steps := 0; live.Load() > 0; steps++ {
		if steps > workers*calls+10 {
			t.Fatalf("simulation did not end after %d steps", steps)
		}
		for int64(clock.Waiting()) < live.Load() {
			select {
			case <-clock.registered:
			case <-time.After(10 * time.Second):
				t.Fatalf("simulation stuck: %d timers pending, %d callers live", clock.Waiting(), live.Load())
			}
		}
		if live.Load() > 0 {
			clock.AdvanceToNext()
		}
	}
	res.calls, res.failed, res.fast = int(nCalls.Load()), int(nFailed.Load()), int(nFast.Load())
	res.end = clock.Now().Sub(t0)
	return res
}

// TestQuarantineJudgesTheLMS: calls that stall and time out together while the
// LMS answers everything else are not an outage; an LMS that answers nothing is
// quarantined within the period, serially or concurrently.
func TestQuarantineJudgesTheLMS(t *testing.T) {
	t.Parallel()
	down := func(d time.Duration, err func() error) plan {
		return func(int, int, time.Duration, *rand.Rand) answer { return answer{d, err()} }
	}
	tests := []struct {
		name           string
		workers, calls int
		plan           plan
		// within: the LMS must be quarantined within this much fake time; 0: never.
		within time.Duration
		reason []string // substrings of the reason
	}{{
		// The LMS hiccups in 4% of the 50ms slots: every call that starts in one
		// stalls until the 15s timeout, so the 16 callers time out together.
		name: "StallsTimeOutTogether", workers: 16, calls: 150,
		plan: func(_, _ int, elapsed time.Duration, _ *rand.Rand) answer {
			if badSlot(int64(elapsed/fast), 4) {
				return answer{stall, timeout()}
			}
			return answer{fast, nil}
		},
	}, {
		name: "IndependentStalls", workers: 16, calls: 150,
		plan: func(_, _ int, _ time.Duration, rng *rand.Rand) answer {
			if rng.IntN(100) < 4 {
				return answer{stall, timeout()}
			}
			return answer{fast, nil}
		},
	}, {
		// Half the calls fail fast: the LMS is struggling, not down.
		name: "HalfFail", workers: 16, calls: 150,
		plan: func(_, _ int, _ time.Duration, rng *rand.Rand) answer {
			if rng.IntN(2) == 0 {
				return answer{fast, unavailable(503)}
			}
			return answer{fast, nil}
		},
	}, {
		name: "DownSerial", workers: 1, calls: 100, plan: down(100*time.Millisecond, func() error { return unavailable(503) }),
		within: 10 * time.Second, reason: []string{"calls in a row failed", "last: unavailable (HTTP 503)"},
	}, {
		name: "DownConcurrent", workers: 16, calls: 100, plan: down(100*time.Millisecond, func() error { return unavailable(503) }),
		within: 10 * time.Second, reason: []string{"calls in a row failed", "last: unavailable (HTTP 503)"},
	}, {
		// Every call hangs until the timeout. The first evidence comes at 15s, all
		// at once: as for stalls that time out together, the quarantine waits for
		// the next set of calls to fail too, a period later.
		name: "HungConcurrent", workers: 16, calls: 20, plan: down(stall, timeout),
		within: 2 * stall, reason: []string{"no call succeeded for 15s: 17 calls in a row failed, worth 1.1 counting calls in flight together once; last: unavailable (timeout)"},
	}, {
		name: "HungSerial", workers: 1, calls: 20, plan: down(stall, timeout),
		within: 3 * stall, reason: []string{"no call succeeded for 30s: 3 calls in a row failed; last: unavailable (timeout)"},
	}, {
		name: "MostlyFailing", workers: 16, calls: 200,
		plan: func(_, _ int, _ time.Duration, rng *rand.Rand) answer {
			if rng.IntN(10) != 0 {
				return answer{fast, unavailable(502)}
			}
			return answer{fast, nil}
		},
		within: 10 * time.Second, reason: []string{"of the last", "last: unavailable (HTTP 502)"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := simulate(t, tc.workers, tc.calls, tc.plan)
			t.Logf("%d calls reached the LMS in %s, %d failed there, %d failed fast; quarantined at %s: %s",
				r.calls, r.end, r.failed, r.fast, r.quarantinedAt, r.status.Reason)
			if tc.within == 0 {
				if r.quarantinedAt >= 0 {
					t.Fatalf("quarantined at %s (%d of %d calls failed): %s", r.quarantinedAt, r.failed, r.calls, r.status.Reason)
				}
				if r.failed == 0 {
					t.Fatal("no call failed: the simulation tests nothing")
				}
				return
			}
			if r.quarantinedAt < 0 || r.quarantinedAt > tc.within {
				t.Fatalf("quarantined at %s, want within %s", r.quarantinedAt, tc.within)
			}
			for _, s := range tc.reason {
				if !strings.Contains(r.status.Reason, s) {
					t.Errorf("reason %q lacks %q", r.status.Reason, s)
				}
			}
		})
	}
}

// TestQuarantineDisabled: with the quarantine off, a down LMS is called every time.
func TestQuarantineDisabled(t *testing.T) {
	t.Parallel()
	inner := &failing{LMS: sandbox.New(), err: unavailable(503)}
	g := guard.New(inner, guard.Config{MaxAttempts: 1, Clock: newFakeClock(), Quarantine: guard.QuarantineConfig{Disabled: true}})
	for range 50 {
		if _, err := g.ListAccounts(t.Context(), 1, 1); !isKind(err, connector.KindUnavailable) || strings.Contains(err.Error(), "quarantined") {
			t.Fatalf("error %v, want the LMS's own", err)
		}
	}
	if st := g.Status(); st.Quarantined || inner.calls.Load() != 50 {
		t.Fatalf("Status %+v after %d calls; want no quarantine and 50 calls", st, inner.calls.Load())
	}
}
