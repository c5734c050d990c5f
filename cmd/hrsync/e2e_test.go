package main

// End-to-end tests of "hrsync run" with the real parts: an in-process NATS server
// with JetStream, PostgreSQL, and the sandbox LMS spoken to over SCIM.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/events"
	"github.com/hrsync/hrsync/store"
	"github.com/hrsync/hrsync/store/pgtest"
)

// TestRunHireLeaveRehire runs the daemon in process, configured only through the
// environment, and follows one person through hire, leave and rehire.
func TestRunHireLeaveRehire(t *testing.T) {
	t.Parallel()
	natsURL := startNATS(t)
	dbURL := pgtest.URL(t)
	lms := startLMS(t, nil)
	env := map[string]string{
		"DATABASE_URL": dbURL, "NATS_URL": natsURL, "LMS_URL": lms.url, "LMS_TOKEN": lms.token,
		"HRSYNC_ADMIN_ADDR": "127.0.0.1:0", "HRSYNC_LOG_FORMAT": "json", "HRSYNC_LOG_LEVEL": "debug", "HRSYNC_CONFIG": settleAtOnceConfig(t),
	}
	getenv := func(k string) string { return env[k] }

	ctx, cancel := context.WithCancel(t.Context())
	var stdout, stderr syncBuffer
	var runErr error
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		runErr = run(ctx, []string{"hrsync", "run", "--poll-interval", "100ms"}, getenv, &stdout, &stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-finished:
		case <-time.After(20 * time.Second):
			t.Error("run did not return within 20s of the cancel")
		}
		if t.Failed() {
			t.Logf("daemon stderr:\n%s", lastLines(stderr.String(), 30))
		}
	})
	alive := func() {
		t.Helper()
		select {
		case <-finished:
			t.Fatalf("run returned early: %v", runErr)
		default:
		}
	}

	// The admin server listens on a free port; the log says which.
	var admin string
	waitFor(t, 20*time.Second, "admin endpoints listening", func() (bool, string) {
		alive()
		for line := range strings.Lines(stderr.String()) {
			var l struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "admin endpoints listening" {
				admin = "http://" + l.Addr
				return true, ""
			}
		}
		return false, "no \"admin endpoints listening\" in the log yet"
	})
	if code, body := get(t, admin+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz: %d %s", code, body)
	}
	waitFor(t, 20*time.Second, "/readyz 200", func() (bool, string) {
		alive()
		code, body := get(t, admin+"/readyz")
		return code == http.StatusOK, fmt.Sprintf("%d %s", code, body)
	})

	js := connectJS(t, natsURL)
	db := openStore(t, dbURL)
	send := func(e events.Event, m events.Mode) {
		t.Helper()
		if _, err := events.Publish(t.Context(), js, e, m); err != nil {
			t.Fatal(err)
		}
	}
	account := func() (sandbox.AccountRecord, int) {
		var found []sandbox.AccountRecord
		for _, r := range lms.sb.Snapshot() {
			if strings.HasPrefix(r.Account.ExternalID, "hr:w1") {
				found = append(found, r)
			}
		}
		if len(found) != 1 {
			return sandbox.AccountRecord{}, len(found)
		}
		return found[0], 1
	}
	awaitAccount := func(what string, want func(a sandbox.AccountRecord) bool) sandbox.AccountRecord {
		t.Helper()
		var got sandbox.AccountRecord
		waitFor(t, 20*time.Second, what, func() (bool, string) {
			alive()
			a, n := account()
			if n > 1 {
				t.Fatalf("%s: %d accounts for w1, want one", what, n)
			}
			got = a
			return n == 1 && want(a), fmt.Sprintf("%d accounts; %+v", n, a.Account)
		})
		return got
	}
	profile := events.Data{WorkerID: "w1", Email: "ana.berger@corp.example", GivenName: "Ana", FamilyName: "Berger",
		EmployeeNumber: "E000001", OrgUnit: "Kitchen", JobTitle: "Cook"}

	hire := events.Event{Feed: "hr", Kind: connector.KindHired, ID: "ev-1", Source: "/feeds/hr", Time: hireTime, Data: profile}
	hire.Data.Effective = "2025-01-06"
	send(hire, events.Binary)
	hired := awaitAccount("account created and active after the hire", func(a sandbox.AccountRecord) bool {
		return a.Account.ExternalID == "hr:w1" && a.Account.Active
	})
	if err := lms.sb.CompleteCourse(hired.Account.ID, seededCourse, completedAt); err != nil {
		t.Fatal(err)
	}

	leave := events.Event{Feed: "hr", Kind: connector.KindLeft, ID: "ev-2", Source: "/feeds/hr", Time: leaveTime,
		Data: events.Data{WorkerID: "w1", Effective: "2025-06-30", Reason: "resigned"}}
	send(leave, events.Structured)
	awaitAccount("account inactive after the leave", func(a sandbox.AccountRecord) bool { return !a.Account.Active })

	rehire := events.Event{Feed: "hr", Kind: connector.KindRehired, ID: "ev-3", Source: "/feeds/hr", Time: rehireTime, Data: profile}
	rehire.Data.Email, rehire.Data.Effective = "ana.berger.new@corp.example", "2025-10-01"
	send(rehire, events.Binary)
	back := awaitAccount("the same account active again after the rehire", func(a sandbox.AccountRecord) bool {
		return a.Account.Active && strings.EqualFold(a.Account.Profile.Email, rehire.Data.Email)
	})
	if back.Account.ID != hired.Account.ID {
		t.Errorf("rehire: account %s, want the original %s", back.Account.ID, hired.Account.ID)
	}
	if !slices.ContainsFunc(back.Training.Completions, func(c sandbox.Completion) bool { return c.Course == seededCourse }) {
		t.Errorf("rehire: completions %+v, want %s kept", back.Training.Completions, seededCourse)
	}
	var kinds []sandbox.OpKind
	for _, op := range lms.sb.Ops() {
		if op.Kind != sandbox.OpUpdate {
			kinds = append(kinds, op.Kind)
		}
	}
	if want := []sandbox.OpKind{sandbox.OpCreate, sandbox.OpDeactivate, sandbox.OpActivate}; !slices.Equal(kinds, want) {
		t.Errorf("LMS ops (updates aside) %v, want %v: each action once", kinds, want)
	}

	// A malformed message is dead-lettered with a reason that names the field.
	bad := events.Event{Feed: "hr", Kind: connector.KindHired, ID: "ev-4", Source: "/feeds/hr", Time: hireTime,
		Data: events.Data{WorkerID: "w2", Email: "w2@corp.example", Effective: "2025-01-06"}}
	msg := mustEncode(bad, events.Structured)
	var body map[string]any
	if err := json.Unmarshal(msg.Data, &body); err != nil {
		t.Fatal(err)
	}
	delete(body["data"].(map[string]any), "email")
	raw, _ := json.Marshal(body)
	out := nats.NewMsg(msg.Subject)
	out.Header.Set("Content-Type", "application/cloudevents+json")
	out.Data = raw
	if _, err := js.PublishMsg(t.Context(), out); err != nil {
		t.Fatal(err)
	}
	var dls []connector.DeadLetter
	waitFor(t, 20*time.Second, "the malformed message dead-lettered", func() (bool, string) {
		alive()
		var err error
		dls, err = db.ListDeadLetters(t.Context(), store.DeadLetterFilter{})
		return err == nil && len(dls) > 0, fmt.Sprintf("%d dead letters, err %v", len(dls), err)
	})
	if len(dls) != 1 || !strings.Contains(dls[0].Reason, "email") || dls[0].Subject != "hrsync.events.hr.hired" {
		t.Errorf("dead letters %+v, want one on hrsync.events.hr.hired whose reason names the email field", dls)
	}
	if c, err := db.Counts(t.Context()); err != nil || c.Facts != 3 || c.DeadLetters != 1 || c.Links != 1 {
		t.Errorf("store counts %+v (err %v), want 3 facts, 1 dead letter, 1 link", c, err)
	}

	// The counter moves just after the dead letter is stored, so the scrape
	// waits for it rather than racing the consumer.
	var metrics string
	waitFor(t, 10*time.Second, "the dead letter counted in /metrics", func() (bool, string) {
		var code int
		code, metrics = get(t, admin+"/metrics")
		return code == http.StatusOK && strings.Contains(metrics, `hrsync_dead_letters_total{feed="hr"} 1`),
			fmt.Sprintf("/metrics %d:\n%s", code, grepLines(metrics, "hrsync_dead"))
	})
	if !regexp.MustCompile(`(?m)^hrsync_facts_recorded_total 3$`).MatchString(metrics) {
		t.Errorf("/metrics: want hrsync_facts_recorded_total 3 in:\n%s", grepLines(metrics, "hrsync_"))
	}
	for _, want := range []string{`hrsync_lms_actions_total{action="create",outcome="ok"} 1`, `hrsync_dead_letters_total{feed="hr"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics: want %s in:\n%s", want, grepLines(metrics, "hrsync_"))
		}
	}
	if code, body := get(t, admin+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz: %d %s", code, body)
	}

	cancel()
	select {
	case <-finished:
	case <-time.After(20 * time.Second):
		t.Fatal("run did not return within 20s of the cancel")
	}
	if runErr != nil {
		t.Fatalf("run after cancel: %v, want nil", runErr)
	}
	if !strings.Contains(stderr.String(), `"msg":"hrsync stopped"`) {
		t.Errorf("the log does not say hrsync stopped")
	}
}

// TestTwoReplicas runs two daemon processes on the same store and the same durable
// consumer while the events arrive in three waves: they share the work, and
// together they do every LMS action exactly once.
func TestTwoReplicas(t *testing.T) {
	t.Parallel()
	z := sizes{persons: 1500, leavers: 500, rehires: 200, newIDs: 80, newEmails: 50, dups: 120, malformed: 21, seeds: 30}
	if testing.Short() {
		z = sizes{persons: 250, leavers: 80, rehires: 30, newIDs: 12, newEmails: 8, dups: 20, malformed: 7, seeds: 8}
	}
	seed := testSeed(t)
	sc := newScenario(seed, z)
	t.Logf("scenario %s (replay with HRSYNC_E2E_SEED=%d)", sc.summary(), seed)

	natsURL := startNATS(t)
	dbURL := pgtest.URL(t)
	lms := startLMS(t, nil)
	js := connectJS(t, natsURL)
	db := openStore(t, dbURL)
	args := daemonArgs(t, lms, natsURL, dbURL, 30*time.Second)
	a := startDaemon(t, "replica-a", args)
	b := startDaemon(t, "replica-b", args)
	seeded := map[int]string{}

	start := time.Now()
	publish(t, js, sc.waves[0])
	waitFor(t, settleTimeout, "half of the hires converged", func() (bool, string) {
		n := lms.sb.Count()
		return n >= len(sc.people)/2, fmt.Sprintf("%d accounts", n)
	}, a, b)
	sc.seedCompletions(t, lms.sb, seeded)
	publish(t, js, sc.waves[1])
	// The rehires arrive while the replicas are busy with the leaves, as when HR
	// sends a leave and a rehire close together.
	waitFor(t, settleTimeout, "the leaves being converged", func() (bool, string) {
		n := 0
		for _, op := range lms.sb.Ops() {
			n += btoi(op.Kind == sandbox.OpDeactivate)
		}
		return n > 0, fmt.Sprintf("%d deactivations", n)
	}, a, b)
	sc.seedCompletions(t, lms.sb, seeded)
	publish(t, js, sc.waves[2])
	waitFor(t, settleTimeout, "final state", func() (bool, string) {
		sc.seedCompletions(t, lms.sb, seeded)
		return sc.settled(t.Context(), js, lms.sb, db, seeded)
	}, a, b)
	t.Logf("settled %v after the first publish", time.Since(start).Round(time.Millisecond))

	a.sigterm(t)
	b.sigterm(t)
	a.awaitCleanExit(t, 30*time.Second)
	b.awaitCleanExit(t, 30*time.Second)
	sc.checkFinal(t, lms.sb, db, seeded)
	na, nb := a.logCount(`"msg":"lms action"`), b.logCount(`"msg":"lms action"`)
	t.Logf("LMS: %d accounts, %s; LMS actions by replica a: %d, by b: %d", lms.sb.Count(), opsSummary(lms.sb), na, nb)
	if na == 0 || nb == 0 {
		t.Logf("note: one replica did no LMS action (not an error: the work is shared by lease, not split)")
	}
}

// get fetches url and returns the status code and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// grepLines returns the lines of s that start with prefix.
func grepLines(s, prefix string) string {
	var out []string
	for line := range strings.Lines(s) {
		if strings.HasPrefix(line, prefix) {
			out = append(out, strings.TrimRight(line, "\n"))
		}
	}
	return strings.Join(out, "\n")
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// TestRehireUnderNewIDWhileLeaveInFlight holds the LMS call that deactivates a
// leaver until the same person's rehire under a new worker id has been converged
// next to it (the daemon converges two claim batches at once, and replicas do the
// same). The person must end with one active account under the new id.
func TestRehireUnderNewIDWhileLeaveInFlight(t *testing.T) {
	t.Parallel()
	natsURL := startNATS(t)
	dbURL := pgtest.URL(t)
	held := make(chan struct{})    // closed when the deactivation reached the LMS
	release := make(chan struct{}) // closed to let it through
	served := make(chan struct{})  // closed once the LMS applied it
	var once sync.Once
	lms := startLMS(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hold := false
			if r.Method == http.MethodPatch {
				body, _ := io.ReadAll(r.Body)
				r.Body = io.NopCloser(bytes.NewReader(body))
				once.Do(func() { hold = bytes.Contains(body, []byte(`"value":false`)) })
			}
			if !hold {
				next.ServeHTTP(w, r)
				return
			}
			close(held)
			select {
			case <-release:
			case <-time.After(30 * time.Second):
			}
			next.ServeHTTP(w, r)
			close(served)
		})
	})
	js := connectJS(t, natsURL)
	d := startDaemon(t, "daemon", daemonArgs(t, lms, natsURL, dbURL, finalLease))

	send := func(k connector.Kind, id string, at time.Time, data events.Data) {
		t.Helper()
		e := events.Event{Feed: "hr", Kind: k, ID: id, Source: "/feeds/hr", Time: at, Data: data}
		if _, err := events.Publish(t.Context(), js, e, events.Binary); err != nil {
			t.Fatal(err)
		}
	}
	find := func(ext string) []sandbox.AccountRecord {
		var out []sandbox.AccountRecord
		for _, r := range lms.sb.Snapshot() {
			if r.Account.ExternalID == ext {
				out = append(out, r)
			}
		}
		return out
	}
	hire := events.Data{WorkerID: "w1", Email: "ana@corp.example", GivenName: "Ana", FamilyName: "Berger", EmployeeNumber: "E1", Effective: "2025-01-06"}
	send(connector.KindHired, "ev-1", hireTime, hire)
	waitFor(t, 30*time.Second, "the account of w1", func() (bool, string) {
		return len(find("hr:w1")) == 1, fmt.Sprintf("%d accounts", lms.sb.Count())
	}, d)

	send(connector.KindLeft, "ev-2", leaveTime, events.Data{WorkerID: "w1", Effective: "2025-06-30"})
	select {
	case <-held:
	case <-time.After(30 * time.Second):
		t.Fatal("the deactivation never reached the LMS")
	}
	rehire := hire
	rehire.WorkerID, rehire.Email, rehire.EmployeeNumber, rehire.PreviousWorkerID, rehire.Effective = "w1-r", "ana.back@corp.example", "", "w1", "2025-10-01"
	send(connector.KindRehired, "ev-3", rehireTime, rehire)
	// Let the rehire be converged while the deactivation is held, if the daemon
	// does that: wait until the account carries the new id, for at most 3s.
	waited := time.Now()
	for len(find("hr:w1-r")) == 0 && time.Since(waited) < 3*time.Second {
		<-time.After(pollEvery)
	}
	t.Logf("the rehire was converged while the deactivation was held: %v", len(find("hr:w1-r")) == 1)
	close(release)
	<-served

	waitFor(t, 20*time.Second, "one active account under hr:w1-r", func() (bool, string) {
		got := find("hr:w1-r")
		return lms.sb.Count() == 1 && len(got) == 1 && got[0].Account.Active,
			fmt.Sprintf("%d accounts: %+v", lms.sb.Count(), lms.sb.Snapshot())
	}, d)
	d.terminate(t, 30*time.Second)
}
