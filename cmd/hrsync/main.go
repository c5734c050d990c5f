// Command hrsync keeps an LMS in step with HR data: it consumes hire, leave and
// rehire CloudEvents from NATS JetStream, records them, and converges every LMS
// account to what they imply. Run "hrsync --help" for the commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	err := run(context.Background(), os.Args, os.Getenv, os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hrsync:", err)
		var e *exitError
		if errors.As(err, &e) && e.cmd != "" {
			fmt.Fprintf(os.Stderr, "Run %q for usage.\n", e.cmd+" --help")
		}
	}
	os.Exit(exitCode(err))
}

// The exit codes (docs/cli.md). Scripts can tell "done" from "done, but a person
// must look" without reading the output.
const (
	exitOK        = 0 // done
	exitFailed    = 1 // failed
	exitUsage     = 2 // usage error: unknown command or flag, bad flag value, wrong arguments
	exitAttention = 3 // done, but something needs a person: a hold, drift, open review items
)

const exitCodesHelp = `Exit codes:
  0  done
  1  failed
  2  usage error: unknown command or flag, bad flag value, wrong number of arguments
  3  done, but something needs a person: a hold was created or is open, reconcile found
     drift (without --apply), review items are open, an upload was held`

// exitError is an error with its exit code; cmd, for a usage error, is the
// command whose --help to point at.
type exitError struct {
	code int
	cmd  string
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// exitCode is the process's exit code for err, the result of run.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	return exitFailed
}

// usageErr makes err a usage error of cmd (nil: of hrsync).
func usageErr(cmd *cobra.Command, err error) error {
	path := "hrsync"
	if cmd != nil {
		path = cmd.CommandPath()
	}
	return &exitError{code: exitUsage, cmd: path, err: err}
}

// usagef is a usage error of cmd with a formatted message.
func usagef(cmd *cobra.Command, format string, args ...any) error {
	return usageErr(cmd, fmt.Errorf(format, args...))
}

// attentionf reports that the command did its work, and that a person must now
// look at what it names (exit code 3).
func attentionf(format string, args ...any) error {
	return &exitError{code: exitAttention, err: fmt.Errorf(format, args...)}
}

// environment is what every command gets from the process: its environment,
// its output, and the global flags.
type environment struct {
	getenv         func(string) string
	stdout, stderr io.Writer
	log            logFlags
}

// run is the whole program; main only calls it, and tests call it directly.
// exitCode maps its error to the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	ctx, cancel := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer cancel()
	env := &environment{getenv: getenv, stdout: stdout, stderr: stderr}
	root := newRootCmd(env)
	if len(args) > 0 {
		args = args[1:]
	}
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

const rootLong = `hrsync keeps an LMS in step with HR data.

It consumes hire, leave and rehire CloudEvents from NATS JetStream, records them in
PostgreSQL (or SQLite), and converges every LMS account to what they imply: create on
hire, deactivate on leave (never delete), reactivate the same account on rehire.

Flags may come before or after a command's arguments. Connection, secret and tuning
flags also read an environment variable (DATABASE_URL, NATS_URL, LMS_URL, ...), named
in the command's --help; the command line wins. Every flag of "hrsync run" has one.

Commands that print records take --format table|csv|json and --out FILE.
The daemon (run, sandbox-lms) logs JSON at level info; the other commands log text to
stderr at level warn; --log-format and --log-level change that.

` + exitCodesHelp

// newRootCmd builds the command tree.
func newRootCmd(env *environment) *cobra.Command {
	root := &cobra.Command{
		Use:           "hrsync",
		Short:         "keep an LMS in step with HR data",
		Long:          rootLong,
		Version:       versionString(),
		SilenceErrors: true,
		SilenceUsage:  true,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				hint := ""
				if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
					hint = "; did you mean " + strings.Join(s, " or ") + "?"
				}
				return usagef(cmd, "unknown command %q%s", args[0], hint)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(env.stderr)
			_ = cmd.Usage()
			return usagef(cmd, "no command given")
		},
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return applyEnv(cmd, env.getenv)
		},
		CompletionOptions: cobra.CompletionOptions{HiddenDefaultCmd: false},
	}
	root.SetOut(env.stdout)
	root.SetErr(env.stderr)
	root.SetVersionTemplate("hrsync {{.Version}}\n")
	root.SetFlagErrorFunc(flagError)
	env.log.register(root.PersistentFlags())
	root.AddCommand(
		newRunCmd(env), newDemoCmd(env), newPublishCmd(env), newEraseCmd(env), newAuditCmd(env),
		newDeadCmd(env), newReviewCmd(env), newRosterCmd(env), newHoldsCmd(env), newCleanupCmd(env),
		newFeedCmd(env), newSandboxLMSCmd(env), newBenchCmd(env), newMigrateCmd(env), newHealthCheckCmd(env), newReconcileCmd(env),
		newReportCmd(env), newConsoleCmd(env), newExplainCmd(env),
		&cobra.Command{
			Use:   "version",
			Short: "print the version",
			Args:  noArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				fmt.Fprintln(env.stdout, "hrsync", versionString())
				return nil
			},
		},
	)
	return root
}

// flagError makes a flag parsing error a usage error, with a hint when --feed
// was meant to declare a feed.
func flagError(cmd *cobra.Command, err error) error {
	if strings.Contains(err.Error(), "unknown flag: --feed") && cmd.Flags().Lookup("declare-feed") != nil {
		err = fmt.Errorf("%w (%s has no --feed; to declare a feed without a configuration file, use --declare-feed NAME[:KIND[:TIMEZONE]])",
			err, cmd.CommandPath())
	}
	return usageErr(cmd, err)
}

// group is a command that only holds subcommands: run without one, it prints
// its help to stderr and fails as a usage error.
func group(env *environment, use, short, long string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{Use: use, Short: short, Long: strings.TrimSpace(long), Args: cobra.ArbitraryArgs}
	c.RunE = func(cmd *cobra.Command, args []string) error {
		var names []string
		for _, s := range cmd.Commands() {
			if s.IsAvailableCommand() {
				names = append(names, s.Name())
			}
		}
		cmd.SetOut(env.stderr)
		_ = cmd.Usage()
		if len(args) == 0 {
			return usagef(cmd, "%s: want a subcommand: %s", cmd.Name(), strings.Join(names, ", "))
		}
		return usagef(cmd, "%s: unknown subcommand %q (want %s)", cmd.Name(), args[0], strings.Join(names, ", "))
	}
	c.AddCommand(subs...)
	return c
}

// noArgs refuses positional arguments, as a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef(cmd, "%s takes no arguments, got %q", cmd.CommandPath(), args)
	}
	return nil
}

// exactArgs wants n positional arguments, described by what.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef(cmd, "%s: want exactly %s, got %d arguments %q", cmd.CommandPath(), what, len(args), args)
		}
		return nil
	}
}

// version is the version stamped at build time:
//
//	go build -ldflags "-X main.version=v1.2.3" ./cmd/hrsync
var version string

// versionString is the version hrsync reports (versionOf of this binary).
func versionString() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	return versionOf(bi, version)
}

// versionOf is the version of a binary with build info bi (nil: none) and the
// stamped version: the stamp if there is one (the release process sets it on
// purpose), else the module version (go install ...@v1.2.3, or the version go
// build derives from the VCS tag), else the VCS revision (+"-dirty" for a build
// with uncommitted changes), else "unknown". Never "(devel)" alone.
func versionOf(bi *debug.BuildInfo, stamped string) string {
	if stamped != "" {
		return stamped
	}
	if bi == nil {
		return "unknown"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev string
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "unknown (built without a module version or VCS information)"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "devel-" + rev
}

// newCmd is a command with its one-line summary, its help text (trimmed) and
// what it takes as arguments. use is its name and its arguments, as the usage
// line shows them.
func newCmd(use, short, long string, args cobra.PositionalArgs) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, Long: strings.TrimSpace(long), Args: args}
}
