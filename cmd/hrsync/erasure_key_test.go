package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/events"
	"github.com/hrsync/hrsync/store"
)

// startRun runs "hrsync run" in process with env as its whole environment and
// returns a channel with what run returned, and the function that stops it.
func startRun(t *testing.T, env map[string]string) (<-chan error, context.CancelFunc, *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	var stdout, stderr syncBuffer
	finished := make(chan error, 1)
	go func() {
		finished <- run(ctx, []string{"hrsync", "run", "--poll-interval", "100ms"}, func(k string) string { return env[k] }, &stdout, &stderr)
	}()
	return finished, cancel, &stderr
}

// TestRunWithoutKeyAfterErase is issue #10's defect 3: a daemon that started
// without HRSYNC_ERASURE_KEY (the store held no tombstone then) goes on after one
// "hrsync erase" with key K. It cannot tell whether a fact belongs to the erased
// person, so it must not record any; but it must not refuse everyone's facts
// silently either (NAK forever, /readyz 200). It stops with an error that says
// what to set and where the docs are; started again without the key it refuses
// to start with the same words; started with K it records the other worker's fact.
func TestRunWithoutKeyAfterErase(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	dbURL := "sqlite://" + filepath.Join(dir, "h.db")
	natsURL := startNATS(t)
	lms := startLMS(t, nil)
	js := connectJS(t, natsURL)
	db := openStore(t, dbURL)
	env := map[string]string{
		"DATABASE_URL": dbURL, "NATS_URL": natsURL, "LMS_URL": lms.url, "LMS_TOKEN": lms.token,
		"HRSYNC_ADMIN_ADDR": "127.0.0.1:0", "HRSYNC_LOG_FORMAT": "json",
	}
	seq := 0
	hire := func(worker string) {
		t.Helper()
		seq++
		e := events.Event{Feed: "hr", Kind: connector.KindHired, ID: fmt.Sprintf("k-%d", seq), Source: "/feeds/hr", Time: time.Now().UTC(),
			Data: events.Data{WorkerID: worker, Email: worker + "@example.com", Effective: "2026-01-05"}}
		if _, err := events.Publish(ctx, js, e, events.Structured); err != nil {
			t.Fatal(err)
		}
	}
	recorded := func(worker string) func() (bool, string) {
		return func() (bool, string) {
			fs, err := db.Facts(ctx, connector.WorkerKey{Feed: "hr", WorkerID: worker})
			return err == nil && len(fs) > 0, fmt.Sprintf("facts of %s: %d, %v", worker, len(fs), err)
		}
	}

	finished, cancel, stderr := startRun(t, env)
	hire("early-1")
	waitFor(t, 30*time.Second, "early-1 recorded", recorded("early-1"))

	// "hrsync erase" with key K, from another process (its store half is enough).
	key := []byte("key-K")
	eraser := openStore(t, dbURL)
	if err := eraser.UseErasureKey(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, err := eraser.Erase(ctx, store.Erasure{Worker: connector.WorkerKey{Feed: "hr", WorkerID: "early-1"}, Reason: "DSR-1", By: "dpo"}); err != nil {
		t.Fatal(err)
	}
	hire("fresh-2") // a worker who was never erased

	select {
	case err := <-finished:
		if err == nil || !strings.Contains(err.Error(), erasureKeyEnv) || !strings.Contains(err.Error(), "docs/erasure.md") {
			t.Fatalf("run stopped with %v; want an error naming %s and docs/erasure.md", err, erasureKeyEnv)
		}
	case <-time.After(30 * time.Second):
		ok, why := recorded("fresh-2")()
		cancel()
		<-finished
		t.Fatalf("the daemon without a key went on for 30s after an erasure (fresh-2 recorded: %v, %s): a silent stall\n%s", ok, why, lastLines(stderr.String(), 20))
	}

	// Started again without the key: a start-up failure that says what to do.
	finished, cancel, _ = startRun(t, env)
	select {
	case err := <-finished:
		if err == nil || !strings.Contains(err.Error(), erasureKeyEnv) || !strings.Contains(err.Error(), "docs/erasure.md") {
			t.Fatalf("run without the key after an erasure = %v; want a start-up failure naming %s and docs/erasure.md", err, erasureKeyEnv)
		}
	case <-time.After(30 * time.Second):
		cancel()
		<-finished
		t.Fatal("run without the key started although the store holds tombstones")
	}

	// With the key, the other worker's fact is recorded (it was redelivered).
	env[erasureKeyEnv] = string(key)
	finished, cancel, stderr = startRun(t, env)
	waitFor(t, 30*time.Second, "fresh-2 recorded", recorded("fresh-2"))
	cancel()
	if err := <-finished; err != nil {
		t.Fatalf("run with the key returned %v\n%s", err, lastLines(stderr.String(), 20))
	}
}

// TestReadyzReportsMissingErasureKey: a stack without the erasure key answers
// /readyz 503 with the reason as soon as the store holds a tombstone it cannot
// check (here made by another process after the stack started).
func TestReadyzReportsMissingErasureKey(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	dbURL := "sqlite://" + filepath.Join(dir, "h.db")
	feeds, err := connector.NewFeeds(connector.DefaultFeed("hr", connector.FeedHR))
	if err != nil {
		t.Fatal(err)
	}
	s, err := openStack(ctx, stackConfig{
		DB: dbURL, EmbeddedNATS: true, EmbeddedDir: filepath.Join(dir, "nats"),
		Feeds: feeds, ManageStream: true, Durable: "hrsync", LMS: sandbox.New(), Log: slog.New(slog.DiscardHandler),
		Consumer: events.ConsumerConfig{Batch: 16, MaxWait: 20 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cctx, stop := context.WithCancel(ctx)
	consumed := make(chan error, 1)
	go func() { consumed <- s.consume(cctx) }()
	defer func() { stop(); <-consumed }()
	srv := httptest.NewServer(s.adminHandler())
	defer srv.Close()
	readyz := func() (int, string) {
		t.Helper()
		resp, err := srv.Client().Get(srv.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitFor(t, 30*time.Second, "ready", func() (bool, string) {
		code, body := readyz()
		return code == http.StatusOK, body
	})

	eraser := openStore(t, dbURL)
	if err := eraser.UseErasureKey(ctx, []byte("key-K")); err != nil {
		t.Fatal(err)
	}
	if _, err := eraser.Erase(ctx, store.Erasure{Worker: connector.WorkerKey{Feed: "hr", WorkerID: "gone-1"}, Reason: "DSR-1", By: "dpo"}); err != nil {
		t.Fatal(err)
	}
	code, body := readyz()
	if code != http.StatusServiceUnavailable || !strings.Contains(body, erasureKeyEnv) || !strings.Contains(body, "docs/erasure.md") {
		t.Fatalf("/readyz after an erasure, without the key = %d %q; want 503 naming %s and docs/erasure.md", code, body, erasureKeyEnv)
	}
}
