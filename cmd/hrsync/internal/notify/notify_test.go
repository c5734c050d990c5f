package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
)

// fakeSource is the store as the notifier sees it.
type fakeSource struct {
	mu    sync.Mutex
	holds []connector.Hold
	dead  []connector.DeadLetter
}

func (f *fakeSource) ListHolds(context.Context, store.HoldFilter) ([]connector.Hold, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]connector.Hold(nil), f.holds...), nil
}

func (f *fakeSource) ListDeadLetters(context.Context, store.DeadLetterFilter) ([]connector.DeadLetter, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]connector.DeadLetter(nil), f.dead...), nil
}

// receiver is a webhook endpoint that fails its first request of each kind
// with 503, so that every delivery is retried once, and keeps what it got.
type receiver struct {
	mu     sync.Mutex
	failed map[string]bool
	got    []map[string]any
	sigs   []string
	got2   chan struct{}
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if !rc.failed[string(body)] {
		rc.failed[string(body)] = true
		http.Error(w, "try later", http.StatusServiceUnavailable)
		return
	}
	var m map[string]any
	_ = json.Unmarshal(body, &m)
	rc.got = append(rc.got, m)
	rc.sigs = append(rc.sigs, r.Header.Get("X-Hrsync-Signature")+" "+string(body))
	rc.got2 <- struct{}{}
}

// A receiver gets the hold, quarantine, recovery, dead-letter burst and drift
// notifications, each after one failed try, signed; a Slack hook gets text.
func TestWebhooks(t *testing.T) {
	t.Parallel()
	jsonRx := &receiver{failed: map[string]bool{}, got2: make(chan struct{}, 16)}
	slackRx := &receiver{failed: map[string]bool{}, got2: make(chan struct{}, 16)}
	js, sl := httptest.NewServer(jsonRx), httptest.NewServer(slackRx)
	t.Cleanup(js.Close)
	t.Cleanup(sl.Close)
	env := map[string]string{"SLACK_URL": sl.URL, "HOOK_KEY": "k3y"}
	cfg := Config{DeadLetterBurst: 2, DriftThreshold: 1, ConsoleURL: "https://console.example",
		Webhooks: []WebhookConfig{{Name: "ops", URL: js.URL, SecretEnv: "HOOK_KEY"},
			{Name: "slack", URLEnv: "SLACK_URL", Format: "slack", Events: []string{HoldOpened}}}}
	if err := cfg.Check(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	src := &fakeSource{holds: []connector.Hold{{ID: 1, Feed: "hr", Status: connector.HoldOpen}}}
	var lmsMu sync.Mutex
	lms := LMSStatus{}
	n := New(cfg, Options{Source: src, Getenv: func(k string) string { return env[k] }, Backoff: time.Millisecond,
		Log: slog.New(slog.NewTextHandler(t.Output(), nil)),
		LMS: func() LMSStatus { lmsMu.Lock(); defer lmsMu.Unlock(); return lms }})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	stop := n.start(ctx)
	n.Check(ctx) // what is there at start is known

	src.mu.Lock()
	src.holds = append(src.holds, connector.Hold{ID: 2, Feed: "partner-acme", Kind: connector.HoldUpload, Status: connector.HoldOpen,
		Reason: "9 removals of 10", Counts: connector.HoldCounts{Removals: 9, Active: 10}})
	src.dead = []connector.DeadLetter{{ID: 1, Feed: "hr", Reason: "data.worker_id: required"}, {ID: 2, Feed: "hr", Reason: "x"}}
	src.mu.Unlock()
	lmsMu.Lock()
	lms = LMSStatus{Quarantined: true, Reason: "9 of 10 calls failed"}
	lmsMu.Unlock()
	n.Check(ctx)
	lmsMu.Lock()
	lms = LMSStatus{}
	lmsMu.Unlock()
	n.Check(ctx)
	n.Reconciled(connector.ReconcileSummary{Counts: map[connector.DriftClass]int{connector.ClassInSync: 50, connector.ClassProfileDrift: 2}}, nil)
	n.Reconciled(connector.ReconcileSummary{Counts: map[connector.DriftClass]int{connector.ClassInSync: 50, connector.ClassOrphan: 1}}, nil) // at the threshold: quiet
	n.Check(ctx)                                                                                                                             // nothing new: nothing sent

	for range 5 {
		select {
		case <-jsonRx.got2:
		case <-ctx.Done():
			t.Fatalf("the JSON receiver got %d notifications: %v", len(jsonRx.got), jsonRx.got)
		}
	}
	select {
	case <-slackRx.got2:
	case <-ctx.Done():
		t.Fatal("the Slack receiver got nothing")
	}
	stop()
	var events []string
	for _, m := range jsonRx.got {
		events = append(events, m["event"].(string))
	}
	slices.Sort(events)
	if want := []string{"dead_letter_burst", "drift", "hold_opened", "lms_quarantined", "lms_recovered"}; !slices.Equal(events, want) {
		t.Fatalf("events %v, want %v", events, want)
	}
	if len(jsonRx.got) != 5 {
		t.Fatalf("the JSON receiver got %d notifications, want 5: %v", len(jsonRx.got), jsonRx.got)
	}
	for _, m := range jsonRx.got {
		if m["event"] == HoldOpened && (m["hold_id"] != float64(2) || m["link"] != "https://console.example/holds/2") {
			t.Errorf("hold notification %v", m)
		}
	}
	for _, sb := range jsonRx.sigs {
		sig, body, _ := strings.Cut(sb, " ")
		mac := hmac.New(sha256.New, []byte("k3y"))
		mac.Write([]byte(body))
		if sig != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
			t.Errorf("signature %q does not sign %s", sig, body)
		}
		if strings.Contains(body, "k3y") || strings.Contains(body, sl.URL) {
			t.Errorf("a secret in the payload: %s", body)
		}
	}
	if len(slackRx.got) != 1 || !strings.Contains(slackRx.got[0]["text"].(string), "Hold 2 of feed partner-acme") {
		t.Fatalf("the Slack receiver got %v", slackRx.got)
	}
}

// A 4xx other than 429 is not retried; a webhook that keeps failing is given
// up after its attempts.
func TestWebhookGivesUp(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	calls := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls[r.URL.Path]++
		mu.Unlock()
		if r.URL.Path == "/bad" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusBadGateway)
	}))
	t.Cleanup(srv.Close)
	cfg := Config{Webhooks: []WebhookConfig{{Name: "bad", URL: srv.URL + "/bad"}, {Name: "down", URL: srv.URL + "/down"}}}
	n := New(cfg, Options{Source: &fakeSource{}, Backoff: time.Millisecond, Attempts: 3})
	stop := n.start(t.Context())
	n.Send(Event{Event: Drift, Text: "x"})
	stop() // waits for the queue, retries included
	if calls["/bad"] != 1 || calls["/down"] != 3 {
		t.Fatalf("calls %v: want 1 to /bad (not retried) and 3 to /down", calls)
	}
}
