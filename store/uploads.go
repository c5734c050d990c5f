package store

import (
	"context"
	"fmt"
	"time"
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
	// Outcome is published, held or rejected (invalid file).
	Outcome string `json:"outcome"`
	HoldID  *int64 `json:"hold_id,omitempty"`
	Detail  string `json:"detail,omitempty"`
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
		rows_total, active, hires, rehires, leavers, updates, unchanged, outcome, hold_id, detail)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
		db.ts(u.At), u.Feed, u.Mode, u.Filename, u.SHA256, u.By, u.Via, u.Rows, u.Active, u.Hires, u.Rehires,
		u.Leavers, u.Updates, u.Unchanged, u.Outcome, hold, u.Detail).Scan(&id)
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
	rows, err := db.x.QueryContext(ctx, db.q(`SELECT id, at, feed, mode, filename, sha256, uploaded_by, via, rows_total,
		active, hires, rehires, leavers, updates, unchanged, outcome, hold_id, detail FROM uploads`+
		whereClause(conds)+` ORDER BY id DESC`+limitClause(f.Limit)), args...)
	if err != nil {
		return nil, fmt.Errorf("store: list uploads: %w", err)
	}
	defer rows.Close()
	var out []Upload
	for rows.Next() {
		var u Upload
		var at instant
		if err := rows.Scan(&u.ID, &at, &u.Feed, &u.Mode, &u.Filename, &u.SHA256, &u.By, &u.Via, &u.Rows, &u.Active,
			&u.Hires, &u.Rehires, &u.Leavers, &u.Updates, &u.Unchanged, &u.Outcome, &u.HoldID, &u.Detail); err != nil {
			return nil, fmt.Errorf("store: list uploads: %w", err)
		}
		u.At = at.T
		out = append(out, u)
	}
	return out, rows.Err()
}
