package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hrsync/hrsync/connector"
)

// runCLI runs hrsync with args and an environment map, returning stdout, stderr
// and the error.
func runCLI(t *testing.T, env map[string]string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), append([]string{"hrsync"}, args...), func(k string) string { return env[k] }, &out, &errOut)
	return out.String(), errOut.String(), err
}

// needsPerson reports whether err is run's "done, but something needs a person"
// (exit code 3).
func needsPerson(err error) bool { return err != nil && exitCode(err) == exitAttention }

func TestDemo(t *testing.T) {
	t.Parallel()
	out, stderr, err := runCLI(t, nil, "demo", "--json", "--people", "80", "--seed", "3")
	if err != nil {
		t.Fatalf("demo failed: %v\n%s\n%s", err, out, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var res map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("last line is not JSON: %q", lines[len(lines)-1])
	}
	for _, k := range []string{"hired", "left", "rehired", "accounts_created", "accounts_deactivated", "accounts_reactivated",
		"duplicate_accounts", "rehires_history_intact", "dead_lettered", "ok"} {
		if _, ok := res[k]; !ok {
			t.Errorf("demo JSON lacks %q", k)
		}
	}
	if res["ok"] != true || res["duplicate_accounts"] != float64(0) || res["rehires_history_intact"] != res["rehired"] || res["rehired"] == float64(0) {
		t.Fatalf("demo result: %v", res)
	}
	if !strings.Contains(out, "OK: every expectation held.") {
		t.Fatalf("no readable summary:\n%s", out)
	}
}

func TestPublishRefusesLocally(t *testing.T) {
	t.Parallel()
	// No NATS is reachable at this URL: a refusal must come before any connection.
	env := map[string]string{"NATS_URL": "nats://127.0.0.1:1"}
	_, _, err := runCLI(t, env, "publish", "--type", "hired", "--worker", "w1", "--email", "bob@", "--effective", "2026-12-01")
	if err == nil || !strings.Contains(err.Error(), `field "data.email"`) || !strings.Contains(err.Error(), "nothing sent") {
		t.Fatalf("err = %v, want a local refusal naming data.email", err)
	}
	_, _, err = runCLI(t, env, "publish", "--type", "hired", "--worker", "w1", "--email", "bob@example.com", "--effective", "2026-02-30")
	if err == nil || !strings.Contains(err.Error(), `field "data.effective"`) {
		t.Fatalf("err = %v, want a refusal naming data.effective", err)
	}
	_, _, err = runCLI(t, env, "publish", "--feed", "payroll", "--type", "hired", "--worker", "w1", "--email", "bob@example.com")
	if err == nil || !strings.Contains(err.Error(), "payroll") {
		t.Fatalf("err = %v, want a refusal naming the undeclared feed", err)
	}
	out, _, err := runCLI(t, env, "publish", "--dry-run", "--type", "left", "--worker", "w1", "--effective", "2026-12-01", "--reason", "moved")
	if err != nil || !strings.Contains(out, "hrsync.events.hr.left") {
		t.Fatalf("dry run: %v\n%s", err, out)
	}

	ev := filepath.Join(t.TempDir(), "e.json")
	body := `{"specversion":"1.0","type":"hrsync.worker.hired.v1","source":"/feeds/hr","id":"x1","subject":"w2",
	  "time":"2026-11-29T10:00:00Z","datacontenttype":"application/json",
	  "data":{"worker_id":"w3","email":"c@example.com","effective":"2026-12-01"}}`
	if err := os.WriteFile(ev, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err = runCLI(t, env, "publish", "--file", ev)
	if err == nil || !strings.Contains(err.Error(), `field "data.worker_id"`) {
		t.Fatalf("err = %v, want worker_id ≠ subject refused", err)
	}
}

func TestCLIErrors(t *testing.T) {
	t.Parallel()
	if _, _, err := runCLI(t, nil, "frobnicate"); err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Errorf("unknown command: %v", err)
	}
	if _, _, err := runCLI(t, map[string]string{"HRSYNC_CONCURRENCY": "many"}, "run", "--lms-url", "http://127.0.0.1:1/scim/v2"); err == nil || !strings.Contains(err.Error(), "HRSYNC_CONCURRENCY") {
		t.Errorf("bad env value: %v", err)
	}
	if _, _, err := runCLI(t, nil, "run"); err == nil || !strings.Contains(err.Error(), "--lms-url") {
		t.Errorf("missing LMS: %v", err)
	}
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(cfg, []byte("feeds:\n  - name: hr\n    timezon: Europe/Berlin\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCLI(t, nil, "publish", "--config", cfg, "--dry-run", "--type", "hired", "--worker", "w1", "--email", "a@example.com"); err == nil || !strings.Contains(err.Error(), "timezon") {
		t.Errorf("a typo in the config file must be an error naming the key: %v", err)
	}
	if _, _, err := runCLI(t, nil, "publish", "--declare-feed", "hr:hr:Mars/Olympus", "--dry-run", "--type", "hired", "--worker", "w1", "--email", "a@example.com"); err == nil || !strings.Contains(err.Error(), "Mars/Olympus") {
		t.Errorf("a bad feed time zone must be an error naming it: %v", err)
	}
}

func TestDeadAndReviewLists(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "h.db")
	db := "sqlite://" + file
	// A read command never creates the database.
	if _, _, err := runCLI(t, nil, "dead", "list", "--db", db); err == nil || !strings.Contains(err.Error(), "does not exist; create it with `hrsync migrate --db "+db+"`") {
		t.Errorf("dead list on a missing database: %v", err)
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("dead list on a missing database: stat %s: %v; want no file", file, err)
	}
	migrateDB(t, db)
	for _, args := range [][]string{
		{"dead", "list", "--db", db, "--feed", "hr"},
		{"dead", "list", "--db", db, "--json"},
		{"review", "list", "--db", db, "--feed", "hr"},
		{"roster", "list", "--db", db, "--feed", "hr"},
		{"holds", "list", "--db", db},
	} {
		if _, stderr, err := runCLI(t, nil, args...); err != nil {
			t.Errorf("hrsync %v: %v\n%s", args, err, stderr)
		}
	}
	if _, _, err := runCLI(t, nil, "dead", "replay", "--db", db, "42"); err == nil || !strings.Contains(err.Error(), "dead letter 42") {
		t.Errorf("replay of an unknown dead letter: %v", err)
	}
}

func TestAuditCSVIsEscaped(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	rows := []connector.AuditEntry{{ID: 1, Feed: "hr", WorkerID: "w1", Action: connector.ActionDeactivate, Outcome: connector.OutcomeOK,
		Detail: `left (=HYPERLINK("http://evil","x"))`, Plan: "deactivate u-1", FactIDs: []string{"/feeds/hr#e1"}}}
	if err := writeAudit(&b, "csv", rows); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `"left (=HYPERLINK(""http://evil"",""x""))"`) {
		t.Fatalf("detail not inside a quoted cell: %s", b.String())
	}
	rows[0].Detail = "=1+1"
	b.Reset()
	_ = writeAudit(&b, "csv", rows)
	if !strings.Contains(b.String(), ",'=1+1") {
		t.Fatalf("a cell starting with = is not escaped: %s", b.String())
	}
}

// TestLMSRateFlag: a bad --lms-rate (here LMS_RATE) is refused by name (the
// guard's wiring is tested in package app).
func TestLMSRateFlag(t *testing.T) {
	t.Parallel()
	if _, _, err := runCLI(t, map[string]string{"LMS_RATE": "lots"}, "run", "--lms-url", "http://127.0.0.1:1/scim/v2"); err == nil || !strings.Contains(err.Error(), "LMS_RATE") {
		t.Errorf("bad LMS_RATE: %v", err)
	}
}
