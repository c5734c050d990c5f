// Package app is hrsync's one assembly (docs/design.md, "One assembly"). Every
// command that touches the store or the LMS takes its parts from an App: the
// configuration is read once (Settings), and the App builds from it the store, the
// LMS behind the guard (rate limit, retries, quarantine), the feeds' policies, the
// safeguard, the converger, the reconciler and the eraser. There is no other way
// to an LMS client: openLMS is unexported and called only in this package (by
// GuardedLMS, which the App uses, and by CheckLMS, which drops what it builds), so
// no command can reach the LMS except through the same guard, safeguard and audit
// as the daemon. The Stack runs an App with NATS, the consumer and the
// converger's loops (the daemon, the demo and the bench).
//
// Package main parses flags and turns them into Settings (FromFile, SettingsFor);
// this package knows nothing of flags.
package app

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/erasure"
	"github.com/hrsync/hrsync/cmd/hrsync/internal/roster"
	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/guard"
	"github.com/hrsync/hrsync/connector/lms/scim"
	"github.com/hrsync/hrsync/events"
	"github.com/hrsync/hrsync/store"
)

// Settings is the configuration of one process: the configuration file, read
// once, with the flags and environment variables that override it.
type Settings struct {
	File      FileConfig
	DB        string
	Feeds     connector.Feeds
	Stream    events.StreamConfig
	LMS       LMSSettings
	Safeguard connector.SafeguardConfig
	Rosters   map[string]roster.Config
	Retention erasure.Retention
	Courses   map[string]time.Duration
	// ErasureKey is HRSYNC_ERASURE_KEY; ErasureKeysOld, HRSYNC_ERASURE_KEYS_OLD,
	// check the tombstones made before a rotation.
	ErasureKey     []byte
	ErasureKeysOld [][]byte
	// Approvals is how many different people approve a hold of each kind
	// (holds.approvals); missing: one.
	Approvals map[connector.HoldKind]int
}

// FromFile returns the settings of the configuration file fc on db, with the feeds
// declared by flags (--feed) added to fc's and the LMS settings given by flags
// (zero fields: not given) laid over fc's. getenv is the command's environment,
// where lms.token_env and lms.client_secret_env name the LMS secrets. The erasure
// keys are the caller's to set.
func FromFile(fc FileConfig, db string, feedFlags []FeedConfig, lmsFlags LMSSettings, getenv func(string) string) (Settings, error) {
	return build(fc, db, feedFlags, nil, lmsFlags, getenv)
}

// SettingsFor returns the settings of a configuration given in code (the demo,
// the bench, tests): the file fc, with feeds instead of fc's if given.
func SettingsFor(db string, feeds connector.Feeds, fc FileConfig) (Settings, error) {
	return build(fc, db, nil, feeds, LMSSettings{}, nil)
}

func build(fc FileConfig, db string, feedFlags []FeedConfig, feeds connector.Feeds, lmsFlags LMSSettings, getenv func(string) string) (Settings, error) {
	s := Settings{File: fc, DB: db}
	var err error
	if s.Feeds, s.Stream, err = FeedsAndStream(fc, feedFlags); err != nil {
		return Settings{}, err
	}
	if feeds != nil {
		s.Feeds = feeds
	}
	if s.Safeguard, err = fc.safeguard(s.Feeds); err != nil {
		return Settings{}, err
	}
	if s.Rosters, err = rosterConfigs(fc.Feeds); err != nil {
		return Settings{}, err
	}
	if s.Retention, err = fc.retention(); err != nil {
		return Settings{}, err
	}
	if s.Courses, err = fc.CourseValidity(); err != nil {
		return Settings{}, err
	}
	if s.Approvals, err = fc.Holds.approvals(); err != nil {
		return Settings{}, fmt.Errorf("config file: %w", err)
	}
	s.LMS = fc.LMS.Over(lmsFlags, getenv)
	return s, nil
}

// LMSSettings say which LMS to reach and how: lms: in the configuration file, with
// the --lms-* flags (and LMS_* variables) over it. Secrets come only from flags or
// the environment.
type LMSSettings struct {
	// Type selects the adapter (lmsTypes); default scim.
	Type                  string
	URL                   string
	Token, User, Password string
	CAFile                string
	ClientFilter          string
	Timeout               time.Duration
	Rate                  string
	// OAuth2 client credentials (Docebo): the client id, and the secret read from
	// the environment variable that lms.client_secret_env names.
	ClientID, ClientSecret string
	// Where the LMS keeps hrsync's externalId and the employee number when it has
	// no field of that name (Docebo: an additional field; empty: the adapter's default).
	ExternalIDField, EmployeeNumberField string
	// AdditionalFields maps more of hrsync's attributes to the LMS's additional
	// fields (Docebo: "org_unit=14,job_title=15,manager_id=16,locale=17").
	AdditionalFields string
	// SearchBatch is lms.search_batch (SCIM): the most values one POST
	// /Users/.search carries; 0: the client's default (1,000). NoSearch: the
	// file says 0, never .search.
	SearchBatch int
	NoSearch    bool
	// ProbeInterval and MaxProbeInterval are lms.quarantine's; zero: the
	// guard's defaults (30s, 10m).
	ProbeInterval, MaxProbeInterval time.Duration
	// transport, if set, wraps the LMS client's HTTP transport (tracing); a
	// pointer, so that settings stay comparable.
	transport *transportWrap
	// log is where the adapter logs what it learns of the LMS (the guard's
	// logger); nil: nowhere.
	log *slog.Logger
}

// transportWrap wraps an HTTP client's transport.
type transportWrap struct {
	wrap func(http.RoundTripper) http.RoundTripper
}

// LMSConfig is lms: in the configuration file.
type LMSConfig struct {
	Type         string        `yaml:"type"`
	URL          string        `yaml:"url"`
	Rate         string        `yaml:"rate"`
	Timeout      time.Duration `yaml:"timeout"`
	CAFile       string        `yaml:"ca_file"`
	ClientFilter string        `yaml:"client_filter"`
	// IgnoreAttributes lists profile attributes never compared or written;
	// others the LMS drops are learnt from its answers (docs/reconcile.md).
	IgnoreAttributes []string `yaml:"ignore_attributes"`
	// Mirror: lms.mirror. hrsync keeps a copy of the accounts it has seen and
	// makes a known account's state change without reading it first
	// (docs/design.md, "The account mirror"); false reads before every write.
	// Default true.
	Mirror *bool `yaml:"mirror"`
	// ClientID and ClientSecretEnv are OAuth2 client credentials (Docebo); the
	// secret itself is never in the file, only the name of the variable holding it.
	ClientID        string `yaml:"client_id"`
	ClientSecretEnv string `yaml:"client_secret_env"`
	// TokenEnv names the variable holding the LMS token (Moodle's wstoken, a SCIM
	// bearer token) when --lms-token and LMS_TOKEN are not given.
	TokenEnv            string `yaml:"token_env"`
	ExternalIDField     string `yaml:"external_id_field"`
	EmployeeNumberField string `yaml:"employee_number_field"`
	// AdditionalFields: lms.additional_fields, e.g. "org_unit=14,job_title=15"
	// (Docebo: where the organisation unit, job title, manager and locale live).
	AdditionalFields string `yaml:"additional_fields"`
	// SearchBatch: lms.search_batch (SCIM), the most values one POST
	// /Users/.search carries (RFC 7644 §3.4.3); omitted: 1,000, or the
	// server's filter.maxResults if lower; 0: never .search, batch reads go as
	// GETs of at most 50 values (a server that mishandles it).
	SearchBatch *int `yaml:"search_batch"`
	// Quarantine: lms.quarantine, when the guard probes a quarantined LMS
	// again (docs/lms-resilience.md).
	Quarantine LMSQuarantineConfig `yaml:"quarantine"`
}

// LMSQuarantineConfig is lms.quarantine in the configuration file.
type LMSQuarantineConfig struct {
	// ProbeInterval is the wait before the first probe of a quarantined LMS;
	// default 30s. Each failed probe doubles it, up to MaxProbeInterval
	// (default 10m).
	ProbeInterval    time.Duration `yaml:"probe_interval"`
	MaxProbeInterval time.Duration `yaml:"max_probe_interval"`
}

// Over returns the file's LMS settings with the flags' laid over: l holds what
// the --lms-* flags (and LMS_* variables) gave, zero fields meaning not given;
// its Type is ignored (lms.type is the file's). The variables that lms.token_env
// and lms.client_secret_env name are read with getenv, the command's injected
// environment (run's getenv), never the process's directly; nil reads none.
func (f LMSConfig) Over(l LMSSettings, getenv func(string) string) LMSSettings {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	s := LMSSettings{Type: cmp.Or(f.Type, "scim"), URL: f.URL, Rate: f.Rate, Timeout: f.Timeout, CAFile: f.CAFile,
		ClientFilter: f.ClientFilter}
	s.URL = cmp.Or(l.URL, s.URL)
	s.Token, s.User, s.Password = l.Token, l.User, l.Password
	if s.Token == "" && f.TokenEnv != "" {
		s.Token = getenv(f.TokenEnv)
	}
	s.ClientID = cmp.Or(l.ClientID, f.ClientID)
	s.ClientSecret = l.ClientSecret
	if s.ClientSecret == "" && f.ClientSecretEnv != "" {
		s.ClientSecret = getenv(f.ClientSecretEnv)
	}
	s.ExternalIDField = cmp.Or(l.ExternalIDField, f.ExternalIDField)
	s.EmployeeNumberField = cmp.Or(l.EmployeeNumberField, f.EmployeeNumberField)
	s.AdditionalFields = cmp.Or(l.AdditionalFields, f.AdditionalFields)
	if f.SearchBatch != nil {
		s.SearchBatch, s.NoSearch = *f.SearchBatch, *f.SearchBatch == 0
	}
	s.ProbeInterval, s.MaxProbeInterval = f.Quarantine.ProbeInterval, f.Quarantine.MaxProbeInterval
	s.CAFile = cmp.Or(l.CAFile, s.CAFile)
	s.ClientFilter = cmp.Or(l.ClientFilter, s.ClientFilter)
	s.Timeout = cmp.Or(l.Timeout, s.Timeout)
	s.Rate = cmp.Or(l.Rate, s.Rate)
	s.Timeout = cmp.Or(s.Timeout, 15*time.Second)
	s.Rate = cmp.Or(s.Rate, "unlimited")
	return s
}

// LMSOpener builds one type of LMS adapter from its settings.
type LMSOpener func(s LMSSettings) (connector.LMS, error)

// lmsTypes are the LMS adapters by lms.type, as dex registers its connectors. A new
// adapter is one package plus one line here.
var lmsTypes = map[string]LMSOpener{
	"scim":   openSCIM,
	"moodle": openMoodle,
	"docebo": openDocebo,
}

var lmsTypesMu sync.RWMutex

// RegisterLMS adds an adapter type (tests register doubles with it).
func RegisterLMS(typ string, open LMSOpener) {
	lmsTypesMu.Lock()
	defer lmsTypesMu.Unlock()
	lmsTypes[typ] = open
}

// CheckLMS says what is wrong with the LMS settings s, or nil: it builds the
// adapter s names and drops it, so that a command fails at start, not at its
// first LMS call.
func CheckLMS(s LMSSettings) error {
	_, err := openLMS(s)
	return err
}

// openLMS builds the adapter that s names. Only this package calls it: see the
// package comment.
func openLMS(s LMSSettings) (connector.LMS, error) {
	lmsTypesMu.RLock()
	open, ok := lmsTypes[s.Type]
	var known []string
	for t := range lmsTypes {
		known = append(known, t)
	}
	lmsTypesMu.RUnlock()
	if !ok {
		sort.Strings(known)
		return nil, fmt.Errorf("lms.type %q: not an LMS hrsync knows (known: %s)", s.Type, strings.Join(known, ", "))
	}
	return open(s)
}

// openSCIM builds the SCIM 2.0 client.
func openSCIM(s LMSSettings) (connector.LMS, error) {
	if s.URL == "" {
		return nil, fmt.Errorf("--lms-url (LMS_URL, or lms.url in the configuration file) is required: the SCIM 2.0 base URL of the LMS")
	}
	opts := []scim.Option{scim.WithTimeout(s.Timeout), scim.WithHTTPClient(&http.Client{
		Transport: &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12}, MaxIdleConnsPerHost: 32},
	})}
	if s.CAFile != "" {
		opts = append(opts, scim.WithCACertFile(s.CAFile))
	}
	if s.transport != nil {
		opts = append(opts, scim.WithTransportWrapper(s.transport.wrap))
	}
	if s.log != nil {
		opts = append(opts, scim.WithLogger(s.log.With("lms", "scim")))
	}
	switch {
	case s.SearchBatch < 0:
		return nil, fmt.Errorf("lms.search_batch %d: want a positive number of values, or 0 for no POST /Users/.search", s.SearchBatch)
	case s.NoSearch:
		opts = append(opts, scim.WithSearchBatch(0))
	case s.SearchBatch > 0:
		opts = append(opts, scim.WithSearchBatch(s.SearchBatch))
	}
	if s.ClientFilter != "" {
		var attrs []connector.FilterAttr
		for _, a := range strings.Split(s.ClientFilter, ",") {
			switch attr := connector.FilterAttr(strings.TrimSpace(a)); attr {
			case connector.ByExternalID, connector.ByUserName, connector.ByEmail, connector.ByEmployeeNumber:
				attrs = append(attrs, attr)
			default:
				return nil, fmt.Errorf("--lms-client-filter: %q is not one of externalId, userName, emails.value, employeeNumber", a)
			}
		}
		opts = append(opts, scim.WithClientSideFilter(attrs...))
	}
	switch {
	case s.Token != "" && s.User != "":
		return nil, fmt.Errorf("--lms-token and --lms-user: choose one way to authenticate")
	case s.Token != "":
		opts = append(opts, scim.WithBearerToken(s.Token))
	case s.User != "":
		opts = append(opts, scim.WithBasicAuth(s.User, s.Password))
	}
	return scim.New(s.URL, opts...)
}

// Options are what a command adds to the settings.
type Options struct {
	Log *slog.Logger
	// Metrics are the Prometheus series to feed; nil makes new ones.
	Metrics *Metrics
	Now     func() time.Time
	// LMS, if set, is the LMS to use instead of the one lms.type names (the demo,
	// the bench and tests bring their own). It goes behind the guard all the same.
	LMS connector.LMS
	// WrapLMS, if set, wraps the LMS (LMS, or the one lms.type names) inside the
	// guard: the bench times the calls the guard lets through.
	WrapLMS func(connector.LMS) connector.LMS
	// LMSClock, if set, is the guard's clock (its rate limit, retries and
	// quarantine): the bench skips the rate limit's waits with one.
	LMSClock guard.Clock
	// ReactivateManual reactivates accounts deactivated outside hrsync (--reactivate-manual).
	ReactivateManual bool
	// DeadLetterMaxBody caps a dead letter's stored body (store.DB.DeadLetterMaxBody).
	DeadLetterMaxBody int
	// Migrate lets Open create the database and apply pending migrations
	// (store.Migrate). The zero value opens only an existing database of this
	// binary's schema and refuses any other with the reason and the fix
	// (docs/store.md). Only hrsync run (unless --migrate=false), hrsync migrate,
	// and the demo and the bench (which make their own database) set it.
	Migrate bool
	// TracerProvider traces events from where they enter to every LMS call
	// (TracingFromEnv; docs/tracing.md); nil: no tracing.
	TracerProvider trace.TracerProvider
}

// App is the assembly: see the package comment.
type App struct {
	set     Settings
	opts    Options
	log     *slog.Logger
	metrics *Metrics
	now     func() time.Time
	db      *store.DB

	safeguard *connector.WindowSafeguard
	rate      guard.Rate

	// attrs is what the LMS keeps, shared by the converger and the reconciler.
	attrs *connector.KeptAttributes

	lmsOnce sync.Once
	// tracing is Options.TracerProvider's; traces, the span that recorded each
	// worker's latest fact, which its converge continues.
	tracing tracing
	traces  workerTraces
	lms     *guard.LMS
	lmsErr  error
}

// Open opens the store (migrating it only if o.Migrate) and builds the safeguard; the LMS is
// opened on first use (App.LMS), so that commands that never call it do not need it.
func Open(ctx context.Context, set Settings, o Options) (_ *App, err error) {
	a := &App{set: set, opts: o, log: o.Log, metrics: o.Metrics, now: o.Now, tracing: newTracing(o.TracerProvider)}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.metrics == nil {
		a.metrics = NewMetrics()
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.rate, err = guard.ParseRate(set.LMS.Rate); err != nil {
		return nil, fmt.Errorf("--lms-rate (LMS_RATE, lms.rate): %w", err)
	}
	if a.attrs, err = connector.NewKeptAttributes(a.log, set.File.LMS.IgnoreAttributes...); err != nil {
		return nil, fmt.Errorf("lms.%w", err)
	}
	if a.db, err = store.Open(ctx, set.DB, a.log, store.Migrate(o.Migrate)); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	defer func() {
		if err != nil {
			_ = a.db.Close()
		}
	}()
	if o.Now != nil {
		a.db.Now = o.Now
	}
	if o.DeadLetterMaxBody > 0 {
		a.db.DeadLetterMaxBody = o.DeadLetterMaxBody
	}
	// With a key, a wrong key is refused here. Without one, the store records no
	// fact once it holds erasure tombstones (it could not refuse an erased
	// person's), and commands that record nothing work on; the daemon refuses to
	// start (OpenStack).
	if len(set.ErasureKey) > 0 {
		if err := a.db.UseErasureKeys(ctx, set.ErasureKey, set.ErasureKeysOld...); err != nil {
			return nil, err
		}
	}
	sc := set.Safeguard
	sc.Store, sc.Now, sc.Logger = a.db, a.now, a.log
	if a.safeguard, err = connector.NewSafeguard(sc); err != nil {
		return nil, err
	}
	return a, nil
}

// LMS returns the LMS behind the guard: the client-side rate limit, retries of
// temporary failures and the quarantine (docs/lms-resilience.md), reporting to the
// app's metrics.
func (a *App) LMS() (connector.LMS, error) {
	a.lmsOnce.Do(func() {
		s := a.set.LMS
		if w := a.tracing.transport(); w != nil {
			s.transport = &transportWrap{wrap: w}
		}
		a.lms, a.lmsErr = guardedLMS(s, a.opts.LMS, a.opts.WrapLMS, a.opts.LMSClock, a.log, a.metrics)
	})
	if a.lmsErr != nil {
		return nil, a.lmsErr
	}
	return a.lms, nil
}

// GuardedLMS opens the LMS s names (or takes raw, if given) behind the guard, with
// s's rate, reporting to m. It is the only way to an LMS client: the app uses it,
// and the one command that needs an LMS but no store (report rehire).
func GuardedLMS(s LMSSettings, raw connector.LMS, log *slog.Logger, m *Metrics) (*guard.LMS, error) {
	return guardedLMS(s, raw, nil, nil, log, m)
}

// guardedLMS is GuardedLMS with wrap (nil: none) between the LMS and the guard,
// and the guard's clock (nil: the real one).
func guardedLMS(s LMSSettings, raw connector.LMS, wrap func(connector.LMS) connector.LMS, clock guard.Clock, log *slog.Logger, m *Metrics) (*guard.LMS, error) {
	rate, err := guard.ParseRate(s.Rate)
	if err != nil {
		return nil, fmt.Errorf("--lms-rate (LMS_RATE, lms.rate): %w", err)
	}
	switch {
	case s.ProbeInterval < 0:
		return nil, fmt.Errorf("lms.quarantine.probe_interval %s: want a positive duration (omit it for 30s)", s.ProbeInterval)
	case s.MaxProbeInterval < 0:
		return nil, fmt.Errorf("lms.quarantine.max_probe_interval %s: want a positive duration (omit it for 10m)", s.MaxProbeInterval)
	case s.MaxProbeInterval > 0 && s.ProbeInterval > s.MaxProbeInterval:
		return nil, fmt.Errorf("lms.quarantine.probe_interval %s is longer than lms.quarantine.max_probe_interval %s", s.ProbeInterval, s.MaxProbeInterval)
	}
	if raw == nil {
		s.log = log
		if raw, err = openLMS(s); err != nil {
			return nil, err
		}
	}
	if wrap != nil {
		raw = wrap(raw)
	}
	if m == nil {
		m = NewMetrics()
	}
	return guard.New(raw, guard.Config{Rate: rate, Logger: log, Hooks: m.guardHooks(), Clock: clock,
		Quarantine: guard.QuarantineConfig{ProbeInterval: s.ProbeInterval, MaxProbeInterval: s.MaxProbeInterval}}), nil
}

// PerHour is the LMS's rate in calls per hour, 0 if unlimited (job estimates).
func (a *App) PerHour() float64 {
	if a.rate.Unlimited() {
		return 0
	}
	return a.rate.PerSecond() * 3600
}

// policy returns the feeds' policies.
func (a *App) policy(feed string) connector.Policy {
	return a.set.Feeds[feed].Policy(connector.Policy{Leaver: connector.LeaverDeactivate,
		ReactivateManual: a.opts.ReactivateManual, CourseValidity: a.set.Courses})
}

// Policy is the policy of feed, as the converger applies it (the console's
// person page plans with it).
func (a *App) Policy(feed string) connector.Policy { return a.policy(feed) }

// mirror is the account mirror the converger and the reconciler share: the
// store, unless lms.mirror is false.
func (a *App) mirror() connector.AccountMirror {
	if m := a.set.File.LMS.Mirror; m != nil && !*m {
		return nil
	}
	return a.db
}

// Converger builds a converger on the app's parts: the store, the guarded LMS, the
// feeds and their policies, the safeguard, the eraser and the metrics. cc tunes it;
// the parts it names are the app's whatever cc says.
func (a *App) Converger(cc connector.ConvergerConfig) (*connector.Converger, error) {
	lms, err := a.LMS()
	if err != nil {
		return nil, err
	}
	cc.Store, cc.LMS, cc.Feeds, cc.Logger, cc.Now = a.db, lms, a.set.Feeds, a.log, a.now
	cc.Policy, cc.Safeguard, cc.EraseFunc, cc.Attributes = a.policy, a.safeguard, a.eraseRequested, a.attrs
	cc.Mirror = a.mirror()
	if a.tracing.on && cc.Hooks.Trace == nil {
		cc.Hooks.Trace = a.traceConverge
	}
	cc.Hooks = a.metrics.convergerHooks(cc.Hooks)
	return connector.NewConverger(cc)
}

// traceConverge is the converger's Trace hook: a span of converging w, a
// child of the span that recorded w's latest fact in this process (so one trace
// runs from the event to the LMS calls), or a root when there is none.
func (a *App) traceConverge(ctx context.Context, w connector.WorkerKey) (context.Context, func(error)) {
	parent := ctx
	if sc, ok := a.traces.take(w); ok {
		parent = trace.ContextWithSpanContext(ctx, sc)
	}
	ctx, span := a.tracing.tracer.Start(parent, "hrsync.converge",
		trace.WithAttributes(attribute.String("hrsync.feed", w.Feed), attribute.String("hrsync.worker_id", w.WorkerID)))
	return ctx, func(err error) {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
}

// Reconciler builds a reconciler on the app's parts; rc tunes it.
func (a *App) Reconciler(rc connector.ReconcilerConfig) (*connector.Reconciler, error) {
	lms, err := a.LMS()
	if err != nil {
		return nil, err
	}
	rc.Store, rc.LMS, rc.Feeds, rc.Logger, rc.Policy = a.db, lms, a.set.Feeds, a.log, a.policy
	rc.ReactivateManual, rc.Attributes = a.opts.ReactivateManual, a.attrs
	rc.Mirror = a.mirror()
	return connector.NewReconciler(rc)
}

// Uploader builds the roster uploader: the safeguard's thresholds judge each upload
// whole, once (docs/rosters.md).
func (a *App) Uploader() *roster.Uploader {
	return &roster.Uploader{Store: a.db, Feeds: a.set.Feeds, Rosters: a.set.Rosters, Now: a.now, Log: a.log,
		ThresholdsFunc: a.safeguard.Thresholds, ApprovalsNeeded: a.set.Approvals[connector.HoldUpload]}
}

// Store is the app's store.
func (a *App) Store() *store.DB { return a.db }

// Settings are the settings the app was opened with.
func (a *App) Settings() Settings { return a.set }

// Log is the app's logger.
func (a *App) Log() *slog.Logger { return a.log }

// Clock is the app's clock.
func (a *App) Clock() func() time.Time { return a.now }

// Metrics are the Prometheus series the app feeds.
func (a *App) Metrics() *Metrics { return a.metrics }

// eraseRequested is the daemon converger's EraseFunc: erasure.Requested with the
// daemon's erasure key and the feed's retention policy.
func (a *App) eraseRequested(ctx context.Context, r connector.ErasureRequest) error {
	lms, err := a.LMS()
	if err != nil {
		return err
	}
	return erasure.Requested(ctx, a.db, lms, a.set.ErasureKey, a.set.Retention.Keep(r.Worker.Feed), r, a.log)
}

// Close closes the store.
func (a *App) Close() {
	if a.db != nil {
		_ = a.db.Close()
	}
}

// safeguardConfig is safeguard: in the configuration file, and feeds[].safeguard.
type safeguardConfig struct {
	thresholdsConfig `yaml:",inline"`
	// Overall bounds all feeds together; default: the same as the feeds'.
	Overall *thresholdsConfig `yaml:"overall"`
	Window  time.Duration     `yaml:"window"`
	// Settle is how long removals gather into one burst before it is judged.
	Settle *time.Duration `yaml:"settle"`
}

type thresholdsConfig struct {
	Percent     *float64 `yaml:"percent"`
	Count       *int     `yaml:"count"`
	MinRemovals *int     `yaml:"min_removals"`
}

// over returns t with the values c sets.
func (c thresholdsConfig) over(t connector.Thresholds) connector.Thresholds {
	if c.Percent != nil {
		t.Percent = *c.Percent
	}
	if c.Count != nil {
		t.Count = *c.Count
	}
	if c.MinRemovals != nil {
		t.MinRemovals = *c.MinRemovals
	}
	return t
}

// defaultSettle is how long live removals gather before they are judged.
const defaultSettle = 30 * time.Second

// safeguard returns the safeguard's configuration: one rule for the daemon and
// every command. It cannot be switched off; thresholds can be raised.
func (fc FileConfig) safeguard(feeds connector.Feeds) (connector.SafeguardConfig, error) {
	sg := fc.Safeguard
	def := sg.over(connector.DefaultThresholds())
	c := connector.SafeguardConfig{Default: def, Overall: def, Window: cmp.Or(sg.Window, time.Hour), Settle: defaultSettle,
		Feeds: map[string]connector.Thresholds{}}
	if sg.Overall != nil {
		c.Overall = sg.Overall.over(def)
	}
	if sg.Settle != nil {
		c.Settle = *sg.Settle
	}
	for _, f := range fc.Feeds {
		if f.Safeguard != (thresholdsConfig{}) {
			c.Feeds[f.Name] = f.Safeguard.over(def)
		}
	}
	var errs []error
	check := func(where string, t connector.Thresholds) {
		switch {
		case t.Percent < 0 || t.Count < 0 || t.MinRemovals < 0:
			errs = append(errs, fmt.Errorf("%s: percent, count and min_removals must not be negative", where))
		case t.Percent == 0 && t.Count == 0:
			errs = append(errs, fmt.Errorf("%s: percent and count are both 0, which would hold nothing; the safeguard cannot be switched off, raise the thresholds instead", where))
		}
	}
	check("safeguard", c.Default)
	check("safeguard.overall", c.Overall)
	for name, t := range c.Feeds {
		if _, ok := feeds[name]; !ok {
			errs = append(errs, fmt.Errorf("feeds[%s].safeguard: no such feed", name))
		}
		check("feeds["+name+"].safeguard", t)
	}
	if c.Window <= 0 {
		errs = append(errs, errors.New("safeguard.window: must be positive"))
	}
	if c.Settle < 0 || c.Settle >= c.Window {
		errs = append(errs, fmt.Errorf("safeguard.settle %s: must be at least 0 and shorter than the window %s", c.Settle, c.Window))
	}
	if err := errors.Join(errs...); err != nil {
		return c, fmt.Errorf("config file: %w", err)
	}
	return c, nil
}

// retention returns the feeds' retention policies.
func (fc FileConfig) retention() (erasure.Retention, error) {
	r := erasure.Retention{}
	for _, f := range fc.Feeds {
		if f.Retention.KeepLearningRecords != nil {
			r[f.Name] = *f.Retention.KeepLearningRecords
		}
	}
	return r, nil
}

// CourseValidity returns each configured course's validity (report rehire).
func (fc FileConfig) CourseValidity() (map[string]time.Duration, error) {
	out := map[string]time.Duration{}
	for course, c := range fc.Courses {
		if c.Validity < 0 {
			return nil, fmt.Errorf("courses.%s.validity %s: must not be negative", course, c.Validity)
		}
		out[course] = c.Validity
	}
	return out, nil
}
