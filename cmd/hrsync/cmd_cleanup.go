package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/app"
	"github.com/hrsync/hrsync/cmd/hrsync/internal/jobs"
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
		t, err := jobs.ParseDate(*before)
		if err != nil {
			return fmt.Errorf("--created-before: %w", err)
		}
		f.CreatedBefore = t
	}
	if err := f.Validate(); err != nil {
		return err
	}
	a, j, err := openJob(ctx, env, &c, &l)
	if err != nil {
		return err
	}
	defer a.Close()
	return j.Dormant(ctx, jobs.DormantRequest{Filter: f, ReportOnly: reportOnly, Dir: *out, PageSize: *pageSize, JSON: *asJSON})
}

// openJob opens the app and builds a job command's jobs.Env on it: the store,
// the LMS behind the guard (rate limit, retries, quarantine), the configured
// feeds, the rate in calls per hour; the caller closes the app.
func openJob(ctx context.Context, env *environment, c *connFlags, l *lmsFlags) (*app.App, jobs.Env, error) {
	a, err := c.openApp(ctx, env, l, app.Options{}, nil)
	if err != nil {
		return nil, jobs.Env{}, err
	}
	lms, err := a.LMS()
	if err != nil {
		a.Close()
		return nil, jobs.Env{}, err
	}
	return a, jobs.Env{Store: a.Store(), LMS: lms, Feeds: a.Settings().Feeds, PerHour: a.PerHour(), Log: a.Log(), Now: a.Clock(),
		Out: env.stdout, Progress: env.stderr}, nil
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
	a, j, err := openJob(ctx, env, &c, &l)
	if err != nil {
		return err
	}
	defer a.Close()
	return j.RunHold(ctx, id, jobs.RunOptions{Batch: *batch, Key: key, Getenv: env.getenv})
}

func init() {
	reportCommands["dormant"] = reportCommand{"LMS accounts never used (no login, no enrollments) per feed, read from the LMS; CSV and JSON files",
		func(ctx context.Context, env *environment, args []string) error {
			return cmdDormant(ctx, env, args, true)
		}}
}

// showJobHold is "holds show" for a clean-up or offboarding (jobs.ShowHold).
func showJobHold(ctx context.Context, env *environment, db *store.DB, h connector.Hold, sample int, csvPath string, asJSON bool) error {
	return jobs.ShowHold(ctx, db, h, sample, csvPath, asJSON, env.stdout, env.stderr)
}
