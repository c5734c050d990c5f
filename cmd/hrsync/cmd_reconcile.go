package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/app"
	"github.com/hrsync/hrsync/cmd/hrsync/internal/bench"
	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
)

func newReconcileCmd(env *environment) *cobra.Command {
	cmd := newCmd("reconcile", "compare every worker with every LMS account and report drift (--apply fixes it)", `
Compare every worker in the store with every account in the LMS, with the same
decision as live events, and write a drift report: drift.csv, drift.json (findings
and counts) and counts.csv (per feed and class) in --out, plus a summary here.

Classes: in_sync, missing_in_lms, active_should_be_inactive, inactive_should_be_active,
manually_deactivated, profile_drift, unlinked_matched, orphan, duplicate,
disputed_match. docs/reconcile.md explains each, and the method.

A dry run (the default) changes nothing in the LMS or the store. --apply marks the
drifted workers due and lets the converger fix them, with the same safeguards and
audit trail as live events; orphans and duplicates are only reported, never
deleted, and accounts an admin deactivated by hand are reactivated only with
--reactivate-manual.

--bench N seeds a temporary SQLite store and an in-process sandbox LMS with N
linked workers (1% profile drift) and reconciles them, ignoring --db: it
reproduces the figures of docs/reconcile.md. With --lms-url the accounts are
created in that (empty) LMS instead, e.g. "hrsync sandbox-lms" in another
process, so that the peak RSS is this process's alone.

Exits 3 when a dry run found drift: a person should look at the report.`, noArgs)
	fs := cmd.Flags()
	var c connFlags
	var l lmsFlags
	c.addDB(fs)
	c.addConfig(fs)
	l.register(fs)
	out := fs.String("out", "", "`DIR` of the report files (default ./reconcile-<UTC timestamp>)")
	dryRun := fs.Bool("dry-run", true, "report only; change nothing (the default)")
	apply := fs.Bool("apply", false, "mark drifted workers due and converge them (turns --dry-run off)")
	reactivateManual := fs.Bool("reactivate-manual", false, "with --apply, also reactivate accounts an admin deactivated by hand")
	envFlag(fs, "reactivate-manual", "HRSYNC_REACTIVATE_MANUAL")
	asJSON := fs.Bool("json", false, "end the output with one JSON line of counts")
	pageSize := fs.Int("page-size", 1000, "workers and LMS accounts per page; memory is bounded by it")
	concurrency := fs.Int("concurrency", 8, "LMS lookups at once (unlinked workers, link checks) and workers converged at once")
	benchN := fs.Int("bench", 0, "seed N workers and accounts in a temporary store and in-process sandbox, then reconcile them")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if *apply && fs.Changed("dry-run") && *dryRun {
			return usagef(cmd, "--apply and --dry-run: choose one")
		}
		if *reactivateManual && !*apply {
			return usagef(cmd, "--reactivate-manual only means something with --apply")
		}
		return reconcile(cmd.Context(), env, &c, &l, reconcileOptions{out: *out, apply: *apply, reactivateManual: *reactivateManual,
			asJSON: *asJSON, pageSize: *pageSize, concurrency: *concurrency, bench: *benchN})
	}
	return cmd
}

// reconcileOptions are the flags of "hrsync reconcile".
type reconcileOptions struct {
	out                     string
	apply, reactivateManual bool
	asJSON                  bool
	pageSize, concurrency   int
	bench                   int
}

// reconcile is "hrsync reconcile".
func reconcile(ctx context.Context, env *environment, c *connFlags, l *lmsFlags, o reconcileOptions) error {
	log := env.logger(cliLog)
	started := time.Now()

	// Every LMS call goes through the app: the guard, and with --apply the same
	// converger as the daemon's, safeguard and holds included.
	var a *app.App
	var err error
	if o.bench > 0 {
		dir, err := os.MkdirTemp("", "hrsync-reconcile-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		feeds, err := connector.NewFeeds(connector.DefaultFeed("hr", connector.FeedHR))
		if err != nil {
			return err
		}
		set, err := app.SettingsFor("sqlite://"+filepath.Join(dir, "bench.db"), feeds, app.FileConfig{})
		if err != nil {
			return err
		}
		set.LMS = app.LMSConfig{}.Over(l.settings(), nil)
		opts := app.Options{Log: log, ReactivateManual: o.reactivateManual, Migrate: true}
		if l.url == "" {
			// In worker order, as they would be created.
			opts.LMS = sandbox.New(sandbox.WithIDs(func(seq int) string { return fmt.Sprintf("a%08d", seq-1) }))
			o.concurrency = 1
		}
		if a, err = app.Open(ctx, set, opts); err != nil {
			return err
		}
		defer a.Close()
		lms, err := a.LMS()
		if err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "seeding %d workers and accounts...\n", o.bench)
		if err := bench.SeedReconcile(ctx, a.Store(), lms, o.bench, o.concurrency); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		fmt.Fprintf(env.stdout, "seeded in %s\n", time.Since(started).Round(time.Millisecond))
		// The seeding's garbage is not the pass's: return it to the OS first, so
		// that the peak measures the pass (with the in-process sandbox's accounts).
		runtime.GC()
		debug.FreeOSMemory()
		bench.ResetPeakRSS()
	} else {
		if a, err = c.openApp(ctx, env, l, app.Options{Log: log, ReactivateManual: o.reactivateManual}, nil); err != nil {
			return err
		}
		defer a.Close()
	}

	dir := o.out
	if dir == "" {
		dir = "reconcile-" + time.Now().UTC().Format("20060102T150405Z")
	}
	report, err := connector.CreateReport(dir)
	if err != nil {
		return err
	}
	rec, err := a.Reconciler(connector.ReconcilerConfig{PageSize: o.pageSize, Concurrency: o.concurrency, Apply: o.apply})
	if err != nil {
		return err
	}
	passStart := time.Now()
	sum, err := rec.Reconcile(ctx, report.Add)
	if cerr := report.Close(sum); cerr != nil {
		err = errors.Join(err, cerr)
	}
	if err != nil {
		return err
	}
	passTook := time.Since(passStart)
	connector.WriteSummary(env.stdout, sum)
	fmt.Fprintf(env.stdout, "report: %s (%s, %s, %s)\n", dir, connector.ReportCSV, connector.ReportJSON, connector.ReportCounts)

	converged := 0
	if o.apply && sum.MarkedDue > 0 {
		conv, err := a.Converger(connector.ConvergerConfig{Concurrency: o.concurrency})
		if err != nil {
			return err
		}
		converged, err = conv.Drain(ctx, sum.MarkedDue+100)
		if err != nil {
			return fmt.Errorf("converge the marked workers: %w", err)
		}
		fmt.Fprintf(env.stdout, "converged %d workers; review items: hrsync review list\n", converged)
	}
	rss := bench.PeakRSS()
	fmt.Fprintf(env.stdout, "reconcile pass took %s; total %s; peak RSS %.1f MB\n",
		passTook.Round(time.Millisecond), time.Since(started).Round(time.Millisecond), float64(rss)/(1<<20))
	if o.asJSON {
		line := map[string]any{
			"workers": sum.Workers, "accounts": sum.Accounts, "counts": sum.Counts, "by_feed": sum.ByFeed,
			"drift": sum.Drift(), "apply": sum.Apply, "marked_due": sum.MarkedDue, "converged": converged,
			"stale_links": sum.StaleLinks, "skipped": sum.Skipped, "report_dir": dir,
			"pass_ms": passTook.Milliseconds(), "peak_rss_bytes": rss,
		}
		if err := json.NewEncoder(env.stdout).Encode(line); err != nil {
			return err
		}
	}
	if !o.apply && sum.Drift() > 0 {
		return attentionf("%d findings of drift (report: %s); fix them with hrsync reconcile --apply", sum.Drift(), dir)
	}
	return nil
}
