package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hrsync/hrsync/store/pgtest"
)

// TestEventsOverHTTPDoor: "hrsync run" serves POST /v1/events on its admin
// port (docs/http-door.md): a partner's token publishes its own hire, which
// reaches the LMS; another partner's token is refused for it.
func TestEventsOverHTTPDoor(t *testing.T) {
	t.Parallel()
	natsURL, dbURL, lms := startNATS(t), pgtest.URL(t), startLMS(t, nil)
	cfg := filepath.Join(t.TempDir(), "hrsync.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`feeds:
  - name: hr
  - name: partner-acme
    kind: partner
    roster:
      upload_token_sha256: %s
  - name: partner-globex
    kind: partner
    roster:
      upload_token_sha256: %s
`, sha("acme-token"), sha("globex-token"))), 0o600); err != nil {
		t.Fatal(err)
	}
	admin := freeLoopbackAddr(t)
	runTestDaemon(t, "--config", cfg, "--lms-url", lms.url, "--lms-token", lms.token,
		"--nats-url", natsURL, "--db", dbURL, "--admin-addr", admin, "--poll-interval", "50ms")
	event := `{"specversion":"1.0","type":"hrsync.worker.hired.v1","source":"/feeds/partner-acme","id":"acme-1",
		"subject":"p-1","time":"2026-11-29T10:00:00Z","datacontenttype":"application/json",
		"data":{"worker_id":"p-1","email":"pat.lee@acme.example","effective":"2026-01-01"}}`
	post := func(token string) (int, string) {
		t.Helper()
		var code int
		var body string
		waitFor(t, 10*time.Second, "the admin port", func() (bool, string) {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+admin+"/v1/events", strings.NewReader(event))
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", "application/cloudevents+json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return false, err.Error()
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			code, body = resp.StatusCode, string(b)
			return true, ""
		})
		return code, body
	}
	if code, body := post("globex-token"); code != http.StatusForbidden || !strings.Contains(body, "the token of feed partner-globex may publish only feed partner-globex's events") {
		t.Fatalf("globex's token, acme's event: %d %s", code, body)
	}
	if code, body := post("acme-token"); code != http.StatusAccepted || !strings.Contains(body, `"stream":"HRSYNC_partner-acme"`) {
		t.Fatalf("acme's token, acme's event: %d %s", code, body)
	}
	waitFor(t, 15*time.Second, "the partner's account in the LMS", func() (bool, string) {
		for _, r := range lms.sb.Snapshot() {
			if r.Account.ExternalID == "partner-acme:p-1" && r.Account.Active {
				return true, ""
			}
		}
		return false, "no active account partner-acme:p-1"
	})
}
