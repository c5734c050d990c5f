package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/app"
	"github.com/hrsync/hrsync/cmd/hrsync/internal/report"
	"github.com/hrsync/hrsync/connector"
)

func init() {
	reportCommands["rehire"] = reportCommand{"a rehire's prior course completions, marked expired under each course's validity", cmdReportRehire}
}

// validityFlag collects --validity course=duration[,course=duration...].
type validityFlag map[string]time.Duration

func (v validityFlag) String() string {
	var parts []string
	for c, d := range v {
		parts = append(parts, c+"="+d.String())
	}
	return strings.Join(parts, ",")
}

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

func cmdReportRehire(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "report rehire", "report rehire --worker FEED:ID [flags]", `
List a rehire's prior course completions from the LMS, one row per course (the
latest completion counts), and mark each expired or valid under the course's
validity period: the configuration's courses map (courses: {safety-101: {validity:
8760h}}), overridden by --validity. A course without a validity never expires.
The LMS must report learning records (the sandbox LMS and SCIM servers with the
hrsync training extension do). The account is found by externalId FEED:ID, or
named with --account.`)
	vars := map[string]string{}
	var l lmsFlags
	l.register(fs, vars)
	config := fs.String("config", "", "configuration file (YAML) with the courses' validity")
	vars["config"] = "HRSYNC_CONFIG"
	worker := fs.String("worker", "", "the worker, FEED:ID (required unless --account)")
	account := fs.String("account", "", "the LMS account id, instead of finding it by --worker's externalId")
	validity := validityFlag{}
	fs.Var(validity, "validity", "per-course validity, COURSE=DURATION[,...] (e.g. safety-101=8760h); overrides the configuration")
	format := fs.String("format", "table", "table or json")
	nowFlag := fs.String("now", "", "the instant taken as now: RFC 3339 date-time or date (UTC); default the clock")
	if err := parseFlags(fs, env, args, vars); err != nil {
		return err
	}
	if *format != "table" && *format != "json" {
		return fmt.Errorf("--format %q: want table or json", *format)
	}
	if *worker == "" && *account == "" {
		return errors.New("--worker FEED:ID or --account ID is required")
	}
	var key connector.WorkerKey
	if *worker != "" {
		feed, id, ok := strings.Cut(*worker, ":")
		if !ok || !connector.ValidFeedName(feed) || id == "" {
			return fmt.Errorf("--worker %q: want FEED:ID, e.g. hr:w-1001", *worker)
		}
		key = connector.WorkerKey{Feed: feed, WorkerID: id}
	}
	now, err := parseWhen("--now", *nowFlag)
	if err != nil {
		return err
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
	var lms connector.LMS
	lms, err = app.GuardedLMS(fc.LMS.Over(l.settings()), nil, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		return err
	}
	rep, err := report.Rehire(ctx, lms, report.RehireQuery{Worker: key, AccountID: *account, Validity: periods, Now: now})
	if err != nil {
		return err
	}
	return rep.Write(env.stdout, *format)
}

var _ flag.Value = validityFlag{}
