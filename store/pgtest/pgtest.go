// Package pgtest gives each test its own PostgreSQL schema.
//
// Tests call URL(t) and open whatever they need on the returned URL: every
// connection made with it works in a fresh, empty schema that is dropped when the
// test ends. The server comes from TEST_DATABASE_URL, or the local default
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable.
//
// When the server cannot be reached, the test is skipped with a loud message;
// with HRSYNC_REQUIRE_POSTGRES=1 (as in CI) it fails instead.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	_ "github.com/lib/pq" // the "postgres" driver
)

// DefaultURL is the server used when TEST_DATABASE_URL is not set.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// ServerURL returns TEST_DATABASE_URL, or DefaultURL.
func ServerURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// URL creates a fresh schema hrsync_t_<random hex> on the test server, drops it
// (CASCADE) when t ends, and returns a postgres:// URL whose connections all use
// that schema (search_path, passed by lib/pq as a run-time parameter).
//
// If the server is unreachable, URL skips t, or fails it when
// HRSYNC_REQUIRE_POSTGRES=1.
func URL(t testing.TB) string {
	t.Helper()
	base := ServerURL()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("pgtest: TEST_DATABASE_URL %q: %v", base, err)
	}
	shown := u.Redacted()

	db, err := sql.Open("postgres", base)
	if err != nil {
		t.Fatalf("pgtest: open %s: %v", shown, err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		if os.Getenv("HRSYNC_REQUIRE_POSTGRES") == "1" {
			t.Fatalf("pgtest: PostgreSQL unreachable at %s: %v (HRSYNC_REQUIRE_POSTGRES=1, so this is a failure)", shown, err)
		}
		t.Skipf("SKIPPING: PostgreSQL unreachable at %s: %v; set TEST_DATABASE_URL or start postgres (HRSYNC_REQUIRE_POSTGRES=1 makes this fail)", shown, err)
	}

	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	schema := "hrsync_t_" + hex.EncodeToString(b[:])
	if _, err := db.ExecContext(ctx, `CREATE SCHEMA `+schema); err != nil {
		t.Fatalf("pgtest: create schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("postgres", base)
		if err != nil {
			t.Errorf("pgtest: drop schema %s: %v", schema, err)
			return
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, `DROP SCHEMA IF EXISTS `+schema+` CASCADE`); err != nil {
			t.Errorf("pgtest: drop schema %s: %v", schema, err)
		}
	})

	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
