package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/roster"
	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/store"
)

// TestCleanupCommand runs a dormant-account clean-up through the CLI against the
// sandbox over SCIM: report and hold, a refused run, a test batch, an account that
// logs in before the rest runs, and the rest.
func TestCleanupCommand(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	dbURL := "sqlite://" + filepath.Join(dir, "h.db")
	lms := startLMS(t, nil)
	var ids []string
	for i := range 12 {
		a, err := lms.sb.CreateAccount(ctx, connector.Account{ExternalID: fmt.Sprintf("import:%02d", i), UserName: fmt.Sprintf("imp%02d@old.example", i), Active: true})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.ID)
	}
	if err := lms.sb.RecordLogin(ids[11], time.Now()); err != nil {
		t.Fatal(err)
	}
	conn := []string{"--db", dbURL, "--lms-url", lms.url, "--lms-token", lms.token, "--log-level", "warn"}
	tomorrow := time.Now().UTC().AddDate(0, 0, 1).Format(time.DateOnly)
	report := filepath.Join(dir, "report")
	migrateDB(t, dbURL)

	if _, _, err := runCLI(t, nil, append([]string{"cleanup", "dormant"}, conn...)...); err == nil || !strings.Contains(err.Error(), "--no-login") {
		t.Fatalf("cleanup without an activity filter: %v", err)
	}
	out, stderr, err := runCLI(t, nil, append([]string{"cleanup", "dormant", "--no-login", "--created-before", tomorrow, "--out", report, "--lms-rate", "1000/h",
		"--by", "carl"}, conn...)...)
	if !needsPerson(err) {
		t.Fatalf("cleanup dormant: %v\n%s\n%s", err, out, stderr)
	}
	// Four eyes: who asked for the clean-up may not approve it, nor a sample.
	for _, args := range [][]string{{"--sample-batch", "3"}, nil} {
		args = append([]string{"holds", "approve", "1", "--db", dbURL, "--by", "Carl", "--reason", "mine"}, args...)
		if _, _, err := runCLI(t, nil, args...); !errors.Is(err, connector.ErrFourEyes) {
			t.Fatalf("%q by who asked for the clean-up: %v, want four eyes", args, err)
		}
	}
	for _, want := range []string{"scanned 12 LMS accounts; 11 dormant", "logged in", "held as hold 1", "at 1000 calls/hour that takes about"} {
		if !strings.Contains(out, want) {
			t.Errorf("cleanup output lacks %q:\n%s", want, out)
		}
	}
	csvBody, err := os.ReadFile(filepath.Join(report, "accounts.csv"))
	if err != nil || strings.Count(string(csvBody), "\n") != 12 || !strings.Contains(string(csvBody), "imp00@old.example") {
		t.Fatalf("accounts.csv (%v):\n%s", err, csvBody)
	}
	if _, err := os.Stat(filepath.Join(report, "report.json")); err != nil {
		t.Fatal(err)
	}
	if n := lms.sb.Count(); n != 12 {
		t.Fatalf("the report deleted accounts: %d left", n)
	}

	run := append([]string{"holds", "run"}, conn...)
	if _, _, err := runCLI(t, nil, append(run, "1")...); err == nil || !strings.Contains(err.Error(), "approve") {
		t.Fatalf("run before approval: %v", err)
	}
	if out, _, err = runCLI(t, nil, "holds", "approve", "1", "--db", dbURL, "--sample-batch", "3", "--by", "ana", "--reason", "test batch"); err != nil || !strings.Contains(out, "first 3 of 11") {
		t.Fatalf("approve a sample: %v\n%s", err, out)
	}
	// The test batch ran; the hold stays open for the decision on the rest: exit code 3.
	if out, stderr, err = runCLI(t, nil, append(run, "1")...); !needsPerson(err) || !strings.Contains(out, "3 done") || !strings.Contains(out, "test batch is done") {
		t.Fatalf("run the sample: %v\n%s\n%s", err, out, stderr)
	}
	if !strings.Contains(stderr, "accounts 3/3 (100%)") {
		t.Errorf("no progress on stderr:\n%s", stderr)
	}
	if n := lms.sb.Count(); n != 9 {
		t.Fatalf("after the sample %d accounts are left, want 9", n)
	}
	if err := lms.sb.RecordLogin(ids[5], time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, _, err = runCLI(t, nil, "holds", "approve", "1", "--db", dbURL, "--by", "ana", "--reason", "sample fine"); err != nil {
		t.Fatal(err)
	}
	if out, stderr, err = runCLI(t, nil, append(run, "1")...); err != nil || !strings.Contains(out, "all runs: 10 done, 1 skipped, 0 failed, 0 pending") {
		t.Fatalf("run the rest: %v\n%s\n%s", err, out, stderr)
	}
	if _, err := lms.sb.GetAccount(ctx, ids[5]); err != nil {
		t.Errorf("the account that logged in after the report was deleted: %v", err)
	}
	if n := lms.sb.Count(); n != 2 {
		t.Errorf("%d accounts left, want 2", n)
	}
	out, _, err = runCLI(t, nil, "holds", "show", "1", "--db", dbURL, "--format", "csv")
	if err != nil || !strings.Contains(out, "logged in at") || strings.Count(out, ",done,") != 10 {
		t.Fatalf("holds show --format csv: %v\n%s", err, out)
	}
	out, _, err = runCLI(t, nil, append([]string{"report", "dormant", "--out", filepath.Join(dir, "dormant")}, conn...)...)
	if err != nil || !strings.Contains(out, "scanned 2 LMS accounts; 0 dormant") {
		t.Fatalf("report dormant: %v\n%s", err, out)
	}
}

// TestFeedOffboard offboards a partner feed: its linked and in-scope accounts are
// anonymised (its retention keeps learning records), the HR feed's are untouched,
// the workers are erased from the store, and afterwards the feed is closed.
func TestFeedOffboard(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	dbURL := "sqlite://" + filepath.Join(dir, "h.db")
	cfg := filepath.Join(dir, "hrsync.yaml")
	if err := os.WriteFile(cfg, []byte(`feeds:
  - {name: hr, kind: hr, source: /feeds/hr}
  - {name: partner-acme, kind: partner, source: /feeds/partner-acme}
holds:
  approvals:
    offboard: 2
`), 0o600); err != nil {
		t.Fatal(err)
	}
	lms := startLMS(t, nil)
	db := openStore(t, dbURL)
	t0 := time.Now().Add(-24 * time.Hour).UTC().Truncate(time.Second)
	var facts []connector.Fact
	for _, w := range []connector.WorkerKey{{Feed: "partner-acme", WorkerID: "p1"}, {Feed: "partner-acme", WorkerID: "p2"}, {Feed: "hr", WorkerID: "e1"}} {
		facts = append(facts, connector.Fact{Feed: w.Feed, WorkerID: w.WorkerID, Source: "/feeds/" + w.Feed, ID: "h-" + w.WorkerID,
			Kind: connector.KindHired, Effective: t0, Time: t0,
			Profile: connector.Profile{Email: w.WorkerID + "@" + w.Feed + ".example", GivenName: "Given" + w.WorkerID, FamilyName: "Family"}})
	}
	if _, err := db.RecordFacts(ctx, facts); err != nil {
		t.Fatal(err)
	}
	feeds, err := connector.NewFeeds(connector.DefaultFeed("hr", connector.FeedHR), connector.DefaultFeed("partner-acme", connector.FeedPartner))
	if err != nil {
		t.Fatal(err)
	}
	conv, err := connector.NewConverger(connector.ConvergerConfig{Store: db, LMS: lms.sb, Feeds: feeds})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conv.Drain(ctx, 10); err != nil {
		t.Fatal(err)
	}
	stray, err := lms.sb.CreateAccount(ctx, connector.Account{ExternalID: "partner-acme:p9", UserName: "p9@partner-acme.example", Active: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := lms.sb.CompleteCourse(stray.ID, "safety", t0); err != nil {
		t.Fatal(err)
	}

	conn := []string{"--db", dbURL, "--config", cfg, "--lms-url", lms.url, "--lms-token", lms.token, "--log-level", "warn"}
	if _, _, err := runCLI(t, nil, append([]string{"feed", "offboard", "hr", "--by", "ana", "--reason", "x"}, conn...)...); err == nil || !strings.Contains(err.Error(), "HR feed") {
		t.Fatalf("offboarding the HR feed: %v", err)
	}
	out, stderr, err := runCLI(t, nil, append([]string{"feed", "offboard", "partner-acme", "--by", "ana", "--reason", "contract ended", "--out", filepath.Join(dir, "off")}, conn...)...)
	if !needsPerson(err) || !strings.Contains(out, "3 LMS accounts to anonymise") || !strings.Contains(out, "held as hold 1") {
		t.Fatalf("feed offboard: %v\n%s\n%s", err, out, stderr)
	}
	// Four eyes: who asked for the offboarding does not approve it.
	if _, _, err := runCLI(t, nil, "holds", "approve", "1", "--db", dbURL, "--by", "ana", "--reason", "contract ended 2026-11-30"); err == nil || !strings.Contains(err.Error(), "four eyes") {
		t.Fatalf("ana approving her own offboarding: %v, want refused (four eyes)", err)
	}
	// An offboarding needs two approvers (holds.approvals.offboard: 2).
	out, _, err = runCLI(t, nil, "holds", "approve", "1", "--db", dbURL, "--by", "bob", "--reason", "contract ended 2026-11-30")
	if err != nil || !strings.Contains(out, "approval 1 of 2") {
		t.Fatalf("bob's approval: %v\n%s", err, out)
	}
	if _, _, err := runCLI(t, nil, append(run0(conn), "1")...); err == nil {
		t.Fatal("ran on one approval of two")
	}
	out, _, err = runCLI(t, nil, "holds", "approve", "1", "--db", dbURL, "--by", "carol", "--reason", "legal agrees")
	if err != nil || !strings.Contains(out, "hold 1 approved by carol") {
		t.Fatalf("carol's approval: %v\n%s", err, out)
	}
	run := run0(conn)
	if _, _, err := runCLI(t, nil, append(run, "1")...); err == nil || !strings.Contains(err.Error(), erasureKeyEnv) {
		t.Fatalf("anonymising without the erasure key: %v", err)
	}
	out, stderr, err = runCLI(t, map[string]string{erasureKeyEnv: "k3y"}, append(run, "1")...)
	if err != nil || !strings.Contains(out, "3 done") || !strings.Contains(out, "feed partner-acme is closed") {
		t.Fatalf("holds run: %v\n%s\n%s", err, out, stderr)
	}

	for _, rec := range lms.sb.Snapshot() {
		a := rec.Account
		isPartner := strings.Contains(a.UserName, "partner-acme")
		switch {
		case a.ExternalID == "hr:e1":
			if !a.Active || a.UserName != "e1@hr.example" {
				t.Errorf("the HR account changed: %+v", a)
			}
		case isPartner || !strings.HasPrefix(a.UserName, "erased-") || a.Active:
			t.Errorf("partner account not anonymised: %+v", a)
		}
	}
	if tr, err := lms.sb.Training(stray.ID); err != nil || len(tr.Completions) != 1 {
		t.Errorf("the learning records were not kept: %+v, %v", tr, err)
	}
	res, err := db.FindResidue(ctx, []string{"p1@partner-acme.example", "p2@partner-acme.example", "p9@partner-acme.example", "Givenp1"})
	if err != nil || len(res) != 0 {
		t.Errorf("personal data left in the store: %v, %v", res, err)
	}

	// Closed: facts are refused, uploads too, and status says so.
	_, err = db.RecordFacts(ctx, []connector.Fact{{Feed: "partner-acme", WorkerID: "p3", Source: "/feeds/partner-acme", ID: "late",
		Kind: connector.KindHired, Effective: t0, Time: t0}})
	var closed *store.ClosedFeedError
	if !errors.As(err, &closed) || !connector.IsPermanent(err) {
		t.Errorf("a fact of the closed feed: %v", err)
	}
	rosterFile := filepath.Join(dir, "r.csv")
	if err := os.WriteFile(rosterFile, []byte("worker_id,email,given_name,family_name\np3,p3@x.example,P,Three\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCLI(t, nil, "roster", "upload", "--db", dbURL, "--config", cfg, "--feed", "partner-acme", "--mode", "snapshot", "--dry-run", rosterFile); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("roster upload to the closed feed: %v", err)
	}
	if out, _, err := runCLI(t, nil, "feed", "status", "--db", dbURL, "partner-acme"); err != nil || !strings.Contains(out, "closed") {
		t.Errorf("feed status: %v %s", err, out)
	}
	// The admin API refuses the feed's own token, and the admin token too.
	up := &roster.Uploader{Store: db, Feeds: feeds, Rosters: map[string]roster.Config{"partner-acme": {Mode: "snapshot", UploadTokenSHA256: sha("acme-token")}},
		Now: time.Now, Log: slog.New(slog.DiscardHandler), ThresholdsFunc: func(string) connector.Thresholds { return connector.DefaultThresholds() }}
	mux := http.NewServeMux()
	mux.Handle("POST /v1/feeds/{feed}/rosters", &roster.API{AdminToken: "root-token", Log: slog.New(slog.DiscardHandler), Uploader: up})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, tok := range []string{"acme-token", "root-token"} {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v1/feeds/partner-acme/rosters?dry_run=true",
			strings.NewReader("worker_id,email,given_name,family_name\np3,p3@x.example,P,Three\n"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "closed") {
			t.Errorf("upload with %s to the closed feed: %d %s", tok, resp.StatusCode, body)
		}
	}
}

// TestCleanupKilledAndResumed SIGKILLs "holds run" right after the LMS applied a
// bulk delete and before hrsync recorded it, twice, and resumes: every account is
// deleted exactly once, and the interrupted ones are counted done ("already gone").
func TestCleanupKilledAndResumed(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	dbURL := "sqlite://" + filepath.Join(dir, "h.db")
	var mu sync.Mutex
	writes, killAt := 0, 0
	var victim *daemon
	lms := startLMS(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet {
				next.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r) // the LMS applies the write
			mu.Lock()
			writes++
			d := victim
			if writes != killAt {
				d = nil
			}
			mu.Unlock()
			if d != nil {
				d.kill()
				d.waitExit(10 * time.Second)
				panic(http.ErrAbortHandler) // the answer never reaches hrsync
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
		})
	})
	const n = 30
	for i := range n {
		if _, err := lms.sb.CreateAccount(ctx, connector.Account{ExternalID: fmt.Sprintf("import:%02d", i), UserName: fmt.Sprintf("imp%02d@old.example", i), Active: true}); err != nil {
			t.Fatal(err)
		}
	}
	conn := []string{"--db", dbURL, "--lms-url", lms.url, "--lms-token", lms.token, "--log-level", "warn"}
	tomorrow := time.Now().UTC().AddDate(0, 0, 1).Format(time.DateOnly)
	migrateDB(t, dbURL)
	if out, stderr, err := runCLI(t, nil, append([]string{"cleanup", "dormant", "--no-login", "--created-before", tomorrow, "--out", filepath.Join(dir, "r")}, conn...)...); !needsPerson(err) {
		t.Fatalf("cleanup dormant: %v\n%s\n%s", err, out, stderr)
	}
	if _, _, err := runCLI(t, nil, "holds", "approve", "1", "--db", dbURL, "--by", "ana", "--reason", "ok"); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"hrsync", "holds", "run", "--batch", "4"}, conn...)
	args = append(args, "1")
	for round, at := range []int{2, 3} {
		d := func() *daemon {
			mu.Lock()
			defer mu.Unlock()
			writes, killAt = 0, at
			victim = startDaemon(t, fmt.Sprintf("run-%d", round), args)
			return victim
		}()
		if !d.waitExit(60 * time.Second) {
			t.Fatalf("round %d: holds run neither finished nor was killed", round)
		}
		if d.err == nil {
			t.Fatalf("round %d: holds run finished before the kill", round)
		}
		if d.logCount("hrsync:") > 0 {
			t.Fatalf("round %d: holds run failed rather than being killed:\n%s", round, tail(d.log, 20))
		}
		t.Logf("round %d: killed after %d LMS writes", round, at)
	}
	mu.Lock()
	killAt = 0
	mu.Unlock()
	out, stderr, err := runCLI(t, nil, append([]string{"holds", "run"}, append(conn, "1")...)...)
	if err != nil || !strings.Contains(out, fmt.Sprintf("all runs: %d done, 0 skipped, 0 failed, 0 pending", n)) {
		t.Fatalf("resumed run: %v\n%s\n%s", err, out, stderr)
	}
	if c := lms.sb.Count(); c != 0 {
		t.Errorf("%d accounts left", c)
	}
	deleted := map[string]int{}
	for _, op := range lms.sb.Ops() {
		if op.Kind == sandbox.OpDelete {
			deleted[op.AccountID]++
		}
	}
	for id, k := range deleted {
		if k != 1 {
			t.Errorf("account %s deleted %d times", id, k)
		}
	}
	if len(deleted) != n {
		t.Errorf("%d accounts deleted, want %d", len(deleted), n)
	}
	out, _, err = runCLI(t, nil, "holds", "show", "1", "--db", dbURL, "--format", "csv")
	if err != nil || strings.Count(out, "already gone") < 2*4 {
		t.Errorf("the interrupted batches are not counted as already gone (%v):\n%s", err, out)
	}
}

// TestFeedOffboardTwice: a second "feed offboard" of a feed whose offboarding is
// held returns the existing hold, tells the user its id, and exits 3 (the hold
// still awaits a person); it creates no second hold and writes no second report. The report directory names the
// hold (issue #10, defect 5). Not parallel: it runs in its own working directory,
// where the default report directories go.
func TestFeedOffboardTwice(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	ctx := t.Context()
	dbURL := "sqlite://" + filepath.Join(dir, "h.db")
	cfg := filepath.Join(dir, "hrsync.yaml")
	if err := os.WriteFile(cfg, []byte(`feeds:
  - {name: hr, kind: hr, source: /feeds/hr}
  - {name: partner-acme, kind: partner, source: /feeds/partner-acme}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	lms := startLMS(t, nil)
	db := openStore(t, dbURL)
	for _, id := range []string{"p1", "p2"} {
		if _, err := lms.sb.CreateAccount(ctx, connector.Account{ExternalID: "partner-acme:" + id, UserName: id + "@partner-acme.example", Active: true}); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"feed", "offboard", "partner-acme", "--by", "ana", "--reason", "contract ended",
		"--db", dbURL, "--config", cfg, "--lms-url", lms.url, "--lms-token", lms.token, "--log-level", "warn"}
	out, stderr, err := runCLI(t, nil, args...)
	if !needsPerson(err) || !strings.Contains(out, "held as hold 1") {
		t.Fatalf("first offboard: %v\n%s\n%s", err, out, stderr)
	}
	reports, _ := filepath.Glob("offboard-*")
	if len(reports) != 1 || !strings.Contains(reports[0], "hold1") {
		t.Fatalf("report directories after the first offboard = %v, want one that names hold 1", reports)
	}
	out, stderr, err = runCLI(t, nil, args...)
	if !needsPerson(err) || !strings.Contains(err.Error(), "hold 1") {
		t.Fatalf("second offboard: %v, want exit 3 naming the existing hold\n%s\n%s", err, out, stderr)
	}
	if !strings.Contains(out, "already") || !strings.Contains(out, "hold 1") || strings.Contains(out, "held as hold") {
		t.Fatalf("second offboard does not name the existing hold 1:\n%s", out)
	}
	holds, err := db.ListHolds(ctx, store.HoldFilter{Feed: "partner-acme"})
	if err != nil || len(holds) != 1 {
		t.Fatalf("holds of the feed after two offboards = %+v, %v; want one", holds, err)
	}
	if again, _ := filepath.Glob("offboard-*"); len(again) != 1 {
		t.Fatalf("report directories after the second offboard = %v, want the first only", again)
	}
}

// run0 is "holds run" with conn, ready for the hold id.
func run0(conn []string) []string { return append([]string{"holds", "run"}, conn...) }
