package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/app"
	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/events"
)

// From flags to the assembly: the commands' flags become app.Settings here, and
// package app builds everything from them (docs/design.md, "One assembly").

// settings reads the configuration file and applies the flags.
func (c *connFlags) settings(env *environment, l *lmsFlags) (app.Settings, error) {
	fc, err := app.LoadConfigFile(c.config)
	if err != nil {
		return app.Settings{}, err
	}
	old, err := oldErasureKeys(env.getenv)
	if err != nil {
		return app.Settings{}, err
	}
	s, err := app.FromFile(fc, c.db, c.feeds, l.settings())
	if err != nil {
		return app.Settings{}, err
	}
	s.ErasureKey, s.ErasureKeysOld = []byte(env.getenv(erasureKeyEnv)), old
	return s, nil
}

// openApp reads the settings of c and l, lets edit adjust them (nil: none), and
// opens the app with o; its logger follows --log-format and --log-level unless o
// brings one.
func (c *connFlags) openApp(ctx context.Context, env *environment, l *lmsFlags, o app.Options, edit func(*app.Settings)) (*app.App, error) {
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
		if err := app.CheckLMS(set.LMS); err != nil {
			return nil, err
		}
	}
	if o.Log == nil {
		if o.Log, err = newLogger(env.stderr, c.logFormat, c.logLevel); err != nil {
			return nil, err
		}
	}
	return app.Open(ctx, set, o)
}

// feedsAndStream reads only the feeds and the streams of the configuration, for
// commands that need no store (publish); the others take them from settings.
func (c *connFlags) feedsAndStream() (connector.Feeds, events.StreamConfig, error) {
	fc, err := app.LoadConfigFile(c.config)
	if err != nil {
		return nil, events.StreamConfig{}, err
	}
	return app.FeedsAndStream(fc, c.feeds)
}

// settings are the LMS settings the --lms-* flags (and LMS_* variables) gave, to
// lay over the configuration file's (app.LMSConfig.Over); l nil: none.
func (l *lmsFlags) settings() app.LMSSettings {
	if l == nil {
		return app.LMSSettings{}
	}
	return app.LMSSettings{URL: l.url, Token: l.token, User: l.user, Password: l.password, CAFile: l.caFile,
		ClientFilter: l.clientFilter, Timeout: l.timeout, Rate: l.rate}
}

// feedFlag collects --feed NAME[:KIND[:TIMEZONE]], the simple case of feed
// configuration.
type feedFlag []app.FeedConfig

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
		fc := app.FeedConfig{Name: parts[0]}
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
