// Command hrsync keeps an LMS in step with HR data: it consumes hire, leave and
// rehire CloudEvents from NATS JetStream, records them, and converges every LMS
// account to what they imply. Run "hrsync help" for the commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

func main() {
	if err := run(context.Background(), os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "hrsync:", err)
			os.Exit(1)
		}
	}
}

// command is one hrsync subcommand.
type command struct {
	summary string
	run     func(ctx context.Context, env *environment, args []string) error
}

// environment is what every command gets from the process.
type environment struct {
	getenv         func(string) string
	stdout, stderr io.Writer
}

func commands() map[string]command {
	return map[string]command{
		"run":         {"the daemon: consume events, converge LMS accounts, wake at due times", cmdRun},
		"demo":        {"play a seeded season through the real path (embedded NATS, SQLite, sandbox LMS)", cmdDemo},
		"publish":     {"validate and send one event from a JSON file or from flags", cmdPublish},
		"erase":       {"GDPR erasure of one worker: anonymise the LMS account, remove the person from the store, keep a tombstone", cmdErase},
		"audit":       {"query the audit trail: decisions and LMS actions, with facts, plan and outcome; CSV or JSON", cmdAudit},
		"dead":        {"list or replay dead-lettered messages (dead list | dead replay ID)", cmdDead},
		"review":      {"list items a person must decide (review list)", cmdReview},
		"roster":      {"partner roster files: upload (snapshot or delta), list uploads, make tokens", cmdRoster},
		"holds":       {"held removals and jobs: list, show (CSV), approve (--sample-batch), reject, run", cmdHolds},
		"cleanup":     {"dormant-account clean-up: report, hold, approve, then delete in resumable batches", cmdCleanup},
		"feed":        {"partner offboarding: delete or anonymise every account of a feed, then close it", cmdFeed},
		"sandbox-lms": {"serve the sandbox LMS over SCIM 2.0", cmdSandboxLMS},
		"bench":       {"end-to-end throughput and latency benchmark against a baseline", cmdBench},
		"migrate":     {"apply the database migrations and exit", cmdMigrate},
		"reconcile":   {"compare every worker with every LMS account and report drift (--apply fixes it)", cmdReconcile},
		"report":      {"reports: headcount, churn (store history), dormant accounts (LMS), rehire training", cmdReport},
	}
}

// run is the whole program; main only calls it, and tests call it directly.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	ctx, cancel := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer cancel()
	env := &environment{getenv: getenv, stdout: stdout, stderr: stderr}
	cmds := commands()
	if len(args) < 2 {
		usage(stderr, cmds)
		return errors.New("no command given")
	}
	name := args[1]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) > 2 {
			if c, ok := cmds[args[2]]; ok {
				return c.run(ctx, env, []string{"-help"})
			}
		}
		usage(stdout, cmds)
		return nil
	case "version", "--version":
		fmt.Fprintln(stdout, "hrsync", version())
		return nil
	}
	c, ok := cmds[name]
	if !ok {
		usage(stderr, cmds)
		return fmt.Errorf("unknown command %q", name)
	}
	return c.run(ctx, env, args[2:])
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, `hrsync keeps an LMS in step with HR data.

It consumes hire, leave and rehire CloudEvents from NATS JetStream, records them in
PostgreSQL (or SQLite), and converges every LMS account to what they imply: create on
hire, deactivate on leave (never delete), reactivate the same account on rehire.

Usage: hrsync <command> [flags]

Commands:`)
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, `  version      print the version

Run "hrsync <command> -help" for the flags of a command. Every connection flag also
reads an environment variable (DATABASE_URL, NATS_URL, LMS_URL, ...), named in -help.`)
}

// newFlagSet returns a flag set whose -help prints a description and the flags.
func newFlagSet(env *environment, name, synopsis, description string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "Usage: hrsync %s\n\n%s\n\nFlags:\n", synopsis, strings.TrimSpace(description))
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, then applies environment fallbacks. -help returns
// flag.ErrHelp after printing the usage to stdout.
func parseFlags(fs *flag.FlagSet, env *environment, args []string, vars map[string]string) error {
	envHelp(fs, vars)
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			fs.SetOutput(env.stdout)
			fs.Usage()
			return flag.ErrHelp
		}
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	return bindEnv(fs, env.getenv, vars)
}

// newLogger builds the process logger: JSON or text, at a level.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want json or text", format)
}
