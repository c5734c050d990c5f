package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hrsync/hrsync/events"
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
		var b [24]byte
		_, _ = rand.Read(b[:])
		tok := "hrs_" + hex.EncodeToString(b[:])
		sum := sha256.Sum256([]byte(tok))
		fmt.Fprintf(env.stdout, "token:               %s\nupload_token_sha256: %s\n\nGive the token to the feed's uploader; put the SHA-256 under the feed's roster: in the configuration.\n",
			tok, hex.EncodeToString(sum[:]))
		return nil
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
	a, err := c.openApp(ctx, env, nil, appOptions{}, nil)
	if err != nil {
		return err
	}
	defer a.Close()
	db := a.db

	if sub == "list" {
		ups, err := db.ListUploads(ctx, store.UploadFilter{Feed: *feed, Limit: *limit})
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(env.stdout).Encode(ups)
		}
		tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tAT\tFEED\tMODE\tFILE\tSHA256\tBY\tROWS\tHIRES\tREHIRES\tLEAVERS\tUPDATES\tOUTCOME")
		for _, u := range ups {
			outcome := u.Outcome
			if u.HoldID != nil {
				outcome += fmt.Sprintf(" (hold %d)", *u.HoldID)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%.12s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n", u.ID, u.At.UTC().Format(time.RFC3339), u.Feed, u.Mode,
				orDash(u.Filename), u.SHA256, orDash(u.By), u.Rows, u.Hires, u.Rehires, u.Leavers, u.Updates, outcome)
		}
		return tw.Flush()
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
	up := a.uploader()
	if !*dry {
		nc, err := natsConnect(c, *feed)
		if err != nil {
			return err
		}
		defer nc.Close()
		if up.js, err = jetstream.New(nc); err != nil {
			return err
		}
	}
	lastShown := time.Now()
	res, err := up.upload(ctx, uploadRequest{Feed: *feed, Mode: *mode, Body: f, Filename: filepath.Base(path), By: who, Via: "cli", DryRun: *dry,
		Progress: func(rows int) {
			if time.Since(lastShown) > time.Second {
				fmt.Fprintf(env.stderr, "read %d rows...\n", rows)
				lastShown = time.Now()
			}
		}})
	if err != nil {
		return err
	}
	defer res.Close()
	if *asJSON {
		return json.NewEncoder(env.stdout).Encode(res)
	}
	s := res.Summary
	fmt.Fprintf(env.stdout, "%s (%s, %d rows, sha256 %.12s): %d hires, %d rehires, %d leavers, %d updates, %d unchanged; %d active before\n",
		filepath.Base(path), s.Mode, s.Rows, s.SHA256, s.Hires, s.Rehires, s.Leavers, s.Updates, s.Unchanged, s.Active)
	switch res.Outcome {
	case "dry-run":
		fmt.Fprintln(env.stdout, "dry run: nothing was sent. The upload would publish:")
		var evs []events.Event // a table is aligned over all its rows
		if err := res.eachEvent(func(e events.Event) error { evs = append(evs, e); return nil }); err != nil {
			return err
		}
		return events.FormatEvents(env.stdout, evs)
	case "held":
		fmt.Fprintf(env.stdout, "HELD as hold %d, nothing was published: %s\nReview it with: hrsync holds show %d; then hrsync holds approve|reject %d\n",
			res.HoldID, res.Reason, res.HoldID, res.HoldID)
	case "unchanged":
		fmt.Fprintln(env.stdout, "nothing to do: the feed already matches the file")
	default:
		fmt.Fprintf(env.stdout, "published %d events (upload %d)\n", res.Published, res.UploadID)
	}
	return nil
}
