package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
)

// SessionStore is what the console sessions suite exercises. *store.DB implements it.
type SessionStore interface {
	CreateConsoleSession(ctx context.Context, s store.ConsoleSession, max int) error
	GetConsoleSession(ctx context.Context, idHash string, now time.Time) (store.ConsoleSession, error)
	DeleteConsoleSession(ctx context.Context, idHash string) error
}

var _ SessionStore = (*store.DB)(nil)

// sessionTests check the console's sessions: kept until they expire or end,
// each with its user, role, feeds and token; bounded in number.
var sessionTests = []subTest{
	{"ConsoleSessions", testConsoleSessions},
	{"ConsoleSessionsBounded", testConsoleSessionsBounded},
}

func sessionStore(t *testing.T, b *testBundle) SessionStore {
	t.Helper()
	s, ok := b.s.(SessionStore)
	if !ok {
		t.Fatalf("%T does not implement storetest.SessionStore", b.s)
	}
	return s
}

func testConsoleSessions(t *testing.T, b *testBundle) {
	s := sessionStore(t, b)
	in := store.ConsoleSession{IDHash: "h1", User: "pat", Role: "approver", Feeds: []string{"partner-acme"}, CSRF: "tok",
		CreatedAt: b.now, ExpiresAt: b.now.Add(time.Hour)}
	if err := s.CreateConsoleSession(b.ctx, store.ConsoleSession{IDHash: "h0", User: "x", CreatedAt: b.now, ExpiresAt: b.now.Add(time.Hour)}, 0); err == nil {
		t.Fatal("a session without a CSRF token was stored")
	}
	if err := s.CreateConsoleSession(b.ctx, in, 0); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetConsoleSession(b.ctx, "h1", b.now.Add(time.Minute))
	if err != nil || got.User != "pat" || got.Role != "approver" || !slices.Equal(got.Feeds, in.Feeds) || got.CSRF != "tok" ||
		!got.ExpiresAt.Equal(in.ExpiresAt) {
		t.Fatalf("GetConsoleSession = %+v, %v; want %+v", got, err, in)
	}
	if _, err := s.GetConsoleSession(b.ctx, "h1", b.now.Add(time.Hour)); !errors.Is(err, connector.ErrNotFound) {
		t.Fatalf("an expired session: err = %v, want ErrNotFound", err)
	}
	if _, err := s.GetConsoleSession(b.ctx, "nope", b.now); !errors.Is(err, connector.ErrNotFound) {
		t.Fatalf("an unknown session: err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteConsoleSession(b.ctx, "h1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetConsoleSession(b.ctx, "h1", b.now); !errors.Is(err, connector.ErrNotFound) {
		t.Fatalf("an ended session: err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteConsoleSession(b.ctx, "h1"); err != nil {
		t.Fatalf("ending an ended session: %v", err)
	}
}

func testConsoleSessionsBounded(t *testing.T, b *testBundle) {
	s := sessionStore(t, b)
	const max = 10
	for i := range 25 {
		at := b.now.Add(time.Duration(i) * time.Second)
		if err := s.CreateConsoleSession(b.ctx, store.ConsoleSession{IDHash: fmt.Sprintf("h%02d", i), User: "a", Role: "viewer", CSRF: "t",
			CreatedAt: at, ExpiresAt: at.Add(time.Hour)}, max); err != nil {
			t.Fatal(err)
		}
	}
	live := 0
	for i := range 25 {
		if _, err := s.GetConsoleSession(b.ctx, fmt.Sprintf("h%02d", i), b.now.Add(time.Minute)); err == nil {
			live++
		}
	}
	if live > max || live == 0 {
		t.Fatalf("%d sessions kept, want at most %d", live, max)
	}
	if _, err := s.GetConsoleSession(b.ctx, "h24", b.now.Add(time.Minute)); err != nil {
		t.Fatalf("the newest session was dropped: %v", err)
	}
	// Expired sessions go at the next sign-in.
	later := b.now.Add(2 * time.Hour)
	if err := s.CreateConsoleSession(b.ctx, store.ConsoleSession{IDHash: "new", User: "b", Role: "viewer", CSRF: "t",
		CreatedAt: later, ExpiresAt: later.Add(time.Hour)}, max); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetConsoleSession(b.ctx, "h24", b.now.Add(time.Minute)); !errors.Is(err, connector.ErrNotFound) {
		t.Fatalf("an expired session outlived the next sign-in: %v", err)
	}
}
