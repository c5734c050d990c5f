package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/app"
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

	// Rotation: a new current key alone is not enough while K's tombstone is live
	// (a start-up failure naming K's fingerprint and the old-keys variable), nor
	// is a malformed list of old keys.
	startFails := func(want ...string) {
		t.Helper()
		finished, cancel, _ := startRun(t, env)
		select {
		case err := <-finished:
			for _, w := range want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Fatalf("run with %s=%q %s=%q = %v; want a start-up failure saying %q", erasureKeyEnv, env[erasureKeyEnv],
						erasureKeysOldEnv, env[erasureKeysOldEnv], err, w)
				}
			}
		case <-time.After(30 * time.Second):
			cancel()
			<-finished
			t.Fatalf("run with %s=%q %s=%q started", erasureKeyEnv, env[erasureKeyEnv], erasureKeysOldEnv, env[erasureKeysOldEnv])
		}
	}
	env[erasureKeyEnv] = "key-new"
	startFails(connector.ErasureKeyCheck(key), erasureKeysOldEnv)
	env[erasureKeysOldEnv] = string(key) + ","
	startFails(erasureKeysOldEnv, "key 2", "empty")

	// With the new key and K as an old key, the other worker's fact is recorded
	// (it was redelivered), and a new hire of the person erased with K is refused.
	env[erasureKeysOldEnv] = string(key)
	finished, cancel, stderr = startRun(t, env)
	waitFor(t, 30*time.Second, "fresh-2 recorded", recorded("fresh-2"))
	hire("early-1")
	waitFor(t, 30*time.Second, "the erased worker's hire dead-lettered", func() (bool, string) {
		dls, err := db.ListDeadLetters(ctx, store.DeadLetterFilter{})
		return err == nil && len(dls) == 1 && strings.Contains(dls[0].Reason, "worker was erased on"), fmt.Sprintf("%+v, %v", dls, err)
	})
	if ok, _ := recorded("early-1")(); ok {
		t.Fatal("the worker erased with the old key came back")
	}
	cancel()
	if err := <-finished; err != nil {
		t.Fatalf("run with the keys returned %v\n%s", err, lastLines(stderr.String(), 20))
	}
}

// TestEraseForgetKey: the way out of a lost erasure key, through the command.
// The store holds a tombstone of key K and nobody has K: the command lists it as
// not set, refuses without --by, --reason and a matching --confirm (and changes
// nothing), refuses a key that is set, and once confirmed releases the tombstone
// with a loud warning and an audit row; a store handle without K then records
// facts again.
func TestEraseForgetKey(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dbURL := "sqlite://" + filepath.Join(t.TempDir(), "h.db")
	key := []byte("key-K")
	fp := connector.ErasureKeyCheck(key)
	db := openStore(t, dbURL)
	if err := db.UseErasureKey(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Erase(ctx, store.Erasure{Worker: connector.WorkerKey{Feed: "hr", WorkerID: "gone-1"}, Reason: "DSR-1", By: "dpo"}); err != nil {
		t.Fatal(err)
	}
	stillLocked := func() {
		t.Helper()
		if err := openStore(t, dbURL).UseErasureKeys(ctx, nil); err == nil {
			t.Fatal("the tombstone no longer needs its key, before the confirmation")
		}
	}

	out, stderr, err := runCLI(t, nil, "erase", "forget-key", "--db", dbURL)
	if err != nil || !strings.Contains(out, fp) || !strings.Contains(out, "NOT SET") {
		t.Fatalf("forget-key list: %v\n%s\n%s", err, out, stderr)
	}
	if out, _, err := runCLI(t, map[string]string{erasureKeyEnv: string(key)}, "erase", "forget-key", "--db", dbURL); err != nil || !strings.Contains(out, "set in "+erasureKeyEnv) {
		t.Fatalf("forget-key list with the key set: %v\n%s", err, out)
	}
	args := []string{"erase", "forget-key", "--db", dbURL, "--fingerprint", fp}
	for _, bad := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, []string{"--reason", "INC-77"}, "--by is required"},
		{nil, []string{"--by", "dpo"}, "--reason is required"},
		{nil, []string{"--by", "dpo", "--reason", "INC-77"}, "not confirmed"},
		{nil, []string{"--by", "dpo", "--reason", "INC-77", "--confirm", "0000000000000000"}, "not confirmed"},
		{map[string]string{erasureKeyEnv: "key-new", erasureKeysOldEnv: string(key)}, []string{"--by", "dpo", "--reason", "INC-77", "--confirm", fp}, "it is not lost"},
	} {
		if _, _, err := runCLI(t, bad.env, append(slices.Clone(args), bad.args...)...); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Fatalf("forget-key %v: %v; want %q", bad.args, err, bad.want)
		}
		stillLocked()
	}
	if _, _, err := runCLI(t, nil, "erase", "forget-key", "--db", dbURL, "--fingerprint", "0000000000000000", "--by", "dpo", "--reason", "x", "--confirm", "0000000000000000"); err == nil ||
		!strings.Contains(err.Error(), "no tombstone still needs that key") {
		t.Fatalf("forget-key of an unknown fingerprint: %v", err)
	}

	out, stderr, err = runCLI(t, nil, append(args, "--by", "dpo@corp", "--reason", "INC-77: vault wiped", "--confirm", fp)...)
	if err != nil || !strings.Contains(out, "1 tombstones released") || !strings.Contains(stderr, "WARNING") || !strings.Contains(stderr, "can no longer recognise") {
		t.Fatalf("forget-key confirmed: %v\n%s\n%s", err, out, stderr)
	}
	rows, err := db.ListAudit(ctx, store.AuditFilter{Feed: "hr", Action: connector.ActionNone})
	if err != nil || len(rows) != 1 || !strings.Contains(rows[0].Detail, "dpo@corp") || !strings.Contains(rows[0].Detail, "INC-77") {
		t.Fatalf("audit after forget-key = %+v, %v", rows, err)
	}
	free := openStore(t, dbURL)
	if err := free.UseErasureKeys(ctx, nil); err != nil {
		t.Fatalf("a handle without the lost key after forget-key: %v", err)
	}
	if n, err := free.RecordFacts(ctx, []connector.Fact{{Feed: "hr", WorkerID: "fresh-1", Source: "/feeds/hr", ID: "f1", Kind: connector.KindHired,
		Effective: time.Now().UTC(), Time: time.Now().UTC()}}); err != nil || n != 1 {
		t.Fatalf("RecordFacts after forget-key = %d, %v", n, err)
	}
	if out, _, err := runCLI(t, nil, "erase", "forget-key", "--db", dbURL); err != nil || !strings.Contains(out, "declared lost on") {
		t.Fatalf("forget-key list after: %v\n%s", err, out)
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
	s, err := app.NewStack(ctx, testSettings(t, dbURL, feeds), app.Options{LMS: sandbox.New(), Log: slog.New(slog.DiscardHandler), Migrate: true}, app.StackConfig{
		EmbeddedNATS: true, EmbeddedDir: filepath.Join(dir, "nats"), ManageStream: true, Durable: "hrsync",
		Consumer: events.ConsumerConfig{Batch: 16, MaxWait: 20 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cctx, stop := context.WithCancel(ctx)
	consumed := make(chan error, 1)
	go func() { consumed <- s.Consume(cctx) }()
	defer func() { stop(); <-consumed }()
	srv := httptest.NewServer(s.AdminHandler())
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
