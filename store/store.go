// Package store keeps HR facts and convergence state in PostgreSQL (production) or
// SQLite (the embedded default), through one set of sqlx queries.
//
// Open picks the backend from the URL scheme and applies the embedded migrations.
// *DB implements connector.Store and the other store ports of package connector
// (ConvergerStore, ReconcileStore, JobStore, ...), plus the methods the events
// package and the CLI need (RecordFacts, dead letters, reviews, audit). The
// conformance suite store/storetest runs against both backends.
//
// Instants are stored in UTC with microsecond precision: TIMESTAMPTZ on PostgreSQL,
// INTEGER unix microseconds on SQLite, so that comparisons such as due_at <= ? are
// numeric there. The helpers ts, tsOrNull and instant hide the difference.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

func init() {
	// modernc registers "sqlite", which sqlx does not know; it takes ? placeholders.
	sqlx.BindDriver("sqlite", sqlx.QUESTION)
}

// Backend names, as returned by (*DB).Backend.
const (
	Postgres = "postgres"
	SQLite   = "sqlite"
)

//go:embed migrations/*.sql
var migrationsFS embed.FS

// DB is a store on PostgreSQL or SQLite. It is safe for concurrent use.
type DB struct {
	x       *sqlx.DB
	backend string
	log     *slog.Logger
	// erasure is the GDPR erasure key, if UseErasureKey set one (erase.go).
	erasure erasureState

	// Now is the store clock, used for recorded_at stamps and for "due now".
	// Default time.Now. Set it before first use; it is not synchronised.
	Now func() time.Time

	// DeadLetterMaxBody is how many bytes of a dead letter's body (and of its
	// headers) are kept; zero or less means DefaultDeadLetterMaxBody. Set it
	// before first use, like Now.
	DeadLetterMaxBody int
}

// *DB implements every store port that package connector declares: each use
// case's (ConvergerStore, ReconcileStore, JobStore, HoldStore, CleanupStore)
// and the pieces they are built from.
var (
	_ connector.Store          = (*DB)(nil)
	_ connector.ConvergerStore = (*DB)(nil)
	_ connector.ReconcileStore = (*DB)(nil)
	_ connector.JobStore       = (*DB)(nil)
	_ connector.HoldStore      = (*DB)(nil)
	_ connector.CleanupStore   = (*DB)(nil)

	_ connector.Claimer             = (*DB)(nil)
	_ connector.HistoryLoader       = (*DB)(nil)
	_ connector.LinkReader          = (*DB)(nil)
	_ connector.LinkedHistoryReader = (*DB)(nil)
	_ connector.StateActionReader   = (*DB)(nil)
	_ connector.AuditIntents        = (*DB)(nil)
)

// Open connects to the database at url. By default it only opens a database that
// exists and whose schema is exactly this binary's: it never creates a SQLite
// file (it opens it with mode=rw) nor applies a migration, and it refuses a
// missing database, one without an hrsync schema, and a schema older or newer
// than this binary's, with a *SchemaError that says why and what to do. With
// Migrate(true) it creates the database if needed and applies the pending
// migrations (hrsync run and hrsync migrate, the demo, the bench and tests); it
// still refuses a schema newer than this binary's. See docs/store.md.
//
// Accepted URLs:
//
//	postgres://user@host:5432/db?sslmode=disable   (also postgresql://; passed to lib/pq as is)
//	sqlite:///absolute/path/hrsync.db
//	sqlite://./relative/hrsync.db
//
// A nil log discards log output.
func Open(ctx context.Context, url string, log *slog.Logger, opts ...Option) (*DB, error) {
	var o openOptions
	for _, opt := range opts {
		opt(&o)
	}
	return open(ctx, url, log, o)
}

// Option changes what Open does.
type Option func(*openOptions)

// openOptions are what the Options set. The zero value is the safe one: open an
// existing database of this binary's schema, create and migrate nothing.
type openOptions struct {
	migrate bool
	// migrateTo stops the migrations after this version (0: all); tests use it to
	// make an older schema.
	migrateTo int
}

// Migrate says whether Open may create the database and apply pending
// migrations. Only the commands that own the schema pass Migrate(true): hrsync
// run (unless --migrate=false) and hrsync migrate, and the demo and the bench,
// which make their own database.
func Migrate(on bool) Option { return func(o *openOptions) { o.migrate = on } }

func open(ctx context.Context, url string, log *slog.Logger, o openOptions) (*DB, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	scheme, rest, ok := strings.Cut(url, "://")
	if !ok {
		return nil, fmt.Errorf("store: database url %q has no scheme; want postgres://, postgresql:// or sqlite://", redact(url))
	}
	db := &DB{log: log, Now: time.Now}
	var err error
	switch strings.ToLower(scheme) {
	case "postgres", "postgresql":
		db.backend = Postgres
		db.x, err = sqlx.Open("postgres", url)
		if err == nil {
			db.x.SetMaxOpenConns(16)
			db.x.SetMaxIdleConns(8)
			db.x.SetConnMaxIdleTime(5 * time.Minute)
		}
	case "sqlite":
		db.backend = SQLite
		var dsn, file string
		dsn, file, err = sqliteDSN(rest, o.migrate)
		if err == nil && !o.migrate {
			err = sqliteFileExists(file, url)
			if err != nil {
				return nil, err
			}
		}
		if err == nil {
			db.x, err = sqlx.Open("sqlite", dsn)
		}
		if err == nil {
			// One connection: writers in this process queue in database/sql
			// instead of failing with SQLITE_BUSY. Another process on the same
			// file is covered by busy_timeout and BEGIN IMMEDIATE.
			db.x.SetMaxOpenConns(1)
			db.x.SetMaxIdleConns(1)
			db.x.SetConnMaxLifetime(0)
			db.x.SetConnMaxIdleTime(0)
		}
	default:
		return nil, fmt.Errorf("store: unknown database url scheme %q; want postgres://, postgresql:// or sqlite://", scheme)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", db.backend, err)
	}
	if err := db.ping(ctx); err != nil {
		db.x.Close()
		return nil, fmt.Errorf("store: connect to %s at %s: %w", db.backend, redact(url), err)
	}
	if o.migrate {
		err = db.migrate(ctx, o.migrateTo)
	}
	if err == nil && o.migrateTo == 0 {
		err = db.checkSchema(ctx, url, o.migrate)
	}
	if err != nil {
		db.x.Close()
		return nil, err
	}
	return db, nil
}

// ping connects. Two processes opening a new SQLite file at once can both try to
// switch it to WAL, and SQLite answers one of them SQLITE_BUSY at once, without
// waiting for busy_timeout; that one tries again, a bounded number of times.
func (db *DB) ping(ctx context.Context) error {
	err := db.x.PingContext(ctx)
	for try := 1; err != nil && db.backend == SQLite && sqliteBusy(err) && try <= 50; try++ {
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(time.Duration(try) * 20 * time.Millisecond):
		}
		err = db.x.PingContext(ctx)
	}
	return err
}

// sqliteBusy reports whether err is SQLite's "database is locked" (SQLITE_BUSY).
func sqliteBusy(err error) bool {
	return strings.Contains(err.Error(), "SQLITE_BUSY") || strings.Contains(err.Error(), "database is locked")
}

// sqliteDSN turns the part of a sqlite:// url after the scheme into a modernc DSN
// with the pragmas hrsync relies on, and returns the file's path too. Query
// parameters of the url are kept. Unless create is set (and the url sets no mode
// of its own), the file is opened with mode=rw: SQLite then never creates it.
func sqliteDSN(rest string, create bool) (dsn, file string, err error) {
	p, query, _ := strings.Cut(rest, "?")
	if p == "" {
		return "", "", fmt.Errorf("sqlite url has no path; want sqlite:///abs/path.db or sqlite://./rel.db")
	}
	q := url.Values{}
	if query != "" {
		if q, err = url.ParseQuery(query); err != nil {
			return "", "", fmt.Errorf("sqlite url query: %w", err)
		}
	}
	if !create && !q.Has("mode") {
		q.Set("mode", "rw")
	}
	// busy_timeout: another process holding the write lock makes us wait, not fail.
	// WAL: readers do not block the writer. foreign_keys: off by default in SQLite.
	// synchronous=NORMAL is durable enough in WAL mode and much faster than FULL.
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)")
	// Every transaction takes the write lock at BEGIN, so read-then-write
	// transactions never fail to upgrade their lock (SQLITE_BUSY mid-transaction).
	q.Set("_txlock", "immediate")
	return "file:" + p + "?" + q.Encode(), p, nil
}

// redact is RedactURL, for error messages.
func redact(s string) string { return RedactURL(s) }

// RedactURL returns the database url s fit for logs and error messages: its
// password, in the userinfo or as a password or sslpassword parameter (lib/pq
// takes both), is replaced by "xxxxx". A url that does not parse, or has no
// "//", is not shown at all, since where its password is cannot be told.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" { // "user:secret@host" parses as scheme "user"
		return "(unparseable database url)"
	}
	if q := u.Query(); u.RawQuery != "" {
		hidden := false
		for k := range q {
			if strings.EqualFold(k, "password") || strings.EqualFold(k, "sslpassword") {
				q.Set(k, "xxxxx")
				hidden = true
			}
		}
		if hidden {
			u.RawQuery = q.Encode()
		}
	}
	return u.Redacted()
}

// Close closes the database.
func (db *DB) Close() error { return db.x.Close() }

// Backend returns "postgres" or "sqlite".
func (db *DB) Backend() string { return db.backend }

// now returns the store clock.
func (db *DB) now() time.Time {
	if db.Now == nil {
		return time.Now()
	}
	return db.Now()
}

// ts converts an instant to the column representation of the backend.
func (db *DB) ts(t time.Time) any {
	t = t.UTC().Truncate(time.Microsecond)
	if db.backend == SQLite {
		return t.UnixMicro()
	}
	return t
}

// tsOrNull is ts, with the zero time as NULL.
func (db *DB) tsOrNull(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return db.ts(t)
}

// instant scans an instant column of either backend: time.Time (TIMESTAMPTZ) or
// int64 unix microseconds (SQLite), or NULL (Valid false).
type instant struct {
	T     time.Time
	Valid bool
}

func (i *instant) Scan(v any) error {
	switch v := v.(type) {
	case nil:
		*i = instant{}
	case time.Time:
		*i = instant{T: v.UTC(), Valid: true}
	case int64:
		*i = instant{T: time.UnixMicro(v).UTC(), Valid: true}
	case []byte:
		return i.parse(string(v))
	case string:
		return i.parse(v)
	default:
		return fmt.Errorf("store: cannot scan %T into an instant", v)
	}
	return nil
}

func (i *instant) parse(s string) error {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		*i = instant{T: time.UnixMicro(n).UTC(), Valid: true}
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("store: cannot scan %q into an instant", s)
	}
	*i = instant{T: t.UTC(), Valid: true}
	return nil
}

// ptr returns the instant as a *time.Time, nil when NULL.
func (i instant) ptr() *time.Time {
	if !i.Valid {
		return nil
	}
	t := i.T
	return &t
}

// q rebinds a ?-placeholder query for the backend.
func (db *DB) q(query string) string { return db.x.Rebind(query) }

// inTx runs fn in one transaction. On PostgreSQL a deadlock or serialization
// failure (possible when concurrent batches touch the same workers) is retried a
// few times; fn must therefore be safe to run again.
func (db *DB) inTx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	const attempts = 4
	var err error
	for i := range attempts {
		err = db.tryTx(ctx, fn)
		if err == nil || !retryable(err) || i == attempts-1 {
			break
		}
		db.log.DebugContext(ctx, "store: retrying transaction", "attempt", i+1, "err", err)
	}
	return err
}

func (db *DB) tryTx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	tx, err := db.x.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// retryable reports whether err is a PostgreSQL deadlock or serialization failure.
func retryable(err error) bool {
	var pe *pq.Error
	if errors.As(err, &pe) {
		return pe.Code == "40P01" || pe.Code == "40001"
	}
	return false
}

// migration is one embedded migration file for this backend.
type migration struct {
	version int
	name    string
}

// migrations lists the migrations for the backend in version order. A file
// NNNN_name.sql applies to both backends, NNNN_name.postgres.sql and
// NNNN_name.sqlite.sql to one only. One version may not have both kinds.
func (db *DB) migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationsFS, "migrations")
	if err != nil {
		return nil, err
	}
	seen := map[int]string{}
	var out []migration
	for _, e := range entries {
		name := e.Name()
		base := strings.TrimSuffix(name, ".sql")
		if ext := path.Ext(base); ext == ".postgres" || ext == ".sqlite" {
			if ext[1:] != db.backend {
				continue
			}
		}
		num, _, _ := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("store: migration %s: name must start with a positive version number", name)
		}
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("store: migrations %s and %s share version %d", prev, name, v)
		}
		seen[v] = name
		out = append(out, migration{version: v, name: name})
	}
	slices.SortFunc(out, func(a, b migration) int { return a.version - b.version })
	return out, nil
}

// migrate applies the pending migrations (up to version upTo, if more than 0), each in its own transaction, and records
// them in schema_migrations. Two processes may run it at once: on PostgreSQL a
// session advisory lock (keyed by the schema) serialises them, on SQLite every
// transaction is BEGIN IMMEDIATE, and each migration re-checks schema_migrations
// inside its transaction.
func (db *DB) migrate(ctx context.Context, upTo int) (err error) {
	ms, err := db.migrations()
	if err != nil {
		return err
	}
	if upTo > 0 {
		ms = slices.DeleteFunc(ms, func(m migration) bool { return m.version > upTo })
	}
	conn, err := db.x.Connx(ctx)
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	defer conn.Close()

	createTable := `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`
	if db.backend == Postgres {
		createTable = `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)`
		const lockKey = `hashtext('hrsync.migrate.' || current_schema())`
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(`+lockKey+`)`); err != nil {
			return fmt.Errorf("store: migrate: lock: %w", err)
		}
		defer func() {
			_, uerr := conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(`+lockKey+`)`)
			if uerr != nil && err == nil {
				err = fmt.Errorf("store: migrate: unlock: %w", uerr)
			}
		}()
	}
	if _, err := conn.ExecContext(ctx, createTable); err != nil {
		return fmt.Errorf("store: migrate: create schema_migrations: %w", err)
	}

	for _, m := range ms {
		body, err := migrationsFS.ReadFile("migrations/" + m.name)
		if err != nil {
			return err
		}
		applied, err := db.applyMigration(ctx, conn, m, string(body))
		if err != nil {
			return fmt.Errorf("store: migration %s: %w", m.name, err)
		}
		if applied {
			db.log.InfoContext(ctx, "store: applied migration", "backend", db.backend, "migration", m.name)
		}
	}
	return nil
}

func (db *DB) applyMigration(ctx context.Context, conn *sqlx.Conn, m migration, body string) (applied bool, err error) {
	tx, err := conn.BeginTxx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	var n int
	if err := tx.GetContext(ctx, &n, db.q(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`), m.version); err != nil {
		return false, err
	}
	if n > 0 {
		return false, tx.Commit()
	}
	if _, err := tx.ExecContext(ctx, body); err != nil {
		return false, err
	}
	if _, err := tx.ExecContext(ctx, db.q(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`), m.version, db.ts(db.now())); err != nil {
		return false, err
	}
	return true, tx.Commit()
}

// notFound wraps connector.ErrNotFound with what was not found.
func notFound(format string, args ...any) error {
	return fmt.Errorf("store: "+format+": %w", append(args, connector.ErrNotFound)...)
}

// noRows maps sql.ErrNoRows to a wrapped connector.ErrNotFound.
func noRows(err error, format string, args ...any) error {
	if errors.Is(err, sql.ErrNoRows) {
		return notFound(format, args...)
	}
	return fmt.Errorf("store: "+format+": %w", append(args, err)...)
}

// AppliedMigrations returns the versions recorded in schema_migrations, in order.
func (db *DB) AppliedMigrations(ctx context.Context) ([]int, error) {
	var vs []int
	if err := db.x.SelectContext(ctx, &vs, `SELECT version FROM schema_migrations ORDER BY version`); err != nil {
		return nil, fmt.Errorf("store: applied migrations: %w", err)
	}
	return vs, nil
}
