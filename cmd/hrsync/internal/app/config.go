package app

import (
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/console"
	"github.com/hrsync/hrsync/cmd/hrsync/internal/notify"
	"github.com/hrsync/hrsync/cmd/hrsync/internal/roster"
	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/events"
)

// FileConfig is the configuration file (YAML; JSON is YAML too). Flags and
// environment variables override what it says about connections; feeds are
// declared here, or with --feed for the simple case.
type FileConfig struct {
	Feeds []FeedConfig `yaml:"feeds"`
	// Stream configures the JetStream streams: one per feed, <prefix>_<feed>.
	Stream struct {
		// Name is the pre-0.9 single stream; kept only to explain the change.
		Name         string `yaml:"name"`
		Prefix       string `yaml:"prefix"`
		streamLimits `yaml:",inline"`
		Duplicates   time.Duration `yaml:"duplicates"`
		Replicas     int           `yaml:"replicas"`
	} `yaml:"stream"`
	Courses map[string]courseConfig `yaml:"courses"` // per-course validity, for report rehire
	// LMS selects and tunes the LMS adapter (lms.type); secrets come from flags or
	// the environment only.
	LMS LMSConfig `yaml:"lms"`
	// Safeguard is the one rule that holds mass removals, for the daemon and every
	// command alike; feeds[].safeguard overrides the thresholds per feed.
	Safeguard safeguardConfig `yaml:"safeguard"`
	// NATS says how to reach and authenticate to NATS (docs/nats.md); the
	// --nats-* flags lay over it. Secrets only in files it names.
	NATS NATSConfig `yaml:"nats"`
	// Holds says how many different people approve a hold of each kind.
	Holds HoldsConfig `yaml:"holds"`
	// Console is the admin console that hrsync run serves (docs/console.md); off
	// unless console.addr (or --console-addr) is set.
	Console console.Config `yaml:"console"`
	// Notify sends webhooks when a hold opens, the LMS is quarantined or
	// recovers, dead letters come in bursts, or a reconciliation finds drift.
	Notify notify.Config `yaml:"notify"`
}

// HoldsConfig is holds: in the configuration file.
type HoldsConfig struct {
	// Approvals is how many different people must approve a hold, by kind
	// (upload, cleanup, offboard); default one. Four eyes hold whatever
	// the number: who caused a hold never approves it (docs/console.md).
	Approvals map[string]int `yaml:"approvals"`
}

// approvals checks holds.approvals and returns it by kind.
func (c HoldsConfig) approvals() (map[connector.HoldKind]int, error) {
	out := map[connector.HoldKind]int{}
	for k, n := range c.Approvals {
		switch kind := connector.HoldKind(k); kind {
		case connector.HoldUpload, connector.HoldCleanup, connector.HoldOffboard:
			if n < 1 || n > 5 {
				return nil, fmt.Errorf("holds.approvals.%s: %d: want 1 to 5 different approvers", k, n)
			}
			out[kind] = n
		default:
			return nil, fmt.Errorf("holds.approvals.%s: want upload, cleanup or offboard (a live hold takes one approver)", k)
		}
	}
	return out, nil
}

// streamLimits bound one feed's stream (events.StreamLimits); in stream: they are
// every feed's default, in a feed's stream: that feed's own.
type streamLimits struct {
	MaxAge     time.Duration `yaml:"max_age"`
	MaxBytes   int64         `yaml:"max_bytes"`
	MaxMsgs    int64         `yaml:"max_msgs"`
	MaxMsgSize int32         `yaml:"max_msg_size"`
}

func (l streamLimits) limits() events.StreamLimits {
	return events.StreamLimits{MaxAge: l.MaxAge, MaxBytes: l.MaxBytes, MaxMsgs: l.MaxMsgs, MaxMsgSize: l.MaxMsgSize}
}

// FeedConfig is one feed of the configuration file (feeds:), or of --feed.
type FeedConfig struct {
	Name string `yaml:"name"`
	// Stream bounds this feed's own stream; zero fields take stream:'s values.
	Stream streamLimits `yaml:"stream"`
	// Safeguard overrides the thresholds of safeguard: for this feed.
	Safeguard thresholdsConfig `yaml:"safeguard"`
	Kind      string           `yaml:"kind"`
	Source    string           `yaml:"source"`
	Timezone  string           `yaml:"timezone"`
	Scope     struct {
		ExternalIDPrefixes []string `yaml:"external_id_prefixes"`
		AdoptUnmanaged     *bool    `yaml:"adopt_unmanaged"`
		Organizations      []string `yaml:"organizations"`
	} `yaml:"scope"`
	Roster    rosterConfig    `yaml:"roster"`
	Retention retentionConfig `yaml:"retention"`
	// PreHireLeadDays and PreHireActive: create accounts this many days before the
	// start date, inactive unless pre_hire_active.
	PreHireLeadDays int  `yaml:"pre_hire_lead_days"`
	PreHireActive   bool `yaml:"pre_hire_active"`
	// Leaver: deactivate (default), delete-if-no-activity or
	// deactivate-then-delete-after, with delete_after (e.g. 720h).
	Leaver struct {
		Policy      string        `yaml:"policy"`
		DeleteAfter time.Duration `yaml:"delete_after"`
	} `yaml:"leaver"`
}

// LoadConfigFile reads and strictly decodes path: an unknown key is an error, so a
// typo never silently falls back to a default.
func LoadConfigFile(path string) (FileConfig, error) {
	var fc FileConfig
	if path == "" {
		return fc, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return fc, fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil {
		return fc, fmt.Errorf("config file %s: %w", path, err)
	}
	if err := fc.NATS.check(); err != nil {
		return fc, fmt.Errorf("config file %s: %w", path, err)
	}
	return fc, nil
}

// feed turns one configured feed into a connector.Feed, with defaults.
func (fc FeedConfig) feed() (connector.Feed, error) {
	kind := connector.FeedKind(fc.Kind)
	if kind == "" {
		kind = connector.FeedHR
	}
	f := connector.DefaultFeed(fc.Name, kind)
	if fc.Source != "" {
		f.Source = fc.Source
	}
	if fc.Timezone != "" {
		loc, err := time.LoadLocation(fc.Timezone)
		if err != nil {
			return f, fmt.Errorf("feed %q: timezone %q: %w", fc.Name, fc.Timezone, err)
		}
		f.Location = loc
	}
	f.Scope.ExternalIDPrefixes = fc.Scope.ExternalIDPrefixes
	f.Scope.Organizations = fc.Scope.Organizations
	if fc.Scope.AdoptUnmanaged != nil {
		f.Scope.AdoptUnmanaged = *fc.Scope.AdoptUnmanaged
	}
	f.PreHireLeadDays, f.PreHireActive = fc.PreHireLeadDays, fc.PreHireActive
	f.Leaver, f.DeleteAfter = connector.LeaverAction(fc.Leaver.Policy), fc.Leaver.DeleteAfter
	return f, f.Validate()
}

// BuildFeeds merges the file's feeds and the flag's; with neither, one feed "hr".
func BuildFeeds(file, flags []FeedConfig) (connector.Feeds, error) {
	all := append(append([]FeedConfig{}, file...), flags...)
	if len(all) == 0 {
		all = []FeedConfig{{Name: "hr", Kind: "hr"}}
	}
	var feeds []connector.Feed
	for _, fc := range all {
		f, err := fc.feed()
		if err != nil {
			return nil, err
		}
		feeds = append(feeds, f)
	}
	return connector.NewFeeds(feeds...)
}

// rosterConfig is a feed's roster settings in the configuration file.
type rosterConfig = roster.Config

// rosterConfigs returns the roster settings of every feed in the file, checked.
func rosterConfigs(file []FeedConfig) (map[string]rosterConfig, error) {
	out := map[string]rosterConfig{}
	for _, fc := range file {
		rc := fc.Roster
		if err := rc.Check(); err != nil {
			return nil, fmt.Errorf("feed %q: %w", fc.Name, err)
		}
		out[fc.Name] = rc
	}
	return out, nil
}

// retentionConfig is a feed's retention policy (feeds[].retention in the config file).
type retentionConfig struct {
	// KeepLearningRecords keeps an erased person's learning records, pseudonymised
	// on the anonymised account (default true); false deletes them.
	KeepLearningRecords *bool `yaml:"keep_learning_records"`
}

// courseConfig is one course of the configuration's top-level courses map.
type courseConfig struct {
	// Validity is how long a completion counts, e.g. 8760h; 0: forever.
	Validity time.Duration `yaml:"validity"`
}

// FeedsAndStream returns the feeds of the file and the flags, and their streams.
func FeedsAndStream(fc FileConfig, flags []FeedConfig) (connector.Feeds, events.StreamConfig, error) {
	feeds, err := BuildFeeds(fc.Feeds, flags)
	if err != nil {
		return nil, events.StreamConfig{}, fmt.Errorf("feeds: %w", err)
	}
	if fc.Stream.Name != "" {
		return nil, events.StreamConfig{}, fmt.Errorf("config file: stream.name: hrsync keeps one stream per feed, " +
			"named <stream.prefix>_<feed>; replace name with prefix (docs/design.md, feed isolation)")
	}
	sc := events.StreamConfig{Prefix: fc.Stream.Prefix, Limits: fc.Stream.limits(),
		Duplicates: fc.Stream.Duplicates, Replicas: fc.Stream.Replicas, PerFeed: map[string]events.StreamLimits{}}
	for _, f := range fc.Feeds {
		if f.Stream != (streamLimits{}) {
			sc.PerFeed[f.Name] = f.Stream.limits()
		}
	}
	if err := sc.Validate(feeds.Names()); err != nil {
		return nil, events.StreamConfig{}, fmt.Errorf("config file: %w", err)
	}
	return feeds, sc, nil
}

// RedactNATSURL hides the credentials of a NATS server URL, or of a comma-separated
// list of them, for logs and errors. Unlike a database URL's user, the userinfo
// of a NATS URL may be a token on its own (nats://TOKEN@host), so all of it goes.
func RedactNATSURL(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		switch {
		case err != nil:
			parts[i] = "(unparseable URL)"
		case u.User != nil:
			u.User = url.User("xxxxx")
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}
