package guard_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/guard"
)

// countingLMS records when each call reached it, on its clock. Every call succeeds.
type countingLMS struct {
	connector.LMS // nil: only GetAccount is used
	now           func() time.Time
	mu            sync.Mutex
	at            []time.Time
}

func (c *countingLMS) GetAccount(context.Context, string) (connector.Account, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at = append(c.at, c.now())
	return connector.Account{ID: "a"}, nil
}

func (c *countingLMS) times() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.at)
}

func TestParseRate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want guard.Rate
	}{
		{"", guard.Rate{}},
		{"unlimited", guard.Rate{}},
		{"0", guard.Rate{}},
		{"10/s", guard.Rate{N: 10, Per: time.Second}},
		{"1000/h", guard.Rate{N: 1000, Per: time.Hour}},
		{" 600 / min ", guard.Rate{N: 600, Per: time.Minute}},
		{"2.5/s", guard.Rate{N: 2.5, Per: time.Second}},
		{"5/10s", guard.Rate{N: 5, Per: 10 * time.Second}},
	} {
		got, err := guard.ParseRate(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseRate(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
		if err == nil && !got.Unlimited() {
			if again, err := guard.ParseRate(got.String()); err != nil || again != got {
				t.Errorf("ParseRate(%q.String() = %q) = %+v, %v", tc.in, got.String(), again, err)
			}
		}
	}
	for _, bad := range []string{"10", "x/s", "-1/s", "10/fortnight", "10/-1s", "NaN/s", "Inf/h"} {
		if r, err := guard.ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) = %+v, want an error", bad, r)
		}
	}
}

// checkRate fails if any run of calls in times (sorted) started faster than a token
// bucket of rate and burst allows: for i < j, j-i+1 <= burst + rate*(t_j - t_i).
func checkRate(t *testing.T, times []time.Time, perSec float64, burst int) {
	t.Helper()
	for i := range times {
		for j := i + 1; j < len(times); j++ {
			allowed := float64(burst) + perSec*times[j].Sub(times[i]).Seconds() + 1e-6
			if n := float64(j - i + 1); n > allowed {
				t.Fatalf("calls %d..%d: %v calls in %v, the rate allows %.2f", i, j, n, times[j].Sub(times[i]), allowed)
			}
		}
	}
}

// TestRateLimitFakeClock saturates the guard with callers on a fake clock: the
// rate is never exceeded and at least 95% of it is used. No real time is involved,
// so this is exact and not timing-sensitive.
func TestRateLimitFakeClock(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		rate    string
		burst   int
		callers int
		span    time.Duration
	}{
		{"10/s", 0, 4, time.Minute},
		{"1000/h", 0, 8, 2 * time.Hour},
		{"50/s", 5, 16, 20 * time.Second},
		{"3/m", 2, 3, time.Hour},
	} {
		t.Run(tc.rate, func(t *testing.T) {
			t.Parallel()
			r, err := guard.ParseRate(tc.rate)
			if err != nil {
				t.Fatal(err)
			}
			clock := newFakeClock()
			inner := &countingLMS{now: clock.Now}
			var waited time.Duration
			var mu sync.Mutex
			g := guard.New(inner, guard.Config{Rate: r, Burst: tc.burst, Clock: clock,
				Hooks: guard.Hooks{RateWait: func(d time.Duration) { mu.Lock(); waited += d; mu.Unlock() }}})
			burst := tc.burst
			if burst == 0 {
				burst = 1 // the default for these rates
			}
			start := clock.Now()
			ctx, cancel := context.WithCancel(t.Context())
			var wg sync.WaitGroup
			for range tc.callers {
				wg.Go(func() {
					for ctx.Err() == nil {
						if _, err := g.GetAccount(ctx, "a"); err != nil && ctx.Err() == nil {
							t.Errorf("GetAccount: %v", err)
							return
						}
					}
				})
			}
			end := start.Add(tc.span)
			for steps := 0; clock.Now().Before(end); steps++ {
				if steps > 1_000_000 {
					t.Fatal("too many steps")
				}
				clock.awaitWaiting(t, tc.callers) // every caller is blocked on the limiter
				clock.AdvanceToNext()
			}
			clock.awaitWaiting(t, tc.callers)
			cancel()
			wg.Wait()

			var times []time.Time
			for _, at := range inner.times() {
				if !at.After(end) {
					times = append(times, at)
				}
			}
			checkRate(t, times, r.PerSecond(), burst)
			ideal := r.PerSecond() * tc.span.Seconds()
			if got := float64(len(times)); got < 0.95*ideal {
				t.Errorf("%v calls in %v, want at least 95%% of %.0f", got, tc.span, ideal)
			}
			if got := float64(len(times)); got > ideal+float64(burst) {
				t.Errorf("%v calls in %v, want at most %.0f", got, tc.span, ideal+float64(burst))
			}
			mu.Lock()
			defer mu.Unlock()
			if waited <= 0 {
				t.Error("RateWait hook reported no waiting")
			}
		})
	}
}

// TestRateLimitRealClock runs a high rate on the real clock. The rate is never
// exceeded (that holds however slow the machine is); utilisation is only checked
// loosely here, the fake-clock test checks it exactly.
func TestRateLimitRealClock(t *testing.T) {
	t.Parallel()
	const perSec, burst, callers = 400.0, 4, 8
	inner := &countingLMS{now: time.Now}
	// The bucket fills from its creation on: the allowance counts from then.
	start := time.Now()
	g := guard.New(inner, guard.Config{Rate: guard.Rate{N: perSec, Per: time.Second}, Burst: burst})
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for ctx.Err() == nil {
				_, _ = g.GetAccount(ctx, "a")
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	n := float64(len(inner.times()))
	if limit := burst + perSec*elapsed.Seconds(); n > limit {
		t.Errorf("%v calls in %v, the rate allows %.1f", n, elapsed, limit)
	}
	if n < 0.5*perSec*0.3 {
		t.Errorf("%v calls in %v: far below the rate", n, elapsed)
	}
}

// TestRateLimitDeadline: a call whose deadline comes before its slot fails at once
// with a rate-limited error that says when to come back, and takes no slot.
func TestRateLimitDeadline(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	inner := &countingLMS{now: clock.Now}
	g := guard.New(inner, guard.Config{Rate: guard.Rate{N: 1, Per: time.Hour}, Clock: clock})
	if _, err := g.GetAccount(t.Context(), "a"); err != nil {
		t.Fatal(err) // the burst
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	_, err := g.GetAccount(ctx, "a")
	var le *connector.LMSError
	if !errors.As(err, &le) || le.Kind != connector.KindRateLimited || le.RetryAfter < 59*time.Minute {
		t.Fatalf("error %v, want rate_limited with RetryAfter about an hour", err)
	}
	if !connector.IsTemporary(err) {
		t.Error("the converger must retry it later")
	}
	// No slot was taken: after an hour, one call goes at once.
	clock.Advance(time.Hour)
	done := make(chan error, 1)
	go func() { _, err := g.GetAccount(t.Context(), "a"); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the call after an hour waited")
	}
	if n := len(inner.times()); n != 2 {
		t.Errorf("%d calls reached the LMS, want 2", n)
	}
}

// TestRateLimitCancelGivesBack: a waiter that gives up returns its slot, so the
// next caller does not wait for it.
func TestRateLimitCancelGivesBack(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	inner := &countingLMS{now: clock.Now}
	g := guard.New(inner, guard.Config{Rate: guard.Rate{N: 1, Per: time.Second}, Clock: clock})
	if _, err := g.GetAccount(t.Context(), "a"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { _, err := g.GetAccount(ctx, "a"); done <- err }()
	clock.awaitWaiting(t, 1)
	cancel()
	if err := <-done; err == nil {
		t.Fatal("the cancelled call went through")
	}
	clock.Advance(time.Second)
	go func() { _, err := g.GetAccount(t.Context(), "a"); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the slot of the cancelled call was not given back; waits %v", clock.Waits())
	}
}
