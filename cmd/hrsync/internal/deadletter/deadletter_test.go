package deadletter_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/app"
	"github.com/hrsync/hrsync/cmd/hrsync/internal/deadletter"
	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/events"
	"github.com/hrsync/hrsync/store"
	"github.com/hrsync/hrsync/store/pgtest"
)

// testBundle is one test's database, the sandbox LMS behind it, and the feed
// acme that the configuration did not declare at first.
type testBundle struct {
	url string
	lms *sandbox.LMS
}

func setup(t *testing.T, url string) *testBundle {
	t.Helper()
	b := &testBundle{url: url, lms: sandbox.New()}
	b.open(t, "hr").Close() // the operator's "hrsync migrate"
	return b
}

// open opens the assembly on the bundle's database with the feeds declared,
// as a command or the daemon does with its configuration.
func (b *testBundle) open(t *testing.T, feeds ...string) *app.App {
	t.Helper()
	var fs []connector.Feed
	for _, f := range feeds {
		fs = append(fs, connector.DefaultFeed(f, connector.FeedHR))
	}
	declared, err := connector.NewFeeds(fs...)
	if err != nil {
		t.Fatal(err)
	}
	set, err := app.SettingsFor(b.url, declared, app.FileConfig{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.Open(t.Context(), set, app.Options{LMS: b.lms, Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return a
}

// hire returns a hire of worker on feed, as a publisher sends it.
func hire(t *testing.T, feed, worker string, mode events.Mode) (subject string, headers, data []byte) {
	t.Helper()
	msg, err := events.Encode(events.Event{Feed: feed, Kind: connector.KindHired, ID: "e-" + worker, Source: "/feeds/" + feed,
		Time: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC),
		Data: events.Data{WorkerID: worker, Email: worker + "@" + feed + ".example", GivenName: "Ann", FamilyName: "Lee", Effective: "2026-03-02"}}, mode)
	if err != nil {
		t.Fatal(err)
	}
	return msg.Subject, events.HeadersJSON(msg.Header), msg.Data
}

// deadLetter stores what the consumer stores for a message it refused.
func deadLetter(t *testing.T, db *store.DB, feed, subject string, headers, data []byte, reason string) int64 {
	t.Helper()
	id, err := db.DeadLetter(t.Context(), connector.DeadLetter{Feed: feed, Subject: subject, Headers: headers, Data: data, Reason: reason})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func backends(t *testing.T, run func(t *testing.T, url string)) {
	t.Run("SQLite", func(t *testing.T) {
		t.Parallel()
		run(t, "sqlite://"+filepath.Join(t.TempDir(), "hrsync.db"))
	})
	t.Run("PostgreSQL", func(t *testing.T) {
		t.Parallel()
		run(t, pgtest.URL(t))
	})
}

// TestReplayConvergesWithoutReconcile: a hire from a feed the configuration did
// not declare is dead-lettered; replaying it before the fix fails and says so
// in its history; after the fix (the feed declared) the replay records the
// fact and the daemon's converger creates the account at its next pass, with
// no reconcile (issue #11).
func TestReplayConvergesWithoutReconcile(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, url string) {
		b := setup(t, url)
		ctx := t.Context()
		before := b.open(t, "hr")
		subject, headers, data := hire(t, "acme", "w1", events.Binary)
		id := deadLetter(t, before.Store(), "acme", subject, headers, data, `feed: undeclared feed "acme"`)

		_, err := deadletter.Replay(ctx, before.Store(), before.Settings().Feeds, id, "alice")
		if err == nil || !strings.Contains(err.Error(), "still fails") || !strings.Contains(err.Error(), `undeclared feed "acme"`) {
			t.Fatalf("replay before the fix: %v; want it to still fail, naming the feed", err)
		}

		after := b.open(t, "hr", "acme")
		r, err := deadletter.Replay(ctx, after.Store(), after.Settings().Feeds, id, "alice")
		if err != nil {
			t.Fatalf("replay after the fix: %v", err)
		}
		w1 := connector.WorkerKey{Feed: "acme", WorkerID: "w1"}
		if r.Recorded != 1 || r.Woken != w1 || r.Fact.Kind != connector.KindHired {
			t.Fatalf("replay = %+v; want 1 hire recorded, %s woken", r, w1)
		}
		var out bytes.Buffer
		if err := r.WriteText(&out); err != nil || !strings.Contains(out.String(), "dead letter 1 replayed: hired e-w1 for acme:w1 (1 new fact; acme:w1 is due now") {
			t.Fatalf("WriteText = %q, %v", out.String(), err)
		}
		// The daemon's converger (the same assembly) acts on it: no reconcile.
		conv, err := after.Converger(connector.ConvergerConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conv.Drain(ctx, 5); err != nil {
			t.Fatal(err)
		}
		accts, err := b.lms.FindAccounts(ctx, connector.AccountFilter{Attr: connector.ByExternalID, Value: "acme:w1"})
		if err != nil || len(accts) != 1 || !accts[0].Active {
			t.Fatalf("accounts of acme:w1 = %+v, %v; want one, active", accts, err)
		}

		sh, err := deadletter.Show(ctx, after.Store(), id)
		if err != nil {
			t.Fatal(err)
		}
		if sh.Status != connector.DeadLetterReplayed || len(sh.History) != 2 ||
			sh.History[0].Action != store.DeadLetterReplayFailedAction || sh.History[1].Action != store.DeadLetterReplayedAction || sh.History[1].By != "alice" {
			t.Fatalf("shown = %s %+v; want replayed, after one failed replay", sh.Status, sh.History)
		}
		if _, err := deadletter.Replay(ctx, after.Store(), after.Settings().Feeds, id, "bob"); !errors.Is(err, connector.ErrConflict) || !strings.Contains(err.Error(), "already replayed") {
			t.Fatalf("replay twice: %v; want connector.ErrConflict", err)
		}
	})
}

func TestDiscard(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, url string) {
		b := setup(t, url)
		ctx := t.Context()
		a := b.open(t, "hr")
		db := a.Store()
		id := deadLetter(t, db, "hr", "hrsync.events.hr.hired", nil, []byte("not json"), "body: not JSON")
		keep := deadLetter(t, db, "hr", "hrsync.events.hr.hired", nil, []byte("{"), "body: not JSON")

		if _, err := deadletter.Discard(ctx, db, id, "alice", " "); err == nil || !strings.Contains(err.Error(), "--reason is required") {
			t.Fatalf("discard without a reason: %v; want an error naming --reason", err)
		}
		if _, err := deadletter.Discard(ctx, db, id, "", "x"); err == nil || !strings.Contains(err.Error(), "--by is required") {
			t.Fatalf("discard without --by: %v; want an error naming --by", err)
		}
		if _, err := deadletter.Discard(ctx, db, 999, "alice", "x"); !errors.Is(err, connector.ErrNotFound) || !strings.Contains(err.Error(), "dead letter 999") {
			t.Fatalf("discard of an unknown id: %v", err)
		}
		d, err := deadletter.Discard(ctx, db, id, "alice", "a test message from the vendor; nothing to replay")
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := deadletter.WriteDiscarded(&out, d); err != nil || !strings.Contains(out.String(), "dead letter 1 discarded by alice: it will never be replayed") {
			t.Fatalf("WriteDiscarded = %q, %v", out.String(), err)
		}
		if _, err := deadletter.Replay(ctx, db, a.Settings().Feeds, id, "bob"); !errors.Is(err, connector.ErrConflict) || !strings.Contains(err.Error(), "discarded by alice") {
			t.Fatalf("replay of a discarded dead letter: %v; want connector.ErrConflict naming alice", err)
		}
		if _, err := deadletter.Discard(ctx, db, id, "bob", "again"); !errors.Is(err, connector.ErrConflict) {
			t.Fatalf("discard twice: %v; want connector.ErrConflict", err)
		}
		open, err := db.ListDeadLetters(ctx, store.DeadLetterFilter{})
		if err != nil || len(open) != 1 || open[0].ID != keep {
			t.Fatalf("open dead letters = %+v, %v; want only %d", open, err, keep)
		}
		sh, err := deadletter.Show(ctx, db, id)
		if err != nil || sh.Status != connector.DeadLetterDiscarded || sh.DiscardedBy != "alice" || sh.Message.Text != "not json" {
			t.Fatalf("show = %+v, %v; want it discarded by alice, its message kept", sh, err)
		}
		audit, err := db.ListAudit(ctx, store.AuditFilter{Feed: "hr"})
		if err != nil || len(audit) != 1 || audit[0].Plan != store.PlanDeadLetterDiscarded || !strings.Contains(audit[0].Detail, "alice") {
			t.Fatalf("audit = %+v, %v; want the discard", audit, err)
		}
	})
}

// A pruned or truncated message cannot be replayed; the replay says to discard it.
func TestReplayOfALostMessage(t *testing.T) {
	t.Parallel()
	b := setup(t, "sqlite://"+filepath.Join(t.TempDir(), "hrsync.db"))
	a := b.open(t, "hr")
	db := a.Store()
	subject, headers, data := hire(t, "hr", "w1", events.Binary)
	id := deadLetter(t, db, "hr", subject, headers, data, "x")
	if _, err := db.PruneDeadLetters(t.Context(), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	_, err := deadletter.Replay(t.Context(), db, a.Settings().Feeds, id, "")
	if err == nil || !strings.Contains(err.Error(), "pruned") || !strings.Contains(err.Error(), "hrsync dead discard 1 --reason TEXT --by NAME") {
		t.Fatalf("replay of a pruned message: %v", err)
	}
	sh, err := deadletter.Show(t.Context(), db, id)
	if err != nil || sh.Message.Kept || len(sh.Message.Notes) != 1 || !strings.Contains(sh.Message.Notes[0], "pruned") || len(sh.History) != 1 {
		t.Fatalf("show = %+v, %v; want the message gone, said in a note, and the failed replay in the history", sh, err)
	}
}

func TestShowBinary(t *testing.T) {
	t.Parallel()
	b := setup(t, "sqlite://"+filepath.Join(t.TempDir(), "hrsync.db"))
	db := b.open(t, "hr").Store()
	subject, headers, data := hire(t, "acme", "w1", events.Binary)
	id := deadLetter(t, db, "acme", subject, headers, data, `feed: undeclared feed "acme"`)
	sh, err := deadletter.Show(t.Context(), db, id)
	if err != nil {
		t.Fatal(err)
	}
	m := sh.Message
	if sh.Status != connector.DeadLetterOpen || !m.Kept || m.Mode != "binary" || m.Attributes["type"] != "hrsync.worker.hired.v1" ||
		m.Attributes["source"] != "/feeds/acme" || m.Attributes["id"] != "e-w1" || m.Attributes["subject"] != "w1" {
		t.Fatalf("shown = %+v", sh)
	}
	var d events.Data
	if err := json.Unmarshal(m.Data, &d); err != nil || d.WorkerID != "w1" || d.Email != "w1@acme.example" {
		t.Fatalf("data = %s, %v", m.Data, err)
	}
	if !bytes.Contains(m.Data, []byte("\n  \"worker_id\": \"w1\"")) {
		t.Fatalf("data is not pretty-printed:\n%s", m.Data)
	}
	var out bytes.Buffer
	if err := sh.WriteText(&out); err != nil {
		t.Fatal(err)
	}
	for key, value := range map[string]string{"feed": "acme", "reason": `feed: undeclared feed "acme"`, "type": "hrsync.worker.hired.v1", "source": "/feeds/acme"} {
		if !hasRow(out.String(), key, value) {
			t.Errorf("text lacks the row %s %s:\n%s", key, value, out.String())
		}
	}
	for _, want := range []string{
		"dead letter 1 (open)", "message (binary mode)", "CloudEvent attributes",
		`      "worker_id": "w1",`, "history\n  none",
		"next: after a fix, hrsync dead replay 1; or give it up: hrsync dead discard 1 --reason TEXT --by NAME",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, out.String())
		}
	}
	// The JSON form is the same record.
	js, err := json.Marshal(sh)
	if err != nil || !bytes.Contains(js, []byte(`"mode":"binary"`)) || !bytes.Contains(js, []byte(`"history":[]`)) {
		t.Fatalf("JSON = %s, %v", js, err)
	}
}

func TestShowStructured(t *testing.T) {
	t.Parallel()
	b := setup(t, "sqlite://"+filepath.Join(t.TempDir(), "hrsync.db"))
	db := b.open(t, "hr").Store()
	subject, headers, data := hire(t, "hr", "w2", events.Structured)
	id := deadLetter(t, db, "hr", subject, headers, data, "x")
	sh, err := deadletter.Show(t.Context(), db, id)
	if err != nil {
		t.Fatal(err)
	}
	m := sh.Message
	if m.Mode != "structured" || m.Attributes["type"] != "hrsync.worker.hired.v1" || m.Attributes["data"] != nil || len(m.Data) == 0 {
		t.Fatalf("message = %+v; want structured, the data apart from the attributes", m)
	}
	var d events.Data
	if err := json.Unmarshal(m.Data, &d); err != nil || d.WorkerID != "w2" {
		t.Fatalf("data = %s, %v", m.Data, err)
	}
}

// A hostile message: not UTF-8, control and bidi characters. Show decodes what
// it can, and the text form escapes whatever could steer a terminal.
func TestShowHostileMessage(t *testing.T) {
	t.Parallel()
	b := setup(t, "sqlite://"+filepath.Join(t.TempDir(), "hrsync.db"))
	db := b.open(t, "hr").Store()
	bin := deadLetter(t, db, "hr", "hrsync.events.hr.hired", []byte(`{"ce-id":["\u001b[31mred"],"ce-specversion":["1.0"]}`),
		[]byte{0xff, 0xfe, 0x1b, '[', '2', 'J'}, "data.email: \u202egro.elpmaxe@nna\u202c is not an email")
	sh, err := deadletter.Show(t.Context(), db, bin)
	if err != nil {
		t.Fatal(err)
	}
	if sh.Message.Mode != "binary" || sh.Message.Hex != "fffe1b5b324a" {
		t.Fatalf("message = %+v; want binary, the body in hex", sh.Message)
	}
	var out bytes.Buffer
	if err := sh.WriteText(&out); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	if strings.ContainsAny(text, "\x1b\u202e\u202c") {
		t.Fatalf("text output carries raw control or bidi characters:\n%q", text)
	}
	for _, want := range []string{`\u202egro.elpmaxe@nna\u202c`, `\u001b[31mred`, "data (hex)", "ff fe 1b 5b 32 4a"} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
	text2 := deadLetter(t, db, "hr", "hrsync.events.hr.hired", nil, []byte("worker=w1\n"), "not JSON")
	sh, err = deadletter.Show(t.Context(), db, text2)
	if err != nil || sh.Message.Mode != "" || sh.Message.Text != "worker=w1\n" || len(sh.Message.Notes) != 1 {
		t.Fatalf("text body: %+v, %v", sh.Message, err)
	}
	if _, err := deadletter.Show(t.Context(), db, 999); !errors.Is(err, connector.ErrNotFound) || !strings.Contains(err.Error(), "dead letter 999") {
		t.Fatalf("show of an unknown id: %v", err)
	}
}

// hasRow reports whether text has a line "key<spaces>value", as tabwriter aligns it.
func hasRow(text, key, value string) bool {
	for line := range strings.Lines(text) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), " ")
		if ok && k == key && strings.TrimSpace(v) == value {
			return true
		}
	}
	return false
}

func TestClean(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"plain text, ünïcode 日本": "plain text, ünïcode 日本",
		"a\x1b[0mb":              `a\u001b[0mb`,
		"zero\u200bwidth":        `zero\u200bwidth`,
		"bad \xff byte":          `bad \xff byte`,
		"keeps\nnewlines":        "keeps\nnewlines",
	} {
		if got := deadletter.Clean(in); got != want {
			t.Errorf("Clean(%q) = %q, want %q", in, got, want)
		}
	}
}
