package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hrsync/hrsync/connector"
)

func init() {
	reportCommands["rehire"] = reportCommand{"a rehire's prior course completions, marked expired under each course's validity", cmdReportRehire}
}

// courseConfig is one course of the configuration's top-level courses map.
type courseConfig struct {
	// Validity is how long a completion counts, e.g. 8760h; 0: forever.
	Validity time.Duration `yaml:"validity"`
}

// courseValidity reads the courses' validity periods from the configuration file
// (none without one).
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

// rehireRow is one line of the report, as JSON.
type rehireRow struct {
	Course      string    `json:"course"`
	CompletedAt time.Time `json:"completed_at"`
	Completions int       `json:"completions"`
	Validity    string    `json:"validity,omitempty"`
	ExpiresAt   time.Time `json:"expires_at,omitzero"`
	Status      string    `json:"status"`
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
	fc, err := loadConfigFile(*config)
	if err != nil {
		return err
	}
	periods, err := fc.courseValidity()
	if err != nil {
		return err
	}
	for course, d := range validity {
		periods[course] = d
	}
	var lms connector.LMS
	lms, err = guardedLMS(fc.LMS.over(&l), nil, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		return err
	}
	tr, ok := lms.(connector.TrainingReader)
	if !ok {
		return connector.ErrTrainingUnknown
	}
	id := *account
	if id == "" {
		found, err := lms.FindAccounts(ctx, connector.AccountFilter{Attr: connector.ByExternalID, Value: key.ExternalID()})
		if err != nil {
			return fmt.Errorf("find the account of %s: %w", key, err)
		}
		switch len(found) {
		case 0:
			return fmt.Errorf("no LMS account has externalId %q; name it with --account", key.ExternalID())
		case 1:
			id = found[0].ID
		default:
			var ids []string
			for _, a := range found {
				ids = append(ids, a.ID)
			}
			return fmt.Errorf("%d LMS accounts have externalId %q (%s); name one with --account", len(found), key.ExternalID(), strings.Join(ids, ", "))
		}
	}
	comps, err := tr.Completions(ctx, id)
	if err != nil {
		return fmt.Errorf("read the completions of account %s: %w", id, err)
	}
	report := connector.RehireTraining(comps, periods, now.UTC())
	rows := make([]rehireRow, len(report))
	expired := 0
	for i, s := range report {
		rows[i] = rehireRow{Course: s.Course, CompletedAt: s.CompletedAt, Completions: s.Completions, ExpiresAt: s.ExpiresAt, Status: s.Status}
		if s.Validity > 0 {
			rows[i].Validity = s.Validity.String()
		}
		if s.Expired() {
			expired++
		}
	}
	if *format == "json" {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Worker    string      `json:"worker,omitempty"`
			AccountID string      `json:"account_id"`
			Now       time.Time   `json:"now"`
			Courses   []rehireRow `json:"courses"`
			Expired   int         `json:"expired"`
		}{Worker: *worker, AccountID: id, Now: now.UTC(), Courses: rows, Expired: expired})
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COURSE\tCOMPLETED\tCOMPLETIONS\tVALIDITY\tEXPIRES\tSTATUS")
	for _, r := range rows {
		exp, val := "-", "-"
		if !r.ExpiresAt.IsZero() {
			exp, val = r.ExpiresAt.Format(time.DateOnly), r.Validity
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", r.Course, r.CompletedAt.Format(time.DateOnly), r.Completions, val, exp, r.Status)
	}
	fmt.Fprintf(tw, "account %s: %d courses, %d expired (reassign those)\n", id, len(rows), expired)
	return tw.Flush()
}

var _ flag.Value = validityFlag{}
