package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/app"
	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/events"
	"github.com/hrsync/hrsync/store"
	"github.com/hrsync/hrsync/store/pgtest"
)

// rateLimitedLMS is an LMS over its API budget: it answers the first attempt of
// every distinct call 429 with a short Retry-After, as Docebo does above its
// contractual limit. Only a client behind the guard (which waits as told and
// tries again) gets its work done; a command that reached the LMS around the
// guard fails, or leaves its work undone. It counts the calls it refused.
type rateLimitedLMS struct {
	*sandbox.LMS
	mu      sync.Mutex
	seen    map[string]bool
	limited int
}

func (r *rateLimitedLMS) gate(op string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = map[string]bool{}
	}
	if !r.seen[op] {
		r.seen[op] = true
		r.limited++
		return &connector.LMSError{Kind: connector.KindRateLimited, Op: op, Status: 429, RetryAfter: time.Millisecond}
	}
	return nil
}

func (r *rateLimitedLMS) refused() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.limited
}

func (r *rateLimitedLMS) GetAccount(ctx context.Context, id string) (connector.Account, error) {
	if err := r.gate("GET /Users/" + id); err != nil {
		return connector.Account{}, err
	}
	return r.LMS.GetAccount(ctx, id)
}

func (r *rateLimitedLMS) FindAccounts(ctx context.Context, f connector.AccountFilter) ([]connector.Account, error) {
	if err := r.gate(fmt.Sprintf("GET /Users?filter=%s eq %q", f.Attr, f.Value)); err != nil {
		return nil, err
	}
	return r.LMS.FindAccounts(ctx, f)
}

func (r *rateLimitedLMS) ListAccounts(ctx context.Context, start, count int) (connector.AccountPage, error) {
	if err := r.gate(fmt.Sprintf("GET /Users?startIndex=%d&count=%d", start, count)); err != nil {
		return connector.AccountPage{}, err
	}
	return r.LMS.ListAccounts(ctx, start, count)
}

func (r *rateLimitedLMS) CreateAccount(ctx context.Context, a connector.Account) (connector.Account, error) {
	if err := r.gate("POST /Users " + a.ExternalID + " " + a.Profile.Email); err != nil {
		return connector.Account{}, err
	}
	return r.LMS.CreateAccount(ctx, a)
}

func (r *rateLimitedLMS) UpdateAccount(ctx context.Context, a connector.Account) (connector.Account, error) {
	if err := r.gate("PUT /Users/" + a.ID); err != nil {
		return connector.Account{}, err
	}
	return r.LMS.UpdateAccount(ctx, a)
}

func (r *rateLimitedLMS) SetActive(ctx context.Context, id string, active bool) (connector.Account, error) {
	if err := r.gate(fmt.Sprintf("PATCH /Users/%s active=%t", id, active)); err != nil {
		return connector.Account{}, err
	}
	return r.LMS.SetActive(ctx, id, active)
}

func (r *rateLimitedLMS) DeleteAccount(ctx context.Context, id string) error {
	if err := r.gate("DELETE /Users/" + id); err != nil {
		return err
	}
	return r.LMS.DeleteAccount(ctx, id)
}

func (r *rateLimitedLMS) Activity(ctx context.Context, id string) (connector.Activity, error) {
	if err := r.gate("GET /Users/" + id + " activity"); err != nil {
		return connector.Activity{}, err
	}
	return r.LMS.Activity(ctx, id)
}

var doorSeq atomic.Int64

// doors is a store and an LMS in the state the defects were found in: feed hr
// has 12 people with accounts, 5 of whom left and are held in an open hold, and
// one more hire (w13) is recorded but not yet converged; partner-acme has 4
// people. The LMS is rate limited (rateLimitedLMS), registered as an lms.type of
// its own in the configuration every command reads.
type doors struct {
	db, cfg, key string
	lms          *rateLimitedLMS
	holdID       int64
	held         []connector.WorkerKey
	accounts     map[string]string // worker id -> account id
}

const doorsKey = "doors-erasure-key"

func newDoors(t *testing.T, dbURL string) *doors {
	t.Helper()
	ctx := t.Context()
	d := &doors{db: dbURL, key: doorsKey, lms: &rateLimitedLMS{LMS: sandbox.New()}, accounts: map[string]string{}}
	typ := fmt.Sprintf("ratelimited-%d", doorSeq.Add(1))
	app.RegisterLMS(typ, func(app.LMSSettings) (connector.LMS, error) { return d.lms, nil })
	d.cfg = filepath.Join(t.TempDir(), "hrsync.yaml")
	cfg := fmt.Sprintf(`feeds:
  - {name: hr, kind: hr}
  - {name: partner-acme, kind: partner, roster: {mode: snapshot}}
lms: {type: %s}
# More than 5%% of a feed's active accounts is held; judged at once.
safeguard: {percent: 5, count: 500, min_removals: 0, settle: 0s}
`, typ)
	if err := os.WriteFile(d.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	fc, err := app.LoadConfigFile(d.cfg)
	if err != nil {
		t.Fatal(err)
	}
	set, err := app.SettingsFor(dbURL, nil, fc)
	if err != nil {
		t.Fatal(err)
	}
	set.ErasureKey = []byte(d.key)
	a, err := app.Open(ctx, set, app.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	conv, err := a.Converger(connector.ConvergerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-48 * time.Hour).UTC()
	fact := func(feed, worker string, k connector.Kind, id string) connector.Fact {
		src := "/feeds/" + feed
		f := connector.Fact{Feed: feed, WorkerID: worker, Source: src, ID: id, Kind: k, Effective: at, Time: at}
		if k == connector.KindHired {
			f.Profile = connector.Profile{Email: worker + "@" + feed + ".example", GivenName: "Given", FamilyName: worker}
		}
		return f
	}
	var facts []connector.Fact
	for i := 1; i <= 12; i++ {
		facts = append(facts, fact("hr", fmt.Sprintf("w%02d", i), connector.KindHired, fmt.Sprintf("h%02d", i)))
	}
	for i := 1; i <= 4; i++ {
		facts = append(facts, fact("partner-acme", fmt.Sprintf("p%d", i), connector.KindHired, fmt.Sprintf("ph%d", i)))
	}
	if _, err := a.Store().RecordFacts(ctx, facts); err != nil {
		t.Fatal(err)
	}
	if _, err := conv.Drain(ctx, 100); err != nil {
		t.Fatal(err)
	}
	facts = facts[:0]
	for i := 1; i <= 5; i++ {
		w := fmt.Sprintf("w%02d", i)
		facts = append(facts, fact("hr", w, connector.KindLeft, "l"+w))
		d.held = append(d.held, connector.WorkerKey{Feed: "hr", WorkerID: w})
	}
	facts = append(facts, fact("hr", "w13", connector.KindHired, "h13"))
	if _, err := a.Store().RecordFacts(ctx, facts[:5]); err != nil {
		t.Fatal(err)
	}
	if _, err := conv.Drain(ctx, 100); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Store().RecordFacts(ctx, facts[5:]); err != nil { // w13: recorded, not converged
		t.Fatal(err)
	}
	if n := len(d.lms.Snapshot()); n != 16 {
		t.Fatalf("the set-up made %d accounts, want 16", n)
	}
	holds, err := a.Store().ListHolds(ctx, store.HoldFilter{Status: connector.HoldOpen})
	if err != nil || len(holds) != 1 || holds[0].Counts.Removals != 5 {
		t.Fatalf("open holds = %+v, %v; want one holding the 5 leavers", holds, err)
	}
	d.holdID = holds[0].ID
	for _, r := range d.lms.Snapshot() {
		d.accounts[strings.TrimPrefix(r.Account.ExternalID, "hr:")] = r.Account.ID
	}
	d.check(t, "the set-up")
	return d
}

// check fails unless every held account is still active and the hold still open.
func (d *doors) check(t *testing.T, after string) {
	t.Helper()
	active := map[string]bool{}
	for _, r := range d.lms.Snapshot() {
		active[r.Account.ExternalID] = r.Account.Active
	}
	for _, w := range d.held {
		if !active[w.ExternalID()] {
			t.Errorf("after %s: the held account of %s was deactivated or deleted around the open hold %d", after, w, d.holdID)
		}
	}
	db := openStore(t, d.db)
	h, err := db.GetHold(t.Context(), d.holdID)
	if err != nil || h.Status != connector.HoldOpen || h.Counts.Removals != 5 {
		t.Errorf("after %s: hold %d = %+v, %v; want still open with its 5 removals", after, d.holdID, h, err)
	}
}

// hasAccount reports whether worker of hr has an active account.
func (d *doors) hasAccount(worker string) bool {
	for _, r := range d.lms.Snapshot() {
		if r.Account.ExternalID == "hr:"+worker {
			return r.Account.Active
		}
	}
	return false
}

func (d *doors) env() map[string]string {
	return map[string]string{erasureKeyEnv: d.key, "HRSYNC_LOG_LEVEL": "warn"}
}

// TestEveryDoorKeepsTheSafeguards runs every command that can change the LMS
// against an open hold and a rate-limited LMS: none deactivates what the hold
// holds, and each one's LMS work gets done through the guard.
func TestEveryDoorKeepsTheSafeguards(t *testing.T) {
	t.Parallel()
	backends := []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"SQLite", func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "hrsync.db") }},
		{"PostgreSQL", func(t *testing.T) string { return pgtest.URL(t) }},
	}
	commands := []struct {
		name string
		run  func(t *testing.T, d *doors)
	}{
		{"run", func(t *testing.T, d *doors) {
			// The held workers are due again (as a reconcile would mark them): the
			// daemon converges them, and the safeguard keeps them held.
			db := openStore(t, d.db)
			if _, err := db.MarkDue(t.Context(), d.held, time.Now()); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			done := make(chan error, 1)
			var out syncBuffer
			go func() {
				done <- run(ctx, []string{"hrsync", "run", "--db", d.db, "--config", d.cfg, "--embedded-nats", "--embedded-nats-addr", "127.0.0.1:0", "--admin-addr=",
					"--poll-interval", "50ms"}, func(k string) string { return d.env()[k] }, &out, &out)
			}()
			waitFor(t, 30*time.Second, "the daemon converges the new hire", func() (bool, string) {
				return d.hasAccount("w13"), out.String()
			})
			waitFor(t, 30*time.Second, "the held workers converged again", func() (bool, string) {
				due, err := db.Counts(t.Context())
				return err == nil && due.Due == 0, fmt.Sprintf("%+v %v", due, err)
			})
			cancel()
			if err := <-done; err != nil {
				t.Errorf("run: %v\n%s", err, out.String())
			}
		}},
		{"reconcile --apply", func(t *testing.T, d *doors) {
			out, stderr, err := runCLI(t, d.env(), "reconcile", "--apply", "--db", d.db, "--config", d.cfg, "--out", t.TempDir())
			if err != nil {
				t.Fatalf("reconcile --apply: %v\n%s\n%s", err, out, stderr)
			}
			if !d.hasAccount("w13") {
				t.Errorf("reconcile --apply did not converge the new hire:\n%s", out)
			}
		}},
		{"holds run", func(t *testing.T, d *doors) {
			// A live hold is not a job: approving it is the only way it runs.
			_, _, err := runCLI(t, d.env(), "holds", "run", "--db", d.db, "--config", d.cfg, fmt.Sprint(d.holdID))
			if err == nil {
				t.Errorf("holds run of the open live hold %d succeeded", d.holdID)
			}
		}},
		{"cleanup dormant", func(t *testing.T, d *doors) {
			out, stderr, err := runCLI(t, d.env(), "cleanup", "dormant", "--no-login", "--db", d.db, "--config", d.cfg,
				"--out", filepath.Join(t.TempDir(), "cleanup"))
			if err != nil && !needsPerson(err) {
				t.Fatalf("cleanup dormant: %v\n%s\n%s", err, out, stderr)
			}
			if n := len(d.lms.Snapshot()); n != 16 {
				t.Errorf("cleanup dormant changed the LMS before anyone approved: %d accounts, want 16", n)
			}
		}},
		{"erase", func(t *testing.T, d *doors) {
			out, stderr, err := runCLI(t, d.env(), "erase", "--worker", "hr:w12", "--reason", "DSR-1", "--by", "dpo",
				"--db", d.db, "--config", d.cfg)
			if err != nil {
				t.Fatalf("erase: %v\n%s\n%s", err, out, stderr)
			}
			if d.hasAccount("w12") {
				t.Error("erase left w12's account active")
			}
		}},
		{"feed offboard", func(t *testing.T, d *doors) {
			out, stderr, err := runCLI(t, d.env(), "feed", "offboard", "--by", "admin", "--reason", "contract ended",
				"--db", d.db, "--config", d.cfg, "--out", filepath.Join(t.TempDir(), "offboard"), "partner-acme")
			if err != nil && !needsPerson(err) {
				t.Fatalf("feed offboard: %v\n%s\n%s", err, out, stderr)
			}
			if n := len(d.lms.Snapshot()); n != 16 {
				t.Errorf("feed offboard changed the LMS before anyone approved: %d accounts, want 16", n)
			}
		}},
		{"dead replay", func(t *testing.T, d *doors) {
			// A leave of a held worker, dead-lettered earlier, replayed: it is
			// recorded, and it removes nothing around the hold.
			e := events.Event{Feed: "hr", Kind: connector.KindLeft, ID: "late-leave", Source: "/feeds/hr", Time: time.Now().UTC(),
				Data: events.Data{WorkerID: "w06", Effective: time.Now().UTC().Format(time.DateOnly)}}
			msg, err := events.Encode(e, events.Binary)
			if err != nil {
				t.Fatal(err)
			}
			db := openStore(t, d.db)
			id, err := db.DeadLetter(t.Context(), connector.DeadLetter{At: time.Now(), Feed: "hr", Subject: msg.Subject,
				Headers: events.HeadersJSON(msg.Header), Data: msg.Data, Reason: "field \"feed\": undeclared feed \"hr\""})
			if err != nil {
				t.Fatal(err)
			}
			out, stderr, err := runCLI(t, d.env(), "dead", "replay", "--db", d.db, "--config", d.cfg, fmt.Sprint(id))
			if err != nil {
				t.Fatalf("dead replay: %v\n%s\n%s", err, out, stderr)
			}
		}},
		{"roster upload", func(t *testing.T, d *doors) {
			// A truncated roster: 1 of partner-acme's 4 people. Held whole.
			roster := filepath.Join(t.TempDir(), "acme.csv")
			if err := os.WriteFile(roster, []byte("worker_id,email,given_name,family_name,effective\np1,p1@partner-acme.example,Given,p1,2026-01-05\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			out, stderr, err := runCLI(t, d.env(), "roster", "upload", "--feed", "partner-acme", "--db", d.db, "--config", d.cfg,
				"--nats-url", startNATS(t), roster)
			if !needsPerson(err) {
				t.Fatalf("roster upload: %v\n%s\n%s", err, out, stderr)
			}
			if !strings.Contains(out+stderr, "held") {
				t.Errorf("the truncated roster was not held:\n%s\n%s", out, stderr)
			}
		}},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			for _, c := range commands {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					d := newDoors(t, b.url(t))
					before := d.lms.refused()
					c.run(t, d)
					d.check(t, c.name)
					if c.name != "holds run" && c.name != "dead replay" && c.name != "roster upload" && d.lms.refused() == before {
						t.Errorf("%s made no call to the rate-limited LMS: it cannot have shown that it goes through the guard", c.name)
					}
				})
			}
		})
	}
}
