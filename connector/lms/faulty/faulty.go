// Package faulty is an HTTP fault injector for LMS tests: a middleware that wraps
// any LMS handler (for example the sandbox's SCIM handler) and makes it behave like
// a real LMS on a bad day. It adds latency, answers 5xx, holds requests past the
// client's timeout, and answers 429 with Retry-After, each on a configured fraction
// of requests, drawn from a seeded random source so that a run can be reproduced.
//
// A 5xx or a timeout happens either before the inner handler runs (the request was
// not applied) or after it (the request was applied and its answer lost). The second
// kind is the nasty one: a create that succeeded but answered 500 must not become a
// second account when the client retries. A 429 always happens before: a rate
// limiter rejects a request before doing it.
//
// Counts reports what was injected.
package faulty

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Config says which faults to inject and how often. Fractions are of all requests
// that Filter admits, in [0, 1]; ServerErrors+Timeouts+RateLimited must not exceed 1.
type Config struct {
	// Latency is added to every request, plus a uniform random part up to Jitter.
	Latency, Jitter time.Duration
	// ServerErrors is the fraction answered 500, 502 or 503 (the paper's 10%: 0.10).
	ServerErrors float64
	// Timeouts is the fraction held for Hold and then answered 504 (or dropped when
	// the client gives up first; the hold ends as soon as the request context does).
	Timeouts float64
	// Hold is how long a timed-out request is held; it should be longer than the
	// client's timeout. Default 30s; at most 5 minutes.
	Hold time.Duration
	// RateLimited is the fraction answered 429 with a Retry-After header.
	RateLimited float64
	// RetryAfter is the Retry-After sent with a 429, in whole seconds (rounded up);
	// default 1s.
	RetryAfter time.Duration
	// After is the fraction of the 5xx and timeouts injected after the inner handler
	// applied the request; the rest are injected before it. Default 0 (all before);
	// set it to, say, 0.5 to test that clients survive lost answers.
	After float64
	// Seed seeds the random source; the same seed gives the same sequence of
	// decisions (the order of concurrent requests is still up to the scheduler).
	Seed uint64
	// Filter, if set, chooses the requests that may get faults; the others pass
	// through untouched (latency included).
	Filter func(*http.Request) bool
}

// maxHold bounds Hold so that a misconfigured test cannot hang for long.
const maxHold = 5 * time.Minute

// Counts is what an Injector did, by kind of fault.
type Counts struct {
	Requests        int64 // every request seen
	Passed          int64 // requests answered by the inner handler alone
	ServerErrBefore int64 // 5xx, request not applied
	ServerErrAfter  int64 // 5xx, request applied and answer lost
	TimeoutBefore   int64 // held, request not applied
	TimeoutAfter    int64 // held, request applied and answer lost
	RateLimited     int64 // 429 with Retry-After
	Outage          int64 // answered by SetOutage
}

// Injected is the number of requests that got a fault.
func (c Counts) Injected() int64 {
	return c.ServerErrBefore + c.ServerErrAfter + c.TimeoutBefore + c.TimeoutAfter + c.RateLimited + c.Outage
}

// Injector is the middleware. It is safe for concurrent use.
type Injector struct {
	inner http.Handler
	cfg   Config

	mu  sync.Mutex
	rng *rand.Rand

	outage atomic.Int64 // HTTP status every request gets; 0: none

	requests, passed, errBefore, errAfter, toBefore, toAfter, limited, outaged atomic.Int64
}

// New wraps inner. It returns an error if a fraction is out of range.
func New(inner http.Handler, cfg Config) (*Injector, error) {
	for name, p := range map[string]float64{"ServerErrors": cfg.ServerErrors, "Timeouts": cfg.Timeouts,
		"RateLimited": cfg.RateLimited, "After": cfg.After} {
		if p < 0 || p > 1 || math.IsNaN(p) {
			return nil, fmt.Errorf("faulty: %s = %v, want a fraction in [0, 1]", name, p)
		}
	}
	if s := cfg.ServerErrors + cfg.Timeouts + cfg.RateLimited; s > 1 {
		return nil, fmt.Errorf("faulty: fault fractions add up to %v > 1", s)
	}
	if cfg.Hold <= 0 {
		cfg.Hold = 30 * time.Second
	}
	cfg.Hold = min(cfg.Hold, maxHold)
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = time.Second
	}
	return &Injector{inner: inner, cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))}, nil
}

// SetOutage makes every request get status (e.g. 503 for an outage, 401 for
// revoked credentials) until it is called with 0. The inner handler is not called.
func (i *Injector) SetOutage(status int) { i.outage.Store(int64(status)) }

// Counts returns what the injector did so far.
func (i *Injector) Counts() Counts {
	return Counts{Requests: i.requests.Load(), Passed: i.passed.Load(),
		ServerErrBefore: i.errBefore.Load(), ServerErrAfter: i.errAfter.Load(),
		TimeoutBefore: i.toBefore.Load(), TimeoutAfter: i.toAfter.Load(),
		RateLimited: i.limited.Load(), Outage: i.outaged.Load()}
}

type fault int

const (
	none fault = iota
	serverError
	timeout
	rateLimited
)

// decision is what happens to one request, drawn in one place so that a seed
// gives one sequence.
type decision struct {
	fault  fault
	after  bool
	status int
	delay  time.Duration
}

func (i *Injector) decide(eligible bool) decision {
	i.mu.Lock()
	defer i.mu.Unlock()
	d := decision{delay: i.cfg.Latency}
	if i.cfg.Jitter > 0 {
		d.delay += time.Duration(i.rng.Int64N(int64(i.cfg.Jitter)))
	}
	if !eligible {
		return d
	}
	u := i.rng.Float64()
	switch {
	case u < i.cfg.ServerErrors:
		d.fault = serverError
		d.status = []int{http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable}[i.rng.IntN(3)]
	case u < i.cfg.ServerErrors+i.cfg.Timeouts:
		d.fault = timeout
	case u < i.cfg.ServerErrors+i.cfg.Timeouts+i.cfg.RateLimited:
		d.fault = rateLimited
	}
	if d.fault == serverError || d.fault == timeout {
		d.after = i.rng.Float64() < i.cfg.After
	}
	return d
}

// ServeHTTP applies the latency, then at most one fault.
func (i *Injector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i.requests.Add(1)
	if st := int(i.outage.Load()); st != 0 {
		i.outaged.Add(1)
		writeError(w, st, "faulty: outage")
		return
	}
	d := i.decide(i.cfg.Filter == nil || i.cfg.Filter(r))
	if !wait(r, d.delay) {
		return // the client gave up during the latency
	}
	switch {
	case d.fault == none:
		i.passed.Add(1)
		i.inner.ServeHTTP(w, r)
	case d.fault == rateLimited:
		i.limited.Add(1)
		secs := int64(math.Ceil(i.cfg.RetryAfter.Seconds()))
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
		writeError(w, http.StatusTooManyRequests, "faulty: too many requests")
	case d.after:
		// Apply the request, then lose the answer.
		i.inner.ServeHTTP(&discard{h: http.Header{}}, r)
		if d.fault == serverError {
			i.errAfter.Add(1)
			writeError(w, d.status, "faulty: failed after applying the request")
			return
		}
		i.toAfter.Add(1)
		i.hold(w, r)
	case d.fault == serverError:
		i.errBefore.Add(1)
		writeError(w, d.status, "faulty: failed before applying the request")
	default:
		i.toBefore.Add(1)
		i.hold(w, r)
	}
}

// hold keeps the request open for Hold or until the client gives up, then answers
// 504 if anyone is still listening.
func (i *Injector) hold(w http.ResponseWriter, r *http.Request) {
	if wait(r, i.cfg.Hold) {
		writeError(w, http.StatusGatewayTimeout, "faulty: timed out")
	}
}

// wait waits d; it returns false if the request context ended first.
func wait(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return r.Context().Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

// writeError answers a SCIM error document (RFC 7644 §3.12), as an LMS would.
func writeError(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/scim+json")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"%d","detail":%q}`, status, detail)
}

// discard is a ResponseWriter that throws the inner handler's answer away.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}
