package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/report"
	"github.com/hrsync/hrsync/connector"
)

const reportDesc = `
Reports from the store's history: the HR facts (folded with the same Want as the
converger) and the audit trail, so that the figures agree with what hrsync did;
and from the LMS: dormant accounts, a rehire's prior training. Each prints a
table, or CSV (cells escaped against formula injection) or JSON with --format,
to stdout or --out FILE. See docs/reports.md for the exact rules.`

func newReportCmd(env *environment) *cobra.Command {
	return group(env, "report", "reports: headcount, churn (store history), dormant accounts (LMS), rehire training", reportDesc,
		newReportHeadcountCmd(env), newReportChurnCmd(env), newDormantCmd(env, true), newReportRehireCmd(env))
}

// reportFlags are the flags every report from the store shares.
type reportFlags struct {
	conn connFlags
	feed *feedName
	out  *output
	now  *string
	page *int
}

func (r *reportFlags) register(fs *pflag.FlagSet) {
	r.conn.addDB(fs)
	r.feed = addFeed(fs, "only this feed")
	r.out = addOutput(fs, true, "table", "csv", "json")
	r.now = fs.String("now", "", "the instant taken as now: RFC 3339 date-time or date (UTC); default the clock")
	r.page = fs.Int("page-size", 500, "workers read per page (memory is bounded by one page)")
}

// check validates the shared flags and returns now.
func (r *reportFlags) check(cmd *cobra.Command) (time.Time, error) {
	if *r.page <= 0 {
		return time.Time{}, usagef(cmd, "--page-size %d: want a positive number", *r.page)
	}
	if _, err := r.out.resolve(cmd); err != nil {
		return time.Time{}, err
	}
	now, err := parseWhen("--now", *r.now)
	if err != nil {
		return time.Time{}, usageErr(cmd, err)
	}
	if now.IsZero() {
		now = time.Now()
	}
	return now.UTC(), nil
}

// write prints t in the chosen format to stdout or --out.
func (r *reportFlags) write(cmd *cobra.Command, env *environment, t *report.Table) error {
	format, err := r.out.resolve(cmd)
	if err != nil {
		return err
	}
	w, done, err := r.out.create(env)
	if err != nil {
		return err
	}
	werr := t.Write(w, format)
	return done(fmt.Sprintf("%s report (%d rows)", t.Name, len(t.Rows)), werr)
}

func newReportHeadcountCmd(env *environment) *cobra.Command {
	cmd := newCmd("headcount", "active accounts now, or everyone active during a period, per feed and org unit", `
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
had at the last instant they were active in the period).`, noArgs)
	fs := cmd.Flags()
	var r reportFlags
	r.register(fs)
	r.conn.addConfig(fs)
	from := fs.String("from", "", "period start, inclusive: RFC 3339 date-time or date (UTC)")
	to := fs.String("to", "", "period end, exclusive: RFC 3339 date-time or date (UTC)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		now, err := r.check(cmd)
		if err != nil {
			return err
		}
		f, err := parseWhen("--from", *from)
		if err != nil {
			return usageErr(cmd, err)
		}
		t, err := parseWhen("--to", *to)
		if err != nil {
			return usageErr(cmd, err)
		}
		if f.IsZero() != t.IsZero() {
			return usagef(cmd, "report headcount: give both --from and --to, or neither")
		}
		if !f.IsZero() && !f.Before(t) {
			return usagef(cmd, "report headcount: --from %s is not before --to %s", *from, *to)
		}
		ctx := cmd.Context()
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
			tab, err = report.Headcount(ctx, db, r.feed.name, *r.page, now, report.FeedPolicies(feeds))
		} else {
			tab, err = report.HeadcountPeriod(ctx, db, r.feed.name, *r.page, f.UTC(), t.UTC(), now)
		}
		if err != nil {
			return err
		}
		return r.write(cmd, env, tab)
	}
	return cmd
}

func newReportChurnCmd(env *environment) *cobra.Command {
	cmd := newCmd("churn", "hires, leavers and rehires per month and feed, from the facts' effective dates", `
Hires, leavers and rehires per month and feed, from the facts' effective dates.

Each person's facts are folded with the same Want as the converger, at every
effective time, and a change of state counts once: a hire or rehire that makes
the person active after they were never hired or had left (a second hire of
someone already active does not count; nor does a return from a leave of
absence), a leave that ends their employment (from active, or from a leave of
absence). A leave cancelled by a later rehire (Want's rule)
is neither a leaver nor a rehire. Changes after now are not counted yet. Every
month of the range gets a row per feed, zeros included.`, noArgs)
	fs := cmd.Flags()
	var r reportFlags
	r.register(fs)
	from := fs.String("from", "", "first month, YYYY-MM (default: 11 months before --to)")
	to := fs.String("to", "", "last month, inclusive, YYYY-MM (default: the month of now)")
	tz := fs.String("tz", "UTC", "time zone whose calendar months are counted (IANA name)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		now, err := r.check(cmd)
		if err != nil {
			return err
		}
		loc, err := time.LoadLocation(*tz)
		if err != nil {
			return usagef(cmd, "--tz %q: %w", *tz, err)
		}
		last := monthStart(now.In(loc))
		if *to != "" {
			if last, err = parseMonth("--to", *to, loc); err != nil {
				return usageErr(cmd, err)
			}
		}
		first := last.AddDate(0, -11, 0)
		if *from != "" {
			if first, err = parseMonth("--from", *from, loc); err != nil {
				return usageErr(cmd, err)
			}
		}
		if last.Before(first) {
			return usagef(cmd, "report churn: --from %s is after --to %s", first.Format("2006-01"), last.Format("2006-01"))
		}
		ctx := cmd.Context()
		db, _, err := r.conn.openStore(ctx, env)
		if err != nil {
			return err
		}
		defer db.Close()
		tab, err := report.Churn(ctx, db, r.feed.name, *r.page, first, last, now)
		if err != nil {
			return err
		}
		return r.write(cmd, env, tab)
	}
	return cmd
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
