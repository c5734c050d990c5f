package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store/pgtest"
)

// The database is never created or migrated by accident (issue #11): Open
// without Migrate refuses a missing database and a schema other than this
// binary's, and says why and what to do; only Migrate(true) creates and migrates.

func TestOpenMissingSQLiteFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, file := range []string{filepath.Join(dir, "typo.db"), filepath.Join(dir, "no-such-dir", "hrsync.db")} {
		url := "sqlite://" + file
		db, err := Open(t.Context(), url, nil)
		if err == nil {
			db.Close()
			t.Fatalf("Open(%s) succeeded on a missing file", url)
		}
		if !errors.Is(err, ErrNoDatabase) {
			t.Fatalf("Open(%s): %v; want ErrNoDatabase", url, err)
		}
		want := fmt.Sprintf("database file %s does not exist; create it with `hrsync migrate --db %s`", file, url)
		if err.Error() != want {
			t.Fatalf("Open(%s):\n got %s\nwant %s", url, err, want)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Fatalf("Open created %v in %s; want nothing", entries, dir)
	}
}

// TestOpenSQLiteReadWriteOnly checks that the DSN of a plain Open never lets
// SQLite create the file, even if it vanishes after the check.
func TestOpenSQLiteReadWriteOnly(t *testing.T) {
	t.Parallel()
	dsn, _, err := sqliteDSN("/x/h.db", false)
	if err != nil || !strings.Contains(dsn, "mode=rw") {
		t.Fatalf("dsn = %q, %v; want mode=rw", dsn, err)
	}
	if dsn, _, _ := sqliteDSN("/x/h.db", true); strings.Contains(dsn, "mode=") {
		t.Fatalf("migrating dsn = %q; want SQLite's default (create)", dsn)
	}
	if dsn, _, _ := sqliteDSN("/x/h.db?mode=ro", false); !strings.Contains(dsn, "mode=ro") || strings.Contains(dsn, "mode=rw") {
		t.Fatalf("dsn = %q; want the url's own mode kept", dsn)
	}
}

func TestOpenSchemaSQLite(t *testing.T) {
	t.Parallel()
	testOpenSchema(t, func(t *testing.T) (string, func()) {
		file := filepath.Join(t.TempDir(), "hrsync.db")
		// An empty file: exists, but holds no hrsync schema.
		makeEmpty := func() {
			if err := os.WriteFile(file, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return "sqlite://" + file, makeEmpty
	})
}

func TestOpenSchemaPostgres(t *testing.T) {
	t.Parallel()
	// A fresh schema is a PostgreSQL database with no hrsync schema in it.
	testOpenSchema(t, func(t *testing.T) (string, func()) { return pgtest.URL(t), func() {} })
}

// testOpenSchema runs the cases on new databases from newDB, which returns a
// url and a function that makes the database exist without an hrsync schema.
func testOpenSchema(t *testing.T, newDB func(t *testing.T) (url string, makeEmpty func())) {
	want := SchemaVersion()
	if ms, err := (&DB{backend: SQLite}).migrations(); err != nil || want != ms[len(ms)-1].version || want < 3 {
		t.Fatalf("SchemaVersion = %d (%v); want the highest embedded migration", want, err)
	}
	openRaw := func(t *testing.T, url string, o openOptions) *DB {
		t.Helper()
		db, err := open(t.Context(), url, nil, o)
		if err != nil {
			t.Fatalf("open(%s, %+v): %v", url, o, err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	refused := func(t *testing.T, url string, kind error, msg string, opts ...Option) {
		t.Helper()
		db, err := Open(t.Context(), url, nil, opts...)
		if err == nil {
			db.Close()
			t.Fatalf("Open succeeded; want %v", kind)
		}
		if !errors.Is(err, kind) || !strings.Contains(err.Error(), msg) {
			t.Fatalf("Open: %v\nwant %v, with %q", err, kind, msg)
		}
		var se *SchemaError
		if !errors.As(err, &se) || se.Want != want {
			t.Fatalf("Open: %#v; want a *SchemaError with Want %d", err, want)
		}
	}
	applied := func(t *testing.T, db *DB) []int {
		t.Helper()
		vs, err := db.AppliedMigrations(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return vs
	}

	t.Run("NoHrsyncSchema", func(t *testing.T) {
		url, makeEmpty := newDB(t)
		makeEmpty()
		refused(t, url, ErrNoDatabase, "has no hrsync schema (no schema_migrations table); create it with `hrsync migrate --db ")
		// ... and did not make one.
		raw := openRaw(t, url, openOptions{migrate: false, migrateTo: -1})
		var n int
		if err := raw.x.GetContext(t.Context(), &n, `SELECT COUNT(*) FROM schema_migrations`); err == nil {
			t.Fatalf("schema_migrations exists after a refused Open (%d rows)", n)
		}
	})

	t.Run("Older", func(t *testing.T) {
		url, _ := newDB(t)
		// The migration before the newest: versions may skip a number (one
		// reserved for a branch that lands later).
		ms, err := (&DB{backend: SQLite}).migrations()
		if err != nil || len(ms) < 2 {
			t.Fatalf("migrations %v, %v", ms, err)
		}
		prev := ms[len(ms)-2].version
		old := openRaw(t, url, openOptions{migrate: true, migrateTo: prev})
		if vs := applied(t, old); len(vs) == 0 || vs[len(vs)-1] != prev {
			t.Fatalf("setup: applied %v, want up to %d", vs, prev)
		}
		refused(t, url, ErrSchemaOld, fmt.Sprintf("schema version %d, this hrsync needs %d: run `hrsync migrate --db ", prev, want))
		refused(t, url, ErrSchemaOld, "(a daemon `hrsync run` migrates at start)")
		if vs := applied(t, old); vs[len(vs)-1] != prev {
			t.Fatalf("a refused Open migrated: applied %v", vs)
		}
		// Migrate(true) brings it up to date; then a plain Open works and writes.
		db, err := Open(t.Context(), url, nil, Migrate(true))
		if err != nil {
			t.Fatalf("Open with Migrate: %v", err)
		}
		db.Close()
		db, err = Open(t.Context(), url, nil)
		if err != nil {
			t.Fatalf("Open after migrate: %v", err)
		}
		defer db.Close()
		if _, err := db.RecordFacts(t.Context(), []connector.Fact{openTestFact()}); err != nil {
			t.Fatalf("RecordFacts through a plain Open: %v", err)
		}
	})

	t.Run("GapInMigrations", func(t *testing.T) {
		url, _ := newDB(t)
		db := openRaw(t, url, openOptions{migrate: true})
		if _, err := db.x.ExecContext(t.Context(), db.q(`DELETE FROM schema_migrations WHERE version = ?`), want-2); err != nil {
			t.Fatal(err)
		}
		refused(t, url, ErrSchemaOld, fmt.Sprintf("schema version %d lacks migrations [%d]", want, want-2))
	})

	t.Run("Newer", func(t *testing.T) {
		url, _ := newDB(t)
		db := openRaw(t, url, openOptions{migrate: true})
		if _, err := db.x.ExecContext(t.Context(), db.q(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`), want+1, db.ts(db.now())); err != nil {
			t.Fatal(err)
		}
		msg := fmt.Sprintf("schema version %d is newer than this hrsync (%d): use a newer hrsync", want+1, want)
		refused(t, url, ErrSchemaNew, msg)
		// Migrating cannot make an older binary fit a newer schema either.
		refused(t, url, ErrSchemaNew, msg, Migrate(true))
	})

	t.Run("MigrateCreates", func(t *testing.T) {
		url, _ := newDB(t)
		db, err := Open(t.Context(), url, nil, Migrate(true))
		if err != nil {
			t.Fatal(err)
		}
		if vs := applied(t, db); len(vs) == 0 || vs[len(vs)-1] != want {
			t.Fatalf("applied %v, want up to %d", vs, want)
		}
		db.Close()
		db, err = Open(t.Context(), url, nil)
		if err != nil {
			t.Fatalf("plain Open of a current schema: %v", err)
		}
		db.Close()
	})
}

func openTestFact() connector.Fact {
	at := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	return connector.Fact{Feed: "hr", WorkerID: "w1", Source: "/feeds/hr", ID: "e1", Kind: connector.KindHired,
		Effective: at, Time: at, Profile: connector.Profile{Email: "w1@example.com"}}
}
