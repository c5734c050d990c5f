package storetest

import (
	"reflect"
	"testing"

	"github.com/hrsync/hrsync/connector"
)

// mirrorTests check the account mirror (migration 0020, connector/mirror.go).
var mirrorTests = []subTest{
	{"MirrorRememberForget", testMirrorRememberForget},
	{"MirrorFromCompletions", testMirrorFromCompletions},
	{"MirrorForgetSeenBefore", testMirrorForgetSeenBefore},
}

func mirrorOf(t *testing.T, b *testBundle) connector.AccountMirror {
	t.Helper()
	m, ok := b.s.(connector.AccountMirror)
	if !ok {
		t.Fatalf("%T does not implement connector.AccountMirror", b.s)
	}
	return m
}

func mirrored(t *testing.T, b *testBundle, ids ...string) map[string]connector.Account {
	t.Helper()
	got, err := mirrorOf(t, b).MirroredAccounts(b.ctx, ids)
	if err != nil {
		t.Fatalf("MirroredAccounts: %v", err)
	}
	return got
}

// A copy comes back whole; an older sighting does not replace a newer one; a
// forgotten copy is gone; unknown ids are missing from the answer.
func testMirrorRememberForget(t *testing.T, b *testBundle) {
	m := mirrorOf(t, b)
	a := connector.Account{ID: "u-1", ExternalID: "hr:w1", UserName: "ann@example.com", Active: true, Version: `W/"3"`,
		Organization: "Sales", Profile: connector.Profile{Email: "ann@example.com", GivenName: "Ann", EmployeeNumber: "E1", Locale: "en-GB"}}
	if err := m.RememberAccounts(b.ctx, day(1), []connector.Account{a, {ID: "u-2", UserName: "bo@example.com"}}); err != nil {
		t.Fatalf("RememberAccounts: %v", err)
	}
	got := mirrored(t, b, "u-1", "u-2", "u-404")
	if !reflect.DeepEqual(got["u-1"], a) {
		t.Fatalf("u-1 = %+v, want %+v", got["u-1"], a)
	}
	if _, ok := got["u-404"]; ok || len(got) != 2 {
		t.Fatalf("got %d copies (%v), want u-1 and u-2 only", len(got), got)
	}
	older := a
	older.Active, older.Version = false, `W/"2"`
	if err := m.RememberAccounts(b.ctx, day(0), []connector.Account{older}); err != nil {
		t.Fatal(err)
	}
	if got := mirrored(t, b, "u-1")["u-1"]; !got.Active || got.Version != `W/"3"` {
		t.Fatalf("an older sighting replaced a newer one: %+v", got)
	}
	newer := a
	newer.Active, newer.Version = false, `W/"4"`
	if err := m.RememberAccounts(b.ctx, day(2), []connector.Account{newer}); err != nil {
		t.Fatal(err)
	}
	if got := mirrored(t, b, "u-1")["u-1"]; got.Active || got.Version != `W/"4"` {
		t.Fatalf("a newer sighting did not replace the copy: %+v", got)
	}
	if err := m.ForgetAccounts(b.ctx, []string{"u-1"}); err != nil {
		t.Fatal(err)
	}
	if got := mirrored(t, b, "u-1", "u-2"); len(got) != 1 || got["u-2"].ID != "u-2" {
		t.Fatalf("after forgetting u-1: %v", got)
	}
}

// A converge's mirror updates are committed with its outcome, in order: the
// last update of an account wins, and Gone forgets it.
func testMirrorFromCompletions(t *testing.T, b *testBundle) {
	w1, w2 := hr("w1"), hr("w2")
	b.record(t, fact(w1, "e1", connector.KindHired, 0), fact(w2, "e2", connector.KindHired, 0))
	if err := mirrorOf(t, b).RememberAccounts(b.ctx, day(0), []connector.Account{{ID: "u-9", UserName: "old@example.com"}}); err != nil {
		t.Fatal(err)
	}
	cs := b.claim(t, "c", b.now, 10)
	if len(cs) != 2 {
		t.Fatalf("claimed %d, want 2", len(cs))
	}
	seen := connector.Account{ID: "u-1", ExternalID: "hr:w1", UserName: "w1@example.com", Active: true}
	off := seen
	off.Active = false
	comps := []connector.Completion{
		{Claim: cs[0], Owner: "c", Mirror: []connector.MirrorUpdate{{Account: seen, At: day(1)}, {Account: off, At: day(1)}}},
		{Claim: cs[1], Owner: "c", Mirror: []connector.MirrorUpdate{{Account: connector.Account{ID: "u-9"}, Gone: true, At: day(1)}}},
	}
	if err := b.s.CompleteAll(b.ctx, comps); err != nil {
		t.Fatalf("CompleteAll: %v", err)
	}
	got := mirrored(t, b, "u-1", "u-9")
	if len(got) != 1 || !reflect.DeepEqual(got["u-1"], off) {
		t.Fatalf("mirror after the batch = %+v, want only u-1 inactive", got)
	}
}

// ForgetAccountsSeenBefore drops exactly the copies seen before the time.
func testMirrorForgetSeenBefore(t *testing.T, b *testBundle) {
	m := mirrorOf(t, b)
	if err := m.RememberAccounts(b.ctx, day(1), []connector.Account{{ID: "u-1"}, {ID: "u-2"}}); err != nil {
		t.Fatal(err)
	}
	if err := m.RememberAccounts(b.ctx, day(3), []connector.Account{{ID: "u-3"}}); err != nil {
		t.Fatal(err)
	}
	n, err := m.ForgetAccountsSeenBefore(b.ctx, day(3))
	if err != nil || n != 2 {
		t.Fatalf("ForgetAccountsSeenBefore = %d, %v; want 2", n, err)
	}
	if got := mirrored(t, b, "u-1", "u-2", "u-3"); len(got) != 1 || got["u-3"].ID != "u-3" {
		t.Fatalf("after forgetting those seen before day 3: %v", got)
	}
}
