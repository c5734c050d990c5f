package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/app"
	"github.com/hrsync/hrsync/cmd/hrsync/internal/deadletter"
	"github.com/hrsync/hrsync/cmd/hrsync/internal/review"
	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
)

func newMigrateCmd(env *environment) *cobra.Command {
	cmd := newCmd("migrate", "apply the database migrations and exit", `
Apply the embedded database migrations and exit. "hrsync run" does this at start too;
running it first lets a deployment fail early on a bad DATABASE_URL.`, noArgs)
	var c connFlags
	c.addDB(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		db, _, err := c.openStore(cmd.Context(), env, store.Migrate(true))
		if err != nil {
			return err
		}
		defer db.Close()
		fmt.Fprintf(env.stdout, "migrated %s (%s)\n", redactURL(c.db), db.Backend())
		return nil
	}
	return cmd
}

const deadDesc = `
Dead letters are messages hrsync could not apply: not JSON, a broken contract, an
undeclared feed. Each is kept with its raw bytes and a reason naming the field.
See docs/dead-letters.md.`

func newDeadCmd(env *environment) *cobra.Command {
	return group(env, "dead", "list, show, replay, discard or prune dead-lettered messages", deadDesc,
		newDeadListCmd(env), newDeadShowCmd(env), newDeadReplayCmd(env), newDeadDiscardCmd(env), newDeadPruneCmd(env))
}

func newDeadListCmd(env *environment) *cobra.Command {
	cmd := newCmd("list", "show the dead letters", `
Show the dead letters, newest first (with --limit, the newest), with their feed,
subject and reason. By default the open ones: neither replayed nor discarded.`+"\n"+deadDesc, noArgs)
	fs := cmd.Flags()
	var c connFlags
	c.addDB(fs)
	feed := addFeed(fs, "only dead letters of this feed")
	status := fs.String("status", connector.DeadLetterOpen, "which dead letters: "+strings.Join(store.DeadLetterStatuses, ", "))
	limit := fs.Int("limit", 100, "at most this many, the newest")
	out := addOutput(fs, true, "table", "csv", "json")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if !slices.Contains(store.DeadLetterStatuses, *status) {
			return usagef(cmd, "--status %q: want one of %s", *status, strings.Join(store.DeadLetterStatuses, ", "))
		}
		db, _, err := c.openStore(cmd.Context(), env)
		if err != nil {
			return err
		}
		defer db.Close()
		dls, err := db.ListDeadLetters(cmd.Context(), store.DeadLetterFilter{Feed: feed.name, Status: *status, Limit: *limit})
		if err != nil {
			return err
		}
		r := records{header: []string{"id", "at", "feed", "subject", "status", "reason"}}
		for _, d := range dls {
			r.rows = append(r.rows, []string{strconv.FormatInt(d.ID, 10), d.At.UTC().Format(time.RFC3339), d.Feed, d.Subject, d.Status(), d.Reason})
			r.items = append(r.items, d)
		}
		return out.print(cmd, env, "dead letters", r)
	}
	return cmd
}

func newDeadShowCmd(env *environment) *cobra.Command {
	cmd := newCmd("show ID", "show one dead letter: its raw message decoded, its reason and history", `
Show the dead letter ID: when and from where it came, why it was refused, its raw
message decoded as far as it goes (headers, CloudEvent attributes, data), and what
was done with it since (replays tried, discarded). Control and bidi characters in
the message are shown escaped.`+"\n"+deadDesc, exactArgs(1, "one dead letter ID"))
	fs := cmd.Flags()
	var c connFlags
	c.addDB(fs)
	out := addOutput(fs, false, "table", "json")
	cmd.Example = "  hrsync dead show 3\n  hrsync dead show 3 --format json"
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		id, err := parseID(cmd, "dead letter", args[0])
		if err != nil {
			return err
		}
		db, _, err := c.openStore(cmd.Context(), env)
		if err != nil {
			return err
		}
		defer db.Close()
		sh, err := deadletter.Show(cmd.Context(), db, id)
		if err != nil {
			return err
		}
		format, err := out.resolve(cmd)
		if err != nil {
			return err
		}
		if format == "json" {
			enc := json.NewEncoder(env.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(sh)
		}
		return sh.WriteText(env.stdout)
	}
	return cmd
}

func newDeadReplayCmd(env *environment) *cobra.Command {
	cmd := newCmd("replay ID", "decode a dead letter again with the current configuration and record it", `
Decode the dead letter ID again with the current configuration (--config,
--declare-feed) and record it. Use it after fixing the configuration, e.g. declaring
a feed. The worker is made due at once: a running daemon converges it at its next
poll, with no reconcile. A message that still fails stays a dead letter, with the
attempt in its history.`+"\n"+deadDesc, exactArgs(1, "one dead letter ID"))
	var c connFlags
	c.addDB(cmd.Flags())
	c.addConfig(cmd.Flags())
	by := cmd.Flags().String("by", "", "`NAME` of who replays it, kept in its history")
	cmd.Example = "  hrsync dead replay 3 --config hrsync.yaml"
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		id, err := parseID(cmd, "dead letter", args[0])
		if err != nil {
			return err
		}
		// A replay records a fact as the daemon does: through the app's store, with
		// the erasure keys, against the configured feeds.
		a, err := c.openApp(cmd.Context(), env, nil, app.Options{}, nil)
		if err != nil {
			return err
		}
		defer a.Close()
		r, err := deadletter.Replay(cmd.Context(), a.Store(), a.Settings().Feeds, id, *by)
		if err != nil {
			return err
		}
		return r.WriteText(env.stdout)
	}
	return cmd
}

func newDeadDiscardCmd(env *environment) *cobra.Command {
	cmd := newCmd("discard ID", "give up a dead letter that can never be replayed", `
Give up the dead letter ID: it is never replayed, drops out of "hrsync dead list"
(see it with --status discarded), and is kept for the record with who, why and
when, in its history and the audit trail. --by and --reason are required.`+"\n"+deadDesc, exactArgs(1, "one dead letter ID"))
	fs := cmd.Flags()
	var c connFlags
	c.addDB(fs)
	by := fs.String("by", "", "`NAME` of who decides (required)")
	reason := fs.String("reason", "", "`TEXT` saying why (required)")
	cmd.Example = `  hrsync dead discard 3 --reason "sender retired this event type" --by alice`
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		id, err := parseID(cmd, "dead letter", args[0])
		if err != nil {
			return err
		}
		if strings.TrimSpace(*by) == "" || strings.TrimSpace(*reason) == "" {
			return usagef(cmd, "dead discard: --by and --reason are required: the decision is audited")
		}
		db, _, err := c.openStore(cmd.Context(), env)
		if err != nil {
			return err
		}
		defer db.Close()
		d, err := deadletter.Discard(cmd.Context(), db, id, *by, *reason)
		if err != nil {
			return err
		}
		return deadletter.WriteDiscarded(env.stdout, d)
	}
	return cmd
}

func newDeadPruneCmd(env *environment) *cobra.Command {
	cmd := newCmd("prune", "drop the raw message of old dead letters", `
Drop the raw message of dead letters older than --older-than, keeping time, feed,
subject, reason, size and SHA-256. The daemon does this every hour with
--dead-letter-retention; see docs/dead-letters.md.`, noArgs)
	fs := cmd.Flags()
	var c connFlags
	c.addDB(fs)
	olderThan := fs.Duration("older-than", app.DefaultDeadLetterRetention, "the age after which a dead letter loses its raw message")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if *olderThan <= 0 {
			return usagef(cmd, "dead prune: --older-than %s: must be more than 0", *olderThan)
		}
		db, _, err := c.openStore(cmd.Context(), env)
		if err != nil {
			return err
		}
		defer db.Close()
		n, err := app.PruneDeadLetters(cmd.Context(), db, time.Now(), *olderThan)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "pruned the raw messages of %d dead letters older than %s\n", n, *olderThan)
		return nil
	}
	return cmd
}

const reviewDesc = `
Review items are decisions hrsync refused to guess: two accounts matching one person,
a partner row whose email belongs to an account outside its scope, an LMS that
rejected a change for good. Each names the worker, the reason and the candidates.`

func newReviewCmd(env *environment) *cobra.Command {
	cmd := newCmd("list", "list the open review items", reviewDesc+`

Exits 3 when it lists open items: a person must decide them.`, noArgs)
	fs := cmd.Flags()
	var c connFlags
	c.addDB(fs)
	feed := addFeed(fs, "only review items of this feed")
	limit := fs.Int("limit", 100, "at most this many")
	out := addOutput(fs, true, "table", "csv", "json")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		db, _, err := c.openStore(cmd.Context(), env)
		if err != nil {
			return err
		}
		defer db.Close()
		items, err := db.ListReviews(cmd.Context(), store.ReviewFilter{Feed: feed.name, Limit: *limit})
		if err != nil {
			return err
		}
		r := records{header: []string{"id", "at", "worker", "reason", "candidates"}}
		for _, it := range items {
			r.rows = append(r.rows, []string{strconv.FormatInt(it.ID, 10), it.At.UTC().Format(time.RFC3339), it.Feed + ":" + it.WorkerID,
				it.Reason, strings.Join(it.Candidates, " ")})
			r.items = append(r.items, it)
		}
		if err := out.print(cmd, env, "review items", r); err != nil {
			return err
		}
		if len(items) > 0 {
			return attentionf("%d open review items: a person must decide them", len(items))
		}
		return nil
	}
	return group(env, "review", "list or resolve the items a person must decide", reviewDesc, cmd, newReviewResolveCmd(env))
}

// parseID reads the positional ID of a what (hold, dead letter); not a number is
// a usage error.
func parseID(cmd *cobra.Command, what, arg string) (int64, error) {
	id, err := strconv.ParseInt(arg, 10, 64)
	if err != nil || id <= 0 {
		return 0, usagef(cmd, "%s: %s ID %q is not a positive number", cmd.CommandPath(), what, arg)
	}
	return id, nil
}

func newReviewResolveCmd(env *environment) *cobra.Command {
	cmd := newCmd("resolve ID", "mark a review item decided, and converge its worker again", `
Mark the review item ID resolved, with who and why (--by and --reason, required):
it drops out of "hrsync review list", and the decision is kept with the item and in
the audit trail. Its worker is made due at once, so a running daemon converges it
with what the person fixed (a declared feed, an account merged by hand) at its next
poll, with no reconcile.`+"\n"+reviewDesc, exactArgs(1, "one review item ID"))
	fs := cmd.Flags()
	var c connFlags
	c.addDB(fs)
	by := fs.String("by", "", "`NAME` of who decides (required)")
	reason := fs.String("reason", "", "`TEXT` saying what was decided or fixed (required)")
	cmd.Example = `  hrsync review resolve 4 --reason "merged the duplicate accounts by hand" --by alice`
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		id, err := parseID(cmd, "review item", args[0])
		if err != nil {
			return err
		}
		if strings.TrimSpace(*by) == "" || strings.TrimSpace(*reason) == "" {
			return usagef(cmd, "review resolve: --by and --reason are required: the decision is audited")
		}
		db, _, err := c.openStore(cmd.Context(), env)
		if err != nil {
			return err
		}
		defer db.Close()
		r, err := review.Resolve(cmd.Context(), db, id, *by, *reason)
		if err != nil {
			return err
		}
		return review.WriteResolved(env.stdout, r)
	}
	return cmd
}
