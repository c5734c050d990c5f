package storetest

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
)

// batchTests check the batch paths of the converger, LoadHistories and
// CompleteAll, against LoadHistory and Complete.
var batchTests = []subTest{
	{"LoadHistories", testLoadHistories},
	{"CompleteAllEqualsComplete", testCompleteAllEqualsComplete},
	{"CompleteAllConflict", testCompleteAllConflict},
}

func testLoadHistories(t *testing.T, b *testBundle) {
	// a -> b -> c, old -> new (old linked), a worker of another feed with the
	// same id as hr:c, and enough plain workers to span several chunks.
	old, neu := hr("old"), hr("new")
	b.record(t, fact(old, "o1", connector.KindHired, 0), fact(old, "o2", connector.KindLeft, 10))
	b.link(t, old, "acct-old")
	p1 := key("partner-acme", "c")
	b.record(t, fact(p1, "p1", connector.KindHired, 0))
	b.link(t, p1, "acct-p1")
	rn := fact(neu, "n1", connector.KindRehired, 20)
	rn.PreviousWorkerID = "old"
	b.record(t, rn)
	rc := fact(hr("c"), "e3", connector.KindRehired, 20)
	rc.PreviousWorkerID = "b"
	rb := fact(hr("b"), "e2", connector.KindRehired, 10)
	rb.PreviousWorkerID = "a"
	b.record(t, rc, rb, fact(hr("a"), "e1", connector.KindHired, 0), fact(hr("a"), "e1b", connector.KindLeft, 5))
	var bulk []connector.Fact
	var ws []connector.WorkerKey
	for i := range 450 {
		w := hr(fmt.Sprintf("bulk%03d", i))
		bulk = append(bulk, fact(w, fmt.Sprintf("b%03d", i), connector.KindHired, 0), fact(w, fmt.Sprintf("b%03d-u", i), connector.KindUpdated, 1))
		ws = append(ws, w)
	}
	b.record(t, bulk...)

	ws = append(ws, hr("c"), p1, hr("nobody"), old, hr("b"), neu, hr("c"), key("other", "nobody"), hr("a"), hr("bulk007"))
	slices.Reverse(ws) // not in key order, with repeats
	got, err := b.s.LoadHistories(b.ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(ws) {
		t.Fatalf("LoadHistories returned %d histories for %d workers", len(got), len(ws))
	}
	for i, w := range ws {
		want, err := b.s.LoadHistory(b.ctx, w)
		if errors.Is(err, connector.ErrNotFound) {
			want = connector.History{Worker: w}
		} else if err != nil {
			t.Fatalf("LoadHistory(%s): %v", w, err)
		}
		if msg := historyDiff(got[i], want); msg != "" {
			t.Errorf("LoadHistories[%d] (%s): %s", i, w, msg)
		}
	}

	// Spot checks, so that the comparison above cannot pass vacuously.
	at := func(w connector.WorkerKey) connector.History { return got[slices.Index(ws, w)] }
	if h := at(hr("c")); !slices.Equal(factIDs(connector.SortFacts(h.Facts)), []string{"e1", "e1b", "e2", "e3"}) {
		t.Errorf("History(c).Facts = %v, want the whole chain", factIDs(h.Facts))
	}
	if h := at(neu); !maps.Equal(h.Links, map[string]string{"old": "acct-old"}) || len(h.Facts) != 3 || h.SupersededBy != nil {
		t.Errorf("History(new) = links %v, facts %v, superseded by %v", h.Links, factIDs(h.Facts), h.SupersededBy)
	}
	if h := at(old); h.SupersededBy == nil || *h.SupersededBy != neu || len(h.Facts) != 2 {
		t.Errorf("History(old) = superseded by %v, facts %v; want %v, its own two", h.SupersededBy, factIDs(h.Facts), neu)
	}
	if h := at(p1); !maps.Equal(h.Links, map[string]string{"c": "acct-p1"}) || !slices.Equal(factIDs(h.Facts), []string{"p1"}) {
		t.Errorf("History(partner-acme:c) = links %v, facts %v; feeds must not mix", h.Links, factIDs(h.Facts))
	}
	if h := at(hr("bulk449")); len(h.Facts) != 2 {
		t.Errorf("History(bulk449).Facts = %v, want 2", factIDs(h.Facts))
	}
	if h := at(hr("nobody")); h.Worker != hr("nobody") || len(h.Facts) != 0 || len(h.Links) != 0 || h.SupersededBy != nil {
		t.Errorf("History(nobody) = %+v, want empty", h)
	}
	// A repeated worker's histories are independent copies.
	var idx []int
	for i, w := range ws {
		if w == hr("c") {
			idx = append(idx, i)
		}
	}
	got[idx[0]].Links["x"] = "y"
	if _, ok := got[idx[1]].Links["x"]; ok {
		t.Errorf("the histories of a repeated worker share their Links map")
	}
	if hs, err := b.s.LoadHistories(b.ctx, nil); err != nil || len(hs) != 0 {
		t.Fatalf("LoadHistories(nil) = %v, %v", hs, err)
	}
}

func testCompleteAllEqualsComplete(t *testing.T, b *testBundle) {
	// The same scenario on two stores: one Complete after the other on one,
	// one CompleteAll on the other. Everything observable must match.
	one, all := b, b.another(t)
	now := one.now
	if all.now.After(now) {
		now = all.now
	}
	completions := func(b *testBundle) []connector.Completion {
		t.Helper()
		// Links before the batch: old holds acct-old, w04 acct-4, w08 acct-8.
		for _, l := range [][2]string{{"old", "acct-old"}, {"w04", "acct-4"}, {"w08", "acct-8"}} {
			b.record(t, fact(hr(l[0]), "x-"+l[0], connector.KindHired, 0))
			c := b.claimOne(t, "setup", now, hr(l[0]))
			b.complete(t, connector.Completion{Claim: c, Owner: "setup", AccountID: l[1]})
		}
		var facts []connector.Fact
		for i := range 12 {
			facts = append(facts, fact(hr(fmt.Sprintf("w%02d", i)), fmt.Sprintf("e%02d", i), connector.KindHired, 0))
		}
		b.record(t, facts...)
		r := fact(hr("new"), "n1", connector.KindRehired, 5)
		r.PreviousWorkerID = "old"
		b.record(t, r)

		cs := b.claim(t, "a", now, 100)
		if len(cs) != 13 { // w00..w11 and new
			t.Fatalf("claimed %v", claimKeys(cs))
		}
		claims := map[string]connector.Claim{}
		for _, c := range cs {
			claims[c.Worker.WorkerID] = c
		}
		// A fact arrives for w03 during its claim.
		b.record(t, fact(hr("w03"), "e03-late", connector.KindUpdated, 1))
		at := func(n int) time.Time { return day(n).Add(time.Duration(n) * time.Microsecond) }
		review := &connector.Review{Reason: "ambiguous match", Candidates: []string{"x1", "x2"}}
		return []connector.Completion{
			{Claim: claims["w00"], Owner: "a", AccountID: "acct-0", NextDue: now.Add(time.Hour), Audit: []connector.AuditEntry{
				{At: at(1), AccountID: "acct-0", Action: connector.ActionCreate, Outcome: connector.OutcomeOK, FactIDs: []string{"/feeds/hr#e00"}},
				{At: at(2), Action: connector.ActionUpdate, Outcome: connector.OutcomeOK, Detail: "profile"},
			}},
			{Claim: claims["w01"], Owner: "a", Failed: true, NextDue: now.Add(2 * time.Minute), Review: review,
				Audit: []connector.AuditEntry{{At: at(3), Action: connector.ActionCreate, Outcome: connector.OutcomeRetry}}},
			{Claim: claims["w02"], Owner: "a", Review: review},
			{Claim: claims["w03"], Owner: "a", NextDue: now.Add(24 * time.Hour)},
			// new takes old's account over.
			{Claim: claims["new"], Owner: "a", AccountID: "acct-old", ReleasePredecessors: []string{"old", "new"},
				Audit: []connector.AuditEntry{{At: at(4), Feed: "hr", WorkerID: "new", AccountID: "acct-old", Action: connector.ActionReactivate, Outcome: connector.OutcomeOK}}},
			// w04 lets acct-4 go, and w05 takes it later in the batch.
			{Claim: claims["w04"], Owner: "a", Unlink: true},
			{Claim: claims["w05"], Owner: "a", AccountID: "acct-4"},
			// w08 keeps its link: linked_at must not move.
			{Claim: claims["w08"], Owner: "a", AccountID: "acct-8", NextDue: now.Add(3 * time.Minute)},
			// w06 twice: the first (the lease holder) releases, the last sets the rest.
			{Claim: claims["w06"], Owner: "a", Review: &connector.Review{Reason: "dup"}, NextDue: now.Add(time.Hour)},
			{Claim: claims["w06"], Owner: "b", Failed: true, Review: &connector.Review{Reason: "dup"}, NextDue: now.Add(5 * time.Minute)},
			// w07: not the lease holder, so the lease stays.
			{Claim: claims["w07"], Owner: "other", NextDue: now},
			// w09 relinks from nothing to acct-9, then w10 unlinks (has none).
			{Claim: claims["w09"], Owner: "a", AccountID: "acct-9", NextDue: now.Add(4 * time.Minute)},
			{Claim: claims["w10"], Owner: "a", Unlink: true, Failed: true, NextDue: now.Add(6 * time.Minute)},
			// w11 left as claimed (not completed).
		}
	}
	for _, c := range completions(one) {
		one.complete(t, c)
	}
	if err := all.s.CompleteAll(all.ctx, completions(all)); err != nil {
		t.Fatalf("CompleteAll: %v", err)
	}
	for _, b := range []*testBundle{one, all} {
		if got, err := b.s.LinkedWorker(b.ctx, "acct-4"); err != nil || got != hr("w05") {
			t.Fatalf("LinkedWorker(acct-4) = %v, %v; want w05", got, err)
		}
	}
	compareStores(t, one, all, now)
}

func testCompleteAllConflict(t *testing.T, b *testBundle) {
	b.record(t, fact(hr("w0"), "e0", connector.KindHired, 0))
	b.link(t, hr("w0"), "acct-0")
	var facts []connector.Fact
	for i := 1; i < 5; i++ {
		facts = append(facts, fact(hr(fmt.Sprintf("w%d", i)), fmt.Sprintf("e%d", i), connector.KindHired, 0))
	}
	b.record(t, facts...)
	cs := b.claim(t, "a", b.now, 10)
	if len(cs) != 4 {
		t.Fatalf("claimed %v, want w1..w4", claimKeys(cs))
	}
	audit := func(i int) []connector.AuditEntry {
		return []connector.AuditEntry{{Action: connector.ActionUpdate, Outcome: connector.OutcomeOK, Detail: fmt.Sprint(i)}}
	}
	batch := []connector.Completion{
		{Claim: cs[0], Owner: "a", AccountID: "acct-1", Audit: audit(1)},
		{Claim: cs[1], Owner: "a", AccountID: "acct-0", Audit: audit(2)}, // w2: acct-0 is w0's
		{Claim: connector.Claim{Worker: hr("nobody")}, Owner: "a", Audit: audit(9)},
		{Claim: cs[2], Owner: "a", AccountID: "acct-3", Audit: audit(3), NextDue: b.now.Add(time.Hour)},
		{Claim: cs[3], Owner: "a", Audit: audit(4), Review: &connector.Review{Reason: "r"}},
	}
	err := b.s.CompleteAll(b.ctx, batch)
	if !errors.Is(err, connector.ErrConflict) || !errors.Is(err, connector.ErrNotFound) {
		t.Fatalf("CompleteAll err = %v, want ErrConflict and ErrNotFound joined", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "hr:w2") || !strings.Contains(msg, "hr:nobody") || strings.Contains(msg, "hr:w1") || strings.Contains(msg, "hr:w3") {
		t.Fatalf("CompleteAll err = %q, want it to name hr:w2 and hr:nobody only", msg)
	}
	t.Logf("CompleteAll: %v", err)
	links, err := b.s.Links(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[connector.WorkerKey]string{hr("w0"): "acct-0", hr("w1"): "acct-1", hr("w3"): "acct-3"}; !maps.Equal(links, want) {
		t.Fatalf("Links = %v, want %v", links, want)
	}
	es, err := b.s.ListAudit(b.ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var details []string
	for _, e := range es {
		details = append(details, e.WorkerID+"/"+e.Detail)
	}
	slices.Sort(details)
	if want := []string{"w1/1", "w3/3", "w4/4"}; !slices.Equal(details, want) {
		t.Fatalf("audit = %v, want %v (nothing of the failed ones)", details, want)
	}
	if rs, err := b.s.ListReviews(b.ctx, store.ReviewFilter{}); err != nil || len(rs) != 1 || rs[0].WorkerID != "w4" {
		t.Fatalf("reviews = %+v, %v", rs, err)
	}
	// w2 still holds its lease (its completion did not commit); the others are
	// released and not due.
	if got := claimKeys(b.claim(t, "b", b.now.Add(30*time.Second), 10)); len(got) != 0 {
		t.Fatalf("claimed %v before w2's lease expired", got)
	}
	if got := claimKeys(b.claim(t, "b", b.now.Add(2*time.Minute), 10)); !slices.Equal(got, []string{"hr:w2"}) {
		t.Fatalf("claimed %v after the lease, want only hr:w2", got)
	}
	if err := b.s.CompleteAll(b.ctx, nil); err != nil {
		t.Fatalf("CompleteAll(nil) = %v", err)
	}
}

// historyDiff describes how got differs from want; "" if it does not. Facts are
// compared in fold order, a nil Links as empty.
func historyDiff(got, want connector.History) string {
	var d []string
	if got.Worker != want.Worker {
		d = append(d, fmt.Sprintf("worker %v, want %v", got.Worker, want.Worker))
	}
	if g, w := connector.SortFacts(got.Facts), connector.SortFacts(want.Facts); !factsEqual(g, w) || len(got.Facts) != len(want.Facts) {
		d = append(d, fmt.Sprintf("facts %v, want %v", factIDs(got.Facts), factIDs(want.Facts)))
	}
	if got.Links == nil {
		d = append(d, "nil Links map")
	}
	if !maps.Equal(got.Links, want.Links) {
		d = append(d, fmt.Sprintf("links %v, want %v", got.Links, want.Links))
	}
	if (got.SupersededBy == nil) != (want.SupersededBy == nil) || (got.SupersededBy != nil && *got.SupersededBy != *want.SupersededBy) {
		d = append(d, fmt.Sprintf("superseded by %v, want %v", got.SupersededBy, want.SupersededBy))
	}
	return strings.Join(d, "; ")
}

// compareStores checks that two stores that went through the same scenario look
// the same: links, audit, open reviews, and what is claimable when.
func compareStores(t *testing.T, x, y *testBundle, now time.Time) {
	t.Helper()
	lx, err := x.s.Links(x.ctx)
	if err != nil {
		t.Fatal(err)
	}
	ly, err := y.s.Links(y.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(lx, ly) {
		t.Errorf("links differ:\n%v\n%v", lx, ly)
	}
	audit := func(b *testBundle) []connector.AuditEntry {
		es, err := b.s.ListAudit(b.ctx, store.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range es {
			es[i].ID = 0
		}
		return es
	}
	ax, ay := audit(x), audit(y)
	if !slices.EqualFunc(ax, ay, func(a, b connector.AuditEntry) bool {
		return a.At.Equal(b.At) && a.Feed == b.Feed && a.WorkerID == b.WorkerID && a.AccountID == b.AccountID &&
			a.Action == b.Action && a.Outcome == b.Outcome && a.Detail == b.Detail && slices.Equal(a.FactIDs, b.FactIDs)
	}) {
		t.Errorf("audit differs:\n%+v\n%+v", ax, ay)
	}
	reviews := func(b *testBundle) []string {
		rs, err := b.s.ListReviews(b.ctx, store.ReviewFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range rs {
			out = append(out, fmt.Sprintf("%s:%s %s %v", r.Feed, r.WorkerID, r.Reason, r.Candidates))
		}
		return out
	}
	if rx, ry := reviews(x), reviews(y); !slices.Equal(rx, ry) {
		t.Errorf("reviews differ:\n%v\n%v", rx, ry)
	}
	if cx, cy := x.counts(t), y.counts(t); cx != cy {
		t.Errorf("counts differ: %+v, %+v", cx, cy)
	}
	// What is claimable, with which version and attempts, as time goes on. The
	// leases of the claims made here last a minute.
	for _, d := range []time.Duration{0, 30 * time.Second, 150 * time.Second, 210 * time.Second, 250 * time.Second, 330 * time.Second, 390 * time.Second, 2 * time.Hour, 48 * time.Hour} {
		at := now.Add(d)
		cx, cy := x.claim(t, "z", at, 100), y.claim(t, "z", at, 100)
		if !slices.Equal(cx, cy) {
			t.Errorf("at now+%v: claims differ:\n%+v\n%+v", d, cx, cy)
		}
	}
	// Only the last claims' leases are left.
	if tx, ty := fmt.Sprint(x.nextDue(t)), fmt.Sprint(y.nextDue(t)); tx != ty || tx != fmt.Sprint(now.Add(48*time.Hour+time.Minute), true) {
		t.Errorf("NextDue = %s and %s, want both the end of the last lease", tx, ty)
	}
}
