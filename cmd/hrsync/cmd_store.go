package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/app"
	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/events"
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
	return group(env, "dead", "list, replay or prune dead-lettered messages", deadDesc,
		newDeadListCmd(env), newDeadReplayCmd(env), newDeadPruneCmd(env))
}

func newDeadListCmd(env *environment) *cobra.Command {
	cmd := newCmd("list", "show the dead letters", `
Show the dead letters (newest first), with their feed, subject and reason.`+"\n"+deadDesc, noArgs)
	fs := cmd.Flags()
	var c connFlags
	c.addDB(fs)
	feed := addFeed(fs, "only dead letters of this feed")
	all := fs.Bool("all", false, "include replayed dead letters")
	limit := fs.Int("limit", 100, "at most this many")
	out := addOutput(fs, true, "table", "csv", "json")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		db, _, err := c.openStore(cmd.Context(), env)
		if err != nil {
			return err
		}
		defer db.Close()
		dls, err := db.ListDeadLetters(cmd.Context(), store.DeadLetterFilter{Feed: feed.name, IncludeReplayed: *all, Limit: *limit})
		if err != nil {
			return err
		}
		r := records{header: []string{"id", "at", "feed", "subject", "reason"}}
		for _, d := range dls {
			r.rows = append(r.rows, []string{strconv.FormatInt(d.ID, 10), d.At.UTC().Format(time.RFC3339), d.Feed, d.Subject, d.Reason})
			r.items = append(r.items, d)
		}
		return out.print(cmd, env, "dead letters", r)
	}
	return cmd
}

func newDeadReplayCmd(env *environment) *cobra.Command {
	cmd := newCmd("replay ID", "decode a dead letter again with the current configuration and record it", `
Decode the dead letter ID again with the current configuration (--config,
--declare-feed) and record it. Use it after fixing the configuration, e.g. declaring
a feed; a running daemon converges the fact.`+"\n"+deadDesc, exactArgs(1, "one dead letter ID"))
	var c connFlags
	c.addDB(cmd.Flags())
	c.addConfig(cmd.Flags())
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
		return replayDeadLetter(cmd.Context(), env, a, id)
	}
	return cmd
}

// replayDeadLetter decodes dead letter id with the app's feeds and records it.
func replayDeadLetter(ctx context.Context, env *environment, a *app.App, id int64) error {
	db := a.Store()
	d, err := db.GetDeadLetter(ctx, id)
	if err != nil {
		return fmt.Errorf("dead letter %d: %w", id, err)
	}
	if d.ReplayedAt != nil {
		return fmt.Errorf("dead letter %d was already replayed at %s", id, d.ReplayedAt.Format(time.RFC3339))
	}
	msg, err := events.ReplayMessage(d)
	if err != nil {
		return fmt.Errorf("dead letter %d: %w", id, err)
	}
	fact, err := (&events.Decoder{Feeds: a.Settings().Feeds}).Decode(msg.Subject, msg.Header, msg.Data)
	if err != nil {
		return fmt.Errorf("dead letter %d still fails: %w", id, err)
	}
	n, err := db.RecordFacts(ctx, []connector.Fact{fact})
	if err != nil {
		return fmt.Errorf("record dead letter %d: %w", id, err)
	}
	if err := db.MarkDeadLetterReplayed(ctx, id, time.Now()); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "dead letter %d replayed: %s %s for %s:%s (%d new fact; a running daemon converges it)\n",
		id, fact.Kind, fact.ID, fact.Feed, fact.WorkerID, n)
	return nil
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
	return group(env, "review", "list the items a person must decide", reviewDesc, cmd)
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
