package lmshttp

import (
	"net/http"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
)

func TestKindOf(t *testing.T) {
	for status, want := range map[int]connector.ErrorKind{
		400: connector.KindInvalid, 401: connector.KindAuth, 403: connector.KindAuth, 404: connector.KindNotFound,
		409: connector.KindConflict, 412: connector.KindPrecondition, 429: connector.KindRateLimited,
		408: connector.KindUnavailable, 500: connector.KindUnavailable, 503: connector.KindUnavailable,
		422: connector.KindInvalid, 302: connector.KindUnavailable,
	} {
		if got := KindOf(status); got != want {
			t.Errorf("KindOf(%d) = %v, want %v", status, got, want)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"": 0, " 7 ": 7 * time.Second, "0": 0, "-3": 0, "soon": 0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Minute).Format(http.TimeFormat):     0,
	} {
		if got := RetryAfter(v, now); got != want {
			t.Errorf("RetryAfter(%q) = %v, want %v", v, got, want)
		}
	}
	if got := RetryAfter("99999999999999999", now); got <= 0 {
		t.Errorf("RetryAfter of a huge delay = %v, want a large positive one", got)
	}
}

func TestTruncate(t *testing.T) {
	if got := Truncate("short", 10); got != "short" {
		t.Errorf("Truncate kept %q", got)
	}
	if got := Truncate("grüße", 3); got != "gr…" {
		t.Errorf("Truncate(grüße, 3) = %q, want a cut before the split rune", got)
	}
}
