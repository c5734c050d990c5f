package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/app"
	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/events"
	"github.com/hrsync/hrsync/store"
	"github.com/hrsync/hrsync/store/pgtest"
)

// docFixture is the world TestDocCommands runs the documented commands in: a
// PostgreSQL store, an in-process NATS with the feeds' streams, the sandbox LMS over
// SCIM, the example configuration as hrsync.yaml, a partner roster as acme.csv, in a
// working directory of its own, with the environment the README tells an operator
// to set (DATABASE_URL, NATS_URL, LMS_URL, LMS_TOKEN, HRSYNC_ERASURE_KEY).
type docFixture struct {
	t     *testing.T
	dir   string
	env   map[string]string
	db    *store.DB
	lms   *testLMS
	holds map[string]int64 // the holds the doc's example IDs stand for, by role

	benchLMS string // the SCIM URL of the bench's own sandbox
}

func newDocFixture(t *testing.T) *docFixture {
	f := &docFixture{t: t, dir: t.TempDir(), holds: map[string]int64{}}
	dbURL := pgtest.URL(t)
	natsURL := startNATS(t)
	f.lms = startLMS(t, nil)
	f.env = map[string]string{"DATABASE_URL": dbURL, "NATS_URL": natsURL, "LMS_URL": f.lms.url, "LMS_TOKEN": f.lms.token,
		erasureKeyEnv: "doc-test-erasure-key-0123456789abcdef",
		// The daemons' admin port: a free one, not the default 9090 of the machine.
		"HRSYNC_ADMIN_ADDR": "127.0.0.1:0"}
	// An account made by hand long ago and never used: what "cleanup dormant" is for.
	if _, err := f.lms.sb.CreateAccount(t.Context(), connector.Account{UserName: "old.temp@example.com",
		Profile: connector.Profile{Email: "old.temp@example.com", GivenName: "Old", FamilyName: "Temp"}}); err != nil {
		t.Fatal(err)
	}

	// The example configuration, with an LMS budget the test need not wait for
	// (its 1000/h lets one call start every 3.6 s).
	conf, err := os.ReadFile(filepath.Join("..", "..", "deploy", "hrsync.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(conf), "rate: 1000/h") {
		t.Fatal("deploy/hrsync.example.yaml no longer sets rate: 1000/h; update the doc test's fixture")
	}
	f.write("hrsync.yaml", strings.Replace(string(conf), "rate: 1000/h", "rate: 100/s", 1))
	roster, err := os.ReadFile(filepath.Join("..", "..", "testdata", "rosters", "partner-acme-snapshot.csv"))
	if err != nil {
		t.Fatal(err)
	}
	f.write("acme.csv", string(roster))
	hired, err := os.ReadFile(filepath.Join("..", "..", "testdata", "events", "hired.json"))
	if err != nil {
		t.Fatal(err)
	}
	f.write(filepath.Join("testdata", "events", "hired.json"), string(hired))

	// The streams, as "hrsync run --config hrsync.yaml" makes them, so that the
	// README's publish (shown before run) has somewhere to go.
	fc, err := app.LoadConfigFile(filepath.Join(f.dir, "hrsync.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	feeds, sc, err := app.FeedsAndStream(fc, nil)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := events.EnsureStreams(t.Context(), js, sc, feeds.Names()); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *docFixture) write(name, content string) {
	p := filepath.Join(f.dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// store opens the fixture's store, once it exists (the README's migrate makes it).
func (f *docFixture) store() *store.DB {
	if f.db == nil {
		f.db = openStore(f.t, f.env["DATABASE_URL"])
	}
	return f.db
}

// liveHold makes an open live hold of one held leaver in feed and returns its id.
func (f *docFixture) liveHold(feed string) int64 {
	w := connector.HeldWorker{Worker: connector.WorkerKey{Feed: feed, WorkerID: fmt.Sprintf("held-%d", time.Now().UnixNano())},
		Name: "Held Person", Email: "held@example.com", AccountID: "acct-held", Action: connector.ActionDeactivate, Version: 1}
	id, err := f.store().CreateHold(f.t.Context(), connector.Hold{Feed: feed, Kind: connector.HoldLive, Reason: "1 removal of 2",
		Counts: connector.HoldCounts{Active: 2}, Workers: []connector.HeldWorker{w}})
	if err != nil {
		f.t.Fatal(err)
	}
	return id
}

// daemon runs "hrsync run --config hrsync.yaml" for d, so that what the commands
// published is recorded and converged.
func (f *docFixture) daemon(d time.Duration) {
	ctx, cancel := context.WithTimeout(f.t.Context(), d)
	defer cancel()
	if out, code := runDoc(ctx, f.env, []string{"run", "--config", "hrsync.yaml"}); code != exitOK {
		f.t.Fatalf("the fixture's daemon exited %d:\n%s", code, out)
	}
}

// docStep says how TestDocCommands runs the documented commands of one doc that
// match: the IDs and values the example stands for in the fixture, and what it
// may answer. Every substitution is an example value of the doc standing for the
// fixture's own (a hold ID, a date the fixture's accounts fall under), never a
// change of the command's form.
type docStep struct {
	file, contains string
	why            string
	edit           func(f *docFixture, args []string) []string
	codes          []int                                 // exit codes that pass; default 0 and 3
	say            string                                // what its output must say
	env            func(f *docFixture) map[string]string // the environment, if not the fixture's
	daemon         time.Duration                         // a daemon: run it this long, then stop it as SIGTERM would
	skip           string                                // not run here, with the test that runs it
	after          func(f *docFixture)                   // what the fixture does next (a daemon converging what the command sent)
}

// replaceArg returns args with every old replaced by new.
func replaceArg(args []string, old, new string) []string {
	out := slices.Clone(args)
	for i, a := range out {
		if a == old {
			out[i] = new
		}
	}
	return out
}

var heldAs = regexp.MustCompile(`held as hold (\d+)`)

func docSteps() []docStep {
	hold := func(role string) func(f *docFixture, args []string) []string {
		return func(f *docFixture, args []string) []string {
			id, ok := f.holds[role]
			if !ok {
				f.t.Fatalf("no %s hold in the fixture yet", role)
			}
			for i, a := range args {
				if _, err := fmt.Sscan(a, new(int)); err == nil && i > 0 && !strings.HasPrefix(args[i-1], "--") {
					args = slices.Clone(args)
					args[i] = fmt.Sprint(id)
				}
			}
			return args
		}
	}
	// fresh makes a new open hold for the example; once only if there is none yet.
	fresh := func(role, feed string) func(f *docFixture, args []string) []string {
		return func(f *docFixture, args []string) []string {
			f.holds[role] = f.liveHold(feed)
			return hold(role)(f, args)
		}
	}
	once := func(role, feed string) func(f *docFixture, args []string) []string {
		return func(f *docFixture, args []string) []string {
			if _, ok := f.holds[role]; !ok {
				f.holds[role] = f.liveHold(feed)
			}
			return hold(role)(f, args)
		}
	}
	tomorrow := time.Now().UTC().AddDate(0, 0, 1).Format(time.DateOnly)
	return []docStep{
		{file: "README.md", contains: "go run ./cmd/hrsync demo", skip: "TestDemo runs the demo"},
		{file: "README.md", contains: "hrsync run --config hrsync.yaml", daemon: 4 * time.Second},
		{file: "README.md", contains: "hrsync run --reconcile-every", daemon: 3 * time.Second,
			why: "the report directory is the fixture's",
			edit: func(f *docFixture, args []string) []string {
				return replaceArg(args, "/var/lib/hrsync/reports", filepath.Join(f.dir, "reports"))
			}},
		{file: "README.md", contains: "hrsync roster upload acme.csv --feed partner-acme --mode snapshot",
			after: func(f *docFixture) { f.daemon(5 * time.Second) }},
		{file: "README.md", contains: "hrsync holds show 7", edit: once("upload", "partner-acme")},
		{file: "README.md", contains: "hrsync holds approve 7", edit: hold("upload")},
		{file: "README.md", contains: "hrsync holds reject 7", edit: fresh("reject", "hr")},
		{file: "README.md", contains: "hrsync cleanup dormant", why: "the sandbox's accounts were created today",
			edit: func(f *docFixture, args []string) []string { return replaceArg(args, "2024-01-01", tomorrow) }},
		{file: "README.md", contains: "hrsync holds approve 12", edit: hold("cleanup")},
		{file: "README.md", contains: "hrsync holds run 12", edit: hold("cleanup")},
		// The bench makes its accounts in an LMS of its own: the in-process sandbox,
		// or a second sandbox served for it, never the fixture's.
		{file: "README.md", contains: "go run ./cmd/hrsync bench  ", why: "a few hundred events keep the suite short",
			env: func(f *docFixture) map[string]string {
				return withEnv(f.env, map[string]string{"LMS_URL": "", "LMS_TOKEN": ""})
			},
			edit: func(f *docFixture, args []string) []string {
				return append(slices.Clone(args), "--events", "300", "--db", pgtest.ServerURL())
			}},
		{file: "README.md", contains: "go run ./cmd/hrsync bench --lms-url", why: "a few hundred events keep the suite short",
			env: func(f *docFixture) map[string]string {
				l := startLMS(f.t, nil)
				f.benchLMS = l.url
				return withEnv(f.env, map[string]string{"LMS_TOKEN": l.token})
			},
			edit: func(f *docFixture, args []string) []string {
				args = replaceArg(args, "http://127.0.0.1:8081/scim/v2", f.benchLMS)
				return append(slices.Clone(args), "--events", "300", "--db", pgtest.ServerURL())
			}},
		{file: "README.md", contains: "go run ./cmd/hrsync bench --mix lifecycle", why: "a few hundred events keep the suite short",
			env: func(f *docFixture) map[string]string {
				return withEnv(f.env, map[string]string{"LMS_URL": "", "LMS_TOKEN": ""})
			},
			edit: func(f *docFixture, args []string) []string {
				return append(slices.Clone(args), "--events", "200", "--db", pgtest.ServerURL())
			}},
		{file: "docs/lms-calls.md", contains: "--lms-url http://127.0.0.1:8081/scim/v2", why: "a few hundred events keep the suite short",
			env: func(f *docFixture) map[string]string {
				l := startLMS(f.t, nil)
				f.benchLMS = l.url
				return withEnv(f.env, map[string]string{"LMS_TOKEN": l.token})
			},
			edit: func(f *docFixture, args []string) []string {
				args = replaceArg(replaceArg(args, "http://127.0.0.1:8081/scim/v2", f.benchLMS), "20000", "200")
				return append(args, "--db", pgtest.ServerURL())
			}},
		{file: "docs/lms-calls.md", contains: "go run ./cmd/hrsync bench ", why: "a few hundred events keep the suite short",
			env: func(f *docFixture) map[string]string {
				return withEnv(f.env, map[string]string{"LMS_URL": "", "LMS_TOKEN": ""})
			},
			edit: func(f *docFixture, args []string) []string {
				return append(replaceArg(args, "20000", "200"), "--db", pgtest.ServerURL())
			}},
		{file: "docs/cleanup.md", contains: "hrsync cleanup dormant", why: "the sandbox's accounts were created today",
			edit: func(f *docFixture, args []string) []string { return replaceArg(args, "2024-01-01", tomorrow) }},
		{file: "docs/cleanup.md", contains: "holds approve 13", edit: hold("offboard")},
		{file: "docs/cleanup.md", contains: "holds run 13", edit: hold("offboard")},
		{file: "docs/cli.md", contains: "hrsync holds approve 7 --by", edit: fresh("cli", "hr")},
		{file: "docs/cli.md", contains: "hrsync holds approve --by", edit: fresh("cli", "hr")},
		{file: "docs/cli.md", contains: "hrsync holds show 7", edit: hold("cli")},
		{file: "docs/dead-letters.md", contains: "hrsync dead show 3", edit: deadLetter("show")},
		{file: "docs/dead-letters.md", contains: "hrsync dead replay 3", edit: deadLetter("replay")},
		{file: "docs/dead-letters.md", contains: "hrsync dead discard 4", edit: deadLetter("discard")},
		{file: "docs/erasure.md", contains: "--confirm 228895b4cf7c7353", codes: []int{exitFailed}, say: "228895b4cf7c7353",
			why: "the example fingerprint names no key of the fixture: the refusal must name it"},
		{file: "docs/reviews.md", contains: "hrsync review resolve 4", edit: reviewItem},
		{file: "docs/reviews.md", contains: "hrsync review resolve 12", edit: reviewItem},
	}
}

// deadLetter makes a dead letter for the doc's example ID to stand for. The one
// to replay is a valid hire of feed hr that was refused while hr was not declared
// (so the replay with the configuration records it); the others are junk.
func deadLetter(role string) func(f *docFixture, args []string) []string {
	return func(f *docFixture, args []string) []string {
		key := "dead-" + role
		id, ok := f.holds[key]
		if !ok {
			d := connector.DeadLetter{At: time.Now(), Feed: "hr", Subject: "hrsync.events.hr.hired",
				Data: []byte(`{"not":"an event"}`), Reason: "data: not a CloudEvent (doc test)"}
			if role == "replay" {
				ev, err := os.ReadFile(filepath.Join(f.dir, "testdata", "events", "hired.json"))
				if err != nil {
					f.t.Fatal(err)
				}
				d.Data = []byte(strings.NewReplacer("example-hired-w-1001", "dead-letter-w-3001", `"w-1001"`, `"w-3001"`).Replace(string(ev)))
				d.Headers = []byte(`{"Content-Type":["application/cloudevents+json"]}`)
				d.Reason = `feed "hr" is not declared (doc test)`
			}
			var err error
			if id, err = f.store().DeadLetter(f.t.Context(), d); err != nil {
				f.t.Fatal(err)
			}
			f.holds[key] = id
		}
		return replaceArg(args, args[2], fmt.Sprint(id))
	}
}

// reviewItem gives the doc's example review ID an open review item to stand for:
// a hire of a feed the daemon does not know, which it refuses to guess about.
func reviewItem(f *docFixture, args []string) []string {
	ctx := f.t.Context()
	at := time.Now().UTC()
	w := fmt.Sprintf("g-%d", at.UnixNano())
	if err := f.store().UseErasureKey(ctx, []byte(f.env[erasureKeyEnv])); err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.store().RecordFacts(ctx, []connector.Fact{{Feed: "globex", WorkerID: w, Source: "/feeds/globex", ID: w + "-hired",
		Kind: connector.KindHired, Effective: at, Time: at, Profile: connector.Profile{Email: "g1@globex.example"}}}); err != nil {
		f.t.Fatal(err)
	}
	f.daemon(3 * time.Second)
	items, err := f.store().ListReviews(ctx, store.ReviewFilter{Feed: "globex"})
	if err != nil {
		f.t.Fatal(err)
	}
	for _, it := range items {
		if it.WorkerID == w {
			return replaceArg(args, args[2], fmt.Sprint(it.ID))
		}
	}
	f.t.Fatalf("the daemon raised no review item for %s, a hire of an undeclared feed", w)
	return nil
}

// TestDocCommands runs every command of README.md and docs/*.md, in order,
// against the fixture (docFixture), and the read-only advice each prints; it
// parse-checks the advice that would change something. A command passes when it
// exits 0 or 3 (done, or done but a person must look), unless its docStep says
// otherwise.
func TestDocCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every documented command")
	}
	f := newDocFixture(t)
	var docs [][]docCommand
	for _, file := range docFiles(t) {
		cmds, err := readDocCommands(file)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, cmds)
	}
	t.Chdir(f.dir)
	steps := docSteps()
	used := make([]bool, len(steps))
	names := 0
	for _, cmds := range docs {
		for _, c := range cmds {
			names++
			args, codes := c.args, []int{exitOK, exitAttention}
			var step *docStep
			for i := range steps {
				if steps[i].file == c.file && strings.Contains(c.text, steps[i].contains) {
					step, used[i] = &steps[i], true
					break
				}
			}
			if step != nil {
				if step.skip != "" {
					if err := parseCheck(args); err != nil {
						t.Errorf("%v: %v", c, err)
					}
					continue
				}
				if step.codes != nil {
					codes = step.codes
				}
			}
			env := f.env
			if step != nil && step.env != nil {
				env = step.env(f)
			}
			if step != nil && step.edit != nil {
				args = step.edit(f, c.args)
			}
			if len(c.env) > 0 {
				env = withEnv(env, c.env)
			}
			ctx := t.Context()
			if step != nil && step.daemon > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, step.daemon)
				defer cancel()
			}
			out, code := runDoc(ctx, env, args)
			t.Logf("%s:%d: hrsync %s -> exit %d\n%s", c.file, c.line, strings.Join(args, " "), code, indent(out))
			if !slices.Contains(codes, code) {
				t.Errorf("%v\nran: hrsync %s\nexit %d, want one of %v\n%s", c, strings.Join(args, " "), code, codes, out)
				continue
			}
			if m := heldAs.FindStringSubmatch(out); m != nil {
				role := map[string]string{"cleanup": "cleanup", "feed": "offboard"}[args[0]]
				if role != "" {
					var id int64
					fmt.Sscan(m[1], &id)
					f.holds[role] = id
				}
			}
			if step != nil && step.say != "" && !strings.Contains(out, step.say) {
				t.Errorf("%v: the output does not say %q:\n%s", c, step.say, out)
			}
			if step != nil && step.after != nil {
				step.after(f)
			}
			for _, adv := range adviceIn(out) {
				words, err := shellWords(placeholders.Replace(adv))
				if err == nil {
					err = parseCheck(words)
				}
				if err != nil {
					t.Errorf("%v: its advice %q does not parse: %v", c, adv, err)
					continue
				}
				if readOnly(words) && !strings.Contains(adv, "%") {
					if aout, acode := runDoc(t.Context(), f.env, words); acode != exitOK && acode != exitAttention {
						t.Errorf("%v: its advice %q exits %d:\n%s", c, adv, acode, aout)
					}
				}
			}
		}
	}
	for i, s := range steps {
		if !used[i] {
			t.Errorf("docStep %s %q matches no documented command: update the test with the doc", s.file, s.contains)
		}
	}
	t.Logf("ran %d documented commands", names)
}

// withEnv returns a copy of base with over laid on it; an over value of "..." (a
// secret the doc leaves to the reader) keeps base's, and "" unsets it.
func withEnv(base, over map[string]string) map[string]string {
	out := make(map[string]string, len(base)+len(over))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		switch v {
		case "...":
		case "":
			delete(out, k)
		default:
			out[k] = v
		}
	}
	return out
}

// indent indents text for the test log, at most 12 lines of it.
func indent(text string) string {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(lines) > 12 {
		lines = append(lines[:12], fmt.Sprintf("... (%d more lines)", len(lines)-12))
	}
	return "    " + strings.Join(lines, "\n    ")
}
