package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/app"
	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/events"
	"github.com/hrsync/hrsync/store"
)

// openStore builds the command's logger and opens its store: an existing one of
// this binary's schema, unless opts say store.Migrate(true) (docs/store.md).
func (c *connFlags) openStore(ctx context.Context, env *environment, opts ...store.Option) (*store.DB, *slog.Logger, error) {
	log, err := newLogger(env.stderr, c.logFormat, c.logLevel)
	if err != nil {
		return nil, nil, err
	}
	db, err := store.Open(ctx, c.db, log, opts...)
	return db, log, err
}

// redactURL hides the password of a database URL for logs (see store.RedactURL).
func redactURL(s string) string { return store.RedactURL(s) }

// redactNATSURL hides the credentials of NATS server URLs (app.RedactNATSURL).
func redactNATSURL(s string) string { return app.RedactNATSURL(s) }

func cmdMigrate(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "migrate", "migrate [flags]", `
Apply the embedded database migrations and exit. "hrsync run" does this at start too;
running it first lets a deployment fail early on a bad DATABASE_URL.`)
	vars := map[string]string{}
	var c connFlags
	c.register(fs, vars, false)
	if err := parseFlags(fs, env, args, vars); err != nil {
		return err
	}
	db, _, err := c.openStore(ctx, env, store.Migrate(true))
	if err != nil {
		return err
	}
	defer db.Close()
	fmt.Fprintf(env.stdout, "migrated %s (%s)\n", redactURL(c.db), db.Backend())
	return nil
}

func cmdDead(ctx context.Context, env *environment, args []string) error {
	const synopsis = "dead list [flags] | dead replay [flags] ID | dead prune [flags]"
	const desc = `
Dead letters are messages hrsync could not apply: not JSON, a broken contract, an
undeclared feed. Each is kept with its raw bytes and a reason naming the field.

  dead list         show them (newest first)
  dead replay ID    decode the message again with the current configuration and record
                    it; use it after fixing the configuration (e.g. declaring a feed)
  dead prune        drop the raw message of dead letters older than --older-than, keeping
                    time, feed, subject, reason, size and SHA-256 (the daemon does this
                    every hour with --dead-letter-retention; see docs/dead-letters.md)`
	if len(args) == 0 || (args[0] != "list" && args[0] != "replay" && args[0] != "prune") {
		fs := newFlagSet(env, "dead", synopsis, desc)
		if err := parseFlags(fs, env, args, nil); err != nil {
			return err
		}
		fs.Usage()
		return errors.New("dead: want list, replay or prune")
	}
	sub, args := args[0], args[1:]
	fs := newFlagSet(env, "dead "+sub, synopsis, desc)
	vars := map[string]string{}
	var c connFlags
	c.registerBase(fs, vars, false)
	asJSON := fs.Bool("json", false, "print JSON lines instead of a table")
	feed := fs.String("feed", "", "only this feed")
	all := fs.Bool("all", false, "include replayed dead letters")
	limit := fs.Int("limit", 100, "at most this many")
	fs.Lookup("feed").Usage = "list: only dead letters of this feed"
	olderThan := fs.Duration("older-than", app.DefaultDeadLetterRetention, "prune: the age after which a dead letter loses its raw message")
	if err := parseFlags(fs, env, args, vars); err != nil {
		return err
	}
	if sub == "prune" && *olderThan <= 0 {
		return fmt.Errorf("dead prune: --older-than %s: must be more than 0", *olderThan)
	}
	// A replay records a fact as the daemon does: through the app's store, with
	// the erasure keys, against the configured feeds.
	a, err := c.openApp(ctx, env, nil, app.Options{}, nil)
	if err != nil {
		return err
	}
	defer a.Close()
	db := a.Store()

	if sub == "prune" {
		n, err := app.PruneDeadLetters(ctx, db, time.Now(), *olderThan)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "pruned the raw messages of %d dead letters older than %s\n", n, *olderThan)
		return nil
	}
	if sub == "list" {
		dls, err := db.ListDeadLetters(ctx, store.DeadLetterFilter{Feed: *feed, IncludeReplayed: *all, Limit: *limit})
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(env.stdout)
			for _, d := range dls {
				if err := enc.Encode(d); err != nil {
					return err
				}
			}
			return nil
		}
		tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tAT\tFEED\tSUBJECT\tREASON")
		for _, d := range dls {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", d.ID, d.At.UTC().Format(time.RFC3339), d.Feed, d.Subject, d.Reason)
		}
		return tw.Flush()
	}

	if fs.NArg() != 1 {
		return errors.New("dead replay: want exactly one dead letter ID")
	}
	id, err := strconv.ParseInt(fs.Arg(0), 10, 64)
	if err != nil {
		return fmt.Errorf("dead replay: ID %q is not a number", fs.Arg(0))
	}
	d, err := db.GetDeadLetter(ctx, id)
	if err != nil {
		return fmt.Errorf("dead letter %d: %w", id, err)
	}
	if d.ReplayedAt != nil {
		return fmt.Errorf("dead letter %d was already replayed at %s", id, d.ReplayedAt.Format(time.RFC3339))
	}
	feeds := a.Settings().Feeds
	msg, err := events.ReplayMessage(d)
	if err != nil {
		return fmt.Errorf("dead letter %d: %w", id, err)
	}
	fact, err := (&events.Decoder{Feeds: feeds}).Decode(msg.Subject, msg.Header, msg.Data)
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

func cmdReview(ctx context.Context, env *environment, args []string) error {
	const desc = `
Review items are decisions hrsync refused to guess: two accounts matching one person,
a partner row whose email belongs to an account outside its scope, an LMS that
rejected a change for good. Each names the worker, the reason and the candidates.`
	if len(args) == 0 || args[0] != "list" {
		fs := newFlagSet(env, "review", "review list [flags]", desc)
		if err := parseFlags(fs, env, args, nil); err != nil {
			return err
		}
		fs.Usage()
		return errors.New("review: want list")
	}
	fs := newFlagSet(env, "review list", "review list [flags]", desc)
	vars := map[string]string{}
	var c connFlags
	c.registerBase(fs, vars, false)
	asJSON := fs.Bool("json", false, "print JSON lines instead of a table")
	feed := fs.String("feed", "", "only this feed")
	fs.Lookup("feed").Usage = "only review items of this feed"
	limit := fs.Int("limit", 100, "at most this many")
	if err := parseFlags(fs, env, args[1:], vars); err != nil {
		return err
	}
	db, _, err := c.openStore(ctx, env)
	if err != nil {
		return err
	}
	defer db.Close()
	items, err := db.ListReviews(ctx, store.ReviewFilter{Feed: *feed, Limit: *limit})
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(env.stdout)
		for _, r := range items {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tAT\tWORKER\tREASON\tCANDIDATES")
	for _, r := range items {
		fmt.Fprintf(tw, "%d\t%s\t%s:%s\t%s\t%v\n", r.ID, r.At.UTC().Format(time.RFC3339), r.Feed, r.WorkerID, r.Reason, r.Candidates)
	}
	return tw.Flush()
}
