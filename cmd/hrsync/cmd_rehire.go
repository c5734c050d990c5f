package main

import (
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/app"
	"github.com/hrsync/hrsync/cmd/hrsync/internal/report"
	"github.com/hrsync/hrsync/connector"
)

// validityFlag collects --validity course=duration[,course=duration...].
type validityFlag map[string]time.Duration

func (v validityFlag) String() string {
	var parts []string
	for c, d := range v {
		parts = append(parts, c+"="+d.String())
	}
	return strings.Join(parts, ",")
}

func (v validityFlag) Type() string { return "COURSE=DURATION[,...]" }

func (v validityFlag) Set(s string) error {
	for _, item := range strings.Split(s, ",") {
		course, dur, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok || course == "" {
			return fmt.Errorf("want COURSE=DURATION (e.g. safety-101=8760h), got %q", item)
		}
		d, err := time.ParseDuration(dur)
		if err != nil || d < 0 {
			return fmt.Errorf("course %q: validity %q is not a duration such as 8760h", course, dur)
		}
		v[course] = d
	}
	return nil
}

func newReportRehireCmd(env *environment) *cobra.Command {
	cmd := newCmd("rehire", "a rehire's prior course completions, marked expired under each course's validity", `
List a rehire's prior course completions from the LMS, one row per course (the
latest completion counts), and mark each expired or valid under the course's
validity period: the configuration's courses map (courses: {safety-101: {validity:
8760h}}), overridden by --validity. A course without a validity never expires.
The LMS must report learning records (the sandbox LMS and SCIM servers with the
hrsync training extension do). The account is found by externalId FEED:ID, or
named with --account.`, noArgs)
	cmd.Example = "  hrsync report rehire --worker hr:w-1001 --lms-url http://127.0.0.1:8081/scim/v2 --format csv"
	fs := cmd.Flags()
	var l lmsFlags
	l.register(fs)
	config := fs.String("config", "", "configuration `FILE` (YAML) with the courses' validity")
	envFlag(fs, "config", "HRSYNC_CONFIG")
	worker := fs.String("worker", "", "the worker, `FEED:ID` (required unless --account)")
	account := fs.String("account", "", "the LMS account id, instead of finding it by --worker's externalId")
	validity := validityFlag{}
	fs.Var(validity, "validity", "per-course validity (e.g. safety-101=8760h); overrides the configuration")
	out := addOutput(fs, true, "table", "csv", "json")
	nowFlag := fs.String("now", "", "the instant taken as now: RFC 3339 date-time or date (UTC); default the clock")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		format, err := out.resolve(cmd)
		if err != nil {
			return err
		}
		if *worker == "" && *account == "" {
			return usagef(cmd, "--worker FEED:ID or --account ID is required")
		}
		var key connector.WorkerKey
		if *worker != "" {
			feed, id, ok := strings.Cut(*worker, ":")
			if !ok || !connector.ValidFeedName(feed) || id == "" {
				return usagef(cmd, "--worker %q: want FEED:ID, e.g. hr:w-1001", *worker)
			}
			key = connector.WorkerKey{Feed: feed, WorkerID: id}
		}
		now, err := parseWhen("--now", *nowFlag)
		if err != nil {
			return usageErr(cmd, err)
		}
		if now.IsZero() {
			now = time.Now()
		}
		fc, err := app.LoadConfigFile(*config)
		if err != nil {
			return err
		}
		periods, err := fc.CourseValidity()
		if err != nil {
			return err
		}
		for course, d := range validity {
			periods[course] = d
		}
		lms, err := app.GuardedLMS(fc.LMS.Over(l.settings(), env.getenv), nil, slog.New(slog.DiscardHandler), nil)
		if err != nil {
			return err
		}
		rep, err := report.Rehire(cmd.Context(), lms, report.RehireQuery{Worker: key, AccountID: *account, Validity: periods, Now: now})
		if err != nil {
			return err
		}
		w, done, err := out.create(env)
		if err != nil {
			return err
		}
		werr := writeRehire(w, format, rep)
		return done(fmt.Sprintf("%d courses", len(rep.Courses)), werr)
	}
	return cmd
}

// writeRehire prints the rehire report: its table and JSON are package report's;
// CSV has one row a course.
func writeRehire(w io.Writer, format string, rep *report.Rehired) error {
	if format != "csv" {
		return rep.Write(w, format)
	}
	date := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.Format(time.DateOnly)
	}
	var rows [][]string
	for _, c := range rep.Courses {
		rows = append(rows, []string{rep.Worker, rep.AccountID, c.Course, date(c.CompletedAt), strconv.Itoa(c.Completions), c.Validity,
			date(c.ExpiresAt), string(c.Status)})
	}
	return writeCSV(w, []string{"worker", "account_id", "course", "completed_at", "completions", "validity", "expires_at", "status"}, rows)
}

var _ pflag.Value = validityFlag{}
