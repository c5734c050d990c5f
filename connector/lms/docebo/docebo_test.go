package docebo_test

import (
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/docebo"
	"github.com/hrsync/hrsync/connector/lms/docebo/docebosim"
	"github.com/hrsync/hrsync/connector/lms/faulty"
	"github.com/hrsync/hrsync/connector/lms/guard"
	"github.com/hrsync/hrsync/connector/lms/lmstest"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
)

const (
	clientID = "hrsync-test"
	secret   = "s3cret"
)

type testBundle struct {
	sb     *sandbox.LMS
	sim    *docebosim.Server
	client *docebo.Client
	made   int // accounts createN made
}

// setup serves a fresh sandbox through the simulator and returns the adapter
// for it.
func setup(t *testing.T, cfg docebosim.Config, opts ...docebo.Option) *testBundle {
	t.Helper()
	sb := sandbox.New(docebosim.SandboxOptions()...)
	cfg.ClientID, cfg.ClientSecret = clientID, secret
	sim := docebosim.New(sb, cfg)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	opts = append([]docebo.Option{docebo.WithFields(docebosim.Fields), docebo.WithHTTPClient(srv.Client())}, opts...)
	c, err := docebo.New(srv.URL, clientID, secret, opts...)
	if err != nil {
		t.Fatal(err)
	}
	sandboxes.Store(c, sb)
	return &testBundle{sb: sb, sim: sim, client: c}
}

// sandboxes maps each adapter under test to the sandbox behind it, for Train.
var sandboxes sync.Map

// train records a login in the sandbox behind lms (the adapter, or the guard
// over it).
func train(t *testing.T, lms connector.LMS, id string) {
	t.Helper()
	sb, ok := sandboxes.Load(lms)
	if !ok {
		t.Fatalf("no sandbox behind %T", lms)
	}
	if err := sb.(*sandbox.LMS).RecordLogin(id, time.Now()); err != nil {
		t.Fatal(err)
	}
}

// features are what Docebo offers: no ETags, and an externalId kept in an
// additional field, which Docebo does not make unique.
func features() lmstest.Features {
	return lmstest.Features{DuplicateExternalIDs: true, Train: train}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	lmstest.Run(t, features(), func(t *testing.T) connector.LMS {
		sb := sandbox.New(append(docebosim.SandboxOptions(), sandbox.WithDuplicateExternalIDs())...)
		sim := docebosim.New(sb, docebosim.Config{ClientID: clientID, ClientSecret: secret})
		srv := httptest.NewServer(sim)
		t.Cleanup(srv.Close)
		c, err := docebo.New(srv.URL, clientID, secret, docebo.WithFields(docebosim.Fields), docebo.WithHTTPClient(srv.Client()))
		if err != nil {
			t.Fatal(err)
		}
		sandboxes.Store(c, sb)
		return c
	})
}

func TestConformanceConcurrency(t *testing.T) {
	t.Parallel()
	lmstest.RunConcurrency(t, func(t *testing.T) connector.LMS { return setup(t, docebosim.Config{}).client })
}

// TestConformanceBehindFaults runs the suite on the guard over the adapter over
// the fault injector over the simulator: 5xx before and after the request was
// applied, timeouts, and 429s, on token and API calls alike.
func TestConformanceBehindFaults(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var total faulty.Counts
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		t.Logf("injected %+v", total)
		if !t.Failed() && (total.ServerErrBefore == 0 || total.RateLimited == 0 || total.ServerErrAfter == 0) {
			t.Errorf("the suite did not meet every kind of fault: %+v", total)
		}
	})
	seed := uint64(0)
	lmstest.Run(t, lmstest.Features{DuplicateExternalIDs: true, LostAnswers: true, Train: train}, func(t *testing.T) connector.LMS {
		mu.Lock()
		seed++
		fc := faulty.Config{Latency: 100 * time.Microsecond, Jitter: 500 * time.Microsecond, ServerErrors: 0.08,
			Timeouts: 0.02, Hold: 4 * time.Second, RateLimited: 0.03, RetryAfter: time.Second, After: 0.5, Seed: seed}
		mu.Unlock()
		sb := sandbox.New(append(docebosim.SandboxOptions(), sandbox.WithDuplicateExternalIDs())...)
		sim := docebosim.New(sb, docebosim.Config{ClientID: clientID, ClientSecret: secret})
		inj, err := faulty.New(sim, fc)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(inj)
		t.Cleanup(srv.Close)
		hc := srv.Client()
		hc.Timeout = time.Second
		c, err := docebo.New(srv.URL, clientID, secret, docebo.WithFields(docebosim.Fields), docebo.WithHTTPClient(hc))
		if err != nil {
			t.Fatal(err)
		}
		g := guard.New(c, guard.Config{MaxAttempts: 10, RetryBase: 5 * time.Millisecond, RetryMax: 100 * time.Millisecond,
			Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))})
		sandboxes.Store(g, sb)
		t.Cleanup(func() {
			cs := inj.Counts()
			mu.Lock()
			defer mu.Unlock()
			total.ServerErrBefore += cs.ServerErrBefore
			total.ServerErrAfter += cs.ServerErrAfter
			total.TimeoutBefore += cs.TimeoutBefore
			total.TimeoutAfter += cs.TimeoutAfter
			total.RateLimited += cs.RateLimited
		})
		return g
	})
}

// TestConformanceTenant runs the suite against a real Docebo platform:
// DOCEBO_URL (https://acme.docebosaas.com), DOCEBO_CLIENT_ID,
// DOCEBO_CLIENT_SECRET, and the additional field ids that hold the
// externalId and profile (DOCEBO_FIELDS, e.g.
// "external_id=12,employee_number=13,org_unit=14,job_title=15,manager_id=16,locale=17").
// It creates users named lmstest-* and deletes them. Skipped unless DOCEBO_URL
// is set.
func TestConformanceTenant(t *testing.T) {
	base := os.Getenv("DOCEBO_URL")
	if base == "" {
		t.Skip("DOCEBO_URL is not set: no Docebo platform to run against")
	}
	fields, err := docebo.ParseFields(os.Getenv("DOCEBO_FIELDS"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := docebo.New(base, os.Getenv("DOCEBO_CLIENT_ID"), os.Getenv("DOCEBO_CLIENT_SECRET"), docebo.WithFields(fields))
	if err != nil {
		t.Fatal(err)
	}
	// One guard for the whole run: the platform's hourly limit is shared.
	g := guard.New(c, guard.Config{MaxAttempts: 5})
	lmstest.Run(t, lmstest.Features{DuplicateExternalIDs: true}, func(*testing.T) connector.LMS { return g })
}

// createN creates n accounts in the sandbox behind b and returns their ids.
func createN(t *testing.T, b *testBundle, n int) []string {
	t.Helper()
	out := make([]string, n)
	for i := range n {
		b.made++
		a, err := b.sb.CreateAccount(t.Context(), connector.Account{UserName: fmt.Sprintf("user%05d@example.com", b.made), Active: true,
			ExternalID: fmt.Sprintf("hr:w-%05d", b.made)})
		if err != nil {
			t.Fatal(err)
		}
		out[i] = a.ID
	}
	return out
}
