package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/door"
	"github.com/hrsync/hrsync/cmd/hrsync/internal/roster"
	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/guard"
	"github.com/hrsync/hrsync/events"
	"github.com/hrsync/hrsync/store"
)

// StackConfig says how to run the app: NATS, the stream, the consumer and the
// converger's tuning. The parts (store, LMS, safeguard, ...) are the app's.
type StackConfig struct {
	// NATS says how to reach and authenticate to NATS: what the flags gave, laid
	// over nats: in the configuration file (docs/nats.md). NATSURL and NATSCreds
	// are the older spellings of NATS.URL and NATS.CredsFile, used when those are
	// empty.
	NATS      NATSSettings
	NATSURL   string
	NATSCreds string
	// EmbeddedNATS runs a single-node NATS server with JetStream inside the
	// process, without authentication, and connects to it instead (development
	// only).
	EmbeddedNATS bool
	// EmbeddedAddr is where the embedded server listens: a loopback HOST:PORT.
	// Empty, or port 0: a free port. Either way the address is logged at start.
	// hrsync run's --embedded-nats-addr defaults to DefaultEmbeddedNATSAddr.
	EmbeddedAddr string
	// EmbeddedDir is where the embedded NATS server keeps its JetStream files;
	// empty: a temporary directory, removed when the stack closes.
	EmbeddedDir  string
	ManageStream bool
	Durable      string
	Converger    connector.ConvergerConfig // tuning; the parts are the app's
	Hooks        events.Hooks
	Consumer     events.ConsumerConfig // Stream, Durable, Logger, Hooks are filled in
}

// Stack is a running hrsync: the app, with NATS, the consumer and the converger's
// loops. "run", "demo" and "bench" share it.
type Stack struct {
	app     *App
	cfg     StackConfig
	log     *slog.Logger
	db      *store.DB
	ns      *server.Server // embedded NATS, if any
	nc      *nats.Conn
	js      jetstream.JetStream
	dec     *events.Decoder
	conv    *connector.Converger
	metrics *Metrics
	now     func() time.Time

	consuming atomic.Bool
	// deployment is the store's deployment id (store.DeploymentID); refused,
	// why the consumer refuses to consume (events.DeploymentError), for /readyz.
	deployment string
	refused    atomic.Pointer[error]
	closers    []func()
	// halt stops RunLoops with a cause (set by RunLoops): the consumer halts the
	// daemon when the store lacks an erasure key it needs (store.ErasureKeyError).
	halt context.CancelCauseFunc

	// API serves the authenticated /v1 admin API (roster uploads) on the admin
	// handler; nil: off. Set it before AdminHandler or ServeAdmin.
	API *roster.API
	// Door serves POST /v1/events, the HTTP door for HR systems, on the admin
	// handler (see NewDoor); nil: off. Set it before AdminHandler or ServeAdmin.
	Door http.Handler
	// Reconciled, added to before ScheduleReconcile, get each scheduled pass's
	// summary (the console shows it, the webhooks tell drift).
	Reconciled []func(connector.ReconcileSummary, error)
}

// NewDoor returns the HTTP door for HR systems on the stack's feeds, decoder and
// JetStream: a feed's upload token publishes that feed's events, adminToken any
// feed's (docs/http-door.md).
func (s *Stack) NewDoor(adminToken string, lim door.Limits) *door.Door {
	set := s.app.set
	d := &door.Door{JS: s.js, Decoder: s.dec, Limits: lim, Log: s.log,
		Tokens: roster.Tokens{Admin: adminToken, Feeds: set.Feeds, Rosters: set.Rosters}}
	if s.app.tracing.on {
		d.Tracer = s.app.tracing.tracer
	}
	return d
}

// NewStack opens an app on set and o, and a stack on it that closes it.
func NewStack(ctx context.Context, set Settings, o Options, cfg StackConfig) (*Stack, error) {
	a, err := Open(ctx, set, o)
	if err != nil {
		return nil, err
	}
	s, err := OpenStack(ctx, a, cfg)
	if err != nil {
		a.Close()
		return nil, err
	}
	s.closers = append([]func(){a.Close}, s.closers...)
	return s, nil
}

// OpenStack connects to NATS (or starts the embedded server), makes sure the
// feeds' streams exist, and builds the converger on the app. It starts no loop;
// Close does not close the app.
func OpenStack(ctx context.Context, a *App, cfg StackConfig) (_ *Stack, err error) {
	s := &Stack{app: a, cfg: cfg, log: a.log, metrics: a.metrics, db: a.db, now: a.now}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	// The daemon records facts: without the erasure key it could not refuse an
	// erased person's, so it does not start (docs/erasure.md).
	if err := a.db.UseErasureKeys(ctx, a.set.ErasureKey, a.set.ErasureKeysOld...); err != nil {
		return nil, err
	}
	if s.deployment, err = a.db.DeploymentID(ctx); err != nil {
		return nil, err
	}

	nset := a.set.File.NATS.Settings().Over(cfg.natsFlags())
	if cfg.EmbeddedNATS {
		var url string
		url, err = s.startEmbeddedNATS(cfg.EmbeddedAddr, cfg.EmbeddedDir)
		if err != nil {
			return nil, err
		}
		nset = NATSSettings{URL: url} // the embedded server has no users
	}
	// hrsync's replies (the pull consumer's messages, JetStream API answers) come on
	// an inbox prefix of its own, which no feed's NATS user may subscribe to
	// (deploy/nats/nats-server.conf): on the shared _INBOX.> any feed could read them.
	// docs/nats.md, "While disconnected", says what the reconnect options imply.
	s.nc, err = nset.Connect(nats.Name("hrsync"), nats.CustomInboxPrefix(events.ConnectorInboxPrefix),
		nats.MaxReconnects(-1), nats.ReconnectWait(time.Second),
		nats.PingInterval(natsPingInterval), nats.MaxPingsOutstanding(natsMaxPingsOut),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				s.log.Warn("nats disconnected; reconnecting", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			v := nc.ConnectedServerVersion()
			s.log.Info("nats reconnected", "url", RedactNATSURL(nc.ConnectedUrl()), "server_version", v)
			if err := events.CheckServerVersion(v); err != nil {
				s.log.Error("nats reconnected to a server hrsync does not support", "err", err)
			}
		}),
	)
	if err != nil {
		return nil, err
	}
	v := s.nc.ConnectedServerVersion()
	s.log.Info("nats connected", "url", RedactNATSURL(s.nc.ConnectedUrl()), "server_version", v, "auth", nset.Auth(),
		"termination_reasons", events.UnderstandsTermReason(v))
	s.closers = append(s.closers, func() { s.nc.Close() })
	s.js, err = jetstream.New(s.nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	if cfg.ManageStream {
		if _, err := events.EnsureStreams(ctx, s.js, a.set.Stream, a.set.Feeds.Names()); err != nil {
			return nil, fmt.Errorf("create or update the feeds' streams: %w", err)
		}
	}
	s.dec = &events.Decoder{Feeds: a.set.Feeds}
	ops := opsCollector{s}
	if err := s.metrics.reg.Register(ops); err == nil {
		s.closers = append(s.closers, func() { s.metrics.reg.Unregister(ops) })
	} else {
		s.log.Warn("metrics: the store and consumer gauges are another stack's on this registry", "err", err)
	}
	if s.conv, err = a.Converger(cfg.Converger); err != nil {
		return nil, err
	}
	return s, nil
}

// Consume runs the JetStream consumer until ctx is done. Every committed batch
// wakes the converger.
func (s *Stack) Consume(ctx context.Context) error {
	cc := s.cfg.Consumer
	cc.StreamPrefix, cc.Durable, cc.Logger = s.app.set.Stream.Prefix, s.cfg.Durable, s.log
	hooks := s.cfg.Hooks
	after := hooks.AfterCommit
	hooks.AfterCommit = func(facts []connector.Fact) {
		s.conv.Notify()
		if after != nil {
			after(facts)
		}
	}
	if s.app.tracing.on {
		cc.Tracer = s.app.tracing.tracer
		traced := hooks.Traced
		hooks.Traced = func(f connector.Fact, sc trace.SpanContext) {
			s.app.traces.put(connector.WorkerKey{Feed: f.Feed, WorkerID: f.WorkerID}, sc)
			if traced != nil {
				traced(f, sc)
			}
		}
	}
	bound := hooks.Bound
	hooks.Bound = func() {
		if s.refused.Swap(nil) != nil {
			s.log.Info("consuming: the durable consumers are bound now", "deployment", s.deployment)
		}
		s.consuming.Store(true)
		if bound != nil {
			bound()
		}
	}
	cc.Hooks = s.metrics.eventHooks(hooks)
	// Without the key of every tombstone the store records no fact at all; going
	// on would NAK everyone's events forever. Stop instead: "hrsync run" exits
	// with the reason, and a restart without the key fails at start, saying so.
	counted := cc.Hooks.StoreError
	cc.Hooks.StoreError = func(err error) {
		if counted != nil {
			counted(err)
		}
		var ke *store.ErasureKeyError
		if errors.As(err, &ke) && s.halt != nil {
			s.halt(err)
		}
	}
	cc.Deployment = s.deployment
	defer s.consuming.Store(false) // set by Bound, once every feed's consumer is bound
	// A consumer of another deployment is not consumed from: the stack stays up,
	// unready, saying why (/readyz), and looks again now and then, so that it
	// starts once the operator has given it a durable of its own or removed the
	// other deployment's consumer. A consumer that cannot be bound (JetStream
	// slow to answer, a cluster electing its leaders) is tried again soon: not
	// a reason to stop the daemon (found by TestClusterFaults).
	for {
		err := events.Consume(ctx, s.js, s.dec, s.db, cc)
		var be *events.BindError
		retry := refusedRetry
		switch {
		case errors.Is(err, events.ErrOtherDeployment):
			s.log.Error("not consuming: the durable consumer belongs to another deployment", "err", err, "retry_in", retry)
		case errors.As(err, &be) && ctx.Err() == nil:
			retry = bindRetry
			s.log.Warn("not consuming yet: binding the durable consumer failed; retrying", "err", err, "retry_in", retry)
		default:
			return err
		}
		s.refused.Store(&err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(retry):
		}
	}
}

// refusedRetry is how often a stack refused by another deployment's consumer
// looks again; bindRetry, how soon it tries again to bind a consumer it could
// not. Variables for tests.
var (
	refusedRetry = 30 * time.Second
	bindRetry    = 2 * time.Second
)

// Deployment is the deployment id of the stack's store, which it writes in its
// durable consumers' metadata.
func (s *Stack) Deployment() string { return s.deployment }

// ConsumerLag is how many of feed's messages its consumer has not delivered yet
// and how many it delivered that wait for an ack (the console's overview).
func (s *Stack) ConsumerLag(ctx context.Context, feed string) (pending, ackPending uint64, err error) {
	cons, err := s.js.Consumer(ctx, s.app.set.Stream.Name(feed), s.durable())
	if err != nil {
		return 0, 0, err
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return 0, 0, err
	}
	return info.NumPending, uint64(info.NumAckPending), nil
}

// Drained reports whether every feed's consumer has delivered everything and holds
// no unacknowledged message.
func (s *Stack) Drained(ctx context.Context) bool {
	for _, f := range s.app.set.Feeds.Names() {
		cons, err := s.js.Consumer(ctx, s.app.set.Stream.Name(f), s.durable())
		if err != nil {
			return false
		}
		info, err := cons.Info(ctx)
		if err != nil || info.NumPending != 0 || info.NumAckPending != 0 {
			return false
		}
	}
	return true
}

func (s *Stack) durable() string {
	if s.cfg.Durable == "" {
		return events.DefaultDurable
	}
	return s.cfg.Durable
}

// RunLoops runs the consumer and the converger until ctx is done, then lets both
// finish what they have in flight. The first to fail stops the other.
func (s *Stack) RunLoops(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	s.halt = cancel
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Go(func() {
		defer cancel(nil)
		if err := s.Consume(ctx); err != nil {
			errs[0] = fmt.Errorf("consumer: %w", err)
		}
	})
	wg.Go(func() {
		defer cancel(nil)
		if err := s.conv.Run(ctx); err != nil {
			errs[1] = fmt.Errorf("converger: %w", err)
		}
	})
	wg.Wait()
	var ke *store.ErasureKeyError
	if cause := context.Cause(ctx); errors.As(cause, &ke) {
		errs = append(errs, fmt.Errorf("stopped: %w", cause))
	}
	return errors.Join(errs...)
}

// ready reports why the stack cannot serve, or nil.
func (s *Stack) ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := s.db.Ping(ctx); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	// Tombstones made (by another process) with a key this one lacks: every fact
	// is refused until it restarts with the key.
	if err := s.db.ErasureKeyProblem(ctx); err != nil {
		return err
	}
	if !s.nc.IsConnected() {
		return fmt.Errorf("nats: %s", s.nc.Status())
	}
	if p := s.refused.Load(); p != nil {
		return *p
	}
	if !s.consuming.Load() {
		return errors.New("consumer not running")
	}
	lms, err := s.app.LMS()
	if err != nil {
		return err
	}
	return lmsReady(lms)
}

// lmsReady reports a quarantined LMS (see package guard), or nil.
func lmsReady(lms connector.LMS) error {
	if g, ok := lms.(interface{ Status() guard.Status }); ok {
		if st := g.Status(); st.Quarantined {
			return fmt.Errorf("lms quarantined since %s: %s (next probe %s)", st.Since.UTC().Format(time.RFC3339),
				st.Reason, st.NextProbe.UTC().Format(time.RFC3339))
		}
	}
	return nil
}

// AdminHandler serves /healthz, /readyz and /metrics.
func (s *Stack) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := s.ready(r.Context()); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	if s.API != nil {
		mux.Handle("POST /v1/feeds/{feed}/rosters", s.API)
		mux.Handle("GET /v1/feeds/{feed}/rosters/{id}/report", s.API.ReportHandler())
	}
	if s.Door != nil {
		mux.Handle("POST /v1/events", s.app.tracing.handler(s.Door))
	}
	return mux
}

// ServeAdmin listens on addr and serves the admin endpoints until ctx is done,
// within limits' timeouts.
func (s *Stack) ServeAdmin(ctx context.Context, addr string, limits roster.Limits) (net.Addr, func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("admin listener %s: %w", addr, err)
	}
	srv := roster.NewAdminServer(s.AdminHandler(), limits)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("admin server stopped", "err", err)
		}
	}()
	stop := func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}
	return ln.Addr(), stop, nil
}

// App is the app the stack runs.
func (s *Stack) App() *App { return s.app }

// JetStream is the stack's JetStream context.
func (s *Stack) JetStream() jetstream.JetStream { return s.js }

// Converger is the stack's converger.
func (s *Stack) Converger() *connector.Converger { return s.conv }

// Store is the app's store.
func (s *Stack) Store() *store.DB { return s.db }

// Close releases everything, in reverse order of opening. Safe to call twice.
func (s *Stack) Close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

// A connection that stops answering (a server gone without closing it, a
// dropped NAT mapping) is given up after natsMaxPingsOut unanswered pings, one
// every natsPingInterval: about a minute, against nats.go's default four, so
// that /readyz and the reconnect loop notice soon (docs/nats.md).
const (
	natsPingInterval = 20 * time.Second
	natsMaxPingsOut  = 3
)

// DefaultEmbeddedNATSAddr is the default of hrsync run's --embedded-nats-addr: a
// fixed loopback port, so that "hrsync publish --nats-url nats://127.0.0.1:4250"
// reaches the embedded server; not NATS's 4222, where a real server may listen.
const DefaultEmbeddedNATSAddr = "127.0.0.1:4250"

// startEmbeddedNATS starts a single-node NATS server with JetStream on addr
// (loopback only: it has no users), storing under dir or, if dir is empty, a
// temporary directory that Close removes. It logs the URL and returns it.
func (s *Stack) startEmbeddedNATS(addr, dir string) (string, error) {
	host, port, err := embeddedAddr(addr)
	if err != nil {
		return "", err
	}
	if port != server.RANDOM_PORT {
		// The server would only find out after its start timeout: say it now.
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return "", fmt.Errorf("embedded NATS address %s: %w (choose another with --embedded-nats-addr)", addr, err)
		}
		ln.Close()
	}
	if dir == "" {
		tmp, err := os.MkdirTemp("", "hrsync-nats-")
		if err != nil {
			return "", fmt.Errorf("embedded NATS: %w", err)
		}
		// Appended first, so it runs after the server's shutdown below.
		s.closers = append(s.closers, func() {
			if err := os.RemoveAll(tmp); err != nil {
				s.log.Warn("embedded NATS: removing its temporary directory", "dir", tmp, "err", err)
			}
		})
		dir = tmp
	}
	ns, err := server.NewServer(&server.Options{
		Host: host, Port: port, JetStream: true, StoreDir: filepath.Clean(dir),
		NoSigs: true, NoLog: true, ServerName: "hrsync-embedded",
	})
	if err != nil {
		return "", fmt.Errorf("embedded NATS on %s: %w", addr, err)
	}
	go ns.Start()
	s.closers = append(s.closers, func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		return "", fmt.Errorf("embedded NATS on %s: not listening after 10s", cmp.Or(addr, "a free loopback port"))
	}
	s.ns = ns
	url := ns.ClientURL()
	s.log.Info("embedded NATS server listening at "+url+" (no authentication; development only)", "url", url, "store_dir", dir)
	return url, nil
}

// embeddedAddr splits a loopback HOST:PORT for the embedded server; port 0 (or
// an empty addr) means a free port.
func embeddedAddr(addr string) (string, int, error) {
	if addr == "" {
		return "127.0.0.1", server.RANDOM_PORT, nil
	}
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("embedded NATS address %q: want HOST:PORT, e.g. %s: %w", addr, DefaultEmbeddedNATSAddr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("embedded NATS address %q: port %q is not a number from 0 to 65535", addr, p)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return "", 0, fmt.Errorf("embedded NATS address %q: the embedded server has no authentication, so it listens "+
			"only on loopback (127.0.0.1, ::1 or localhost); run a real NATS server for anything else (docs/nats.md)", addr)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return host, port, nil
}

// natsFlags returns the NATS settings cfg gives, with the older fields folded in.
func (cfg StackConfig) natsFlags() NATSSettings {
	n := cfg.NATS
	n.URL = cmp.Or(n.URL, cfg.NATSURL)
	n.CredsFile = cmp.Or(n.CredsFile, cfg.NATSCreds)
	return n
}

// ScheduleReconcile starts full reconciliation passes every interval, on the same
// (guarded) LMS client and policy as the converger; apply mode only marks workers
// due and wakes the converger. It returns the function that stops the schedule.
func (s *Stack) ScheduleReconcile(ctx context.Context, every time.Duration, apply bool, out string) (func(), error) {
	cfg := connector.ReconcilerConfig{Interval: every, Apply: apply,
		Hooks: connector.ReconcilerHooks{MarkedDue: func(int) { s.conv.Notify() },
			Reconciled: func(sum connector.ReconcileSummary, err error) {
				if err == nil {
					s.metrics.reconciled.Set(float64(s.now().Unix()))
				}
				for _, f := range s.Reconciled {
					f(sum, err)
				}
			}}}
	if out != "" {
		cfg.Report = func(t time.Time) (connector.ReportSink, error) {
			return connector.CreateReport(filepath.Join(out, "reconcile-"+t.UTC().Format("20060102T150405Z")))
		}
	}
	rec, err := s.app.Reconciler(cfg)
	if err != nil {
		return nil, err
	}
	if err := rec.Start(ctx); err != nil {
		return nil, err
	}
	s.log.Info("reconciliation scheduled", "every", every, "apply", apply, "reports", out)
	return rec.Stop, nil
}
