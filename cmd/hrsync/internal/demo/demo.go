// Package demo plays one seeded season of a seasonal resort through the real
// path of a running hrsync ("hrsync demo"): hires (some future-dated), training,
// seasonal leavers (some at 18:00 Berlin time), temps backfilled out of order, a
// withdrawn notice, rehires (some with a new email, some under a new worker id),
// duplicate redeliveries and malformed events, with simulated time moving from
// phase to phase. It then checks the LMS against what the season implies and
// reports the results (Result).
//
// It is the use case only: it serves the sandbox LMS over SCIM on a loopback port
// and keeps the simulated clock, and it takes the running hrsync from the caller
// (Config.Open returns a Runtime: publishing to JetStream, the consumer's and the
// converger's progress, the store's counts and holds). cmd/hrsync parses the
// flags and starts the stack.
package demo

import (
	"cmp"
	"context"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/app"
	"github.com/hrsync/hrsync/cmd/hrsync/internal/flavor"
	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/events"
	"github.com/hrsync/hrsync/store"
)

// Result is what the demo reports; "hrsync demo --json" prints it as one line.
type Result struct {
	Hired                int      `json:"hired"`
	Left                 int      `json:"left"`
	Rehired              int      `json:"rehired"`
	RehiredNewEmail      int      `json:"rehired_new_email"`
	RehiredNewWorkerID   int      `json:"rehired_new_worker_id"`
	FutureDatedHires     int      `json:"future_dated_hires"`
	BackfilledTemps      int      `json:"backfilled_temps"`
	NoticesWithdrawn     int      `json:"notices_withdrawn"`
	Duplicates           int      `json:"duplicates_published"`
	EventsPublished      int      `json:"events_published"`
	AccountsCreated      int      `json:"accounts_created"`
	AccountsDeactivated  int      `json:"accounts_deactivated"`
	AccountsReactivated  int      `json:"accounts_reactivated"`
	AccountsActive       int      `json:"accounts_active"`
	AccountsInactive     int      `json:"accounts_inactive"`
	DuplicateAccounts    int      `json:"duplicate_accounts"`
	RehiresHistoryIntact int      `json:"rehires_history_intact"`
	DeadLettered         int      `json:"dead_lettered"`
	Reviews              int      `json:"review_items"`
	Held                 int      `json:"held"`
	HoldsApproved        int      `json:"holds_approved"`
	Seconds              float64  `json:"seconds"`
	OK                   bool     `json:"ok"`
	Failures             []string `json:"failures,omitempty"`
}

// person is one member of the demo organisation, with what the season does to them.
type person struct {
	id, email, given, family, number, unit, title string
	hireEff                                       string
	future                                        bool
	leaves, leaveEvening, withdrawn               bool
	rehire                                        string // "", "same", "email", "newid"
	rehireID, rehireEmail                         string
	accountID                                     string // the account first created
}

// Store is what the demo reads of and decides in the store. Implemented by *store.DB.
type Store interface {
	// Links returns every worker's account id.
	Links(ctx context.Context) (map[connector.WorkerKey]string, error)
	// Counts returns the store's counts (facts, dead letters, open reviews, ...).
	Counts(ctx context.Context) (store.Counts, error)
	// ListHolds returns the holds that f selects.
	ListHolds(ctx context.Context, f store.HoldFilter) ([]connector.Hold, error)
	// DecideHold approves or rejects an open hold, as "hrsync holds approve" does.
	DecideHold(ctx context.Context, id int64, d connector.HoldDecision) (connector.Hold, error)
	// ListDeadLetters returns the dead letters that f selects.
	ListDeadLetters(ctx context.Context, f store.DeadLetterFilter) ([]connector.DeadLetter, error)
}

// Runtime is the running hrsync the season plays through: JetStream, the
// consumer recording into the store, and the converger. cmd/hrsync implements it
// over its stack.
type Runtime interface {
	// Publish sends e through JetStream in mode (with JetStream's message id).
	Publish(ctx context.Context, e events.Event, mode events.Mode) error
	// PublishMsg sends msg through JetStream as it is.
	PublishMsg(ctx context.Context, msg *nats.Msg) error
	// Drained reports whether every feed's consumer has delivered everything and
	// holds no unacknowledged message.
	Drained(ctx context.Context) bool
	// Drain converges until nothing is due at the clock's now, in at most
	// maxPasses passes (connector.Converger.Drain).
	Drain(ctx context.Context, maxPasses int) (int, error)
	// Store is the store the consumer records into.
	Store() Store
	// SettlePeriod is how long the safeguard gathers removals into one burst.
	SettlePeriod() time.Duration
	// Close stops the consumer and releases everything.
	Close()
}

// Parts are what the demo brings to the hrsync it runs: the LMS settings that
// reach the sandbox through the flavor's API (the caller opens the adapter that
// lms.type names, behind the guard, as for any LMS), the feeds (hr, in Berlin
// time) and the simulated clock.
type Parts struct {
	LMS   app.LMSSettings
	Feeds connector.Feeds
	Now   func() time.Time
}

// Config says how to play the season.
type Config struct {
	// Out receives the phases and the summary.
	Out io.Writer
	// People is how many seasonal staff are hired (20 to 20000).
	People int
	// Seed seeds the season's randomness.
	Seed uint64
	// Open starts hrsync on the parts and its consumer; the demo closes it.
	Open func(ctx context.Context, p Parts) (Runtime, error)
	// LMS names the API the sandbox LMS is spoken to with (flavor.Names;
	// default scim).
	LMS string
}

type demo struct {
	out    io.Writer
	rng    *rand.Rand
	people int

	clock       clock
	rt          Runtime
	db          Store
	sb          *sandbox.LMS
	flavor      flavor.Flavor
	seq         int
	res         Result
	bad         int
	deadReasons []string
	berlin      *time.Location
	failures    []string
}

// Play runs the season through the hrsync that cfg.Open starts, writes its
// phases and summary to cfg.Out and returns the checked results. An error means
// the season could not be played; failed expectations are in the Result (OK false).
func Play(ctx context.Context, cfg Config) (Result, error) {
	if cfg.People < 20 || cfg.People > 20000 {
		return Result{}, fmt.Errorf("people %d: want 20 to 20000", cfg.People)
	}
	if cfg.Open == nil {
		return Result{}, errors.New("demo: Config.Open is required")
	}
	out := cfg.Out
	if out == nil {
		out = io.Discard
	}
	fl, err := flavor.Get(cmp.Or(cfg.LMS, "scim"))
	if err != nil {
		return Result{}, err
	}
	d := &demo{out: out, rng: rand.New(rand.NewPCG(cfg.Seed, 42)), people: cfg.People, flavor: fl}
	res, err := d.play(ctx, cfg.Open)
	if err != nil {
		return res, err
	}
	d.printSummary(res)
	return res, nil
}

// clock is the simulated time the whole pipeline reads.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }
func (d *demo) at(s string) time.Time {
	t, _ := time.ParseInLocation("2006-01-02 15:04", s, d.berlin)
	return t
}
func (d *demo) expect(ok bool, f string, args ...any) {
	if !ok {
		d.failures = append(d.failures, fmt.Sprintf(f, args...))
	}
}

var (
	givenNames  = []string{"Anna", "Ben", "Clara", "David", "Elif", "Felix", "Greta", "Hamid", "Ines", "Jonas", "Katrin", "Luca", "Mira", "Nils", "Olga", "Paul", "Rosa", "Sven", "Tara", "Umut", "Vera", "Wim", "Yara", "Zoe"}
	familyNames = []string{"Berger", "Hofer", "Huber", "Kaiser", "Lang", "Maier", "Novak", "Ortner", "Pichler", "Rainer", "Schmid", "Steiner", "Wagner", "Weber", "Winkler", "Yilmaz"}
	units       = []string{"Front Office", "Housekeeping", "Kitchen", "Ski School", "Spa", "Maintenance"}
)

// play runs the season and returns the checked results.
func (d *demo) play(ctx context.Context, open func(context.Context, Parts) (Runtime, error)) (Result, error) {
	start := time.Now()
	d.berlin, _ = time.LoadLocation("Europe/Berlin")
	if d.berlin == nil {
		return d.res, fmt.Errorf("time zone database has no Europe/Berlin")
	}
	d.clock.Set(d.at("2026-04-01 08:00"))

	// The sandbox LMS, served over SCIM on a loopback port, spoken to by the real client.
	d.sb = sandbox.New(append([]sandbox.Option{sandbox.WithClock(d.clock.Now)}, d.flavor.Sandbox...)...)
	token := crand.Text()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return d.res, err
	}
	srv := &http.Server{Handler: d.flavor.Handler(d.sb, token), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	lmsURL := "http://" + ln.Addr().String() + d.flavor.Path
	lms := d.flavor.LMS(lmsURL, token)

	hr := connector.DefaultFeed("hr", connector.FeedHR)
	hr.Location = d.berlin
	feeds, err := connector.NewFeeds(hr)
	if err != nil {
		return d.res, err
	}
	d.rt, err = open(ctx, Parts{LMS: lms, Feeds: feeds, Now: d.clock.Now})
	if err != nil {
		return d.res, err
	}
	defer d.rt.Close()
	d.db = d.rt.Store()

	fmt.Fprintf(d.out, "hrsync demo: a season at a resort, %d seasonal staff, sandbox LMS (%s) at %s\n\n", d.people, d.flavor.Name, lmsURL)
	staff := d.cast()
	if err := d.season(ctx, staff); err != nil {
		return d.res, err
	}
	d.check(ctx, staff)
	d.res.Seconds = math.Round(time.Since(start).Seconds()*100) / 100
	d.res.Failures = d.failures
	d.res.OK = len(d.failures) == 0
	return d.res, nil
}

// cast invents the staff and decides what the season does to each.
func (d *demo) cast() []*person {
	staff := make([]*person, d.people)
	for i := range staff {
		g, f := givenNames[d.rng.IntN(len(givenNames))], familyNames[d.rng.IntN(len(familyNames))]
		p := &person{
			id: fmt.Sprintf("w-%04d", i+1), given: g, family: f, number: fmt.Sprintf("E%05d", 10000+i),
			email: strings.ToLower(fmt.Sprintf("%s.%s.%d@resort.example", g, f, i+1)),
			unit:  units[d.rng.IntN(len(units))], title: "Seasonal associate", hireEff: "2026-04-01",
		}
		if d.rng.IntN(10) == 0 {
			p.future, p.hireEff = true, "2026-04-06" // next Monday
		}
		if d.rng.IntN(5) < 2 { // 40% are seasonal leavers
			p.leaves = true
			p.leaveEvening = d.rng.IntN(4) == 0
			if d.rng.IntN(2) == 0 { // half of the leavers come back next spring
				switch r := d.rng.IntN(10); {
				case r < 6:
					p.rehire, p.rehireID, p.rehireEmail = "same", p.id, p.email
				case r < 8:
					p.rehire, p.rehireID, p.rehireEmail = "email", p.id, strings.Replace(p.email, "@", ".new@", 1)
				default:
					p.rehire, p.rehireID, p.rehireEmail = "newid", p.id+"-r", strings.Replace(p.email, "@", ".2027@", 1)
				}
			}
		}
		staff[i] = p
	}
	// One leaver withdraws their notice: never deactivated.
	for _, p := range staff {
		if p.leaves && p.rehire == "" {
			p.withdrawn = true
			break
		}
	}
	return staff
}

// season publishes the phases, moving simulated time and converging after each.
func (d *demo) season(ctx context.Context, staff []*person) error {
	// Spring: hires, 10% future-dated to next Monday, a few redelivered twice.
	d.phase("2026-04-01", "hires published; future-dated ones wait for their day")
	for _, p := range staff {
		e := d.event(connector.KindHired, p.id, p.hireEff, d.profile(p, p.email))
		if err := d.publish(ctx, e, d.rng.IntN(15) == 0); err != nil {
			return err
		}
		d.res.Hired++
		if p.future {
			d.res.FutureDatedHires++
		}
	}
	if err := d.settle(ctx); err != nil {
		return err
	}
	early := d.sb.Count()
	d.expect(early == d.res.Hired-d.res.FutureDatedHires, "on 1 April %d accounts exist, want %d (future-dated hires must wait)", early, d.res.Hired-d.res.FutureDatedHires)
	d.report("accounts on 1 April: %d (%d future-dated hires waiting)", early, d.res.FutureDatedHires)

	d.clock.Set(d.at("2026-04-06 07:00"))
	d.phase("2026-04-06", "Monday: the future-dated hires come due")
	if err := d.settle(ctx); err != nil {
		return err
	}
	d.report("accounts on 6 April: %d", d.sb.Count())

	// Summer: everyone is enrolled; the people who will come back complete courses.
	d.clock.Set(d.at("2026-08-15 10:00"))
	d.phase("2026-08-15", "summer: training in the LMS")
	links, err := d.db.Links(ctx)
	if err != nil {
		return err
	}
	for _, p := range staff {
		p.accountID = links[connector.WorkerKey{Feed: "hr", WorkerID: p.id}]
		if p.accountID == "" {
			d.expect(false, "%s has no account after the hires", p.id)
			continue
		}
		if err := d.sb.Enroll(p.accountID, "safety-101", d.at("2026-04-10 09:00")); err != nil {
			return err
		}
		if p.rehire != "" {
			_ = d.sb.CompleteCourse(p.accountID, "safety-101", d.at("2026-05-02 16:00"))
			_ = d.sb.CompleteCourse(p.accountID, "guest-service-201", d.at("2026-07-20 11:30"))
		}
	}
	d.report("completions recorded for the %d people who will return", d.countRehires(staff))

	// Autumn: end-of-season notices, published two weeks ahead; temps backfilled
	// with their leave arriving before their hire; malformed events.
	d.clock.Set(d.at("2026-10-15 09:00"))
	d.phase("2026-10-15", "notices for 31 October; temps backfilled out of order; bad events")
	for _, p := range staff {
		if !p.leaves {
			continue
		}
		eff := "2026-10-31"
		if p.leaveEvening {
			eff = "2026-10-31T18:00:00+01:00"
		}
		e := d.event(connector.KindLeft, p.id, eff, connector.Profile{})
		e.Data.Reason = "end of season"
		if err := d.publish(ctx, e, d.rng.IntN(10) == 0); err != nil {
			return err
		}
		d.res.Left++
	}
	temps := max(5, d.people/30)
	for i := range temps {
		t := &person{id: fmt.Sprintf("t-%03d", i+1), given: "Temp", family: fmt.Sprintf("Worker%d", i+1),
			email: fmt.Sprintf("temp.%d@resort.example", i+1), unit: "Kitchen", title: "Temp"}
		leave := d.event(connector.KindLeft, t.id, "2026-08-31", connector.Profile{})
		hire := d.event(connector.KindHired, t.id, "2026-07-01", d.profile(t, t.email))
		leave.Time = hire.Time.Add(time.Hour) // the leave happened later, but arrives first
		if err := d.publish(ctx, leave, false); err != nil {
			return err
		}
		if err := d.publish(ctx, hire, false); err != nil {
			return err
		}
		d.res.BackfilledTemps++
	}
	if err := d.publishMalformed(ctx); err != nil {
		return err
	}
	if err := d.settle(ctx); err != nil {
		return err
	}
	d.report("nobody deactivated yet: %d deactivations before 31 October", d.opCount(sandbox.OpDeactivate))
	d.expect(d.opCount(sandbox.OpDeactivate) == 0, "a leave dated 31 October deactivated someone on 15 October")

	d.clock.Set(d.at("2026-10-20 09:00"))
	d.phase("2026-10-20", "a notice is withdrawn: HR records that the person stays on")
	for _, p := range staff {
		if p.withdrawn {
			e := d.event(connector.KindRehired, p.id, "2026-10-31", d.profile(p, p.email))
			if err := d.publish(ctx, e, false); err != nil {
				return err
			}
			d.res.NoticesWithdrawn++
		}
	}
	if err := d.settle(ctx); err != nil {
		return err
	}

	d.clock.Set(d.at("2026-10-31 12:00"))
	d.phase("2026-10-31 12:00", "bare-date leaves took effect at midnight Berlin time")
	if err := d.settle(ctx); err != nil {
		return err
	}
	evening := 0
	for _, p := range staff {
		if p.leaves && p.leaveEvening && !p.withdrawn {
			evening++
		}
	}
	d.report("deactivated by noon: %d; still active until 18:00: %d", d.opCount(sandbox.OpDeactivate), evening)
	if err := d.approveHolds(ctx); err != nil {
		return err
	}
	d.expect(d.res.HoldsApproved > 0, "the end-of-season leavers crossed no safeguard threshold; want a hold")
	d.clock.Set(d.at("2026-10-31 18:00"))
	d.phase("2026-10-31 18:00", "the evening leaves take effect at the instant")
	if err := d.settle(ctx); err != nil {
		return err
	}
	if err := d.approveHolds(ctx); err != nil {
		return err
	}
	d.report("deactivated: %d", d.opCount(sandbox.OpDeactivate))

	// Spring again: rehires, some with a new email, some under a new worker id.
	d.clock.Set(d.at("2027-03-15 09:00"))
	d.phase("2027-03-15", "rehires for 1 April published")
	for _, p := range staff {
		if p.rehire == "" {
			continue
		}
		e := d.event(connector.KindRehired, p.rehireID, "2027-04-01", d.profile(p, p.rehireEmail))
		if p.rehire == "newid" {
			e.Data.PreviousWorkerID = p.id
			e.Data.EmployeeNumber = ""
			d.res.RehiredNewWorkerID++
		}
		if p.rehire == "email" {
			d.res.RehiredNewEmail++
		}
		if err := d.publish(ctx, e, d.rng.IntN(8) == 0); err != nil {
			return err
		}
		d.res.Rehired++
	}
	if err := d.settle(ctx); err != nil {
		return err
	}
	d.expect(d.opCount(sandbox.OpActivate) == 0, "a rehire dated 1 April reactivated someone in March")
	d.clock.Set(d.at("2027-04-01 08:00"))
	d.phase("2027-04-01", "the rehires come due")
	return d.settle(ctx)
}

// approveHolds shows the open holds and approves them as an admin would (after
// looking at the list: here, the expected end-of-season leavers), then converges
// the released deactivations.
func (d *demo) approveHolds(ctx context.Context) error {
	holds, err := d.db.ListHolds(ctx, store.HoldFilter{Status: connector.HoldOpen})
	if err != nil {
		return err
	}
	for _, h := range holds {
		d.res.Held += h.Counts.Removals
		d.report("safeguard: hold %d keeps %d deactivations back: %s", h.ID, h.Counts.Removals, h.Reason)
		d.report("an admin checks the list (hrsync holds show %d) and approves:", h.ID)
		const by, why = "demo-admin", "expected end-of-season leavers"
		d.report("  hrsync holds approve %d --by %s --reason %q", h.ID, by, why)
		if _, err := d.db.DecideHold(ctx, h.ID, connector.HoldDecision{Approve: true, By: by, Reason: why}); err != nil {
			return err
		}
		d.res.HoldsApproved++
	}
	if len(holds) == 0 {
		return nil
	}
	if err := d.settle(ctx); err != nil {
		return err
	}
	d.report("after the approval: %d deactivated", d.opCount(sandbox.OpDeactivate))
	return nil
}

// check compares the LMS with what the season implies.
func (d *demo) check(ctx context.Context, staff []*person) {
	snap := d.sb.Snapshot()
	byID := map[string]sandbox.AccountRecord{}
	byExt := map[string][]string{}
	for _, r := range snap {
		byID[r.Account.ID] = r
		byExt[r.Account.ExternalID] = append(byExt[r.Account.ExternalID], r.Account.ID)
	}
	expectedAccounts := len(staff) + d.res.BackfilledTemps
	d.res.DuplicateAccounts = max(0, len(snap)-expectedAccounts)
	d.expect(len(snap) == expectedAccounts, "the LMS has %d accounts, want %d: one per person", len(snap), expectedAccounts)
	for ext, ids := range byExt {
		d.expect(len(ids) == 1, "externalId %q is on %d accounts", ext, len(ids))
	}
	for _, p := range staff {
		final := p.id
		if p.rehire != "" {
			final = p.rehireID
		}
		ids := byExt["hr:"+final]
		if len(ids) != 1 {
			d.expect(false, "%s: %d accounts with externalId hr:%s", p.id, len(ids), final)
			continue
		}
		acct := byID[ids[0]]
		wantActive := !p.leaves || p.withdrawn || p.rehire != ""
		d.expect(acct.Account.Active == wantActive, "%s: account active=%v, want %v", p.id, acct.Account.Active, wantActive)
		if p.rehire == "" {
			continue
		}
		same := acct.Account.ID == p.accountID
		d.expect(same, "%s rehired (%s): account %s, want the original %s", p.id, p.rehire, acct.Account.ID, p.accountID)
		d.expect(strings.EqualFold(acct.Account.Profile.Email, p.rehireEmail), "%s: email %q, want %q", p.id, acct.Account.Profile.Email, p.rehireEmail)
		done := 0
		for _, c := range acct.Training.Completions {
			if c.Course == "safety-101" || c.Course == "guest-service-201" {
				done++
			}
		}
		if same && done == 2 {
			d.res.RehiresHistoryIntact++
		} else {
			d.expect(false, "%s: %d of 2 completions survived the rehire", p.id, done)
		}
	}
	for i := range d.res.BackfilledTemps {
		ids := byExt[fmt.Sprintf("hr:t-%03d", i+1)]
		d.expect(len(ids) == 1 && !byID[ids[0]].Account.Active, "temp t-%03d: want one inactive account, got %v", i+1, ids)
	}
	for _, r := range snap {
		if r.Account.Active {
			d.res.AccountsActive++
		} else {
			d.res.AccountsInactive++
		}
	}
	d.res.AccountsCreated = d.opCount(sandbox.OpCreate)
	d.res.AccountsDeactivated = d.opCount(sandbox.OpDeactivate)
	d.res.AccountsReactivated = d.opCount(sandbox.OpActivate)
	leavers := d.res.Left - d.res.NoticesWithdrawn
	d.expect(d.res.AccountsCreated == expectedAccounts, "%d accounts created, want %d", d.res.AccountsCreated, expectedAccounts)
	d.expect(d.res.AccountsDeactivated == leavers, "%d deactivations, want %d (each leaver once; the withdrawn notice never)", d.res.AccountsDeactivated, leavers)
	d.expect(d.res.AccountsReactivated == d.res.Rehired, "%d reactivations, want %d", d.res.AccountsReactivated, d.res.Rehired)
	d.expect(d.res.RehiresHistoryIntact == d.res.Rehired, "%d of %d rehires kept their training", d.res.RehiresHistoryIntact, d.res.Rehired)

	if c, err := d.db.Counts(ctx); err != nil {
		d.expect(false, "store counts: %v", err)
	} else {
		d.res.DeadLettered, d.res.Reviews = c.DeadLetters, c.OpenReviews
	}
	if dls, err := d.db.ListDeadLetters(ctx, store.DeadLetterFilter{Limit: 20}); err == nil {
		for _, dl := range dls {
			d.deadReasons = append(d.deadReasons, dl.Reason)
		}
	}
	d.expect(d.res.DeadLettered == d.bad, "%d dead letters, want %d (every malformed event)", d.res.DeadLettered, d.bad)
	d.expect(d.res.Reviews == 0, "%d review items, want 0", d.res.Reviews)
}

func (d *demo) countRehires(staff []*person) int {
	n := 0
	for _, p := range staff {
		if p.rehire != "" {
			n++
		}
	}
	return n
}

// opCount counts the LMS's operations of kind k. A deactivation at the very
// instant of the account's creation is how an LMS that cannot create inactive
// accounts (Moodle creates users active) makes one: part of the create, not a
// deactivation.
func (d *demo) opCount(k sandbox.OpKind) int {
	n := 0
	created := map[string]time.Time{}
	for _, op := range d.sb.Ops() {
		if op.Kind == sandbox.OpCreate {
			created[op.AccountID] = op.At
		}
		if op.Kind == k && (k != sandbox.OpDeactivate || !op.At.Equal(created[op.AccountID])) {
			n++
		}
	}
	return n
}

func (d *demo) profile(p *person, email string) connector.Profile {
	return connector.Profile{Email: email, GivenName: p.given, FamilyName: p.family, EmployeeNumber: p.number,
		OrgUnit: p.unit, JobTitle: p.title, Locale: "de-AT"}
}

// event builds a contract-v1 event stamped with the simulated time.
func (d *demo) event(kind connector.Kind, worker, effective string, pr connector.Profile) events.Event {
	d.seq++
	return events.Event{Feed: "hr", Kind: kind, ID: fmt.Sprintf("demo-%05d", d.seq), Source: "/feeds/hr",
		Time: d.clock.Now().UTC(),
		Data: events.Data{WorkerID: worker, Email: pr.Email, GivenName: pr.GivenName, FamilyName: pr.FamilyName,
			EmployeeNumber: pr.EmployeeNumber, OrgUnit: pr.OrgUnit, JobTitle: pr.JobTitle, Locale: pr.Locale,
			Effective: effective}}
}

// publish sends e through JetStream, alternating binary and structured mode. A
// duplicate is sent again without JetStream's message id, as a redelivery from the
// source would be, so that the store's (source, id) dedupe must catch it.
func (d *demo) publish(ctx context.Context, e events.Event, duplicate bool) error {
	mode := events.Binary
	if d.seq%2 == 0 {
		mode = events.Structured
	}
	if err := d.rt.Publish(ctx, e, mode); err != nil {
		return fmt.Errorf("publish %s: %w", e.ID, err)
	}
	d.res.EventsPublished++
	if duplicate {
		msg, err := events.Encode(e, mode)
		if err != nil {
			return err
		}
		msg.Header.Del(jetstream.MsgIDHeader)
		if err := d.rt.PublishMsg(ctx, msg); err != nil {
			return err
		}
		d.res.Duplicates++
		d.res.EventsPublished++
	}
	return nil
}

// publishMalformed sends events that break the contract in different ways.
func (d *demo) publishMalformed(ctx context.Context) error {
	valid := func() []byte {
		m, _ := events.Encode(d.event(connector.KindHired, "w-bad", "2026-10-15", connector.Profile{Email: "bad@resort.example"}), events.Structured)
		return m.Data
	}
	edit := func(f func(map[string]any)) []byte {
		var m map[string]any
		_ = json.Unmarshal(valid(), &m)
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	bad := []struct {
		subject string
		data    []byte
	}{
		{"hrsync.events.hr.hired", []byte("this is not json")},
		{"hrsync.events.hr.hired", edit(func(m map[string]any) { delete(m["data"].(map[string]any), "email") })},
		{"hrsync.events.hr.hired", edit(func(m map[string]any) { m["subject"] = "w-someone-else" })},
		{"hrsync.events.hr.hired", edit(func(m map[string]any) { m["type"] = "hrsync.worker.hired.v2" })},
		{"hrsync.events.hr.left", valid()}, // the subject says left, the type hired
		{"hrsync.events.hr.hired", edit(func(m map[string]any) { m["data"].(map[string]any)["effective"] = "2026-02-30" })},
		{"hrsync.events.hr.hired", edit(func(m map[string]any) { m["source"] = "/feeds/somewhere-else" })},
	}
	for _, b := range bad {
		msg := nats.NewMsg(b.subject)
		msg.Header.Set("Content-Type", "application/cloudevents+json")
		msg.Data = b.data
		if err := d.rt.PublishMsg(ctx, msg); err != nil {
			return err
		}
		d.bad++
		d.res.EventsPublished++
	}
	return nil
}

// settle waits until JetStream has delivered and the store recorded everything
// published, then converges until nothing is due at the simulated now. Removals
// gather in a burst for the safeguard's settle period before it judges them
// whole, so the simulated clock then moves on by that period, and the burst is
// converged too.
func (d *demo) settle(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	// Every distinct message published ends as a fact or a dead letter; the
	// consumer's counters alone have been seen at zero under load while a batch
	// was still on its way, so the store's counts are checked too.
	want := d.res.EventsPublished - d.res.Duplicates
	stored := 0
	for {
		if d.rt.Drained(ctx) {
			{
				c, err := d.db.Counts(ctx)
				if stored = c.Facts + c.DeadLetters; err == nil && stored >= want {
					break
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("events not consumed within 30s: %d of %d messages stored", stored, want)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	if _, err := d.rt.Drain(ctx, 10000); err != nil {
		return err
	}
	settling, err := d.db.ListHolds(ctx, store.HoldFilter{Status: connector.HoldSettling})
	if err != nil || len(settling) == 0 {
		return err
	}
	d.clock.Set(d.clock.Now().Add(d.rt.SettlePeriod()))
	_, err = d.rt.Drain(ctx, 10000)
	return err
}

func (d *demo) phase(when, what string) {
	fmt.Fprintf(d.out, "── %-17s %s\n", when, what)
}

func (d *demo) report(f string, args ...any) {
	fmt.Fprintf(d.out, "   %s\n", fmt.Sprintf(f, args...))
}

func (d *demo) printSummary(r Result) {
	w := d.out
	fmt.Fprintf(w, "\nSeason summary (%.1fs)\n", r.Seconds)
	fmt.Fprintf(w, "  events published   %5d  (%d duplicate redeliveries, %d malformed)\n", r.EventsPublished, r.Duplicates, d.bad)
	fmt.Fprintf(w, "  hired              %5d  (%d future-dated, %d temps backfilled out of order)\n", r.Hired, r.FutureDatedHires, r.BackfilledTemps)
	fmt.Fprintf(w, "  left               %5d  (%d notice withdrawn)\n", r.Left, r.NoticesWithdrawn)
	fmt.Fprintf(w, "  rehired            %5d  (%d with a new email, %d under a new worker id)\n", r.Rehired, r.RehiredNewEmail, r.RehiredNewWorkerID)
	fmt.Fprintf(w, "  LMS accounts       %5d created, %d deactivated, %d reactivated; now %d active, %d inactive\n",
		r.AccountsCreated, r.AccountsDeactivated, r.AccountsReactivated, r.AccountsActive, r.AccountsInactive)
	fmt.Fprintf(w, "  duplicate accounts %5d\n", r.DuplicateAccounts)
	fmt.Fprintf(w, "  rehires with their training intact: %d of %d\n", r.RehiresHistoryIntact, r.Rehired)
	fmt.Fprintf(w, "  held by safeguard  %5d  deactivations, in %d hold(s) an admin approved\n", r.Held, r.HoldsApproved)
	fmt.Fprintf(w, "  dead-lettered      %5d  kept with the raw message and a reason naming the field:\n", r.DeadLettered)
	for _, reason := range d.deadReasons {
		fmt.Fprintf(w, "                            - %s\n", reason)
	}
	if r.OK {
		fmt.Fprintln(w, "\nOK: every expectation held.")
		return
	}
	fmt.Fprintf(w, "\nFAILED: %d expectation(s):\n", len(r.Failures))
	for _, f := range slices.Clip(r.Failures) {
		fmt.Fprintln(w, "  -", f)
	}
}
