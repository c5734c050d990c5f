package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/hrsync/hrsync/connector"
)

// Upload is the record of one roster upload: what was sent, by whom, what it
// implied, and what became of it.
type Upload struct {
	ID       int64     `json:"id"`
	At       time.Time `json:"at"`
	Feed     string    `json:"feed"`
	Mode     string    `json:"mode"`
	Filename string    `json:"filename,omitempty"`
	SHA256   string    `json:"sha256"`
	By       string    `json:"by,omitempty"`
	// Via is how it came: "cli" or "http".
	Via       string `json:"via,omitempty"`
	Rows      int    `json:"rows"`
	Active    int    `json:"active"`
	Hires     int    `json:"hires"`
	Rehires   int    `json:"rehires"`
	Leavers   int    `json:"leavers"`
	Updates   int    `json:"updates"`
	Unchanged int    `json:"unchanged"`
	// Invalid counts the rows not applied because of a problem; Kept the
	// people of a snapshot kept because their row was invalid (unknown, not
	// absent); Withheld the leavers it did not make because a row named no one.
	Invalid  int `json:"invalid"`
	Kept     int `json:"kept"`
	Withheld int `json:"withheld"`
	// Outcome is published, held or rejected (invalid file).
	Outcome string `json:"outcome"`
	HoldID  *int64 `json:"hold_id,omitempty"`
	Detail  string `json:"detail,omitempty"`
	// Report is the per-row report as JSON (the roster package's), or empty:
	// ListUploads leaves it out, GetUpload reads it.
	Report []byte `json:"-"`
}

// uploadColumns are the columns ListUploads and GetUpload read, report aside.
const uploadColumns = `id, at, feed, mode, filename, sha256, uploaded_by, via, rows_total,
		active, hires, rehires, leavers, updates, unchanged, invalid, kept, withheld, outcome, hold_id, detail`

// scan reads one row of uploadColumns (and more into extra).
func scanUpload(rows interface{ Scan(...any) error }, u *Upload, extra ...any) error {
	var at instant
	err := rows.Scan(append([]any{&u.ID, &at, &u.Feed, &u.Mode, &u.Filename, &u.SHA256, &u.By, &u.Via, &u.Rows, &u.Active,
		&u.Hires, &u.Rehires, &u.Leavers, &u.Updates, &u.Unchanged, &u.Invalid, &u.Kept, &u.Withheld, &u.Outcome, &u.HoldID, &u.Detail}, extra...)...)
	u.At = at.T
	return err
}

// RecordUpload stores u and returns its id. A zero At is the store clock.
func (db *DB) RecordUpload(ctx context.Context, u Upload) (int64, error) {
	if u.At.IsZero() {
		u.At = db.now()
	}
	var hold any
	if u.HoldID != nil {
		hold = *u.HoldID
	}
	var id int64
	err := db.x.QueryRowContext(ctx, db.q(`INSERT INTO uploads (at, feed, mode, filename, sha256, uploaded_by, via,
		rows_total, active, hires, rehires, leavers, updates, unchanged, invalid, kept, withheld, outcome, hold_id, detail, report)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
		db.ts(u.At), u.Feed, u.Mode, u.Filename, u.SHA256, u.By, u.Via, u.Rows, u.Active, u.Hires, u.Rehires,
		u.Leavers, u.Updates, u.Unchanged, u.Invalid, u.Kept, u.Withheld, u.Outcome, hold, u.Detail, string(u.Report)).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("store: record upload: %w", err)
	}
	return id, nil
}

// UploadFilter selects uploads; the zero value lists all, newest first.
type UploadFilter struct {
	Feed  string
	Limit int
}

// ListUploads returns the uploads that match f, newest first.
func (db *DB) ListUploads(ctx context.Context, f UploadFilter) ([]Upload, error) {
	var conds []string
	var args []any
	if f.Feed != "" {
		conds, args = append(conds, "feed = ?"), append(args, f.Feed)
	}
	rows, err := db.x.QueryContext(ctx, db.q(`SELECT `+uploadColumns+` FROM uploads`+
		whereClause(conds)+` ORDER BY id DESC`+limitClause(f.Limit)), args...)
	if err != nil {
		return nil, fmt.Errorf("store: list uploads: %w", err)
	}
	defer rows.Close()
	var out []Upload
	for rows.Next() {
		var u Upload
		if err := scanUpload(rows, &u); err != nil {
			return nil, fmt.Errorf("store: list uploads: %w", err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// GetUpload returns upload id of feed with its report. Returns ErrNotFound if
// the feed has no such upload.
func (db *DB) GetUpload(ctx context.Context, feed string, id int64) (Upload, error) {
	var u Upload
	var report string
	row := db.x.QueryRowContext(ctx, db.q(`SELECT `+uploadColumns+`, report FROM uploads WHERE id = ? AND feed = ?`), id, feed)
	if err := scanUpload(row, &u, &report); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Upload{}, fmt.Errorf("store: upload %d of feed %s: %w", id, feed, connector.ErrNotFound)
		}
		return Upload{}, fmt.Errorf("store: get upload %d: %w", id, err)
	}
	u.Report = []byte(report)
	return u, nil
}
