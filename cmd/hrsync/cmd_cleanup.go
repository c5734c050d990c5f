package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/app"
	"github.com/hrsync/hrsync/cmd/hrsync/internal/jobs"
	"github.com/hrsync/hrsync/connector"
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

func newCleanupCmd(env *environment) *cobra.Command {
	return group(env, "cleanup", "dormant-account clean-up: report, hold, approve, then delete in resumable batches", cleanupDesc,
		newDormantCmd(env, false))
}

// newDormantCmd is "cleanup dormant" (a hold) or "report dormant" (reportOnly).
func newDormantCmd(env *environment, reportOnly bool) *cobra.Command {
	cmd := newCmd("dormant", "find dormant LMS accounts, write a report and hold their deletion", cleanupDesc+`

Exits 3 when it held accounts: a person must approve or reject the hold.`, noArgs)
	if reportOnly {
		cmd = newCmd("dormant", "LMS accounts never used (no login, no enrollments) per feed, read from the LMS; CSV and JSON files", `
The dormant-account report: how many LMS accounts per feed were never used (no
login, no enrollments, by default), and which. It scans every LMS account and reads
its activity; it changes nothing and creates no hold (hrsync cleanup dormant does).
Filters are those of hrsync cleanup dormant.`, noArgs)
	}
	fs := cmd.Flags()
	var c connFlags
	var l lmsFlags
	c.addDB(fs)
	c.addConfig(fs)
	l.register(fs)
	l.registerRate(fs)
	noLogin := fs.Bool("no-login", reportOnly, "select accounts that never logged in")
	noEnroll := fs.Bool("no-enrollments", reportOnly, "select accounts without enrollments")
	before := fs.String("created-before", "", "select accounts created before this `DATE` (YYYY-MM-DD, UTC) or RFC 3339 time")
	feed := addFeed(fs, "select only accounts of this feed (linked to its workers, or in its scope)")
	orphaned := fs.Bool("orphaned", false, "select only accounts that no feed knows")
	dir := fs.String("out", "", "`DIR` of the report files (default ./cleanup-<UTC timestamp>, or ./dormant-... for the report)")
	pageSize := fs.Int("page-size", 500, "LMS accounts per page")
	var by *string
	if !reportOnly {
		by = fs.String("by", "", "`NAME` of who asks for the clean-up, kept with the hold: they may not approve it (default: the OS user)")
	}
	out := addOutput(fs, false, "table", "json")
	fs.Lookup("format").Usage = "summary format: table (text) or json"
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		format, err := out.resolve(cmd)
		if err != nil {
			return err
		}
		f := connector.DormantFilter{NoLogin: *noLogin, NoEnrollments: *noEnroll, Feed: feed.name, Orphaned: *orphaned}
		if *before != "" {
			t, err := jobs.ParseDate(*before)
			if err != nil {
				return usagef(cmd, "--created-before: %w", err)
			}
			f.CreatedBefore = t
		}
		if err := f.Validate(); err != nil {
			return usageErr(cmd, err)
		}
		ctx := cmd.Context()
		a, j, err := openJob(ctx, env, &c, &l)
		if err != nil {
			return err
		}
		defer a.Close()
		req := jobs.DormantRequest{Filter: f, ReportOnly: reportOnly, Dir: *dir, PageSize: *pageSize, JSON: format == "json"}
		if by != nil {
			req.By = byOrOSUser(*by)
		}
		held, err := j.Dormant(ctx, req)
		if err != nil {
			return err
		}
		if held != 0 {
			return attentionf("hold %d awaits a decision: hrsync holds show %d, then hrsync holds approve|reject %d --by NAME --reason TEXT", held, held, held)
		}
		return nil
	}
	return cmd
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
		Out: env.stdout, Progress: env.stderr, Approvals: a.Settings().Approvals}, nil
}

// newHoldsRunCmd is "holds run ID": run the approved part of a clean-up or
// offboarding job, then close an offboarded feed.
func newHoldsRunCmd(env *environment) *cobra.Command {
	cmd := newCmd("run ID", "run the approved part of a clean-up or offboarding hold", `
Run the approved part of a clean-up or offboarding hold: all of it once approved,
or the test batch that "holds approve ID --sample-batch N" let go. It works in batches
under --lms-rate (bulk deletions where the LMS has them), prints progress and an
ETA, and commits each batch before the next: after Ctrl-C, a kill or a crash, run
it again and it resumes. Just before each batch it reads the accounts again and
skips any that became active, changed, or belong to someone employed since the
report. When an approved offboarding has no account left to do, its feed is closed:
its events are dead-lettered and its roster uploads refused from then on.

Exits 3 when the hold is still open afterwards (a test batch ran; the decision on
the rest is due).`, exactArgs(1, "one hold ID"))
	fs := cmd.Flags()
	var c connFlags
	var l lmsFlags
	c.addDB(fs)
	c.addConfig(fs)
	l.register(fs)
	l.registerRate(fs)
	batch := fs.Int("batch", 0, "accounts per batch (default: the LMS's bulk size, else 100)")
	var key string
	addErasureKey(fs, &key, "offboarding with anonymisation: the erasure key (prefer the environment variable)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		id, err := parseID(cmd, "hold", args[0])
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		a, j, err := openJob(ctx, env, &c, &l)
		if err != nil {
			return err
		}
		defer a.Close()
		if err := j.RunHold(ctx, id, jobs.RunOptions{Batch: *batch, Key: key, Getenv: env.getenv}); err != nil {
			return err
		}
		if h, err := a.Store().GetHold(ctx, id); err == nil && h.Status == connector.HoldOpen {
			return attentionf("hold %d is still open: check the test batch, then hrsync holds approve|reject %d --by NAME --reason TEXT", id, id)
		}
		return nil
	}
	return cmd
}
