package main

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
)

func TestHoldsCLI(t *testing.T) {
	t.Parallel()
	dbURL := "sqlite://" + filepath.Join(t.TempDir(), "hrsync.db")
	db, err := store.Open(t.Context(), dbURL, nil, store.Migrate(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	// Names a spreadsheet would run as formulas.
	hostile := []string{"=HYPERLINK(\"http://evil\")", "+1+1", "-2", "@SUM(A1)", "\tTab", "\rCR", "Ann Lee"}
	var ws []connector.HeldWorker
	for i, name := range hostile {
		ws = append(ws, connector.HeldWorker{Worker: connector.WorkerKey{WorkerID: string(rune('a' + i))}, Name: name,
			Email: "=x@example.com", AccountID: "acct", Action: connector.ActionDeactivate, Version: 3})
	}
	live, err := db.CreateHold(t.Context(), connector.Hold{Feed: "hr", Kind: connector.HoldLive, Reason: "feed hr: 7 removals of 10", Counts: connector.HoldCounts{Active: 10}, Workers: ws})
	if err != nil {
		t.Fatal(err)
	}
	upload, err := db.CreateHold(t.Context(), connector.Hold{Feed: "partner-acme", Kind: connector.HoldUpload, Reason: "roster removes 4995 of 5000",
		Workers: []connector.HeldWorker{{Worker: connector.WorkerKey{WorkerID: "p1"}}}})
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"DATABASE_URL": dbURL}
	id := func(n int64) string { return string(rune('0' + n)) }

	// Open holds await a person: exit code 3.
	out, _, err := runCLI(t, env, "holds", "list")
	if !needsPerson(err) || !strings.Contains(out, "feed hr: 7 removals of 10") || !strings.Contains(out, "roster removes 4995") || strings.Count(out, "open") != 2 {
		t.Fatalf("holds list: %v\n%s", err, out)
	}
	out, _, err = runCLI(t, env, "holds", "show", id(live), "--sample", "2")
	if !needsPerson(err) || !strings.Contains(out, "7 (7 deactivations, 0 deletions) of 10 active accounts") || !strings.Contains(out, "2 of 7 affected people") {
		t.Fatalf("holds show: %v\n%s", err, out)
	}

	t.Run("CSVEscaped", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "hold.csv")
		if _, stderr, err := runCLI(t, env, "holds", "show", id(live), "--format", "csv", "--out", path); !needsPerson(err) || !strings.Contains(stderr, "wrote 7 affected people") {
			t.Fatalf("holds show --format csv --out: %v %s", err, stderr)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		rows, err := csv.NewReader(f).ReadAll()
		if err != nil || len(rows) != 8 || strings.Join(rows[0], ",") != strings.Join(holdCSVHeader, ",") {
			t.Fatalf("CSV: %v %q", err, rows)
		}
		names := map[string]bool{}
		for _, r := range rows[1:] {
			names[r[3]] = true
			if r[4] != "'=x@example.com" {
				t.Errorf("email cell %q not escaped", r[4])
			}
		}
		for _, want := range []string{"'=HYPERLINK(\"http://evil\")", "'+1+1", "'-2", "'@SUM(A1)", "'\tTab", "'\rCR", "Ann Lee"} {
			if !names[want] {
				t.Errorf("CSV lacks the escaped name %q; names %v", want, names)
			}
		}
	})

	t.Run("DecisionsRequireWhoAndWhy", func(t *testing.T) {
		for _, args := range [][]string{
			{"holds", "approve", id(live)},
			{"holds", "approve", "--by", "alice", id(live)},
			{"holds", "reject", "--reason", "why", id(live)},
			{"holds", "approve", "--by", "alice", "--reason", "ok"},
			{"holds", "approve", "--by", "alice", "--reason", "ok", "x"},
			{"holds", "list", "--status", "pending"},
			{"holds", "frobnicate"},
		} {
			if _, _, err := runCLI(t, env, args...); err == nil {
				t.Errorf("%q succeeded, want an error", args)
			}
		}
		if h, _ := db.GetHold(t.Context(), live); h.Status != connector.HoldOpen {
			t.Fatalf("a refused command decided the hold: %+v", h)
		}
	})

	out, _, err = runCLI(t, env, "holds", "approve", id(live), "--by", "alice", "--reason", "end of season")
	if err != nil || !strings.Contains(out, "approved by alice") {
		t.Fatalf("holds approve: %v\n%s", err, out)
	}
	if _, _, err := runCLI(t, env, "holds", "reject", "--by", "bob", "--reason", "changed my mind", id(live)); err == nil || !strings.Contains(err.Error(), "approved by alice") {
		t.Fatalf("second decision: err = %v, want a refusal naming the first", err)
	}
	out, _, err = runCLI(t, env, "holds", "reject", id(upload), "--by", "bob", "--reason", "truncated file")
	if err != nil || !strings.Contains(out, "rejected by bob") {
		t.Fatalf("holds reject: %v\n%s", err, out)
	}
	out, _, err = runCLI(t, env, "holds", "list", "--status", "rejected", "--json")
	var h connector.Hold
	if err != nil || json.Unmarshal([]byte(out), &h) != nil || h.ID != upload || h.DecidedBy != "bob" || h.Decision != "truncated file" {
		t.Fatalf("holds list --status rejected --json: %v\n%s", err, out)
	}
	out, _, err = runCLI(t, env, "holds", "show", id(live))
	if err != nil || !strings.Contains(out, "approved by alice") || !strings.Contains(out, "end of season") {
		t.Fatalf("holds show after approval: %v\n%s", err, out)
	}
	audit, err := db.ListAudit(t.Context(), store.AuditFilter{Feed: "hr"})
	if err != nil || len(audit) != 7 || audit[0].Outcome != connector.OutcomeApproved || !strings.Contains(audit[0].Detail, "alice: end of season") {
		t.Fatalf("audit = %+v, %v", audit, err)
	}
}

// TestDemoHolds: the demo's end-of-season leavers cross the default threshold; the
// hold shows and is approved, and every expectation still holds.
func TestDemoHolds(t *testing.T) {
	t.Parallel()
	out, stderr, err := runCLI(t, nil, "demo", "--json", "--people", "80", "--seed", "5")
	if err != nil {
		t.Fatalf("demo failed: %v\n%s\n%s", err, out, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var res map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("last line is not JSON: %q", lines[len(lines)-1])
	}
	if res["ok"] != true || res["held"] == float64(0) || res["holds_approved"] == float64(0) {
		t.Fatalf("demo result: %v", res)
	}
	if !strings.Contains(out, "safeguard: hold 1 keeps") || !strings.Contains(out, "hrsync holds approve 1 --by demo-admin") {
		t.Fatalf("the demo does not show the hold and its approval:\n%s", out)
	}
}

// TestHoldsSampleBatchOfUpload: a truncated roster is held; its uploader may
// not let a sample run; another approver lets two of its leavers go first,
// and only those two are deactivated; the rest follows the approval.
func TestHoldsSampleBatchOfUpload(t *testing.T) {
	t.Parallel()
	natsURL, lms := startNATS(t), startLMS(t, nil)
	dir := t.TempDir()
	dbURL := "sqlite://" + filepath.Join(dir, "hrsync.db")
	cfg := filepath.Join(dir, "hrsync.yaml")
	if err := os.WriteFile(cfg, []byte("feeds:\n  - name: hr\n    roster:\n      mode: snapshot\nsafeguard:\n  percent: 20\n  min_removals: 2\n  settle: 0s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	migrateDB(t, dbURL)
	runTestDaemon(t, "--config", cfg, "--lms-url", lms.url, "--lms-token", lms.token, "--nats-url", natsURL, "--db", dbURL,
		"--admin-addr", "", "--poll-interval", "50ms")
	upload := func(n int) error {
		t.Helper()
		var b strings.Builder
		b.WriteString("worker_id,email,given_name,family_name\n")
		for i := range n {
			fmt.Fprintf(&b, "h%02d,h%02d@hr.example,Person,Hr %02d\n", i, i, i)
		}
		file := filepath.Join(dir, fmt.Sprintf("hr-%d.csv", n))
		if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		_, _, err := runCLI(t, nil, "roster", "upload", "--db", dbURL, "--config", cfg, "--nats-url", natsURL, "--feed", "hr", "--by", "ursula", file)
		return err
	}
	inactive := func() []string {
		var out []string
		for _, r := range lms.sb.Snapshot() {
			if !r.Account.Active {
				out = append(out, r.Account.ExternalID)
			}
		}
		slices.Sort(out)
		return out
	}
	if err := upload(10); err != nil {
		t.Fatalf("the first roster: %v", err)
	}
	waitFor(t, 60*time.Second, "10 accounts", func() (bool, string) {
		n := len(lms.sb.Snapshot())
		return n == 10, fmt.Sprintf("%d accounts", n)
	})
	if err := upload(3); !needsPerson(err) {
		t.Fatalf("the truncated roster: %v, want held", err)
	}
	db, err := store.Open(t.Context(), dbURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	holds, err := db.ListHolds(t.Context(), store.HoldFilter{Status: connector.HoldOpen})
	if err != nil || len(holds) != 1 || holds[0].Kind != connector.HoldUpload {
		t.Fatalf("open holds = %+v, %v; want the roster's", holds, err)
	}
	id := strconv.FormatInt(holds[0].ID, 10)
	sample := []string{"holds", "approve", id, "--sample-batch", "2", "--db", dbURL, "--nats-url", natsURL, "--reason", "two first"}
	if _, _, err := runCLI(t, nil, append(sample, "--by", "ursula")...); !errors.Is(err, connector.ErrFourEyes) {
		t.Fatalf("the uploader's sample: %v, want four eyes", err)
	}
	out, stderr, err := runCLI(t, nil, append(sample, "--by", "alice")...)
	if err != nil || !strings.Contains(out, "the first 2 of 7 people may leave") || !strings.Contains(out, "2 events published") {
		t.Fatalf("holds approve --sample-batch 2: %v\n%s%s", err, out, stderr)
	}
	waitFor(t, 60*time.Second, "the sample deactivated", func() (bool, string) {
		got := inactive()
		return slices.Equal(got, []string{"hr:h03", "hr:h04"}), fmt.Sprintf("inactive: %v", got)
	})
	if h, err := db.GetHold(t.Context(), holds[0].ID); err != nil || h.Status != connector.HoldOpen || h.Sample != 2 {
		t.Fatalf("the hold after its sample ran = %+v, %v; want still open", h, err)
	}
	out, stderr, err = runCLI(t, nil, "holds", "approve", id, "--by", "bob", "--reason", "the sample went well", "--db", dbURL, "--nats-url", natsURL)
	if err != nil || !strings.Contains(out, "approved by bob") {
		t.Fatalf("holds approve: %v\n%s%s", err, out, stderr)
	}
	waitFor(t, 60*time.Second, "the rest deactivated", func() (bool, string) {
		got := inactive()
		return len(got) == 7, fmt.Sprintf("inactive: %v", got)
	})
}
