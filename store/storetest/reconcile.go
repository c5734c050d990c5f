package storetest

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
)

// reconcileTests check the methods of connector.ReconcileStore: the pages and
// lookups of full reconciliation, and MarkDue.
var reconcileTests = []subTest{
	{"ListWorkerLinks", testListWorkerLinks},
	{"LinkedHistories", testLinkedHistories},
	{"LastStateActions", testLastStateActions},
	{"MarkDue", testMarkDue},
}

// rs returns b's store as a connector.ReconcileStore.
func rs(t *testing.T, b *testBundle) connector.ReconcileStore {
	t.Helper()
	s, ok := b.s.(connector.ReconcileStore)
	if !ok {
		t.Fatalf("%T does not implement connector.ReconcileStore", b.s)
	}
	return s
}

func testListWorkerLinks(t *testing.T, b *testBundle) {
	s := rs(t, b)
	if got, err := s.ListWorkerLinks(b.ctx, connector.WorkerKey{}, 10); err != nil || len(got) != 0 {
		t.Fatalf("empty store: ListWorkerLinks = %v, %v", got, err)
	}
	// hr:a, hr:b (linked), hr:c superseded by hr:d (c linked), partner-x:a.
	b.record(t, fact(hr("b"), "e2", connector.KindHired, 0))
	b.link(t, hr("b"), "acct-b")
	b.record(t, fact(hr("c"), "e3", connector.KindHired, 0))
	b.link(t, hr("c"), "acct-c")
	b.record(t, fact(hr("a"), "e1", connector.KindHired, 0), fact(key("partner-x", "a"), "e4", connector.KindHired, 0))
	r := fact(hr("d"), "e5", connector.KindRehired, 5)
	r.PreviousWorkerID = "c"
	b.record(t, r)
	want := []connector.WorkerLink{
		{Worker: hr("a")}, {Worker: hr("b"), AccountID: "acct-b"}, {Worker: hr("c"), AccountID: "acct-c", Superseded: true},
		{Worker: hr("d")}, {Worker: key("partner-x", "a")},
	}
	for _, limit := range []int{1, 2, 5, 100} {
		var got []connector.WorkerLink
		var after connector.WorkerKey
		for pages := 0; ; pages++ {
			if pages > 10 {
				t.Fatalf("limit %d: pagination does not end", limit)
			}
			page, err := s.ListWorkerLinks(b.ctx, after, limit)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > limit {
				t.Fatalf("limit %d: page of %d", limit, len(page))
			}
			got = append(got, page...)
			if len(page) < limit {
				break
			}
			after = page[len(page)-1].Worker
		}
		if !slices.Equal(got, want) {
			t.Fatalf("limit %d: ListWorkerLinks pages = %+v, want %+v", limit, got, want)
		}
	}
	if got, err := s.ListWorkerLinks(b.ctx, hr("b"), 2); err != nil || !slices.Equal(got, want[2:4]) {
		t.Fatalf("after hr:b = %+v, %v; want %+v", got, err, want[2:4])
	}
}

func testLinkedHistories(t *testing.T, b *testBundle) {
	s := rs(t, b)
	// old (linked, then superseded by neu, linked too), and more plain workers
	// than one SQLite chunk, two thirds of them linked.
	old, neu := hr("old"), hr("neu")
	b.record(t, fact(old, "o1", connector.KindHired, 0), fact(old, "o2", connector.KindLeft, 3))
	b.link(t, old, "acct-old")
	var facts []connector.Fact
	for i := range 1100 {
		w := hr(fmt.Sprintf("w%04d", i))
		facts = append(facts, fact(w, fmt.Sprintf("e%04d", i), connector.KindHired, 0), fact(w, fmt.Sprintf("u%04d", i), connector.KindUpdated, 1))
	}
	b.record(t, facts...)
	cs := b.claim(t, "linker", b.now, 2000)
	comps := make([]connector.Completion, len(cs))
	ids := []string{"acct-old", "acct-neu", "nobody"}
	want := map[string]connector.WorkerKey{"acct-old": old, "acct-neu": neu}
	for i, c := range cs {
		comps[i] = connector.Completion{Claim: c, Owner: "linker"}
		if i%3 != 0 {
			acct := "acct-" + c.Worker.WorkerID
			comps[i].AccountID = acct
			ids = append(ids, acct)
			want[acct] = c.Worker
		} else {
			ids = append(ids, "acct-"+c.Worker.WorkerID) // not linked
		}
	}
	if err := b.s.CompleteAll(b.ctx, comps); err != nil {
		t.Fatal(err)
	}
	r := fact(neu, "n1", connector.KindRehired, 5)
	r.PreviousWorkerID = "old"
	b.record(t, r)
	b.link(t, neu, "acct-neu")

	got, err := s.LinkedHistories(b.ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("LinkedHistories: %d entries, want %d", len(got), len(want))
	}
	for acct, w := range want {
		h, ok := got[acct]
		if !ok {
			t.Fatalf("LinkedHistories: no history for %s", acct)
		}
		ref, err := b.s.LoadHistory(b.ctx, w)
		if err != nil {
			t.Fatal(err)
		}
		if h.Worker != w || !factsEqual(h.Facts, ref.Facts) || !maps.Equal(h.Links, ref.Links) ||
			(h.SupersededBy == nil) != (ref.SupersededBy == nil) {
			t.Fatalf("%s: LinkedHistories = %+v\nLoadHistory   = %+v", acct, h, ref)
		}
	}
	if h := got["acct-old"]; h.SupersededBy == nil || *h.SupersededBy != neu {
		t.Fatalf("acct-old: %+v, want superseded by %s", h, neu)
	}
	if h := got["acct-neu"]; len(h.Facts) != 3 || h.Links["old"] != "acct-old" {
		t.Fatalf("acct-neu: %+v, want its own and its predecessor's facts and links", h)
	}
	if got, err := s.LinkedHistories(b.ctx, nil); err != nil || len(got) != 0 {
		t.Fatalf("LinkedHistories(nil) = %v, %v", got, err)
	}
}

func testLastStateActions(t *testing.T, b *testBundle) {
	s := rs(t, b)
	w := hr("w1")
	b.record(t, fact(w, "e1", connector.KindHired, 0))
	c := b.claimOne(t, "a", b.now, w)
	ok, failed := connector.OutcomeOK, connector.OutcomeRetry
	inactive := false
	b.complete(t, connector.Completion{Claim: c, Owner: "a", Audit: []connector.AuditEntry{
		{At: day(1), AccountID: "acct-1", Action: connector.ActionCreate, Outcome: ok, Detail: "hired"},
		{At: day(2), AccountID: "acct-1", Action: connector.ActionDeactivate, Outcome: ok, Detail: "left"},
		{At: day(3), AccountID: "acct-1", Action: connector.ActionReactivate, Outcome: failed},
		{At: day(4), AccountID: "acct-1", Action: connector.ActionUpdate, Outcome: ok},
		{At: day(1), AccountID: "acct-2", Action: connector.ActionCreate, Outcome: ok},
		{At: day(2), AccountID: "acct-2", Action: connector.ActionReactivate, Outcome: ok},
		{At: day(1), AccountID: "acct-3", Action: connector.ActionUpdate, Outcome: ok},
		{At: day(1), AccountID: "acct-5", Action: connector.ActionCreate, Outcome: ok, Detail: "pre-hire", ActiveAfter: &inactive},
	}})
	got, err := s.LastStateActions(b.ctx, []string{"acct-1", "acct-2", "acct-3", "acct-4", "acct-5"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("LastStateActions = %+v, want entries for acct-1, acct-2 and acct-5 only", got)
	}
	// The account's state after the action is data, read back as written.
	if e := got["acct-5"]; e.ActiveAfter == nil || *e.ActiveAfter {
		t.Fatalf("acct-5: %+v, want created inactive (ActiveAfter false)", e)
	}
	if e := got["acct-1"]; e.Action != connector.ActionDeactivate || !e.At.Equal(day(2)) || e.Detail != "left" || e.Feed != "hr" || e.WorkerID != "w1" {
		t.Fatalf("acct-1: %+v, want the ok deactivate of day 2", e)
	}
	if e := got["acct-2"]; e.Action != connector.ActionReactivate {
		t.Fatalf("acct-2: %+v, want the reactivate", e)
	}
}

func testMarkDue(t *testing.T, b *testBundle) {
	s := rs(t, b)
	quiet, failing, leased, due := hr("quiet"), hr("failing"), hr("leased"), hr("due")
	b.record(t, fact(quiet, "e1", connector.KindHired, 0), fact(quiet, "e2", connector.KindUpdated, 1),
		fact(failing, "e3", connector.KindHired, 0), fact(leased, "e4", connector.KindHired, 0))
	// quiet: linked, not due. failing: one failed attempt, due in a day. leased: held by "x".
	for _, c := range b.claim(t, "a", b.now, 10) {
		comp := connector.Completion{Claim: c, Owner: "a"}
		switch c.Worker {
		case quiet:
			comp.AccountID = "acct-q"
		case failing:
			comp.Failed, comp.NextDue = true, b.now.Add(24*time.Hour)
		case leased:
			comp.NextDue = b.now
		}
		b.complete(t, comp)
	}
	lease := b.claimOne(t, "x", b.now, leased)
	b.record(t, fact(due, "e5", connector.KindHired, 0)) // due at the store clock, before b.now
	dueAt, _ := b.nextDue(t)

	n, err := s.MarkDue(b.ctx, []connector.WorkerKey{quiet, failing, leased, due, quiet, hr("nobody")}, b.now)
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Fatalf("MarkDue = %d, want 4 (the known workers)", n)
	}
	if at, ok := b.nextDue(t); !ok || !at.Equal(dueAt) {
		t.Fatalf("NextDue = %v, %v; want %v: an earlier due time stays", at, ok, dueAt)
	}
	got := map[connector.WorkerKey]connector.Claim{}
	for _, c := range b.claim(t, "y", b.now, 10) {
		got[c.Worker] = c
	}
	if len(got) != 3 {
		t.Fatalf("claimed %v, want quiet, failing and due (leased is still held by x)", slices.Collect(maps.Keys(got)))
	}
	if c := got[quiet]; c.Version != 2 || c.Attempts != 0 {
		t.Fatalf("quiet: %+v, want version 2, attempts 0: MarkDue bumps nothing", c)
	}
	if c := got[failing]; c.Version != 1 || c.Attempts != 1 {
		t.Fatalf("failing: %+v, want version 1, attempts 1: MarkDue bumps nothing", c)
	}
	links, err := b.s.Links(b.ctx)
	if err != nil || links[quiet] != "acct-q" || len(links) != 1 {
		t.Fatalf("links = %v, %v; want quiet's link untouched", links, err)
	}
	// The lease of x still holds: its completion (same version) goes through.
	b.complete(t, connector.Completion{Claim: lease, Owner: "x"})
	if n, err := s.MarkDue(b.ctx, nil, b.now); err != nil || n != 0 {
		t.Fatalf("MarkDue(nil) = %d, %v", n, err)
	}
}
