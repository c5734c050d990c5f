package main

import (
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
