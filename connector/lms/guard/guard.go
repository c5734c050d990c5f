// Package guard protects hrsync and an LMS from each other. It decorates any
// connector.LMS with:
//
//   - a client-side rate limit (a token bucket with a small burst), so that hrsync
//     never exceeds a contractual rate such as Docebo's 1,000 calls an hour, and
//     keeps close to it while work is waiting; live calls get their slots before
//     background ones (reconciliation, clean-up, reports: see WithPriority);
//   - retries of temporary failures within a call, with exponential backoff and
//     full jitter, at least as long as the LMS's Retry-After, bounded in attempts and
//     in time;
//   - a quarantine (a circuit breaker): when calls fail with "unavailable" or
//     "auth" errors (in a row, for a whole period, or most of them; judged over
//     time, with calls in flight together counted as one piece of evidence), calls
//     fail fast for a probe interval, then one probe call is let through; success
//     ends the quarantine, failure extends it with backoff.
//
// It also makes retries safe where the LMS's answer was lost after the request was
// applied: a retried create that meets a conflict looks the account up and returns
// it if it is the one asked for; a retried conditional update that meets a stale
// version reads the account and returns it if it already says what was asked; a
// delete reads the account first, so that a retried delete that meets "not found"
// knows the account was there and is gone now.
//
// It passes connector.TrainingReader, ActivityReader and TrainingDeleter through,
// each call one call under the rate limit.
//
// It passes the batch writes (connector.AccountCreator, ActiveSetter,
// AccountUpdater) through, each call of a batch one call under the rate limit; a
// batch create whose answer may have been lost is never resent (writes.go).
//
// It passes connector.BulkDeleter and connector.ActivityLister through: each call
// to the LMS of a batch (up to its MaxBulkDeletes or MaxActivityBatch) is one call
// under the rate limit, however many accounts it carries. A retried bulk delete
// sends again only the deletions whose outcome was lost or temporary, and counts
// one that the retry finds gone as done.
//
// LMS implements connector.Availability, so that the converger pauses instead of
// claiming work while the LMS is quarantined.
package guard

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hrsync/hrsync/connector"
)

// ErrQuarantined is wrapped by the errors of calls that failed fast because the LMS
// is quarantined. They are *connector.LMSError of kind unavailable, so the
// converger retries them later.
var ErrQuarantined = fmt.Errorf("lms quarantined (%w)", connector.ErrNotSent)

// Clock is the time source; tests use a fake one.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Outcomes of one attempt, as Hooks.Call reports them. Besides these, an attempt
// that the LMS refused reports its connector.ErrorKind ("not_found", "conflict",
// "unavailable", "rate_limited", "auth", ...).
const (
	OutcomeOK          = "ok"          // the LMS did it
	OutcomeQuarantined = "quarantined" // failed fast: the LMS is quarantined
	OutcomeCanceled    = "canceled"    // the caller gave up
	OutcomeError       = "error"       // an error the adapter did not classify
)

// Hooks are optional callbacks for metrics. Each may be nil; they must not block.
type Hooks struct {
	// Call is called after every attempt (a retried call makes several) and every
	// fast failure, with op (the connector.LMS method) and the outcome.
	Call func(op, outcome string)
	// Quarantine is called when the quarantine begins (true) or ends (false).
	Quarantine func(quarantined bool)
	// RateWait is called with the time a call waited for the rate limit.
	RateWait func(d time.Duration)
}

// QuarantineConfig tunes the circuit breaker. Zero values get the defaults listed.
//
// The breaker judges the LMS, not the clock: attempts that were in flight together
// count as one piece of evidence (each weighs 1/k, k the most attempts in flight at
// once during it), and a failure counts toward a run "in a row" only if its attempt
// began after the last success, so that calls that stalled while others succeeded
// never make a run. See docs/lms-resilience.md.
type QuarantineConfig struct {
	// Disabled turns the quarantine off.
	Disabled bool
	// Period is the time the judgement looks back over; default 10s. The LMS is
	// quarantined when a run of failures in a row (at least 3, weighing at least 1)
	// was seen over a whole Period with no success, and the failure ratio is taken
	// over the attempts that ended within the last Period.
	Period time.Duration
	// MinAttempts is the least evidence, in attempts weighted by concurrency within
	// the last Period, before FailRatio can trip; default 20.
	MinAttempts int
	// FailRatio quarantines the LMS when failures weigh at least this fraction of the
	// attempts within the last Period; default 0.8.
	FailRatio float64
	// Consecutive quarantines it when a run of failures in a row, weighted by
	// concurrency, weighs this much: 10 serial failures, or 160 failures 16 at a
	// time; default 10.
	Consecutive int
	// ProbeInterval is the wait before the first probe; default 30s. Each failed
	// probe doubles it, up to MaxProbeInterval (default 10m).
	ProbeInterval, MaxProbeInterval time.Duration
	// ProbeTimeout bounds the probe that Available starts; default 30s.
	ProbeTimeout time.Duration
}

// Config configures an LMS guard. Zero values get the defaults listed.
type Config struct {
	// Rate is the most calls hrsync makes to the LMS; zero is unlimited.
	Rate Rate
	// Burst is how many calls may start at once after a quiet spell; default 1 for
	// rates up to 10/s, else a tenth of a second's worth, at most 20.
	Burst int
	// MaxAttempts bounds the attempts of one call; default 5. 1 turns retries off.
	MaxAttempts int
	// MaxElapsed bounds the time one call spends, waits included; default 1m. The
	// caller's context deadline bounds it too.
	MaxElapsed time.Duration
	// RetryBase and RetryMax bound the exponential backoff between attempts;
	// defaults 200ms and 10s. A longer Retry-After from the LMS wins.
	RetryBase, RetryMax time.Duration
	Quarantine          QuarantineConfig
	Logger              *slog.Logger
	Clock               Clock
	Hooks               Hooks
}

// LMS is a connector.LMS with a rate limit, retries and a quarantine. It is safe
// for concurrent use.
type LMS struct {
	inner  connector.LMS
	cfg    Config
	log    *slog.Logger
	clock  Clock
	bucket *bucket // nil: unlimited
	br     *breaker

	probing atomic.Bool // a background probe started by Available is running
	// discovered: the LMS behind the guard learned what it supports (see discover).
	discovered atomic.Bool
}

var (
	_ connector.LMS          = (*LMS)(nil)
	_ connector.Availability = (*LMS)(nil)
)

// New wraps inner.
func New(inner connector.LMS, cfg Config) *LMS {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	def(&cfg.MaxElapsed, time.Minute)
	def(&cfg.RetryBase, 200*time.Millisecond)
	def(&cfg.RetryMax, 10*time.Second)
	q := &cfg.Quarantine
	def(&q.Period, 10*time.Second)
	if q.MinAttempts <= 0 {
		q.MinAttempts = 20
	}
	if q.FailRatio <= 0 || q.FailRatio > 1 {
		q.FailRatio = 0.8
	}
	if q.Consecutive <= 0 {
		q.Consecutive = 10
	}
	def(&q.ProbeInterval, 30*time.Second)
	def(&q.MaxProbeInterval, 10*time.Minute)
	q.MaxProbeInterval = max(q.MaxProbeInterval, q.ProbeInterval)
	def(&q.ProbeTimeout, 30*time.Second)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	g := &LMS{inner: inner, cfg: cfg, log: cfg.Logger, clock: cfg.Clock, br: newBreaker(cfg.Quarantine)}
	if !cfg.Rate.Unlimited() {
		if cfg.Burst <= 0 {
			cfg.Burst = min(20, max(1, int(cfg.Rate.PerSecond()/10)))
			g.cfg.Burst = cfg.Burst
		}
		g.bucket = newBucket(cfg.Rate, cfg.Burst, g.clock.Now())
	}
	return g
}

// Status reports the quarantine state.
func (g *LMS) Status() Status { return g.br.status() }

// Available implements connector.Availability: false while the LMS is quarantined,
// with the time of the next probe. Once that time has come it starts the probe (a
// ListAccounts of one account) in the background, so that a paused converger
// resumes without spending real work on it.
func (g *LMS) Available() (bool, time.Time) {
	st := g.br.status()
	if !st.Quarantined {
		return true, time.Time{}
	}
	now := g.clock.Now()
	if now.Before(st.NextProbe) || st.Probing {
		return false, st.NextProbe
	}
	if g.probing.CompareAndSwap(false, true) {
		go func() {
			defer g.probing.Store(false)
			ctx, cancel := context.WithTimeout(context.Background(), g.cfg.Quarantine.ProbeTimeout)
			defer cancel()
			_ = g.Probe(ctx)
		}()
	}
	return false, now
}

// Probe makes one cheap call (ListAccounts of one account). While the LMS is
// quarantined and a probe is due, it is that probe; otherwise it is a normal call.
func (g *LMS) Probe(ctx context.Context) error {
	_, err := g.ListAccounts(ctx, 1, 1)
	return err
}

// quarantined returns the fast failure for op.
func (g *LMS) quarantined(op string, st Status, now time.Time) error {
	return &connector.LMSError{Kind: connector.KindUnavailable, Op: op,
		Reason:     fmt.Sprintf("quarantined since %s: %s", st.Since.UTC().Format(time.RFC3339), st.Reason),
		RetryAfter: max(st.NextProbe.Sub(now), 0), Err: ErrQuarantined}
}

// call runs attempt under the rate limit, the quarantine and the retry policy.
// maybeApplied reports that an earlier attempt failed in a way that leaves open
// whether the LMS applied it (a 5xx, a timeout, a broken connection).
func (g *LMS) call(ctx context.Context, op string, attempt func(ctx context.Context) error) (maybeApplied bool, err error) {
	return g.callIf(ctx, op, retryable, attempt)
}

// callIf is call with its own rule for which failed attempts are tried again
// (at most those that retryable allows): a batch create is not resent once its
// answer may have been lost.
func (g *LMS) callIf(ctx context.Context, op string, again func(error) bool, attempt func(ctx context.Context) error) (maybeApplied bool, err error) {
	start := g.clock.Now()
	var deadline time.Time // in real time: a context deadline is one
	if dl, ok := ctx.Deadline(); ok {
		deadline = dl
	}
	for i := 0; ; i++ {
		// Fail fast while quarantined, before waiting for a token.
		if ok, _, st := g.br.peek(g.clock.Now()); !ok {
			g.hookCall(op, OutcomeQuarantined)
			return maybeApplied, g.quarantined(op, st, g.clock.Now())
		}
		if err := g.wait(ctx, op, deadline); err != nil {
			return maybeApplied, err
		}
		now := g.clock.Now()
		ok, probe, st := g.br.admit(now)
		if !ok {
			g.hookCall(op, OutcomeQuarantined)
			return maybeApplied, g.quarantined(op, st, now)
		}
		a := g.br.begin(probe)
		err = attempt(ctx)
		outcome, v := g.classify(ctx, err)
		g.hookCall(op, outcome)
		g.transition(g.br.record(a, g.clock.Now(), v, errReason(err)))
		if answerLost(err) {
			maybeApplied = true
		}
		if err == nil || ctx.Err() != nil || !retryable(err) || !again(err) {
			return maybeApplied, err
		}
		if i+1 >= g.cfg.MaxAttempts {
			return maybeApplied, err
		}
		d := g.backoff(i, err)
		now = g.clock.Now()
		if now.Add(d).Sub(start) > g.cfg.MaxElapsed || (!deadline.IsZero() && d > time.Until(deadline)) {
			return maybeApplied, err // no time left for another attempt: let the caller retry later
		}
		select {
		case <-ctx.Done():
			return maybeApplied, err
		case <-g.clock.After(d):
		}
	}
}

// peek is admit without taking the probe slot.
func (b *breaker) peek(now time.Time) (ok, probe bool, st Status) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.st.Quarantined {
		return true, false, b.st
	}
	return !b.st.Probing && !now.Before(b.st.NextProbe), true, b.st
}

// wait blocks until the rate limit lets a call go, ctx is done, or the wait would
// pass the deadline; the last two fail with a temporary LMSError.
func (g *LMS) wait(ctx context.Context, op string, deadline time.Time) error {
	if g.bucket == nil {
		return nil
	}
	now := g.clock.Now()
	var budget time.Duration
	if !deadline.IsZero() {
		if budget = time.Until(deadline); budget <= 0 {
			return &connector.LMSError{Kind: connector.KindUnavailable, Op: op, Reason: "deadline passed before the call", Err: fmt.Errorf("%w: %w", connector.ErrNotSent, context.DeadlineExceeded)}
		}
	}
	t, d, err := g.bucket.reserve(now, PriorityOf(ctx), budget)
	if err != nil {
		g.hookCall(op, string(connector.KindRateLimited))
		return &connector.LMSError{Kind: connector.KindRateLimited, Op: op, RetryAfter: d,
			Reason: fmt.Sprintf("client-side rate limit %s: the next slot is in %s, after the deadline", g.cfg.Rate, d.Round(time.Millisecond))}
	}
	if d <= 0 {
		return nil
	}
	defer func() {
		if g.cfg.Hooks.RateWait != nil {
			g.cfg.Hooks.RateWait(max(g.clock.Now().Sub(now), 0))
		}
	}()
	for {
		select {
		case <-g.clock.After(d):
		case <-t.moved:
		case <-ctx.Done():
			g.bucket.cancel(t, g.clock.Now())
			g.hookCall(op, OutcomeCanceled)
			return &connector.LMSError{Kind: connector.KindUnavailable, Op: op, Reason: "gave up waiting for the client-side rate limit", Err: fmt.Errorf("%w: %w", connector.ErrNotSent, ctx.Err())}
		}
		// The slot may have moved later (a live call took it) or earlier (a waiter
		// gave up): wait for where it is now.
		var ok bool
		if d, ok = g.bucket.start(t, g.clock.Now()); ok {
			return nil
		}
		if !deadline.IsZero() && d > time.Until(deadline) {
			// Moved behind live calls past the deadline: give the slot up now.
			g.bucket.cancel(t, g.clock.Now())
			g.hookCall(op, string(connector.KindRateLimited))
			return &connector.LMSError{Kind: connector.KindRateLimited, Op: op, RetryAfter: d,
				Reason: fmt.Sprintf("client-side rate limit %s: live calls moved the slot to %s from now, after the deadline", g.cfg.Rate, d.Round(time.Millisecond))}
		}
	}
}

// classify names an attempt's outcome and what it says about the LMS's health.
func (g *LMS) classify(ctx context.Context, err error) (string, verdict) {
	if err == nil {
		return OutcomeOK, healthy
	}
	if ctx.Err() != nil {
		return OutcomeCanceled, neutral // our caller gave up: says nothing about the LMS
	}
	var le *connector.LMSError
	if !errors.As(err, &le) {
		return OutcomeError, neutral
	}
	switch le.Kind {
	case connector.KindUnavailable, connector.KindAuth:
		return string(le.Kind), sick
	case connector.KindRateLimited:
		return string(le.Kind), neutral // alive, but busy
	}
	return string(le.Kind), healthy
}

// retryable reports whether another attempt of the same request may succeed soon.
// A precondition failure is not: the caller must read the account again.
func retryable(err error) bool {
	return isKind(err, connector.KindUnavailable) || isKind(err, connector.KindRateLimited)
}

// answerLost reports whether the LMS may have applied an attempt that failed
// with err: unavailable, or any answer that was a 5xx (the scim adapter turns a
// 500 to a delete into "not found" when GET then says the user is gone, and that
// 500 may have been our own delete, applied).
func answerLost(err error) bool {
	if errors.Is(err, connector.ErrNotSent) {
		return false
	}
	var le *connector.LMSError
	return errors.As(err, &le) && (le.Kind == connector.KindUnavailable || le.Status >= 500)
}

func isKind(err error, k connector.ErrorKind) bool {
	var le *connector.LMSError
	return errors.As(err, &le) && le.Kind == k
}

// backoff is exponential with full jitter (half fixed, half random), and at least
// the LMS's Retry-After.
func (g *LMS) backoff(attempt int, err error) time.Duration {
	d := float64(g.cfg.RetryBase) * math.Pow(2, float64(min(attempt, 30)))
	d = min(d, float64(g.cfg.RetryMax))
	d = d/2 + rand.Float64()*d/2
	var le *connector.LMSError
	if errors.As(err, &le) && le.RetryAfter > time.Duration(d) {
		return le.RetryAfter
	}
	return time.Duration(d)
}

// errReason is what the quarantine says about a failed attempt: the error's kind
// and its HTTP status or network cause, e.g. "unavailable (timeout)" or "auth
// (HTTP 401)". It never quotes the error: the reason is shown on the
// unauthenticated /readyz and at WARN, and an error may carry a URL or what the
// LMS echoed of a request.
func errReason(err error) string {
	if err == nil {
		return ""
	}
	le, ok := errors.AsType[*connector.LMSError](err)
	if !ok {
		return OutcomeError
	}
	switch cause := errCause(le); {
	case le.Status != 0:
		return fmt.Sprintf("%s (HTTP %d)", le.Kind, le.Status)
	case cause != "":
		return fmt.Sprintf("%s (%s)", le.Kind, cause)
	}
	return string(le.Kind)
}

// errCause names the network failure behind le, or "".
func errCause(le *connector.LMSError) string {
	err := le.Err
	if err == nil {
		return ""
	}
	var ne net.Error
	var dns *net.DNSError
	var cert *tls.CertificateVerificationError
	switch {
	case errors.Is(err, ErrQuarantined):
		return "quarantined"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "connection reset"
	case errors.As(err, &dns):
		return "DNS lookup failed"
	case errors.As(err, &cert):
		return "TLS certificate not trusted"
	}
	return "network error"
}

func (g *LMS) hookCall(op, outcome string) {
	if g.cfg.Hooks.Call != nil {
		g.cfg.Hooks.Call(op, outcome)
	}
}

// transition logs and reports a change of quarantine state.
func (g *LMS) transition(t *transition) {
	if t == nil {
		return
	}
	switch {
	case t.extended:
		g.log.Warn("lms still quarantined: probe failed", "reason", t.st.Reason, "since", t.st.Since, "next_probe", t.st.NextProbe)
		return
	case t.quarantined:
		g.log.Warn("lms quarantined: calls fail fast until a probe succeeds", "reason", t.st.Reason, "next_probe", t.st.NextProbe)
	default:
		g.log.Info("lms resumed: probe succeeded", "quarantined_since", t.was.Since,
			"quarantined_for", g.clock.Now().Sub(t.was.Since).Round(time.Millisecond), "reason", t.was.Reason)
	}
	if g.cfg.Hooks.Quarantine != nil {
		g.cfg.Hooks.Quarantine(t.quarantined)
	}
}

// GetAccount implements connector.LMS.
func (g *LMS) GetAccount(ctx context.Context, id string) (connector.Account, error) {
	var a connector.Account
	_, err := g.call(ctx, "GetAccount", func(ctx context.Context) (err error) {
		a, err = g.inner.GetAccount(ctx, id)
		return err
	})
	return a, err
}

// FindAccounts implements connector.LMS.
func (g *LMS) FindAccounts(ctx context.Context, f connector.AccountFilter) ([]connector.Account, error) {
	var as []connector.Account
	_, err := g.call(ctx, "FindAccounts", func(ctx context.Context) (err error) {
		as, err = g.inner.FindAccounts(ctx, f)
		return err
	})
	return as, err
}

// ListAccounts implements connector.LMS.
func (g *LMS) ListAccounts(ctx context.Context, startIndex, count int) (connector.AccountPage, error) {
	var p connector.AccountPage
	_, err := g.call(ctx, "ListAccounts", func(ctx context.Context) (err error) {
		p, err = g.inner.ListAccounts(ctx, startIndex, count)
		return err
	})
	return p, err
}

// CreateAccount implements connector.LMS. When an earlier attempt may have been
// applied and a retry meets a conflict, it looks the account up by externalId (by
// userName if a has none) and returns it if it is exactly what was asked for;
// if only its active state differs (an LMS that creates inactive accounts in two
// steps lost the first step's answer), it sets that first.
func (g *LMS) CreateAccount(ctx context.Context, a connector.Account) (connector.Account, error) {
	var out connector.Account
	maybe, err := g.call(ctx, "CreateAccount", func(ctx context.Context) (err error) {
		out, err = g.inner.CreateAccount(ctx, a)
		return err
	})
	if err == nil || !maybe || !errors.Is(err, connector.ErrConflict) {
		return out, err
	}
	f := connector.AccountFilter{Attr: connector.ByExternalID, Value: a.ExternalID}
	if a.ExternalID == "" {
		f = connector.AccountFilter{Attr: connector.ByUserName, Value: a.UserName}
	}
	found, ferr := g.FindAccounts(ctx, f)
	if ferr != nil {
		// We cannot tell whether the conflict is our own create: a temporary error,
		// so the caller retries later, and not one that matches ErrConflict.
		return connector.Account{}, &connector.LMSError{Kind: connector.KindUnavailable, Op: "CreateAccount",
			Reason: "an earlier attempt may have created the account (" + err.Error() + "), and looking it up failed", Err: ferr}
	}
	// userName is unique, so at most one account says exactly what was asked
	// for, even where externalIds are not unique (Moodle's idnumber).
	var ours []connector.Account
	for _, f := range found {
		if sameData(f, a) {
			ours = append(ours, f)
		}
	}
	if len(ours) != 1 {
		return connector.Account{}, err
	}
	if ours[0].Active != a.Active {
		// An LMS that cannot create an inactive account (Moodle) creates, then
		// deactivates: the answer of the first step was lost, so the second
		// never ran. Finish it.
		done, serr := g.SetActive(ctx, ours[0].ID, a.Active)
		if serr != nil {
			return connector.Account{}, &connector.LMSError{Kind: connector.KindUnavailable, Op: "CreateAccount",
				Reason: "an earlier attempt created the account but did not set it active=" + strconv.FormatBool(a.Active), Err: serr}
		}
		ours[0] = done
	}
	g.log.Info("lms create was applied though its answer was lost; using the account it made",
		"account_id", ours[0].ID, "external_id", a.ExternalID)
	return ours[0], nil
}

// UpdateAccount implements connector.LMS. When an earlier attempt may have been
// applied and a retry meets a precondition failure (our own update moved the
// version on), it reads the account and returns it if it says what was asked.
func (g *LMS) UpdateAccount(ctx context.Context, a connector.Account) (connector.Account, error) {
	var out connector.Account
	maybe, err := g.call(ctx, "UpdateAccount", func(ctx context.Context) (err error) {
		out, err = g.inner.UpdateAccount(ctx, a)
		return err
	})
	if err == nil || !maybe || !errors.Is(err, connector.ErrPrecondition) {
		return out, err
	}
	cur, gerr := g.GetAccount(ctx, a.ID)
	if gerr == nil && sameData(cur, a) {
		return cur, nil
	}
	return connector.Account{}, err
}

// SetActive implements connector.LMS. Setting active is idempotent, so retries
// are safe as they are.
func (g *LMS) SetActive(ctx context.Context, id string, active bool) (connector.Account, error) {
	var out connector.Account
	_, err := g.call(ctx, "SetActive", func(ctx context.Context) (err error) {
		out, err = g.inner.SetActive(ctx, id, active)
		return err
	})
	return out, err
}

// DeleteAccount implements connector.LMS. It reads the account first (one more
// call), so that a retry answered "not found" after a lost answer can be told
// apart from deleting an account that was never there.
func (g *LMS) DeleteAccount(ctx context.Context, id string) error {
	if _, err := g.GetAccount(ctx, id); err != nil {
		return err
	}
	return g.deleteRead(ctx, id)
}

// deleteRead deletes the account id, which was just read.
func (g *LMS) deleteRead(ctx context.Context, id string) error {
	maybe, err := g.call(ctx, "DeleteAccount", func(ctx context.Context) error {
		return g.inner.DeleteAccount(ctx, id)
	})
	if err != nil && maybe && errors.Is(err, connector.ErrNotFound) {
		return nil // it was there a moment ago and our earlier attempt deleted it
	}
	return err
}

// sameData reports whether the LMS's account got says what want asked for:
// externalId, userName (case-insensitively, as SCIM compares it) and profile.
func sameData(got, want connector.Account) bool {
	return got.ExternalID == want.ExternalID && strings.EqualFold(got.UserName, want.UserName) && got.Profile == want.Profile
}

// Completions implements connector.TrainingReader when the LMS behind the guard
// does, under the same rate limit, retries and quarantine; otherwise it returns
// connector.ErrTrainingUnknown.
func (g *LMS) Completions(ctx context.Context, accountID string) ([]connector.CompletionRecord, error) {
	tr, ok := g.inner.(connector.TrainingReader)
	if !ok {
		return nil, connector.ErrTrainingUnknown
	}
	var out []connector.CompletionRecord
	_, err := g.call(ctx, "Completions", func(ctx context.Context) (err error) {
		out, err = tr.Completions(ctx, accountID)
		return err
	})
	return out, err
}

var _ connector.TrainingReader = (*LMS)(nil)

// MaxTrainingBatch implements connector.TrainingBatchReader: the LMS's, or 0
// when it cannot read many accounts' completions at once.
func (g *LMS) MaxTrainingBatch(ctx context.Context) int {
	if br, ok := g.inner.(connector.TrainingBatchReader); ok {
		return br.MaxTrainingBatch(ctx)
	}
	return 0
}

// CompletionsOf implements connector.TrainingBatchReader when the LMS behind the
// guard does, as one call under the guard's rate limit, retries and quarantine.
func (g *LMS) CompletionsOf(ctx context.Context, ids []string) (map[string][]connector.CompletionRecord, error) {
	br, ok := g.inner.(connector.TrainingBatchReader)
	if !ok {
		return nil, connector.ErrTrainingUnknown
	}
	var out map[string][]connector.CompletionRecord
	_, err := g.call(ctx, "CompletionsOf", func(ctx context.Context) (err error) {
		out, err = br.CompletionsOf(ctx, ids)
		return err
	})
	return out, err
}

var _ connector.TrainingBatchReader = (*LMS)(nil)

// Activity implements connector.ActivityReader when the LMS behind the guard
// does, under the guard's rate limit, retries and quarantine.
func (g *LMS) Activity(ctx context.Context, accountID string) (connector.Activity, error) {
	ar, ok := g.inner.(connector.ActivityReader)
	if !ok {
		return connector.Activity{}, connector.ErrTrainingUnknown
	}
	var out connector.Activity
	_, err := g.call(ctx, "Activity", func(ctx context.Context) (err error) {
		out, err = ar.Activity(ctx, accountID)
		return err
	})
	return out, err
}

var _ connector.ActivityReader = (*LMS)(nil)

// DeleteTraining implements connector.TrainingDeleter when the LMS behind the
// guard does, as one call under the rate limit, retries and quarantine (one
// token, although the scim adapter reads the user before and after its PATCH);
// otherwise it returns connector.ErrTrainingNotDeletable. Deleting learning
// records is idempotent, so retries after a lost answer are safe as they are.
func (g *LMS) DeleteTraining(ctx context.Context, accountID string) error {
	td, ok := g.inner.(connector.TrainingDeleter)
	if !ok {
		return connector.ErrTrainingNotDeletable
	}
	_, err := g.call(ctx, "DeleteTraining", func(ctx context.Context) error {
		return td.DeleteTraining(ctx, accountID)
	})
	return err
}

var _ connector.TrainingDeleter = (*LMS)(nil)
