package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
)

// Why Open refuses a database it was not asked to migrate (docs/store.md). A
// *SchemaError matches one of these with errors.Is.
var (
	// ErrNoDatabase: the SQLite file does not exist, or the database has no
	// hrsync schema (no schema_migrations table; on PostgreSQL, in the current
	// schema).
	ErrNoDatabase = errors.New("no hrsync database")
	// ErrSchemaOld: the schema lacks migrations this binary has.
	ErrSchemaOld = errors.New("database schema is older than this hrsync")
	// ErrSchemaNew: the schema has migrations this binary does not know.
	ErrSchemaNew = errors.New("database schema is newer than this hrsync")
)

// SchemaError is Open's refusal of a database: missing, without an hrsync schema,
// or of another schema version than this binary's. Its message names the reason
// and the fix; errors.Is matches ErrNoDatabase, ErrSchemaOld or ErrSchemaNew.
type SchemaError struct {
	Kind error  // ErrNoDatabase, ErrSchemaOld or ErrSchemaNew
	URL  string // the database url, its password hidden (RedactURL)
	File string // a SQLite database's file, when it does not exist
	// Have is the database's schema version (its highest migration; 0: none),
	// Want this binary's.
	Have, Want int
	// Missing lists the migrations this binary has and the database lacks.
	Missing []int
}

func (e *SchemaError) Error() string {
	migrate := fmt.Sprintf("`hrsync migrate --db %s`", e.URL)
	switch {
	case e.Kind == ErrNoDatabase && e.File != "":
		return fmt.Sprintf("database file %s does not exist; create it with %s", e.File, migrate)
	case e.Kind == ErrNoDatabase:
		return fmt.Sprintf("database %s has no hrsync schema (no schema_migrations table); create it with %s", e.URL, migrate)
	case e.Kind == ErrSchemaNew:
		return fmt.Sprintf("database %s: schema version %d is newer than this hrsync (%d): use a newer hrsync", e.URL, e.Have, e.Want)
	case e.Have >= e.Want:
		// Every version up to Have, but one in between is missing.
		return fmt.Sprintf("database %s: schema version %d lacks migrations %v that this hrsync needs: run %s (a daemon `hrsync run` migrates at start)",
			e.URL, e.Have, e.Missing, migrate)
	default:
		return fmt.Sprintf("database %s: schema version %d, this hrsync needs %d: run %s (a daemon `hrsync run` migrates at start)",
			e.URL, e.Have, e.Want, migrate)
	}
}

// Is matches e's Kind.
func (e *SchemaError) Is(target error) bool { return target == e.Kind }

// SchemaVersion returns this binary's schema version: its highest embedded
// migration. Both backends have every version.
func SchemaVersion() int {
	ms, err := (&DB{backend: SQLite}).migrations()
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].version
}

// sqliteFileExists returns a *SchemaError if the SQLite database file does not
// exist: Open without Migrate must not create it.
func sqliteFileExists(file, url string) error {
	_, err := os.Stat(file)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return &SchemaError{Kind: ErrNoDatabase, URL: redact(url), File: file, Want: SchemaVersion()}
	default:
		return fmt.Errorf("store: database file %s: %w", file, err)
	}
}

// checkSchema compares the database's applied migrations with this binary's. A
// schema with migrations this binary does not know is refused always (an older
// hrsync must not write to it); one that lacks some, or has none, is refused
// unless migrated is set (Open just applied them).
func (db *DB) checkSchema(ctx context.Context, url string, migrated bool) error {
	ms, err := db.migrations()
	if err != nil {
		return err
	}
	want := ms[len(ms)-1].version
	fail := func(kind error, have int, missing []int) error {
		return &SchemaError{Kind: kind, URL: redact(url), Have: have, Want: want, Missing: missing}
	}
	exists := `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`
	if db.backend == Postgres {
		// Where migrate creates it: the first schema of the search_path.
		exists = `SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'schema_migrations'`
	}
	var n int
	if err := db.x.GetContext(ctx, &n, exists); err != nil {
		return fmt.Errorf("store: read the schema version: %w", err)
	}
	if n == 0 {
		return fail(ErrNoDatabase, 0, nil)
	}
	applied, err := db.AppliedMigrations(ctx)
	if err != nil {
		return err
	}
	have := 0
	if len(applied) > 0 {
		have = applied[len(applied)-1]
	}
	if have > want {
		return fail(ErrSchemaNew, have, nil)
	}
	if migrated {
		return nil
	}
	var missing []int
	for _, m := range ms {
		if !slices.Contains(applied, m.version) {
			missing = append(missing, m.version)
		}
	}
	switch {
	case have == 0:
		return fail(ErrNoDatabase, 0, nil)
	case len(missing) > 0:
		return fail(ErrSchemaOld, have, missing)
	}
	return nil
}
