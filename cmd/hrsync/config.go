package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/roster"
	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/events"
)

// fileConfig is the configuration file (YAML; JSON is YAML too). Flags and
// environment variables override what it says about connections; feeds are
// declared here, or with --feed for the simple case.
type fileConfig struct {
	Feeds []feedConfig `yaml:"feeds"`
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
	LMS lmsConfig `yaml:"lms"`
	// Safeguard is the one rule that holds mass removals, for the daemon and every
	// command alike; feeds[].safeguard overrides the thresholds per feed.
	Safeguard safeguardConfig `yaml:"safeguard"`
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

type feedConfig struct {
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

// loadConfigFile reads and strictly decodes path: an unknown key is an error, so a
// typo never silently falls back to a default.
func loadConfigFile(path string) (fileConfig, error) {
	var fc fileConfig
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
	return fc, nil
}

// feed turns one configured feed into a connector.Feed, with defaults.
func (fc feedConfig) feed() (connector.Feed, error) {
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

// feedFlag collects --feed NAME[:KIND[:TIMEZONE]], the simple case of feed
// configuration.
type feedFlag []feedConfig

func (f *feedFlag) String() string {
	var names []string
	for _, fc := range *f {
		names = append(names, fc.Name)
	}
	return strings.Join(names, ",")
}

func (f *feedFlag) Set(v string) error {
	for _, item := range strings.Split(v, ",") {
		parts := strings.Split(strings.TrimSpace(item), ":")
		if len(parts) > 3 || parts[0] == "" {
			return fmt.Errorf("want NAME[:KIND[:TIMEZONE]], got %q", item)
		}
		fc := feedConfig{Name: parts[0]}
		if len(parts) > 1 {
			fc.Kind = parts[1]
		}
		if len(parts) > 2 {
			fc.Timezone = parts[2]
		}
		*f = append(*f, fc)
	}
	return nil
}

// buildFeeds merges the file's feeds and the flag's; with neither, one feed "hr".
func buildFeeds(file []feedConfig, flags feedFlag) (connector.Feeds, error) {
	all := append(append([]feedConfig{}, file...), flags...)
	if len(all) == 0 {
		all = []feedConfig{{Name: "hr", Kind: "hr"}}
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

// bindEnv gives flags an environment fallback: for each flag not set on the command
// line whose variable is set, the variable's value is used (and checked).
func bindEnv(fs *flag.FlagSet, getenv func(string) string, env map[string]string) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	for name, variable := range env {
		if set[name] {
			continue
		}
		if v := getenv(variable); v != "" {
			if err := fs.Set(name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q (for --%s): %w", variable, v, name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// envHelp appends "(env VAR)" to each flag's usage, so --help tells the whole truth.
func envHelp(fs *flag.FlagSet, env map[string]string) {
	for name, variable := range env {
		if f := fs.Lookup(name); f != nil {
			f.Usage += " (env " + variable + ")"
		}
	}
}

// rosterConfig is a feed's roster settings in the configuration file.
type rosterConfig = roster.Config

// rosterConfigs returns the roster settings of every feed in the file, checked.
func rosterConfigs(file []feedConfig) (map[string]rosterConfig, error) {
	out := map[string]rosterConfig{}
	for _, fc := range file {
		rc := fc.Roster
		if len(rc.Columns) > 0 {
			if err := (events.RosterMapping{Columns: rc.Columns}).Validate(); err != nil {
				return nil, fmt.Errorf("feed %q: roster.columns: %w", fc.Name, err)
			}
		}
		if rc.Mode != "" {
			if _, err := events.ParseRosterMode(rc.Mode); err != nil {
				return nil, fmt.Errorf("feed %q: roster.mode: %w", fc.Name, err)
			}
		}
		if rc.UploadTokenSHA256 != "" && len(rc.UploadTokenSHA256) != 64 {
			return nil, fmt.Errorf("feed %q: roster.upload_token_sha256 must be 64 hex digits (hrsync roster token prints one)", fc.Name)
		}
		out[fc.Name] = rc
	}
	return out, nil
}
