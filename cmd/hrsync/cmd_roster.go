package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/app"
	"github.com/hrsync/hrsync/cmd/hrsync/internal/roster"
	"github.com/hrsync/hrsync/events"
	"github.com/hrsync/hrsync/store"
)

const rosterDesc = `
Partner organisations send rosters: who joined and who left. hrsync turns a roster
file into contract-v1 events with deterministic ids, so uploading the same file twice
changes nothing.

  hrsync roster upload FILE --feed FEED [--mode snapshot|delta] [--dry-run]
      snapshot: the file is the whole roster; people missing from it are leavers.
      delta:    an action column says add or remove.
      Every row is checked first; errors name the line and the field. If the
      leavers it implies cross the feed's safeguard threshold (default 20% of its
      active people, or 500), nothing is published: the upload becomes a hold that
      a person approves or rejects (hrsync holds), and the command exits 3.
      Rows with a problem are not applied and are listed with their line,
      column, the problem and how to fix it; in a snapshot, a person whose row
      has a problem is kept as they are, never deactivated because of a typo.
      CSV (UTF-8, UTF-16, Windows-1252) and XLSX are read: docs/rosters.md.
  hrsync roster report ID --feed FEED [--format table|csv|json|xlsx] [--out FILE]
                          the per-row report of an upload, to fix the file with
  hrsync roster list      the uploads: file hash, row counts, who sent it, the outcome
  hrsync roster token     print a new upload token and the SHA-256 to configure for a feed

The same upload is served on the admin port: POST /v1/feeds/{feed}/rosters with the
file (CSV or XLSX) as the body, and its report on GET /v1/feeds/{feed}/rosters/{id}/report
(docs/admin-api.md). Formats, encodings, dates and column mapping: docs/rosters.md.`

func newRosterCmd(env *environment) *cobra.Command {
	return group(env, "roster", "partner roster files: upload (snapshot or delta), list uploads, make tokens", rosterDesc,
		newRosterUploadCmd(env), newRosterReportCmd(env), newRosterListCmd(env), newRosterTokenCmd(env))
}

func newRosterReportCmd(env *environment) *cobra.Command {
	cmd := newCmd("report ID", "the per-row report of an upload: line, column, problem, how to fix it", rosterDesc, exactArgs(1, "one upload ID"))
	fs := cmd.Flags()
	var c connFlags
	c.addDB(fs)
	feed := addFeed(fs, "the feed of the upload (required)")
	out := addOutput(fs, true, "table", "csv", "json", "xlsx")
	cmd.Example = "  hrsync roster report 12 --feed partner-acme --format xlsx --out report.xlsx"
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if feed.name == "" {
			return usagef(cmd, "roster report: --feed FEED is required")
		}
		id, err := strconv.ParseInt(args[0], 10, 64)
		if err != nil {
			return usagef(cmd, "roster report: %q is not an upload id (hrsync roster list shows them)", args[0])
		}
		format, err := out.resolve(cmd)
		if err != nil {
			return err
		}
		db, _, err := c.openStore(cmd.Context(), env)
		if err != nil {
			return err
		}
		defer db.Close()
		u, err := db.GetUpload(cmd.Context(), feed.name, id)
		if err != nil {
			return err
		}
		rep, err := roster.UploadReport(u)
		if err != nil {
			return err
		}
		w, done, err := out.create(env)
		if err != nil {
			return err
		}
		return done(fmt.Sprintf("the report of upload %d (%d problems)", id, rep.Total), roster.WriteReport(w, rep, format))
	}
	return cmd
}

func newRosterTokenCmd(env *environment) *cobra.Command {
	cmd := newCmd("token", "print a new upload token and the SHA-256 to configure for a feed", rosterDesc, noArgs)
	cmd.RunE = func(*cobra.Command, []string) error { return roster.WriteNewToken(env.stdout) }
	return cmd
}

func newRosterListCmd(env *environment) *cobra.Command {
	cmd := newCmd("list", "the uploads: file hash, row counts, who sent it, the outcome", rosterDesc, noArgs)
	fs := cmd.Flags()
	var c connFlags
	c.addDB(fs)
	feed := addFeed(fs, "only uploads of this feed")
	limit := fs.Int("limit", 50, "at most this many uploads")
	out := addOutput(fs, true, "table", "csv", "json")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		db, _, err := c.openStore(cmd.Context(), env)
		if err != nil {
			return err
		}
		defer db.Close()
		ups, err := db.ListUploads(cmd.Context(), store.UploadFilter{Feed: feed.name, Limit: *limit})
		if err != nil {
			return err
		}
		r := records{header: []string{"id", "at", "feed", "mode", "file", "sha256", "by", "rows", "hires", "rehires", "leavers", "updates", "not applied", "outcome"}}
		for _, u := range ups {
			outcome := u.Outcome
			if u.HoldID != nil {
				outcome += fmt.Sprintf(" (hold %d)", *u.HoldID)
			}
			r.rows = append(r.rows, []string{strconv.FormatInt(u.ID, 10), u.At.UTC().Format(time.RFC3339), u.Feed, u.Mode, orDash(u.Filename),
				u.SHA256, orDash(u.By), strconv.Itoa(u.Rows), strconv.Itoa(u.Hires), strconv.Itoa(u.Rehires), strconv.Itoa(u.Leavers),
				strconv.Itoa(u.Updates), strconv.Itoa(u.Invalid), outcome})
			r.items = append(r.items, u)
		}
		return out.print(cmd, env, "uploads", r)
	}
	return cmd
}

func newRosterUploadCmd(env *environment) *cobra.Command {
	cmd := newCmd("upload FILE", "validate a roster file (CSV or XLSX) and publish its events (or hold them)", rosterDesc, exactArgs(1, "one FILE (.csv, .txt or .xlsx)"))
	fs := cmd.Flags()
	var c connFlags
	c.addDB(fs)
	c.addConfig(fs)
	c.addNATS(fs)
	feed := addFeed(fs, "the feed the roster belongs to (declared in --config; required)")
	mode := &choice{allowed: []string{"snapshot", "delta"}}
	fs.Var(mode, "mode", "snapshot or delta (default: the feed's roster.mode in the configuration)")
	dry := fs.Bool("dry-run", false, "validate and print the events the upload would produce; change nothing")
	by := fs.String("by", "", "`NAME` of who is uploading, for the record (default: the OS user)")
	out := addOutput(fs, false, "table", "json")
	fs.Lookup("format").Usage = "result format: table (text) or json"
	cmd.Example = "  hrsync roster upload acme.csv --feed partner-acme --mode snapshot --config hrsync.yaml"
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if feed.name == "" {
			return usagef(cmd, "roster upload: --feed FEED is required")
		}
		format, err := out.resolve(cmd)
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		// The upload is judged by the safeguard of the configuration file, the same
		// rule as the daemon's; no flag turns it off or changes its thresholds.
		a, err := c.openApp(ctx, env, nil, app.Options{}, nil)
		if err != nil {
			return err
		}
		defer a.Close()
		path := args[0]
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		who := byOrOSUser(*by)
		up := a.Uploader()
		if !*dry {
			nc, err := natsConnect(&c, feed.name)
			if err != nil {
				return err
			}
			defer nc.Close()
			if up.JS, err = jetstream.New(nc); err != nil {
				return err
			}
		}
		res, err := up.Upload(ctx, roster.Request{Feed: feed.name, Mode: mode.v, Body: f, Filename: filepath.Base(path), By: who, Via: "cli", DryRun: *dry,
			Progress: roster.Progress(env.stderr, time.Now)})
		var refused *events.RosterErrors
		if errors.As(err, &refused) {
			// The person who fixes the file needs each row's fix, not only the error.
			_ = roster.Report{Feed: feed.name, Filename: filepath.Base(path), Outcome: "rejected", UploadID: res.UploadID,
				Problems: refused.Errors, Total: refused.Total}.WriteText(env.stdout)
		}
		if err != nil {
			return err
		}
		defer res.Close()
		if err := roster.WriteResult(env.stdout, filepath.Base(path), &res, format == "json"); err != nil {
			return err
		}
		if res.Outcome == "held" {
			return attentionf("the upload is held as hold %d: a person must approve or reject it", res.HoldID)
		}
		return nil
	}
	return cmd
}

// publishUploadHold publishes the events of an approved upload hold.
func publishUploadHold(ctx context.Context, c *connFlags, db *store.DB, id int64) (int, error) {
	h, err := db.ApprovedHold(ctx, id)
	if err != nil {
		return 0, err
	}
	return withJetStream(c, h.Feed, func(js jetstream.JetStream) (int, error) { return roster.PublishApprovedHold(ctx, db, js, id) })
}

// publishUploadSample publishes the sampled leavers of the open upload hold id
// (hrsync holds approve --sample-batch).
func publishUploadSample(ctx context.Context, c *connFlags, db *store.DB, id int64) (int, error) {
	h, err := db.GetHold(ctx, id)
	if err != nil {
		return 0, err
	}
	return withJetStream(c, h.Feed, func(js jetstream.JetStream) (int, error) { return roster.PublishSample(ctx, db, js, id) })
}

// withJetStream runs publish on a JetStream connection for feed's events.
func withJetStream(c *connFlags, feed string, publish func(jetstream.JetStream) (int, error)) (int, error) {
	nc, err := natsConnect(c, feed)
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, err
	}
	return publish(js)
}

// byOrOSUser is who a command records as the person who caused what it holds:
// --by, or else the OS user (empty if that cannot be read). Four eyes keeps them
// from approving it.
func byOrOSUser(by string) string {
	if by = strings.TrimSpace(by); by != "" {
		return by
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return ""
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
