package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// ConsoleSession is one sign-in to the admin console (cmd/hrsync/internal/console),
// kept in the database so that it survives a restart and works on every replica.
type ConsoleSession struct {
	// IDHash is the SHA-256 (hex) of the session cookie's value; the cookie
	// itself is never stored.
	IDHash string
	User   string
	Role   string
	Feeds  []string
	// CSRF is the token every form of the session carries.
	CSRF      string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// CreateConsoleSession stores s. In the same transaction it drops the sessions
// expired at s.CreatedAt and, when max or more are left, those that expire
// soonest until max/2 are, so that sign-ins that come faster than sessions
// expire cannot grow the table without bound (max 0: no bound).
func (db *DB) CreateConsoleSession(ctx context.Context, s ConsoleSession, max int) error {
	if s.IDHash == "" || s.User == "" || s.CSRF == "" || !s.ExpiresAt.After(s.CreatedAt) {
		return fmt.Errorf("store: console session of %q: id, user, CSRF token and an expiry after its creation are required", s.User)
	}
	feeds, err := json.Marshal(s.Feeds)
	if err != nil {
		return err
	}
	err = db.inTx(ctx, func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, db.q(`DELETE FROM console_sessions WHERE expires_at <= ?`), db.ts(s.CreatedAt)); err != nil {
			return fmt.Errorf("drop expired: %w", err)
		}
		if max > 0 {
			var n int
			if err := tx.GetContext(ctx, &n, `SELECT COUNT(*) FROM console_sessions`); err != nil {
				return err
			}
			if n >= max {
				if _, err := tx.ExecContext(ctx, db.q(`DELETE FROM console_sessions WHERE id_hash IN
					(SELECT id_hash FROM console_sessions ORDER BY expires_at, id_hash LIMIT ?)`), n-max/2); err != nil {
					return fmt.Errorf("drop the soonest to expire: %w", err)
				}
			}
		}
		_, err := tx.ExecContext(ctx, db.q(`INSERT INTO console_sessions (id_hash, user_name, role, feeds, csrf, created_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`), s.IDHash, s.User, s.Role, string(feeds), s.CSRF, db.ts(s.CreatedAt), db.ts(s.ExpiresAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("store: console session of %s: %w", s.User, err)
	}
	return nil
}

// GetConsoleSession returns the session idHash names if it is live at now.
// Returns an error matching connector.ErrNotFound if there is none, or it expired.
func (db *DB) GetConsoleSession(ctx context.Context, idHash string, now time.Time) (ConsoleSession, error) {
	s := ConsoleSession{IDHash: idHash}
	var feeds string
	var created, expires instant
	err := db.x.QueryRowContext(ctx, db.q(`SELECT user_name, role, feeds, csrf, created_at, expires_at FROM console_sessions
		WHERE id_hash = ? AND expires_at > ?`), idHash, db.ts(now)).Scan(&s.User, &s.Role, &feeds, &s.CSRF, &created, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return s, notFound("console session")
	}
	if err != nil {
		return s, fmt.Errorf("store: console session: %w", err)
	}
	s.CreatedAt, s.ExpiresAt = created.T, expires.T
	if err := json.Unmarshal([]byte(feeds), &s.Feeds); err != nil {
		return s, fmt.Errorf("store: console session of %s: feeds: %w", s.User, err)
	}
	return s, nil
}

// DeleteConsoleSession ends the session idHash names (signing out); ending one
// that is gone already is not an error.
func (db *DB) DeleteConsoleSession(ctx context.Context, idHash string) error {
	if _, err := db.x.ExecContext(ctx, db.q(`DELETE FROM console_sessions WHERE id_hash = ?`), idHash); err != nil {
		return fmt.Errorf("store: end console session: %w", err)
	}
	return nil
}
