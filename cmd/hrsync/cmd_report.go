package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/report"
	"github.com/hrsync/hrsync/connector"
)

// reportCommand is one "hrsync report <name>" subcommand.
type reportCommand struct {
	summary string
	run     func(ctx context.Context, env *environment, args []string) error
}

// reportCommands are the subcommands of "hrsync report", by name.
//
// HOOK: another file adds its report by registering it here from its init(),
// e.g. in cmd_rehire.go:
//
//	func init() { reportCommands["rehire"] = reportCommand{"...", cmdReportRehire} }
//
// Package-level variables are initialised before any init() runs, so the map
// exists by then. cmdReport dispatches through it and lists it in its help.
var reportCommands = map[string]reportCommand{
	"headcount": {"active accounts now, or everyone active during a period, per feed and org unit", cmdReportHeadcount},
	"churn":     {"hires, leavers and rehires per month and feed, from the facts' effective dates", cmdReportChurn},
}

const reportDesc = `
Reports from the store's history: the HR facts (folded with the same Want as the
converger) and the audit trail, so that the figures agree with what hrsync did.
Each prints a table, or CSV (cells escaped against formula injection) or JSON with
--format, and ends with a totals row. See docs/reports.md for the exact rules.

Subcommands:`

func reportUsage(w io.Writer) {
	fmt.Fprintf(w, "Usage: hrsync report <subcommand> [flags]\n\n%s\n", strings.TrimSpace(reportDesc))
	names := make([]string, 0, len(reportCommands))
	for n := range reportCommands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, reportCommands[n].summary)
	}
	fmt.Fprintln(w, `
Run "hrsync report <subcommand> -help" for its flags.`)
}

func cmdReport(ctx context.Context, env *environment, args []string) error {
	if len(args) == 0 {
		reportUsage(env.stderr)
		return errors.New("report: want a subcommand")
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		reportUsage(env.stdout)
		return flag.ErrHelp
	}
	sub, ok := reportCommands[args[0]]
	if !ok {
		reportUsage(env.stderr)
		return fmt.Errorf("report: unknown subcommand %q", args[0])
	}
	return sub.run(ctx, env, args[1:])
}

// reportFlags are the flags every report shares.
type reportFlags struct {
	conn   connFlags
	feed   *string
	format *string
	out    *string
	now    *string
	page   *int
}

func (r *reportFlags) register(fs *flag.FlagSet, vars map[string]string) {
	r.conn.registerBase(fs, vars, false)
	r.feed = fs.String("feed", "", "only this feed")
	r.format = fs.String("format", "table", "table, csv or json")
	r.out = fs.String("out", "", "write to this file instead of stdout")
	r.now = fs.String("now", "", "the instant taken as now: RFC 3339 date-time or date (UTC); default the clock")
	r.page = fs.Int("page", 500, "workers read per page (memory is bounded by one page)")
}

// check validates the shared flags and returns now.
func (r *reportFlags) check() (time.Time, error) {
	switch *r.format {
	case "table", "csv", "json":
	default:
		return time.Time{}, fmt.Errorf("--format %q: want table, csv or json", *r.format)
	}
	if *r.page <= 0 {
		return time.Time{}, fmt.Errorf("--page %d: want a positive number", *r.page)
	}
	now, err := parseWhen("--now", *r.now)
	if err != nil {
		return time.Time{}, err
	}
	if now.IsZero() {
		now = time.Now()
	}
	return now.UTC(), nil
}

// write prints t in the chosen format to stdout or --out.
func (r *reportFlags) write(env *environment, t *report.Table) error {
	w := env.stdout
	if *r.out != "" {
		f, err := os.Create(*r.out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	if err := t.Write(w, *r.format); err != nil {
		return err
	}
	if *r.out != "" {
		fmt.Fprintf(env.stderr, "wrote %s report (%d rows) to %s\n", t.Name, len(t.Rows), *r.out)
	}
	return nil
}

func cmdReportHeadcount(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "report headcount", "report headcount [flags]", `
Headcount per feed and org unit (the org unit of the folded profile).

Without --from and --to: the active accounts now. A person counts when their facts
say they are active now AND the last state change hrsync made to their account
(audit: create, deactivate or reactivate with outcome ok) left it active, so a
deactivated account never counts. Two more columns say where HR and the LMS
disagree: pending_active (HR says active, hrsync has not set an account active:
not converged yet, held, or deactivated by hand) and pending_inactive (HR says
not active, the account is still active as hrsync last set it). on_leave counts
people on a leave of absence (their account is deactivated for a while, so they
are not active), pre_hire new hires whose account exists ahead of their start
date under the feed's pre_hire_lead_days (--config): they are not active yet.

With --from and --to: everyone who was active at any instant of [from, to),
including people deactivated since, from the facts (the org unit is the one they
had at the last instant they were active in the period).`)
	vars := map[string]string{}
	var r reportFlags
	r.register(fs, vars)
	from := fs.String("from", "", "period start, inclusive: RFC 3339 date-time or date (UTC)")
	to := fs.String("to", "", "period end, exclusive: RFC 3339 date-time or date (UTC)")
	if err := parseFlags(fs, env, args, vars); err != nil {
		return err
	}
	now, err := r.check()
	if err != nil {
		return err
	}
	f, err := parseWhen("--from", *from)
	if err != nil {
		return err
	}
	t, err := parseWhen("--to", *to)
	if err != nil {
		return err
	}
	if f.IsZero() != t.IsZero() {
		return errors.New("report headcount: give both --from and --to, or neither")
	}
	if !f.IsZero() && !f.Before(t) {
		return fmt.Errorf("report headcount: --from %s is not before --to %s", *from, *to)
	}
	db, _, err := r.conn.openStore(ctx, env)
	if err != nil {
		return err
	}
	defer db.Close()
	var tab *report.Table
	if f.IsZero() {
		var feeds connector.Feeds
		if feeds, _, err = r.conn.feedsAndStream(); err != nil {
			return err
		}
		tab, err = report.Headcount(ctx, db, *r.feed, *r.page, now, report.FeedPolicies(feeds))
	} else {
		tab, err = report.HeadcountPeriod(ctx, db, *r.feed, *r.page, f.UTC(), t.UTC(), now)
	}
	if err != nil {
		return err
	}
	return r.write(env, tab)
}

func cmdReportChurn(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "report churn", "report churn [flags]", `
Hires, leavers and rehires per month and feed, from the facts' effective dates.

Each person's facts are folded with the same Want as the converger, at every
effective time, and a change of state counts once: a hire or rehire that makes
the person active after they were never hired or had left (a second hire of
someone already active does not count; nor does a return from a leave of
absence), a leave that ends their employment (from active, or from a leave of
absence). A leave cancelled by a later rehire (Want's rule)
is neither a leaver nor a rehire. Changes after now are not counted yet. Every
month of the range gets a row per feed, zeros included.`)
	vars := map[string]string{}
	var r reportFlags
	r.register(fs, vars)
	from := fs.String("from", "", "first month, YYYY-MM (default: 11 months before --to)")
	to := fs.String("to", "", "last month, inclusive, YYYY-MM (default: the month of now)")
	tz := fs.String("tz", "UTC", "time zone whose calendar months are counted (IANA name)")
	if err := parseFlags(fs, env, args, vars); err != nil {
		return err
	}
	now, err := r.check()
	if err != nil {
		return err
	}
	loc, err := time.LoadLocation(*tz)
	if err != nil {
		return fmt.Errorf("--tz %q: %w", *tz, err)
	}
	last := monthStart(now.In(loc))
	if *to != "" {
		if last, err = parseMonth("--to", *to, loc); err != nil {
			return err
		}
	}
	first := last.AddDate(0, -11, 0)
	if *from != "" {
		if first, err = parseMonth("--from", *from, loc); err != nil {
			return err
		}
	}
	if last.Before(first) {
		return fmt.Errorf("report churn: --from %s is after --to %s", first.Format("2006-01"), last.Format("2006-01"))
	}
	db, _, err := r.conn.openStore(ctx, env)
	if err != nil {
		return err
	}
	defer db.Close()
	tab, err := report.Churn(ctx, db, *r.feed, *r.page, first, last, now)
	if err != nil {
		return err
	}
	return r.write(env, tab)
}

func monthStart(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, t.Location())
}

func parseMonth(flag, v string, loc *time.Location) (time.Time, error) {
	t, err := time.ParseInLocation("2006-01", v, loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s %q: want a month, YYYY-MM", flag, v)
	}
	return t, nil
}
