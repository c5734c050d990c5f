package main

// The log test of issue #9: "hrsync run" against an LMS on a bad day (5xx, 429,
// timeouts, refused connections) at the default log level must not write a
// person's email, name or leave reason, nor any secret, to its logs or to the
// unauthenticated /readyz.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/faulty"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/events"
	"github.com/hrsync/hrsync/store/pgtest"
)

// piiPerson is one person of the log test, with the personal data that must not
// show at the default log level.
type piiPerson struct {
	id, given, family, email, number, reason string
}

// secret returns a random value with a recognisable prefix.
func secret(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// daemonInProcess is one "hrsync run" in this process, its log and its admin address.
type daemonInProcess struct {
	name     string
	log      syncBuffer
	admin    string
	finished chan struct{}
	err      error
	cancel   context.CancelFunc
}

// startInProcess starts "hrsync run" with args and env (and nothing else from the
// environment), waits until its admin endpoints listen, and stops it when t ends.
func startInProcess(t *testing.T, name string, env map[string]string, args ...string) *daemonInProcess {
	t.Helper()
	p := &daemonInProcess{name: name, finished: make(chan struct{})}
	ctx, cancel := context.WithCancel(t.Context())
	p.cancel = cancel
	go func() {
		defer close(p.finished)
		p.err = run(ctx, append([]string{"hrsync", "run"}, args...), func(k string) string { return env[k] }, &p.log, &p.log)
	}()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("daemon %s log (last lines):\n%s", name, lastLines(p.log.String(), 30))
		}
	})
	waitFor(t, 20*time.Second, name+": admin endpoints listening", func() (bool, string) {
		select {
		case <-p.finished:
			t.Fatalf("%s: run returned early: %v", name, p.err)
		default:
		}
		for line := range strings.Lines(p.log.String()) {
			var l struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "admin endpoints listening" {
				p.admin = "http://" + l.Addr
				return true, ""
			}
		}
		return false, "no \"admin endpoints listening\" in the log yet"
	})
	return p
}

// stop cancels the run and waits for it to return.
func (p *daemonInProcess) stop(t *testing.T) {
	t.Helper()
	p.cancel()
	select {
	case <-p.finished:
	case <-time.After(30 * time.Second):
		t.Errorf("%s: run did not return within 30s of the cancel", p.name)
	}
}

// TestLogsKeepPersonalDataAndSecretsOut runs two daemons at the default log level
// (JSON) on the same events: one against the sandbox LMS behind a fault injector
// (5xx, 429, timeouts, and then an LMS that answers nothing until it is
// quarantined), one against a closed port (refused connections). The LMS URL
// carries a password, the database and NATS URLs too. Neither the logs nor any
// /readyz body may contain an email, a given or family name, a leave reason, or
// one of those secrets; /readyz must still say what is wrong.
func TestLogsKeepPersonalDataAndSecretsOut(t *testing.T) {
	t.Parallel()
	dbPass, lmsPass, natsToken := secret("dbpw-"), secret("lmspw-"), secret("natstok-")

	// NATS with a token, given in the daemons' URL.
	opts := natsserver.DefaultTestOptions
	opts.Port, opts.JetStream, opts.StoreDir, opts.Authorization = -1, true, t.TempDir(), natsToken
	ns := natsserver.RunServer(&opts)
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	natsURL := fmt.Sprintf("nats://%s@%s", natsToken, ns.Addr().String())
	nc, err := nats.Connect(ns.ClientURL(), nats.Token(natsToken))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := events.EnsureStreams(t.Context(), js, events.StreamConfig{}, []string{"hr"}); err != nil {
		t.Fatal(err)
	}

	// PostgreSQL trusts local connections, so a password in the URL is accepted
	// and ignored: enough to see whether hrsync shows it.
	dbu, err := url.Parse(pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	dbu.User = url.UserPassword(dbu.User.Username(), dbPass)

	// The sandbox LMS behind the fault injector, behind a switch that can make it
	// answer nothing at all (every call times out).
	sb, token := sandbox.New(), secret("lmstok-")
	inj, err := faulty.New(sb.Handler(token), faulty.Config{ServerErrors: 0.15, Timeouts: 0.1, RateLimited: 0.1,
		After: 0.3, Hold: 5 * time.Second, RetryAfter: time.Second, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	const (
		hangNone = iota
		hangEmailLookups
		hangAll
	)
	var hang atomic.Int32
	released := make(chan struct{})
	var hungEmail atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch hang.Load() {
		case hangEmailLookups:
			// A lookup's filter is in the URL (GET) or in a POST /Users/.search body.
			filter := r.URL.Query().Get("filter")
			if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/.search") {
				b, _ := io.ReadAll(r.Body)
				r.Body = io.NopCloser(bytes.NewReader(b))
				filter = string(b)
			}
			if !strings.Contains(filter, "emails") {
				break
			}
			hungEmail.Add(1)
			fallthrough
		case hangAll:
			// Read the body first: only then does the server notice a client that
			// gave up (its --lms-timeout) and end r's context. released ends the
			// wait in any case once the test is over, before srv.Close waits for it.
			_, _ = io.Copy(io.Discard, r.Body)
			select {
			case <-r.Context().Done():
			case <-released:
			}
			return
		}
		inj.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(released) }) // runs before srv.Close
	lmsURL, _ := url.Parse(srv.URL + sandbox.BasePath)
	lmsURL.User = url.UserPassword("hrsync", lmsPass)

	// A port nobody listens on: every call is refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()

	common := []string{"--admin-addr", "127.0.0.1:0", "--poll-interval", "100ms", "--lms-timeout", "400ms",
		"--config", neverHoldConfig(t)}
	faultyRun := startInProcess(t, "faulty", map[string]string{
		"DATABASE_URL": dbu.String(), "NATS_URL": natsURL, "LMS_URL": lmsURL.String(), "LMS_TOKEN": token,
	}, common...)
	refusedURL := "http://hrsync:" + lmsPass + "@" + closed + sandbox.BasePath
	refusedRun := startInProcess(t, "refused", map[string]string{
		"DATABASE_URL": "sqlite://" + filepath.Join(t.TempDir(), "refused.db"), "NATS_URL": natsURL,
		"LMS_URL": refusedURL, "LMS_TOKEN": token,
	}, append(common, "--durable", "hrsync-refused")...)

	people := []piiPerson{
		{"p1", "Quirinus", "Vandersloot", "quirinus.vandersloot@private.example", "N-1001", "moved abroad to care for his mother"},
		{"p2", "Ottoline", "Grimshawe", "ottoline.grimshawe@private.example", "N-1002", "burnout after a conflict with her manager"},
		{"p3", "Eustachy", "Wojciechowicz", "eustachy.w@private.example", "N-1003", "dismissed for repeated absence"},
		{"p4", "Philippa", "Abernethy", "philippa.abernethy@private.example", "N-1004", ""},
		{"p5", "Thaddeus", "Oyelaran", "thaddeus.oyelaran@private.example", "N-1005", ""},
		{"p6", "Berenike", "Castellanos", "berenike.castellanos@private.example", "N-1006", ""},
		// Hired while the LMS answers nothing.
		{"p7", "Isidora", "Kowalczykowa", "isidora.kowalczykowa@private.example", "N-1007", ""},
	}
	const badEmail = "Cordelia Hartsfield-Nyambura at home"
	seq := 0
	send := func(k connector.Kind, p piiPerson, at time.Time, effective string) {
		t.Helper()
		seq++
		d := events.Data{WorkerID: p.id, Effective: effective}
		if k == connector.KindLeft {
			d.Reason = p.reason
		} else {
			d.Email, d.GivenName, d.FamilyName, d.EmployeeNumber = p.email, p.given, p.family, p.number
		}
		e := events.Event{Feed: "hr", Kind: k, ID: fmt.Sprintf("pii-%d", seq), Source: "/feeds/hr", Time: at, Data: d}
		if _, err := events.Publish(t.Context(), js, e, events.Structured); err != nil {
			t.Fatal(err)
		}
	}
	var readyz []string // every distinct /readyz body seen
	var mu sync.Mutex
	ready := func(p *daemonInProcess) (int, string) {
		code, body := get(t, p.admin+"/readyz")
		mu.Lock()
		if !slices.Contains(readyz, body) {
			readyz = append(readyz, body)
		}
		mu.Unlock()
		return code, body
	}

	accounts := func() (n, inactive int) {
		for _, r := range sb.Snapshot() {
			if strings.HasPrefix(r.Account.ExternalID, "hr:p") {
				n++
				if !r.Account.Active {
					inactive++
				}
			}
		}
		return n, inactive
	}
	for _, p := range people[:6] {
		send(connector.KindHired, p, hireTime, "2025-01-06")
	}
	// A hire whose email is not valid, and holds a name: dead-lettered.
	bad := events.Event{Feed: "hr", Kind: connector.KindHired, ID: "pii-bad", Source: "/feeds/hr", Time: hireTime,
		Data: events.Data{WorkerID: "p8", Email: "ok@private.example", Effective: "2025-01-06"}}
	msg := mustEncode(bad, events.Structured)
	msg.Data = []byte(strings.Replace(string(msg.Data), "ok@private.example", badEmail, 1))
	if _, err := js.PublishMsg(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 90*time.Second, "six active accounts despite the faults", func() (bool, string) {
		ready(faultyRun)
		ready(refusedRun)
		n, inactive := accounts()
		return n == 6 && inactive == 0, fmt.Sprintf("%d accounts, %d inactive; faults %+v", n, inactive, inj.Counts())
	})
	for _, p := range people[:3] {
		send(connector.KindLeft, p, leaveTime, "2025-06-30")
	}
	waitFor(t, 90*time.Second, "the three leavers' accounts inactive despite the faults", func() (bool, string) {
		ready(faultyRun)
		n, inactive := accounts()
		return n == 6 && inactive == 3, fmt.Sprintf("%d accounts, %d inactive; faults %+v", n, inactive, inj.Counts())
	})

	// Now lookups by email time out: the next hire gets as far as its email.
	hang.Store(hangEmailLookups)
	send(connector.KindHired, people[6], hireTime, "2025-01-06")
	waitFor(t, 60*time.Second, "the lookup of the new hire by email timed out", func() (bool, string) {
		ready(faultyRun)
		n := hungEmail.Load()
		return n > 0, fmt.Sprintf("%d email lookups held", n)
	})
	// Then the LMS answers nothing at all, until it is quarantined.
	hang.Store(hangAll)
	for _, p := range []*daemonInProcess{faultyRun, refusedRun} {
		waitFor(t, 60*time.Second, p.name+": /readyz says the LMS is quarantined", func() (bool, string) {
			code, body := ready(p)
			return code == http.StatusServiceUnavailable && strings.Contains(body, "quarantined"), fmt.Sprintf("%d %s", code, body)
		})
	}
	faultyRun.stop(t)
	refusedRun.stop(t)

	c := inj.Counts()
	if c.ServerErrBefore+c.ServerErrAfter == 0 || c.TimeoutBefore+c.TimeoutAfter == 0 || c.RateLimited == 0 {
		t.Errorf("faults injected %+v: want 5xx, timeouts and 429s each at least once", c)
	}
	// /readyz says what is wrong, in words that carry no data.
	var sawTimeout, sawRefused bool
	for _, b := range readyz {
		sawTimeout = sawTimeout || strings.Contains(b, "timeout")
		sawRefused = sawRefused || strings.Contains(b, "connection refused")
	}
	if !sawTimeout || !sawRefused {
		t.Errorf("/readyz bodies never named the cause (timeout: %v, connection refused: %v):\n%s",
			sawTimeout, sawRefused, strings.Join(readyz, "\n"))
	}

	logs := map[string]string{"faulty log": faultyRun.log.String(), "refused log": refusedRun.log.String(),
		"/readyz": strings.Join(readyz, "\n")}
	// The logs did see the failures, or there is nothing to check.
	for _, p := range []*daemonInProcess{faultyRun, refusedRun} {
		if !strings.Contains(p.log.String(), `"msg":"lms quarantined`) {
			t.Errorf("%s log: no quarantine logged; the faults did not reach the log", p.name)
		}
	}
	for _, p := range []*daemonInProcess{faultyRun, refusedRun} {
		if !strings.Contains(p.log.String(), `"msg":"dead-lettered"`) {
			t.Errorf("%s log: the invalid hire was not dead-lettered", p.name)
		}
	}
	forbidden := map[string]string{"invalid email": badEmail, "LMS password": lmsPass, "LMS token": token, "database password": dbPass, "NATS token": natsToken}
	for _, p := range people {
		forbidden[p.id+" email"] = p.email
		forbidden[p.id+" email (URL-encoded)"] = url.QueryEscape(p.email)
		forbidden[p.id+" email (path-encoded)"] = url.PathEscape(p.email)
		forbidden[p.id+" given name"] = p.given
		forbidden[p.id+" family name"] = p.family
		if p.reason != "" {
			forbidden[p.id+" leave reason"] = p.reason
		}
	}
	for where, text := range logs {
		for what, v := range forbidden {
			if i := strings.Index(text, v); i >= 0 {
				t.Errorf("%s contains the %s: …%s…", where, what, text[max(0, i-150):min(len(text), i+len(v)+50)])
			}
		}
	}
}

func TestRedactNATSURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"nats://s3cret-token@127.0.0.1:4222":                       "nats://xxxxx@127.0.0.1:4222",
		"nats://hrsync:s3cret@a:4222, nats://hrsync:s3cret@b:4222": "nats://xxxxx@a:4222,nats://xxxxx@b:4222",
		"nats://127.0.0.1:4222":                                    "nats://127.0.0.1:4222",
	} {
		if got := redactNATSURL(in); got != want {
			t.Errorf("redactNATSURL(%q) = %q, want %q", in, got, want)
		}
	}
	// The daemon's error when NATS cannot be reached names the server, not the token.
	_, _, err := runCLI(t, map[string]string{"NATS_URL": "nats://s3cret-token@127.0.0.1:1", "LMS_URL": "http://127.0.0.1:1/scim/v2",
		"DATABASE_URL": "sqlite://" + filepath.Join(t.TempDir(), "h.db")}, "run", "--admin-addr=")
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("run with NATS unreachable: %v, want an error naming the server without its token", err)
	}
}
