package main

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hrsync/hrsync/connector/lms/sandbox"
)

func TestReconcileCommand(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "report")
	out, stderr, err := runCLI(t, nil, "reconcile", "--bench", "300", "--apply", "--json", "--out", dir, "--log-level", "warn")
	if err != nil {
		t.Fatalf("reconcile: %v\n%s\n%s", err, out, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var res struct {
		Workers, Accounts, Drift, Converged int
		MarkedDue                           int `json:"marked_due"`
		Counts                              map[string]int
		PeakRSS                             uint64 `json:"peak_rss_bytes"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("last line is not JSON: %q", lines[len(lines)-1])
	}
	// 1% of 300 accounts drift: w00000007, w00000107, w00000207.
	if res.Workers != 300 || res.Accounts != 300 || res.Counts["profile_drift"] != 3 || res.MarkedDue != 3 || res.Converged != 3 {
		t.Fatalf("result: %+v\n%s", res, out)
	}
	for _, want := range []string{"profile_drift               3", "converged 3 workers", "reconcile pass took", "peak RSS"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	csv, err := os.ReadFile(filepath.Join(dir, "drift.csv"))
	if err != nil || strings.Count(string(csv), "\n") != 4 || !strings.Contains(string(csv), "hr,w00000107,a00000107") {
		t.Fatalf("drift.csv (%v):\n%s", err, csv)
	}
	if _, err := os.Stat(filepath.Join(dir, "drift.json")); err != nil {
		t.Fatal(err)
	}

	if _, _, err := runCLI(t, nil, "reconcile", "--apply", "--dry-run"); err == nil || !strings.Contains(err.Error(), "choose one") {
		t.Errorf("--apply --dry-run: %v", err)
	}
	if _, _, err := runCLI(t, nil, "reconcile", "--reactivate-manual"); err == nil || !strings.Contains(err.Error(), "--apply") {
		t.Errorf("--reactivate-manual without --apply: %v", err)
	}
	if _, _, err := runCLI(t, nil, "reconcile", "--out", t.TempDir()); err == nil || !strings.Contains(err.Error(), "--lms-url") {
		t.Errorf("no LMS: %v", err)
	}
}

// TestReconcileBenchOverSCIM seeds the bench's accounts in a sandbox LMS behind
// SCIM (as "hrsync sandbox-lms" in another process would be) and reconciles
// them over HTTP.
func TestReconcileBenchOverSCIM(t *testing.T) {
	t.Parallel()
	lms := sandbox.New()
	srv := httptest.NewServer(lms.Handler(""))
	t.Cleanup(srv.Close)
	out, stderr, err := runCLI(t, nil, "reconcile", "--bench", "250", "--lms-url", srv.URL+"/scim/v2", "--json",
		"--out", filepath.Join(t.TempDir(), "report"), "--log-level", "warn")
	if !needsPerson(err) { // a dry run that found drift
		t.Fatalf("reconcile: %v\n%s\n%s", err, out, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var res struct {
		Workers, Accounts int
		Counts            map[string]int
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("last line is not JSON: %q", lines[len(lines)-1])
	}
	if res.Workers != 250 || res.Accounts != 250 || res.Counts["profile_drift"] != 3 || res.Counts["in_sync"] != 247 {
		t.Fatalf("result: %+v\n%s", res, out)
	}
	if n := lms.Count(); n != 250 {
		t.Fatalf("the SCIM sandbox holds %d accounts, want 250", n)
	}
}
