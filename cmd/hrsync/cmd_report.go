package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

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
func (r *reportFlags) write(env *environment, t *reportTable) error {
	w := env.stdout
	if *r.out != "" {
		f, err := os.Create(*r.out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	if err := t.write(w, *r.format); err != nil {
		return err
	}
	if *r.out != "" {
		fmt.Fprintf(env.stderr, "wrote %s report (%d rows) to %s\n", t.Name, len(t.Rows), *r.out)
	}
	return nil
}

// reportStore is what the reports read: the paged reads of full reconciliation.
type reportStore interface {
	ListWorkerLinks(ctx context.Context, after connector.WorkerKey, limit int) ([]connector.WorkerLink, error)
	LoadHistories(ctx context.Context, ws []connector.WorkerKey) ([]connector.History, error)
	LastStateActions(ctx context.Context, accountIDs []string) (map[string]connector.AuditEntry, error)
}

// reportPerson is one person as a report sees them: the last worker of their chain of
// rehires, with the facts of the whole chain and the account they converge.
type reportPerson struct {
	Worker    connector.WorkerKey
	AccountID string
	Facts     []connector.Fact // fold order, without duplicates
}

// eachPage pages through the workers (of feed, if set) in key order, page at a
// time, and calls fn with the people of each page. A superseded worker is
// skipped: its successor's history holds its facts, so each person counts once.
func eachPage(ctx context.Context, s reportStore, feed string, page int, fn func([]reportPerson) error) error {
	after := connector.WorkerKey{Feed: feed}
	for {
		wls, err := s.ListWorkerLinks(ctx, after, page)
		if err != nil {
			return err
		}
		if len(wls) == 0 {
			return nil
		}
		after = wls[len(wls)-1].Worker
		var keys []connector.WorkerKey
		acct := map[connector.WorkerKey]string{}
		done := false
		for _, wl := range wls {
			if feed != "" && wl.Worker.Feed != feed {
				done = true
				break
			}
			if wl.Superseded {
				continue
			}
			keys = append(keys, wl.Worker)
			acct[wl.Worker] = wl.AccountID
		}
		if len(keys) > 0 {
			hs, err := s.LoadHistories(ctx, keys)
			if err != nil {
				return err
			}
			ps := make([]reportPerson, len(hs))
			for i, h := range hs {
				ps[i] = reportPerson{Worker: keys[i], AccountID: acct[keys[i]], Facts: connector.SortFacts(h.Facts)}
				if ps[i].AccountID == "" {
					ps[i].AccountID = chainAccount(h)
				}
			}
			if err := fn(ps); err != nil {
				return err
			}
		}
		if done || len(wls) < page {
			return nil
		}
	}
}

// chainAccount is the account of a predecessor along the chain, for a rehired
// worker that has not taken its account over yet ("" if none).
func chainAccount(h connector.History) string {
	ids := make([]string, 0, len(h.Links))
	for id := range h.Links {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if h.Links[id] != "" {
			return h.Links[id]
		}
	}
	return ""
}

// lastSetActive reports whether the last state change hrsync made to an account
// (create, deactivate or reactivate, outcome ok) left it active. A create of a
// leaver's account creates it inactive (connector.ManualDeactivation reads the
// same detail).
func lastSetActive(e connector.AuditEntry, ok bool) bool {
	if !ok {
		return false
	}
	switch e.Action {
	case connector.ActionReactivate:
		return true
	case connector.ActionCreate:
		return !strings.Contains(e.Detail, "created inactive")
	}
	return false
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
	var tab *reportTable
	if f.IsZero() {
		var feeds connector.Feeds
		if feeds, _, err = r.conn.feedsAndStream(); err != nil {
			return err
		}
		policy := func(feed string) connector.Policy {
			if f, ok := feeds[feed]; ok {
				return f.Policy(connector.DefaultPolicy())
			}
			return connector.DefaultPolicy()
		}
		tab, err = headcountNow(ctx, db, *r.feed, *r.page, now, policy)
	} else {
		tab, err = headcountPeriod(ctx, db, *r.feed, *r.page, f.UTC(), t.UTC(), now)
	}
	if err != nil {
		return err
	}
	return r.write(env, tab)
}

// groupKey is one row of a report: a few key cells.
type groupKey [2]string

// counter sums counts per row key, in memory bounded by the number of rows.
type counter map[groupKey][]int

func (c counter) add(k groupKey, n int, col int) {
	if c[k] == nil {
		c[k] = make([]int, n)
	}
	c[k][col]++
}

// headcountNow is the current headcount: see cmdReportHeadcount.
//
// policy gives each feed's policy, for its pre-hire lead time only: whether
// someone is employed is always decided by the default policy.
func headcountNow(ctx context.Context, s reportStore, feed string, page int, now time.Time, policy func(feed string) connector.Policy) (*reportTable, error) {
	const cols = 5
	c := counter{}
	pol := connector.DefaultPolicy()
	err := eachPage(ctx, s, feed, page, func(ps []reportPerson) error {
		var ids []string
		for _, p := range ps {
			if p.AccountID != "" {
				ids = append(ids, p.AccountID)
			}
		}
		last := map[string]connector.AuditEntry{}
		if len(ids) > 0 {
			var err error
			if last, err = s.LastStateActions(ctx, ids); err != nil {
				return err
			}
		}
		for _, p := range ps {
			if len(p.Facts) == 0 {
				continue
			}
			w, _ := connector.Want(p.Facts, now, pol)
			e, ok := last[p.AccountID]
			lmsActive := p.AccountID != "" && lastSetActive(e, ok)
			// A new hire within the feed's pre-hire lead time: not employed
			// yet, but an account active ahead of the start date is right.
			pre, _ := connector.Want(p.Facts, now, policy(p.Worker.Feed))
			k := groupKey{p.Worker.Feed, w.Profile.OrgUnit}
			if pre.PreHire {
				k[1] = pre.Profile.OrgUnit
				c.add(k, cols, 4)
			}
			switch {
			case w.State == connector.StateActive && lmsActive:
				c.add(k, cols, 0)
			case w.State == connector.StateActive:
				c.add(k, cols, 1)
			case lmsActive && !(pre.PreHire && pre.State == connector.StateActive):
				c.add(k, cols, 2)
			}
			if w.State == connector.StateSuspended {
				c.add(k, cols, 3)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	t := &reportTable{Name: "headcount", Params: map[string]string{"mode": "current", "at": now.Format(time.RFC3339)},
		Keys: []string{"feed", "org_unit"}, Counts: []string{"active", "pending_active", "pending_inactive", "on_leave", "pre_hire"}}
	t.fill(c)
	return t, nil
}

// headcountPeriod counts everyone whose folded state was active at some instant
// of [from, to) (instants after now are not looked at). The state only changes at
// a fact's effective time, so the instants to look at are from and every
// effective time inside the period.
func headcountPeriod(ctx context.Context, s reportStore, feed string, page int, from, to, now time.Time) (*reportTable, error) {
	c := counter{}
	pol := connector.DefaultPolicy()
	end := to
	if now.Before(end) {
		end = now.Add(time.Microsecond) // now itself is in the period
	}
	err := eachPage(ctx, s, feed, page, func(ps []reportPerson) error {
		for _, p := range ps {
			if !from.Before(end) {
				return nil // the period starts after now
			}
			instants := []time.Time{from}
			for _, f := range p.Facts {
				if f.Effective.After(from) && f.Effective.Before(end) {
					instants = append(instants, f.Effective)
				}
			}
			instants = slices.CompactFunc(instants, func(a, b time.Time) bool { return a.Equal(b) })
			org, active := "", false
			for _, at := range instants {
				if w, _ := connector.Want(p.Facts, at, pol); w.State == connector.StateActive {
					org, active = w.Profile.OrgUnit, true
				}
			}
			if active {
				c.add(groupKey{p.Worker.Feed, org}, 1, 0)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	t := &reportTable{Name: "headcount", Params: map[string]string{"mode": "period",
		"from": from.Format(time.RFC3339), "to": to.Format(time.RFC3339), "at": now.Format(time.RFC3339)},
		Keys: []string{"feed", "org_unit"}, Counts: []string{"active_in_period"}}
	t.fill(c)
	return t, nil
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
	tab, err := churn(ctx, db, *r.feed, *r.page, first, last, now)
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

// churn counts hires, leavers and rehires per month of [first, last] (month
// starts in their location) and feed. See cmdReportChurn.
func churn(ctx context.Context, s reportStore, feed string, page int, first, last, now time.Time) (*reportTable, error) {
	const cols = 3 // hires, leavers, rehires
	loc := first.Location()
	from, to := first, last.AddDate(0, 1, 0)
	c := counter{}
	feeds := map[string]bool{}
	pol := connector.DefaultPolicy()
	err := eachPage(ctx, s, feed, page, func(ps []reportPerson) error {
		for _, p := range ps {
			feeds[p.Worker.Feed] = true
			byID := make(map[string]connector.Fact, len(p.Facts))
			for _, f := range p.Facts {
				byID[f.Source+"#"+f.ID] = f
			}
			prev := connector.StateAbsent
			for i, f := range p.Facts {
				at := f.Effective
				if at.After(now) || !at.Before(to) {
					break
				}
				if i+1 < len(p.Facts) && p.Facts[i+1].Effective.Equal(at) {
					continue // fold every fact of this instant first
				}
				w, _ := connector.Want(p.Facts, at, pol)
				// The facts of this instant that are in force, and what they say.
				var up connector.Kind
				left := false
				for _, id := range w.FactIDs {
					g := byID[id]
					if !g.Effective.Equal(at) {
						continue
					}
					switch g.Kind {
					case connector.KindHired, connector.KindRehired:
						up = g.Kind
					case connector.KindLeft:
						left = true
					}
				}
				// Not employed before: never hired, or left. Any other state
				// (active, or on a leave of absence) is employed.
				out := prev == connector.StateAbsent || prev == connector.StateInactive
				col := -1
				switch {
				case out && w.State == connector.StateActive && up == connector.KindHired:
					col = 0
				case out && w.State == connector.StateActive && up == connector.KindRehired:
					col = 2
				case !out && w.State == connector.StateInactive && left:
					col = 1
				}
				prev = w.State
				if col >= 0 && !at.Before(from) {
					c.add(groupKey{at.In(loc).Format("2006-01"), p.Worker.Feed}, cols, col)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if feed != "" {
		feeds[feed] = true
	}
	for m := first; m.Before(to); m = m.AddDate(0, 1, 0) {
		for fd := range feeds {
			k := groupKey{m.Format("2006-01"), fd}
			if c[k] == nil {
				c[k] = make([]int, cols)
			}
		}
	}
	t := &reportTable{Name: "churn", Params: map[string]string{"from": first.Format("2006-01"), "to": last.Format("2006-01"),
		"tz": loc.String(), "at": now.Format(time.RFC3339)},
		Keys: []string{"month", "feed"}, Counts: []string{"hires", "leavers", "rehires"}}
	t.fill(c)
	return t, nil
}

// reportTable is a finished report: rows of key cells and counts, and totals.
type reportTable struct {
	Name   string
	Params map[string]string
	Keys   []string
	Counts []string
	Rows   []reportRow
	Total  []int
}

type reportRow struct {
	Keys   []string
	Counts []int
}

// fill sets the rows from c, sorted by key, and the totals.
func (t *reportTable) fill(c counter) {
	t.Total = make([]int, len(t.Counts))
	for k, v := range c {
		t.Rows = append(t.Rows, reportRow{Keys: k[:len(t.Keys)], Counts: v})
		for i, n := range v {
			t.Total[i] += n
		}
	}
	slices.SortFunc(t.Rows, func(a, b reportRow) int { return slices.Compare(a.Keys, b.Keys) })
}

func (t *reportTable) write(w io.Writer, format string) error {
	switch format {
	case "json":
		obj := func(r reportRow) map[string]any {
			m := map[string]any{}
			for i, k := range t.Keys {
				m[k] = r.Keys[i]
			}
			for i, k := range t.Counts {
				m[k] = r.Counts[i]
			}
			return m
		}
		rows := make([]map[string]any, len(t.Rows))
		for i, r := range t.Rows {
			rows[i] = obj(r)
		}
		total := map[string]int{}
		for i, k := range t.Counts {
			total[k] = t.Total[i]
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"report": t.Name, "params": t.Params, "rows": rows, "total": total})
	case "csv":
		cw := csv.NewWriter(w)
		if err := cw.Write(append(slices.Clone(t.Keys), t.Counts...)); err != nil {
			return err
		}
		for _, r := range t.Rows {
			rec := make([]string, 0, len(t.Keys)+len(t.Counts))
			for _, k := range r.Keys {
				rec = append(rec, connector.EscapeCSVCell(k))
			}
			for _, n := range r.Counts {
				rec = append(rec, strconv.Itoa(n))
			}
			if err := cw.Write(rec); err != nil {
				return err
			}
		}
		rec := make([]string, len(t.Keys), len(t.Keys)+len(t.Counts))
		rec[0] = "TOTAL"
		for _, n := range t.Total {
			rec = append(rec, strconv.Itoa(n))
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
		cw.Flush()
		return cw.Error()
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := append(slices.Clone(t.Keys), t.Counts...)
	fmt.Fprintln(tw, strings.ToUpper(strings.Join(head, "\t")))
	for _, r := range t.Rows {
		cells := make([]string, 0, len(head))
		for _, k := range r.Keys {
			cells = append(cells, orDash(k))
		}
		for _, n := range r.Counts {
			cells = append(cells, strconv.Itoa(n))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	cells := make([]string, len(t.Keys), len(head))
	cells[0] = "TOTAL"
	for i := 1; i < len(t.Keys); i++ {
		cells[i] = ""
	}
	for _, n := range t.Total {
		cells = append(cells, strconv.Itoa(n))
	}
	fmt.Fprintln(tw, strings.Join(cells, "\t"))
	return tw.Flush()
}
