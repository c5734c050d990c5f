package main

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/docebo/docebosim"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
)

// TestDoceboCleanupAndRehire runs the activity-based commands with lms.type
// docebo against the Docebo simulator: "cleanup dormant" finds the accounts
// that never logged in and never enrolled, spares one enrolled, one with a
// completion and one that logged in, and deletes the dormant ones with one
// delete call; "report rehire" lists the real completions of a reactivated
// account. The client secret is only in the command's environment (run's
// getenv), which lms.client_secret_env is read from.
func TestDoceboCleanupAndRehire(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	secret := fmt.Sprintf("docebo-%d", time.Now().UnixNano())
	env := map[string]string{"HRSYNC_TEST_DOCEBO_SECRET": secret}
	sb := sandbox.New(docebosim.SandboxOptions()...)
	sim := docebosim.New(sb, docebosim.Config{ClientSecret: secret})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	cfg := filepath.Join(dir, "hrsync.yaml")
	yaml := fmt.Sprintf("lms:\n  type: docebo\n  url: %s\n  client_id: %s\n  client_secret_env: HRSYNC_TEST_DOCEBO_SECRET\n"+
		"  external_id_field: \"1\"\n  employee_number_field: \"2\"\ncourses:\n  safety-101: {validity: 8760h}\n",
		srv.URL, docebosim.DefaultClientID)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, name := range []string{"dormant1", "dormant2", "enrolled", "completed", "loggedin"} {
		a, err := sb.CreateAccount(ctx, connector.Account{ExternalID: "import:" + name, UserName: name + "@old.example", Active: true})
		if err != nil {
			t.Fatal(err)
		}
		ids[name] = a.ID
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(sb.Enroll(ids["enrolled"], "safety-101", time.Now()))
	must(sb.CompleteCourse(ids["completed"], "safety-101", time.Now()))
	must(sb.RecordLogin(ids["loggedin"], time.Now()))

	dbURL := "sqlite://" + filepath.Join(dir, "h.db")
	migrateDB(t, dbURL)
	conn := []string{"--db", dbURL, "--config", cfg, "--log-level", "warn"}
	tomorrow := time.Now().UTC().AddDate(0, 0, 1).Format(time.DateOnly)
	out, stderr, err := runCLI(t, env, append([]string{"cleanup", "dormant", "--no-login", "--no-enrollments",
		"--created-before", tomorrow, "--out", filepath.Join(dir, "report")}, conn...)...)
	if !needsPerson(err) || !strings.Contains(out, "scanned 5 LMS accounts; 2 dormant") {
		t.Fatalf("cleanup dormant: %v\n%s\n%s", err, out, stderr)
	}
	csv, err := os.ReadFile(filepath.Join(dir, "report", "accounts.csv"))
	if err != nil || !strings.Contains(string(csv), "dormant1@old.example") || !strings.Contains(string(csv), "dormant2@old.example") ||
		strings.Contains(string(csv), "completed@") || strings.Contains(string(csv), "enrolled@") || strings.Contains(string(csv), "loggedin@") {
		t.Fatalf("accounts.csv (%v):\n%s", err, csv)
	}
	if _, _, err := runCLI(t, env, "holds", "approve", "1", "--db", dbURL, "--by", "ana", "--reason", "dormant imports"); err != nil {
		t.Fatal(err)
	}
	before := sim.Calls("DELETE /manage/v1/user/delete")
	if out, stderr, err := runCLI(t, env, append([]string{"holds", "run", "1"}, conn...)...); err != nil || !strings.Contains(out, "2 done") {
		t.Fatalf("holds run: %v\n%s\n%s", err, out, stderr)
	}
	if n := sim.Calls("DELETE /manage/v1/user/delete") - before; n != 1 {
		t.Errorf("%d delete calls for 2 dormant accounts, want 1", n)
	}
	if n := sb.Count(); n != 3 {
		t.Errorf("%d accounts left, want 3", n)
	}

	// A rehire: deactivated and reactivated through Docebo's change_status, the
	// completion kept; the report reads it from the enrollments.
	a, err := sb.CreateAccount(ctx, connector.Account{ExternalID: "hr:w7", UserName: "kai@example.com", Active: true})
	must(err)
	must(sb.CompleteCourse(a.ID, "safety-101", time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)))
	must(sb.CompleteCourse(a.ID, "forklift", time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)))
	for _, active := range []bool{false, true} {
		_, err := sb.SetActive(ctx, a.ID, active)
		must(err)
	}
	out, stderr, err = runCLI(t, env, "report", "rehire", "--worker", "hr:w7", "--now", "2026-11-01", "--format", "json", "--config", cfg)
	if err != nil {
		t.Fatalf("report rehire: %v\n%s", err, stderr)
	}
	var got struct {
		AccountID string                            `json:"account_id"`
		Courses   []struct{ Course, Status string } `json:"courses"`
		Expired   int                               `json:"expired"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	var summary []string
	for _, c := range got.Courses {
		summary = append(summary, c.Course+"="+c.Status)
	}
	if want := "forklift=no-expiry safety-101=expired"; strings.Join(summary, " ") != want || got.AccountID != a.ID || got.Expired != 1 {
		t.Errorf("report rehire: %s (account %s, %d expired); want %s (account %s, 1 expired)", strings.Join(summary, " "), got.AccountID, got.Expired, want, a.ID)
	}
}

// TestDemoDocebo plays "hrsync demo --lms docebo" through cmd/hrsync's own
// assembly (the guard over the Docebo adapter over HTTP to the simulator).
func TestDemoDocebo(t *testing.T) {
	t.Parallel()
	out, stderr, err := runCLI(t, nil, "demo", "--json", "--lms", "docebo", "--people", "80", "--seed", "3")
	if err != nil {
		t.Fatalf("demo --lms docebo failed: %v\n%s\n%s", err, out, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var res map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("last line is not JSON: %q", lines[len(lines)-1])
	}
	if res["ok"] != true || res["duplicate_accounts"] != float64(0) || res["rehires_history_intact"] != res["rehired"] || res["rehired"] == float64(0) {
		t.Fatalf("demo result: %v\n%s", res, out)
	}
	if !strings.Contains(out, "sandbox LMS (docebo)") {
		t.Errorf("the demo does not say it spoke to the docebo simulator:\n%s", out)
	}
}
