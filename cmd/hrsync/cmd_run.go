package main

import (
	"context"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.opentelemetry.io/otel/trace"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/app"
	"github.com/hrsync/hrsync/cmd/hrsync/internal/door"
	"github.com/hrsync/hrsync/cmd/hrsync/internal/roster"
	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/scim"
	"github.com/hrsync/hrsync/events"
)

func newRunCmd(env *environment) *cobra.Command {
	cmd := newCmd("run", "the daemon: consume events, converge LMS accounts, wake at due times", `
Run the daemon. It consumes CloudEvents from one JetStream stream per feed,
HRSYNC_<feed> (subjects hrsync.events.<feed>.<name>), records each fact once in the store, and converges every
affected LMS account: create on hire, deactivate on leave, reactivate on rehire. It
wakes at the next due effective date, so future-dated events act on time. An
hrsync.worker.erasure_requested.v1 event erases the worker as hrsync erase does,
with HRSYNC_ERASURE_KEY; without the key it is kept pending (docs/erasure.md).

SIGTERM or Ctrl-C drains: the batch in flight is recorded and acked, the workers in
flight are converged and committed, then it exits. Nothing is lost or done twice.

LMS calls keep to --lms-rate, and temporary failures (5xx, timeouts, 429) are retried
with exponential backoff and jitter, honouring Retry-After. When most calls fail (an
outage, revoked credentials) the LMS is quarantined: converging pauses, /readyz
answers 503 with the reason, and one probe call every 30s or more (backing off)
tests the LMS; the first success resumes. See docs/lms-resilience.md.

Removals (deactivations, deletions) gather for safeguard.settle (30s) into a burst
that is judged whole against the thresholds of safeguard: in the configuration file
(default: more than 20% of a feed's active accounts, or 500, within an hour); a
burst over them is held whole until a person decides (hrsync holds). No flag turns
the safeguard off. Each feed has its own stream, HRSYNC_<feed>, with its own limits.

The admin port serves /healthz, /readyz and Prometheus /metrics, and, with a token,
roster uploads and POST /v1/events, CloudEvents over HTTP for HR systems that cannot
speak NATS (docs/http-door.md); its limits and timeouts are the --admin-* flags
(docs/admin-api.md). The admin console, for the people who decide holds, is served
on its own address when console: is configured (docs/console.md).

Every flag has an environment variable, named after it.`, noArgs)
	fs := cmd.Flags()
	var c connFlags
	var l lmsFlags
	c.addDB(fs)
	c.addConfig(fs)
	c.addNATS(fs)
	l.register(fs)
	l.registerRate(fs)
	var f runFlags
	f.register(fs)
	var af adminFlags
	af.register(fs)
	var dl deadLetterFlags
	dl.register(fs)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error { return runDaemon(cmd.Context(), env, &c, &l, &f, &af, &dl) }
	return cmd
}

// runFlags are the daemon's own flags.
type runFlags struct {
	embedded                   bool
	embeddedDir                string
	embeddedAddr               string
	manage                     bool
	durable, admin, adminToken string
	batch, workers             int
	ackWait, lease, poll       time.Duration
	reactivateManual           bool
	migrate                    bool
	recEvery                   time.Duration
	recApply                   bool
	recOut                     string
	consoleAddr                string
}

func (f *runFlags) register(fs *pflag.FlagSet) {
	fs.BoolVar(&f.embedded, "embedded-nats", false, "run an embedded single-node NATS server with JetStream (development only)")
	envFlag(fs, "embedded-nats", "HRSYNC_EMBEDDED_NATS")
	fs.StringVar(&f.embeddedAddr, "embedded-nats-addr", app.DefaultEmbeddedNATSAddr, "loopback `HOST:PORT` the embedded NATS server listens on (printed at start; port 0: a free one)")
	envFlag(fs, "embedded-nats-addr", "HRSYNC_EMBEDDED_NATS_ADDR")
	fs.StringVar(&f.embeddedDir, "embedded-nats-dir", "", "`DIR` where the embedded NATS server stores its data (default: a temporary directory, removed at exit)")
	envFlag(fs, "embedded-nats-dir", "HRSYNC_EMBEDDED_NATS_DIR")
	fs.BoolVar(&f.manage, "manage-stream", true, "create or update the feeds' streams (HRSYNC_<feed>) at start; set false if operators manage them")
	envFlag(fs, "manage-stream", "HRSYNC_MANAGE_STREAM")
	fs.StringVar(&f.durable, "durable", "hrsync", "name of the durable JetStream consumer; replicas share it")
	envFlag(fs, "durable", "HRSYNC_DURABLE")
	fs.StringVar(&f.admin, "admin-addr", "127.0.0.1:9090", "admin HTTP address for /healthz, /readyz, /metrics (empty: off)")
	envFlag(fs, "admin-addr", "HRSYNC_ADMIN_ADDR")
	fs.StringVar(&f.adminToken, "admin-token", "", "bearer token of the admin API (POST /v1/feeds/{feed}/rosters for any feed); feeds' own upload tokens are configured per feed")
	envFlag(fs, "admin-token", "HRSYNC_ADMIN_TOKEN")
	fs.IntVar(&f.batch, "batch", 256, "messages per consume batch (one store transaction)")
	envFlag(fs, "batch", "HRSYNC_BATCH")
	fs.DurationVar(&f.ackWait, "ack-wait", 30*time.Second, "how long JetStream waits for an ack before redelivering; after a crash, unacked messages return after this")
	envFlag(fs, "ack-wait", "HRSYNC_ACK_WAIT")
	fs.IntVar(&f.workers, "concurrency", 8, "workers converged at once")
	envFlag(fs, "concurrency", "HRSYNC_CONCURRENCY")
	fs.DurationVar(&f.lease, "lease", 2*time.Minute, "how long a claimed worker is held before another replica may take it")
	envFlag(fs, "lease", "HRSYNC_LEASE")
	fs.DurationVar(&f.poll, "poll-interval", time.Second, "longest sleep before looking for work another replica recorded")
	envFlag(fs, "poll-interval", "HRSYNC_POLL_INTERVAL")
	fs.BoolVar(&f.migrate, "migrate", true, "create the database and apply its migrations at start; --migrate=false refuses a missing or older schema instead (docs/store.md)")
	envFlag(fs, "migrate", "HRSYNC_MIGRATE")
	fs.BoolVar(&f.reactivateManual, "reactivate-manual", false, "reactivate accounts someone deactivated outside hrsync while HR says the person works there (default: leave them inactive and raise a review item)")
	envFlag(fs, "reactivate-manual", "HRSYNC_REACTIVATE_MANUAL")
	fs.DurationVar(&f.recEvery, "reconcile-every", 0, "run a full reconciliation this often, e.g. 24h (0: never; see hrsync reconcile)")
	envFlag(fs, "reconcile-every", "HRSYNC_RECONCILE_EVERY")
	fs.BoolVar(&f.recApply, "reconcile-apply", false, "let scheduled reconciliations fix drift through the converger (default: report only)")
	envFlag(fs, "reconcile-apply", "HRSYNC_RECONCILE_APPLY")
	fs.StringVar(&f.recOut, "reconcile-out", "", "`DIR` for the drift reports of scheduled reconciliations, one subdirectory a pass (empty: only log the counts)")
	envFlag(fs, "reconcile-out", "HRSYNC_RECONCILE_OUT")
	fs.StringVar(&f.consoleAddr, "console-addr", "", "`HOST:PORT` of the admin console, its own listener (default: console.addr of the configuration file; both empty: no console; docs/console.md)")
	envFlag(fs, "console-addr", "HRSYNC_CONSOLE_ADDR")
}

// runDaemon is "hrsync run".
func runDaemon(ctx context.Context, env *environment, c *connFlags, l *lmsFlags, f *runFlags, af *adminFlags, dl *deadLetterFlags) error {
	if err := dl.check(); err != nil {
		return err
	}
	adminLimits, err := af.config()
	if err != nil {
		return err
	}
	log := env.logger(daemonLog)
	set, err := c.settings(env, l)
	if err != nil {
		return err
	}
	if err := app.CheckLMS(set.LMS); err != nil { // fail at start, not at the first hire
		return err
	}
	log.Info("hrsync starting", "version", versionString(), "feeds", set.Feeds.Names(), "db", redactURL(set.DB),
		"lms", set.LMS.Type+" "+scim.RedactURL(set.LMS.URL), "lms_rate", set.LMS.Rate)
	// OpenTelemetry tracing, when the standard OTEL_* variables name an OTLP
	// endpoint (docs/tracing.md).
	tp, err := app.TracingFromEnv(ctx, env.getenv, versionString())
	if err != nil {
		return err
	}
	var provider trace.TracerProvider // a nil *TracerProvider would not be a nil interface
	if tp != nil {
		provider = tp
		log.Info("tracing: exporting spans over OTLP (OTEL_EXPORTER_OTLP_*)")
		defer func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := tp.Shutdown(sctx); err != nil {
				log.Warn("tracing: flushing the last spans", "err", err)
			}
		}()
	}
	s, err := app.NewStack(ctx, set, app.Options{Log: log, ReactivateManual: f.reactivateManual, DeadLetterMaxBody: dl.maxBody, Migrate: f.migrate,
		TracerProvider: provider},
		app.StackConfig{NATS: c.nats, EmbeddedNATS: f.embedded, EmbeddedAddr: f.embeddedAddr, EmbeddedDir: f.embeddedDir,
			ManageStream: f.manage, Durable: f.durable,
			Converger: connector.ConvergerConfig{Lease: f.lease, Concurrency: f.workers, PollInterval: f.poll},
			Consumer:  events.ConsumerConfig{Batch: f.batch, AckWait: f.ackWait}})
	if err != nil {
		return err
	}
	defer s.Close()
	s.App().Metrics().SetBuildInfo(versionString())
	if f.admin != "" {
		up := s.App().Uploader()
		up.JS = s.JetStream()
		s.API = &roster.API{AdminToken: f.adminToken, Log: log, Limits: adminLimits, Uploader: up}
		s.Door = s.NewDoor(f.adminToken, door.Limits{})
		addr, stop, err := s.ServeAdmin(ctx, f.admin, adminLimits)
		if err != nil {
			return err
		}
		defer stop()
		log.Info("admin endpoints listening", "addr", addr.String())
	}
	stopConsole, err := serveConsole(ctx, env, s, set, f.consoleAddr, adminLimits)
	if err != nil {
		return err
	}
	defer stopConsole()
	stopNotify, err := startNotify(ctx, env, s, set)
	if err != nil {
		return err
	}
	defer stopNotify()
	if f.recEvery > 0 {
		stop, err := s.ScheduleReconcile(ctx, f.recEvery, f.recApply, f.recOut)
		if err != nil {
			return err
		}
		defer stop()
	}
	if dl.retention > 0 {
		defer s.ScheduleDeadLetterPrune(ctx, dl.retention, app.DeadLetterPruneEvery)()
	}
	err = s.RunLoops(ctx)
	log.Info("hrsync stopped", "err", err)
	return err
}
