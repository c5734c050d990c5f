package main

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

	"github.com/hrsync/hrsync/cmd/hrsync/internal/roster"
	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/guard"
	"github.com/hrsync/hrsync/connector/lms/scim"
	"github.com/hrsync/hrsync/events"
	"github.com/hrsync/hrsync/store"
)

// The one assembly (docs/design.md, "One assembly"). Every command that touches
// the store or the LMS takes its parts from an app: the configuration is read
// once (settings), and the app builds from it the store, the LMS behind the guard
// (rate limit, retries, quarantine), the feeds' policies, the safeguard, the
// converger, the reconciler and the eraser. There is no other way to an LMS client
// in this package: openLMS is called only here, so no command can reach the LMS
// except through the same guard, safeguard and audit as the daemon.

// settings is the configuration of one process: the configuration file, read
// once, with the flags and environment variables that override it.
type settings struct {
	file      fileConfig
	db        string
	feeds     connector.Feeds
	stream    events.StreamConfig
	lms       lmsSettings
	safeguard connector.SafeguardConfig
	rosters   map[string]rosterConfig
	retention retentionPolicy
	courses   map[string]time.Duration
	// erasureKey is HRSYNC_ERASURE_KEY; erasureKeysOld, HRSYNC_ERASURE_KEYS_OLD,
	// check the tombstones made before a rotation.
	erasureKey     []byte
	erasureKeysOld [][]byte
}

// settings reads the configuration file and applies the flags.
func (c *connFlags) settings(env *environment, l *lmsFlags) (settings, error) {
	fc, err := loadConfigFile(c.config)
	if err != nil {
		return settings{}, err
	}
	s := settings{file: fc, db: c.db, erasureKey: []byte(env.getenv(erasureKeyEnv))}
	if s.erasureKeysOld, err = oldErasureKeys(env.getenv); err != nil {
		return settings{}, err
	}
	if s.feeds, s.stream, err = feedsAndStream(fc, c.feeds); err != nil {
		return settings{}, err
	}
	if s.safeguard, err = fc.safeguard(s.feeds); err != nil {
		return settings{}, err
	}
	if s.rosters, err = rosterConfigs(fc.Feeds); err != nil {
		return settings{}, err
	}
	if s.retention, err = fc.retention(); err != nil {
		return settings{}, err
	}
	if s.courses, err = fc.courseValidity(); err != nil {
		return settings{}, err
	}
	s.lms = fc.LMS.over(l)
	return s, nil
}

// openApp reads the settings of c and l, lets edit adjust them (nil: none), and
// opens the app with o; its logger follows --log-format and --log-level unless o
// brings one.
func (c *connFlags) openApp(ctx context.Context, env *environment, l *lmsFlags, o appOptions, edit func(*settings)) (*app, error) {
	set, err := c.settings(env, l)
	if err != nil {
		return nil, err
	}
	if edit != nil {
		edit(&set)
	}
	if l != nil && o.LMS == nil {
		// A command that needs the LMS says what is wrong with its settings before
		// it opens (and perhaps creates) a store.
		if _, err := openLMS(set.lms); err != nil {
			return nil, err
		}
	}
	if o.Log == nil {
		if o.Log, err = newLogger(env.stderr, c.logFormat, c.logLevel); err != nil {
			return nil, err
		}
	}
	return openApp(ctx, set, o)
}

// settingsFor returns the settings of a configuration given in code (the demo,
// the bench, tests): the file fc, with feeds instead of fc's if given.
func settingsFor(db string, feeds connector.Feeds, fc fileConfig) (settings, error) {
	s := settings{file: fc, db: db}
	var err error
	if s.feeds, s.stream, err = feedsAndStream(fc, nil); err != nil {
		return settings{}, err
	}
	if feeds != nil {
		s.feeds = feeds
	}
	if s.safeguard, err = fc.safeguard(s.feeds); err != nil {
		return settings{}, err
	}
	if s.rosters, err = rosterConfigs(fc.Feeds); err != nil {
		return settings{}, err
	}
	if s.retention, err = fc.retention(); err != nil {
		return settings{}, err
	}
	if s.courses, err = fc.courseValidity(); err != nil {
		return settings{}, err
	}
	s.lms = fc.LMS.over(nil)
	return s, nil
}

// lmsSettings say which LMS to reach and how: lms: in the configuration file, with
// the --lms-* flags (and LMS_* variables) over it. Secrets come only from flags or
// the environment.
type lmsSettings struct {
	// Type selects the adapter (lmsTypes); default scim.
	Type                  string
	URL                   string
	Token, User, Password string
	CAFile                string
	ClientFilter          string
	Timeout               time.Duration
	Rate                  string
}

// lmsConfig is lms: in the configuration file.
type lmsConfig struct {
	Type         string        `yaml:"type"`
	URL          string        `yaml:"url"`
	Rate         string        `yaml:"rate"`
	Timeout      time.Duration `yaml:"timeout"`
	CAFile       string        `yaml:"ca_file"`
	ClientFilter string        `yaml:"client_filter"`
}

// over returns the file's LMS settings with the flags that were given laid over.
func (f lmsConfig) over(l *lmsFlags) lmsSettings {
	s := lmsSettings{Type: cmp.Or(f.Type, "scim"), URL: f.URL, Rate: f.Rate, Timeout: f.Timeout, CAFile: f.CAFile,
		ClientFilter: f.ClientFilter}
	if l != nil {
		s.URL = cmp.Or(l.url, s.URL)
		s.Token, s.User, s.Password = l.token, l.user, l.password
		s.CAFile = cmp.Or(l.caFile, s.CAFile)
		s.ClientFilter = cmp.Or(l.clientFilter, s.ClientFilter)
		s.Timeout = cmp.Or(l.timeout, s.Timeout)
		s.Rate = cmp.Or(l.rate, s.Rate)
	}
	s.Timeout = cmp.Or(s.Timeout, 15*time.Second)
	s.Rate = cmp.Or(s.Rate, "unlimited")
	return s
}

// lmsOpener builds one type of LMS adapter from its settings.
type lmsOpener func(s lmsSettings) (connector.LMS, error)

// lmsTypes are the LMS adapters by lms.type, as dex registers its connectors. A new
// adapter is one package plus one line here.
var lmsTypes = map[string]lmsOpener{
	"scim": openSCIM,
}

var lmsTypesMu sync.RWMutex

// registerLMS adds an adapter type (tests register doubles with it).
func registerLMS(typ string, open lmsOpener) {
	lmsTypesMu.Lock()
	defer lmsTypesMu.Unlock()
	lmsTypes[typ] = open
}

// openLMS builds the adapter that s names. Only the app calls it: see the top of
// this file.
func openLMS(s lmsSettings) (connector.LMS, error) {
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
func openSCIM(s lmsSettings) (connector.LMS, error) {
	if s.URL == "" {
		return nil, fmt.Errorf("--lms-url (LMS_URL, or lms.url in the configuration file) is required: the SCIM 2.0 base URL of the LMS")
	}
	opts := []scim.Option{scim.WithTimeout(s.Timeout), scim.WithHTTPClient(&http.Client{
		Transport: &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12}, MaxIdleConnsPerHost: 32},
	})}
	if s.CAFile != "" {
		opts = append(opts, scim.WithCACertFile(s.CAFile))
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

// appOptions are what a command adds to the settings.
type appOptions struct {
	Log *slog.Logger
	// Metrics are the Prometheus series to feed; nil makes new ones.
	Metrics *metrics
	Now     func() time.Time
	// LMS, if set, is the LMS to use instead of the one lms.type names (the demo,
	// the bench and tests bring their own). It goes behind the guard all the same.
	LMS connector.LMS
	// ReactivateManual reactivates accounts deactivated outside hrsync (--reactivate-manual).
	ReactivateManual bool
	// DeadLetterMaxBody caps a dead letter's stored body (store.DB.DeadLetterMaxBody).
	DeadLetterMaxBody int
}

// app is the assembly: see the top of this file.
type app struct {
	set     settings
	opts    appOptions
	log     *slog.Logger
	metrics *metrics
	now     func() time.Time
	db      *store.DB

	safeguard *connector.WindowSafeguard
	rate      guard.Rate

	lmsOnce sync.Once
	lms     *guard.LMS
	lmsErr  error
}

// openApp opens the store (migrating it) and builds the safeguard; the LMS is
// opened on first use (app.LMS), so that commands that never call it do not need it.
func openApp(ctx context.Context, set settings, o appOptions) (_ *app, err error) {
	a := &app{set: set, opts: o, log: o.Log, metrics: o.Metrics, now: o.Now}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.metrics == nil {
		a.metrics = newMetrics()
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.rate, err = guard.ParseRate(set.lms.Rate); err != nil {
		return nil, fmt.Errorf("--lms-rate (LMS_RATE, lms.rate): %w", err)
	}
	if a.db, err = store.Open(ctx, set.db, a.log); err != nil {
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
	// start (openStack).
	if len(set.erasureKey) > 0 {
		if err := a.db.UseErasureKeys(ctx, set.erasureKey, set.erasureKeysOld...); err != nil {
			return nil, err
		}
	}
	sc := set.safeguard
	sc.Store, sc.Now, sc.Logger = a.db, a.now, a.log
	if a.safeguard, err = connector.NewSafeguard(sc); err != nil {
		return nil, err
	}
	return a, nil
}

// LMS returns the LMS behind the guard: the client-side rate limit, retries of
// temporary failures and the quarantine (docs/lms-resilience.md), reporting to the
// app's metrics.
func (a *app) LMS() (connector.LMS, error) {
	a.lmsOnce.Do(func() {
		a.lms, a.lmsErr = guardedLMS(a.set.lms, a.opts.LMS, a.log, a.metrics)
	})
	if a.lmsErr != nil {
		return nil, a.lmsErr
	}
	return a.lms, nil
}

// guardedLMS opens the LMS s names (or takes raw, if given) behind the guard, with
// s's rate, reporting to m. It is the only way to an LMS client: the app uses it,
// and the one command that needs an LMS but no store (report rehire).
func guardedLMS(s lmsSettings, raw connector.LMS, log *slog.Logger, m *metrics) (*guard.LMS, error) {
	rate, err := guard.ParseRate(s.Rate)
	if err != nil {
		return nil, fmt.Errorf("--lms-rate (LMS_RATE, lms.rate): %w", err)
	}
	if raw == nil {
		if raw, err = openLMS(s); err != nil {
			return nil, err
		}
	}
	if m == nil {
		m = newMetrics()
	}
	return guard.New(raw, guard.Config{Rate: rate, Logger: log, Hooks: m.guardHooks()}), nil
}

// perHour is the LMS's rate in calls per hour, 0 if unlimited (job estimates).
func (a *app) perHour() float64 {
	if a.rate.Unlimited() {
		return 0
	}
	return a.rate.PerSecond() * 3600
}

// policy returns the feeds' policies.
func (a *app) policy(feed string) connector.Policy {
	return a.set.feeds[feed].Policy(connector.Policy{Leaver: connector.LeaverDeactivate,
		ReactivateManual: a.opts.ReactivateManual, CourseValidity: a.set.courses})
}

// converger builds a converger on the app's parts: the store, the guarded LMS, the
// feeds and their policies, the safeguard, the eraser and the metrics. cc tunes it;
// the parts it names are the app's whatever cc says.
func (a *app) converger(cc connector.ConvergerConfig) (*connector.Converger, error) {
	lms, err := a.LMS()
	if err != nil {
		return nil, err
	}
	cc.Store, cc.LMS, cc.Feeds, cc.Logger, cc.Now = a.db, lms, a.set.feeds, a.log, a.now
	cc.Policy, cc.Safeguard, cc.EraseFunc = a.policy, a.safeguard, a.eraseRequested
	cc.Hooks = a.metrics.convergerHooks(cc.Hooks)
	return connector.NewConverger(cc)
}

// reconciler builds a reconciler on the app's parts; rc tunes it.
func (a *app) reconciler(rc connector.ReconcilerConfig) (*connector.Reconciler, error) {
	lms, err := a.LMS()
	if err != nil {
		return nil, err
	}
	rc.Store, rc.LMS, rc.Feeds, rc.Logger, rc.Policy = a.db, lms, a.set.feeds, a.log, a.policy
	rc.ReactivateManual = a.opts.ReactivateManual
	return connector.NewReconciler(rc)
}

// uploader builds the roster uploader: the safeguard's thresholds judge each upload
// whole, once (docs/rosters.md).
func (a *app) uploader() *roster.Uploader {
	return &roster.Uploader{Store: a.db, Feeds: a.set.feeds, Rosters: a.set.rosters, Now: a.now, Log: a.log,
		ThresholdsFunc: a.safeguard.Thresholds}
}

// Close closes the store.
func (a *app) Close() {
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
func (fc fileConfig) safeguard(feeds connector.Feeds) (connector.SafeguardConfig, error) {
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
func (fc fileConfig) retention() (retentionPolicy, error) {
	r := retentionPolicy{}
	for _, f := range fc.Feeds {
		if f.Retention.KeepLearningRecords != nil {
			r[f.Name] = *f.Retention.KeepLearningRecords
		}
	}
	return r, nil
}

// courseValidity returns each configured course's validity (report rehire).
func (fc fileConfig) courseValidity() (map[string]time.Duration, error) {
	out := map[string]time.Duration{}
	for course, c := range fc.Courses {
		if c.Validity < 0 {
			return nil, fmt.Errorf("courses.%s.validity %s: must not be negative", course, c.Validity)
		}
		out[course] = c.Validity
	}
	return out, nil
}
