// Package storetest is the conformance suite of the store: every backend passes it.
//
// A backend's test calls Run (and RunConcurrency) with a function that returns an
// empty, migrated store and registers its own teardown with t.Cleanup.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
)

// Store is what the suite exercises: the connector port plus the methods the
// events package and the CLI use. *store.DB implements it.
type Store interface {
	connector.Store
	connector.WorkerClaimer

	RecordFacts(ctx context.Context, facts []connector.Fact) (int, error)
	Facts(ctx context.Context, w connector.WorkerKey) ([]connector.Fact, error)
	Links(ctx context.Context) (map[connector.WorkerKey]string, error)
	Counts(ctx context.Context) (store.Counts, error)

	DeadLetter(ctx context.Context, d connector.DeadLetter) (int64, error)
	ListDeadLetters(ctx context.Context, f store.DeadLetterFilter) ([]connector.DeadLetter, error)
	GetDeadLetter(ctx context.Context, id int64) (connector.DeadLetter, error)
	MarkDeadLetterReplayed(ctx context.Context, id int64, at time.Time) error
	ReplayDeadLetter(ctx context.Context, id int64, fact connector.Fact, by string) (store.DeadLetterReplay, error)
	DiscardDeadLetter(ctx context.Context, id int64, r store.Resolution) (connector.DeadLetter, error)
	NoteDeadLetterReplayFailed(ctx context.Context, id int64, by string, cause error) error
	DeadLetterHistory(ctx context.Context, id int64) ([]store.DeadLetterEvent, error)

	ListReviews(ctx context.Context, f store.ReviewFilter) ([]connector.Review, error)
	GetReview(ctx context.Context, id int64) (connector.Review, error)
	ResolveReview(ctx context.Context, id int64, r store.Resolution) (connector.Review, error)

	ListAudit(ctx context.Context, f store.AuditFilter) ([]connector.AuditEntry, error)
}

var _ Store = (*store.DB)(nil)

// day0 is the first day of the fixtures' calendar.
var day0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func day(n int) time.Time { return day0.AddDate(0, 0, n) }

func key(feed, id string) connector.WorkerKey { return connector.WorkerKey{Feed: feed, WorkerID: id} }

// fact returns a valid fact of kind about worker (feed "hr" unless w says otherwise).
func fact(w connector.WorkerKey, id string, kind connector.Kind, d int) connector.Fact {
	return connector.Fact{
		Feed: w.Feed, WorkerID: w.WorkerID, Source: "/feeds/" + w.Feed, ID: id, Kind: kind,
		Effective: day(d), Time: day(d).Add(-time.Hour),
		Profile: connector.Profile{Email: w.WorkerID + "@example.com"},
	}
}

// testBundle is one test's store and clock.
type testBundle struct {
	ctx context.Context
	s   Store
	// now is a time safely after anything the store clock stamped during setup.
	now time.Time
	// setup makes another bundle, for a case that needs a second fresh store.
	setup func(t *testing.T) *testBundle
}

func setupFunc(newStore func(t *testing.T) Store) func(t *testing.T) *testBundle {
	var setup func(t *testing.T) *testBundle
	setup = func(t *testing.T) *testBundle {
		t.Helper()
		return &testBundle{ctx: t.Context(), s: newStore(t), now: time.Now().Add(time.Minute).Truncate(time.Microsecond), setup: setup}
	}
	return setup
}

// another returns a bundle with a fresh store of its own, registered with t.
func (b *testBundle) another(t *testing.T) *testBundle {
	t.Helper()
	return b.setup(t)
}

func (b *testBundle) record(t *testing.T, facts ...connector.Fact) int {
	t.Helper()
	n, err := b.s.RecordFacts(b.ctx, facts)
	if err != nil {
		t.Fatalf("RecordFacts: %v", err)
	}
	return n
}

func (b *testBundle) claim(t *testing.T, owner string, now time.Time, limit int) []connector.Claim {
	t.Helper()
	cs, err := b.s.ClaimDue(b.ctx, owner, now, time.Minute, limit)
	if err != nil {
		t.Fatalf("ClaimDue(%s): %v", owner, err)
	}
	return cs
}

// claimOne claims and expects exactly worker w.
func (b *testBundle) claimOne(t *testing.T, owner string, now time.Time, w connector.WorkerKey) connector.Claim {
	t.Helper()
	cs := b.claim(t, owner, now, 10)
	if len(cs) != 1 || cs[0].Worker != w {
		t.Fatalf("ClaimDue(%s) = %v, want exactly %s", owner, claimKeys(cs), w)
	}
	return cs[0]
}

func (b *testBundle) complete(t *testing.T, c connector.Completion) {
	t.Helper()
	if err := b.s.Complete(b.ctx, c); err != nil {
		t.Fatalf("Complete(%s): %v", c.Claim.Worker, err)
	}
}

// link claims w, links it to acct and leaves it not due.
func (b *testBundle) link(t *testing.T, w connector.WorkerKey, acct string, release ...string) {
	t.Helper()
	c := b.claimOne(t, "linker", b.now, w)
	b.complete(t, connector.Completion{Claim: c, Owner: "linker", AccountID: acct, ReleasePredecessors: release})
}

func (b *testBundle) nextDue(t *testing.T) (time.Time, bool) {
	t.Helper()
	at, ok, err := b.s.NextDue(b.ctx)
	if err != nil {
		t.Fatalf("NextDue: %v", err)
	}
	return at, ok
}

func (b *testBundle) counts(t *testing.T) store.Counts {
	t.Helper()
	c, err := b.s.Counts(b.ctx)
	if err != nil {
		t.Fatalf("Counts: %v", err)
	}
	return c
}

func claimKeys(cs []connector.Claim) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Worker.String())
	}
	return out
}

func factIDs(fs []connector.Fact) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.ID)
	}
	return out
}

func wantNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, connector.ErrNotFound) {
		t.Fatalf("%s: err = %v, want connector.ErrNotFound", what, err)
	}
}

// coreTests check facts, claims, leases, completion, links, reviews, the audit
// and dead letters.
var coreTests = []subTest{
	{"RecordFactsRoundTrip", testRecordFactsRoundTrip},
	{"FactsCarryRecordedAt", testFactsCarryRecordedAt},
	{"RecordFactsDedupe", testRecordFactsDedupe},
	{"ErrInvalidFactPermanent", testErrInvalidFactPermanent},
	{"ClaimLeaseComplete", testClaimLeaseComplete},
	{"ClaimOrderAndLimit", testClaimOrderAndLimit},
	{"ClaimWorker", testClaimWorker},
	{"LeaseExpiry", testLeaseExpiry},
	{"VersionBumpDuringClaim", testVersionBumpDuringClaim},
	{"NextDueFuture", testNextDueFuture},
	{"Attempts", testAttempts},
	{"Supersession", testSupersession},
	{"SupersessionChain", testSupersessionChain},
	{"PredecessorFactMarksSuccessorDue", testPredecessorFactMarksSuccessorDue},
	{"LinkConflict", testLinkConflict},
	{"ReviewDedupe", testReviewDedupe},
	{"AuditIntents", testAuditIntents},
	{"AuditFilter", testAuditFilter},
	{"DeadLetters", testDeadLetters},
	{"ErrNotFound", testErrNotFound},
	{"Counts", testCounts},
	{"Overview", testOverview},
}

// hr returns the key of worker id of feed "hr".
func hr(id string) connector.WorkerKey { return key("hr", id) }

// subTest is one named case of the suite. run gets a fresh store of its own, so
// cases are independent of each other and of their order.
type subTest struct {
	name string
	run  func(t *testing.T, b *testBundle)
}

// runTests runs each case as a subtest named after it, each on a fresh store
// from setup; parallel cases run in parallel with each other.
func runTests(t *testing.T, setup func(t *testing.T) *testBundle, parallel bool, tests ...[]subTest) {
	t.Helper()
	for _, tc := range slices.Concat(tests...) {
		t.Run(tc.name, func(t *testing.T) {
			if parallel {
				t.Parallel()
			}
			tc.run(t, setup(t))
		})
	}
}

// Run runs the conformance suite. newStore returns an empty, migrated store and
// registers its teardown with t.Cleanup; it is called once per subtest.
func Run(t *testing.T, newStore func(t *testing.T) Store) {
	runTests(t, setupFunc(newStore), true,
		batchTests, successionTests, reconcileTests, holdTests, eraseTests, jobTests, deadLetterTests, endTests, mirrorTests, sessionTests, coreTests)
}

func testRecordFactsRoundTrip(t *testing.T, b *testBundle) {
	w := hr("w1")
	f := fact(w, "e1", connector.KindHired, 0)
	f.Profile = connector.Profile{Email: "Ann@Example.com", GivenName: "Ann", FamilyName: "Lee", EmployeeNumber: "E1",
		OrgUnit: "Sales", JobTitle: "Rep", ManagerID: "m9", Locale: "en-GB"}
	f.Effective = f.Effective.Add(123456 * time.Microsecond)
	l := fact(w, "e2", connector.KindLeft, 5)
	l.Reason = "resigned"
	r := fact(hr("w2"), "e3", connector.KindRehired, 7)
	r.PreviousWorkerID = "w0"
	if n := b.record(t, l, f, r); n != 3 {
		t.Fatalf("recorded %d, want 3", n)
	}
	got, err := b.s.Facts(b.ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	if want := []connector.Fact{f, l}; !factsEqual(got, want) {
		t.Fatalf("Facts(w1) =\n%+v\nwant (fold order)\n%+v", got, want)
	}
	got, err = b.s.Facts(b.ctx, hr("w2"))
	if err != nil {
		t.Fatal(err)
	}
	if !factsEqual(got, []connector.Fact{r}) {
		t.Fatalf("Facts(w2) = %+v, want %+v", got, r)
	}
	if got, err := b.s.Facts(b.ctx, hr("nobody")); err != nil || len(got) != 0 {
		t.Fatalf("Facts(nobody) = %v, %v; want none, nil", got, err)
	}
}

func testFactsCarryRecordedAt(t *testing.T, b *testBundle) {
	w := hr("w1")
	// Effective and event time both lie far in the past: Recorded is the
	// store's own clock, not either of them.
	before := time.Now().Truncate(time.Microsecond)
	b.record(t, fact(w, "e1", connector.KindHired, -400))
	time.Sleep(time.Millisecond) // two batches, two distinct store times
	b.record(t, fact(w, "e2", connector.KindLeft, -300))
	after := time.Now()
	facts, err := b.s.Facts(b.ctx, w)
	if err != nil || len(facts) != 2 {
		t.Fatalf("Facts = %v, %v", facts, err)
	}
	for _, f := range facts {
		if f.Recorded.Location() != time.UTC || f.Recorded.Before(before) || f.Recorded.After(after) {
			t.Fatalf("%s: Recorded = %v, want the store clock between %v and %v, in UTC", f.ID, f.Recorded, before, after)
		}
	}
	if !facts[0].Recorded.Before(facts[1].Recorded) {
		t.Fatalf("e1 recorded %v, e2 recorded %v; want e1 first", facts[0].Recorded, facts[1].Recorded)
	}
	// A Recorded time given on the way in is not the store's to take.
	forged := fact(w, "e3", connector.KindUpdated, -200)
	forged.Recorded = day(-1000)
	b.record(t, forged)
	hs, err := b.s.LoadHistories(b.ctx, []connector.WorkerKey{w})
	if err != nil || len(hs) != 1 || len(hs[0].Facts) != 3 {
		t.Fatalf("LoadHistories = %+v, %v", hs, err)
	}
	for _, f := range hs[0].Facts {
		if f.Recorded.Before(before) {
			t.Fatalf("LoadHistories: %s recorded %v, before the test began", f.ID, f.Recorded)
		}
	}
}

func testRecordFactsDedupe(t *testing.T, b *testBundle) {
	w := hr("w1")
	e1, e2, e3 := fact(w, "e1", connector.KindHired, 0), fact(w, "e2", connector.KindUpdated, 1), fact(w, "e3", connector.KindLeft, 2)
	if n := b.record(t, e1, e2, e1); n != 2 {
		t.Fatalf("first batch recorded %d, want 2 (e1 repeated in the batch)", n)
	}
	if n := b.record(t, e2, e3, e1); n != 1 {
		t.Fatalf("second batch recorded %d, want 1 (only e3 is new)", n)
	}
	if n := b.record(t, e1, e2, e3); n != 0 {
		t.Fatalf("third batch recorded %d, want 0", n)
	}
	// The same id from another source is another fact.
	other := e1
	other.Source = "/feeds/other"
	if n := b.record(t, other); n != 1 {
		t.Fatalf("same id, other source: recorded %d, want 1", n)
	}
	facts, err := b.s.Facts(b.ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	if len(facts) != 4 {
		t.Fatalf("Facts = %v, want 4 facts", factIDs(facts))
	}
	// Version counts recorded facts, so duplicates do not bump it.
	c := b.claimOne(t, "a", b.now, w)
	if c.Version != 4 {
		t.Fatalf("Version = %d, want 4", c.Version)
	}
	if got := b.counts(t); got.Facts != 4 || got.Workers != 1 || got.Due != 1 {
		t.Fatalf("Counts = %+v, want 4 facts, 1 worker, 1 due", got)
	}
	if n := b.record(t); n != 0 {
		t.Fatalf("empty batch recorded %d", n)
	}
}

func testErrInvalidFactPermanent(t *testing.T, b *testBundle) {
	good := fact(hr("w1"), "e1", connector.KindHired, 0)
	for name, mutate := range map[string]func(*connector.Fact){
		"Feed":      func(f *connector.Fact) { f.Feed = "Bad Feed" },
		"WorkerID":  func(f *connector.Fact) { f.WorkerID = "" },
		"Kind":      func(f *connector.Fact) { f.Kind = "promoted" },
		"Effective": func(f *connector.Fact) { f.Effective = time.Time{} },
	} {
		bad := fact(hr("w2"), "bad-"+name, connector.KindHired, 0)
		mutate(&bad)
		n, err := b.s.RecordFacts(b.ctx, []connector.Fact{good, bad})
		if err == nil || !connector.IsPermanent(err) {
			t.Fatalf("%s: RecordFacts err = %v, want a permanent error", name, err)
		}
		if n != 0 {
			t.Fatalf("%s: recorded %d, want 0", name, n)
		}
	}
	if got := b.counts(t); got.Facts != 0 || got.Workers != 0 {
		t.Fatalf("Counts = %+v: an invalid batch must record nothing", got)
	}
}

func testClaimLeaseComplete(t *testing.T, b *testBundle) {
	w := hr("w1")
	b.record(t, fact(w, "e1", connector.KindHired, 0))
	if cs := b.claim(t, "a", time.Now().Add(-time.Hour), 10); len(cs) != 0 {
		t.Fatalf("claim before the due time = %v, want none", claimKeys(cs))
	}
	c := b.claimOne(t, "a", b.now, w)
	if c.Version != 1 || c.Attempts != 0 || !c.LeaseUntil.Equal(b.now.Add(time.Minute)) {
		t.Fatalf("claim = %+v, want version 1, attempts 0, lease until %v", c, b.now.Add(time.Minute))
	}
	if cs := b.claim(t, "b", b.now, 10); len(cs) != 0 {
		t.Fatalf("second owner claimed %v while the lease holds", claimKeys(cs))
	}
	// While leased, the worker is next due when the lease ends.
	if at, ok := b.nextDue(t); !ok || !at.Equal(c.LeaseUntil) {
		t.Fatalf("NextDue = %v, %v; want the lease end %v", at, ok, c.LeaseUntil)
	}
	b.complete(t, connector.Completion{Claim: c, Owner: "a"})
	if at, ok := b.nextDue(t); ok {
		t.Fatalf("NextDue = %v after a completion without NextDue; want none", at)
	}
	if cs := b.claim(t, "b", b.now.Add(time.Hour), 10); len(cs) != 0 {
		t.Fatalf("claimed %v after completion; want none", claimKeys(cs))
	}
	if got := b.counts(t); got.Due != 0 {
		t.Fatalf("Counts.Due = %d, want 0", got.Due)
	}
	if cs := b.claim(t, "a", b.now, 0); len(cs) != 0 {
		t.Fatalf("limit 0 claimed %v", claimKeys(cs))
	}
}

func testClaimOrderAndLimit(t *testing.T, b *testBundle) {
	for i := range 5 {
		w := hr(fmt.Sprintf("w%d", i))
		b.record(t, fact(w, fmt.Sprintf("e%d", i), connector.KindHired, 0))
	}
	// Give each worker its own due time, w4 earliest.
	cs := b.claim(t, "a", b.now, 10)
	if len(cs) != 5 {
		t.Fatalf("claimed %v, want 5", claimKeys(cs))
	}
	for _, c := range cs {
		var n int
		fmt.Sscanf(c.Worker.WorkerID, "w%d", &n)
		b.complete(t, connector.Completion{Claim: c, Owner: "a", NextDue: b.now.Add(time.Duration(10-n) * time.Second)})
	}
	later := b.now.Add(time.Minute)
	got := claimKeys(b.claim(t, "b", later, 2))
	if want := []string{"hr:w4", "hr:w3"}; !slices.Equal(got, want) {
		t.Fatalf("claimed %v, want the two earliest due %v", got, want)
	}
	got = claimKeys(b.claim(t, "b", later, 10))
	if want := []string{"hr:w2", "hr:w1", "hr:w0"}; !slices.Equal(got, want) {
		t.Fatalf("claimed %v, want %v", got, want)
	}
}

func testLeaseExpiry(t *testing.T, b *testBundle) {
	w := hr("w1")
	b.record(t, fact(w, "e1", connector.KindHired, 0))
	a := b.claimOne(t, "a", b.now, w)
	if cs := b.claim(t, "b", b.now.Add(30*time.Second), 10); len(cs) != 0 {
		t.Fatalf("b claimed %v before a's lease expired", claimKeys(cs))
	}
	bc := b.claimOne(t, "b", b.now.Add(2*time.Minute), w)
	if !bc.LeaseUntil.Equal(b.now.Add(3 * time.Minute)) {
		t.Fatalf("b's lease until %v, want %v", bc.LeaseUntil, b.now.Add(3*time.Minute))
	}
	// a completes late: it no longer holds the lease, so b's lease stays.
	b.complete(t, connector.Completion{Claim: a, Owner: "a", NextDue: b.now})
	if cs := b.claim(t, "c", b.now.Add(150*time.Second), 10); len(cs) != 0 {
		t.Fatalf("c claimed %v while b's lease holds; a must not release b's lease", claimKeys(cs))
	}
	b.claimOne(t, "c", b.now.Add(3*time.Minute), w)
}

func testVersionBumpDuringClaim(t *testing.T, b *testBundle) {
	w := hr("w1")
	b.record(t, fact(w, "e1", connector.KindHired, 0))
	c := b.claimOne(t, "a", b.now, w)
	b.record(t, fact(w, "e2", connector.KindLeft, 3))
	b.complete(t, connector.Completion{Claim: c, Owner: "a", NextDue: b.now.Add(24 * time.Hour)})
	at, ok := b.nextDue(t)
	if !ok || at.After(time.Now()) {
		t.Fatalf("NextDue = %v, %v; want due now: a fact arrived during the claim", at, ok)
	}
	c2 := b.claimOne(t, "b", b.now, w)
	if c2.Version != 2 {
		t.Fatalf("Version = %d, want 2", c2.Version)
	}
	// No fact arrived during this claim: NextDue is honoured.
	b.complete(t, connector.Completion{Claim: c2, Owner: "b", NextDue: b.now.Add(24 * time.Hour)})
	if at, ok := b.nextDue(t); !ok || !at.Equal(b.now.Add(24*time.Hour)) {
		t.Fatalf("NextDue = %v, %v; want %v", at, ok, b.now.Add(24*time.Hour))
	}
}

func testNextDueFuture(t *testing.T, b *testBundle) {
	if at, ok := b.nextDue(t); ok {
		t.Fatalf("empty store: NextDue = %v, want none", at)
	}
	w1, w2 := hr("w1"), hr("w2")
	b.record(t, fact(w1, "e1", connector.KindHired, 0), fact(w2, "e2", connector.KindHired, 0))
	due1 := b.now.Add(48*time.Hour + 1234*time.Microsecond)
	due2 := b.now.Add(72 * time.Hour)
	for _, c := range b.claim(t, "a", b.now, 10) {
		next := due2
		if c.Worker == w1 {
			next = due1
		}
		b.complete(t, connector.Completion{Claim: c, Owner: "a", NextDue: next})
	}
	if at, ok := b.nextDue(t); !ok || !at.Equal(due1) {
		t.Fatalf("NextDue = %v, %v; want %v", at, ok, due1)
	}
	if cs := b.claim(t, "a", due1.Add(-time.Microsecond), 10); len(cs) != 0 {
		t.Fatalf("claimed %v a microsecond early", claimKeys(cs))
	}
	b.claimOne(t, "a", due1, w1)
	if got := b.counts(t); got.Due != 2 {
		t.Fatalf("Counts.Due = %d, want 2 (due now or later)", got.Due)
	}
}

func testAttempts(t *testing.T, b *testBundle) {
	w := hr("w1")
	b.record(t, fact(w, "e1", connector.KindHired, 0))
	for want := range 3 {
		c := b.claimOne(t, "a", b.now, w)
		if c.Attempts != want {
			t.Fatalf("Attempts = %d, want %d", c.Attempts, want)
		}
		b.complete(t, connector.Completion{Claim: c, Owner: "a", Failed: true, NextDue: b.now})
	}
	c := b.claimOne(t, "a", b.now, w)
	b.complete(t, connector.Completion{Claim: c, Owner: "a", NextDue: b.now})
	if c := b.claimOne(t, "a", b.now, w); c.Attempts != 0 {
		t.Fatalf("Attempts = %d after a success, want 0", c.Attempts)
	}
}

func testSupersession(t *testing.T, b *testBundle) {
	old, neu := hr("old"), hr("new")
	b.record(t, fact(old, "e1", connector.KindHired, 0), fact(old, "e2", connector.KindLeft, 10))
	b.link(t, old, "acct-1")

	r := fact(neu, "e3", connector.KindRehired, 20)
	r.PreviousWorkerID = "old"
	b.record(t, r)

	h, err := b.s.LoadHistory(b.ctx, neu)
	if err != nil {
		t.Fatal(err)
	}
	if got := factIDs(connector.SortFacts(h.Facts)); !slices.Equal(got, []string{"e1", "e2", "e3"}) {
		t.Fatalf("History(new).Facts = %v, want both workers' facts", got)
	}
	if want := map[string]string{"old": "acct-1"}; !maps.Equal(h.Links, want) {
		t.Fatalf("History(new).Links = %v, want %v", h.Links, want)
	}
	if h.SupersededBy != nil || h.Worker != neu {
		t.Fatalf("History(new) = worker %v superseded by %v; want %v, not superseded", h.Worker, h.SupersededBy, neu)
	}
	ho, err := b.s.LoadHistory(b.ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	if ho.SupersededBy == nil || *ho.SupersededBy != neu {
		t.Fatalf("History(old).SupersededBy = %v, want %v", ho.SupersededBy, neu)
	}
	if got := factIDs(connector.SortFacts(ho.Facts)); !slices.Equal(got, []string{"e1", "e2"}) {
		t.Fatalf("History(old).Facts = %v, want only its own", got)
	}

	// Only the successor is claimable; it takes the predecessor's account over.
	c := b.claimOne(t, "a", b.now, neu)
	b.complete(t, connector.Completion{Claim: c, Owner: "a", AccountID: "acct-1", ReleasePredecessors: []string{"old"}})
	links, err := b.s.Links(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[connector.WorkerKey]string{neu: "acct-1"}; !maps.Equal(links, want) {
		t.Fatalf("Links = %v, want %v", links, want)
	}
	if got, err := b.s.LinkedWorker(b.ctx, "acct-1"); err != nil || got != neu {
		t.Fatalf("LinkedWorker(acct-1) = %v, %v; want %v", got, err, neu)
	}
	if h, err := b.s.LoadHistory(b.ctx, neu); err != nil || !maps.Equal(h.Links, map[string]string{"new": "acct-1"}) {
		t.Fatalf("History(new).Links = %v, %v", h.Links, err)
	}
}

func testSupersessionChain(t *testing.T, b *testBundle) {
	// a -> b -> c, recorded newest first.
	rc := fact(hr("c"), "e3", connector.KindRehired, 20)
	rc.PreviousWorkerID = "b"
	rb := fact(hr("b"), "e2", connector.KindRehired, 10)
	rb.PreviousWorkerID = "a"
	b.record(t, rc)
	b.record(t, rb)
	b.record(t, fact(hr("a"), "e1", connector.KindHired, 0))
	h, err := b.s.LoadHistory(b.ctx, hr("c"))
	if err != nil {
		t.Fatal(err)
	}
	if got := factIDs(connector.SortFacts(h.Facts)); !slices.Equal(got, []string{"e1", "e2", "e3"}) {
		t.Fatalf("History(c).Facts = %v, want the whole chain", got)
	}
	got := claimKeys(b.claim(t, "x", b.now, 10))
	if !slices.Equal(got, []string{"hr:c"}) {
		t.Fatalf("claimed %v, want only the end of the chain", got)
	}
}

func testPredecessorFactMarksSuccessorDue(t *testing.T, b *testBundle) {
	old, neu := hr("old"), hr("new")
	r := fact(neu, "e1", connector.KindRehired, 20)
	r.PreviousWorkerID = "old"
	b.record(t, r)
	c := b.claimOne(t, "a", b.now, neu)
	b.complete(t, connector.Completion{Claim: c, Owner: "a"})
	if at, ok := b.nextDue(t); ok {
		t.Fatalf("NextDue = %v, want none", at)
	}
	// The old worker's history arrives after the rehire.
	b.record(t, fact(old, "e0", connector.KindLeft, 5))
	c2 := b.claimOne(t, "a", b.now, neu)
	if c2.Version <= c.Version {
		t.Fatalf("successor version %d, want more than %d", c2.Version, c.Version)
	}
	// ... also while the successor is leased: Complete must leave it due.
	b.record(t, fact(old, "e00", connector.KindUpdated, 6))
	b.complete(t, connector.Completion{Claim: c2, Owner: "a"})
	b.claimOne(t, "a", b.now, neu)
}

func testLinkConflict(t *testing.T, b *testBundle) {
	w1, w2 := hr("w1"), hr("w2")
	b.record(t, fact(w1, "e1", connector.KindHired, 0))
	b.link(t, w1, "acct-1")
	b.record(t, fact(w2, "e2", connector.KindHired, 0))
	c := b.claimOne(t, "a", b.now, w2)
	err := b.s.Complete(b.ctx, connector.Completion{Claim: c, Owner: "a", AccountID: "acct-1",
		Audit: []connector.AuditEntry{{Action: connector.ActionUpdate, Outcome: connector.OutcomeOK}}})
	if !errors.Is(err, connector.ErrConflict) {
		t.Fatalf("linking w2 to w1's account: err = %v, want ErrConflict", err)
	}
	// Releasing a worker that is not the holder does not help either.
	err = b.s.Complete(b.ctx, connector.Completion{Claim: c, Owner: "a", AccountID: "acct-1", ReleasePredecessors: []string{"w9"}})
	if !errors.Is(err, connector.ErrConflict) {
		t.Fatalf("err = %v, want ErrConflict", err)
	}
	links, err := b.s.Links(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[connector.WorkerKey]string{w1: "acct-1"}; !maps.Equal(links, want) {
		t.Fatalf("Links = %v, want %v", links, want)
	}
	if audit, err := b.s.ListAudit(b.ctx, store.AuditFilter{}); err != nil || len(audit) != 0 {
		t.Fatalf("audit = %v, %v; a failed Complete must commit nothing", audit, err)
	}
	// Relinking w1 to another account and back is fine.
	b.record(t, fact(w1, "e3", connector.KindUpdated, 1))
	b.link(t, w1, "acct-2")
	if got, err := b.s.LinkedWorker(b.ctx, "acct-2"); err != nil || got != w1 {
		t.Fatalf("LinkedWorker(acct-2) = %v, %v", got, err)
	}
	if _, err := b.s.LinkedWorker(b.ctx, "acct-1"); !errors.Is(err, connector.ErrNotFound) {
		t.Fatalf("LinkedWorker(acct-1) err = %v, want ErrNotFound after relink", err)
	}
	// Now w2 may take acct-1.
	b.complete(t, connector.Completion{Claim: c, Owner: "a", AccountID: "acct-1"})
	// Unlink removes the link.
	b.record(t, fact(w2, "e4", connector.KindUpdated, 1))
	c = b.claimOne(t, "a", b.now, w2)
	b.complete(t, connector.Completion{Claim: c, Owner: "a", Unlink: true})
	if _, err := b.s.LinkedWorker(b.ctx, "acct-1"); !errors.Is(err, connector.ErrNotFound) {
		t.Fatalf("LinkedWorker(acct-1) err = %v, want ErrNotFound after Unlink", err)
	}
	if got := b.counts(t); got.Links != 1 {
		t.Fatalf("Counts.Links = %d, want 1", got.Links)
	}
}

func testReviewDedupe(t *testing.T, b *testBundle) {
	w := hr("w1")
	b.record(t, fact(w, "e1", connector.KindHired, 0))
	review := &connector.Review{Reason: "ambiguous match", Candidates: []string{"a1", "a2"}}
	for range 2 {
		c := b.claimOne(t, "a", b.now, w)
		b.complete(t, connector.Completion{Claim: c, Owner: "a", Review: review, NextDue: b.now})
	}
	c := b.claimOne(t, "a", b.now, w)
	b.complete(t, connector.Completion{Claim: c, Owner: "a", Review: &connector.Review{Reason: "other"}})
	p1 := key("partner-acme", "p1")
	b.record(t, fact(p1, "e2", connector.KindHired, 0))
	c = b.claimOne(t, "a", b.now, p1)
	b.complete(t, connector.Completion{Claim: c, Owner: "a", Review: review})

	rs, err := b.s.ListReviews(b.ctx, store.ReviewFilter{Feed: "hr"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 {
		t.Fatalf("open hr reviews = %+v, want 2 (one per reason)", rs)
	}
	r := rs[0]
	if r.Feed != "hr" || r.WorkerID != "w1" || r.Reason != "ambiguous match" || !slices.Equal(r.Candidates, []string{"a1", "a2"}) || r.At.IsZero() || r.ID == 0 {
		t.Fatalf("review = %+v", r)
	}
	if rs[1].Candidates != nil {
		t.Fatalf("review without candidates = %+v", rs[1])
	}
	if all, err := b.s.ListReviews(b.ctx, store.ReviewFilter{}); err != nil || len(all) != 3 {
		t.Fatalf("all open reviews = %v, %v; want 3", all, err)
	}
	if lim, err := b.s.ListReviews(b.ctx, store.ReviewFilter{Limit: 1}); err != nil || len(lim) != 1 {
		t.Fatalf("Limit 1: %v, %v", lim, err)
	}
	if _, err := b.s.ResolveReview(b.ctx, r.ID, store.Resolution{By: "alice", Reason: "merged by hand"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.s.ResolveReview(b.ctx, r.ID, store.Resolution{By: "bob", Reason: "again"}); !errors.Is(err, connector.ErrConflict) {
		t.Fatalf("resolving twice: err = %v, want connector.ErrConflict", err)
	}
	if got := b.counts(t); got.OpenReviews != 2 {
		t.Fatalf("Counts.OpenReviews = %d, want 2", got.OpenReviews)
	}
	// Once resolved, the same problem may be raised again.
	b.record(t, fact(w, "e3", connector.KindUpdated, 1))
	c = b.claimOne(t, "a", b.now, w)
	b.complete(t, connector.Completion{Claim: c, Owner: "a", Review: review})
	if got := b.counts(t); got.OpenReviews != 3 {
		t.Fatalf("Counts.OpenReviews = %d, want 3", got.OpenReviews)
	}
	_, err = b.s.ResolveReview(b.ctx, 999999, store.Resolution{By: "alice", Reason: "x"})
	wantNotFound(t, "ResolveReview(unknown)", err)
}

// An LMS call's audit row is committed pending before the call and gets its
// outcome after, in place; a pending row is found again (issue #10, defect 6).
func testAuditIntents(t *testing.T, b *testBundle) {
	ai, ok := b.s.(connector.AuditIntents)
	if !ok {
		t.Fatalf("%T does not implement connector.AuditIntents", b.s)
	}
	w1, w2 := hr("w1"), hr("w2")
	b.record(t, fact(w1, "e1", connector.KindHired, 0), fact(w2, "e2", connector.KindHired, 0))
	at := b.now.Add(-time.Minute)
	ids, err := ai.BeginActions(b.ctx, []connector.AuditEntry{
		{At: at, Feed: "hr", WorkerID: "w1", Action: connector.ActionCreate, Cause: "hired", Detail: "hired", FactIDs: []string{"/feeds/hr#e1"}},
		{At: at, Feed: "hr", WorkerID: "w2", AccountID: "acct-2", Action: connector.ActionDeactivate, Cause: "left", HoldID: 7, Before: `W/"3"`},
	})
	if err != nil || len(ids) != 2 || ids[0] == ids[1] || ids[0] == 0 {
		t.Fatalf("BeginActions = %v, %v", ids, err)
	}
	if _, err := ai.BeginActions(b.ctx, []connector.AuditEntry{{Feed: "hr", WorkerID: "w1"}, {Feed: "hr", WorkerID: "w1"}}); err == nil {
		t.Fatal("BeginActions accepted one worker twice in a batch")
	}
	if p, err := ai.PendingActions(b.ctx, []connector.WorkerKey{w1, w2}, at); err != nil || len(p) != 0 {
		t.Fatalf("PendingActions before the rows were written = %v, %v", p, err)
	}
	p, err := ai.PendingActions(b.ctx, []connector.WorkerKey{w1, w2, hr("w3")}, b.now)
	if err != nil || len(p) != 2 || len(p[w1]) != 1 || len(p[w2]) != 1 {
		t.Fatalf("PendingActions = %v, %v", p, err)
	}
	if e := p[w2][0]; e.ID != ids[1] || e.Outcome != connector.OutcomePending || e.HoldID != 7 || e.Cause != "left" || e.Before != `W/"3"` ||
		e.AccountID != "acct-2" || e.Action != connector.ActionDeactivate || !e.At.Equal(at) {
		t.Fatalf("pending row of w2 = %+v", e)
	}
	if e := p[w1][0]; e.ID != ids[0] || !slices.Equal(e.FactIDs, []string{"/feeds/hr#e1"}) {
		t.Fatalf("pending row of w1 = %+v", e)
	}
	// The outcome replaces the rows: w1's in a batch with w2's and a new row.
	cs := b.claim(t, "a", b.now, 10)
	if len(cs) != 2 {
		t.Fatalf("claimed %v", claimKeys(cs))
	}
	done := b.now.Add(time.Second)
	err = b.s.CompleteAll(b.ctx, []connector.Completion{
		{Claim: cs[0], Owner: "a", AccountID: "acct-1", Audit: []connector.AuditEntry{
			{ID: ids[0], At: done, AccountID: "acct-1", Action: connector.ActionCreate, Outcome: connector.OutcomeOK, Detail: "hired", FactIDs: []string{"/feeds/hr#e1"}}}},
		{Claim: cs[1], Owner: "a", Audit: []connector.AuditEntry{
			{ID: ids[1], At: done, AccountID: "acct-2", Action: connector.ActionDeactivate, Outcome: connector.OutcomeNotApplied, Detail: "not applied"},
			{At: done, Action: connector.ActionNone, Outcome: connector.OutcomeReview, Detail: "a review"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := ai.PendingActions(b.ctx, []connector.WorkerKey{w1, w2}, b.now.Add(time.Hour)); err != nil || len(p) != 0 {
		t.Fatalf("PendingActions after the outcomes = %v, %v", p, err)
	}
	all, err := b.s.ListAudit(b.ctx, store.AuditFilter{Feed: "hr"})
	if err != nil || len(all) != 3 {
		t.Fatalf("audit = %+v, %v; want the two rows updated in place and one added", all, err)
	}
	byID := map[int64]connector.AuditEntry{}
	for _, e := range all {
		byID[e.ID] = e
	}
	if e := byID[ids[0]]; e.Outcome != connector.OutcomeOK || e.AccountID != "acct-1" || !e.At.Equal(done) {
		t.Fatalf("w1's row after its outcome = %+v", e)
	}
	if e := byID[ids[1]]; e.Outcome != connector.OutcomeNotApplied || e.Detail != "not applied" || e.HoldID != 7 || e.Cause != "left" {
		t.Fatalf("w2's row after its outcome = %+v", e)
	}

	// A resolution is settled at once, outside a completion: the row is no
	// longer pending, and keeps its hold, cause and version before.
	ids, err = ai.BeginActions(b.ctx, []connector.AuditEntry{{At: at, Feed: "hr", WorkerID: "w2", AccountID: "acct-2",
		Action: connector.ActionReactivate, Cause: "rehired", HoldID: 9, Before: `W/"4"`}})
	if err != nil || len(ids) != 1 {
		t.Fatalf("BeginActions = %v, %v", ids, err)
	}
	if err := ai.SettleActions(b.ctx, []connector.AuditEntry{{ID: ids[0], At: done, Feed: "hr", WorkerID: "w2", AccountID: "acct-2",
		Action: connector.ActionReactivate, Outcome: connector.OutcomeOK, Detail: "applied (recovered)"}}); err != nil {
		t.Fatal(err)
	}
	if err := ai.SettleActions(b.ctx, []connector.AuditEntry{{Outcome: connector.OutcomeOK}}); err == nil {
		t.Fatal("SettleActions accepted a row without an id")
	}
	if p, err := ai.PendingActions(b.ctx, []connector.WorkerKey{w2}, b.now.Add(time.Hour)); err != nil || len(p) != 0 {
		t.Fatalf("PendingActions after SettleActions = %v, %v", p, err)
	}
	all, err = b.s.ListAudit(b.ctx, store.AuditFilter{Feed: "hr", Action: connector.ActionReactivate})
	if err != nil || len(all) != 1 {
		t.Fatalf("audit = %+v, %v", all, err)
	}
	if e := all[0]; e.ID != ids[0] || e.Outcome != connector.OutcomeOK || e.Detail != "applied (recovered)" || e.HoldID != 9 || e.Cause != "rehired" || e.Before != `W/"4"` {
		t.Fatalf("the settled row = %+v", e)
	}
}

func testAuditFilter(t *testing.T, b *testBundle) {
	w1, w2 := hr("w1"), key("partner-acme", "p1")
	b.record(t, fact(w1, "e1", connector.KindHired, 0))
	t1, t2, t3 := day(1), day(2), day(3)
	c := b.claimOne(t, "a", b.now, w1)
	b.complete(t, connector.Completion{Claim: c, Owner: "a", Audit: []connector.AuditEntry{
		{At: t1, AccountID: "acct-1", Action: connector.ActionCreate, Outcome: connector.OutcomeOK, Detail: "hired", FactIDs: []string{"/feeds/hr#e1"}},
		{At: t3, AccountID: "acct-1", Action: connector.ActionDeactivate, Outcome: connector.OutcomeRetry},
	}})
	b.record(t, fact(w2, "e2", connector.KindHired, 0))
	c = b.claimOne(t, "a", b.now, w2)
	b.complete(t, connector.Completion{Claim: c, Owner: "a", Audit: []connector.AuditEntry{
		{At: t2, AccountID: "acct-2", Action: connector.ActionCreate, Outcome: connector.OutcomeOK},
		{AccountID: "acct-2", Action: connector.ActionNone, Outcome: connector.OutcomeSkipped},
	}})
	list := func(f store.AuditFilter) []string {
		t.Helper()
		es, err := b.s.ListAudit(b.ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range es {
			out = append(out, e.AccountID+"/"+string(e.Action))
		}
		return out
	}
	checks := []struct {
		name string
		f    store.AuditFilter
		want []string
	}{
		{"All", store.AuditFilter{}, []string{"acct-2/none", "acct-1/deactivate", "acct-2/create", "acct-1/create"}},
		{"Feed", store.AuditFilter{Feed: "hr"}, []string{"acct-1/deactivate", "acct-1/create"}},
		{"Worker", store.AuditFilter{Feed: "partner-acme", WorkerID: "p1"}, []string{"acct-2/none", "acct-2/create"}},
		{"Account", store.AuditFilter{AccountID: "acct-1"}, []string{"acct-1/deactivate", "acct-1/create"}},
		{"Action", store.AuditFilter{Action: connector.ActionCreate}, []string{"acct-2/create", "acct-1/create"}},
		{"Since", store.AuditFilter{Since: t2}, []string{"acct-2/none", "acct-1/deactivate", "acct-2/create"}},
		{"Until", store.AuditFilter{Until: t3}, []string{"acct-2/create", "acct-1/create"}},
		{"Window", store.AuditFilter{Since: t2, Until: t3}, []string{"acct-2/create"}},
		{"Limit", store.AuditFilter{Limit: 2}, []string{"acct-2/none", "acct-1/deactivate"}},
	}
	for _, tc := range checks {
		if got := list(tc.f); !slices.Equal(got, tc.want) {
			t.Errorf("%s: ListAudit = %v, want %v", tc.name, got, tc.want)
		}
	}
	es, err := b.s.ListAudit(b.ctx, store.AuditFilter{AccountID: "acct-1", Action: connector.ActionCreate})
	if err != nil || len(es) != 1 {
		t.Fatalf("ListAudit = %v, %v", es, err)
	}
	e := es[0]
	if e.ID == 0 || !e.At.Equal(t1) || e.Feed != "hr" || e.WorkerID != "w1" || e.Outcome != connector.OutcomeOK ||
		e.Detail != "hired" || !slices.Equal(e.FactIDs, []string{"/feeds/hr#e1"}) {
		t.Fatalf("audit entry = %+v", e)
	}
}

func testDeadLetters(t *testing.T, b *testBundle) {
	at := day(1).Add(42 * time.Microsecond)
	d1 := connector.DeadLetter{At: at, Feed: "hr", Subject: "hrsync.events.hr.hired", Headers: []byte(`{"Ce-Id":["1"]}`),
		Data: []byte{0, 1, 2, 0xff}, Reason: "data.worker_id: required"}
	d2 := connector.DeadLetter{Subject: "hrsync.events.???", Reason: "subject: no feed"}
	d3 := connector.DeadLetter{Feed: "partner-acme", Subject: "hrsync.events.partner-acme.left", Reason: "bad"}
	var ids []int64
	for _, d := range []connector.DeadLetter{d1, d2, d3} {
		id, err := b.s.DeadLetter(b.ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if ids[0] == ids[1] || ids[1] == ids[2] {
		t.Fatalf("ids = %v, want distinct", ids)
	}
	got, err := b.s.GetDeadLetter(b.ctx, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	d1.ID = ids[0]
	if got.ID != d1.ID || !got.At.Equal(d1.At) || got.Feed != d1.Feed || got.Subject != d1.Subject ||
		string(got.Headers) != string(d1.Headers) || string(got.Data) != string(d1.Data) || got.Reason != d1.Reason || got.ReplayedAt != nil {
		t.Fatalf("GetDeadLetter = %+v, want %+v", got, d1)
	}
	if got, err := b.s.GetDeadLetter(b.ctx, ids[1]); err != nil || got.At.IsZero() || got.Headers != nil || got.Data != nil {
		t.Fatalf("GetDeadLetter(d2) = %+v, %v; want a stamped time and nil bytes", got, err)
	}
	listIDs := func(f store.DeadLetterFilter) []int64 {
		t.Helper()
		ds, err := b.s.ListDeadLetters(b.ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, d := range ds {
			out = append(out, d.ID)
		}
		return out
	}
	// Newest first, and a limit keeps the newest.
	newest := slices.Clone(ids)
	slices.Reverse(newest)
	if got := listIDs(store.DeadLetterFilter{}); !slices.Equal(got, newest) {
		t.Fatalf("list = %v, want %v (newest first)", got, newest)
	}
	if got := listIDs(store.DeadLetterFilter{Feed: "partner-acme"}); !slices.Equal(got, ids[2:]) {
		t.Fatalf("list partner-acme = %v, want %v", got, ids[2:])
	}
	if got := listIDs(store.DeadLetterFilter{Limit: 2}); !slices.Equal(got, newest[:2]) {
		t.Fatalf("list limit 2 = %v, want %v (the newest two)", got, newest[:2])
	}
	replayed := day(2).Add(7 * time.Microsecond)
	if err := b.s.MarkDeadLetterReplayed(b.ctx, ids[0], replayed); err != nil {
		t.Fatal(err)
	}
	if got := listIDs(store.DeadLetterFilter{}); !slices.Equal(got, newest[:2]) {
		t.Fatalf("list after replay = %v, want %v", got, newest[:2])
	}
	if got := listIDs(store.DeadLetterFilter{Status: store.DeadLetterAll}); !slices.Equal(got, newest) {
		t.Fatalf("list with replayed = %v, want %v", got, newest)
	}
	if got, err := b.s.GetDeadLetter(b.ctx, ids[0]); err != nil || got.ReplayedAt == nil || !got.ReplayedAt.Equal(replayed) {
		t.Fatalf("GetDeadLetter after replay = %+v, %v; want ReplayedAt %v", got, err, replayed)
	}
	if got := b.counts(t); got.DeadLetters != 2 {
		t.Fatalf("Counts.DeadLetters = %d, want 2 (not replayed)", got.DeadLetters)
	}
	_, err = b.s.GetDeadLetter(b.ctx, 999999)
	wantNotFound(t, "GetDeadLetter(unknown)", err)
	wantNotFound(t, "MarkDeadLetterReplayed(unknown)", b.s.MarkDeadLetterReplayed(b.ctx, 999999, replayed))
}

func testErrNotFound(t *testing.T, b *testBundle) {
	_, err := b.s.LoadHistory(b.ctx, hr("nobody"))
	wantNotFound(t, "LoadHistory", err)
	_, err = b.s.LinkedWorker(b.ctx, "acct-x")
	wantNotFound(t, "LinkedWorker", err)
	err = b.s.Complete(b.ctx, connector.Completion{Claim: connector.Claim{Worker: hr("nobody")}, Owner: "a"})
	wantNotFound(t, "Complete", err)
}

func testCounts(t *testing.T, b *testBundle) {
	if got := b.counts(t); got != (store.Counts{}) {
		t.Fatalf("empty Counts = %+v", got)
	}
	r := fact(hr("w2"), "e3", connector.KindRehired, 5)
	r.PreviousWorkerID = "w1"
	b.record(t, fact(hr("w1"), "e1", connector.KindHired, 0), fact(hr("w1"), "e2", connector.KindLeft, 1), r)
	b.link(t, hr("w2"), "acct-1", "w1")
	if _, err := b.s.DeadLetter(b.ctx, connector.DeadLetter{Reason: "x"}); err != nil {
		t.Fatal(err)
	}
	want := store.Counts{Facts: 3, Workers: 2, Due: 0, DeadLetters: 1, Links: 1}
	if got := b.counts(t); got != want {
		t.Fatalf("Counts = %+v, want %+v", got, want)
	}
}

// factsEqual compares facts field by field, instants with Equal.
// A fact of b without a Recorded time (one built by the test) matches any
// Recorded time in a; otherwise the two must be the same instant.
func factsEqual(a, b []connector.Fact) bool {
	return slices.EqualFunc(a, b, func(x, y connector.Fact) bool {
		xe, ye := x, y
		xe.Effective, xe.Time, ye.Effective, ye.Time = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		xe.Recorded, ye.Recorded = time.Time{}, time.Time{}
		return xe == ye && x.Effective.Equal(y.Effective) && x.Time.Equal(y.Time) &&
			x.Effective.Location() == time.UTC && x.Time.Location() == time.UTC &&
			(y.Recorded.IsZero() || x.Recorded.Equal(y.Recorded))
	})
}

// concurrencyTests check that concurrent claimers never share a worker and that
// together they claim every due worker. They run one after the other (see
// RunConcurrency).
var concurrencyTests = []subTest{
	{"ClaimDueConcurrently", testClaimDueConcurrently},
	{"CompleteWhileRecording", testCompleteWhileRecording},
}

// RunConcurrency checks that concurrent claimers never share a worker and that
// together they claim every due worker. It is kept apart from Run because it
// stresses locking (slow on SQLite, which serialises writers), and its cases run
// one after the other.
func RunConcurrency(t *testing.T, newStore func(t *testing.T) Store) {
	runTests(t, setupFunc(newStore), false, concurrencyTests)
}

func testClaimDueConcurrently(t *testing.T, b *testBundle) {
	const workers, claimers = 200, 4
	var facts []connector.Fact
	for i := range workers {
		facts = append(facts, fact(key("hr", fmt.Sprintf("w%03d", i)), fmt.Sprintf("e%03d", i), connector.KindHired, 0))
	}
	if n := b.record(t, facts...); n != workers {
		t.Fatalf("recorded %d, want %d", n, workers)
	}

	var mu sync.Mutex
	owners := map[connector.WorkerKey]string{}
	var dups []string
	var wg sync.WaitGroup
	errs := make(chan error, claimers)
	for g := range claimers {
		owner := fmt.Sprintf("claimer-%d", g)
		wg.Go(func() {
			empty := 0
			// Bounded: 200 workers, at least one per non-empty round.
			for range 2 * workers {
				cs, err := b.s.ClaimDue(b.ctx, owner, b.now, time.Hour, 3)
				if err != nil {
					errs <- fmt.Errorf("%s: %w", owner, err)
					return
				}
				if len(cs) == 0 {
					// Nothing left, or the rest was locked by others' claims in
					// flight; those commit, so two empty rounds mean done.
					if empty++; empty == 2 {
						return
					}
					continue
				}
				empty = 0
				mu.Lock()
				for _, c := range cs {
					if prev, dup := owners[c.Worker]; dup {
						dups = append(dups, fmt.Sprintf("%s by %s and %s", c.Worker, prev, owner))
					}
					owners[c.Worker] = owner
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(dups) > 0 {
		t.Fatalf("workers claimed twice: %v", dups)
	}
	if len(owners) != workers {
		t.Fatalf("claimed %d workers, want all %d", len(owners), workers)
	}
	perOwner := map[string]int{}
	for _, o := range owners {
		perOwner[o]++
	}
	t.Logf("claims per owner: %v", perOwner)
	if cs := b.claim(t, "late", b.now, 10); len(cs) != 0 {
		t.Fatalf("late claimer got %v; all are leased", claimKeys(cs))
	}
}

// Facts keep arriving while claimers converge: every fact recorded during a
// claim must leave its worker due, so after the dust settles one more round
// sees every worker at its final version.
func testCompleteWhileRecording(t *testing.T, b *testBundle) {
	const nWorkers, rounds = 20, 10
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	wg.Go(func() {
		for r := range rounds {
			var batch []connector.Fact
			for i := range nWorkers {
				batch = append(batch, fact(key("hr", fmt.Sprintf("w%02d", i)), fmt.Sprintf("e%02d-%d", i, r), connector.KindUpdated, r))
			}
			if _, err := b.s.RecordFacts(b.ctx, batch); err != nil {
				errs <- err
				return
			}
		}
	})
	// lastDone is the version each worker was last converged at. A worker's
	// completions are serial (the lease is held until Complete), so the last
	// write is the last completion.
	var mu sync.Mutex
	lastDone := map[connector.WorkerKey]int64{}
	complete := func(owner string, c connector.Claim) error {
		if err := b.s.Complete(b.ctx, connector.Completion{Claim: c, Owner: owner}); err != nil {
			return err
		}
		mu.Lock()
		lastDone[c.Worker] = c.Version
		mu.Unlock()
		return nil
	}
	for g := range 2 {
		owner := fmt.Sprintf("c%d", g)
		wg.Go(func() {
			for range 50 {
				cs, err := b.s.ClaimDue(b.ctx, owner, b.now, time.Hour, 5)
				if err != nil {
					errs <- err
					return
				}
				for _, c := range cs {
					if err := complete(owner, c); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Drain what is still due. A worker that a fact reached during its claim
	// must be among it, so every worker ends converged at its final version.
	for range nWorkers * rounds {
		cs := b.claim(t, "drain", b.now, 10)
		if len(cs) == 0 {
			break
		}
		for _, c := range cs {
			if err := complete("drain", c); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(lastDone) != nWorkers {
		t.Fatalf("converged %d workers, want %d", len(lastDone), nWorkers)
	}
	for w, v := range lastDone {
		if v != rounds {
			t.Errorf("%s last converged at version %d, want %d: a fact arrived during a claim and the worker was left not due", w, v, rounds)
		}
	}
	if at, ok := b.nextDue(t); ok {
		t.Fatalf("NextDue = %v after draining, want none", at)
	}
}

// OverviewStore is what the console's overview (and a hold's page) reads.
// *store.DB implements it.
type OverviewStore interface {
	LinksOf(ctx context.Context, ws []connector.WorkerKey) (map[connector.WorkerKey]string, error)
	FeedActivity(ctx context.Context) (map[string]store.FeedActivity, error)
	DailyFacts(ctx context.Context, since, until time.Time) ([]store.DayCount, error)
	DailyActions(ctx context.Context, since, until time.Time) ([]store.DayCount, error)
}

var _ OverviewStore = (*store.DB)(nil)

// The overview counts facts by the UTC day they take effect and LMS actions by
// the day they succeeded, per feed, and knows each feed's backlog.
func testOverview(t *testing.T, b *testBundle) {
	s, ok := b.s.(OverviewStore)
	if !ok {
		t.Skipf("%T does not implement storetest.OverviewStore", b.s)
	}
	w1, w2, p1 := key("hr", "w1"), key("hr", "w2"), key("partner-acme", "p1")
	b.record(t, fact(w1, "e1", connector.KindHired, 0), fact(w2, "e2", connector.KindHired, 0),
		fact(w1, "e3", connector.KindLeft, 2), fact(p1, "e4", connector.KindHired, 1))
	got, err := s.DailyFacts(b.ctx, day(0), day(2))
	if err != nil {
		t.Fatal(err)
	}
	want := []store.DayCount{{Feed: "hr", Day: day(0).Truncate(24 * time.Hour), Kind: "hired", N: 2},
		{Feed: "partner-acme", Day: day(1).Truncate(24 * time.Hour), Kind: "hired", N: 1}}
	if !slices.Equal(got, want) {
		t.Fatalf("DailyFacts = %+v, want %+v (the leave on day 2 is outside)", got, want)
	}
	act, err := s.FeedActivity(b.ctx)
	if err != nil || act["hr"].Due != 2 || act["partner-acme"].Due != 1 || act["hr"].LastRecorded == nil {
		t.Fatalf("FeedActivity = %+v, %v", act, err)
	}
	var c connector.Claim
	for _, cl := range b.claim(t, "a", b.now, 10) {
		if cl.Worker == p1 {
			c = cl
		}
	}
	b.complete(t, connector.Completion{Claim: c, Owner: "a", AccountID: "acct-1", Audit: []connector.AuditEntry{
		{At: b.now, Feed: "partner-acme", WorkerID: "p1", AccountID: "acct-1", Action: connector.ActionCreate, Outcome: connector.OutcomeOK, Detail: "hired"}}})
	if links, err := s.LinksOf(b.ctx, []connector.WorkerKey{p1, w1, p1}); err != nil || len(links) != 1 || links[p1] != "acct-1" {
		t.Fatalf("LinksOf = %v, %v; want p1's account only", links, err)
	}
	acts, err := s.DailyActions(b.ctx, b.now.Add(-24*time.Hour), b.now.Add(24*time.Hour))
	if err != nil || len(acts) != 1 || acts[0].Kind != "create" || acts[0].N != 1 || acts[0].Feed != "partner-acme" ||
		!acts[0].Day.Equal(b.now.UTC().Truncate(24*time.Hour)) {
		t.Fatalf("DailyActions = %+v, %v", acts, err)
	}
}

// testClaimWorker: one named worker is leased whether or not it is due, never
// while another owner holds it, and an unknown worker is not claimed.
func testClaimWorker(t *testing.T, b *testBundle) {
	w := key("hr", "w1")
	b.record(t, fact(w, "e1", connector.KindHired, 0))
	cl := b.claimOne(t, "a", b.now, w)
	b.complete(t, connector.Completion{Claim: cl, Owner: "a"}) // not due any more

	got, ok, err := b.s.ClaimWorker(b.ctx, "b", w, b.now, time.Minute)
	if err != nil || !ok || got.Worker != w {
		t.Fatalf("ClaimWorker(not due) = %v, %v, %v; want a claim of %s", got, ok, err, w)
	}
	if _, ok, err := b.s.ClaimWorker(b.ctx, "c", w, b.now, time.Minute); err != nil || ok {
		t.Fatalf("ClaimWorker(leased by b) = %v, %v; want no claim", ok, err)
	}
	if _, ok, err := b.s.ClaimWorker(b.ctx, "c", w, b.now.Add(2*time.Minute), time.Minute); err != nil || !ok {
		t.Fatalf("ClaimWorker(after b's lease ended) = %v, %v; want a claim", ok, err)
	}
	if _, ok, err := b.s.ClaimWorker(b.ctx, "c", key("hr", "nobody"), b.now, time.Minute); err != nil || ok {
		t.Fatalf("ClaimWorker(unknown) = %v, %v; want no claim", ok, err)
	}
}
