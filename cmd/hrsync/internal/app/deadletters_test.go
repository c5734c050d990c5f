package app

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/store"
)

// openStore opens the store at url for the test's checks.
func openStore(t *testing.T, url string) *store.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	db, err := store.Open(ctx, url, nil, store.Migrate(true))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// waitFor polls cond until it holds, and fails t with cond's last explanation
// when timeout passes first.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %v: %s", what, timeout, why)
		}
		<-time.After(20 * time.Millisecond)
	}
}

// testSettings returns the settings of an empty configuration file on db, with
// feeds (nil: the default feed hr).
func testSettings(t testing.TB, db string, feeds connector.Feeds) Settings {
	t.Helper()
	set, err := SettingsFor(db, feeds, FileConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// TestScheduleDeadLetterPrune checks that the daemon's schedule prunes at start
// and again on later ticks, and that stopping it returns.
func TestScheduleDeadLetterPrune(t *testing.T) {
	t.Parallel()
	db := openStore(t, "sqlite://"+filepath.Join(t.TempDir(), "hrsync.db"))
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	s := &Stack{now: func() time.Time { return now }, db: db, log: slog.New(slog.NewTextHandler(t.Output(), nil))}
	deadLetter := func(age time.Duration) int64 {
		t.Helper()
		id, err := db.DeadLetter(t.Context(), connector.DeadLetter{At: now.Add(-age), Feed: "hr", Subject: "hrsync.events.hr.hired",
			Data: []byte(`{"x":1}`), Reason: "bad"})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	pruned := func(id int64) bool {
		d, err := db.GetDeadLetter(t.Context(), id)
		return err == nil && d.PrunedAt != nil && d.Data == nil
	}
	first, young := deadLetter(31*24*time.Hour), deadLetter(29*24*time.Hour)
	stop := s.ScheduleDeadLetterPrune(t.Context(), DefaultDeadLetterRetention, 10*time.Millisecond)
	defer stop()
	waitFor(t, 10*time.Second, "the first pass", func() (bool, string) { return pruned(first), "not pruned" })
	second := deadLetter(40 * 24 * time.Hour)
	waitFor(t, 10*time.Second, "a later pass", func() (bool, string) { return pruned(second), "not pruned" })
	if pruned(young) {
		t.Error("a dead letter younger than the retention was pruned")
	}
	stop()
}

// TestStackDeadLetterCap checks that the daemon's assembly gives the store the
// configured cap.
func TestStackDeadLetterCap(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	feeds, err := connector.NewFeeds(connector.DefaultFeed("hr", connector.FeedHR))
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewStack(t.Context(), testSettings(t, "sqlite://"+filepath.Join(dir, "hrsync.db"), feeds),
		Options{LMS: sandbox.New(), Log: slog.New(slog.DiscardHandler), DeadLetterMaxBody: 32, Migrate: true},
		StackConfig{EmbeddedNATS: true, EmbeddedDir: filepath.Join(dir, "nats"), ManageStream: true, Durable: "hrsync"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	id, err := s.db.DeadLetter(t.Context(), connector.DeadLetter{Subject: "hrsync.events.hr.hired", Data: bytes.Repeat([]byte("x"), 1000), Reason: "big"})
	if err != nil {
		t.Fatal(err)
	}
	if d, err := s.db.GetDeadLetter(t.Context(), id); err != nil || len(d.Data) != 32 || !d.Truncated || d.DataBytes != 1000 {
		t.Fatalf("dead letter = %d bytes, truncated %v, size %d, %v; want 32, true, 1000", len(d.Data), d.Truncated, d.DataBytes, err)
	}
}
