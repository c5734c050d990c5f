package app

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
)

// downLMS fails every call as unavailable.
type downLMS struct{ connector.LMS }

func (downLMS) GetAccount(context.Context, string) (connector.Account, error) {
	return connector.Account{}, &connector.LMSError{Kind: connector.KindUnavailable, Op: "GET /Users/x", Status: 503, Reason: "maintenance"}
}

// TestLMSGuardWiring: the rate is parsed, a quarantine shows in readiness and in
// the metrics.
func TestLMSGuardWiring(t *testing.T) {
	t.Parallel()
	m := NewMetrics()
	g, err := GuardedLMS(LMSSettings{Rate: "1000/h"}, downLMS{sandbox.New()}, nil, m)
	if err != nil {
		t.Fatal(err)
	}
	if err := lmsReady(g); err != nil {
		t.Fatalf("ready before any failure: %v", err)
	}
	// The burst of a 1000/h limit is one call; more would wait 3.6s each, so
	// give the calls a deadline: they fail fast as rate limited.
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	for range 3 {
		_, _ = g.GetAccount(ctx, "x")
	}
	g, err = GuardedLMS(LMSSettings{Rate: "unlimited"}, downLMS{sandbox.New()}, nil, m)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		// A short deadline leaves no time for the guard's own retries.
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		_, _ = g.GetAccount(ctx, "x")
		cancel()
		if g.Status().Quarantined {
			break
		}
	}
	err = lmsReady(g)
	// It names the cause, not the LMS's words (which may echo a request's data).
	if err == nil || !strings.HasPrefix(err.Error(), "lms quarantined since ") || !strings.Contains(err.Error(), "unavailable (HTTP 503)") ||
		strings.Contains(err.Error(), "maintenance") {
		t.Fatalf("ready while quarantined: %v", err)
	}
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{"hrsync_lms_quarantined 1", `hrsync_lms_calls_total{op="get_account",outcome="unavailable"}`,
		`hrsync_lms_calls_total{op="get_account",outcome="rate_limited"}`, "hrsync_lms_rate_wait_seconds_total"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
