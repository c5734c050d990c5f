package main

// The webhooks of a real hrsync run, end to end: the LMS guard's quarantine and
// recovery reach a receiver (docs/console.md, Webhooks).

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/notify"
	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/faulty"
	"github.com/hrsync/hrsync/events"
	"github.com/hrsync/hrsync/store/pgtest"
)

// webhook is one notification a receiver got.
type webhook struct {
	at   time.Time // when it came
	body []byte
	sig  string // X-Hrsync-Signature
	ev   notify.Event
}

// webhookReceiver is an HTTP server that keeps every notification posted to it.
type webhookReceiver struct {
	url string
	mu  sync.Mutex
	got []webhook
}

func startWebhookReceiver(t *testing.T) *webhookReceiver {
	t.Helper()
	rx := &webhookReceiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h := webhook{at: time.Now(), body: body, sig: r.Header.Get("X-Hrsync-Signature")}
		if err := json.Unmarshal(body, &h.ev); err != nil {
			t.Errorf("webhook: a body that is not an event: %v: %q", err, body)
		}
		rx.mu.Lock()
		rx.got = append(rx.got, h)
		rx.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	rx.url = srv.URL
	return rx
}

// all returns what came so far, in order.
func (rx *webhookReceiver) all() []webhook {
	rx.mu.Lock()
	defer rx.mu.Unlock()
	return append([]webhook(nil), rx.got...)
}

// of returns what came of event.
func (rx *webhookReceiver) of(event string) []webhook {
	var out []webhook
	for _, h := range rx.all() {
		if h.ev.Event == event {
			out = append(out, h)
		}
	}
	return out
}

// names lists the events that came, for failure messages.
func (rx *webhookReceiver) names() string {
	var s []string
	for _, h := range rx.all() {
		s = append(s, h.ev.Event)
	}
	return "[" + strings.Join(s, " ") + "]"
}

// TestQuarantineWebhooks runs a real hrsync run (in-process NATS, PostgreSQL,
// the sandbox LMS over SCIM behind a fault injector) with a signed JSON webhook.
// The LMS goes down (every request answered 503) while hires come in: the
// converger's calls fail until the guard quarantines the LMS, and the webhook
// hears lms_quarantined with the guard's reason. The LMS comes back: the guard's
// probe succeeds, the webhook hears lms_recovered, and every hire is applied in
// the end. No payload carries the LMS token, the signing key, or a worker's name
// or email, and each is signed with the key.
//
// The configuration sets the quarantine's first probe after 1s
// (lms.quarantine.probe_interval; default 30s), so the recovery is seen in
// seconds.
func TestQuarantineWebhooks(t *testing.T) {
	t.Parallel()
	natsURL, dbURL := startNATS(t), pgtest.URL(t)
	var inj *faulty.Injector
	lms := startLMS(t, func(h http.Handler) http.Handler {
		var err error
		if inj, err = faulty.New(h, faulty.Config{}); err != nil {
			t.Fatal(err)
		}
		return inj
	})
	rx := startWebhookReceiver(t)
	const signingKey = "whsec-e2e-7c1f0a9d3b"
	cfg := filepath.Join(t.TempDir(), "hrsync.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `safeguard: {settle: 0s}
lms:
  quarantine: {probe_interval: 1s, max_probe_interval: 2s}
notify:
  every: 100ms
  webhooks:
    - {name: ops, url: %q, secret_env: HOOK_KEY}
`, rx.url), 0o600); err != nil {
		t.Fatal(err)
	}
	runTestDaemonEnv(t, map[string]string{"LMS_TOKEN": lms.token, "HOOK_KEY": signingKey},
		"--config", cfg, "--lms-url", lms.url, "--nats-url", natsURL, "--db", dbURL, "--admin-addr", "",
		"--poll-interval", "100ms")

	js := connectJS(t, natsURL)
	type person struct{ id, email, given, family string }
	var people []person
	hire := func(i int) {
		t.Helper()
		p := person{id: fmt.Sprintf("q-%02d", i), email: fmt.Sprintf("quinn.ortega.%02d@corp.example", i), given: "Quinn", family: fmt.Sprintf("Ortega%02d", i)}
		people = append(people, p)
		e := events.Event{Feed: "hr", Kind: connector.KindHired, ID: "qhook-" + p.id, Source: "/feeds/hr", Time: hireTime,
			Data: events.Data{WorkerID: p.id, Email: p.email, GivenName: p.given, FamilyName: p.family, Effective: "2025-01-06"}}
		if _, err := events.Publish(t.Context(), js, e, events.Binary); err != nil {
			t.Fatal(err)
		}
	}
	active := func() int {
		n := 0
		for _, r := range lms.sb.Snapshot() {
			if r.Account.Active && strings.HasPrefix(r.Account.ExternalID, "hr:q-") {
				n++
			}
		}
		return n
	}

	// The daemon converges while the LMS answers.
	hire(0)
	waitFor(t, 30*time.Second, "the first hire's account", func() (bool, string) {
		return active() == 1, fmt.Sprintf("%d active accounts; webhooks %s", active(), rx.names())
	})

	// The LMS goes down while hires come in: the converger's calls fail until
	// the guard quarantines the LMS.
	downAt := time.Now()
	inj.SetOutage(http.StatusServiceUnavailable)
	for i := 1; i <= 6; i++ {
		hire(i)
	}
	waitFor(t, 60*time.Second, "lms_quarantined at the webhook", func() (bool, string) {
		return len(rx.of(notify.LMSQuarantined)) > 0, fmt.Sprintf("webhooks %s; LMS requests answered 503: %d", rx.names(), inj.Counts().Outage)
	})
	q := rx.of(notify.LMSQuarantined)[0]
	if !q.at.After(downAt) {
		t.Fatalf("lms_quarantined came at %v, before the LMS went down at %v", q.at, downAt)
	}
	if inj.Counts().Outage == 0 {
		t.Fatal("lms_quarantined, but no request reached the LMS while it was down")
	}
	// The reason is the guard's: which rule tripped, and the last failure by
	// its kind and status.
	if !strings.Contains(q.ev.Reason, "failed") || !strings.Contains(q.ev.Reason, "last: unavailable (HTTP 503)") {
		t.Errorf("lms_quarantined reason %q, want the guard's (a rule that tripped; last: unavailable (HTTP 503))", q.ev.Reason)
	}
	if len(rx.of(notify.LMSRecovered)) > 0 {
		t.Fatalf("lms_recovered while the LMS is still down: webhooks %s", rx.names())
	}
	if n := active(); n != 1 {
		t.Fatalf("%d active accounts while the LMS was down, want the first hire's alone", n)
	}

	// The LMS comes back: the guard's probe succeeds (within its 1-2s interval),
	// the webhook hears lms_recovered, and every hire is applied.
	upAt := time.Now()
	inj.SetOutage(0)
	waitFor(t, 90*time.Second, "lms_recovered at the webhook", func() (bool, string) {
		return len(rx.of(notify.LMSRecovered)) > 0, fmt.Sprintf("webhooks %s", rx.names())
	})
	r := rx.of(notify.LMSRecovered)[0]
	if !r.at.After(upAt) {
		t.Fatalf("lms_recovered came at %v, before the LMS came back at %v", r.at, upAt)
	}
	t.Logf("lms_quarantined %v after the LMS went down (%s); lms_recovered %v after it came back",
		q.at.Sub(downAt).Round(time.Millisecond), q.ev.Reason, r.at.Sub(upAt).Round(time.Millisecond))
	waitFor(t, 60*time.Second, "every hire applied", func() (bool, string) {
		ok, why := consumerDrained(t.Context(), js)
		return ok && active() == len(people), fmt.Sprintf("%d of %d accounts active; %s", active(), len(people), why)
	})
	for _, p := range people {
		found := false
		for _, r := range lms.sb.Snapshot() {
			if r.Account.ExternalID == "hr:"+p.id {
				found = true
				if !r.Account.Active || r.Account.Profile.Email != p.email {
					t.Errorf("%s: account %+v, want active with %s", p.id, r.Account, p.email)
				}
			}
		}
		if !found {
			t.Errorf("%s: no account in the LMS", p.id)
		}
	}

	// One quarantine, one recovery, in that order; every payload signed with the
	// key and free of secrets and personal data.
	if nq, nr := len(rx.of(notify.LMSQuarantined)), len(rx.of(notify.LMSRecovered)); nq != 1 || nr != 1 {
		t.Errorf("webhooks %s: %d lms_quarantined and %d lms_recovered, want one each", rx.names(), nq, nr)
	}
	secrets := [][2]string{{"the LMS token", lms.token}, {"the signing key", signingKey}}
	for _, p := range people {
		secrets = append(secrets, [2]string{"an email", p.email}, [2]string{"a family name", p.family})
	}
	for _, h := range rx.all() {
		for _, s := range secrets {
			if strings.Contains(string(h.body), s[1]) {
				t.Errorf("%s webhook carries %s (%s): %s", h.ev.Event, s[0], s[1], h.body)
			}
		}
		mac := hmac.New(sha256.New, []byte(signingKey))
		mac.Write(h.body)
		if want := "sha256=" + hex.EncodeToString(mac.Sum(nil)); !hmac.Equal([]byte(h.sig), []byte(want)) {
			t.Errorf("%s webhook signed %q, want %q", h.ev.Event, h.sig, want)
		}
	}
}
