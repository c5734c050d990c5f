package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

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
  hrsync feed status NAME
      whether the feed is closed, when and by whom.`

func newFeedCmd(env *environment) *cobra.Command {
	return group(env, "feed", "partner offboarding: delete or anonymise every account of a feed, then close it", feedDesc,
		newFeedOffboardCmd(env), newFeedStatusCmd(env))
}

func newFeedOffboardCmd(env *environment) *cobra.Command {
	cmd := newCmd("offboard NAME", "hold the deletion or anonymisation of every account of a partner feed", feedDesc+`

Asked again while the feed's offboarding hold is open or approved, it names that
hold and holds nothing new. The report directory (default
offboard-NAME-holdID-TIMESTAMP) names the hold. Exits 3 when a hold awaits a person
(a decision, or hrsync holds run).`, exactArgs(1, "one feed name"))
	fs := cmd.Flags()
	var c connFlags
	var l lmsFlags
	c.addDB(fs)
	c.addConfig(fs)
	l.register(fs)
	l.registerRate(fs)
	by := fs.String("by", "", "`NAME` of who asks for it (required)")
	reason := fs.String("reason", "", "`TEXT` saying why, e.g. the contract's end (required)")
	out := fs.String("out", "", "`DIR` of the report files (default ./offboard-<feed>-hold<id>-<UTC timestamp>)")
	cmd.Example = `  hrsync feed offboard partner-acme --by alice --reason "contract ended" --config hrsync.yaml`
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		name := args[0]
		if strings.TrimSpace(*by) == "" || strings.TrimSpace(*reason) == "" {
			return usagef(cmd, "feed offboard: --by and --reason are required: the plan is audited")
		}
		ctx := cmd.Context()
		a, j, err := openJob(ctx, env, &c, &l)
		if err != nil {
			return err
		}
		defer a.Close()
		held, err := j.Offboard(ctx, jobs.OffboardRequest{Feed: name, Keep: a.Settings().Retention.Keep(name), By: *by, Reason: *reason, Dir: *out})
		if err != nil {
			return err
		}
		if held != 0 {
			return attentionf("the offboarding of feed %s is hold %d, which awaits a person (see the next steps above)", name, held)
		}
		return nil
	}
	return cmd
}

func newFeedStatusCmd(env *environment) *cobra.Command {
	cmd := newCmd("status NAME", "whether a feed is closed, when and by whom", feedDesc, exactArgs(1, "one feed name"))
	var c connFlags
	c.addDB(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		name := args[0]
		db, _, err := c.openStore(cmd.Context(), env)
		if err != nil {
			return err
		}
		defer db.Close()
		cl, closed, err := db.FeedClosed(cmd.Context(), name)
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
	return cmd
}
