package main

import (
	"context"
	"log/slog"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/app"
	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/events"
	"github.com/hrsync/hrsync/store"
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
	s, err := app.FromFile(fc, c.db, c.feeds, l.settings(), env.getenv)
	if err != nil {
		return app.Settings{}, err
	}
	s.ErasureKey, s.ErasureKeysOld = []byte(env.getenv(erasureKeyEnv)), old
	return s, nil
}

// openApp reads the settings of c and l, lets edit adjust them (nil: none), and
// opens the app with o; its logger is the command-line logger unless o brings one.
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
		// it opens a store.
		if err := app.CheckLMS(set.LMS); err != nil {
			return nil, err
		}
	}
	if o.Log == nil {
		o.Log = env.logger(cliLog)
	}
	return app.Open(ctx, set, o)
}

// openStore opens the store of --db for a command that needs nothing else, with
// the command-line logger.
func (c *connFlags) openStore(ctx context.Context, env *environment, opts ...store.Option) (*store.DB, *slog.Logger, error) {
	log := env.logger(cliLog)
	db, err := store.Open(ctx, c.db, log, opts...)
	return db, log, err
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

// redactURL hides the password of a database URL for logs (see store.RedactURL).
func redactURL(s string) string { return store.RedactURL(s) }

// redactNATSURL hides the credentials of NATS server URLs (app.RedactNATSURL).
func redactNATSURL(s string) string { return app.RedactNATSURL(s) }
