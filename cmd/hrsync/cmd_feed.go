package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/jobs"
)

const feedDesc = `
Partner offboarding: when a business relationship ends, every account of the
partner's feed is deleted or anonymised, and the feed is closed.

  hrsync feed offboard NAME --by WHO --reason TEXT
      scans the LMS for every account of the feed (linked to its workers, or in its
      scope), writes a report and holds the plan; nothing changes yet. The action is
      the feed's retention policy: anonymise (keep the learning records,
      pseudonymised: retention.keep_learning_records true, the default) or delete.
  hrsync holds approve ID --by WHO --reason TEXT   (--sample-batch N to test first)
  hrsync holds run ID
      runs it in batches under --lms-rate, resumable; anonymising needs the erasure
      key (HRSYNC_ERASURE_KEY), as hrsync erase does, and erases each linked worker
      from the store too. When every account is done, the feed is closed: its events
      are dead-lettered, its roster uploads and upload tokens refused.
      Asked again while the feed's offboarding hold is open or approved, it names
      that hold, holds nothing new and exits 0. The report directory (default
      offboard-NAME-holdID-TIMESTAMP) names the hold.
  hrsync feed status NAME
      whether the feed is closed, when and by whom.`

func cmdFeed(ctx context.Context, env *environment, args []string) error {
	if len(args) == 0 || (args[0] != "offboard" && args[0] != "status") {
		fs := newFlagSet(env, "feed", "feed offboard|status NAME [flags]", feedDesc)
		if err := parseFlags(fs, env, args, nil); err != nil {
			return err
		}
		fs.Usage()
		return errors.New("feed: want offboard or status")
	}
	sub, args := args[0], args[1:]
	fs := newFlagSet(env, "feed "+sub, "feed "+sub+" NAME [flags]", feedDesc)
	vars := map[string]string{}
	var c connFlags
	var l lmsFlags
	c.register(fs, vars, false)
	if sub == "offboard" {
		l.register(fs, vars)
		l.registerRate(fs, vars)
	}
	by := fs.String("by", "", "offboard: who asks for it (required)")
	reason := fs.String("reason", "", "offboard: why, e.g. the contract's end (required)")
	out := fs.String("out", "", "offboard: directory of the report files (default ./offboard-<feed>-hold<id>-<UTC timestamp>)")
	// The feed name may come first (feed offboard acme --by ...) or last.
	var name string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if err := parseFlags(fs, env, args, vars); err != nil {
		return err
	}
	if name == "" && fs.NArg() == 1 {
		name = fs.Arg(0)
	} else if name == "" || fs.NArg() != 0 {
		return fmt.Errorf("feed %s: want exactly one feed name", sub)
	}
	if sub == "status" {
		db, _, err := c.openStore(ctx, env)
		if err != nil {
			return err
		}
		defer db.Close()
		cl, closed, err := db.FeedClosed(ctx, name)
		if err != nil {
			return err
		}
		if !closed {
			fmt.Fprintf(env.stdout, "feed %s is open\n", name)
			return nil
		}
		fmt.Fprintf(env.stdout, "feed %s was closed on %s by %s (hold %d): %s\n", name, cl.ClosedAt.UTC().Format(time.RFC3339), cl.ClosedBy, cl.HoldID, cl.Reason)
		return nil
	}
	if strings.TrimSpace(*by) == "" || strings.TrimSpace(*reason) == "" {
		return errors.New("feed offboard: --by and --reason are required: the plan is audited")
	}
	a, j, err := openJob(ctx, env, &c, &l)
	if err != nil {
		return err
	}
	defer a.Close()
	return j.Offboard(ctx, jobs.OffboardRequest{Feed: name, Keep: a.Settings().Retention.Keep(name), By: *by, Reason: *reason, Dir: *out})
}
