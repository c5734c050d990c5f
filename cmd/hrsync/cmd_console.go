package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/app"
	"github.com/hrsync/hrsync/cmd/hrsync/internal/console"
	"github.com/hrsync/hrsync/cmd/hrsync/internal/jobs"
	"github.com/hrsync/hrsync/cmd/hrsync/internal/notify"
	"github.com/hrsync/hrsync/cmd/hrsync/internal/roster"
	"github.com/hrsync/hrsync/connector/lms/guard"
)

const consoleDesc = `
The admin console is served by hrsync run on its own address (console.addr in the
configuration file, or --console-addr) when configured; it is off by default. Its
local users are in console.users, each with a bcrypt hash of their password made
by hrsync console hash-password, a role (viewer, approver, admin) and the feeds
they see. See docs/console.md.

  hrsync console hash-password          read a password on stdin, print its hash`

func newConsoleCmd(env *environment) *cobra.Command {
	return group(env, "console", "the admin console: make password hashes for its users", consoleDesc, newConsoleHashCmd(env))
}

func newConsoleHashCmd(env *environment) *cobra.Command {
	cmd := newCmd("hash-password", "read a password on stdin, print its bcrypt hash for console.users", `
Read a password from the first line of stdin and print its bcrypt hash, for
password_hash of a user in console.users of the configuration file. The password
is read from stdin, not from an argument, so that it stays out of the shell's
history and the process list. It must be 12 to 72 bytes long.`, noArgs)
	cmd.Example = "  printf '%s\\n' \"$NEW_PASSWORD\" | hrsync console hash-password"
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		line, err := bufio.NewReader(io.LimitReader(cmd.InOrStdin(), 1024)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		hash, err := console.HashPassword(strings.TrimRight(line, "\r\n"))
		if err != nil {
			return usagef(cmd, "hash-password: %v", err)
		}
		fmt.Fprintln(env.stdout, hash)
		return nil
	}
	return cmd
}

// serveConsole starts the console of set on addr (empty: console.addr; both
// empty: no console) for the stack s; the returned stop ends it. Its roster
// uploads are bounded by the admin API's limits.
func serveConsole(ctx context.Context, env *environment, s *app.Stack, set app.Settings, addr string, limits roster.Limits) (func(), error) {
	cfg := set.File.Console
	if addr != "" {
		cfg.Addr = addr
	}
	if !cfg.Enabled() {
		return func() {}, nil
	}
	if err := cfg.Check(set.Feeds.Names()); err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	a := s.App()
	log := a.Log()
	lms, err := a.LMS()
	if err != nil {
		return nil, err
	}
	j := jobs.Env{Store: a.Store(), LMS: lms, Feeds: set.Feeds, PerHour: a.PerHour(), Log: log, Now: a.Clock(),
		Out: io.Discard, Progress: io.Discard, Approvals: set.Approvals}
	up := a.Uploader()
	up.JS = s.JetStream()
	srv, err := console.New(cfg, console.Deps{Store: a.Store(), Feeds: set.Feeds, Log: log, Now: a.Clock(),
		Uploader: up, MaxUpload: limits.OrDefaults().MaxUpload,
		LMS: lms, Policy: a.Policy, Converger: s.Converger(), Settle: set.Safeguard.Settle, Lag: s.ConsumerLag,
		LMSState: func() console.LMSState {
			g, ok := lms.(interface{ Status() guard.Status })
			if !ok {
				return console.LMSState{}
			}
			st := g.Status()
			return console.LMSState{Quarantined: st.Quarantined, Reason: st.Reason, Since: st.Since}
		},
		PublishUpload: func(ctx context.Context, id int64) (int, error) {
			return roster.PublishApprovedHold(ctx, a.Store(), s.JetStream(), id)
		},
		PublishSample: func(ctx context.Context, id int64) (int, error) {
			return roster.PublishSample(ctx, a.Store(), s.JetStream(), id)
		},
		RunJob: func(ctx context.Context, id int64) error {
			return j.RunHold(ctx, id, jobs.RunOptions{Key: env.getenv(erasureKeyEnv), Getenv: env.getenv})
		}})
	if err != nil {
		return nil, err
	}
	s.Reconciled = append(s.Reconciled, srv.Reconciled)
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("console listener %s: %w", cfg.Addr, err)
	}
	stop := srv.Serve(ctx, ln)
	log.Info("console listening", "addr", ln.Addr().String(), "tls", cfg.TLSCert != "")
	return stop, nil
}

// startNotify starts the webhooks of set (notify: in the configuration file),
// if any, on the stack s; the returned stop waits for what is queued.
func startNotify(ctx context.Context, env *environment, s *app.Stack, set app.Settings) (func(), error) {
	cfg := set.File.Notify
	if !cfg.Enabled() {
		return func() {}, nil
	}
	if err := cfg.Check(env.getenv); err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	a := s.App()
	lms, err := a.LMS()
	if err != nil {
		return nil, err
	}
	n := notify.New(cfg, notify.Options{Source: a.Store(), Getenv: env.getenv, Log: a.Log(), Now: a.Clock(),
		LMS: func() notify.LMSStatus {
			g, ok := lms.(interface{ Status() guard.Status })
			if !ok {
				return notify.LMSStatus{}
			}
			st := g.Status()
			return notify.LMSStatus{Quarantined: st.Quarantined, Reason: st.Reason}
		}})
	s.Reconciled = append(s.Reconciled, n.Reconciled)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Run(ctx)
	}()
	a.Log().Info("webhooks on", "webhooks", len(cfg.Webhooks))
	return func() { cancel(); <-done }, nil
}
