package main

// Crash safety: the daemon runs as a real OS process (the test binary, re-executed)
// and is killed with SIGKILL at random moments and right after an LMS write it
// never got to commit. The final state must be exact: no lost fact, no duplicate
// account, no LMS action done twice.

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/connector/lms/scim"
	"github.com/hrsync/hrsync/store"
	"github.com/hrsync/hrsync/store/pgtest"
)

// TestMain turns the test binary into the daemon when envDaemon is set: it runs
// "run" with the args in envDaemonArgs and exits with its result. Otherwise it
// runs the tests.
func TestMain(m *testing.M) {
	if os.Getenv(envDaemon) == "1" {
		os.Exit(daemonMain())
	}
	os.Exit(m.Run())
}

func daemonMain() int {
	var args []string
	if err := json.Unmarshal([]byte(os.Getenv(envDaemonArgs)), &args); err != nil {
		fmt.Fprintf(os.Stderr, "%s: not a JSON array of args: %v\n", envDaemonArgs, err)
		return 2
	}
	if err := run(context.Background(), args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "hrsync:", err)
		return 1
	}
	return 0
}

// testSeed returns HRSYNC_E2E_SEED if set (to replay a failure), else a new seed.
func testSeed(t *testing.T) uint64 {
	t.Helper()
	if s := os.Getenv("HRSYNC_E2E_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("HRSYNC_E2E_SEED=%q: %v", s, err)
		}
		return seed
	}
	return rand.Uint64() % 1_000_000_000
}

// finalLease is the lease of the crash tests' daemons: a killed daemon's claims
// are taken up again after it.
const finalLease = 3 * time.Second

// settleTimeout bounds the final poll. A daemon killed with messages in hand
// leaves them unacked, and JetStream redelivers them only after the consumer's
// AckWait (30s), so the bound must be well above that.
const settleTimeout = 90 * time.Second

func TestCrashSafety(t *testing.T) {
	t.Parallel()
	z := sizes{persons: 1200, leavers: 400, rehires: 150, newIDs: 30, newEmails: 40, dups: 100, malformed: 20, seeds: 30}
	rounds := 6
	if testing.Short() {
		z = sizes{persons: 200, leavers: 70, rehires: 30, newIDs: 6, newEmails: 8, dups: 20, malformed: 7, seeds: 8}
		rounds = 4
	}
	seed := testSeed(t)
	sc := newScenario(seed, z)
	t.Logf("scenario %s (replay with HRSYNC_E2E_SEED=%d)", sc.summary(), seed)

	natsURL := startNATS(t)
	dbURL := pgtest.URL(t)
	lms := startLMS(t, nil)
	js := connectJS(t, natsURL)
	db := openStore(t, dbURL)
	args := daemonArgs(t, lms, natsURL, dbURL, finalLease)
	rng := rand.New(rand.NewPCG(seed, 1))
	seeded := map[int]string{}
	waveAt := map[int]int{0: 0, rounds / 3: 1, 2 * rounds / 3: 2}
	seededBeforeLeaves := 0

	start := time.Now()
	for r := range rounds {
		d := startDaemon(t, fmt.Sprintf("round-%d", r), args)
		began := time.Now()
		runFor := time.Duration(100+rng.IntN(601)) * time.Millisecond
		if w, ok := waveAt[r]; ok {
			if w == 1 {
				seededBeforeLeaves = len(seeded)
			}
			publish(t, js, sc.waves[w]) // while the daemon starts up and runs
		}
		select {
		case <-d.done:
			t.Fatalf("daemon %s exited on its own after %v: %v", d.name, time.Since(began), d.err)
		case <-time.After(time.Until(began.Add(runFor))):
		}
		d.kill()
		if !d.waitExit(10 * time.Second) {
			t.Fatalf("daemon %s did not exit within 10s of SIGKILL", d.name)
		}
		sc.seedCompletions(t, lms.sb, seeded)
		t.Logf("round %d: SIGKILL after %v; LMS: %d accounts, %d ops; %d people seeded", r, runFor, lms.sb.Count(), len(lms.sb.Ops()), len(seeded))
	}
	t.Logf("%d kill rounds took %v; %d people seeded before their leave was published", rounds, time.Since(start).Round(time.Millisecond), seededBeforeLeaves)

	final := startDaemon(t, "final", args)
	began := time.Now()
	waitFor(t, settleTimeout, "final state after the crashes", func() (bool, string) {
		sc.seedCompletions(t, lms.sb, seeded)
		return sc.settled(t.Context(), js, lms.sb, db, seeded)
	}, final)
	t.Logf("final daemon settled in %v", time.Since(began).Round(time.Millisecond))
	final.terminate(t, 30*time.Second)
	sc.checkFinal(t, lms.sb, db, seeded)
	t.Logf("LMS: %d accounts, %s", lms.sb.Count(), opsSummary(lms.sb))
}

// killSwitch wraps the sandbox's handler: armed with n and a daemon, it lets the
// sandbox apply the n-th successful write (POST, PUT, PATCH or DELETE under
// /scim/v2/Users) from then on, and then SIGKILLs the daemon before the response
// goes out. The daemon dies between the LMS call and the commit of its outcome.
type killSwitch struct {
	serial sync.Mutex // held by the write being applied while armed
	mu     sync.Mutex
	left   int // writes until the kill; 0: off
	victim *daemon
	kills  []string // the writes that were interrupted
}

func (k *killSwitch) arm(n int, d *daemon) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.left, k.victim = n, d
}

func (k *killSwitch) killed() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.kills)
}

func (k *killSwitch) kill(i int) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.kills[i]
}

func (k *killSwitch) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bulk := r.Method == http.MethodPost && r.URL.Path == sandbox.BasePath+"/Bulk"
		if !bulk && (r.Method == http.MethodGet || !strings.HasPrefix(r.URL.Path, sandbox.BasePath+"/Users")) {
			next.ServeHTTP(w, r)
			return
		}
		// While armed, writes are applied one request at a time, and a write
		// that was waiting when the kill came is not applied at all (its daemon
		// is dead): so a kill comes right after the request that applied the
		// n-th write, and no other request of that daemon lands after it, though
		// one bulk request applies many.
		k.mu.Lock()
		armed := k.left > 0
		k.mu.Unlock()
		if armed {
			k.serial.Lock()
			defer k.serial.Unlock()
			k.mu.Lock()
			armed = k.left > 0
			k.mu.Unlock()
			if !armed {
				panic(http.ErrAbortHandler)
			}
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r) // the sandbox applies the write(s)
		applied := btoi(rec.Code < 300)
		if bulk {
			applied = bulkApplied(rec.Body.Bytes())
		}
		var victim *daemon
		k.mu.Lock()
		if k.left > 0 && applied > 0 {
			// A bulk request applies several writes: the kill comes right after
			// the request that applied the n-th.
			k.left = max(k.left-applied, 0)
			if k.left == 0 {
				victim = k.victim
				k.kills = append(k.kills, fmt.Sprintf("%s %s (%s)", r.Method, r.URL.Path, victim.name))
			}
		}
		k.mu.Unlock()
		if victim != nil {
			victim.kill()
			victim.waitExit(10 * time.Second)
			panic(http.ErrAbortHandler) // the response never goes out
		}
		for key, v := range rec.Header() {
			w.Header()[key] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	})
}

// auditSettled reports whether no audit row is pending and no worker is due.
func auditSettled(ctx context.Context, db *store.DB) (bool, string) {
	audit, err := db.ListAudit(ctx, store.AuditFilter{})
	if err != nil {
		return false, err.Error()
	}
	pending := 0
	for _, e := range audit {
		pending += btoi(e.Outcome == connector.OutcomePending)
	}
	if pending > 0 {
		return false, fmt.Sprintf("%d audit rows pending", pending)
	}
	if next, due, err := db.NextDue(ctx); err != nil || (due && !next.After(time.Now())) {
		return false, fmt.Sprintf("workers due (err %v)", err)
	}
	return true, ""
}

// bulkApplied is how many operations of a SCIM bulk response succeeded.
func bulkApplied(body []byte) int {
	var resp scim.BulkResponse
	if json.Unmarshal(body, &resp) != nil {
		return 0
	}
	n := 0
	for _, op := range resp.Operations {
		if status, err := strconv.Atoi(op.Status); err == nil && status < 300 {
			n++
		}
	}
	return n
}

func TestCrashBetweenLMSCallAndCommit(t *testing.T) {
	t.Parallel()
	z := sizes{persons: 300, leavers: 100, rehires: 40, newIDs: 10, newEmails: 10, dups: 30, malformed: 7, seeds: 10}
	if testing.Short() {
		z = sizes{persons: 80, leavers: 24, rehires: 12, newIDs: 3, newEmails: 3, dups: 9, malformed: 4, seeds: 4}
	}
	seed := testSeed(t)
	sc := newScenario(seed, z)
	t.Logf("scenario %s (replay with HRSYNC_E2E_SEED=%d)", sc.summary(), seed)

	natsURL := startNATS(t)
	dbURL := pgtest.URL(t)
	ks := &killSwitch{}
	lms := startLMS(t, ks.wrap)
	js := connectJS(t, natsURL)
	db := openStore(t, dbURL)
	args := daemonArgs(t, lms, natsURL, dbURL, finalLease)
	seeded := map[int]string{}

	// awaitKill waits until the switch killed d, and fails if d ended otherwise.
	awaitKill := func(d *daemon, kills int) {
		t.Helper()
		if !d.waitExit(60 * time.Second) {
			t.Fatalf("daemon %s was not killed within 60s: it made fewer LMS writes than the switch was armed with", d.name)
		}
		if ks.killed() != kills {
			t.Fatalf("daemon %s exited on its own: %v", d.name, d.err)
		}
		sc.seedCompletions(t, lms.sb, seeded)
		t.Logf("killed %s right after the LMS applied %s; LMS: %d accounts, %d ops", d.name, ks.kill(kills-1), lms.sb.Count(), len(lms.sb.Ops()))
	}
	step := func(name string, n int) {
		t.Helper()
		d := startDaemon(t, name, args)
		ks.arm(n, d)
		awaitKill(d, ks.killed()+1)
	}
	// phase runs a daemon until cond holds, then arms the switch, publishes the
	// next wave and waits for the kill.
	phase := func(name, what string, cond func() (bool, string), n int, wave int) {
		t.Helper()
		d := startDaemon(t, name, args)
		waitFor(t, settleTimeout, what, cond, d)
		sc.seedCompletions(t, lms.sb, seeded)
		kills := ks.killed()
		ks.arm(n, d)
		publish(t, js, sc.waves[wave])
		awaitKill(d, kills+1)
	}
	hired := func() (bool, string) {
		ok, why := consumerDrained(t.Context(), js)
		if !ok {
			return false, why
		}
		n := 0
		for _, r := range lms.sb.Snapshot() {
			n += btoi(r.Account.Active)
		}
		return n == len(sc.people), fmt.Sprintf("%d of %d accounts active", n, len(sc.people))
	}
	left := func() (bool, string) {
		ok, why := consumerDrained(t.Context(), js)
		if !ok {
			return false, why
		}
		n := 0
		for _, r := range lms.sb.Snapshot() {
			n += btoi(!r.Account.Active)
		}
		return n == z.leavers, fmt.Sprintf("%d of %d accounts inactive", n, z.leavers)
	}

	start := time.Now()
	publish(t, js, sc.waves[0])
	step("create-1", 1)           // the very first create
	step("create-2", 2)           // one more, while the first one's claim is still leased
	step("create-3", z.persons/3) // mid-way through the hires
	// The waves' kills come at their first write request: over SCIM Bulk one
	// request may carry a claimed batch's every deactivation (or rehire), and
	// the step after each wave needs writes left to be killed in.
	phase("hires", "all hires converged", hired, 1, 1)
	step("deactivate", 1)
	phase("leaves", "all leaves converged", left, 1, 2)
	step("rehire", 1)
	t.Logf("%d kills took %v", ks.killed(), time.Since(start).Round(time.Millisecond))

	final := startDaemon(t, "final", args)
	began := time.Now()
	waitFor(t, settleTimeout, "final state after the kills", func() (bool, string) {
		if ok, why := sc.settled(t.Context(), js, lms.sb, db, seeded); !ok {
			return false, why
		}
		// Over SCIM Bulk the last kill may come after the LMS's final write: the
		// final daemon still has the killed converges' audit rows to settle.
		return auditSettled(t.Context(), db)
	}, final)
	t.Logf("final daemon settled in %v", time.Since(began).Round(time.Millisecond))
	final.terminate(t, 30*time.Second)
	sc.checkFinal(t, lms.sb, db, seeded)
	checkAudited(t, lms.sb, db)
	t.Logf("LMS: %d accounts, %s; %d people seeded", lms.sb.Count(), opsSummary(lms.sb), len(seeded))
}

// auditAction is the audit action of each kind of LMS write the sandbox logs.
var auditAction = map[sandbox.OpKind]connector.ActionKind{sandbox.OpCreate: connector.ActionCreate, sandbox.OpUpdate: connector.ActionUpdate,
	sandbox.OpActivate: connector.ActionReactivate, sandbox.OpDeactivate: connector.ActionDeactivate, sandbox.OpDelete: connector.ActionDelete}

// checkAudited checks that the audit is complete after the kills: every write the
// sandbox applied has an audit row with outcome ok for that action on that
// account (recorded after the call, or resolved as applied after a crash), and
// no row is left pending.
func checkAudited(t *testing.T, sb *sandbox.LMS, db *store.DB) {
	t.Helper()
	audit, err := db.ListAudit(t.Context(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	type key struct {
		account string
		action  connector.ActionKind
	}
	have := map[key]int{}
	pending := 0
	for _, a := range audit {
		switch a.Outcome {
		case connector.OutcomeOK:
			have[key{a.AccountID, a.Action}]++
		case connector.OutcomePending:
			pending++
			t.Errorf("audit row %d is still pending after the final daemon: %+v", a.ID, a)
		}
	}
	want := map[key]int{}
	for _, op := range sb.Ops() {
		want[key{op.AccountID, auditAction[op.Kind]}]++
	}
	missing := 0
	for k, n := range want {
		if have[k] < n {
			missing += n - have[k]
			if missing <= 10 {
				t.Errorf("the LMS applied %d %s of account %s; the audit has %d", n, k.action, k.account, have[k])
			}
		}
	}
	if missing > 0 || pending > 0 {
		t.Errorf("%d LMS writes without an audit row, %d rows pending (%d writes in all)", missing, pending, len(sb.Ops()))
	}
}

// opsSummary counts the LMS ops by kind.
func opsSummary(sb *sandbox.LMS) string {
	n := map[sandbox.OpKind]int{}
	for _, op := range sb.Ops() {
		n[op.Kind]++
	}
	return fmt.Sprintf("ops: %d create, %d update, %d deactivate, %d activate, %d delete",
		n[sandbox.OpCreate], n[sandbox.OpUpdate], n[sandbox.OpDeactivate], n[sandbox.OpActivate], n[sandbox.OpDelete])
}
