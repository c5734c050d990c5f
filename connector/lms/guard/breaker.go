package guard

import (
	"fmt"
	"sync"
	"time"
)

// Status is the quarantine state of an LMS.
type Status struct {
	// Quarantined is true while calls fail fast.
	Quarantined bool `json:"quarantined"`
	// Since is when the quarantine began.
	Since time.Time `json:"since,omitzero"`
	// Reason says why: the failure rate and the last failure.
	Reason string `json:"reason,omitempty"`
	// NextProbe is when one call will next be let through to test the LMS.
	NextProbe time.Time `json:"next_probe,omitzero"`
	// Probing is true while that call is in flight.
	Probing bool `json:"probing,omitempty"`
}

// String is "ok" or "quarantined since <time>: <reason> (next probe <time>)".
func (s Status) String() string {
	if !s.Quarantined {
		return "ok"
	}
	return fmt.Sprintf("quarantined since %s: %s (next probe %s)",
		s.Since.UTC().Format(time.RFC3339), s.Reason, s.NextProbe.UTC().Format(time.RFC3339))
}

// verdict is what an attempt says about the LMS's health.
type verdict int

const (
	neutral verdict = iota // says nothing: cancelled by the caller, rate limited
	healthy                // the LMS answered (2xx, or a 4xx such as 404 or 409)
	sick                   // unreachable, 5xx, timed out, or credentials refused
)

// Evidence, not a count of attempts: the breaker judges the LMS by what its
// attempts show, so that calls that fail together because they were in flight
// together (a stall that times out at once for every caller) count once.
//
//   - Each attempt weighs 1/k, where k is the most attempts in flight at once
//     during it, itself included: a serial call weighs 1, each of 16 calls in
//     flight together weighs 1/16, and the 16 together weigh 1.
//   - A success contradicts every failure of an attempt that began before the
//     success was recorded: the LMS answered while that attempt was in flight,
//     so its failure says nothing about the LMS being down. The run of failures
//     "in a row" holds only failures of attempts begun after the last success.
//   - The run trips the quarantine when its weight reaches Consecutive, or by
//     time: once the run weighs 1 (a whole set of calls in flight together failed,
//     or one serial call), nothing has succeeded for another whole Period, and
//     the run holds at least minRunFailures failures. One set of calls that stall
//     and time out together weighs 1 when it ends, so it never trips the
//     quarantine by itself: the LMS must go on failing for Period after it.
//   - The failure ratio is the failures' weight over all attempts' weight among
//     the attempts that ended within the last Period, once those weigh at least
//     MinAttempts.
//
// Order is the breaker's own: a logical clock that ticks at every begin and every
// record, so that attempts at the same instant of a fake clock are still ordered.

// minRunFailures is the fewest failures in a row that trip the quarantine by
// time (Period without a success).
const minRunFailures = 3

// slotsPerPeriod is how finely the failure ratio's window slides: the window is
// Period, in slots of Period/slotsPerPeriod by the attempts' end times.
const slotsPerPeriod = 20

// eps absorbs the rounding of sums of 1/k.
const eps = 1e-9

// attempt is one attempt in flight, from begin to record.
type attempt struct {
	seq   uint64 // the breaker's logical time at begin: order, not the clock, decides
	peak  int    // the most attempts in flight at once during this one, itself included
	probe bool
}

// slot sums the attempts that ended within one slot of the ratio's window.
type slot struct {
	idx       int64 // end time / slot width
	n, failed int
	w, fw     float64 // their weight, and their failures' weight
}

// breaker is the quarantine: a circuit breaker that judges the LMS by the
// evidence of its attempts over time, weighted by concurrency.
type breaker struct {
	cfg   QuarantineConfig
	width time.Duration // of a slot

	mu     sync.Mutex
	seq    uint64 // logical clock
	active map[*attempt]struct{}
	okSeq  uint64 // seq at which the last success was recorded

	// The run: failures of attempts begun after the last success was recorded.
	runN     int
	runW     float64
	runFirst time.Time // the run's first failure's end
	runFull  time.Time // when the run came to weigh 1; zero before

	slots []slot // the failure ratio's window, oldest first, at most slotsPerPeriod

	st       Status
	interval time.Duration // the current probe interval
}

func newBreaker(cfg QuarantineConfig) *breaker {
	return &breaker{cfg: cfg, width: max(cfg.Period/slotsPerPeriod, time.Nanosecond),
		active: make(map[*attempt]struct{}), interval: cfg.ProbeInterval}
}

// begin registers an attempt going to the LMS now. Every begin is followed by
// one record of what came of it.
func (b *breaker) begin(probe bool) *attempt {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	k := len(b.active) + 1
	for a := range b.active {
		a.peak = max(a.peak, k)
	}
	a := &attempt{seq: b.seq, peak: k, probe: probe}
	b.active[a] = struct{}{}
	return a
}

// admit decides whether a call may go to the LMS now: always while healthy; while
// quarantined only one probe once NextProbe has come. probe is true for that one.
func (b *breaker) admit(now time.Time) (ok, probe bool, st Status) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.st.Quarantined {
		return true, false, b.st
	}
	if b.st.Probing || now.Before(b.st.NextProbe) {
		return false, false, b.st
	}
	b.st.Probing = true
	return true, true, b.st
}

// transition is a change of quarantine state for the caller to log and report.
type transition struct {
	quarantined bool // entered (true) or left (false) quarantine
	extended    bool // a probe failed and the quarantine goes on
	st          Status
	was         Status // the state before: for how long it lasted
}

// record counts what attempt a, begun with begin, says about the LMS; now is
// when it ended. It returns a transition when the state changed, and nil
// otherwise.
func (b *breaker) record(a *attempt, now time.Time, v verdict, reason string) *transition {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.active, a)
	b.seq++
	if a.probe {
		b.st.Probing = false
		switch v {
		case healthy:
			was := b.st
			b.reset()
			return &transition{quarantined: false, st: b.st, was: was}
		case sick:
			b.interval = min(2*b.interval, b.cfg.MaxProbeInterval)
			b.st.NextProbe = now.Add(b.interval)
			b.st.Reason = "probe failed: " + reason
			return &transition{quarantined: true, extended: true, st: b.st}
		}
		return nil // neutral: the next call may probe
	}
	if b.cfg.Disabled || b.st.Quarantined || v == neutral {
		return nil // an attempt admitted before the quarantine began, or one that says nothing
	}
	w := 1 / float64(a.peak)
	s := b.slot(now)
	s.n++
	s.w += w
	if v == healthy {
		// The ratio may still trip: this attempt may complete its evidence.
		b.okSeq = b.seq
		b.runN, b.runW = 0, 0
	} else {
		s.failed++
		s.fw += w
	}
	if v == sick && a.seq > b.okSeq { // begun after the last success: not contradicted
		if b.runN == 0 {
			b.runFirst, b.runFull = now, time.Time{}
		}
		b.runN++
		b.runW += w
		if b.runFull.IsZero() && b.runW+eps >= 1 {
			b.runFull = now
		}
	}
	why := b.why(now)
	if why == "" {
		return nil
	}
	b.interval = b.cfg.ProbeInterval
	b.st = Status{Quarantined: true, Since: now, Reason: why + "; last: " + reason, NextProbe: now.Add(b.interval)}
	return &transition{quarantined: true, st: b.st}
}

// why says why the LMS is to be quarantined now, or "". Called with mu held.
func (b *breaker) why(now time.Time) string {
	run := func() string {
		s := fmt.Sprintf("%d calls in a row failed", b.runN)
		if float64(b.runN) > b.runW+eps {
			s += fmt.Sprintf(", worth %.1f counting calls in flight together once", b.runW)
		}
		return s
	}
	if b.runW+eps >= float64(b.cfg.Consecutive) {
		return run()
	}
	if !b.runFull.IsZero() && now.Sub(b.runFull) >= b.cfg.Period && b.runN >= minRunFailures {
		return fmt.Sprintf("no call succeeded for %s: %s", now.Sub(b.runFirst).Round(time.Millisecond), run())
	}
	var n, failed int
	var w, fw float64
	for _, s := range b.slots {
		n, failed, w, fw = n+s.n, failed+s.failed, w+s.w, fw+s.fw
	}
	if w+eps >= float64(b.cfg.MinAttempts) && fw+eps >= b.cfg.FailRatio*w {
		s := fmt.Sprintf("%d of the last %d calls failed within %s", failed, n, b.cfg.Period)
		if n > int(w+eps) {
			s += fmt.Sprintf(", worth %.1f of %.1f counting calls in flight together once", fw, w)
		}
		return s
	}
	return ""
}

// slot returns the ratio window's slot for an attempt that ended at end, after
// dropping the slots older than Period. Called with mu held.
func (b *breaker) slot(end time.Time) *slot {
	idx := end.UnixNano() / int64(b.width)
	keep := 0
	for keep < len(b.slots) && b.slots[keep].idx <= idx-slotsPerPeriod {
		keep++
	}
	b.slots = append(b.slots[:0], b.slots[keep:]...)
	if n := len(b.slots); n > 0 && b.slots[n-1].idx >= idx {
		return &b.slots[n-1] // this slot, or a clock that went back
	}
	b.slots = append(b.slots, slot{idx: idx})
	return &b.slots[len(b.slots)-1]
}

// reset ends the quarantine and forgets the history; attempts in flight stay.
// Called with mu held.
func (b *breaker) reset() {
	b.okSeq = b.seq
	b.runN, b.runW = 0, 0
	b.slots = b.slots[:0]
	b.interval = b.cfg.ProbeInterval
	b.st = Status{}
}

func (b *breaker) status() Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.st
}
