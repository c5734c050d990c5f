// Package jobs runs the clean-up and offboarding jobs of LMS accounts: "hrsync
// cleanup dormant" and "report dormant" (Dormant), "hrsync feed offboard"
// (Offboard), "hrsync holds run" (RunHold) and "hrsync holds show" of a job
// (ShowHold). It selects the accounts, estimates the LMS calls and time, writes
// the report (accounts.csv, report.json), holds the plan, and runs it in batches
// with a progress bar. See docs/cleanup.md.
//
// It is the use case only: it takes the store methods it needs (Store), the LMS
// behind the guard (connector.LMS), io.Writers for output and a clock (Env);
// cmd/hrsync parses the flags and opens the app.
package jobs

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
)

// Store is what the jobs need of the store. Implemented by *store.DB.
type Store interface {
	// JobStore is what connector.JobRunner (and connector.Selector) need.
	connector.JobStore
	// CreateJob holds a job of items; it returns a *store.OpenJobError if the
	// feed's offboarding is held already.
	CreateJob(ctx context.Context, h connector.Hold, items []connector.JobItem) (int64, error)
	// SetJobPayload replaces the job's payload (its report's summary).
	SetJobPayload(ctx context.Context, id int64, payload []byte) error
	// JobItems returns up to limit items of the hold with seq after after.
	JobItems(ctx context.Context, hold int64, after, limit int) ([]connector.JobItem, error)
	// OffboardHold returns the feed's open or approved offboarding hold, if any.
	OffboardHold(ctx context.Context, feed string) (connector.Hold, bool, error)
	// FeedClosed reports whether the feed is closed, and how.
	FeedClosed(ctx context.Context, feed string) (store.ClosedFeed, bool, error)
	// CloseFeed closes an offboarded feed.
	CloseFeed(ctx context.Context, c store.ClosedFeed) error
	// An offboarding that anonymises erases the linked workers too.
	AnonymiserStore
}

// Env is what a job works with: the store, the LMS behind the guard (rate limit,
// retries, quarantine), the configured feeds, the LMS's rate in calls per hour
// (0: unlimited), the logger, the clock, and where results (Out) and progress
// (Progress) go.
type Env struct {
	Store    Store
	LMS      connector.LMS
	Feeds    connector.Feeds
	PerHour  float64
	Log      *slog.Logger
	Now      func() time.Time
	Out      io.Writer
	Progress io.Writer
	// Approvals is how many different people must approve a job hold of each
	// kind (holds.approvals in the configuration file); missing: one.
	Approvals map[connector.HoldKind]int
}

// Payload is what a job hold keeps besides its items: the report's summary.
type Payload struct {
	Filter    string                `json:"filter"`
	Selection connector.Selection   `json:"selection"`
	Estimate  connector.JobEstimate `json:"estimate"`
	ReportDir string                `json:"report_dir,omitempty"`
}

// ParseDate reads YYYY-MM-DD (UTC midnight) or an RFC 3339 time.
func ParseDate(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a date (YYYY-MM-DD) or an RFC 3339 time", s)
	}
	return t, nil
}

// FeedPolicies returns each feed's policy, for deciding who is employed.
func FeedPolicies(feeds connector.Feeds) func(string) connector.Policy {
	return func(name string) connector.Policy {
		if f, ok := feeds[name]; ok {
			return f.Policy(connector.DefaultPolicy())
		}
		return connector.DefaultPolicy()
	}
}

// Estimate asks the LMS for its batch sizes and estimates a job of n items, of
// which anonymise anonymise, at perHour LMS calls an hour (0: unlimited).
func Estimate(ctx context.Context, lms connector.LMS, n, anonymise int, perHour float64) connector.JobEstimate {
	bulk, check := 0, 0
	if bd, ok := lms.(connector.BulkDeleter); ok {
		bulk = bd.MaxBulkDeletes(ctx)
	}
	if al, ok := lms.(connector.ActivityLister); ok {
		check = al.MaxActivityBatch(ctx)
	}
	return connector.EstimateJob(n, anonymise, bulk, check, perHour)
}

// CSVHeader is the header of a job's account list.
var CSVHeader = []string{"seq", "account_id", "action", "feed", "worker_id", "user_name", "email", "created",
	"last_login", "enrollments", "completions", "uploads", "rewards", "status", "detail"}

// CSVRow is it as a row under CSVHeader, its cells escaped against formula injection.
func CSVRow(it connector.JobItem) []string {
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	}
	login := ""
	if it.Activity.LastLogin != nil {
		login = ts(*it.Activity.LastLogin)
	}
	row := []string{strconv.Itoa(it.Seq), it.AccountID, string(it.Action), it.Feed(), it.Worker.WorkerID, it.UserName, it.Email,
		ts(it.Created), login, strconv.Itoa(it.Activity.Enrollments), strconv.Itoa(it.Activity.Completions),
		strconv.Itoa(it.Activity.Uploads), strconv.Itoa(it.Activity.Rewards), string(it.Status), it.Detail}
	for i := range row {
		row[i] = connector.EscapeCSVCell(row[i])
	}
	return row
}

// WriteReport writes accounts.csv (every selected account, cells escaped
// against formula injection) and report.json (counts, estimate and accounts)
// into dir, which it creates.
func WriteReport(dir string, sel connector.Selection, est connector.JobEstimate) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("report directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "accounts.csv"), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	cw := csv.NewWriter(f)
	_ = cw.Write(CSVHeader)
	for _, it := range sel.Items {
		_ = cw.Write(CSVRow(it))
	}
	cw.Flush()
	if err := errors.Join(cw.Error(), f.Close()); err != nil {
		return fmt.Errorf("accounts.csv: %w", err)
	}
	body, err := json.MarshalIndent(struct {
		connector.Selection
		FilterText string                `json:"filter_text"`
		Estimate   connector.JobEstimate `json:"estimate"`
		Accounts   []connector.JobItem   `json:"accounts"`
	}{sel, sel.Filter.String(), est, sel.Items}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "report.json"), append(body, '\n'), 0o640)
}
