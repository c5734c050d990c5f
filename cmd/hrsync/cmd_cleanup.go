package main

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
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
)

const cleanupDesc = `
Delete dormant LMS accounts: accounts nobody ever used, such as the leftovers of an
old batch import. docs/cleanup.md has the whole procedure. It goes in steps, and
nothing in the LMS changes before a person approved:

  1. hrsync cleanup dormant --no-login --created-before 2024-01-01 ...
     scans every LMS account and writes a report (accounts.csv, report.json) of the
     accounts the filters select, with counts per feed and the reasons others were
     left, and the LMS calls and time the deletion will need under --lms-rate. The
     report becomes a hold; its id is printed.
  2. hrsync holds approve ID --sample-batch 50 --by NAME --reason TEXT  (optional)
     lets the first 50 accounts go as a test; hrsync holds run ID runs them.
  3. hrsync holds approve ID --by NAME --reason TEXT, then hrsync holds run ID
     deletes the rest in batches under the rate limit, with progress and an ETA.
     A killed run resumes where it stopped when started again.

Filters (all must hold): --no-login (never logged in), --no-enrollments (no
enrollments), --created-before DATE, --feed NAME (accounts of that feed) or
--orphaned (accounts no feed knows). At least one of --no-login and
--no-enrollments is required. Whatever the filters, an account is never selected
when the LMS cannot tell its activity (plain SCIM: "unknown" counts as active), when
it has completions, uploaded content or rewards, or when it is linked to someone
the HR facts say is employed. Just before each batch is deleted, hrsync reads the
accounts again and skips any that logged in, enrolled, changed, or became linked to
an employee since the report.`

func cmdCleanup(ctx context.Context, env *environment, args []string) error {
	if len(args) == 0 || args[0] != "dormant" {
		fs := newFlagSet(env, "cleanup", "cleanup dormant [flags]", cleanupDesc)
		if err := parseFlags(fs, env, args, nil); err != nil {
			return err
		}
		fs.Usage()
		return errors.New("cleanup: want dormant")
	}
	return cmdDormant(ctx, env, args[1:], false)
}

// cmdDormant is "cleanup dormant" (hold) and "report dormant" (report only).
func cmdDormant(ctx context.Context, env *environment, args []string, reportOnly bool) error {
	name, synopsis, desc := "cleanup dormant", "cleanup dormant --no-login|--no-enrollments [flags]", cleanupDesc
	if reportOnly {
		name, synopsis, desc = "report dormant", "report dormant [flags]", `
The dormant-account report: how many LMS accounts per feed were never used (no
login, no enrollments, by default), and which. It scans every LMS account and reads
its activity; it changes nothing and creates no hold (hrsync cleanup dormant does).
Filters are those of hrsync cleanup dormant.`
	}
	fs := newFlagSet(env, name, synopsis, desc)
	vars := map[string]string{}
	var c connFlags
	var l lmsFlags
	c.registerBase(fs, vars, false)
	l.register(fs, vars)
	l.registerRate(fs, vars)
	var feedFlags feedFlag
	fs.Var(&feedFlags, "declare-feed", "declare a feed as NAME[:KIND[:TIMEZONE]] when there is no config file (repeatable)")
	noLogin := fs.Bool("no-login", reportOnly, "select accounts that never logged in")
	noEnroll := fs.Bool("no-enrollments", reportOnly, "select accounts without enrollments")
	before := fs.String("created-before", "", "select accounts created before this date (YYYY-MM-DD, UTC) or RFC 3339 time")
	feed := fs.String("feed", "", "select only accounts of this feed (linked to its workers, or in its scope)")
	orphaned := fs.Bool("orphaned", false, "select only accounts that no feed knows")
	out := fs.String("out", "", "directory of the report files (default ./cleanup-<UTC timestamp>, or ./dormant-... for the report)")
	pageSize := fs.Int("page-size", 500, "LMS accounts per page")
	asJSON := fs.Bool("json", false, "print the summary as JSON")
	if err := parseFlags(fs, env, args, vars); err != nil {
		return err
	}
	c.feeds = feedFlags
	f := connector.DormantFilter{NoLogin: *noLogin, NoEnrollments: *noEnroll, Feed: *feed, Orphaned: *orphaned}
	if *before != "" {
		t, err := parseDate(*before)
		if err != nil {
			return fmt.Errorf("--created-before: %w", err)
		}
		f.CreatedBefore = t
	}
	if err := f.Validate(); err != nil {
		return err
	}
	j, err := openJob(ctx, env, &c, &l)
	if err != nil {
		return err
	}
	defer j.app.Close()
	feeds, lms, rate, log, db := j.feeds, j.lms, j.perHour, j.log, j.db

	prog := newProgress(env.stderr, "scanned")
	sel, err := connector.Selector{LMS: lms, Store: db, Feeds: feeds, Policy: feedPolicies(feeds), PageSize: *pageSize,
		Progress: func(scanned, total int) { prog.update(scanned, total, "") }}.Select(ctx, f)
	prog.done()
	if err != nil {
		return err
	}
	est := estimateFor(ctx, lms, len(sel.Items), 0, rate)
	dir := *out
	if dir == "" {
		prefix := "cleanup-"
		if reportOnly {
			prefix = "dormant-"
		}
		dir = prefix + time.Now().UTC().Format("20060102T150405Z")
	}
	if err := writeJobReport(dir, sel, est); err != nil {
		return err
	}
	var holdID int64
	if !reportOnly && len(sel.Items) > 0 {
		payload, err := json.Marshal(jobPayload{Filter: f.String(), Selection: sel, Estimate: est, ReportDir: dir})
		if err != nil {
			return err
		}
		holdID, err = db.CreateJob(ctx, connector.Hold{Kind: connector.HoldCleanup, Feed: f.Feed,
			Reason: "dormant accounts: " + f.String(), Payload: payload}, sel.Items)
		if err != nil {
			return err
		}
		log.Info("clean-up report held", "hold", holdID, "accounts", len(sel.Items), "filter", f.String())
	}
	if *asJSON {
		return json.NewEncoder(env.stdout).Encode(map[string]any{"hold": holdID, "selection": sel, "estimate": est, "report_dir": dir})
	}
	w := env.stdout
	fmt.Fprintf(w, "scanned %d LMS accounts; %d dormant (%s)\n", sel.Scanned, len(sel.Items), f.String())
	for _, k := range connector.SortedCounts(sel.ByFeed) {
		fmt.Fprintf(w, "  %-28s %d\n", k, sel.ByFeed[k])
	}
	if len(sel.Excluded) > 0 {
		fmt.Fprintln(w, "left alone:")
		for _, k := range connector.SortedCounts(sel.Excluded) {
			fmt.Fprintf(w, "  %-36s %d\n", k, sel.Excluded[k])
		}
	}
	fmt.Fprintf(w, "deleting them needs %s\n", est)
	fmt.Fprintf(w, "report: %s (accounts.csv, report.json)\n", dir)
	switch {
	case reportOnly:
	case holdID == 0:
		fmt.Fprintln(w, "nothing to clean up; no hold was created")
	default:
		fmt.Fprintf(w, "held as hold %d; nothing was deleted. Next:\n", holdID)
		fmt.Fprintf(w, "  hrsync holds show %d --csv -                                      review every account\n", holdID)
		fmt.Fprintf(w, "  hrsync holds approve %d --sample-batch 50 --by NAME --reason TEXT  optional: a test batch first\n", holdID)
		fmt.Fprintf(w, "  hrsync holds approve %d --by NAME --reason TEXT                    approve all\n", holdID)
		fmt.Fprintf(w, "  hrsync holds run %d                                               delete (resumable)\n", holdID)
	}
	return nil
}

// jobPayload is what a job hold keeps besides its items: the report's summary.
type jobPayload struct {
	Filter    string                `json:"filter"`
	Selection connector.Selection   `json:"selection"`
	Estimate  connector.JobEstimate `json:"estimate"`
	ReportDir string                `json:"report_dir,omitempty"`
}

// parseDate reads YYYY-MM-DD (UTC midnight) or an RFC 3339 time.
func parseDate(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a date (YYYY-MM-DD) or an RFC 3339 time", s)
	}
	return t, nil
}

// feedPolicies returns each feed's policy, for deciding who is employed.
func feedPolicies(feeds connector.Feeds) func(string) connector.Policy {
	return func(name string) connector.Policy {
		if f, ok := feeds[name]; ok {
			return f.Policy(connector.DefaultPolicy())
		}
		return connector.DefaultPolicy()
	}
}

// jobEnv is what a job command works with, from the app: the configured feeds,
// the LMS behind the guard (rate limit, retries, quarantine), its rate in calls
// per hour (0: unlimited), the logger and the store.
type jobEnv struct {
	app     *app
	feeds   connector.Feeds
	lms     connector.LMS
	perHour float64
	log     *slog.Logger
	db      *store.DB
}

// openJob builds a job command's jobEnv on an app; the caller closes j.app.
func openJob(ctx context.Context, env *environment, c *connFlags, l *lmsFlags) (jobEnv, error) {
	a, err := c.openApp(ctx, env, l, appOptions{}, nil)
	if err != nil {
		return jobEnv{}, err
	}
	lms, err := a.LMS()
	if err != nil {
		a.Close()
		return jobEnv{}, err
	}
	return jobEnv{app: a, feeds: a.set.feeds, lms: lms, perHour: a.perHour(), log: a.log, db: a.db}, nil
}

// estimateFor asks the LMS for its batch sizes and estimates a job of n items.
func estimateFor(ctx context.Context, lms connector.LMS, n, anonymise int, perHour float64) connector.JobEstimate {
	bulk, check := 0, 0
	if bd, ok := lms.(connector.BulkDeleter); ok {
		bulk = bd.MaxBulkDeletes(ctx)
	}
	if al, ok := lms.(connector.ActivityLister); ok {
		check = al.MaxActivityBatch(ctx)
	}
	return connector.EstimateJob(n, anonymise, bulk, check, perHour)
}

// jobCSVHeader is the header of a job's account list.
var jobCSVHeader = []string{"seq", "account_id", "action", "feed", "worker_id", "user_name", "email", "created",
	"last_login", "enrollments", "completions", "uploads", "rewards", "status", "detail"}

func jobCSVRow(it connector.JobItem) []string {
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

// writeJobReport writes accounts.csv (every selected account, cells escaped
// against formula injection) and report.json (counts, estimate and accounts).
func writeJobReport(dir string, sel connector.Selection, est connector.JobEstimate) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("report directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "accounts.csv"), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	cw := csv.NewWriter(f)
	_ = cw.Write(jobCSVHeader)
	for _, it := range sel.Items {
		_ = cw.Write(jobCSVRow(it))
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

// progress prints a one-line progress bar with a rate and an ETA to a terminal, or
// a line every few seconds to a log.
type progress struct {
	w     io.Writer
	what  string
	start time.Time
	last  time.Time
	tty   bool
	shown bool
}

func newProgress(w io.Writer, what string) *progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &progress{w: w, what: what, start: time.Now(), tty: tty}
}

func (p *progress) update(n, total int, extra string) {
	now := time.Now()
	if !p.tty && now.Sub(p.last) < 5*time.Second && n < total {
		return
	}
	p.last = now
	el := now.Sub(p.start)
	line := fmt.Sprintf("%s %d", p.what, n)
	if total > 0 {
		const width = 30
		filled := min(width, n*width/max(total, 1))
		line = fmt.Sprintf("[%s%s] %s %d/%d (%d%%)", strings.Repeat("#", filled), strings.Repeat(".", width-filled), p.what, n, total, n*100/max(total, 1))
		if n > 0 && n < total {
			eta := time.Duration(float64(el) / float64(n) * float64(total-n))
			line += " ETA " + eta.Round(time.Second).String()
		}
	}
	if extra != "" {
		line += " " + extra
	}
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		p.shown = true
	} else {
		fmt.Fprintln(p.w, line)
	}
}

func (p *progress) done() {
	if p.tty && p.shown {
		fmt.Fprintln(p.w)
	}
}

// runJobHold is "holds run ID": run the approved part of a clean-up or
// offboarding job, then close an offboarded feed.
func runJobHold(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "holds run", "holds run [flags] ID", `
Run the approved part of a clean-up or offboarding hold: all of it once approved,
or the test batch that "holds approve --sample-batch N" let go. It works in batches
under --lms-rate (bulk deletions where the LMS has them), prints progress and an
ETA, and commits each batch before the next: after Ctrl-C, a kill or a crash, run
it again and it resumes. Just before each batch it reads the accounts again and
skips any that became active, changed, or belong to someone employed since the
report. When an approved offboarding has no account left to do, its feed is closed:
its events are dead-lettered and its roster uploads refused from then on.`)
	vars := map[string]string{}
	var c connFlags
	var l lmsFlags
	c.register(fs, vars, false)
	l.register(fs, vars)
	l.registerRate(fs, vars)
	batch := fs.Int("batch", 0, "accounts per batch (default: the LMS's bulk size, else 100)")
	var key string
	fs.StringVar(&key, "erasure-key", "", "offboarding with anonymisation: the erasure key (prefer the environment variable)")
	vars["erasure-key"] = erasureKeyEnv
	if err := parseFlags(fs, env, args, vars); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("holds run: want exactly one hold ID")
	}
	id, err := strconv.ParseInt(fs.Arg(0), 10, 64)
	if err != nil {
		return fmt.Errorf("holds run: ID %q is not a number", fs.Arg(0))
	}
	j, err := openJob(ctx, env, &c, &l)
	if err != nil {
		return err
	}
	defer j.app.Close()
	feeds, lms, log, db := j.feeds, j.lms, j.log, j.db
	h, err := db.GetHold(ctx, id)
	if err != nil {
		return err
	}
	runner := connector.JobRunner{LMS: lms, Store: db, Policy: feedPolicies(feeds), Batch: *batch, Logger: log}
	if h.Kind == connector.HoldOffboard {
		if runner.Anonymise, err = offboardAnonymiser(ctx, db, lms, key, env.getenv, h); err != nil {
			return err
		}
	}
	prog := newProgress(env.stderr, "accounts")
	runner.Progress = func(p connector.JobProgress) {
		prog.update(p.Finished, p.Total, fmt.Sprintf("done %d skipped %d failed %d, %d LMS calls", p.Done, p.Skipped, p.Failed, p.Calls))
	}
	sum, err := runner.Run(ctx, id)
	prog.done()
	w := env.stdout
	fmt.Fprintf(w, "hold %d (%s): this run %d done, %d skipped, %d failed, %d LMS calls in %s\n",
		id, sum.Kind, sum.Done, sum.Skipped, sum.Failed, sum.Calls, sum.Elapsed.Round(time.Millisecond))
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "all runs: %d done, %d skipped, %d failed, %d pending\n", sum.Totals[connector.JobDone],
		sum.Totals[connector.JobSkipped], sum.Totals[connector.JobFailed], sum.Totals[connector.JobPending])
	switch {
	case sum.Sample:
		fmt.Fprintf(w, "the test batch is done; check it (hrsync holds show %d --csv -), then approve the rest or reject it\n", id)
	case sum.Complete && h.Kind == connector.HoldOffboard:
		if err := db.CloseFeed(ctx, store.ClosedFeed{Feed: h.Feed, ClosedBy: h.DecidedBy, Reason: h.Decision, HoldID: id}); err != nil {
			return err
		}
		log.Info("feed closed after offboarding", "feed", h.Feed, "hold", id)
		fmt.Fprintf(w, "feed %s is closed: its events are dead-lettered and its roster uploads and tokens refused\n", h.Feed)
	}
	if sum.Totals[connector.JobFailed] > 0 {
		fmt.Fprintf(w, "see the failures: hrsync holds show %d --csv -\n", id)
	}
	return nil
}

func init() {
	reportCommands["dormant"] = reportCommand{"LMS accounts never used (no login, no enrollments) per feed, read from the LMS; CSV and JSON files",
		func(ctx context.Context, env *environment, args []string) error {
			return cmdDormant(ctx, env, args, true)
		}}
}

// showJobHold is "holds show" for a clean-up or offboarding: the hold, its items'
// progress, a sample of its accounts, and with csvPath every account and its status.
func showJobHold(ctx context.Context, env *environment, db *store.DB, h connector.Hold, sample int, csvPath string, asJSON bool) error {
	counts, err := db.JobCounts(ctx, h.ID)
	if err != nil {
		return err
	}
	if csvPath != "" {
		out := env.stdout
		var f *os.File
		if csvPath != "-" {
			if f, err = os.Create(csvPath); err != nil {
				return fmt.Errorf("holds show: %w", err)
			}
			out = f
		}
		cw := csv.NewWriter(out)
		_ = cw.Write(jobCSVHeader)
		n := 0
		for after := 0; ; {
			items, err := db.JobItems(ctx, h.ID, after, 1000)
			if err != nil {
				return err
			}
			for _, it := range items {
				_ = cw.Write(jobCSVRow(it))
			}
			n += len(items)
			if len(items) < 1000 {
				break
			}
			after = items[len(items)-1].Seq
		}
		cw.Flush()
		err = cw.Error()
		if f != nil {
			err = errors.Join(err, f.Close())
			fmt.Fprintf(env.stderr, "wrote %d accounts of hold %d to %s\n", n, h.ID, csvPath)
		}
		if err != nil || csvPath == "-" {
			return err
		}
	}
	items, err := db.JobItems(ctx, h.ID, 0, sample)
	if err != nil {
		return err
	}
	if asJSON {
		var p jobPayload
		_ = json.Unmarshal(h.Payload, &p)
		return json.NewEncoder(env.stdout).Encode(map[string]any{"hold": h, "counts": counts, "report": p, "accounts": items})
	}
	w := env.stdout
	feed := h.Feed
	if feed == "" {
		feed = "(all feeds)"
	}
	fmt.Fprintf(w, "hold %d: %s job of %s, %s\n", h.ID, h.Kind, feed, h.Status)
	fmt.Fprintf(w, "  created   %s\n", h.CreatedAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "  reason    %s\n", h.Reason)
	var p jobPayload
	if json.Unmarshal(h.Payload, &p) == nil && p.Estimate.Items > 0 {
		fmt.Fprintf(w, "  estimate  %s\n", p.Estimate)
	}
	if h.Sample > 0 {
		fmt.Fprintf(w, "  sample    the first %d accounts may run before the decision\n", h.Sample)
	}
	if h.DecidedAt != nil {
		fmt.Fprintf(w, "  decided   %s by %s at %s: %s\n", h.Status, h.DecidedBy, h.DecidedAt.UTC().Format(time.RFC3339), h.Decision)
	}
	fmt.Fprintf(w, "  accounts  %d: %d pending, %d done, %d skipped, %d failed\n", h.Counts.Removals, counts[connector.JobPending],
		counts[connector.JobDone], counts[connector.JobSkipped], counts[connector.JobFailed])
	fmt.Fprintf(w, "\n%d of %d accounts:\n", len(items), h.Counts.Removals)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tACCOUNT\tUSER NAME\tFEED\tACTION\tSTATUS\tDETAIL")
	for _, it := range items {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", it.Seq, it.AccountID, it.UserName, it.Feed(), it.Action, it.Status, it.Detail)
	}
	return tw.Flush()
}
