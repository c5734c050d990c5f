package faulty_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector/lms/faulty"
)

// counting is an inner handler that counts the requests it applied.
type counting struct{ n atomic.Int64 }

func (c *counting) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	c.n.Add(1)
	w.WriteHeader(http.StatusCreated)
}

func mustNew(t *testing.T, inner http.Handler, cfg faulty.Config) *faulty.Injector {
	t.Helper()
	in, err := faulty.New(inner, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// serve sends n requests one after another straight to h and returns the statuses.
func serve(h http.Handler, n int) []int {
	out := make([]int, n)
	for i := range n {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/scim/v2/Users", nil))
		out[i] = rec.Code
	}
	return out
}

func TestFractionsAndPhases(t *testing.T) {
	t.Parallel()
	inner := &counting{}
	in := mustNew(t, inner, faulty.Config{ServerErrors: 0.10, Timeouts: 0.05, RateLimited: 0.05,
		After: 0.5, Hold: time.Millisecond, RetryAfter: 1500 * time.Millisecond, Seed: 7})
	const n = 4000
	codes := serve(in, n)
	c := in.Counts()
	if c.Requests != n {
		t.Fatalf("Requests = %d, want %d", c.Requests, n)
	}
	if got := c.Passed + c.Injected(); got != n {
		t.Errorf("Passed+Injected = %d, want %d (%+v)", got, n, c)
	}
	within := func(name string, got int64, p float64) {
		t.Helper()
		want := p * n
		if float64(got) < want*0.7 || float64(got) > want*1.3 {
			t.Errorf("%s = %d, want about %.0f", name, got, want)
		}
	}
	within("5xx", c.ServerErrBefore+c.ServerErrAfter, 0.10)
	within("timeouts", c.TimeoutBefore+c.TimeoutAfter, 0.05)
	within("429", c.RateLimited, 0.05)
	within("5xx after", c.ServerErrAfter, 0.05)
	within("timeouts after", c.TimeoutAfter, 0.025)
	// Faults before the handler do not apply the request; faults after it do.
	if got, want := inner.n.Load(), c.Passed+c.ServerErrAfter+c.TimeoutAfter; got != want {
		t.Errorf("inner handler applied %d requests, want %d", got, want)
	}
	var s5, s504, s429, s201 int64
	for _, code := range codes {
		switch {
		case code == http.StatusGatewayTimeout:
			s504++
		case code >= 500:
			s5++
		case code == http.StatusTooManyRequests:
			s429++
		case code == http.StatusCreated:
			s201++
		}
	}
	if s5 != c.ServerErrBefore+c.ServerErrAfter || s504 != c.TimeoutBefore+c.TimeoutAfter || s429 != c.RateLimited || s201 != c.Passed {
		t.Errorf("statuses 5xx %d, 504 %d, 429 %d, 201 %d disagree with counts %+v", s5, s504, s429, s201, c)
	}
}

func TestSeedReproduces(t *testing.T) {
	t.Parallel()
	cfg := faulty.Config{ServerErrors: 0.2, Timeouts: 0.1, RateLimited: 0.1, After: 0.5, Hold: time.Microsecond, Seed: 42}
	a := serve(mustNew(t, &counting{}, cfg), 500)
	b := serve(mustNew(t, &counting{}, cfg), 500)
	if !slices.Equal(a, b) {
		t.Error("the same seed gave different sequences")
	}
	cfg.Seed = 43
	if c := serve(mustNew(t, &counting{}, cfg), 500); slices.Equal(a, c) {
		t.Error("another seed gave the same sequence")
	}
}

func TestRetryAfterHeader(t *testing.T) {
	t.Parallel()
	in := mustNew(t, &counting{}, faulty.Config{RateLimited: 1, RetryAfter: 1500 * time.Millisecond})
	rec := httptest.NewRecorder()
	in.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/scim/v2/Users", nil))
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "2" {
		t.Errorf("status %d, Retry-After %q; want 429 and 2", rec.Code, rec.Header().Get("Retry-After"))
	}
}

func TestTimeoutEndsWithTheClient(t *testing.T) {
	t.Parallel()
	for _, after := range []float64{0, 1} {
		inner := &counting{}
		in := mustNew(t, inner, faulty.Config{Timeouts: 1, After: after, Hold: time.Minute})
		srv := httptest.NewServer(in)
		t.Cleanup(srv.Close)
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/scim/v2/Users", nil)
		start := time.Now()
		resp, err := srv.Client().Do(req)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("after=%v: got HTTP %d, want the client to time out", after, resp.StatusCode)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("after=%v: error %v, want a deadline", after, err)
		}
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("after=%v: the client waited %v", after, d)
		}
		// The server side must let go too: Close waits for active handlers.
		srv.Close()
		if got := inner.n.Load(); got != int64(after) {
			t.Errorf("after=%v: inner handler applied %d requests, want %v", after, got, after)
		}
	}
}

func TestFilterAndOutage(t *testing.T) {
	t.Parallel()
	inner := &counting{}
	in := mustNew(t, inner, faulty.Config{ServerErrors: 1, Filter: func(r *http.Request) bool { return r.Method == http.MethodGet }})
	if codes := serve(in, 3); !slices.Equal(codes, []int{201, 201, 201}) {
		t.Errorf("POSTs that the filter excludes: %v, want all 201", codes)
	}
	in.SetOutage(http.StatusUnauthorized)
	if codes := serve(in, 2); !slices.Equal(codes, []int{401, 401}) {
		t.Errorf("during the outage: %v, want 401s", codes)
	}
	in.SetOutage(0)
	if codes := serve(in, 1); codes[0] != 201 {
		t.Errorf("after the outage: %v", codes)
	}
	if c := in.Counts(); c.Outage != 2 || c.Passed != 4 || inner.n.Load() != 4 {
		t.Errorf("counts %+v, inner %d", c, inner.n.Load())
	}
}

func TestBadConfig(t *testing.T) {
	t.Parallel()
	for _, cfg := range []faulty.Config{{ServerErrors: -0.1}, {Timeouts: 1.5}, {ServerErrors: 0.6, Timeouts: 0.6}} {
		if _, err := faulty.New(&counting{}, cfg); err == nil {
			t.Errorf("New(%+v) accepted it", cfg)
		}
	}
}
