package main

import (
	"context"
	"flag"
	"runtime/debug"
	"time"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/app"
	"github.com/hrsync/hrsync/cmd/hrsync/internal/roster"
	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/scim"
	"github.com/hrsync/hrsync/events"
)

// connFlags are the connection flags several commands share.
type connFlags struct {
	db, natsURL, natsCreds, config string
	feeds                          feedFlag
	logFormat, logLevel            string
}

func (c *connFlags) register(fs *flag.FlagSet, vars map[string]string, withNATS bool) {
	c.registerBase(fs, vars, withNATS)
	fs.Var(&c.feeds, "feed", "declare a feed as NAME[:KIND[:TIMEZONE]] (repeatable; KIND hr or partner); without any feed, one feed \"hr\"")
}

// registerBase registers the connection flags without --feed, for commands whose
// --feed names the feed to act on.
func (c *connFlags) registerBase(fs *flag.FlagSet, vars map[string]string, withNATS bool) {
	fs.StringVar(&c.db, "db", "sqlite://hrsync.db", "database URL: postgres://user@host:5432/db?sslmode=disable, or sqlite://PATH for the embedded default")
	vars["db"] = "DATABASE_URL"
	fs.StringVar(&c.config, "config", "", "configuration file (YAML): feeds, stream limits")
	vars["config"] = "HRSYNC_CONFIG"
	fs.StringVar(&c.logFormat, "log-format", "json", "log format: json or text")
	vars["log-format"] = "HRSYNC_LOG_FORMAT"
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	vars["log-level"] = "HRSYNC_LOG_LEVEL"
	if withNATS {
		fs.StringVar(&c.natsURL, "nats-url", "nats://127.0.0.1:4222", "NATS server URL")
		vars["nats-url"] = "NATS_URL"
		fs.StringVar(&c.natsCreds, "nats-creds", "", "NATS credentials file")
		vars["nats-creds"] = "NATS_CREDS"
	}
}

// lmsFlags select and authenticate the SCIM LMS.
type lmsFlags struct {
	url, token, user, password, caFile string
	clientFilter                       string
	timeout                            time.Duration
	rate                               string
}

func (l *lmsFlags) register(fs *flag.FlagSet, vars map[string]string) {
	fs.StringVar(&l.url, "lms-url", "", "SCIM 2.0 base URL of the LMS, e.g. https://lms.example.com/scim/v2 (required)")
	vars["lms-url"] = "LMS_URL"
	fs.StringVar(&l.token, "lms-token", "", "bearer token for the LMS")
	vars["lms-token"] = "LMS_TOKEN"
	fs.StringVar(&l.user, "lms-user", "", "basic-auth user for the LMS (instead of a token)")
	vars["lms-user"] = "LMS_USER"
	fs.StringVar(&l.password, "lms-password", "", "basic-auth password for the LMS")
	vars["lms-password"] = "LMS_PASSWORD"
	fs.DurationVar(&l.timeout, "lms-timeout", 0, "timeout of each LMS call (default lms.timeout, or 15s)")
	vars["lms-timeout"] = "LMS_TIMEOUT"
	fs.StringVar(&l.caFile, "lms-ca-file", "", "PEM file of the CA that signed the LMS's TLS certificate (default: the system's)")
	vars["lms-ca-file"] = "LMS_CA_FILE"
	fs.StringVar(&l.clientFilter, "lms-client-filter", "", "attributes the LMS cannot filter on, filtered by hrsync after reading every user (comma list; e.g. employeeNumber); see docs/lms-compat.md")
	vars["lms-client-filter"] = "LMS_CLIENT_FILTER"
}

// registerRate adds --lms-rate: the daemon's client-side limit of LMS calls.
func (l *lmsFlags) registerRate(fs *flag.FlagSet, vars map[string]string) {
	fs.StringVar(&l.rate, "lms-rate", "", "most LMS calls per second, minute or hour: N/s, N/m or N/h (e.g. 1000/h, Docebo's documented limit), or unlimited (default lms.rate, or unlimited)")
	vars["lms-rate"] = "LMS_RATE"
}

func cmdRun(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "run", "run [flags]", `
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
roster uploads; its limits and timeouts are the --admin-* flags (docs/admin-api.md).`)
	vars := map[string]string{}
	var c connFlags
	var l lmsFlags
	c.register(fs, vars, true)
	l.register(fs, vars)
	l.registerRate(fs, vars)
	embedded := fs.Bool("embedded-nats", false, "run an embedded single-node NATS server with JetStream (development only)")
	vars["embedded-nats"] = "HRSYNC_EMBEDDED_NATS"
	embeddedDir := fs.String("embedded-nats-dir", "", "where the embedded NATS server stores its data (default: a temporary directory)")
	manage := fs.Bool("manage-stream", true, "create or update the feeds' streams (HRSYNC_<feed>) at start; set false if operators manage them")
	vars["manage-stream"] = "HRSYNC_MANAGE_STREAM"
	durable := fs.String("durable", "hrsync", "name of the durable JetStream consumer; replicas share it")
	vars["durable"] = "HRSYNC_DURABLE"
	admin := fs.String("admin-addr", "127.0.0.1:9090", "admin HTTP address for /healthz, /readyz, /metrics (empty: off)")
	vars["admin-addr"] = "HRSYNC_ADMIN_ADDR"
	adminToken := fs.String("admin-token", "", "bearer token of the admin API (POST /v1/feeds/{feed}/rosters for any feed); feeds' own upload tokens are configured per feed")
	vars["admin-token"] = "HRSYNC_ADMIN_TOKEN"
	var af adminFlags
	af.register(fs, vars)
	batch := fs.Int("batch", 256, "messages per consume batch (one store transaction)")
	ackWait := fs.Duration("ack-wait", 30*time.Second, "how long JetStream waits for an ack before redelivering; after a crash, unacked messages return after this")
	vars["ack-wait"] = "HRSYNC_ACK_WAIT"
	workers := fs.Int("concurrency", 8, "workers converged at once")
	vars["concurrency"] = "HRSYNC_CONCURRENCY"
	lease := fs.Duration("lease", 2*time.Minute, "how long a claimed worker is held before another replica may take it")
	poll := fs.Duration("poll-interval", time.Second, "longest sleep before looking for work another replica recorded")
	reactivateManual := fs.Bool("reactivate-manual", false, "reactivate accounts someone deactivated outside hrsync while HR says the person works there (default: leave them inactive and raise a review item)")
	vars["reactivate-manual"] = "HRSYNC_REACTIVATE_MANUAL"
	recEvery := fs.Duration("reconcile-every", 0, "run a full reconciliation this often, e.g. 24h (0: never; see hrsync reconcile)")
	vars["reconcile-every"] = "HRSYNC_RECONCILE_EVERY"
	recApply := fs.Bool("reconcile-apply", false, "let scheduled reconciliations fix drift through the converger (default: report only)")
	vars["reconcile-apply"] = "HRSYNC_RECONCILE_APPLY"
	recOut := fs.String("reconcile-out", "", "directory for the drift reports of scheduled reconciliations, one subdirectory a pass (empty: only log the counts)")
	vars["reconcile-out"] = "HRSYNC_RECONCILE_OUT"
	var dl deadLetterFlags
	dl.register(fs, vars)
	if err := parseFlags(fs, env, args, vars); err != nil {
		return err
	}
	if err := dl.check(); err != nil {
		return err
	}
	adminLimits, err := af.config()
	if err != nil {
		return err
	}
	log, err := newLogger(env.stderr, c.logFormat, c.logLevel)
	if err != nil {
		return err
	}
	set, err := c.settings(env, &l)
	if err != nil {
		return err
	}
	if err := app.CheckLMS(set.LMS); err != nil { // fail at start, not at the first hire
		return err
	}
	log.Info("hrsync starting", "version", version(), "feeds", set.Feeds.Names(), "db", redactURL(set.DB),
		"lms", set.LMS.Type+" "+scim.RedactURL(set.LMS.URL), "lms_rate", set.LMS.Rate)
	s, err := app.NewStack(ctx, set, app.Options{Log: log, ReactivateManual: *reactivateManual, DeadLetterMaxBody: dl.maxBody, Migrate: true},
		app.StackConfig{NATSURL: c.natsURL, NATSCreds: c.natsCreds, EmbeddedNATS: *embedded, EmbeddedDir: *embeddedDir,
			ManageStream: *manage, Durable: *durable,
			Converger: connector.ConvergerConfig{Lease: *lease, Concurrency: *workers, PollInterval: *poll},
			Consumer:  events.ConsumerConfig{Batch: *batch, AckWait: *ackWait}})
	if err != nil {
		return err
	}
	defer s.Close()
	if *admin != "" {
		up := s.App().Uploader()
		up.JS = s.JetStream()
		s.API = &roster.API{AdminToken: *adminToken, Log: log, Limits: adminLimits, Uploader: up}
		addr, stop, err := s.ServeAdmin(ctx, *admin, adminLimits)
		if err != nil {
			return err
		}
		defer stop()
		log.Info("admin endpoints listening", "addr", addr.String())
	}
	if *recEvery > 0 {
		stop, err := s.ScheduleReconcile(ctx, *recEvery, *recApply, *recOut)
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

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "devel"
}
