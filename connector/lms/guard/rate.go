package guard

import (
	"errors"
	"fmt"
	"math"
	"slices"
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

// bucket is the client-side rate limit: a token bucket of size burst that fills at
// the rate, kept as a theoretical arrival time (GCRA). Every call takes a slot, a
// time at which it may start; the slots are handed out on one schedule, so that
// waiters that wake late do not lower the rate, and in any window of length W at
// most burst + rate*W slots fall. Times come from the guard's clock.
//
// Priority only changes who gets which slot, never the slots themselves: the
// waiting tickets hold the pending slots in order, Live tickets (first come, first
// served) before Background ones (likewise). A Live call that comes while
// Background calls wait takes the earliest slot a Background ticket holds, and
// each Background ticket after it moves to the next slot, the last one to the new
// slot. A ticket whose slot moved later finds out when its timer fires and waits
// again; one whose slot moved earlier (a waiter gave up) is woken.
type bucket struct {
	interval time.Duration // one slot per interval; rounded up, so never faster than the rate
	tau      time.Duration // (burst-1)*interval: how far a slot may be ahead of tat

	mu sync.Mutex
	// last keeps the times the bucket sees in order: callers read the clock
	// before they get here, so a later caller may bring an earlier time.
	last time.Time
	// tat is the theoretical arrival time: the bucket is full at tat - tau and
	// earlier; each slot moves it on by interval.
	tat time.Time
	// pending are the tickets that wait for their slot, in the order they get
	// slots (Live before Background, first come first served in each); their slots
	// increase along it.
	pending []*ticket
}

// ticket is one call's place under the rate limit.
type ticket struct {
	prio  Priority
	slot  time.Time     // when the call may start; guarded by bucket.mu
	moved chan struct{} // gets a value when slot moves earlier
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
	iv := time.Duration(math.Ceil(float64(r.Per) / r.N))
	iv = max(iv, 1)
	return &bucket{interval: iv, tau: time.Duration(max(burst, 1)-1) * iv, last: now, tat: now} // full at now
}

// reserve takes a slot for a call of class prio and returns its ticket and how
// long the caller waits for it. A ticket with a positive wait is pending: the
// caller waits and calls start, or cancel if it gives up. If the wait is longer
// than budget (budget > 0), it takes nothing and returns errTooLong with the wait.
func (b *bucket) reserve(now time.Time, prio Priority, budget time.Duration) (*ticket, time.Duration, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now = b.monotonic(now)
	tat := b.tat
	if tat.Before(now) {
		tat = now
	}
	slot := tat.Add(-b.tau) // the new slot: after every slot handed out so far
	if slot.Before(now) {
		slot = now
	}
	// Its place: after the pending tickets of its class and the classes before it.
	at := len(b.pending)
	if prio == Live {
		at = slices.IndexFunc(b.pending, func(t *ticket) bool { return t.prio != Live })
		if at < 0 {
			at = len(b.pending)
		}
	}
	mine := slot
	if at < len(b.pending) {
		mine = b.pending[at].slot
	}
	wait := mine.Sub(now)
	if budget > 0 && wait > budget {
		return nil, wait, errTooLong
	}
	b.tat = tat.Add(b.interval)
	// The tickets behind it move one slot on; the last takes the new slot.
	for i := at; i < len(b.pending); i++ {
		if i+1 < len(b.pending) {
			b.pending[i].slot = b.pending[i+1].slot
		} else {
			b.pending[i].slot = slot
		}
	}
	t := &ticket{prio: prio, slot: mine, moved: make(chan struct{}, 1)}
	if wait > 0 {
		b.pending = slices.Insert(b.pending, at, t)
	}
	return t, max(wait, 0), nil
}

// start reports whether t's slot has come, and if so takes t off the pending
// list: the call goes. Otherwise it returns how long to wait still (its slot may
// have moved since the caller's timer was set).
func (b *bucket) start(t *ticket, now time.Time) (time.Duration, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now = b.monotonic(now)
	if d := t.slot.Sub(now); d > 0 {
		return d, false
	}
	if i := slices.Index(b.pending, t); i >= 0 {
		b.pending = slices.Delete(b.pending, i, i+1)
	}
	return 0, true
}

// cancel takes back the slot of a pending ticket that will not be used. The
// tickets behind it move one slot earlier (and are woken); the latest slot is
// given back to the bucket if it is still in the future and was the last one
// handed out, otherwise it is lost (never handed out twice).
func (b *bucket) cancel(t *ticket, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now = b.monotonic(now)
	i := slices.Index(b.pending, t)
	if i < 0 {
		return
	}
	latest := b.pending[len(b.pending)-1].slot
	for j := len(b.pending) - 1; j > i; j-- {
		b.pending[j].slot = b.pending[j-1].slot
		select {
		case b.pending[j].moved <- struct{}{}:
		default:
		}
	}
	b.pending = slices.Delete(b.pending, i, i+1)
	// While there is a backlog, every slot after now was handed out at
	// tat-interval-tau, tat-2*interval-tau, ...: the latest is the last one.
	if latest.After(now) && latest.Equal(b.tat.Add(-b.interval-b.tau)) {
		b.tat = b.tat.Add(-b.interval)
	}
}
