package guard_test

import (
	"sort"
	"sync"
	"testing"
	"time"
)

// fakeClock is a guard.Clock that moves only when the test says so.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
	waits   []time.Duration // every positive duration After was asked for
	// registered gets a value for every After that has to wait (non-blocking).
	registered chan struct{}
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), registered: make(chan struct{}, 1<<16)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waits = append(c.waits, d)
	c.waiters = append(c.waiters, fakeWaiter{at: c.now.Add(d), ch: ch})
	select {
	case c.registered <- struct{}{}:
	default:
	}
	return ch
}

// Advance moves the clock by d and fires the timers that came due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.fire()
}

// AdvanceToNext moves the clock to the earliest timer and fires it (and any other
// due at that time). It returns false if no timer is waiting.
func (c *fakeClock) AdvanceToNext() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.waiters) == 0 {
		return false
	}
	sort.Slice(c.waiters, func(i, j int) bool { return c.waiters[i].at.Before(c.waiters[j].at) })
	if c.waiters[0].at.After(c.now) {
		c.now = c.waiters[0].at
	}
	c.fire()
	return true
}

func (c *fakeClock) fire() {
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(c.now) {
			kept = append(kept, w)
			continue
		}
		w.ch <- c.now
	}
	c.waiters = kept
}

// Waiting returns how many timers are pending.
func (c *fakeClock) Waiting() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}

// Waits returns the durations After was asked for.
func (c *fakeClock) Waits() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.waits...)
}

// awaitWaiting blocks until n timers are pending; it fails the test after 10s of
// real time with no progress. No sleeping: it wakes on each registration.
func (c *fakeClock) awaitWaiting(t *testing.T, n int) {
	t.Helper()
	for c.Waiting() < n {
		select {
		case <-c.registered:
		case <-time.After(10 * time.Second):
			t.Fatalf("fake clock: %d timers pending after 10s, want %d", c.Waiting(), n)
		}
	}
}
