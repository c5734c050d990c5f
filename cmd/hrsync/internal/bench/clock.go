package bench

import (
	"sync"
	"time"
)

// SkipClock is a clock for the LMS guard (guard.Clock) that skips every wait: After
// moves the clock on to the end of the wait at once, instead of waiting. With it,
// the guard's rate limit admits calls at the rate of its clock, as against a real
// LMS, but a run against the in-process sandbox is not slowed down by it; the
// bench reports the LMS time the calls take at the rate instead (lms_minutes_at_rate).
//
// Waits that overlap do not add up: the clock moves to the latest end of a wait
// asked for, as real time would.
type SkipClock struct {
	mu     sync.Mutex
	offset time.Duration // ahead of the real clock
}

// Now returns the real time plus the waits skipped so far.
func (c *SkipClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

// After moves the clock on by d from now, if it is not already further, and
// returns a channel that has the new time.
func (c *SkipClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	real := time.Now()
	if end := real.Add(c.offset + max(d, 0)); end.Sub(real) > c.offset {
		c.offset = end.Sub(real)
	}
	now := real.Add(c.offset)
	c.mu.Unlock()
	ch := make(chan time.Time, 1)
	ch <- now
	return ch
}

// Skipped returns the time skipped so far.
func (c *SkipClock) Skipped() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.offset
}
