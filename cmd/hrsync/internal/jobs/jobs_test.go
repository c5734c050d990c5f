package jobs

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/store"
)

// testBundle is a job's Env on a SQLite store and the sandbox LMS, without the CLI.
type testBundle struct {
	env      Env
	db       *store.DB
	sb       *sandbox.LMS
	out, err *bytes.Buffer
	dir      string
}

func setup(t *testing.T, feeds ...connector.Feed) *testBundle {
	t.Helper()
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	db, err := store.Open(t.Context(), "sqlite://"+filepath.Join(dir, "h.db"), log, store.Migrate(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if len(feeds) == 0 {
		feeds = []connector.Feed{connector.DefaultFeed("hr", connector.FeedHR)}
	}
	fs, err := connector.NewFeeds(feeds...)
	if err != nil {
		t.Fatal(err)
	}
	b := &testBundle{db: db, sb: sandbox.New(), out: &bytes.Buffer{}, err: &bytes.Buffer{}, dir: dir}
	b.env = Env{Store: db, LMS: b.sb, Feeds: fs, PerHour: 1000, Log: log, Out: b.out, Progress: b.err,
		Now: func() time.Time { return time.Date(2026, 12, 6, 7, 0, 0, 0, time.UTC) }}
	return b
}

func TestParseDate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"2024-01-01", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), true},
		{"2024-01-01T10:00:00Z", time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC), true},
		{"01/01/2024", time.Time{}, false},
	} {
		got, err := ParseDate(tc.in)
		if (err == nil) != tc.ok || !got.Equal(tc.want) {
			t.Errorf("ParseDate(%q) = %v, %v", tc.in, got, err)
		}
	}
}

// TestWriteReport: accounts.csv has one escaped row per item under the header,
// report.json the counts, the estimate and the accounts.
func TestWriteReport(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "report")
	sel := connector.Selection{Scanned: 3, ByFeed: map[string]int{"hr": 2}, Items: []connector.JobItem{
		{Seq: 1, AccountID: "a1", Action: connector.ActionDelete, UserName: "=cmd()", Status: connector.JobPending},
		{Seq: 2, AccountID: "a2", Action: connector.ActionDelete, UserName: "b@x.example", Status: connector.JobPending},
	}}
	if err := WriteReport(dir, sel, connector.EstimateJob(2, 0, 0, 0, 1000)); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "accounts.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil || len(rows) != 3 || strings.Join(rows[0], ",") != strings.Join(CSVHeader, ",") {
		t.Fatalf("accounts.csv = %v, %v", rows, err)
	}
	if rows[1][5] == "=cmd()" {
		t.Errorf("a formula was written unescaped: %q", rows[1][5])
	}
	var rep struct {
		Scanned  int                   `json:"scanned"`
		Estimate connector.JobEstimate `json:"estimate"`
		Accounts []connector.JobItem   `json:"accounts"`
	}
	body, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil || json.Unmarshal(body, &rep) != nil || len(rep.Accounts) != 2 || rep.Estimate.Items != 2 {
		t.Fatalf("report.json (%v):\n%s", err, body)
	}
}

// TestProgress: off a terminal, a line per update at the end and none in between
// within 5s; the bar shows the share done.
func TestProgress(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	p := NewProgress(&buf, "accounts")
	now := p.start
	p.now = func() time.Time { return now }
	p.Update(1, 4, "")
	now = now.Add(time.Second)
	p.Update(2, 4, "") // within 5s of the last line: skipped
	now = now.Add(time.Second)
	p.Update(4, 4, "done 4")
	p.Done()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "accounts 1/4 (25%) ETA") || !strings.HasSuffix(lines[1], "accounts 4/4 (100%) done 4") {
		t.Fatalf("progress lines:\n%s", buf.String())
	}
}

// TestDormant selects the never-used accounts, writes the report and holds them;
// report only holds nothing.
func TestDormant(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	var ids []string
	for i := range 4 {
		a, err := b.sb.CreateAccount(ctx, connector.Account{ExternalID: fmt.Sprintf("import:%02d", i), UserName: fmt.Sprintf("imp%02d@old.example", i), Active: true})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.ID)
	}
	if err := b.sb.RecordLogin(ids[3], time.Now()); err != nil {
		t.Fatal(err)
	}
	f := connector.DormantFilter{NoLogin: true}
	report := filepath.Join(b.dir, "r")
	if held, err := b.env.Dormant(ctx, DormantRequest{Filter: f, Dir: report, PageSize: 2}); err != nil || held != 1 {
		t.Fatalf("Dormant = hold %d, %v; want hold 1", held, err)
	}
	for _, want := range []string{"scanned 4 LMS accounts; 3 dormant", "held as hold 1", "at 1000 calls/hour"} {
		if !strings.Contains(b.out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, b.out)
		}
	}
	if _, err := os.Stat(filepath.Join(report, "report.json")); err != nil {
		t.Error(err)
	}
	h, err := b.db.GetHold(ctx, 1)
	if err != nil || h.Kind != connector.HoldCleanup || h.Counts.Removals != 3 {
		t.Fatalf("hold = %+v, %v", h, err)
	}
	var p Payload
	if err := json.Unmarshal(h.Payload, &p); err != nil || p.ReportDir != report || p.Estimate.Items != 3 {
		t.Fatalf("payload = %+v, %v", p, err)
	}
	if n := b.sb.Count(); n != 4 {
		t.Fatalf("the report deleted accounts: %d left", n)
	}

	b.out.Reset()
	if held, err := b.env.Dormant(ctx, DormantRequest{Filter: f, ReportOnly: true, Dir: filepath.Join(b.dir, "d"), JSON: true}); err != nil || held != 0 {
		t.Fatalf("report only = hold %d, %v; want no hold", held, err)
	}
	var res struct {
		Hold int64 `json:"hold"`
	}
	if err := json.Unmarshal(b.out.Bytes(), &res); err != nil || res.Hold != 0 {
		t.Fatalf("report only: %v\n%s", err, b.out)
	}
}

// TestOffboardAndRun offboards a partner feed that deletes (its retention keeps
// no learning records): the hold names the feed's accounts and leaves the HR
// feed's, asking again names the same hold, and once approved the run deletes
// them and closes the feed.
func TestOffboardAndRun(t *testing.T) {
	t.Parallel()
	b := setup(t, connector.DefaultFeed("hr", connector.FeedHR), connector.DefaultFeed("partner-acme", connector.FeedPartner))
	ctx := t.Context()
	for _, ext := range []string{"partner-acme:p1", "partner-acme:p2", "hr:e1"} {
		if _, err := b.sb.CreateAccount(ctx, connector.Account{ExternalID: ext, UserName: strings.ReplaceAll(ext, ":", ".") + "@x.example", Active: true}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.env.Offboard(ctx, OffboardRequest{Feed: "hr", By: "ana", Reason: "x"}); err == nil || !strings.Contains(err.Error(), "HR feed") {
		t.Fatalf("offboarding the HR feed: %v", err)
	}
	req := OffboardRequest{Feed: "partner-acme", By: "ana", Reason: "contract ended", Dir: filepath.Join(b.dir, "off")}
	if held, err := b.env.Offboard(ctx, req); err != nil || held != 1 || !strings.Contains(b.out.String(), "2 LMS accounts to delete") {
		t.Fatalf("offboard: %v\n%s", err, b.out)
	}
	b.out.Reset()
	if held, err := b.env.Offboard(ctx, req); err != nil || held != 1 || !strings.Contains(b.out.String(), "already being offboarded: hold 1") {
		t.Fatalf("offboard again: %v\n%s", err, b.out)
	}
	if err := b.env.RunHold(ctx, 1, RunOptions{}); err == nil {
		t.Fatal("ran before approval")
	}
	// Four eyes: who started the offboarding may not approve it.
	if _, err := b.db.DecideHold(ctx, 1, connector.HoldDecision{Approve: true, By: "ana", Reason: "ok"}); !errors.Is(err, connector.ErrFourEyes) {
		t.Fatalf("the offboarder approving her own offboarding: %v, want ErrFourEyes", err)
	}
	if _, err := b.db.DecideHold(ctx, 1, connector.HoldDecision{Approve: true, By: "bob", Reason: "ok"}); err != nil {
		t.Fatal(err)
	}
	b.out.Reset()
	if err := b.env.RunHold(ctx, 1, RunOptions{Getenv: func(string) string { return "" }}); err != nil {
		t.Fatalf("run: %v\n%s", err, b.out)
	}
	for _, want := range []string{"all runs: 2 done, 0 skipped, 0 failed, 0 pending", "feed partner-acme is closed"} {
		if !strings.Contains(b.out.String(), want) {
			t.Errorf("run output lacks %q:\n%s", want, b.out)
		}
	}
	if n := b.sb.Count(); n != 1 {
		t.Errorf("%d accounts left, want the HR one", n)
	}
	if _, closed, err := b.db.FeedClosed(ctx, "partner-acme"); err != nil || !closed {
		t.Errorf("feed closed = %v, %v", closed, err)
	}
	b.out.Reset()
	if err := ShowHold(ctx, b.db, mustHold(t, b.db, 1), 10, "-", false, b.out, b.err); err != nil || strings.Count(b.out.String(), ",done,") != 2 {
		t.Fatalf("show --csv -: %v\n%s", err, b.out)
	}
}

func mustHold(t *testing.T, db *store.DB, id int64) connector.Hold {
	t.Helper()
	h, err := db.GetHold(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestOffboardAnonymiserNeedsKey: a hold that anonymises needs the erasure key; one
// that only deletes needs nothing.
func TestOffboardAnonymiserNeedsKey(t *testing.T) {
	t.Parallel()
	b := setup(t)
	getenv := func(string) string { return "" }
	h := connector.Hold{ID: 7, Feed: "partner-acme", Counts: connector.HoldCounts{Removals: 2, Deletions: 2}}
	if fn, err := OffboardAnonymiser(t.Context(), b.db, b.sb, "", getenv, h); fn != nil || err != nil {
		t.Fatalf("deletions only: %v, %v", fn != nil, err)
	}
	h.Counts.Deletions = 0
	if _, err := OffboardAnonymiser(t.Context(), b.db, b.sb, "", getenv, h); err == nil || !strings.Contains(err.Error(), "HRSYNC_ERASURE_KEY") {
		t.Fatalf("anonymising without a key: %v", err)
	}
	if fn, err := OffboardAnonymiser(t.Context(), b.db, b.sb, "k3y", getenv, h); fn == nil || err != nil {
		t.Fatalf("with the key: %v", err)
	}
}
