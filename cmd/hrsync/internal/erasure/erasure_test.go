package erasure

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/store"
)

type testBundle struct {
	db  *store.DB
	sb  *sandbox.LMS
	url string
}

// setup opens a SQLite store, given key if not empty, and the sandbox LMS.
func setup(t *testing.T, key string) *testBundle {
	t.Helper()
	url := "sqlite://" + filepath.Join(t.TempDir(), "h.db")
	b := &testBundle{db: openStore(t, url), sb: sandbox.New(), url: url}
	if key != "" {
		if err := b.db.UseErasureKey(t.Context(), []byte(key)); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func openStore(t *testing.T, url string) *store.DB {
	t.Helper()
	db, err := store.Open(t.Context(), url, slog.New(slog.DiscardHandler), store.Migrate(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// hire records a hire of w and gives it an LMS account, found by its externalId.
func (b *testBundle) hire(t *testing.T, w connector.WorkerKey, email string) connector.Account {
	t.Helper()
	t0 := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	prof := connector.Profile{Email: email, GivenName: "Ines", FamilyName: "Marchetti", EmployeeNumber: "EMP-55021"}
	if _, err := b.db.RecordFacts(t.Context(), []connector.Fact{{Feed: w.Feed, WorkerID: w.WorkerID, Source: "/feeds/" + w.Feed, ID: "h-" + w.WorkerID,
		Kind: connector.KindHired, Effective: t0, Time: t0, Profile: prof}}); err != nil {
		t.Fatal(err)
	}
	a, err := b.sb.CreateAccount(t.Context(), connector.Account{ExternalID: w.Feed + ":" + w.WorkerID, UserName: email, Active: true, Profile: prof})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestRetentionKeep(t *testing.T) {
	t.Parallel()
	r := Retention{"hr": false, "acme": true}
	if r.Keep("hr") || !r.Keep("acme") || !r.Keep("other") {
		t.Fatalf("Keep: hr %v acme %v other %v; want false true true (the default keeps)", r.Keep("hr"), r.Keep("acme"), r.Keep("other"))
	}
}

func TestOldKeys(t *testing.T) {
	t.Parallel()
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == KeysOldEnv {
				return v
			}
			return ""
		}
	}
	if ks, err := OldKeys(env("")); ks != nil || err != nil {
		t.Fatalf("none: %v, %v", ks, err)
	}
	if ks, err := OldKeys(env("a,b")); err != nil || len(ks) != 2 || string(ks[1]) != "b" {
		t.Fatalf("two: %q, %v", ks, err)
	}
	if _, err := OldKeys(env("a,,b")); err == nil || !strings.Contains(err.Error(), "key 2") {
		t.Fatalf("an empty key: %v", err)
	}
	held, err := HeldKeys(func(k string) string { return map[string]string{KeyEnv: "new", KeysOldEnv: "old"}[k] })
	if err != nil || held[connector.ErasureKeyCheck([]byte("new"))] != KeyEnv || held[connector.ErasureKeyCheck([]byte("old"))] != KeysOldEnv {
		t.Fatalf("HeldKeys = %v, %v", held, err)
	}
}

// TestErase: without a key nothing happens; a dry run changes nothing; the
// erasure anonymises the account, empties the store of the person and says so.
func TestErase(t *testing.T) {
	t.Parallel()
	const key = "s3cret"
	b := setup(t, key)
	ctx := t.Context()
	w := connector.WorkerKey{Feed: "hr", WorkerID: "im-100"}
	acct := b.hire(t, w, "ines.marchetti@example.com")
	var out bytes.Buffer
	r := Request{Worker: w, Reason: "DSR-1", By: "dpo", Keep: true, Verify: true}
	if err := Erase(ctx, b.db, b.sb, r, &out); err == nil || !strings.Contains(err.Error(), KeyEnv) {
		t.Fatalf("without the key: %v", err)
	}
	r.Key, r.DryRun = []byte(key), true
	if err := Erase(ctx, b.db, b.sb, r, &out); err != nil || !strings.Contains(out.String(), "anonymise and deactivate LMS account "+acct.ID) {
		t.Fatalf("dry run: %v\n%s", err, out.String())
	}
	if facts, _ := b.db.Facts(ctx, w); len(facts) != 1 {
		t.Fatalf("the dry run changed the store: %v", facts)
	}
	out.Reset()
	r.DryRun = false
	if err := Erase(ctx, b.db, b.sb, r, &out); err != nil {
		t.Fatalf("erase: %v\n%s", err, out.String())
	}
	pseudo := connector.ErasedID(connector.ErasureHash([]byte(key), w))
	for _, want := range []string{"LMS account " + acct.ID + ": anonymised and deactivated; learning records", "removed 1 facts of 1 workers", pseudo,
		"verify: none of the person's identifiers is left in the store"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	got, err := b.sb.GetAccount(ctx, acct.ID)
	if err != nil || got.Active || got.ExternalID != pseudo || strings.Contains(got.UserName, "ines") {
		t.Fatalf("account after the erasure: %+v, %v", got, err)
	}
	// Again: it finds the anonymised account by its pseudonym, and is harmless.
	out.Reset()
	if err := Erase(ctx, b.db, b.sb, r, &out); err != nil || !strings.Contains(out.String(), "LMS account "+acct.ID) {
		t.Fatalf("erase again: %v\n%s", err, out.String())
	}
}

// TestRequested: the daemon's erasure logs the pseudonym, never the worker id.
func TestRequested(t *testing.T) {
	t.Parallel()
	const key = "k"
	b := setup(t, key)
	w := connector.WorkerKey{Feed: "hr", WorkerID: "gl-4711"}
	b.hire(t, w, "greta@example.com")
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	r := connector.ErasureRequest{Worker: w, FactID: "/feeds/hr#er-2", Reason: "DSR-9", RequestedBy: "privacy-office"}
	if err := Requested(t.Context(), b.db, b.sb, nil, true, r, log); err == nil {
		t.Fatal("erased without the key")
	}
	if err := Requested(t.Context(), b.db, b.sb, []byte(key), true, r, log); err != nil {
		t.Fatal(err)
	}
	if s := logs.String(); !strings.Contains(s, connector.ErasedID(connector.ErasureHash([]byte(key), w))) || strings.Contains(s, "gl-4711") || strings.Contains(s, "greta") {
		t.Fatalf("log:\n%s", s)
	}
	rows, err := b.db.ListAudit(t.Context(), store.AuditFilter{Feed: "hr", Action: connector.ActionAnonymise})
	if err != nil || len(rows) != 1 || !strings.Contains(rows[0].Detail, "privacy-office (event /feeds/hr#er-2)") {
		t.Fatalf("audit = %+v, %v", rows, err)
	}
}

// TestForgetKey: the list names the missing key; forgetting it is refused without
// --by, --reason or the confirmation, and for a key that is set; confirmed, the
// tombstones no longer need it.
func TestForgetKey(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	key := []byte("key-K")
	fp := connector.ErasureKeyCheck(key)
	b := setup(t, string(key))
	if _, err := b.db.Erase(ctx, store.Erasure{Worker: connector.WorkerKey{Feed: "hr", WorkerID: "gone-1"}, Reason: "DSR-1", By: "dpo"}); err != nil {
		t.Fatal(err)
	}
	db := openStore(t, b.url)
	keys, err := db.ErasureKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out, warn bytes.Buffer
	if err := WriteKeys(&out, keys, map[string]string{}); err != nil || !strings.Contains(out.String(), fp) || !strings.Contains(out.String(), "NOT SET") {
		t.Fatalf("list: %v\n%s", err, out.String())
	}
	for _, bad := range []struct {
		held map[string]string
		f    Forget
		want string
	}{
		{nil, Forget{Fingerprint: fp, Reason: "INC-77"}, "--by is required"},
		{nil, Forget{Fingerprint: fp, By: "dpo"}, "--reason is required"},
		{nil, Forget{Fingerprint: fp, By: "dpo", Reason: "INC-77"}, "not confirmed"},
		{map[string]string{fp: KeysOldEnv}, Forget{Fingerprint: fp, By: "dpo", Reason: "INC-77", Confirm: fp}, "it is not lost"},
		{nil, Forget{Fingerprint: "0000000000000000", By: "dpo", Reason: "x", Confirm: "0000000000000000"}, "no tombstone still needs that key"},
	} {
		if _, err := ForgetKey(ctx, db, keys, bad.held, bad.f, &warn); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Fatalf("ForgetKey(%+v) = %v; want %q", bad.f, err, bad.want)
		}
	}
	n, err := ForgetKey(ctx, db, keys, nil, Forget{Fingerprint: fp, Confirm: fp, By: "dpo", Reason: "INC-77"}, &warn)
	if err != nil || n != 1 || !strings.Contains(warn.String(), "WARNING") {
		t.Fatalf("confirmed: %d, %v\n%s", n, err, warn.String())
	}
	if err := openStore(t, b.url).UseErasureKeys(ctx, nil); err != nil {
		t.Fatalf("a store without the lost key after ForgetKey: %v", err)
	}
}
