package store

import (
	"strings"
	"testing"
	"time"
)

// TestSQLitePragmas checks that every connection gets the pragmas hrsync relies on.
func TestSQLitePragmas(t *testing.T) {
	t.Parallel()
	db, err := Open(t.Context(), "sqlite://"+t.TempDir()+"/p.db", nil, Migrate(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for pragma, want := range map[string]string{
		"journal_mode": "wal",
		"busy_timeout": "10000",
		"foreign_keys": "1",
		"synchronous":  "1", // NORMAL
	} {
		var got string
		if err := db.x.GetContext(t.Context(), &got, "PRAGMA "+pragma); err != nil {
			t.Fatal(err)
		}
		if !strings.EqualFold(got, want) {
			t.Errorf("PRAGMA %s = %q, want %q", pragma, got, want)
		}
	}
}

func TestSQLiteRelativePath(t *testing.T) {
	t.Chdir(t.TempDir())
	db, err := Open(t.Context(), "sqlite://./rel.db", nil, Migrate(true))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Counts(t.Context()); err != nil {
		t.Fatal(err)
	}
	dsn, _, err := sqliteDSN("./rel.db?_pragma=cache_size(-2000)", true)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(dsn, "file:./rel.db?") || !strings.Contains(dsn, "cache_size") || !strings.Contains(dsn, "_txlock=immediate") {
		t.Fatalf("dsn = %q", dsn)
	}
}

func TestInstantScan(t *testing.T) {
	t.Parallel()
	want := time.Date(2026, 3, 2, 9, 0, 0, 123456000, time.UTC)
	for _, v := range []any{want.UnixMicro(), want.In(time.FixedZone("x", 3600)), []byte("2026-03-02T09:00:00.123456Z"), "1772442000123456"} {
		var i instant
		if err := i.Scan(v); err != nil {
			t.Fatalf("Scan(%T): %v", v, err)
		}
		if !i.Valid || !i.T.Equal(want) || i.T.Location() != time.UTC {
			t.Errorf("Scan(%T %v) = %v, want %v UTC", v, v, i, want)
		}
	}
	var i instant
	if err := i.Scan(nil); err != nil || i.Valid || i.ptr() != nil {
		t.Fatalf("Scan(nil) = %v, %v", i, err)
	}
}
