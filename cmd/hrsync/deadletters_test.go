package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
)

// TestDeadPrune checks "hrsync dead prune": old dead letters lose their raw
// message and keep the rest, recent ones stay whole, and a bad --older-than is
// refused by name.
func TestDeadPrune(t *testing.T) {
	t.Parallel()
	dbURL := "sqlite://" + filepath.Join(t.TempDir(), "hrsync.db")
	db := openStore(t, dbURL)
	now := time.Now()
	oldID, err := db.DeadLetter(t.Context(), connector.DeadLetter{At: now.Add(-48 * time.Hour), Feed: "partner-acme",
		Subject: "hrsync.events.partner-acme.hired", Headers: []byte(`{"Ce-Id":["1"]}`), Data: []byte(`{"x":1}`), Reason: "old"})
	if err != nil {
		t.Fatal(err)
	}
	newID, err := db.DeadLetter(t.Context(), connector.DeadLetter{At: now.Add(-time.Hour), Feed: "partner-acme",
		Subject: "hrsync.events.partner-acme.hired", Data: []byte(`{"x":2}`), Reason: "recent"})
	if err != nil {
		t.Fatal(err)
	}

	out, stderr, err := runCLI(t, nil, "dead", "prune", "--db", dbURL, "--older-than", "24h")
	if err != nil || !strings.Contains(out, "pruned the raw messages of 1 dead letters older than 24h0m0s") {
		t.Fatalf("dead prune = %v\n%s\n%s", err, out, stderr)
	}
	old, err := db.GetDeadLetter(t.Context(), oldID)
	if err != nil || old.Data != nil || old.Headers != nil || old.PrunedAt == nil || old.Reason != "old" || old.DataSHA256 == "" {
		t.Fatalf("old dead letter after prune = %+v, %v", old, err)
	}
	if recent, err := db.GetDeadLetter(t.Context(), newID); err != nil || string(recent.Data) != `{"x":2}` || recent.PrunedAt != nil {
		t.Fatalf("recent dead letter after prune = %+v, %v", recent, err)
	}

	if _, _, err := runCLI(t, nil, "dead", "prune", "--db", dbURL, "--older-than", "0s"); err == nil || !strings.Contains(err.Error(), "--older-than 0s: must be more than 0") {
		t.Fatalf("dead prune --older-than 0s = %v, want a refusal naming the flag", err)
	}
}

// TestRunDeadLetterFlags checks that hrsync run refuses bad dead-letter settings,
// from flags and from the environment, naming the flag, before it connects to
// anything.
func TestRunDeadLetterFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{args: []string{"--dead-letter-max-body", "0"}, want: "--dead-letter-max-body 0: must be at least 1 byte"},
		{env: map[string]string{"HRSYNC_DEAD_LETTER_MAX_BODY": "-5"}, want: "--dead-letter-max-body -5: must be at least 1 byte"},
		{env: map[string]string{"HRSYNC_DEAD_LETTER_RETENTION": "-1h"}, want: "--dead-letter-retention -1h0m0s: must not be negative"},
		{env: map[string]string{"HRSYNC_DEAD_LETTER_RETENTION": "a month"}, want: "HRSYNC_DEAD_LETTER_RETENTION"},
	} {
		_, _, err := runCLI(t, tc.env, append([]string{"run"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run %v with %v = %v, want an error containing %q", tc.args, tc.env, err, tc.want)
		}
	}
}
