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

// breaker is the quarantine: a circuit breaker over the last Window attempts.
type breaker struct {
	cfg QuarantineConfig

	mu          sync.Mutex
	ring        []bool // true: failed; the last len(ring) verdicts, oldest at next
	next, n     int
	failed      int
	consecutive int

	st       Status
	interval time.Duration // the current probe interval
}

func newBreaker(cfg QuarantineConfig) *breaker {
	return &breaker{cfg: cfg, ring: make([]bool, cfg.Window), interval: cfg.ProbeInterval}
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

// record counts one attempt's verdict. It returns a transition when the state
// changed, and nil otherwise.
func (b *breaker) record(now time.Time, probe bool, v verdict, reason string) *transition {
	b.mu.Lock()
	defer b.mu.Unlock()
	if probe {
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
	if b.st.Quarantined || v == neutral {
		return nil // a call admitted before the quarantine began
	}
	failed := v == sick
	if b.n == len(b.ring) && b.ring[b.next] {
		b.failed--
	}
	b.ring[b.next] = failed
	b.next = (b.next + 1) % len(b.ring)
	b.n = min(b.n+1, len(b.ring))
	if failed {
		b.failed++
		b.consecutive++
	} else {
		b.consecutive = 0
	}
	var why string
	switch {
	case b.consecutive >= b.cfg.Consecutive:
		why = fmt.Sprintf("%d calls in a row failed", b.consecutive)
	case b.n == len(b.ring) && float64(b.failed) >= b.cfg.FailRatio*float64(b.n):
		why = fmt.Sprintf("%d of the last %d calls failed", b.failed, b.n)
	default:
		return nil
	}
	b.interval = b.cfg.ProbeInterval
	b.st = Status{Quarantined: true, Since: now, Reason: why + "; last: " + reason, NextProbe: now.Add(b.interval)}
	return &transition{quarantined: true, st: b.st}
}

// reset ends the quarantine and forgets the history. Called with mu held.
func (b *breaker) reset() {
	clear(b.ring)
	b.next, b.n, b.failed, b.consecutive = 0, 0, 0, 0
	b.interval = b.cfg.ProbeInterval
	b.st = Status{}
}

func (b *breaker) status() Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.st
}
