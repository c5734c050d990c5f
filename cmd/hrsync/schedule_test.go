package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store/pgtest"
)

// TestRunScheduledReconciliation: with --reconcile-every, the daemon reconciles on
// its own and writes drift reports; an account no feed knows shows as an orphan.
func TestRunScheduledReconciliation(t *testing.T) {
	t.Parallel()
	natsURL, dbURL, lms := startNATS(t), pgtest.URL(t), startLMS(t, nil)
	if _, err := lms.sb.CreateAccount(t.Context(), connector.Account{UserName: "stray@example.com", ExternalID: "legacy:9",
		Active: true, Profile: connector.Profile{Email: "stray@example.com"}}); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	var stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"hrsync", "run", "--lms-url", lms.url, "--lms-token", lms.token, "--nats-url", natsURL,
			"--db", dbURL, "--admin-addr=", "--reconcile-every", "100ms", "--reconcile-out", out}, func(string) string { return "" }, &stderr, &stderr)
	}()
	waitFor(t, 30*time.Second, "a drift report naming the orphan", func() (bool, string) {
		reports, _ := filepath.Glob(filepath.Join(out, "reconcile-*", "drift.csv"))
		for _, r := range reports {
			if b, err := os.ReadFile(r); err == nil && strings.Contains(string(b), "orphan") && strings.Contains(string(b), "legacy:9") {
				return true, ""
			}
		}
		return false, "reports: " + strings.Join(reports, ", ") + "\n" + lastLines(stderr.String(), 10)
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("run did not stop within 20s")
	}
	if lms.sb.Count() != 1 {
		t.Fatalf("a dry-run reconciliation changed the LMS: %d accounts", lms.sb.Count())
	}
}
