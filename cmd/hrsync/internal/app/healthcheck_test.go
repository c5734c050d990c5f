package app

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector/lms/sandbox"
)

func TestHealthCheck(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var notReady atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/readyz":
			if notReady.Load() {
				http.Error(w, "not ready: nats: RECONNECTING", http.StatusServiceUnavailable)
				return
			}
			_, _ = w.Write([]byte("ready\n"))
		case "/slow":
			time.Sleep(200 * time.Millisecond)
		case "/moved":
			http.Redirect(w, r, "/readyz", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)

	if err := HealthCheck(ctx, srv.URL+"/readyz", "", 0); err != nil {
		t.Errorf("ready: %v", err)
	}
	notReady.Store(true)
	if err := HealthCheck(ctx, srv.URL+"/readyz", "", 0); err == nil || !strings.Contains(err.Error(), "503 Service Unavailable: not ready: nats: RECONNECTING") {
		t.Errorf("not ready: %v; want the status and /readyz's reason", err)
	}
	if err := HealthCheck(ctx, srv.URL+"/slow", "", 50*time.Millisecond); err == nil || !strings.Contains(err.Error(), "deadline") {
		t.Errorf("slow: %v; want a timeout", err)
	}
	if err := HealthCheck(ctx, srv.URL+"/moved", "", 0); err == nil || !strings.Contains(err.Error(), "302") {
		t.Errorf("redirect: %v; want it refused, not followed", err)
	}
	for _, bad := range []string{"127.0.0.1:9090/readyz", "ftp://x/readyz", "http:///readyz"} {
		if err := HealthCheck(ctx, bad, "", 0); err == nil || !strings.Contains(err.Error(), "not an http:// or https:// URL") {
			t.Errorf("HealthCheck(%q) = %v", bad, err)
		}
	}
	// Nothing listening.
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	if err := HealthCheck(ctx, closed.URL+"/readyz", "", 0); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("closed port: %v", err)
	}

	// The sandbox LMS wants its token (docker-compose.yml's sandbox healthcheck).
	lms := httptest.NewServer(sandbox.New().Handler("sandbox-token"))
	t.Cleanup(lms.Close)
	spc := lms.URL + sandbox.BasePath + "/ServiceProviderConfig"
	if err := HealthCheck(ctx, spc, "sandbox-token", 0); err != nil {
		t.Errorf("sandbox with its token: %v", err)
	}
	if err := HealthCheck(ctx, spc, "", 0); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("sandbox without a token: %v", err)
	}
}
