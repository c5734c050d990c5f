package store

import (
	"context"
	"fmt"
	"time"
)

// The console's overview: per feed, what arrived last and what waits, and how
// many hires, leavers, rehires and LMS actions each day saw.

// FeedActivity is one feed's recent activity.
type FeedActivity struct {
	Feed string
	// LastRecorded is when the store last recorded a fact of the feed; nil: never.
	LastRecorded *time.Time
	// Due is how many of the feed's workers are due (the backlog).
	Due int
}

// FeedActivity returns each feed's last recorded fact and due workers, for
// the feeds that have any.
func (db *DB) FeedActivity(ctx context.Context) (map[string]FeedActivity, error) {
	out := map[string]FeedActivity{}
	rows, err := db.x.QueryContext(ctx, `SELECT feed, MAX(recorded_at) FROM facts GROUP BY feed`)
	if err != nil {
		return nil, fmt.Errorf("store: feed activity: %w", err)
	}
	for rows.Next() {
		var feed string
		var last instant
		if err := rows.Scan(&feed, &last); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: feed activity: %w", err)
		}
		out[feed] = FeedActivity{Feed: feed, LastRecorded: last.ptr()}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: feed activity: %w", err)
	}
	rows, err = db.x.QueryContext(ctx, `SELECT feed, COUNT(*) FROM workers WHERE due_at IS NOT NULL AND superseded_by IS NULL GROUP BY feed`)
	if err != nil {
		return nil, fmt.Errorf("store: feed backlog: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var feed string
		var n int
		if err := rows.Scan(&feed, &n); err != nil {
			return nil, fmt.Errorf("store: feed backlog: %w", err)
		}
		a := out[feed]
		a.Feed, a.Due = feed, n
		out[feed] = a
	}
	return out, rows.Err()
}

// DayCount is how many of one kind (a fact kind, or an LMS action) one feed
// saw on one UTC day.
type DayCount struct {
	Feed string
	Day  time.Time
	Kind string
	N    int
}

// dayOf is the SQL for the UTC day number (days since 1970-01-01) of column col.
func (db *DB) dayOf(col string) string {
	if db.backend == SQLite {
		return "(" + col + " / 86400000000)" // microseconds
	}
	return "CAST(FLOOR(EXTRACT(EPOCH FROM " + col + ") / 86400) AS BIGINT)"
}

// DailyFacts counts the facts of each kind by feed and by the UTC day they take
// effect, in [since, until).
func (db *DB) DailyFacts(ctx context.Context, since, until time.Time) ([]DayCount, error) {
	return db.daily(ctx, `SELECT feed, `+db.dayOf("effective_at")+` AS d, kind, COUNT(*) FROM facts
		WHERE effective_at >= ? AND effective_at < ? GROUP BY feed, d, kind ORDER BY d`, since, until)
}

// DailyActions counts the LMS actions that succeeded (audit outcome ok), by
// feed, UTC day and action, in [since, until).
func (db *DB) DailyActions(ctx context.Context, since, until time.Time) ([]DayCount, error) {
	return db.daily(ctx, `SELECT feed, `+db.dayOf("at")+` AS d, action, COUNT(*) FROM audit
		WHERE at >= ? AND at < ? AND outcome = 'ok' AND action <> 'none' GROUP BY feed, d, action ORDER BY d`, since, until)
}

func (db *DB) daily(ctx context.Context, query string, since, until time.Time) ([]DayCount, error) {
	rows, err := db.x.QueryContext(ctx, db.q(query), db.ts(since), db.ts(until))
	if err != nil {
		return nil, fmt.Errorf("store: daily counts: %w", err)
	}
	defer rows.Close()
	var out []DayCount
	for rows.Next() {
		var c DayCount
		var day int64
		if err := rows.Scan(&c.Feed, &day, &c.Kind, &c.N); err != nil {
			return nil, fmt.Errorf("store: daily counts: %w", err)
		}
		c.Day = time.Unix(day*86400, 0).UTC()
		out = append(out, c)
	}
	return out, rows.Err()
}
