package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
	"github.com/hrsync/hrsync/store/pgtest"
)

func sha(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

// rosterCSV is a roster of n people of partner-acme, w-1 to w-n.
func rosterCSV(n int) string {
	var b strings.Builder
	b.WriteString("worker_id,email,given_name,family_name\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "w-%d,p%d@acme.example,P%d,Acme\n", i, i, i)
	}
	return b.String()
}

// TestRosterUploadOverHTTP runs the daemon with two partner feeds and uploads
// rosters through the admin API: a snapshot creates the accounts, the same file
// again changes nothing, a truncated file is held whole, and a partner's token
// reaches no other feed.
func TestRosterUploadOverHTTP(t *testing.T) {
	t.Parallel()
	natsURL, dbURL, lms := startNATS(t), pgtest.URL(t), startLMS(t, nil)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "hrsync.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`feeds:
  - name: hr
  - name: partner-acme
    kind: partner
    roster:
      mode: snapshot
      upload_token_sha256: %s
  - name: partner-globex
    kind: partner
    roster:
      upload_token_sha256: %s
`, sha("acme-token"), sha("globex-token"))), 0o600); err != nil {
		t.Fatal(err)
	}
	admin := freeLoopbackAddr(t)

	logs := runTestDaemon(t, "--config", cfg, "--lms-url", lms.url, "--lms-token", lms.token,
		"--nats-url", natsURL, "--db", dbURL, "--admin-addr", admin, "--admin-token", "root-token", "--poll-interval", "50ms")
	post := func(feed, token, query, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+admin+"/v1/feeds/"+feed+"/rosters"+query, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		req.Header.Set("Content-Type", "text/csv")
		var resp *http.Response
		waitFor(t, 10*time.Second, "the admin port", func() (bool, string) {
			var err error
			resp, err = http.DefaultClient.Do(req)
			if err != nil {
				req.Body = io.NopCloser(strings.NewReader(body))
				return false, err.Error()
			}
			return true, ""
		})
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	accounts := func(active bool) int {
		n := 0
		for _, r := range lms.sb.Snapshot() {
			if strings.HasPrefix(r.Account.ExternalID, "partner-acme:") && r.Account.Active == active {
				n++
			}
		}
		return n
	}

	// Who may upload where.
	if code, _ := post("partner-acme", "", "", rosterCSV(20)); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d, want 401", code)
	}
	if code, _ := post("partner-acme", "guess", "", rosterCSV(20)); code != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d, want 401", code)
	}
	if code, _ := post("partner-acme", "globex-token", "", rosterCSV(20)); code != http.StatusForbidden {
		t.Fatalf("globex's token on acme's feed: %d, want 403", code)
	}
	if code, _ := post("hr", "acme-token", "", rosterCSV(20)); code != http.StatusForbidden {
		t.Fatalf("a partner's token on the HR feed: %d, want 403", code)
	}

	// A dry run changes nothing; a bad file names its line.
	if code, out := post("partner-acme", "acme-token", "?dry_run=true", rosterCSV(20)); code != http.StatusOK || len(out["events"].([]any)) != 20 {
		t.Fatalf("dry run: %d %v", code, out)
	}
	if code, out := post("partner-acme", "acme-token", "", "worker_id,email\nw-1,bob@\n"); code != http.StatusUnprocessableEntity ||
		!strings.Contains(fmt.Sprint(out["error"]), "line 2") {
		t.Fatalf("bad email: %d %v", code, out)
	}

	// The snapshot creates everyone.
	if code, out := post("partner-acme", "acme-token", "", rosterCSV(20)); code != http.StatusOK {
		t.Fatalf("upload: %d %v", code, out)
	}
	waitFor(t, 30*time.Second, "20 partner accounts", func() (bool, string) { return accounts(true) == 20, fmt.Sprint(accounts(true)) })

	// The same file again changes nothing.
	code, out := post("partner-acme", "root-token", "", rosterCSV(20))
	if code != http.StatusOK || out["result"].(map[string]any)["outcome"] != "unchanged" {
		t.Fatalf("re-upload: %d %v", code, out)
	}

	// A truncated file (2 of 20 people) is held whole: nobody is deactivated.
	code, out = post("partner-acme", "acme-token", "", rosterCSV(2))
	res, _ := out["result"].(map[string]any)
	if code != http.StatusAccepted || res["outcome"] != "held" || res["hold_id"] == nil {
		t.Fatalf("truncated upload: %d %v, want 202 held", code, out)
	}
	if n := accounts(false); n != 0 {
		t.Fatalf("the truncated roster deactivated %d people", n)
	}

	db := openStore(t, dbURL)
	ups, err := db.ListUploads(t.Context(), store.UploadFilter{Feed: "partner-acme"})
	if err != nil {
		t.Fatal(err)
	}
	var outcomes []string
	for _, u := range ups {
		outcomes = append(outcomes, u.Outcome+" by "+u.By)
		if u.SHA256 == "" && u.Outcome != "rejected" {
			t.Errorf("upload %d has no file hash", u.ID)
		}
	}
	if got := strings.Join(outcomes, "; "); got != "held by feed:partner-acme; unchanged by admin; published by feed:partner-acme; rejected by feed:partner-acme" {
		t.Fatalf("uploads = %s", got)
	}
	holds, err := db.ListHolds(t.Context(), store.HoldFilter{Feed: "partner-acme"})
	if err != nil || len(holds) != 1 || holds[0].Kind != connector.HoldUpload || holds[0].Counts.Removals != 18 {
		t.Fatalf("holds = %+v, %v; want one upload hold of 18 removals", holds, err)
	}
	// A person checks the hold and approves it: the upload is published and the
	// 18 missing people are deactivated through the converger.
	var out2, errOut bytes.Buffer
	if err := run(t.Context(), []string{"hrsync", "holds", "approve", "--db", dbURL, "--nats-url", natsURL, "--by", "alice",
		"--reason", "acme confirmed the 18 leavers", fmt.Sprint(holds[0].ID)}, func(string) string { return "" }, &out2, &errOut); err != nil {
		t.Fatalf("holds approve: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out2.String(), "events are published") {
		t.Fatalf("holds approve said: %s", out2.String())
	}
	waitFor(t, 30*time.Second, "18 deactivated partner accounts", func() (bool, string) {
		return accounts(false) == 18 && accounts(true) == 2, fmt.Sprintf("%d inactive, %d active", accounts(false), accounts(true))
	})

	// The audit trail shows each deactivation with its facts, its plan and the approval.
	var auditOut bytes.Buffer
	if err := run(t.Context(), []string{"hrsync", "audit", "--db", dbURL, "--worker", "partner-acme:w-7", "--format", "csv"},
		func(string) string { return "" }, &auditOut, &errOut); err != nil {
		t.Fatalf("audit: %v", err)
	}
	csvText := auditOut.String()
	if !strings.Contains(csvText, ",deactivate,ok,approved in hold") || !strings.Contains(csvText, "deactivate u-") || !strings.Contains(csvText, "/feeds/partner-acme#roster-") {
		t.Fatalf("audit of w-7:\n%s", csvText)
	}

	if strings.Contains(logs.String(), "acme-token") || strings.Contains(logs.String(), "p1@acme.example") {
		t.Fatal("a token or personal data reached the log")
	}
}

// TestRosterUploadCLI: the CLI validates, dry-runs and publishes like the API.
func TestRosterUploadCLI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := "sqlite://" + filepath.Join(dir, "h.db")
	cfg := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(cfg, []byte("feeds:\n  - name: partner-acme\n    kind: partner\n    roster:\n      mode: delta\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "r.csv")
	if err := os.WriteFile(file, []byte("worker_id;email;action\nw-1;a@acme.example;add\nw-2;b@acme.example;remove\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	migrateDB(t, db)
	var out, errOut bytes.Buffer
	err := run(t.Context(), []string{"hrsync", "roster", "upload", "--db", db, "--config", cfg, "--feed", "partner-acme", "--dry-run", file},
		func(string) string { return "" }, &out, &errOut)
	if err != nil || !strings.Contains(out.String(), "dry run: nothing was sent") || !strings.Contains(out.String(), "hired") {
		t.Fatalf("dry run: %v\n%s\n%s", err, out.String(), errOut.String())
	}
	out.Reset()
	err = run(t.Context(), []string{"hrsync", "roster", "upload", "--db", db, "--config", cfg, "--feed", "partner-globex", "--dry-run", file},
		func(string) string { return "" }, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "partner-globex") {
		t.Fatalf("undeclared feed: %v", err)
	}
}

// TestExampleConfigAndSampleRoster: the shipped example configuration loads, and
// its partner-acme mapping reads the shipped sample roster.
func TestExampleConfigAndSampleRoster(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := "sqlite://" + filepath.Join(dir, "h.db")
	migrateDB(t, db)
	out, stderr, err := runCLI(t, nil, "roster", "upload", "--db", db, "--config", "../../deploy/hrsync.example.yaml",
		"--feed", "partner-acme", "--dry-run", "../../testdata/rosters/partner-acme-snapshot.csv")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if !strings.Contains(out, "30 rows") || !strings.Contains(out, "30 hires") {
		t.Fatalf("dry run of the sample:\n%s", out)
	}
}
