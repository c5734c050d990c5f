package guard_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/faulty"
	"github.com/hrsync/hrsync/connector/lms/guard"
	"github.com/hrsync/hrsync/connector/lms/lmstest"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/connector/lms/scim"
)

// faultSeed is the fault injector's seed: FAULTY_SEED, or 1. A failure names it.
func faultSeed(t *testing.T) uint64 {
	t.Helper()
	if s := os.Getenv("FAULTY_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("FAULTY_SEED: %v", err)
		}
		return n
	}
	return 1
}

// faultyStack is the sandbox served over HTTP behind the fault injector, driven
// by the real SCIM client, behind the guard: what hrsync runs against a bad LMS.
type faultyStack struct {
	sandbox *sandbox.LMS
	faults  *faulty.Injector
	client  *scim.Client
	guard   *guard.LMS
}

// faultConfig is the failing LMS: 10% 5xx, 5% timeouts, some 429s, half
// of the 5xx and timeouts after the request was applied.
func faultConfig(seed uint64) faulty.Config {
	return faulty.Config{Latency: 200 * time.Microsecond, Jitter: time.Millisecond,
		ServerErrors: 0.10, Timeouts: 0.05, Hold: 4 * time.Second, RateLimited: 0.02, RetryAfter: time.Second,
		After: 0.5, Seed: seed}
}

func newFaultyStack(t *testing.T, fc faulty.Config, gc guard.Config) *faultyStack {
	t.Helper()
	s := &faultyStack{sandbox: sandbox.New()}
	var err error
	s.faults, err = faulty.New(s.sandbox.Handler(""), fc)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.faults)
	t.Cleanup(srv.Close)
	// The client gives up long before the injector lets a held request go, and late
	// enough that a loaded CI machine does not add timeouts of its own: ten of
	// those in a row would (rightly) quarantine the LMS.
	s.client, err = scim.New(srv.URL+sandbox.BasePath, scim.WithHTTPClient(srv.Client()), scim.WithTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if gc.MaxAttempts == 0 {
		gc.MaxAttempts = 10
	}
	if gc.RetryBase == 0 {
		gc.RetryBase, gc.RetryMax = 5*time.Millisecond, 100*time.Millisecond
	}
	if gc.Logger == nil {
		gc.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	s.guard = guard.New(s.client, gc)
	return s
}

// TestConformanceBehindFaults runs the LMS conformance suite on the guard over the
// SCIM client over the fault injector over the sandbox's SCIM handler.
func TestConformanceBehindFaults(t *testing.T) {
	t.Parallel()
	seed := faultSeed(t)
	var mu sync.Mutex
	var total faulty.Counts
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		t.Logf("seed %d: injected %+v", seed, total)
		if !t.Failed() && (total.ServerErrAfter == 0 || total.TimeoutAfter == 0 || total.ServerErrBefore == 0 ||
			total.TimeoutBefore == 0 || total.RateLimited == 0) {
			t.Errorf("the suite did not meet every kind of fault: %+v", total)
		}
	})
	n := uint64(0)
	sandboxes := map[connector.LMS]*sandbox.LMS{}
	newLMS := func(t *testing.T) connector.LMS {
		mu.Lock()
		n++
		s := newFaultyStack(t, faultConfig(seed+n), guard.Config{})
		sandboxes[s.guard] = s.sandbox
		mu.Unlock()
		t.Cleanup(func() {
			c := s.faults.Counts()
			mu.Lock()
			defer mu.Unlock()
			total.Requests += c.Requests
			total.Passed += c.Passed
			total.ServerErrBefore += c.ServerErrBefore
			total.ServerErrAfter += c.ServerErrAfter
			total.TimeoutBefore += c.TimeoutBefore
			total.TimeoutAfter += c.TimeoutAfter
			total.RateLimited += c.RateLimited
			if st := s.guard.Status(); st.Quarantined {
				t.Errorf("the guard quarantined the LMS: %s", st)
			}
		})
		return s.guard
	}
	t.Run("Run", func(t *testing.T) {
		t.Parallel()
		lmstest.Run(t, lmstest.Features{ETags: true, LostAnswers: true,
			Train: func(t *testing.T, lms connector.LMS, id string) {
				mu.Lock()
				sb := sandboxes[lms]
				mu.Unlock()
				if err := sb.RecordLogin(id, time.Time{}); err != nil {
					t.Fatalf("RecordLogin: %v", err)
				}
			}}, newLMS)
	})
	t.Run("RunConcurrency", func(t *testing.T) {
		t.Parallel()
		lmstest.RunConcurrency(t, newLMS)
	})
}

// scripted is an LMS whose calls fail as a script says, then go to next.
type scripted struct {
	connector.LMS // the one that answers when the script does not fail
	mu            sync.Mutex
	script        []error // one per call; nil: pass to next
	calls         atomic.Int64
	// lost, if set, is called for calls the script fails: it applies the request
	// first (the answer is lost).
	lost bool
}

func (s *scripted) next() error {
	s.calls.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.script) == 0 {
		return nil
	}
	err := s.script[0]
	s.script = s.script[1:]
	return err
}

func (s *scripted) GetAccount(ctx context.Context, id string) (connector.Account, error) {
	if err := s.next(); err != nil {
		return connector.Account{}, err
	}
	return s.LMS.GetAccount(ctx, id)
}

func (s *scripted) ListAccounts(ctx context.Context, start, count int) (connector.AccountPage, error) {
	if err := s.next(); err != nil {
		return connector.AccountPage{}, err
	}
	return s.LMS.ListAccounts(ctx, start, count)
}

func (s *scripted) FindAccounts(ctx context.Context, f connector.AccountFilter) ([]connector.Account, error) {
	if err := s.next(); err != nil {
		return nil, err
	}
	return s.LMS.FindAccounts(ctx, f)
}

func (s *scripted) CreateAccount(ctx context.Context, a connector.Account) (connector.Account, error) {
	err := s.next()
	if err != nil && s.lost {
		_, _ = s.LMS.CreateAccount(ctx, a)
	}
	if err != nil {
		return connector.Account{}, err
	}
	return s.LMS.CreateAccount(ctx, a)
}

func (s *scripted) UpdateAccount(ctx context.Context, a connector.Account) (connector.Account, error) {
	err := s.next()
	if err != nil && s.lost {
		_, _ = s.LMS.UpdateAccount(ctx, a)
	}
	if err != nil {
		return connector.Account{}, err
	}
	return s.LMS.UpdateAccount(ctx, a)
}

func (s *scripted) DeleteAccount(ctx context.Context, id string) error {
	err := s.next()
	if err != nil && s.lost {
		_ = s.LMS.DeleteAccount(ctx, id)
	}
	if err != nil {
		return err
	}
	return s.LMS.DeleteAccount(ctx, id)
}

func unavailable(status int) error {
	return &connector.LMSError{Kind: connector.KindUnavailable, Op: "test", Status: status}
}

func fastRetries() guard.Config {
	return guard.Config{RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond}
}

func acct(name string) connector.Account {
	return connector.Account{ExternalID: "hr:" + name, UserName: name + "@example.com", Active: true,
		Profile: connector.Profile{Email: name + "@example.com", GivenName: name}}
}

func TestRetries(t *testing.T) {
	t.Parallel()

	t.Run("TemporaryThenOK", func(t *testing.T) {
		t.Parallel()
		sb := sandbox.New()
		a, _ := sb.CreateAccount(t.Context(), acct("ann"))
		in := &scripted{LMS: sb, script: []error{unavailable(503), unavailable(500)}}
		var outcomes []string
		var mu sync.Mutex
		cfg := fastRetries()
		cfg.Hooks.Call = func(op, o string) { mu.Lock(); outcomes = append(outcomes, op+":"+o); mu.Unlock() }
		got, err := guard.New(in, cfg).GetAccount(t.Context(), a.ID)
		if err != nil || got.ID != a.ID {
			t.Fatalf("GetAccount = %v, %v", got.ID, err)
		}
		if want := "GetAccount:unavailable GetAccount:unavailable GetAccount:ok"; strings.Join(outcomes, " ") != want {
			t.Errorf("outcomes %v, want %s", outcomes, want)
		}
	})

	t.Run("BoundedAttempts", func(t *testing.T) {
		t.Parallel()
		in := &scripted{LMS: sandbox.New(), script: []error{unavailable(503), unavailable(503), unavailable(503), unavailable(503)}}
		cfg := fastRetries()
		cfg.MaxAttempts = 3
		_, err := guard.New(in, cfg).GetAccount(t.Context(), "x")
		if !connector.IsTemporary(err) || in.calls.Load() != 3 {
			t.Errorf("error %v after %d calls; want a temporary error after 3", err, in.calls.Load())
		}
	})

	t.Run("PermanentNotRetried", func(t *testing.T) {
		t.Parallel()
		for _, kind := range []connector.ErrorKind{connector.KindInvalid, connector.KindNotFound, connector.KindPrecondition, connector.KindAuth} {
			in := &scripted{LMS: sandbox.New(), script: []error{&connector.LMSError{Kind: kind, Op: "test"}}}
			_, err := guard.New(in, fastRetries()).GetAccount(t.Context(), "x")
			if !isKind(err, kind) || in.calls.Load() != 1 {
				t.Errorf("%s: error %v after %d calls; want it returned after 1", kind, err, in.calls.Load())
			}
		}
	})

	t.Run("HonoursRetryAfter", func(t *testing.T) {
		t.Parallel()
		clock := newFakeClock()
		sb := sandbox.New()
		a, _ := sb.CreateAccount(t.Context(), acct("ann"))
		in := &scripted{LMS: sb, script: []error{&connector.LMSError{Kind: connector.KindRateLimited, Op: "test", Status: 429, RetryAfter: 7 * time.Second}}}
		cfg := fastRetries()
		cfg.Clock = clock
		g := guard.New(in, cfg)
		done := make(chan error, 1)
		go func() { _, err := g.GetAccount(t.Context(), a.ID); done <- err }()
		clock.awaitWaiting(t, 1)
		if w := clock.Waits(); len(w) != 1 || w[0] != 7*time.Second {
			t.Fatalf("waits %v, want the 7s the LMS asked for", w)
		}
		clock.Advance(7 * time.Second)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})

	t.Run("BackoffGrowsWithJitter", func(t *testing.T) {
		t.Parallel()
		clock := newFakeClock()
		in := &scripted{LMS: sandbox.New(), script: []error{unavailable(503), unavailable(503), unavailable(503), unavailable(503)}}
		g := guard.New(in, guard.Config{Clock: clock, RetryBase: time.Second, RetryMax: 5 * time.Second, MaxAttempts: 5, MaxElapsed: time.Hour})
		done := make(chan error, 1)
		go func() { _, err := g.GetAccount(t.Context(), "x"); done <- err }()
		for i := range 4 {
			clock.awaitWaiting(t, 1)
			w := clock.Waits()[i]
			lo := min(time.Second<<i, 5*time.Second) / 2
			if w < lo || w > 2*lo {
				t.Errorf("wait %d = %v, want in [%v, %v]", i, w, lo, 2*lo)
			}
			clock.AdvanceToNext()
		}
		if err := <-done; !errors.Is(err, connector.ErrNotFound) {
			t.Errorf("after the retries: %v, want the sandbox's not found", err)
		}
	})

	t.Run("MaxElapsed", func(t *testing.T) {
		t.Parallel()
		clock := newFakeClock()
		in := &scripted{LMS: sandbox.New(), script: []error{
			&connector.LMSError{Kind: connector.KindRateLimited, Op: "test", Status: 429, RetryAfter: 2 * time.Minute}}}
		g := guard.New(in, guard.Config{Clock: clock, MaxElapsed: time.Minute})
		_, err := g.GetAccount(t.Context(), "x")
		var le *connector.LMSError
		if !errors.As(err, &le) || le.RetryAfter != 2*time.Minute || in.calls.Load() != 1 {
			t.Errorf("error %v after %d calls; want the 429 at once, for the caller to come back later", err, in.calls.Load())
		}
	})

	t.Run("ContextDeadline", func(t *testing.T) {
		t.Parallel()
		in := &scripted{LMS: sandbox.New(), script: []error{
			&connector.LMSError{Kind: connector.KindRateLimited, Op: "test", Status: 429, RetryAfter: time.Hour}}}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		start := time.Now()
		_, err := guard.New(in, guard.Config{}).GetAccount(ctx, "x")
		if !isKind(err, connector.KindRateLimited) || time.Since(start) > 5*time.Second {
			t.Errorf("error %v after %v; want the 429 at once", err, time.Since(start))
		}
	})
}

func isKind(err error, k connector.ErrorKind) bool {
	var le *connector.LMSError
	return errors.As(err, &le) && le.Kind == k
}

// TestLostAnswers: requests that the LMS applied but whose answer was lost are not
// done twice, and their retries report success.
func TestLostAnswers(t *testing.T) {
	t.Parallel()

	t.Run("CreateAppliedAnswered500", func(t *testing.T) {
		t.Parallel()
		sb := sandbox.New()
		in := &scripted{LMS: sb, lost: true, script: []error{unavailable(500)}}
		got, err := guard.New(in, fastRetries()).CreateAccount(t.Context(), acct("ann"))
		if err != nil || got.ID == "" || got.ExternalID != "hr:ann" {
			t.Fatalf("CreateAccount = %+v, %v; want the account the lost create made", got, err)
		}
		if n := sb.Count(); n != 1 {
			t.Errorf("%d accounts, want 1", n)
		}
	})

	t.Run("CreateMinimalByUserName", func(t *testing.T) {
		t.Parallel()
		sb := sandbox.New()
		in := &scripted{LMS: sb, lost: true, script: []error{unavailable(504)}}
		got, err := guard.New(in, fastRetries()).CreateAccount(t.Context(), connector.Account{UserName: "min", Active: true})
		if err != nil || got.UserName != "min" || sb.Count() != 1 {
			t.Fatalf("CreateAccount = %+v, %v, %d accounts", got, err, sb.Count())
		}
	})

	t.Run("CreateLookupFails", func(t *testing.T) {
		t.Parallel()
		sb := sandbox.New()
		// The create is applied and answered 500; the retry meets the conflict; every
		// attempt to look the account up fails.
		in := &scripted{LMS: sb, lost: true, script: []error{unavailable(500), nil,
			unavailable(503), unavailable(503), unavailable(503)}}
		cfg := fastRetries()
		cfg.MaxAttempts = 3
		_, err := guard.New(in, cfg).CreateAccount(t.Context(), acct("ann"))
		if errors.Is(err, connector.ErrConflict) || !connector.IsTemporary(err) {
			t.Errorf("error %v: want a temporary error that is not a conflict, so that the converger retries", err)
		}
		if sb.Count() != 1 {
			t.Errorf("%d accounts, want 1", sb.Count())
		}
	})

	t.Run("CreateSharedExternalID", func(t *testing.T) {
		t.Parallel()
		// Where externalIds are not unique (Moodle's idnumber), the lookup finds
		// another account besides the one the lost create made.
		sb := sandbox.New(sandbox.WithDuplicateExternalIDs())
		other := acct("ann")
		other.UserName = "ann-before"
		if _, err := sb.CreateAccount(t.Context(), other); err != nil {
			t.Fatal(err)
		}
		in := &scripted{LMS: sb, lost: true, script: []error{unavailable(500)}}
		got, err := guard.New(in, fastRetries()).CreateAccount(t.Context(), acct("ann"))
		if err != nil || got.UserName != acct("ann").UserName || sb.Count() != 2 {
			t.Fatalf("CreateAccount = %+v, %v, %d accounts; want the account the lost create made", got, err, sb.Count())
		}
	})

	t.Run("CreateInactiveInTwoSteps", func(t *testing.T) {
		t.Parallel()
		// An LMS that creates active and then deactivates lost the create's
		// answer: the account is there, active; the retry finishes the job.
		sb := sandbox.New()
		want := acct("ann")
		want.Active = false
		active := want
		active.Active = true
		if _, err := sb.CreateAccount(t.Context(), active); err != nil {
			t.Fatal(err)
		}
		in := &scripted{LMS: sb, script: []error{unavailable(500)}}
		g := guard.New(in, fastRetries())
		got, err := g.CreateAccount(t.Context(), want)
		if err != nil || got.Active || sb.Count() != 1 {
			t.Fatalf("CreateAccount = %+v, %v, %d accounts; want the account, deactivated", got, err, sb.Count())
		}
	})

	t.Run("CreateRealConflict", func(t *testing.T) {
		t.Parallel()
		sb := sandbox.New()
		other := acct("ann")
		other.Profile.GivenName = "Someone else"
		if _, err := sb.CreateAccount(t.Context(), other); err != nil {
			t.Fatal(err)
		}
		// The first attempt failed before it was applied; the retry meets another's account.
		in := &scripted{LMS: sb, script: []error{unavailable(503)}}
		_, err := guard.New(in, fastRetries()).CreateAccount(t.Context(), acct("ann"))
		if !errors.Is(err, connector.ErrConflict) {
			t.Errorf("error %v, want the conflict: the account is not the one asked for", err)
		}
	})

	t.Run("UpdateWithVersionApplied", func(t *testing.T) {
		t.Parallel()
		sb := sandbox.New()
		a, _ := sb.CreateAccount(t.Context(), acct("ann"))
		in := &scripted{LMS: sb, lost: true, script: []error{unavailable(502)}}
		upd := a
		upd.Profile.JobTitle = "Lead"
		got, err := guard.New(in, fastRetries()).UpdateAccount(t.Context(), upd)
		if err != nil || got.Profile.JobTitle != "Lead" {
			t.Fatalf("UpdateAccount = %+v, %v", got, err)
		}
	})

	t.Run("UpdateStaleVersionStaysStale", func(t *testing.T) {
		t.Parallel()
		sb := sandbox.New()
		a, _ := sb.CreateAccount(t.Context(), acct("ann"))
		if _, err := sb.SetActive(t.Context(), a.ID, false); err != nil {
			t.Fatal(err)
		}
		in := &scripted{LMS: sb, script: []error{unavailable(502)}}
		upd := a
		upd.Profile.JobTitle = "Stale"
		_, err := guard.New(in, fastRetries()).UpdateAccount(t.Context(), upd)
		if !errors.Is(err, connector.ErrPrecondition) {
			t.Errorf("error %v, want the precondition failure", err)
		}
	})

	t.Run("DeleteAppliedAnswered500", func(t *testing.T) {
		t.Parallel()
		sb := sandbox.New()
		a, _ := sb.CreateAccount(t.Context(), acct("ann"))
		in := &scripted{LMS: sb, lost: true, script: []error{nil, unavailable(500)}} // the read, then the delete
		if err := guard.New(in, fastRetries()).DeleteAccount(t.Context(), a.ID); err != nil {
			t.Fatalf("DeleteAccount: %v", err)
		}
		if sb.Count() != 0 {
			t.Error("the account is still there")
		}
	})

	t.Run("DeleteMissingAfter500", func(t *testing.T) {
		t.Parallel()
		in := &scripted{LMS: sandbox.New(), script: []error{unavailable(500)}}
		err := guard.New(in, fastRetries()).DeleteAccount(t.Context(), "u-404")
		if !errors.Is(err, connector.ErrNotFound) {
			t.Errorf("error %v, want not found: the account never existed", err)
		}
	})
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// failing is an LMS whose every call fails with err until err is nil.
type failing struct {
	connector.LMS
	mu    sync.Mutex
	err   error
	calls atomic.Int64
	// gate, if set, is received from before each call answers.
	gate chan struct{}
}

func (f *failing) set(err error) { f.mu.Lock(); f.err = err; f.mu.Unlock() }

func (f *failing) ListAccounts(ctx context.Context, start, count int) (connector.AccountPage, error) {
	f.calls.Add(1)
	if f.gate != nil {
		<-f.gate
	}
	f.mu.Lock()
	err := f.err
	f.mu.Unlock()
	if err != nil {
		return connector.AccountPage{}, err
	}
	return f.LMS.ListAccounts(ctx, start, count)
}

func quarantineSetup(t *testing.T, inner connector.LMS) (*guard.LMS, *fakeClock, *syncBuffer, *[]bool) {
	t.Helper()
	clock := newFakeClock()
	logs := &syncBuffer{}
	var transitions []bool
	var mu sync.Mutex
	g := guard.New(inner, guard.Config{MaxAttempts: 1, Clock: clock,
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
		Hooks: guard.Hooks{Quarantine: func(q bool) {
			mu.Lock()
			transitions = append(transitions, q)
			mu.Unlock()
		}},
		Quarantine: guard.QuarantineConfig{ProbeInterval: 30 * time.Second, MaxProbeInterval: 2 * time.Minute}})
	return g, clock, logs, &transitions
}

func TestQuarantine(t *testing.T) {
	t.Parallel()

	t.Run("ConsecutiveFailuresProbeResume", func(t *testing.T) {
		t.Parallel()
		inner := &failing{LMS: sandbox.New(), err: &connector.LMSError{Kind: connector.KindAuth, Op: "test", Status: 401, Reason: "bad token"}}
		g, clock, logs, transitions := quarantineSetup(t, inner)
		for range 10 {
			if _, err := g.ListAccounts(t.Context(), 1, 1); !isKind(err, connector.KindAuth) {
				t.Fatalf("error %v, want the LMS's auth error", err)
			}
		}
		st := g.Status()
		if !st.Quarantined || !st.Since.Equal(clock.Now()) || !st.NextProbe.Equal(clock.Now().Add(30*time.Second)) ||
			!strings.Contains(st.Reason, "10 calls in a row failed; last: auth (HTTP 401)") || strings.Contains(st.Reason, "bad token") {
			t.Fatalf("Status = %+v", st)
		}
		// Calls fail fast and do not reach the LMS.
		_, err := g.ListAccounts(t.Context(), 1, 1)
		var le *connector.LMSError
		if !errors.Is(err, guard.ErrQuarantined) || !errors.As(err, &le) || le.Kind != connector.KindUnavailable ||
			le.RetryAfter != 30*time.Second || !connector.IsTemporary(err) {
			t.Fatalf("error %v, want a temporary quarantined error", err)
		}
		if n := inner.calls.Load(); n != 10 {
			t.Errorf("%d calls reached the LMS, want 10", n)
		}
		if ok, at := g.Available(); ok || !at.Equal(st.NextProbe) {
			t.Errorf("Available() = %v, %v; want false until %v", ok, at, st.NextProbe)
		}
		// The probe fails: the quarantine goes on, with a longer interval.
		clock.Advance(30 * time.Second)
		if _, err := g.ListAccounts(t.Context(), 1, 1); !isKind(err, connector.KindAuth) {
			t.Fatalf("probe: %v, want it to reach the LMS", err)
		}
		st = g.Status()
		if !st.Quarantined || !st.NextProbe.Equal(clock.Now().Add(time.Minute)) || !strings.HasPrefix(st.Reason, "probe failed") {
			t.Fatalf("after a failed probe: %+v", st)
		}
		// Fixed credentials; the next probe resumes.
		inner.set(nil)
		clock.Advance(time.Minute)
		if err := g.Probe(t.Context()); err != nil {
			t.Fatalf("probe: %v", err)
		}
		if st := g.Status(); st.Quarantined {
			t.Fatalf("after a good probe: %+v", st)
		}
		if ok, _ := g.Available(); !ok {
			t.Error("Available() = false after resuming")
		}
		if got := *transitions; len(got) != 2 || !got[0] || got[1] {
			t.Errorf("Quarantine hook calls %v, want [true false]", got)
		}
		out := logs.String()
		for _, want := range []string{`level=WARN msg="lms quarantined`, `level=WARN msg="lms still quarantined: probe failed"`, `level=INFO msg="lms resumed: probe succeeded"`, "auth (HTTP 401)"} {
			if !strings.Contains(out, want) {
				t.Errorf("log lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("FailureRatio", func(t *testing.T) {
		t.Parallel()
		inner := &failing{LMS: sandbox.New()}
		g, _, _, _ := quarantineSetup(t, inner)
		for i := range 20 {
			if i%5 == 4 {
				inner.set(nil)
			} else {
				inner.set(unavailable(503))
			}
			_, _ = g.ListAccounts(t.Context(), 1, 1)
			if st := g.Status(); st.Quarantined != (i == 19) {
				t.Fatalf("after call %d: %+v", i+1, st)
			}
		}
		if st := g.Status(); !strings.Contains(st.Reason, "16 of the last 20 calls failed") {
			t.Errorf("Reason %q", st.Reason)
		}
	})

	t.Run("AnswersAreNotFailures", func(t *testing.T) {
		t.Parallel()
		for _, kind := range []connector.ErrorKind{connector.KindNotFound, connector.KindConflict, connector.KindInvalid, connector.KindRateLimited} {
			inner := &failing{LMS: sandbox.New(), err: &connector.LMSError{Kind: kind, Op: "test"}}
			g, _, _, _ := quarantineSetup(t, inner)
			for range 40 {
				_, _ = g.ListAccounts(t.Context(), 1, 1)
			}
			if st := g.Status(); st.Quarantined {
				t.Errorf("%s errors quarantined the LMS: %+v", kind, st)
			}
		}
	})

	t.Run("CancelledCallsAreNotFailures", func(t *testing.T) {
		t.Parallel()
		inner := &failing{LMS: sandbox.New(), err: unavailable(0)}
		g, _, _, _ := quarantineSetup(t, inner)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		for range 40 {
			_, _ = g.ListAccounts(ctx, 1, 1)
		}
		if st := g.Status(); st.Quarantined {
			t.Errorf("our own cancellations quarantined the LMS: %+v", st)
		}
	})

	t.Run("OneProbeAtATime", func(t *testing.T) {
		t.Parallel()
		inner := &failing{LMS: sandbox.New(), err: unavailable(503)}
		g, clock, _, _ := quarantineSetup(t, inner)
		for range 10 {
			_, _ = g.ListAccounts(t.Context(), 1, 1)
		}
		if !g.Status().Quarantined {
			t.Fatal("not quarantined")
		}
		inner.set(nil)
		inner.gate = make(chan struct{})
		clock.Advance(30 * time.Second)
		probe := make(chan error, 1)
		go func() { _, err := g.ListAccounts(t.Context(), 1, 1); probe <- err }()
		for i := 0; !g.Status().Probing; i++ { // bounded poll for the probe to start
			if i > 1000 {
				t.Fatal("the probe did not start")
			}
			select {
			case <-time.After(time.Millisecond):
			case err := <-probe:
				t.Fatalf("probe ended early: %v", err)
			}
		}
		// While the probe is in flight, other calls fail fast.
		if _, err := g.ListAccounts(t.Context(), 1, 1); !errors.Is(err, guard.ErrQuarantined) {
			t.Errorf("second call during the probe: %v, want a fast failure", err)
		}
		close(inner.gate)
		if err := <-probe; err != nil {
			t.Fatalf("probe: %v", err)
		}
		if n := inner.calls.Load(); n != 11 {
			t.Errorf("%d calls reached the LMS, want 10 and the probe", n)
		}
		if g.Status().Quarantined {
			t.Error("still quarantined after a good probe")
		}
	})

	t.Run("AvailableProbesInTheBackground", func(t *testing.T) {
		t.Parallel()
		inner := &failing{LMS: sandbox.New(), err: unavailable(503)}
		g, clock, _, _ := quarantineSetup(t, inner)
		for range 10 {
			_, _ = g.ListAccounts(t.Context(), 1, 1)
		}
		inner.set(nil)
		clock.Advance(30 * time.Second)
		if ok, _ := g.Available(); ok {
			t.Fatal("Available() = true before any probe")
		}
		for i := 0; ; i++ { // bounded poll: the background probe resumes the LMS
			if ok, _ := g.Available(); ok {
				break
			}
			if i > 5000 {
				t.Fatalf("not resumed: %+v", g.Status())
			}
			<-time.After(time.Millisecond)
		}
		if n := inner.calls.Load(); n != 11 {
			t.Errorf("%d calls reached the LMS, want 10 and one probe", n)
		}
	})
}

// TestQuarantineOverHTTP: an outage of the LMS behind the fault injector
// quarantines it, and it resumes on its own once the LMS is back.
func TestQuarantineOverHTTP(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s := newFaultyStack(t, faulty.Config{}, guard.Config{MaxAttempts: 2, Clock: clock, RetryBase: time.Nanosecond, RetryMax: time.Nanosecond})
	s.faults.SetOutage(http.StatusServiceUnavailable)
	for i := 0; !s.guard.Status().Quarantined; i++ {
		if i > 20 {
			t.Fatal("20 calls into an outage and no quarantine")
		}
		_, _ = s.guard.GetAccount(t.Context(), "u-1")
	}
	before := s.faults.Counts().Requests
	for range 50 {
		if _, err := s.guard.GetAccount(t.Context(), "u-1"); !errors.Is(err, guard.ErrQuarantined) {
			t.Fatalf("during quarantine: %v", err)
		}
	}
	if n := s.faults.Counts().Requests - before; n != 0 {
		t.Errorf("%d requests reached the LMS during the quarantine", n)
	}
	s.faults.SetOutage(0)
	clock.Advance(time.Hour)
	if err := s.guard.Probe(t.Context()); err != nil {
		t.Fatalf("probe: %v", err)
	}
	if _, err := s.guard.CreateAccount(t.Context(), acct("ann")); err != nil {
		t.Fatalf("after resuming: %v", err)
	}
}

func TestCompletionsPassThrough(t *testing.T) {
	t.Parallel()
	sb := sandbox.New()
	a, err := sb.CreateAccount(t.Context(), connector.Account{UserName: "c@example.com", Active: true, Profile: connector.Profile{Email: "c@example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := sb.CompleteCourse(a.ID, "safety-101", time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	got, err := guard.New(sb, guard.Config{}).Completions(t.Context(), a.ID)
	if err != nil || len(got) != 1 {
		t.Fatalf("Completions through the guard = %+v, %v", got, err)
	}
}
