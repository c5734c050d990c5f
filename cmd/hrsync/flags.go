package main

// The flags the commands share, and their environment fallbacks: pflag has none,
// so each is declared beside its flag (envFlag) and applied after parsing
// (applyEnv), before the command runs.

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/app"
	"github.com/hrsync/hrsync/connector"
)

// envAnnotation is the pflag annotation that names a flag's environment variable.
const envAnnotation = "hrsync_env"

// envFlag declares variable as the environment fallback of the flag name of fs:
// applyEnv sets the flag from it when the command line did not, and the flag's
// help says "(env VARIABLE)".
func envFlag(fs *pflag.FlagSet, name, variable string) {
	f := fs.Lookup(name)
	if f == nil {
		panic("envFlag: no flag --" + name)
	}
	f.Usage += " (env " + variable + ")"
	if err := fs.SetAnnotation(name, envAnnotation, []string{variable}); err != nil {
		panic(err)
	}
}

// applyEnv sets each flag of cmd that the command line left unset from its
// environment variable, if that is set. A bad value is a usage error naming the
// variable and the flag.
func applyEnv(cmd *cobra.Command, getenv func(string) string) error {
	fs := cmd.Flags()
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		vars := f.Annotations[envAnnotation]
		if f.Changed || len(vars) == 0 {
			return
		}
		v := getenv(vars[0])
		if v == "" {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q (for --%s): %w", vars[0], v, f.Name, err))
		}
	})
	if err := errors.Join(errs...); err != nil {
		return usageErr(cmd, err)
	}
	return nil
}

// logFlags are the global --log-format and --log-level. Empty means the
// command's default: JSON at info for the daemon, text at warn for the others.
type logFlags struct {
	format choice
	level  choice
}

func (l *logFlags) register(fs *pflag.FlagSet) {
	l.format = choice{allowed: []string{"json", "text"}}
	l.level = choice{allowed: []string{"debug", "info", "warn", "error"}}
	fs.Var(&l.format, "log-format", "log format on stderr: json or text (default json for run and sandbox-lms, text for the other commands)")
	envFlag(fs, "log-format", "HRSYNC_LOG_FORMAT")
	fs.Var(&l.level, "log-level", "log level: debug, info, warn or error (default info for run and sandbox-lms, warn for the other commands)")
	envFlag(fs, "log-level", "HRSYNC_LOG_LEVEL")
}

// logger builds a command's logger on env.stderr: the flags, else the given
// defaults (daemonLog or cliLog).
func (env *environment) logger(def logDefaults) *slog.Logger {
	format, level := env.log.format.v, env.log.level.v
	if format == "" {
		format = def.format
	}
	if level == "" {
		level = def.level
	}
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(level)) // checked by the flag
	opts := &slog.HandlerOptions{Level: lvl}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(env.stderr, opts))
	}
	return slog.New(slog.NewTextHandler(env.stderr, opts))
}

// logDefaults are a command's log format and level unless the flags say otherwise.
type logDefaults struct{ format, level string }

var (
	daemonLog = logDefaults{"json", "info"}
	cliLog    = logDefaults{"text", "warn"}
)

// choice is a flag whose value is one of allowed; anything else is refused by name.
type choice struct {
	v       string
	allowed []string
}

func (c *choice) String() string { return c.v }
func (c *choice) Type() string   { return strings.Join(c.allowed, "|") }
func (c *choice) Set(s string) error {
	if !slices.Contains(c.allowed, s) {
		return fmt.Errorf("want %s", orList(c.allowed))
	}
	c.v = s
	return nil
}

// orList is "a, b or c".
func orList(s []string) string {
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// feedName is --feed: one feed, by its plain name, given once. It selects or
// filters; declaring a feed is --declare-feed.
type feedName struct{ name string }

func (f *feedName) String() string { return f.name }
func (f *feedName) Type() string   { return "NAME" }
func (f *feedName) Set(v string) error {
	switch {
	case f.name != "":
		return fmt.Errorf("given twice (%s, then %s): --feed selects one feed", f.name, v)
	case strings.ContainsAny(v, ":,"):
		return fmt.Errorf("%q is not a feed name: --feed selects one feed by its name; to declare a feed without a configuration file, use --declare-feed NAME[:KIND[:TIMEZONE]]", v)
	case !connector.ValidFeedName(v):
		return fmt.Errorf("%q is not a feed name (lower-case letters, digits and -)", v)
	}
	f.name = v
	return nil
}

// addFeed adds --feed to fs, with what it does in this command.
func addFeed(fs *pflag.FlagSet, usage string) *feedName {
	f := &feedName{}
	fs.Var(f, "feed", usage)
	return f
}

// declaredFeeds collects --declare-feed NAME[:KIND[:TIMEZONE]], the simple case
// of feed configuration.
type declaredFeeds []app.FeedConfig

func (f *declaredFeeds) String() string {
	var names []string
	for _, fc := range *f {
		names = append(names, fc.Name)
	}
	return strings.Join(names, ",")
}

func (f *declaredFeeds) Type() string { return "NAME[:KIND[:TIMEZONE]]" }

func (f *declaredFeeds) Set(v string) error {
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

// connFlags are the connection flags: the store, the configuration and NATS.
type connFlags struct {
	db     string
	config string
	feeds  declaredFeeds
	nats   app.NATSSettings // the --nats-* flags, laid over the file's nats:
}

// addDB adds --db.
func (c *connFlags) addDB(fs *pflag.FlagSet) {
	fs.StringVar(&c.db, "db", "sqlite://hrsync.db", "database `URL`: postgres://user@host:5432/db?sslmode=disable, or sqlite://PATH for the embedded default")
	envFlag(fs, "db", "DATABASE_URL")
}

// addConfig adds --config and --declare-feed: together they say which feeds exist.
func (c *connFlags) addConfig(fs *pflag.FlagSet) {
	fs.StringVar(&c.config, "config", "", "configuration `FILE` (YAML): feeds, safeguard, stream limits, LMS")
	envFlag(fs, "config", "HRSYNC_CONFIG")
	fs.Var(&c.feeds, "declare-feed", "declare a feed without a configuration file (repeatable, or a comma list; KIND hr or partner); with neither, one feed \"hr\"")
	envFlag(fs, "declare-feed", "HRSYNC_FEEDS")
}

// addNATS adds the NATS connection flags (docs/nats.md). Each lays over the
// configuration file's nats: section; at most one way to authenticate.
func (c *connFlags) addNATS(fs *pflag.FlagSet) {
	n := &c.nats
	for _, f := range []struct {
		v          *string
		name, env  string
		def, usage string
	}{
		{&n.URL, "nats-url", "NATS_URL", "", "NATS server `URL`s, comma-separated (default nats.url, or nats://127.0.0.1:4222)"},
		{&n.User, "nats-user", "NATS_USER", "", "NATS `USER`, with --nats-password or --nats-password-file"},
		{&n.Password, "nats-password", "NATS_PASSWORD", "", "NATS `PASSWORD` of --nats-user"},
		{&n.PasswordFile, "nats-password-file", "NATS_PASSWORD_FILE", "", "`FILE` holding the NATS password of --nats-user"},
		{&n.Token, "nats-token", "NATS_TOKEN", "", "NATS authentication `TOKEN`"},
		{&n.TokenFile, "nats-token-file", "NATS_TOKEN_FILE", "", "`FILE` holding the NATS authentication token"},
		{&n.NKeyFile, "nats-nkey-file", "NATS_NKEY_FILE", "", "`FILE` holding a NATS nkey user seed (SU...)"},
		{&n.CredsFile, "nats-creds", "NATS_CREDS", "", "NATS credentials `FILE` (user JWT and nkey seed)"},
		{&n.CAFile, "nats-ca-file", "NATS_CA_FILE", "", "PEM `FILE` of the CA that signed the NATS server's certificate (turns TLS on)"},
		{&n.CertFile, "nats-cert-file", "NATS_CERT_FILE", "", "PEM `FILE` of a client certificate for NATS (with --nats-key-file)"},
		{&n.KeyFile, "nats-key-file", "NATS_KEY_FILE", "", "PEM `FILE` of the client certificate's key"},
		{&n.TLSServerName, "nats-tls-server-name", "NATS_TLS_SERVER_NAME", "", "`NAME` the NATS server's certificate must carry, if not the URL's host"},
	} {
		fs.StringVar(f.v, f.name, f.def, f.usage)
		envFlag(fs, f.name, f.env)
	}
}

// natsSettings are the NATS settings of the configuration file (--config), with
// the --nats-* flags over them.
func (c *connFlags) natsSettings() (app.NATSSettings, error) {
	fc, err := app.LoadConfigFile(c.config)
	if err != nil {
		return app.NATSSettings{}, err
	}
	return fc.NATS.Settings().Over(c.nats), nil
}

// lmsFlags select and authenticate the SCIM LMS.
type lmsFlags struct {
	url, token, user, password, caFile string
	clientFilter                       string
	timeout                            time.Duration
	rate                               string
}

func (l *lmsFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&l.url, "lms-url", "", "`URL` of the LMS API: the SCIM 2.0 base (https://lms.example.com/scim/v2), or for lms.type docebo or moodle the site's root (required)")
	envFlag(fs, "lms-url", "LMS_URL")
	fs.StringVar(&l.token, "lms-token", "", "bearer token for the LMS")
	envFlag(fs, "lms-token", "LMS_TOKEN")
	fs.StringVar(&l.user, "lms-user", "", "basic-auth user for the LMS (instead of a token)")
	envFlag(fs, "lms-user", "LMS_USER")
	fs.StringVar(&l.password, "lms-password", "", "basic-auth password for the LMS")
	envFlag(fs, "lms-password", "LMS_PASSWORD")
	fs.DurationVar(&l.timeout, "lms-timeout", 0, "timeout of each LMS call (default lms.timeout, or 15s)")
	envFlag(fs, "lms-timeout", "LMS_TIMEOUT")
	fs.StringVar(&l.caFile, "lms-ca-file", "", "PEM `FILE` of the CA that signed the LMS's TLS certificate (default: the system's)")
	envFlag(fs, "lms-ca-file", "LMS_CA_FILE")
	fs.StringVar(&l.clientFilter, "lms-client-filter", "", "`ATTRS` the LMS cannot filter on, filtered by hrsync after reading every user (comma list; e.g. employeeNumber); see docs/lms-compat.md")
	envFlag(fs, "lms-client-filter", "LMS_CLIENT_FILTER")
}

// registerRate adds --lms-rate: the client-side limit of LMS calls.
func (l *lmsFlags) registerRate(fs *pflag.FlagSet) {
	fs.StringVar(&l.rate, "lms-rate", "", "most LMS calls per second, minute or hour: N/s, N/m or N/h (e.g. 1000/h, Docebo's documented limit), or unlimited (default lms.rate, or unlimited)")
	envFlag(fs, "lms-rate", "LMS_RATE")
}

// addErasureKey adds --erasure-key.
func addErasureKey(fs *pflag.FlagSet, key *string, usage string) {
	fs.StringVar(key, "erasure-key", "", usage)
	envFlag(fs, "erasure-key", erasureKeyEnv)
}

// output is the one output switch of a command that prints records: --format
// (with --json as its hidden alias) and, where a file is useful, --out.
type output struct {
	format choice
	asJSON bool
	out    string
}

// addOutput adds --format (one of formats, the first the default), --json and,
// if withOut, --out.
func addOutput(fs *pflag.FlagSet, withOut bool, formats ...string) *output {
	o := &output{format: choice{v: formats[0], allowed: formats}}
	fs.Var(&o.format, "format", "output format: "+orList(formats))
	fs.BoolVar(&o.asJSON, "json", false, "the same as --format json")
	_ = fs.MarkHidden("json")
	if withOut {
		fs.StringVar(&o.out, "out", "", "write the output to `FILE` instead of stdout")
	}
	return o
}

// resolve returns the chosen format.
func (o *output) resolve(cmd *cobra.Command) (string, error) {
	if o.asJSON {
		if cmd.Flags().Changed("format") && o.format.v != "json" {
			return "", usagef(cmd, "--json and --format %s: choose one", o.format.v)
		}
		return "json", nil
	}
	return o.format.v, nil
}

// create returns where the output goes: the --out file, or stdout. done takes
// the error of writing (returned as it is), closes the file, and says on stderr
// what was written there ("wrote <what> to FILE").
func (o *output) create(env *environment) (w io.Writer, done func(what string, werr error) error, err error) {
	if o.out == "" {
		return env.stdout, func(_ string, werr error) error { return werr }, nil
	}
	f, err := os.Create(o.out)
	if err != nil {
		return nil, nil, err
	}
	return f, func(what string, werr error) error {
		if err := errors.Join(werr, f.Close()); err != nil {
			return err
		}
		fmt.Fprintf(env.stderr, "wrote %s to %s\n", what, o.out)
		return nil
	}, nil
}

// records are rows to print as a table or CSV (header: the CSV header, upper-
// cased for the table; CSV cells are escaped against formula injection), or as
// JSON lines (items: one value a row).
type records struct {
	header []string
	rows   [][]string
	items  []any
}

// write prints r to w in format.
func (r records) write(w io.Writer, format string) error {
	switch format {
	case "json":
		return writeJSONLines(w, r.items)
	case "csv":
		return writeCSV(w, r.header, r.rows)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.ToUpper(strings.Join(r.header, "\t")))
	for _, row := range r.rows {
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

// print writes r in the chosen format to stdout or --out ("wrote N what to FILE").
func (o *output) print(cmd *cobra.Command, env *environment, what string, r records) error {
	format, err := o.resolve(cmd)
	if err != nil {
		return err
	}
	w, done, err := o.create(env)
	if err != nil {
		return err
	}
	return done(fmt.Sprintf("%d %s", len(r.rows), what), r.write(w, format))
}

// writeJSONLines writes each item as one line of JSON.
func writeJSONLines[T any](w io.Writer, items []T) error {
	enc := json.NewEncoder(w)
	for _, it := range items {
		if err := enc.Encode(it); err != nil {
			return err
		}
	}
	return nil
}

// writeCSV writes header and rows as CSV, every cell escaped against formula
// injection (connector.EscapeCSVCell).
func writeCSV(w io.Writer, header []string, rows [][]string) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(header); err != nil {
		return err
	}
	for _, row := range rows {
		rec := make([]string, len(row))
		for i, c := range row {
			rec[i] = connector.EscapeCSVCell(c)
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
