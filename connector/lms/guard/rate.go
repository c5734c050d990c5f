package guard

import (
	"errors"
	"fmt"
	"golang.org/x/time/rate"
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

// bucket is the client-side rate limit: golang.org/x/time/rate's token bucket,
// whose reservations put every caller on one schedule, so that waiters that wake
// late do not lower the rate, and in any window of length T at most burst +
// rate*T calls start. Times come from the guard's clock.
type bucket struct {
	lim *rate.Limiter
	// mu and last keep the times handed to the limiter in order: callers read the
	// clock before they get here, and x/time/rate moves its own last update back
	// to an earlier time, which would give the later callers tokens twice.
	mu   sync.Mutex
	last time.Time
}

// monotonic returns now, or the latest time seen if now is before it. Called
// with mu held.
func (b *bucket) monotonic(now time.Time) time.Time {
	if now.Before(b.last) {
		return b.last
	}
	b.last = now
	return now
}

func newBucket(r Rate, burst int, now time.Time) *bucket {
	b := &bucket{lim: rate.NewLimiter(rate.Limit(r.PerSecond()), max(burst, 1)), last: now}
	b.lim.SetLimitAt(now, rate.Limit(r.PerSecond())) // start full, at now
	return b
}

// reserve takes a token and returns its reservation and how long the caller
// waits for it. If that is longer than budget (budget > 0), it takes nothing and
// returns errTooLong with the wait.
func (b *bucket) reserve(now time.Time, budget time.Duration) (*rate.Reservation, time.Duration, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now = b.monotonic(now)
	res := b.lim.ReserveN(now, 1)
	wait := res.DelayFrom(now)
	if budget > 0 && wait > budget {
		res.CancelAt(now)
		return nil, wait, errTooLong
	}
	return res, wait, nil
}

// cancel gives back the token of a reservation that will not be used, minus the
// slots handed out after it (those callers already count on it).
func (b *bucket) cancel(res *rate.Reservation, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	res.CancelAt(b.monotonic(now))
}
