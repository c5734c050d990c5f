package guard

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Rate is a number of calls per period, e.g. 1000 per hour. The zero Rate is
// unlimited.
type Rate struct {
	N   float64
	Per time.Duration
}

// Unlimited reports whether r sets no limit.
func (r Rate) Unlimited() bool { return r.N <= 0 || r.Per <= 0 }

// PerSecond returns r in calls per second (+Inf if unlimited).
func (r Rate) PerSecond() float64 {
	if r.Unlimited() {
		return math.Inf(1)
	}
	return r.N / r.Per.Seconds()
}

// String formats r as ParseRate reads it.
func (r Rate) String() string {
	if r.Unlimited() {
		return "unlimited"
	}
	n := strconv.FormatFloat(r.N, 'f', -1, 64)
	switch r.Per {
	case time.Second:
		return n + "/s"
	case time.Minute:
		return n + "/m"
	case time.Hour:
		return n + "/h"
	}
	return n + "/" + r.Per.String()
}

// ParseRate reads "10/s", "600/m", "1000/h" (also "/sec", "/min", "/hour", or a
// duration such as "5/10s"). "", "0" and "unlimited" are the zero Rate.
func ParseRate(s string) (Rate, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" || strings.EqualFold(s, "unlimited") {
		return Rate{}, nil
	}
	num, unit, ok := strings.Cut(s, "/")
	if !ok {
		return Rate{}, fmt.Errorf("rate %q: want N/s, N/m or N/h, e.g. 1000/h", s)
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || n <= 0 || math.IsInf(n, 0) || math.IsNaN(n) {
		return Rate{}, fmt.Errorf("rate %q: %q is not a positive number", s, num)
	}
	var per time.Duration
	switch strings.ToLower(strings.TrimSpace(unit)) {
	case "s", "sec", "second":
		per = time.Second
	case "m", "min", "minute":
		per = time.Minute
	case "h", "hr", "hour":
		per = time.Hour
	default:
		per, err = time.ParseDuration(strings.TrimSpace(unit))
		if err != nil || per <= 0 {
			return Rate{}, fmt.Errorf("rate %q: unit %q: want s, m, h or a duration", s, unit)
		}
	}
	return Rate{N: n, Per: per}, nil
}

// errTooLong is returned by reserve when the wait would outlast the caller's budget.
var errTooLong = errors.New("the wait for the rate limit exceeds the deadline")

// bucket is a token bucket that hands out reservations, as golang.org/x/time/rate
// does: a caller takes a token now, and if the bucket is empty it is told when its
// token will be there. Because every reservation is a slot on one schedule,
// waiters that wake late do not lower the rate, and in any window of length T at
// most burst + rate*T calls start.
type bucket struct {
	rate  float64 // tokens per second
	burst float64

	mu     sync.Mutex
	tokens float64
	last   time.Time // when tokens was last brought up to date
	tail   time.Time // the latest slot handed out
}

func newBucket(r Rate, burst int, now time.Time) *bucket {
	b := float64(max(burst, 1))
	return &bucket{rate: r.PerSecond(), burst: b, tokens: b, last: now}
}

// advance brings tokens up to now. Called with mu held.
func (b *bucket) advance(now time.Time) {
	if now.After(b.last) {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
		b.last = now
	}
}

// reserve takes a token and returns when the caller may go. If that is later than
// now+budget (budget > 0), it takes nothing and returns errTooLong with the wait.
func (b *bucket) reserve(now time.Time, budget time.Duration) (time.Time, time.Duration, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.advance(now)
	b.tokens--
	var wait time.Duration
	if b.tokens < 0 {
		wait = time.Duration(math.Ceil(-b.tokens / b.rate * float64(time.Second)))
	}
	if budget > 0 && wait > budget {
		b.tokens++
		return time.Time{}, wait, errTooLong
	}
	at := now.Add(wait)
	if at.After(b.tail) {
		b.tail = at
	}
	return at, wait, nil
}

// cancel gives back the token of a reservation for at that will not be used,
// minus the slots handed out after it (those callers already count on it).
func (b *bucket) cancel(at, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !at.After(now) {
		return // its slot has passed: the token is spent
	}
	restore := 1 - b.tail.Sub(at).Seconds()*b.rate
	if restore <= 0 {
		return
	}
	b.advance(now)
	b.tokens = min(b.burst, b.tokens+restore)
}
