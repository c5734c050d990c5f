package main

import (
	"context"
	"database/sql"
	"errors"
	"math"
	"net/url"
	"sync"
	"time"

	_ "github.com/lib/pq" // the baseline writes to PostgreSQL directly
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/app"
	"github.com/hrsync/hrsync/cmd/hrsync/internal/bench"
	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/guard"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/events"
)

func newBenchCmd(env *environment) *cobra.Command {
	cmd := newCmd("bench", "end-to-end throughput, latency and LMS calls, against a baseline", `
A benchmark, not a test. It pushes N events end to end: publish to JetStream →
consume → record in PostgreSQL → converge → the account's change in the LMS (the
in-process sandbox, or any SCIM LMS with --lms-url). It prints events/s, the p50/p99
latency from publish to the LMS call returning, and the LMS calls it took: in all,
by operation (each call the guard lets through to the LMS), and per change.

--mix hires (the default) is N hires of new workers. --mix lifecycle is N changes in
waves, each published once the one before it has reached the LMS: 50% hires; then
20% leavers and 20% profile updates of other workers; then 5% rehires under the
same worker id and 5% under a new id (previous_worker_id), of leavers. It also
prints the LMS calls per change of each kind. Its removals are never held by the
safeguard.

--rate paces the publishing (so that the latency is not time spent queueing behind
a burst). --lms-rate applies an LMS budget through the guard, as the daemon does;
with the in-process sandbox the guard's clock skips the waits, so the run is not
slowed, and the bench reports the minutes of LMS time the calls take at that rate.
--lms-bulk=false hides the LMS's bulk capabilities from hrsync, so that the
per-call path is measured. --replicas N runs N hrsync stacks in this process on the
one stream, durable consumer and database, as replicas of the daemon share them.

It also prints the CPU time an event costs: in this process (every replica, and
the embedded NATS server and in-process sandbox when used) and in the PostgreSQL
server's processes on this machine (read from /proc), so that a run on a small
machine says what larger ones could do (README, "Scale").

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
	mix := fs.String("mix", bench.MixHires, "`MIX` of changes: hires (all hires), or lifecycle (50% hires, then 20% leavers and 20% profile updates, then 5% rehires under the same id and 5% under a new id)")
	rate := fs.Float64("rate", 0, "publish at most `N` events a second (paced); 0: as fast as possible")
	l.registerRate(fs)
	fs.Lookup("lms-rate").Usage = "LMS budget: most LMS calls per second, minute or hour (N/s, N/m, N/h, e.g. 1000/h), applied through the guard; with the in-process sandbox its waits are skipped and the LMS time at that rate is reported (default unlimited) (env LMS_RATE)"
	lmsBulk := fs.Bool("lms-bulk", true, "let hrsync use the LMS's bulk capabilities; false measures the per-call path")
	streamReplicas := fs.Int("stream-replicas", 1, "replicas of the bench's stream on a JetStream cluster (--nats-url; 1 to 5)")
	replicas := fs.Int("replicas", 1, "hrsync stacks in this process sharing the stream, the durable consumer and the database, as replicas do (1 to 8)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if *n < 100 || *n > 2_000_000 {
			return usagef(cmd, "--events %d: want 100 to 2000000", *n)
		}
		if *mix != bench.MixHires && *mix != bench.MixLifecycle {
			return usagef(cmd, "--mix %q: want %s or %s", *mix, bench.MixHires, bench.MixLifecycle)
		}
		if *streamReplicas < 1 || *streamReplicas > 5 || (*streamReplicas > 1 && *natsURL == "") {
			return usagef(cmd, "--stream-replicas %d: want 1 to 5, and more than 1 only on a cluster given by --nats-url", *streamReplicas)
		}
		if *replicas < 1 || *replicas > 8 {
			return usagef(cmd, "--replicas %d: want 1 to 8", *replicas)
		}
		if *rate < 0 || math.IsNaN(*rate) || math.IsInf(*rate, 0) {
			return usagef(cmd, "--rate %v: want 0 (as fast as possible) or a positive number of events a second", *rate)
		}
		lmsRate, err := guard.ParseRate(l.rate)
		if err != nil {
			return usagef(cmd, "--lms-rate: %v", err)
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
		set.Stream.Replicas = *streamReplicas
		set.LMS.Rate = l.rate
		if *mix == bench.MixLifecycle {
			// The leavers of a lifecycle mix are a wave by design: never held.
			never := connector.Thresholds{Percent: 100, MinRemovals: math.MaxInt32}
			set.Safeguard.Default, set.Safeguard.Overall, set.Safeguard.Feeds, set.Safeguard.Settle = never, never, nil, 0
		}
		// The LMS (the sandbox, or the SCIM LMS of --lms-url, opened by the app) is
		// timed and its calls counted inside the guard.
		var timed *bench.TimedLMS
		// Replicas share one timed LMS, so that their calls are counted together.
		o := app.Options{Log: log, Migrate: true, WrapLMS: func(lms connector.LMS) connector.LMS {
			if timed == nil {
				timed = bench.NewTimedLMS(lms, *n)
			}
			return timed.Bulk(*lmsBulk)
		}}
		lmsName := "in-process sandbox"
		var callTimeout time.Duration // the converger's default
		if l.url != "" {
			set.LMS = app.LMSConfig{}.Over(l.settings(), nil)
			if err := app.CheckLMS(set.LMS); err != nil {
				return err
			}
			lmsName = "SCIM at " + l.url
		} else {
			var opts []sandbox.Option
			if !*lmsBulk {
				opts = append(opts, sandbox.WithMaxBulk(-1))
			}
			o.LMS = sandbox.New(opts...)
			if !lmsRate.Unlimited() {
				// The sandbox has no budget to keep: skip the waits. The guard refuses a
				// slot further off than the caller's deadline, whose clock is real, so
				// the converger's deadline must be as long as the waits it skips: 32
				// workers in flight at 1000/h queue for about two minutes.
				o.LMSClock = &bench.SkipClock{}
				callTimeout = 24 * time.Hour
			}
		}
		if !*lmsBulk {
			lmsName += ", no bulk"
		}
		sc := app.StackConfig{
			NATSURL: *natsURL, EmbeddedNATS: *natsURL == "", ManageStream: true, Durable: "hrsync-bench",
			Converger: connector.ConvergerConfig{Concurrency: *concurrency, Batch: *convBatch, Loops: *loops, PollInterval: 50 * time.Millisecond,
				CallTimeout: callTimeout},
			Consumer: events.ConsumerConfig{Batch: *batch, MaxWait: 20 * time.Millisecond},
		}
		s, err := app.NewStack(ctx, set, o, sc)
		if err != nil {
			return err
		}
		defer s.Close()
		bs := benchStack{s: s, stream: set.Stream.Name(bench.Feed)}
		// The other replicas reach the first one's NATS server (the embedded one
		// unless --nats-url), each with its own connection, consumer and converger.
		sc.NATSURL, sc.EmbeddedNATS = s.JetStream().Conn().ConnectedUrl(), false
		for range *replicas - 1 {
			r, err := app.NewStack(ctx, set, o, sc)
			if err != nil {
				return err
			}
			defer r.Close()
			bs.more = append(bs.more, r)
		}
		defer func() { _ = s.JetStream().DeleteStream(context.WithoutCancel(ctx), bs.stream) }()

		perMinute := 0.0
		if !lmsRate.Unlimited() {
			perMinute = lmsRate.PerSecond() * 60
		}
		_, err = bench.Run(ctx, bench.Config{Events: *n, Batch: *batch, Schema: schema, LMS: lmsName,
			CPUProfile: *cpuProfile, JSON: *asJSON, Mix: *mix, Rate: *rate, LMSRate: l.rate, LMSPerMinute: perMinute,
			Replicas: *replicas, ExternalNATS: *natsURL != ""},
			bs, timed, admin, env.stdout)
		return err
	}
	return cmd
}

// benchStack is the stack as package bench measures it.
var _ bench.Stack = benchStack{}

type benchStack struct {
	s      *app.Stack
	more   []*app.Stack // the other replicas
	stream string
}

func (b benchStack) JetStream() jetstream.JetStream { return b.s.JetStream() }
func (b benchStack) Stream() string                 { return b.stream }

// Run runs every replica until ctx is done.
func (b benchStack) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(b.more)+1)
	for i, s := range append([]*app.Stack{b.s}, b.more...) {
		wg.Go(func() { errs[i] = s.RunLoops(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}
