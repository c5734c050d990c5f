package main

import (
	"context"
	"errors"
	"os"
	"os/user"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/app"
	"github.com/hrsync/hrsync/cmd/hrsync/internal/roster"
	"github.com/hrsync/hrsync/store"
)

const rosterDesc = `
Partner organisations send rosters: who joined and who left. hrsync turns a roster
file into contract-v1 events with deterministic ids, so uploading the same file twice
changes nothing.

  roster upload --feed FEED [--mode snapshot|delta] [--dry-run] FILE.csv
      snapshot: the file is the whole roster; people missing from it are leavers.
      delta:    an action column says add or remove.
      Every row is checked first; errors name the line and the field. If the
      leavers it implies cross the feed's safeguard threshold (default 20% of its
      active people, or 500), nothing is published: the upload becomes a hold that
      a person approves or rejects (hrsync holds).
  roster list      the uploads: file hash, row counts, who sent it, the outcome
  roster token     print a new upload token and the SHA-256 to configure for a feed

The same upload is served on the admin port: POST /v1/feeds/{feed}/rosters with the
CSV as the body (see docs/rosters.md). CSV format and column mapping: docs/rosters.md.`

func cmdRoster(ctx context.Context, env *environment, args []string) error {
	if len(args) == 0 || (args[0] != "upload" && args[0] != "list" && args[0] != "token") {
		fs := newFlagSet(env, "roster", "roster upload|list|token [flags]", rosterDesc)
		if err := parseFlags(fs, env, args, nil); err != nil {
			return err
		}
		fs.Usage()
		return errors.New("roster: want upload, list or token")
	}
	sub, args := args[0], args[1:]
	fs := newFlagSet(env, "roster "+sub, "roster "+sub+" [flags]", rosterDesc)
	vars := map[string]string{}
	if sub == "token" {
		if err := parseFlags(fs, env, args, vars); err != nil {
			return err
		}
		return roster.WriteNewToken(env.stdout)
	}
	var c connFlags
	c.registerBase(fs, vars, sub == "upload")
	feed := fs.String("feed", "", "the feed the roster belongs to (declared in --config)")
	asJSON := fs.Bool("json", false, "print JSON instead of text")
	mode := fs.String("mode", "", "snapshot or delta (default: the feed's roster.mode in the configuration)")
	dry := fs.Bool("dry-run", false, "validate and print the events the upload would produce; change nothing")
	by := fs.String("by", "", "who is uploading, for the record (default: the OS user)")
	limit := fs.Int("limit", 50, "list: at most this many uploads")
	if err := parseFlags(fs, env, args, vars); err != nil {
		return err
	}
	// The upload is judged by the safeguard of the configuration file, the same
	// rule as the daemon's; no flag turns it off or changes its thresholds.
	a, err := c.openApp(ctx, env, nil, app.Options{}, nil)
	if err != nil {
		return err
	}
	defer a.Close()
	db := a.Store()

	if sub == "list" {
		ups, err := db.ListUploads(ctx, store.UploadFilter{Feed: *feed, Limit: *limit})
		if err != nil {
			return err
		}
		return roster.WriteUploads(env.stdout, ups, *asJSON)
	}

	if *feed == "" || fs.NArg() != 1 {
		return errors.New("roster upload: want --feed FEED and exactly one FILE.csv")
	}
	path := fs.Arg(0)
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	who := *by
	if who == "" {
		if u, err := user.Current(); err == nil {
			who = u.Username
		}
	}
	up := a.Uploader()
	if !*dry {
		nc, err := natsConnect(c, *feed)
		if err != nil {
			return err
		}
		defer nc.Close()
		if up.JS, err = jetstream.New(nc); err != nil {
			return err
		}
	}
	res, err := up.Upload(ctx, roster.Request{Feed: *feed, Mode: *mode, Body: f, Filename: filepath.Base(path), By: who, Via: "cli", DryRun: *dry,
		Progress: roster.Progress(env.stderr, time.Now)})
	if err != nil {
		return err
	}
	defer res.Close()
	return roster.WriteResult(env.stdout, filepath.Base(path), &res, *asJSON)
}

// publishUploadHold publishes the events of an approved upload hold.
func publishUploadHold(ctx context.Context, c connFlags, db *store.DB, id int64) (int, error) {
	h, err := db.ApprovedHold(ctx, id)
	if err != nil {
		return 0, err
	}
	evs, err := roster.HoldEvents(h)
	if err != nil {
		return 0, err
	}
	nc, err := natsConnect(c, h.Feed)
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, err
	}
	return roster.PublishEvents(ctx, js, evs)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
