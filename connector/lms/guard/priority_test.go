package guard_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/guard"
)

// call is one call that reached the LMS: the id asked for and when, on the clock.
type call struct {
	id string
	at time.Time
}

// recordingLMS records every GetAccount with its id. Every call succeeds.
type recordingLMS struct {
	connector.LMS // nil: only GetAccount is used
	now           func() time.Time
	mu            sync.Mutex
	calls         []call
}

func (r *recordingLMS) GetAccount(_ context.Context, id string) (connector.Account, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, call{id: id, at: r.now()})
	return connector.Account{ID: id}, nil
}

func (r *recordingLMS) seen() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

func TestPriorityContext(t *testing.T) {
	t.Parallel()
	if p := guard.PriorityOf(t.Context()); p != guard.Live {
		t.Errorf("default priority %v, want live", p)
	}
	ctx := guard.WithPriority(t.Context(), guard.Background)
	if p := guard.PriorityOf(ctx); p != guard.Background {
		t.Errorf("priority %v, want background", p)
	}
	if p := guard.PriorityOf(guard.WithPriority(ctx, guard.Live)); p != guard.Live {
		t.Errorf("priority %v, want live: the innermost class counts", p)
	}
}

// TestRatePriorityOvertakes: with a backlog of background calls waiting, a live
// call issued later starts before every background call still waiting, and the
// background calls still all go, one slot each, once no live call waits.
func TestRatePriorityOvertakes(t *testing.T) {
	t.Parallel()
	const bg = 20
	clock := newFakeClock()
	inner := &recordingLMS{now: clock.Now}
	g := guard.New(inner, guard.Config{Rate: guard.Rate{N: 10, Per: time.Second}, Clock: clock})
	if _, err := g.GetAccount(t.Context(), "first"); err != nil { // takes the burst
		t.Fatal(err)
	}
	bctx := guard.WithPriority(t.Context(), guard.Background)
	errs := make(chan error, bg+2)
	for i := range bg {
		go func() { _, err := g.GetAccount(bctx, "bg-"+string(rune('a'+i))); errs <- err }()
	}
	clock.awaitWaiting(t, bg)
	// Two slots go to background calls before the live ones come.
	for i := range 2 {
		clock.AdvanceToNext()
		for len(inner.seen()) < 2+i {
			clock.awaitWaiting(t, 1) // wait for the call to go (bounded by the 10s there)
		}
	}
	clock.awaitWaiting(t, bg-2)
	issued := clock.Now()
	for i, id := range []string{"live-1", "live-2"} {
		go func() { _, err := g.GetAccount(t.Context(), id); errs <- err }()
		clock.awaitWaiting(t, bg-2+i+1)
	}
	runAll(t, clock, errs, bg+2)
	calls := inner.seen()
	var order []string
	var times []time.Time
	for _, c := range calls {
		order = append(order, c.id)
		times = append(times, c.at)
	}
	// first, two background calls, then the two live calls in the order they
	// came, then the other background calls in the order they came.
	if !strings.HasPrefix(order[3], "live-1") || !strings.HasPrefix(order[4], "live-2") {
		t.Fatalf("order %v: the live calls did not overtake the waiting background calls", order)
	}
	if d := calls[3].at.Sub(issued); d > 100*time.Millisecond {
		t.Errorf("the first live call waited %v under a background backlog, want at most one slot (100ms)", d)
	}
	var bgs []string
	for _, id := range order {
		if strings.HasPrefix(id, "bg-") {
			bgs = append(bgs, id)
		}
	}
	if len(bgs) != bg {
		t.Fatalf("%d background calls went, want %d: %v", len(bgs), bg, order)
	}
	checkRate(t, times, 10, 1)
	// Every slot used: no slot was lost to the reordering.
	if span := times[len(times)-1].Sub(times[0]); span != time.Duration(len(times)-1)*100*time.Millisecond {
		t.Errorf("%d calls over %v, want one every 100ms", len(times), span)
	}
}

// runAll moves the clock on whenever every one of n outstanding callers is blocked
// on it, until all n have returned on errs, and fails on the first error. Each
// blocked caller has exactly one timer pending.
func runAll(t *testing.T, clock *fakeClock, errs <-chan error, n int) {
	t.Helper()
	for steps := 0; n > 0; steps++ {
		if steps > 1_000_000 {
			t.Fatalf("%d callers still running after %d steps", n, steps)
		}
		if clock.Waiting() >= n {
			clock.AdvanceToNext()
			continue
		}
		select {
		case err := <-errs:
			if err != nil {
				t.Fatal(err)
			}
			n--
		case <-clock.registered:
		case <-time.After(10 * time.Second):
			t.Fatalf("fake clock: %d timers pending after 10s, %d callers running", clock.Waiting(), n)
		}
	}
}

// TestRatePriorityBacklog runs background callers that always have a call waiting
// and live callers that come now and then, for a long simulated time: the rate is
// never exceeded in any window, at least 95% of it is used, every live call waits
// at most one slot per live caller (however long the background backlog), and the
// background calls get the rest.
func TestRatePriorityBacklog(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		rate        string
		burst       int
		live, bg    int
		think, span time.Duration
	}{
		{"10/s", 0, 2, 6, time.Second, 10 * time.Minute},
		{"1000/h", 0, 1, 4, time.Minute, 8 * time.Hour},
		{"50/s", 5, 3, 8, 200 * time.Millisecond, 2 * time.Minute},
	} {
		t.Run(tc.rate, func(t *testing.T) {
			t.Parallel()
			r, err := guard.ParseRate(tc.rate)
			if err != nil {
				t.Fatal(err)
			}
			clock := newFakeClock()
			inner := &recordingLMS{now: clock.Now}
			g := guard.New(inner, guard.Config{Rate: r, Burst: tc.burst, Clock: clock})
			burst := max(tc.burst, 1)
			interval := time.Duration(float64(time.Second) / r.PerSecond())
			start := clock.Now()
			end := start.Add(tc.span)
			ctx, cancel := context.WithCancel(t.Context())
			var wg sync.WaitGroup
			var mu sync.Mutex
			var liveWaits []time.Duration
			for range tc.live {
				wg.Go(func() {
					for ctx.Err() == nil {
						issued := clock.Now()
						if _, err := g.GetAccount(ctx, "live"); err != nil {
							if ctx.Err() == nil {
								t.Errorf("live GetAccount: %v", err)
							}
							return
						}
						if issued.Before(end) {
							mu.Lock()
							liveWaits = append(liveWaits, clock.Now().Sub(issued))
							mu.Unlock()
						}
						select {
						case <-ctx.Done():
						case <-clock.After(tc.think):
						}
					}
				})
			}
			bctx := guard.WithPriority(ctx, guard.Background)
			for range tc.bg {
				wg.Go(func() {
					for ctx.Err() == nil {
						if _, err := g.GetAccount(bctx, "bg"); err != nil && ctx.Err() == nil {
							t.Errorf("background GetAccount: %v", err)
							return
						}
					}
				})
			}
			callers := tc.live + tc.bg
			for steps := 0; clock.Now().Before(end); steps++ {
				if steps > 1_000_000 {
					t.Fatal("too many steps")
				}
				clock.awaitWaiting(t, callers) // every caller is blocked on the clock
				clock.AdvanceToNext()
			}
			clock.awaitWaiting(t, callers)
			cancel()
			wg.Wait()

			var times []time.Time
			var live, bg int
			for _, c := range inner.seen() {
				if c.at.After(end) {
					continue
				}
				times = append(times, c.at)
				if c.id == "live" {
					live++
				} else {
					bg++
				}
			}
			checkRate(t, times, r.PerSecond(), burst)
			ideal := r.PerSecond() * tc.span.Seconds()
			if got := float64(len(times)); got < 0.95*ideal || got > ideal+float64(burst) {
				t.Errorf("%v calls in %v, want between 95%% of %.0f and %.0f", got, tc.span, ideal, ideal+float64(burst))
			}
			mu.Lock()
			defer mu.Unlock()
			if len(liveWaits) == 0 || live == 0 {
				t.Fatal("no live call went")
			}
			for _, w := range liveWaits {
				if w > time.Duration(tc.live)*interval {
					t.Fatalf("a live call waited %v behind a background backlog, want at most %v (one slot per live caller)", w, time.Duration(tc.live)*interval)
				}
			}
			// The background callers get what the live ones leave.
			if rest := 0.95*ideal - float64(live); float64(bg) < rest {
				t.Errorf("%d background calls, %d live: background got less than the rest of the budget (%.0f)", bg, live, rest)
			}
			t.Logf("%d calls in %v (%.1f%% of the rate): %d live, %d background", len(times), tc.span, 100*float64(len(times))/ideal, live, bg)
		})
	}
}

// TestRateCancelMovesUp: a waiter that gives up in the middle of the queue gives
// its slot to the ones behind it (they go one slot earlier) and the last slot back
// to the bucket, so the next caller does not wait for it either.
func TestRateCancelMovesUp(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	inner := &recordingLMS{now: clock.Now}
	g := guard.New(inner, guard.Config{Rate: guard.Rate{N: 1, Per: time.Second}, Clock: clock})
	start := clock.Now()
	if _, err := g.GetAccount(t.Context(), "first"); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 3)
	bctx := guard.WithPriority(t.Context(), guard.Background)
	go func() { _, err := g.GetAccount(bctx, "a"); errs <- err }() // slot 1s
	clock.awaitWaiting(t, 1)
	cctx, cancel := context.WithCancel(bctx)
	go func() { _, err := g.GetAccount(cctx, "b"); errs <- err }() // slot 2s
	clock.awaitWaiting(t, 2)
	go func() { _, err := g.GetAccount(bctx, "c"); errs <- err }() // slot 3s
	clock.awaitWaiting(t, 3)
	cancel()
	if err := recv(t, errs); err == nil {
		t.Fatal("the cancelled call went through")
	}
	// c, woken, waits again for 2s; its timer for 3s and b's for 2s are still
	// pending (stale).
	clock.awaitWaiting(t, 4)
	for range 2 {
		clock.Advance(time.Second)
		if err := recv(t, errs); err != nil {
			t.Fatal(err)
		}
	}
	go func() { _, err := g.GetAccount(t.Context(), "d"); errs <- err }() // slot 3s, given back
	clock.awaitWaiting(t, 2)                                              // d's timer and c's stale one
	clock.Advance(time.Second)
	if err := recv(t, errs); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range inner.seen() {
		got = append(got, c.id+"@"+c.at.Sub(start).String())
	}
	if want := []string{"first@0s", "a@1s", "c@2s", "d@3s"}; !slices.Equal(got, want) {
		t.Errorf("calls %v, want %v", got, want)
	}
}

// recv returns the next error from errs, failing the test after 10s of real time.
func recv(t *testing.T, errs <-chan error) error {
	t.Helper()
	select {
	case err := <-errs:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("no call returned within 10s")
		return nil
	}
}

// TestRateBackgroundPushedPastDeadline: a background call that live calls push
// past its deadline fails with rate_limited as soon as it finds out, instead of
// waiting until the deadline, and gives its slot back.
func TestRateBackgroundPushedPastDeadline(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	inner := &recordingLMS{now: clock.Now}
	g := guard.New(inner, guard.Config{Rate: guard.Rate{N: 1, Per: time.Hour}, Clock: clock, MaxElapsed: 10 * time.Hour})
	start := clock.Now()
	if _, err := g.GetAccount(t.Context(), "first"); err != nil {
		t.Fatal(err)
	}
	bctx, cancel := context.WithTimeout(guard.WithPriority(t.Context(), guard.Background), 90*time.Minute)
	defer cancel()
	errs := make(chan error, 4)
	go func() { _, err := g.GetAccount(bctx, "bg"); errs <- err }() // slot 1h
	clock.awaitWaiting(t, 1)
	for i, id := range []string{"live-1", "live-2"} { // slots 1h and 2h; bg's moves to 3h
		go func() { _, err := g.GetAccount(t.Context(), id); errs <- err }()
		clock.awaitWaiting(t, 2+i)
	}
	clock.Advance(time.Hour) // live-1 goes; bg wakes, finds its slot 2h away, past its deadline
	var bgErr error
	for range 2 {
		if err := recv(t, errs); err != nil {
			bgErr = err
		}
	}
	var le *connector.LMSError
	if !errors.As(bgErr, &le) || le.Kind != connector.KindRateLimited || le.RetryAfter != 2*time.Hour {
		t.Fatalf("background call: %v, want rate_limited with RetryAfter 2h", bgErr)
	}
	go func() { _, err := g.GetAccount(t.Context(), "live-3"); errs <- err }() // bg's 3h slot, given back
	clock.awaitWaiting(t, 2)
	clock.Advance(time.Hour)
	if err := recv(t, errs); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour)
	if err := recv(t, errs); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range inner.seen() {
		got = append(got, c.id+"@"+c.at.Sub(start).String())
	}
	if want := []string{"first@0s", "live-1@1h0m0s", "live-2@2h0m0s", "live-3@3h0m0s"}; !slices.Equal(got, want) {
		t.Errorf("calls %v, want %v", got, want)
	}
}
