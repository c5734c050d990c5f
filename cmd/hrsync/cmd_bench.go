package main

import (
	"context"
	"database/sql"
	"net/url"
	"time"

	_ "github.com/lib/pq" // the baseline writes to PostgreSQL directly
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/app"
	"github.com/hrsync/hrsync/cmd/hrsync/internal/bench"
	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/events"
)

func newBenchCmd(env *environment) *cobra.Command {
	cmd := newCmd("bench", "end-to-end throughput and latency benchmark against a baseline", `
A benchmark, not a test. It pushes N hire events end to end: publish to JetStream →
consume → record in PostgreSQL → converge → create the account in the LMS (the
in-process sandbox, or any SCIM LMS with --lms-url). It prints events/s and the p50/p99
latency from publish to the LMS call returning.

Beside it, measured in the same run on the same machine, a baseline: bare JetStream
consume and ack with batched PostgreSQL inserts of the same number of events. The
bench works in a fresh PostgreSQL schema that it drops afterwards.`, noArgs)
	fs := cmd.Flags()
	dbURL := fs.String("db", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "PostgreSQL `URL` (a fresh schema is used and dropped)")
	envFlag(fs, "db", "DATABASE_URL")
	n := fs.Int("events", 20000, "number of events")
	natsURL := fs.String("nats-url", "", "NATS server `URL` with JetStream (default: an embedded in-process server)")
	var l lmsFlags
	l.register(fs)
	fs.Lookup("lms-url").Usage = "SCIM base `URL` of an LMS to create the accounts in (default: the in-process sandbox) (env LMS_URL)"
	concurrency := fs.Int("concurrency", 16, "workers converged at once")
	batch := fs.Int("batch", 512, "messages per consume batch")
	convBatch := fs.Int("converge-batch", 256, "workers per converge claim")
	loops := fs.Int("loops", 2, "converge batches in flight at once")
	asJSON := fs.Bool("json", false, "end with one JSON line of results")
	keep := fs.Bool("keep-schema", false, "do not drop the schema afterwards")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the end-to-end run to this file")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if *n < 100 || *n > 2_000_000 {
			return usagef(cmd, "--events %d: want 100 to 2000000", *n)
		}
		if u, err := url.Parse(*dbURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			return usagef(cmd, "--db %q: bench needs a postgres:// URL", redactURL(*dbURL))
		}
		ctx := cmd.Context()
		log := env.logger(cliLog)

		// A fresh schema, so a bench never touches real data.
		admin, err := sql.Open("postgres", *dbURL)
		if err != nil {
			return err
		}
		defer admin.Close()
		schema, schemaURL, err := bench.CreateSchema(ctx, admin, *dbURL)
		if err != nil {
			return err
		}
		if !*keep {
			defer func() { _ = bench.DropSchema(context.WithoutCancel(ctx), admin, schema) }()
		}

		feeds, _ := connector.NewFeeds(connector.DefaultFeed(bench.Feed, connector.FeedHR))
		set, err := app.SettingsFor(schemaURL, feeds, app.FileConfig{})
		if err != nil {
			return err
		}
		set.Stream.Prefix = bench.StreamPrefix
		// The LMS (the sandbox, or the SCIM LMS of --lms-url, opened by the app) is
		// timed inside the guard.
		var timed *bench.TimedLMS
		o := app.Options{Log: log, Migrate: true, WrapLMS: func(lms connector.LMS) connector.LMS {
			timed = bench.NewTimedLMS(lms, *n)
			return timed
		}}
		lmsName := "in-process sandbox"
		if l.url != "" {
			set.LMS = app.LMSConfig{}.Over(l.settings())
			if err := app.CheckLMS(set.LMS); err != nil {
				return err
			}
			lmsName = "SCIM at " + l.url
		} else {
			o.LMS = sandbox.New()
		}
		s, err := app.NewStack(ctx, set, o, app.StackConfig{
			NATSURL: *natsURL, EmbeddedNATS: *natsURL == "", ManageStream: true, Durable: "hrsync-bench",
			Converger: connector.ConvergerConfig{Concurrency: *concurrency, Batch: *convBatch, Loops: *loops, PollInterval: 50 * time.Millisecond},
			Consumer:  events.ConsumerConfig{Batch: *batch, MaxWait: 20 * time.Millisecond},
		})
		if err != nil {
			return err
		}
		defer s.Close()
		bs := benchStack{s: s, stream: set.Stream.Name(bench.Feed)}
		defer func() { _ = s.JetStream().DeleteStream(context.WithoutCancel(ctx), bs.stream) }()

		_, err = bench.Run(ctx, bench.Config{Events: *n, Batch: *batch, Schema: schema, LMS: lmsName,
			CPUProfile: *cpuProfile, JSON: *asJSON}, bs, timed, admin, env.stdout)
		return err
	}
	return cmd
}

// benchStack is the stack as package bench measures it.
var _ bench.Stack = benchStack{}

type benchStack struct {
	s      *app.Stack
	stream string
}

func (b benchStack) JetStream() jetstream.JetStream { return b.s.JetStream() }
func (b benchStack) Stream() string                 { return b.stream }
func (b benchStack) Run(ctx context.Context) error  { return b.s.RunLoops(ctx) }
