package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
)

func TestReportRehire(t *testing.T) {
	t.Parallel()
	l := startLMS(t, nil)
	ctx := context.Background()
	a, err := l.sb.CreateAccount(ctx, connector.Account{ExternalID: "hr:w7", UserName: "kai@example.com", Active: true,
		Profile: connector.Profile{Email: "kai@example.com", GivenName: "Kai"}})
	if err != nil {
		t.Fatal(err)
	}
	at := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }
	for _, c := range []struct {
		course string
		at     time.Time
	}{{"safety-101", at(2024, 5, 1)}, {"forklift", at(2025, 1, 10)}, {"onboarding", at(2023, 1, 1)}, {"gdpr", at(2026, 9, 1)}} {
		if err := l.sb.CompleteCourse(a.ID, c.course, c.at); err != nil {
			t.Fatal(err)
		}
	}
	// Left, then rehired: the account is reactivated with its history.
	if _, err := l.sb.SetActive(ctx, a.ID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := l.sb.SetActive(ctx, a.ID, true); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "hrsync.yaml")
	if err := os.WriteFile(cfg, []byte("courses:\n  safety-101: {validity: 8760h}\n  forklift: {validity: 8760h}\n  gdpr: {validity: 8760h}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"report", "rehire", "--worker", "hr:w7", "--lms-url", l.url, "--lms-token", l.token,
		"--config", cfg, "--validity", "forklift=17520h", "--now", "2026-11-01"}

	out, stderr, err := runCLI(t, nil, append(args, "--format", "json")...)
	if err != nil {
		t.Fatalf("report rehire: %v\n%s", err, stderr)
	}
	var got struct {
		AccountID string `json:"account_id"`
		Courses   []struct {
			Course, Status, Validity string
		} `json:"courses"`
		Expired int `json:"expired"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	var summary []string
	for _, c := range got.Courses {
		summary = append(summary, c.Course+"="+c.Status+"/"+c.Validity)
	}
	want := "forklift=valid/17520h0m0s gdpr=valid/8760h0m0s onboarding=no-expiry/ safety-101=expired/8760h0m0s"
	if strings.Join(summary, " ") != want || got.Expired != 1 || got.AccountID != a.ID {
		t.Fatalf("report = %s expired %d account %s; want %s, 1, %s", strings.Join(summary, " "), got.Expired, got.AccountID, want, a.ID)
	}

	out, stderr, err = runCLI(t, nil, args...)
	if err != nil {
		t.Fatalf("report rehire (table): %v\n%s", err, stderr)
	}
	if !strings.Contains(out, "safety-101") || !strings.Contains(out, "expired") || !strings.Contains(out, "4 courses, 1 expired") {
		t.Fatalf("table:\n%s", out)
	}

	if _, _, err := runCLI(t, nil, "report", "rehire", "--worker", "hr:nobody", "--lms-url", l.url, "--lms-token", l.token); err == nil ||
		!strings.Contains(err.Error(), "no LMS account") {
		t.Fatalf("unknown worker: %v", err)
	}
	if _, _, err := runCLI(t, nil, "report", "rehire", "--worker", "hr:w7", "--lms-url", l.url, "--validity", "x=soon"); err == nil {
		t.Fatal("a bad --validity was accepted")
	}
}
