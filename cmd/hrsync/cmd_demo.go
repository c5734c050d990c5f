package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/app"
	"github.com/hrsync/hrsync/cmd/hrsync/internal/demo"
	"github.com/hrsync/hrsync/cmd/hrsync/internal/flavor"
	"github.com/hrsync/hrsync/events"
)

func newDemoCmd(env *environment) *cobra.Command {
	cmd := newCmd("demo", "play a seeded season through the real path (embedded NATS, SQLite, sandbox LMS)", `
Play one seeded season of a seasonal resort through the real path, with nothing to
install: an in-process NATS JetStream server, SQLite in a temporary directory (or
--db), and the sandbox LMS served on a loopback port, over SCIM or, with --lms, over
a simulator of a vendor's API spoken to by hrsync's adapter for that vendor.

The season: a few hundred hires (some future-dated), training completed over the
summer, seasonal leavers at the end of October (some at 18:00 Berlin time), temps
backfilled with their leave arriving before their hire, a notice withdrawn, rehires in
spring (some with a new email, some under a new worker id), duplicate redeliveries,
and a handful of malformed events. Simulated time moves from phase to phase.

It then checks the LMS against what the season implies (one account per person, the
same account back for every rehire with its completions intact, every bad event in
the dead-letter store) and exits non-zero if any expectation fails.

The safeguard is on at its defaults (more than 20% of the feed's active accounts, or
more than 500, within an hour, is held): the end-of-season leavers cross it, so the
demo shows the hold and then approves it as an admin would with "hrsync holds
approve", after which the held deactivations run.

The pipeline logs text at level error unless --log-format and --log-level say otherwise.`, noArgs)
	fs := cmd.Flags()
	db := fs.String("db", "", "database `URL` (default: SQLite in a temporary directory)")
	asJSON := fs.Bool("json", false, "end with one JSON line of results")
	people := fs.Int("people", 300, "how many seasonal staff are hired")
	seed := fs.Uint64("seed", 1, "random seed of the season")
	lmsFlavor := fs.String("lms", "scim", "the API the sandbox LMS is spoken to with, through hrsync's adapter for it: "+
		strings.Join(flavor.Names(), ", "))
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if *people < 20 || *people > 20000 {
			return usagef(cmd, "--people %d: want 20 to 20000", *people)
		}
		if _, err := flavor.Get(*lmsFlavor); err != nil {
			return usagef(cmd, "--lms: %v", err)
		}
		log := env.logger(logDefaults{"text", "error"})
		tmp, err := os.MkdirTemp("", "hrsync-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dbURL := *db
		if dbURL == "" {
			dbURL = "sqlite://" + filepath.Join(tmp, "hrsync.db")
		}
		open := func(ctx context.Context, p demo.Parts) (demo.Runtime, error) {
			return openDemoRuntime(ctx, dbURL, tmp, log, p)
		}
		res, err := demo.Play(cmd.Context(), demo.Config{Out: env.stdout, People: *people, Seed: *seed, Open: open, LMS: *lmsFlavor})
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		if *asJSON {
			line, _ := json.Marshal(res)
			fmt.Fprintln(env.stdout, string(line))
		}
		if !res.OK {
			return fmt.Errorf("demo: %d expectation(s) failed", len(res.Failures))
		}
		return nil
	}
	return cmd
}

// demoRuntime is the running stack as the demo sees it (demo.Runtime): the
// season publishes to its JetStream, watches its consumer and converges with its
// converger.
var _ demo.Runtime = (*demoRuntime)(nil)

type demoRuntime struct {
	s    *app.Stack
	stop func()
}

// openDemoRuntime starts a stack on the demo's parts (the sandbox LMS, behind the
// guard like any other; the hr feed; the simulated clock) with an embedded NATS
// server under tmp, and its consumer; the converger runs only when the demo drains it.
func openDemoRuntime(ctx context.Context, db, tmp string, log *slog.Logger, p demo.Parts) (demo.Runtime, error) {
	set, err := app.SettingsFor(db, p.Feeds, app.FileConfig{})
	if err != nil {
		return nil, err
	}
	set.LMS = p.LMS // the app opens the adapter lms.type names, behind the guard
	s, err := app.NewStack(ctx, set, app.Options{Log: log, Now: p.Now, Migrate: true}, app.StackConfig{
		EmbeddedNATS: true, EmbeddedDir: filepath.Join(tmp, "nats"), ManageStream: true, Durable: "hrsync",
		Consumer: events.ConsumerConfig{Batch: 128, MaxWait: 50 * time.Millisecond},
	})
	if err != nil {
		return nil, err
	}
	cctx, stopConsumer := context.WithCancel(ctx)
	consumed := make(chan error, 1)
	go func() { consumed <- s.Consume(cctx) }()
	return &demoRuntime{s: s, stop: func() { stopConsumer(); <-consumed }}, nil
}

func (r *demoRuntime) Publish(ctx context.Context, e events.Event, mode events.Mode) error {
	_, err := events.Publish(ctx, r.s.JetStream(), e, mode)
	return err
}

func (r *demoRuntime) PublishMsg(ctx context.Context, msg *nats.Msg) error {
	_, err := r.s.JetStream().PublishMsg(ctx, msg)
	return err
}

func (r *demoRuntime) Drained(ctx context.Context) bool { return r.s.Drained(ctx) }

func (r *demoRuntime) Drain(ctx context.Context, maxPasses int) (int, error) {
	return r.s.Converger().Drain(ctx, maxPasses)
}

func (r *demoRuntime) Store() demo.Store { return r.s.Store() }

func (r *demoRuntime) SettlePeriod() time.Duration { return r.s.App().Settings().Safeguard.Settle }

// Close stops the consumer, then closes the stack.
func (r *demoRuntime) Close() {
	r.stop()
	r.s.Close()
}
