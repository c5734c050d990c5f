package main

// The harness of the end-to-end tests: the real parts (in-process NATS with
// JetStream, a fresh PostgreSQL schema, the sandbox LMS over httptest), the daemon
// as a child process, a seeded hire/leave/rehire scenario, and the checks of the
// final state that every end-to-end test shares.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/app"
	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/events"
	"github.com/hrsync/hrsync/store"
)

// The environment variables that turn the test binary into the daemon (see TestMain).
const (
	envDaemon     = "HRSYNC_E2E_DAEMON"
	envDaemonArgs = "HRSYNC_E2E_ARGS" // JSON array: the args of run, "hrsync" first
)

// pollEvery is the pause between two checks of a bounded poll.
const pollEvery = 20 * time.Millisecond

// waitFor polls cond until it holds, and fails t with cond's last explanation
// when timeout passes first. It fails early if one of the daemons exits.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string), daemons ...*daemon) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		for _, d := range daemons {
			if d.exited() {
				t.Fatalf("%s: daemon %s exited (%v) before it was reached; last state: %s", what, d.name, d.err, why)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %v: %s", what, timeout, why)
		}
		<-time.After(pollEvery)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startNATS runs an in-process NATS server with JetStream storing under a
// temporary directory, and returns its client URL.
func startNATS(t *testing.T) string {
	t.Helper()
	opts := natsserver.DefaultTestOptions
	opts.Port = -1
	opts.JetStream = true
	opts.StoreDir = t.TempDir()
	ns := natsserver.RunServer(&opts)
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns.ClientURL()
}

// connectJS connects the test to NATS and makes sure the stream of feed hr exists,
// with the configuration the daemon gives it, so events can be published before
// any daemon runs.
func connectJS(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url, nats.Name("hrsync-e2e-test"))
	if err != nil {
		t.Fatalf("connect to NATS: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := events.EnsureStreams(ctx, js, events.StreamConfig{}, []string{"hr"}); err != nil {
		t.Fatal(err)
	}
	return js
}

// consumerDrained reports whether the daemon's durable consumer has nothing left
// to deliver and nothing delivered that is not yet acked or terminated (the
// scenarios use the one feed hr).
func consumerDrained(ctx context.Context, js jetstream.JetStream) (bool, string) {
	cons, err := js.Consumer(ctx, events.StreamConfig{}.Name("hr"), "hrsync")
	if err != nil {
		return false, "consumer: " + err.Error()
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return false, "consumer info: " + err.Error()
	}
	return info.NumPending == 0 && info.NumAckPending == 0,
		fmt.Sprintf("consumer: %d pending, %d ack pending, %d redelivered", info.NumPending, info.NumAckPending, info.NumRedelivered)
}

// testLMS is the sandbox LMS served over SCIM by the test process, so that it
// outlives every daemon process the test kills.
type testLMS struct {
	sb    *sandbox.LMS
	url   string // SCIM base URL
	token string
}

// startLMS serves a new sandbox over httptest; wrap, if not nil, wraps its handler.
func startLMS(t *testing.T, wrap func(http.Handler) http.Handler) *testLMS {
	t.Helper()
	l := &testLMS{sb: sandbox.New(), token: fmt.Sprintf("e2e-%016x", rand.Uint64())}
	h := l.sb.Handler(l.token)
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	l.url = srv.URL + sandbox.BasePath
	return l
}

// migrateDB creates and migrates the database at url with "hrsync migrate", as
// an operator does first: the other commands refuse a missing database.
func migrateDB(t *testing.T, url string) {
	t.Helper()
	if out, stderr, err := runCLI(t, nil, "migrate", "--db", url); err != nil {
		t.Fatalf("hrsync migrate: %v\n%s\n%s", err, out, stderr)
	}
}

// openStore opens the store at url for the test's checks (it migrates, which is
// safe next to running daemons: migrations take an advisory lock).
func openStore(t *testing.T, url string) *store.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	db, err := store.Open(ctx, url, nil, store.Migrate(true))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// daemonArgs are the args of "hrsync run" for a child daemon. The lease is short
// so that the workers a killed daemon had claimed are taken up again quickly.
func daemonArgs(t *testing.T, l *testLMS, natsURL, dbURL string, lease time.Duration) []string {
	return []string{"hrsync", "run", "--config", neverHoldConfig(t),
		"--lms-url", l.url, "--lms-token", l.token, "--nats-url", natsURL, "--db", dbURL,
		"--admin-addr=", "--lease", lease.String(), "--poll-interval", "250ms",
		"--log-format", "json", "--log-level", "info"}
}

// daemon is one "hrsync run" child process: the test binary re-executed, which
// TestMain turns into the daemon.
type daemon struct {
	name string
	cmd  *exec.Cmd
	log  string        // its stdout and stderr
	done chan struct{} // closed once it exited and was waited for
	err  error         // the result of Wait, set before done is closed

	termAt time.Time // when sigterm sent SIGTERM
}

// startDaemon starts a daemon with args. A cleanup kills it if it still runs, and
// prints the tail of its log if the test failed; with HRSYNC_E2E_KEEP_LOGS=DIR it
// also copies the whole log to DIR.
func startDaemon(t *testing.T, name string, args []string) *daemon {
	t.Helper()
	enc, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{name: name, log: filepath.Join(t.TempDir(), name+".log"), done: make(chan struct{})}
	f, err := os.Create(d.log)
	if err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command(os.Args[0], "-test.run=^$")
	d.cmd.Env = append(daemonEnviron(), envDaemon+"=1", envDaemonArgs+"="+string(enc))
	d.cmd.Stdout, d.cmd.Stderr = f, f
	if err := d.cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start daemon %s: %v", name, err)
	}
	go func() {
		d.err = d.cmd.Wait()
		f.Close()
		close(d.done)
	}()
	t.Cleanup(func() {
		d.kill()
		select {
		case <-d.done:
		case <-time.After(10 * time.Second):
			t.Errorf("daemon %s (pid %d) did not exit 10s after SIGKILL", name, d.cmd.Process.Pid)
		}
		if dir := os.Getenv("HRSYNC_E2E_KEEP_LOGS"); dir != "" {
			if b, err := os.ReadFile(d.log); err == nil {
				_ = os.WriteFile(filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+"-"+name+".log"), b, 0o644)
			}
		}
		if t.Failed() {
			t.Logf("daemon %s (pid %d, %v): last lines of %s:\n%s", name, d.cmd.Process.Pid, d.err, d.log, tail(d.log, 25))
		}
	})
	return d
}

// daemonEnviron is the test's environment without the variables the daemon reads
// as configuration, so that only the args configure it.
func daemonEnviron() []string {
	var out []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "HRSYNC_") && name != "HRSYNC_REQUIRE_POSTGRES",
			strings.HasPrefix(name, "LMS_"),
			name == "DATABASE_URL", name == "NATS_URL", name == "NATS_CREDS":
			continue
		}
		out = append(out, kv)
	}
	return out
}

func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL, if the daemon still runs.
func (d *daemon) kill() {
	if !d.exited() {
		_ = d.cmd.Process.Kill()
	}
}

// terminate sends SIGTERM and waits up to timeout for the exit; it fails t
// unless the daemon exits with code 0.
func (d *daemon) terminate(t *testing.T, timeout time.Duration) {
	t.Helper()
	d.sigterm(t)
	d.awaitCleanExit(t, timeout)
}

func (d *daemon) sigterm(t *testing.T) {
	t.Helper()
	d.termAt = time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM to daemon %s: %v", d.name, err)
	}
}

// awaitCleanExit waits up to timeout for the exit after sigterm, and fails t
// unless the daemon exits with code 0.
func (d *daemon) awaitCleanExit(t *testing.T, timeout time.Duration) {
	t.Helper()
	if !d.waitExit(timeout) {
		t.Fatalf("daemon %s did not exit within %v of SIGTERM", d.name, timeout)
	}
	if d.err != nil {
		t.Fatalf("daemon %s after SIGTERM: %v, want a clean exit (code 0)", d.name, d.err)
	}
	t.Logf("daemon %s exited cleanly %v after SIGTERM", d.name, time.Since(d.termAt).Round(time.Millisecond))
}

// waitExit waits up to timeout for the daemon to exit.
func (d *daemon) waitExit(timeout time.Duration) bool {
	select {
	case <-d.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// logCount counts the lines of the daemon's log that contain s.
func (d *daemon) logCount(s string) int {
	b, err := os.ReadFile(d.log)
	if err != nil {
		return 0
	}
	return bytes.Count(b, []byte(s))
}

// tail returns the last n lines of the file at path, each clipped.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		if len(line) > 400 {
			line = line[:400] + "…"
		}
		lines = append(lines, line)
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// sizes says how big a scenario is.
type sizes struct {
	persons   int // hired
	leavers   int // of them, leave
	rehires   int // of the leavers, come back
	newIDs    int // of the rehires, under a new worker id with a new email
	newEmails int // of the rehires, under the same id with a new email
	dups      int // duplicate redeliveries, without Nats-Msg-Id
	malformed int // messages that break the contract
	seeds     int // people who are not rehired but get a completion too
}

// e2ePerson is one person of a scenario and what happens to them.
type e2ePerson struct {
	id, email, number, given, family string
	leaves                           bool
	rehire                           string // "", "same", "email" or "newid"
	rehireID, rehireEmail            string
	seed                             bool // gets a completion once their account exists
}

func (p *e2ePerson) finalID() string {
	if p.rehire != "" {
		return p.rehireID
	}
	return p.id
}

func (p *e2ePerson) wantActive() bool { return !p.leaves || p.rehire != "" }

func (p *e2ePerson) wantEmail() string {
	if p.rehire != "" {
		return p.rehireEmail
	}
	return p.email
}

// scenario is a seeded population and its events in three waves: the hires, the
// leaves, the rehires. Each wave has duplicate redeliveries (of events of this or
// an earlier wave) and malformed messages mixed in. Every effective date is in
// the past.
type scenario struct {
	seed      uint64
	rng       *rand.Rand
	people    []*e2ePerson
	waves     [3][]*nats.Msg
	valid     int // distinct valid events
	dups      int
	malformed int
	seq       int
	sent      []events.Event
}

var (
	e2eGiven  = []string{"Anna", "Ben", "Clara", "David", "Elif", "Felix", "Greta", "Hamid", "Ines", "Jonas"}
	e2eFamily = []string{"Berger", "Hofer", "Huber", "Kaiser", "Lang", "Maier", "Novak", "Ortner"}
)

// The course seeded people complete.
const seededCourse = "safety-101"

var (
	hireTime    = time.Date(2025, 1, 2, 9, 0, 0, 0, time.UTC)
	leaveTime   = time.Date(2025, 6, 2, 9, 0, 0, 0, time.UTC)
	rehireTime  = time.Date(2025, 9, 2, 9, 0, 0, 0, time.UTC)
	completedAt = time.Date(2025, 3, 14, 15, 0, 0, 0, time.UTC)
)

func newScenario(seed uint64, z sizes) *scenario {
	s := &scenario{seed: seed, rng: rand.New(rand.NewPCG(seed, 0xe2e))}
	for i := range z.persons {
		g, f := e2eGiven[s.rng.IntN(len(e2eGiven))], e2eFamily[s.rng.IntN(len(e2eFamily))]
		s.people = append(s.people, &e2ePerson{
			id: fmt.Sprintf("w-%05d", i+1), given: g, family: f, number: fmt.Sprintf("E%06d", 100000+i),
			email: strings.ToLower(fmt.Sprintf("%s.%s.%d@corp.example", g, f, i+1)),
		})
	}
	order := s.rng.Perm(len(s.people))
	for k, i := range order {
		p := s.people[i]
		switch {
		case k < z.newIDs:
			p.rehire, p.rehireID, p.rehireEmail = "newid", p.id+"-r", strings.Replace(p.email, "@", ".back@", 1)
		case k < z.newIDs+z.newEmails:
			p.rehire, p.rehireID, p.rehireEmail = "email", p.id, strings.Replace(p.email, "@", ".new@", 1)
		case k < z.rehires:
			p.rehire, p.rehireID, p.rehireEmail = "same", p.id, p.email
		}
		p.leaves = k < z.leavers
		p.seed = p.rehire != "" || (k >= z.rehires && k < z.rehires+z.seeds)
	}

	// Hires, leaves and rehires, each wave in a random order.
	var hires, leaves, rehires []events.Event
	for _, i := range s.rng.Perm(len(s.people)) {
		p := s.people[i]
		hires = append(hires, s.event(connector.KindHired, p.id, hireTime, "2025-01-06", p, p.email))
	}
	for _, i := range s.rng.Perm(len(s.people)) {
		if p := s.people[i]; p.leaves {
			e := s.event(connector.KindLeft, p.id, leaveTime, "2025-06-30", nil, "")
			e.Data.Reason = "end of contract"
			leaves = append(leaves, e)
		}
	}
	for _, i := range s.rng.Perm(len(s.people)) {
		p := s.people[i]
		if p.rehire == "" {
			continue
		}
		e := s.event(connector.KindRehired, p.rehireID, rehireTime, "2025-10-01", p, p.rehireEmail)
		if p.rehire == "newid" {
			e.Data.PreviousWorkerID = p.id
			e.Data.EmployeeNumber = ""
		}
		rehires = append(rehires, e)
	}
	for w, evs := range [][]events.Event{hires, leaves, rehires} {
		s.waves[w] = s.build(evs, share(z.dups, w), share(z.malformed, w))
	}
	return s
}

// share splits n into three parts and returns part w.
func share(n, w int) int { return n/3 + btoi(w < n%3) }

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (s *scenario) event(k connector.Kind, worker string, at time.Time, effective string, p *e2ePerson, email string) events.Event {
	s.seq++
	e := events.Event{Feed: "hr", Kind: k, ID: fmt.Sprintf("e2e-%06d", s.seq), Source: "/feeds/hr",
		Time: at.Add(time.Duration(s.seq) * time.Second), Data: events.Data{WorkerID: worker, Effective: effective}}
	if p != nil {
		e.Data.Email, e.Data.GivenName, e.Data.FamilyName = email, p.given, p.family
		e.Data.EmployeeNumber, e.Data.OrgUnit, e.Data.JobTitle = p.number, "Operations", "Associate"
	}
	return e
}

// build encodes one wave: its events (binary and structured by turns), then
// duplicates of events sent so far and malformed messages at random places.
func (s *scenario) build(evs []events.Event, dups, bad int) []*nats.Msg {
	var msgs []*nats.Msg
	for i, e := range evs {
		msgs = append(msgs, mustEncode(e, events.Mode(i%2)))
		s.valid++
	}
	s.sent = append(s.sent, evs...)
	insert := func(m *nats.Msg) {
		i := s.rng.IntN(len(msgs) + 1)
		msgs = slices.Insert(msgs, i, m)
	}
	for range dups {
		m := mustEncode(s.sent[s.rng.IntN(len(s.sent))], events.Mode(s.rng.IntN(2)))
		m.Header.Del(jetstream.MsgIDHeader) // a redelivery by the source: only the store can tell
		insert(m)
		s.dups++
	}
	for range bad {
		insert(s.malformedMsg(s.malformed))
		s.malformed++
	}
	return msgs
}

func mustEncode(e events.Event, m events.Mode) *nats.Msg {
	if m != events.Binary && m != events.Structured {
		m = events.Binary
	}
	msg, err := events.Encode(e, m)
	if err != nil {
		panic(err)
	}
	return msg
}

// malformedMsg returns the k-th malformed message: each breaks the contract in
// one of several ways, and none carries a Nats-Msg-Id.
func (s *scenario) malformedMsg(k int) *nats.Msg {
	w := fmt.Sprintf("bad-%03d", k)
	valid := mustEncode(events.Event{Feed: "hr", Kind: connector.KindHired, ID: fmt.Sprintf("bad-ev-%03d", k), Source: "/feeds/hr",
		Time: hireTime, Data: events.Data{WorkerID: w, Email: w + "@corp.example", Effective: "2025-01-06"}}, events.Structured).Data
	edit := func(f func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(valid, &m); err != nil {
			panic(err)
		}
		f(m)
		b, err := json.Marshal(m)
		if err != nil {
			panic(err)
		}
		return b
	}
	subject, data := "hrsync.events.hr.hired", valid
	switch k % 7 {
	case 0:
		data = []byte(fmt.Sprintf("not json %d", k))
	case 1:
		data = edit(func(m map[string]any) { delete(m["data"].(map[string]any), "email") })
	case 2:
		data = edit(func(m map[string]any) { m["subject"] = "someone-else" })
	case 3:
		data = edit(func(m map[string]any) { m["type"] = "hrsync.worker.hired.v2" })
	case 4:
		// A feed nobody declared has no stream, so its events are refused at the
		// door; a subject that contradicts the type is the closest bad input.
		subject = "hrsync.events.hr.left"
	case 5:
		data = edit(func(m map[string]any) { m["data"].(map[string]any)["effective"] = "2025-02-30" })
	case 6:
		data = edit(func(m map[string]any) { m["source"] = "/feeds/somewhere-else" })
	}
	msg := nats.NewMsg(subject)
	msg.Header.Set("Content-Type", "application/cloudevents+json")
	msg.Data = data
	return msg
}

// publish sends msgs one by one, each acknowledged by JetStream.
func publish(t *testing.T, js jetstream.JetStream, msgs []*nats.Msg) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	for _, m := range msgs {
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatalf("publish to %s: %v", m.Subject, err)
		}
	}
}

// seedCompletions records a completion for every seeded person whose account
// exists and who has none yet; seeded maps the person's index to the account.
func (s *scenario) seedCompletions(t *testing.T, sb *sandbox.LMS, seeded map[int]string) {
	t.Helper()
	byExt := map[string]string{}
	for _, r := range sb.Snapshot() {
		byExt[r.Account.ExternalID] = r.Account.ID
	}
	for i, p := range s.people {
		if !p.seed || seeded[i] != "" {
			continue
		}
		id := byExt["hr:"+p.id]
		if id == "" {
			id = byExt["hr:"+p.finalID()]
		}
		if id == "" {
			continue
		}
		if err := sb.CompleteCourse(id, seededCourse, completedAt); err != nil {
			t.Fatalf("seed completion on %s: %v", id, err)
		}
		seeded[i] = id
	}
}

// lmsMismatch compares the LMS with the scenario's final state: one account per
// person, found by externalId hr:<final worker id>, active unless the person left
// for good, with the latest email, and the seeded completion on the very account
// it was recorded on. It returns what differs (at most a few lines).
func (s *scenario) lmsMismatch(sb *sandbox.LMS, seeded map[int]string) []string {
	snap := sb.Snapshot()
	byExt := map[string][]sandbox.AccountRecord{}
	for _, r := range snap {
		byExt[r.Account.ExternalID] = append(byExt[r.Account.ExternalID], r)
	}
	var bad []string
	n := 0
	add := func(f string, args ...any) {
		n++
		if len(bad) < 6 {
			bad = append(bad, fmt.Sprintf(f, args...))
		}
	}
	if len(snap) != len(s.people) {
		add("the LMS has %d accounts, want %d (one per person)", len(snap), len(s.people))
	}
	for ext, rs := range byExt {
		if len(rs) > 1 {
			add("externalId %q is on %d accounts", ext, len(rs))
		}
	}
	for i, p := range s.people {
		rs := byExt["hr:"+p.finalID()]
		if len(rs) != 1 {
			add("%s: %d accounts with externalId hr:%s, want 1", p.id, len(rs), p.finalID())
			continue
		}
		a := rs[0]
		if a.Account.Active != p.wantActive() {
			add("%s (%s): account %s active=%v, want %v", p.id, lifecycle(p), a.Account.ID, a.Account.Active, p.wantActive())
		}
		if !strings.EqualFold(a.Account.Profile.Email, p.wantEmail()) {
			add("%s (%s): account %s email %q, want %q", p.id, lifecycle(p), a.Account.ID, a.Account.Profile.Email, p.wantEmail())
		}
		if id := seeded[i]; id != "" {
			if a.Account.ID != id {
				add("%s (%s): account %s, want %s, the account the completion was recorded on", p.id, lifecycle(p), a.Account.ID, id)
			} else if !slices.ContainsFunc(a.Training.Completions, func(c sandbox.Completion) bool { return c.Course == seededCourse }) {
				add("%s (%s): the completion of %s on account %s is gone", p.id, lifecycle(p), seededCourse, id)
			}
		}
	}
	if n > len(bad) {
		bad = append(bad, fmt.Sprintf("... %d differences in all", n))
	}
	return bad
}

func lifecycle(p *e2ePerson) string {
	switch {
	case p.rehire != "":
		return "left, rehired " + p.rehire
	case p.leaves:
		return "left"
	}
	return "stays"
}

// opsMismatch checks that every LMS action happened exactly once: each account
// was created once and never deleted, and no activate or deactivate was redundant
// (the state changes of one account alternate, there is at most one of each, as
// hire → leave → rehire allows, and the last one agrees with the final state).
func opsMismatch(sb *sandbox.LMS) []string {
	final := map[string]bool{}
	for _, r := range sb.Snapshot() {
		final[r.Account.ID] = r.Account.Active
	}
	creates := map[string]int{}
	states := map[string][]sandbox.OpKind{}
	var bad []string
	add := func(f string, args ...any) {
		if len(bad) < 8 {
			bad = append(bad, fmt.Sprintf(f, args...))
		}
	}
	for _, op := range sb.Ops() {
		switch op.Kind {
		case sandbox.OpCreate:
			creates[op.AccountID]++
		case sandbox.OpDelete:
			add("account %s was deleted", op.AccountID)
		case sandbox.OpActivate, sandbox.OpDeactivate:
			states[op.AccountID] = append(states[op.AccountID], op.Kind)
		}
	}
	for id, n := range creates {
		if _, ok := final[id]; !ok {
			add("account %s was created but is gone", id)
		}
		if n != 1 {
			add("account %s was created %d times", id, n)
		}
	}
	for id := range final {
		if creates[id] != 1 {
			add("account %s: %d creates, want 1", id, creates[id])
		}
	}
	for id, seq := range states {
		for i := 1; i < len(seq); i++ {
			if seq[i] == seq[i-1] {
				add("account %s: redundant %s (state ops %v)", id, seq[i], seq)
			}
		}
		if len(seq) > 2 || (len(seq) == 2 && seq[0] != sandbox.OpDeactivate) {
			add("account %s: state ops %v, want at most deactivate then activate", id, seq)
		}
		if last := seq[len(seq)-1]; (last == sandbox.OpActivate) != final[id] {
			add("account %s: last state op %s but the account is active=%v", id, last, final[id])
		}
	}
	return bad
}

// storeMismatch compares the store's counts with the scenario: every distinct
// valid event is a fact (none lost), every malformed message is a dead letter
// (once), no review items, and one link per person.
func (s *scenario) storeMismatch(ctx context.Context, db *store.DB) []string {
	c, err := db.Counts(ctx)
	if err != nil {
		return []string{err.Error()}
	}
	var bad []string
	if c.Facts != s.valid {
		bad = append(bad, fmt.Sprintf("store has %d facts, want %d (the distinct valid events)", c.Facts, s.valid))
	}
	if c.DeadLetters != s.malformed {
		bad = append(bad, fmt.Sprintf("store has %d dead letters, want %d (the malformed messages, once each)", c.DeadLetters, s.malformed))
	}
	if c.OpenReviews != 0 {
		bad = append(bad, fmt.Sprintf("store has %d open review items, want 0", c.OpenReviews))
	}
	if c.Links != len(s.people) {
		bad = append(bad, fmt.Sprintf("store has %d links, want %d (one per person)", c.Links, len(s.people)))
	}
	return bad
}

// settled reports whether everything published was consumed and the LMS is in the
// final state. It is what the tests poll for; the exact checks come after.
func (s *scenario) settled(ctx context.Context, js jetstream.JetStream, sb *sandbox.LMS, db *store.DB, seeded map[int]string) (bool, string) {
	if ok, why := consumerDrained(ctx, js); !ok {
		return false, why
	}
	c, err := db.Counts(ctx)
	if err != nil {
		return false, err.Error()
	}
	if c.Facts < s.valid || c.DeadLetters < s.malformed {
		return false, fmt.Sprintf("store: %d of %d facts, %d of %d dead letters", c.Facts, s.valid, c.DeadLetters, s.malformed)
	}
	if bad := s.lmsMismatch(sb, seeded); len(bad) > 0 {
		return false, "LMS: " + strings.Join(bad, "; ")
	}
	return true, ""
}

// checkFinal asserts the exact final state: LMS, ops and store.
func (s *scenario) checkFinal(t *testing.T, sb *sandbox.LMS, db *store.DB, seeded map[int]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for _, b := range s.lmsMismatch(sb, seeded) {
		t.Errorf("LMS (seed %d): %s", s.seed, b)
	}
	for _, b := range opsMismatch(sb) {
		t.Errorf("LMS ops (seed %d): %s", s.seed, b)
	}
	for _, b := range s.storeMismatch(ctx, db) {
		t.Errorf("store (seed %d): %s", s.seed, b)
	}
	dls, err := db.ListDeadLetters(ctx, store.DeadLetterFilter{})
	if err != nil {
		t.Fatal(err)
	}
	same := map[string][]int64{} // every malformed message of a scenario is unique
	for _, d := range dls {
		if !strings.Contains(d.Reason, "field") {
			t.Errorf("dead letter %d (%s): reason %q names no field", d.ID, d.Subject, d.Reason)
		}
		key := d.Subject + "\x00" + string(d.Data)
		same[key] = append(same[key], d.ID)
	}
	for key, ids := range same {
		if len(ids) > 1 {
			subject, data, _ := strings.Cut(key, "\x00")
			t.Errorf("one message is dead-lettered %d times (ids %v): %s %.120q", len(ids), ids, subject, data)
		}
	}
}

// summary describes the scenario for the test log.
func (s *scenario) summary() string {
	var left, re, newid, email, seeds int
	for _, p := range s.people {
		left += btoi(p.leaves)
		re += btoi(p.rehire != "")
		newid += btoi(p.rehire == "newid")
		email += btoi(p.rehire == "email")
		seeds += btoi(p.seed)
	}
	return fmt.Sprintf("seed %d: %d hired, %d left, %d rehired (%d under a new id, %d with a new email), %d seeded with a completion; "+
		"%d valid events, %d duplicates, %d malformed", s.seed, len(s.people), left, re, newid, email, seeds, s.valid, s.dups, s.malformed)
}

// testSettings returns the settings of an empty configuration file on db, with
// feeds (nil: the default feed hr).
func testSettings(t testing.TB, db string, feeds connector.Feeds) app.Settings {
	t.Helper()
	set, err := app.SettingsFor(db, feeds, app.FileConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// neverHoldConfig writes a configuration file whose safeguard never holds, and
// returns its path. Tests about crashes, not thresholds, use it: the safeguard is
// on (every removal is reserved through it) with limits that never hold. The
// percentage alone is not enough: the scenarios' leave waves are more than any
// percentage of the people hired so far; min_removals keeps the percentage from
// applying. Removals are judged at once (settle 0), so that nothing waits.
func neverHoldConfig(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hrsync.yaml")
	const cfg = "safeguard: {percent: 100, count: 0, min_removals: 1000000, settle: 0s}\n"
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// settleAtOnceConfig writes a configuration file with the default thresholds whose
// removals are judged at once (settle 0), so that a test does not wait out the
// settle period, and returns its path.
func settleAtOnceConfig(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hrsync.yaml")
	if err := os.WriteFile(path, []byte("safeguard: {settle: 0s}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// freeLoopbackPort is a loopback TCP port that was free when asked.
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// freeLoopbackAddr is host:port of a loopback TCP port that was free when asked.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(freeLoopbackPort(t))
}

// runTestDaemon runs "hrsync run" with args in the test's process (no
// environment) until t ends, and returns its log; a failed test prints the
// log's last lines.
func runTestDaemon(t *testing.T, args ...string) *syncBuffer {
	t.Helper()
	return runTestDaemonEnv(t, nil, args...)
}

// runTestDaemonEnv is runTestDaemon with env as the daemon's whole environment,
// for what a configuration file names by variable (secrets: the LMS token, a
// webhook's signing key).
func runTestDaemonEnv(t *testing.T, env map[string]string, args ...string) *syncBuffer {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"hrsync", "run"}, args...), func(k string) string { return env[k] }, logs, logs)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("run did not stop")
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", lastLines(logs.String(), 60))
		}
	})
	return logs
}
