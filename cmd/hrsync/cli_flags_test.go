package main

// Tests of the command line itself (docs/cli.md): flags anywhere, a --help per
// command, one meaning per flag name, one output switch, exit codes, logs,
// environment fallbacks and the version.

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/events"
	"github.com/hrsync/hrsync/store"
)

// runCode runs hrsync with args and an environment map and returns stdout,
// stderr and the exit code main would exit with.
func runCode(t *testing.T, env map[string]string, args ...string) (string, string, int) {
	t.Helper()
	out, errOut, err := runCLI(t, env, args...)
	return out, errOut, exitCode(err)
}

// commandTree returns every command of hrsync by its path ("holds approve"),
// the help and completion commands cobra adds excluded.
func commandTree() map[string]*cobra.Command {
	root := newRootCmd(&environment{getenv: func(string) string { return "" }, stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}})
	cmds := map[string]*cobra.Command{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, s := range c.Commands() {
			if s.Hidden || s.Name() == "help" || s.Name() == "completion" {
				continue
			}
			cmds[strings.TrimPrefix(s.CommandPath(), "hrsync ")] = s
			walk(s)
		}
	}
	walk(root)
	return cmds
}

// holdStore returns a SQLite store with one open live hold of three workers
// (id 1), and its URL.
func holdStore(t *testing.T) (*store.DB, string) {
	t.Helper()
	url := "sqlite://" + filepath.Join(t.TempDir(), "hrsync.db")
	db := openStore(t, url)
	var ws []connector.HeldWorker
	for _, id := range []string{"w1", "w2", "w3"} {
		ws = append(ws, connector.HeldWorker{Worker: connector.WorkerKey{Feed: "hr", WorkerID: id}, Name: "Name " + id,
			Email: id + "@example.com", AccountID: "a-" + id, Action: connector.ActionDeactivate, Version: 1})
	}
	if _, err := db.CreateHold(t.Context(), connector.Hold{Feed: "hr", Kind: connector.HoldLive, Reason: "3 removals of 4",
		Counts: connector.HoldCounts{Active: 4}, Workers: ws}); err != nil {
		t.Fatal(err)
	}
	return db, url
}

// TestFlagsAfterArguments: the forms the README and hrsync's advice print, with
// flags after the positional argument, parse (Go's flag package stopped at the
// first positional and answered "want exactly one hold ID").
func TestFlagsAfterArguments(t *testing.T) {
	t.Parallel()
	db, url := holdStore(t)
	dir := t.TempDir()

	file := filepath.Join(dir, "held.csv")
	_, stderr, code := runCode(t, nil, "holds", "show", "1", "--format", "csv", "--out", file, "--db", url)
	if code != exitAttention || !strings.Contains(stderr, "wrote 3 affected people of hold 1 to "+file) {
		t.Fatalf("holds show 1 --format csv --out FILE: code %d, stderr %s", code, stderr)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil || len(rows) != 4 || rows[1][2] != "w1" {
		t.Fatalf("held.csv: %v %q", err, rows)
	}

	out, stderr, code := runCode(t, nil, "holds", "approve", "1", "--by", "alice", "--reason", "x", "--db", url)
	if code != exitOK || !strings.Contains(out, "hold 1 approved by alice") {
		t.Fatalf("holds approve 1 --by alice --reason x: code %d\n%s%s", code, out, stderr)
	}
	if h, err := db.GetHold(t.Context(), 1); err != nil || h.Status != connector.HoldApproved || h.Decision != "x" {
		t.Fatalf("hold after approve: %+v, %v", h, err)
	}
	// A decided hold cannot be rejected, but the command line is understood.
	if _, _, err := runCLI(t, nil, "holds", "reject", "1", "--by", "b", "--reason", "r", "--db", url); exitCode(err) != exitFailed ||
		!strings.Contains(err.Error(), "approved by alice") {
		t.Fatalf("holds reject 1 --by b --reason r: %v (code %d), want the store's refusal", err, exitCode(err))
	}
	cfg := filepath.Join(dir, "hrsync.yaml")
	if err := os.WriteFile(cfg, []byte("feeds:\n  - {name: hr, kind: hr}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCLI(t, nil, "dead", "replay", "3", "--config", cfg, "--db", url); exitCode(err) != exitFailed ||
		!strings.Contains(err.Error(), "dead letter 3") {
		t.Fatalf("dead replay 3 --config F: %v (code %d), want dead letter 3 not found", err, exitCode(err))
	}
}

// TestEveryCommandHasItsHelp: every command and subcommand answers --help on
// stdout with its usage line and every one of its flags.
func TestEveryCommandHasItsHelp(t *testing.T) {
	t.Parallel()
	cmds := commandTree()
	for _, want := range []string{"holds list", "holds show", "holds approve", "holds reject", "holds run", "dead list",
		"dead replay", "dead prune", "review list", "roster upload", "roster list", "roster token", "feed offboard",
		"feed status", "cleanup dormant", "erase", "erase forget-key", "report headcount", "report churn",
		"report dormant", "report rehire", "run", "publish", "explain", "version"} {
		if cmds[want] == nil {
			t.Errorf("no command %q", want)
		}
	}
	for path, c := range cmds {
		help := helpOf(t, path)
		if !strings.Contains(help, "Usage:\n  hrsync "+path) {
			t.Errorf("hrsync %s --help has no usage line:\n%s", path, help)
		}
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if !f.Hidden && !strings.Contains(help, "--"+f.Name+" ") {
				t.Errorf("hrsync %s --help does not list --%s:\n%s", path, f.Name, help)
			}
		})
	}
	for _, path := range []string{"holds approve", "holds show", "dead replay", "review list", "feed offboard", "cleanup dormant"} {
		if help := helpOf(t, path); !strings.Contains(help, "--db URL") {
			t.Errorf("hrsync %s --help lists no --db:\n%s", path, help)
		}
	}
	root := helpOf(t, "")
	for _, want := range []string{"Exit codes:", "3  done, but something needs a person", "named\nin the command's --help"} {
		if !strings.Contains(root, want) {
			t.Errorf("hrsync --help lacks %q:\n%s", want, root)
		}
	}
	if strings.Contains(root, "Every flag has an environment") {
		t.Errorf("hrsync --help claims every flag has an environment fallback")
	}
	out, _, err := runCLI(t, nil, "completion", "bash")
	if err != nil || !strings.Contains(out, "bash completion") || !strings.Contains(out, "hrsync") {
		t.Fatalf("completion bash: %v\n%.300s", err, out)
	}
}

// TestFeedFlagHasOneMeaning: --feed selects one feed by name in every command;
// a feed is declared with --declare-feed, and a value meant for one of them
// given to the other is refused, never taken as a filter.
func TestFeedFlagHasOneMeaning(t *testing.T) {
	t.Parallel()
	for path, c := range commandTree() {
		for _, gone := range []string{"only-feed", "to-feed", "csv"} {
			if c.LocalFlags().Lookup(gone) != nil {
				t.Errorf("hrsync %s still has --%s", path, gone)
			}
		}
		if f := c.LocalFlags().Lookup("feed"); f != nil {
			if _, ok := f.Value.(*feedName); !ok {
				t.Errorf("hrsync %s: --feed is a %T, not one feed by name", path, f.Value)
			}
		}
		if f := c.LocalFlags().Lookup("declare-feed"); f != nil {
			if _, ok := f.Value.(*declaredFeeds); !ok || c.LocalFlags().Lookup("config") == nil {
				t.Errorf("hrsync %s: --declare-feed is a %T, or comes without --config", path, f.Value)
			}
		}
	}
	db := "sqlite://" + filepath.Join(t.TempDir(), "h.db")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"dead", "replay", "--feed", "hr", "--feed", "acme:partner", "3", "--db", db}, "--declare-feed NAME[:KIND[:TIMEZONE]]"},
		{[]string{"holds", "list", "--feed", "hr:hr", "--db", db}, `"hr:hr" is not a feed name`},
		{[]string{"holds", "list", "--feed", "hr", "--feed", "acme", "--db", db}, "given twice (hr, then acme)"},
		{[]string{"review", "list", "--feed", "Not A Feed", "--db", db}, "is not a feed name"},
		{[]string{"publish", "--declare-feed", "a:b:c:d", "--dry-run", "--type", "hired", "--worker", "w1"}, "want NAME[:KIND[:TIMEZONE]]"},
	} {
		_, _, err := runCLI(t, nil, tc.args...)
		if exitCode(err) != exitUsage || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("hrsync %q: %v (code %d), want a usage error containing %q", tc.args, err, exitCode(err), tc.want)
		}
	}
	// Declared feeds are feeds, and --feed picks the one to publish to.
	out, _, err := runCLI(t, nil, "publish", "--declare-feed", "hr,partner-acme:partner", "--feed", "partner-acme", "--dry-run",
		"--type", "hired", "--worker", "p1", "--email", "p1@acme.example")
	if err != nil || !strings.Contains(out, "hrsync.events.partner-acme.hired") {
		t.Fatalf("publish to a declared feed: %v\n%s", err, out)
	}
}

// TestOutputSwitch: every command that prints records takes --format
// table|csv|json (and --json, its alias); a bad format is a usage error that
// names the allowed values.
func TestOutputSwitch(t *testing.T) {
	t.Parallel()
	for path, c := range commandTree() {
		f := c.LocalFlags().Lookup("format")
		if f == nil {
			continue
		}
		if j := c.LocalFlags().Lookup("json"); j == nil || !j.Hidden {
			t.Errorf("hrsync %s has --format but no hidden --json alias", path)
		}
		if f.DefValue != "table" {
			t.Errorf("hrsync %s --format defaults to %q, want table", path, f.DefValue)
		}
	}
	_, url := holdStore(t)
	for _, list := range [][]string{{"holds", "list"}, {"dead", "list"}, {"review", "list"}, {"roster", "list"}, {"audit"},
		{"report", "headcount"}, {"report", "churn"}} {
		args := append(list, "--db", url)
		out, stderr, code := runCode(t, nil, append(args, "--format", "csv")...)
		if code != exitOK && code != exitAttention {
			t.Errorf("hrsync %q --format csv: code %d\n%s", args, code, stderr)
			continue
		}
		if _, err := csv.NewReader(strings.NewReader(out)).ReadAll(); err != nil || out == "" || strings.Contains(out, "\t") {
			t.Errorf("hrsync %q --format csv is not CSV (%v):\n%s", args, err, out)
		}
		// JSON: one document (a report), or JSON lines (records).
		out, _, _ = runCode(t, nil, append(args, "--json")...)
		if !json.Valid([]byte(out)) {
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				if line != "" && !json.Valid([]byte(line)) {
					t.Errorf("hrsync %q --json: not JSON: %s", args, line)
				}
			}
		}
		_, _, err := runCLI(t, nil, append(args, "--format", "xml")...)
		if exitCode(err) != exitUsage || !strings.Contains(err.Error(), "want table, csv or json") {
			t.Errorf("hrsync %q --format xml: %v, want a usage error naming table, csv or json", args, err)
		}
		if _, _, err := runCLI(t, nil, append(args, "--json", "--format", "csv")...); exitCode(err) != exitUsage {
			t.Errorf("hrsync %q --json --format csv: %v, want a usage error", args, err)
		}
	}
	out, _, _ := runCode(t, nil, "holds", "list", "--db", url, "--format", "json")
	var h connector.Hold
	if err := json.Unmarshal([]byte(out), &h); err != nil || h.ID != 1 || h.Counts.Removals != 3 {
		t.Fatalf("holds list --format json: %v\n%s", err, out)
	}
}

// TestReportRehireCSV: report rehire --format csv, which the README offers.
func TestReportRehireCSV(t *testing.T) {
	t.Parallel()
	l := startLMS(t, nil)
	a, err := l.sb.CreateAccount(t.Context(), connector.Account{ExternalID: "hr:w7", UserName: "kai@example.com", Active: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.sb.CompleteCourse(a.ID, "+safety-101", time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	out, stderr, err := runCLI(t, nil, "report", "rehire", "--worker", "hr:w7", "--lms-url", l.url, "--lms-token", l.token,
		"--validity", "+safety-101=8760h", "--now", "2026-11-01", "--format", "csv")
	if err != nil {
		t.Fatalf("report rehire --format csv: %v\n%s", err, stderr)
	}
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(rows) != 2 || strings.Join(rows[0], ",") != "worker,account_id,course,completed_at,completions,validity,expires_at,status" ||
		rows[1][0] != "hr:w7" || rows[1][2] != "'+safety-101" || rows[1][3] != "2024-05-01" || rows[1][7] != "expired" {
		t.Fatalf("report rehire CSV (%v):\n%s", err, out)
	}
}

// TestExitCodes: 0 done, 1 failed, 2 usage error, 3 done but a person must look.
func TestExitCodes(t *testing.T) {
	t.Parallel()
	empty := "sqlite://" + filepath.Join(t.TempDir(), "empty.db")
	if _, stderr, code := runCode(t, nil, "migrate", "--db", empty); code != exitOK {
		t.Fatalf("migrate: code %d\n%s", code, stderr)
	}
	db, held := holdStore(t)
	addReview(t, db)
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"holds", "list", "--db", empty}, exitOK},
		{[]string{"review", "list", "--db", empty}, exitOK},
		{[]string{"version"}, exitOK},
		{[]string{"holds", "--help"}, exitOK},
		{[]string{"holds", "approve", "9", "--by", "a", "--reason", "b", "--db", empty}, exitFailed},
		{[]string{"frobnicate"}, exitUsage},
		{[]string{}, exitUsage},
		{[]string{"holds"}, exitUsage},
		{[]string{"holds", "frobnicate"}, exitUsage},
		{[]string{"holds", "list", "--frobnicate"}, exitUsage},
		{[]string{"holds", "list", "--limit", "many"}, exitUsage},
		{[]string{"holds", "list", "--status", "pending"}, exitUsage},
		{[]string{"holds", "approve", "--by", "a", "--reason", "b"}, exitUsage},
		{[]string{"holds", "approve", "1", "2", "--by", "a", "--reason", "b"}, exitUsage},
		{[]string{"holds", "approve", "one", "--by", "a", "--reason", "b"}, exitUsage},
		{[]string{"holds", "approve", "1", "--db", held}, exitUsage},
		{[]string{"migrate", "extra"}, exitUsage},
		{[]string{"holds", "list", "--db", held}, exitAttention},
		{[]string{"holds", "show", "1", "--db", held}, exitAttention},
		{[]string{"review", "list", "--db", held}, exitAttention},
	} {
		_, stderr, code := runCode(t, map[string]string{"DATABASE_URL": "sqlite://" + filepath.Join(t.TempDir(), "unused.db")}, tc.args...)
		if code != tc.code {
			t.Errorf("hrsync %q: exit code %d, want %d\n%s", tc.args, code, tc.code, stderr)
		}
	}
	if _, _, code := runCode(t, map[string]string{"HRSYNC_LOG_LEVEL": "loud"}, "holds", "list", "--db", empty); code != exitUsage {
		t.Errorf("a bad HRSYNC_LOG_LEVEL: exit code %d, want %d", code, exitUsage)
	}
	// The decision was not taken by any of the refused commands.
	if h, err := db.GetHold(t.Context(), 1); err != nil || h.Status != connector.HoldOpen {
		t.Fatalf("hold 1 after refused commands: %+v, %v", h, err)
	}
}

// TestCommandsLogText: a command other than the daemon logs text at warn, so its
// human output is not followed by JSON lines; --log-format and --log-level ask
// for more.
func TestCommandsLogText(t *testing.T) {
	t.Parallel()
	url := "sqlite://" + filepath.Join(t.TempDir(), "h.db")
	for _, args := range [][]string{{"migrate", "--db", url}, {"holds", "list", "--db", url}, {"dead", "list", "--db", url}} {
		_, stderr, code := runCode(t, nil, args...)
		if code != exitOK || stderr != "" {
			t.Errorf("hrsync %q: code %d, stderr %q; want nothing on stderr", args, code, stderr)
		}
	}
	_, stderr, code := runCode(t, nil, "migrate", "--db", "sqlite://"+filepath.Join(t.TempDir(), "j.db"), "--log-format", "json", "--log-level", "info")
	first, _, _ := strings.Cut(stderr, "\n")
	if code != exitOK || !json.Valid([]byte(first)) || !strings.Contains(first, "applied migration") {
		t.Fatalf("migrate --log-format json --log-level info: code %d, stderr %q; want JSON log lines", code, stderr)
	}
}

// TestRunFlagsReadTheEnvironment: every flag of hrsync run has an environment
// variable, as its help says, and a bad value names the variable and the flag.
func TestRunFlagsReadTheEnvironment(t *testing.T) {
	t.Parallel()
	run := commandTree()["run"]
	run.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Name != "help" && len(f.Annotations[envAnnotation]) == 0 {
			t.Errorf("hrsync run --%s has no environment variable", f.Name)
		}
	})
	for variable, flag := range map[string]string{"HRSYNC_LEASE": "lease", "HRSYNC_BATCH": "batch", "HRSYNC_POLL_INTERVAL": "poll-interval"} {
		_, _, err := runCLI(t, map[string]string{variable: "soon"}, "run", "--lms-url", "http://127.0.0.1:1/scim/v2")
		if exitCode(err) != exitUsage || !strings.Contains(err.Error(), variable+`="soon" (for --`+flag+")") {
			t.Errorf("%s=soon: %v, want a usage error naming %s and --%s", variable, err, variable, flag)
		}
	}
	// The command line wins over the environment.
	if _, _, err := runCLI(t, map[string]string{"HRSYNC_LEASE": "soon"}, "run", "--lease", "1m", "--dead-letter-max-body", "0"); err == nil ||
		strings.Contains(err.Error(), "HRSYNC_LEASE") {
		t.Errorf("--lease given: %v, want the environment ignored", err)
	}
}

// TestVersion: hrsync version and --version print the version; never "(devel)" alone.
func TestVersion(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, _, err := runCLI(t, nil, args...)
		if err != nil || !strings.HasPrefix(out, "hrsync ") || strings.TrimSpace(out) == "hrsync (devel)" || strings.TrimSpace(out) == "hrsync" {
			t.Errorf("hrsync %v: %v %q", args, err, out)
		}
	}
	bi := func(v string, settings ...string) *debug.BuildInfo {
		b := &debug.BuildInfo{Main: debug.Module{Version: v}}
		for i := 0; i+1 < len(settings); i += 2 {
			b.Settings = append(b.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
		}
		return b
	}
	for _, tc := range []struct {
		bi      *debug.BuildInfo
		stamped string
		want    string
	}{
		{bi("v1.4.0"), "", "v1.4.0"},
		{bi("(devel)", "vcs.revision", "0123456789abcdef0123", "vcs.modified", "true"), "", "devel-0123456789ab-dirty"},
		{bi("(devel)", "vcs.revision", "0123456789abcdef0123", "vcs.modified", "false"), "", "devel-0123456789ab"},
		{bi("(devel)"), "v2.0.0-rc1", "v2.0.0-rc1"},
		{bi("v1.4.0"), "v2.0.0", "v2.0.0"},
		{nil, "", "unknown"},
	} {
		if got := versionOf(tc.bi, tc.stamped); got != tc.want {
			t.Errorf("versionOf(%+v, %q) = %q, want %q", tc.bi, tc.stamped, got, tc.want)
		}
	}
	if got := versionOf(bi("(devel)"), ""); strings.Contains(got, "(devel)") {
		t.Errorf("versionOf without any version = %q", got)
	}
}

// TestPublishHelpExample runs the example of "hrsync publish --help" exactly as
// written, from the repository's root, against an in-process NATS server. Not
// parallel: it changes the working directory.
func TestPublishHelpExample(t *testing.T) {
	natsURL := startNATS(t)
	js := connectJS(t, natsURL)
	help := helpOf(t, "publish")
	if !strings.Contains(help, "  "+publishExample+"\n") {
		t.Fatalf("publish --help does not show %q:\n%s", publishExample, help)
	}
	t.Chdir("../..")
	args := strings.Fields(publishExample)
	out, stderr, err := runCLI(t, map[string]string{"NATS_URL": natsURL}, args[1:]...)
	if err != nil || !strings.Contains(out, "published to hrsync.events.hr.hired") {
		t.Fatalf("%s: %v\n%s%s", publishExample, err, out, stderr)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	stream, err := js.Stream(ctx, events.StreamConfig{}.Name("hr"))
	if err != nil {
		t.Fatal(err)
	}
	msg, err := stream.GetLastMsgForSubject(ctx, "hrsync.events.hr.hired")
	if err != nil {
		t.Fatal(err)
	}
	fact, err := (&events.Decoder{Feeds: mustFeeds(t)}).Decode(msg.Subject, msg.Header, msg.Data)
	if err != nil || fact.Kind != connector.KindHired || fact.WorkerID != "w-1001" {
		t.Fatalf("the published example decodes to %+v, %v", fact, err)
	}
}

// addReview records a hire of hr:w9 and completes its converge with a review
// item, as a converger that found two matching accounts does.
func addReview(t *testing.T, db *store.DB) {
	t.Helper()
	ctx, now := t.Context(), time.Now()
	if _, err := db.RecordFacts(ctx, []connector.Fact{{Feed: "hr", WorkerID: "w9", Source: "/feeds/hr", ID: "e-w9",
		Kind: connector.KindHired, Effective: now, Time: now, Profile: connector.Profile{Email: "w9@example.com"}}}); err != nil {
		t.Fatal(err)
	}
	claims, err := db.ClaimDue(ctx, "test", now.Add(time.Second), time.Minute, 10)
	if err != nil || len(claims) != 1 {
		t.Fatalf("claim: %v, %v", claims, err)
	}
	if err := db.Complete(ctx, connector.Completion{Claim: claims[0], Owner: "test",
		Review: &connector.Review{Reason: "two accounts match", Candidates: []string{"a-1", "a-2"}}}); err != nil {
		t.Fatal(err)
	}
}

// mustFeeds is the default configuration's feeds: one feed, hr.
func mustFeeds(t *testing.T) connector.Feeds {
	t.Helper()
	feeds, err := connector.NewFeeds(connector.DefaultFeed("hr", connector.FeedHR))
	if err != nil {
		t.Fatal(err)
	}
	return feeds
}
