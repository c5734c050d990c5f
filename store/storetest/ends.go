package storetest

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
)

// endTests check that dead letters and review items have an end (issue #11): a
// dead letter is replayed (the fact recorded, the worker due) or discarded
// (kept, never replayed); a review item is resolved (the worker due again). Each
// end is audited and is final.
var endTests = []subTest{
	{"DeadLetterListNewestFirst", testDeadLetterListNewestFirst},
	{"DeadLetterDiscard", testDeadLetterDiscard},
	{"DeadLetterReplay", testDeadLetterReplay},
	{"DeadLetterReplayWakesAClaimInFlight", testDeadLetterReplayWakesAClaimInFlight},
	{"DeadLetterReplayRefusedLeavesItOpen", testDeadLetterReplayRefusedLeavesItOpen},
	{"ReviewResolve", testReviewResolve},
}

// newDeadLetter stores a dead letter of feed hr and returns its id.
func (b *testBundle) newDeadLetter(t *testing.T, reason string) int64 {
	t.Helper()
	id, err := b.s.DeadLetter(b.ctx, connector.DeadLetter{Feed: "hr", Subject: "hrsync.events.hr.hired",
		Headers: []byte(`{"Ce-Id":["x"]}`), Data: []byte(`{"x":1}`), Reason: reason})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (b *testBundle) deadLetterIDs(t *testing.T, f store.DeadLetterFilter) []int64 {
	t.Helper()
	ds, err := b.s.ListDeadLetters(b.ctx, f)
	if err != nil {
		t.Fatalf("ListDeadLetters(%+v): %v", f, err)
	}
	var out []int64
	for _, d := range ds {
		out = append(out, d.ID)
	}
	return out
}

// auditPlans returns the audit rows with plan, newest first.
func (b *testBundle) auditWithPlan(t *testing.T, plan string) []connector.AuditEntry {
	t.Helper()
	all, err := b.s.ListAudit(b.ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(all, func(a connector.AuditEntry) bool { return a.Plan != plan })
}

// The list is newest first, and its limit keeps the newest: "hrsync dead list"
// said "newest first" and showed the oldest 100.
func testDeadLetterListNewestFirst(t *testing.T, b *testBundle) {
	var ids []int64
	for range 5 {
		ids = append(ids, b.newDeadLetter(t, "bad"))
	}
	if got, want := b.deadLetterIDs(t, store.DeadLetterFilter{Limit: 3}), []int64{ids[4], ids[3], ids[2]}; !slices.Equal(got, want) {
		t.Fatalf("list limit 3 = %v, want the newest three %v", got, want)
	}
	if got := b.deadLetterIDs(t, store.DeadLetterFilter{}); len(got) != 5 || got[0] != ids[4] || got[4] != ids[0] {
		t.Fatalf("list = %v, want %v reversed", got, ids)
	}
	if _, err := b.s.ListDeadLetters(b.ctx, store.DeadLetterFilter{Status: "gone"}); err == nil || !strings.Contains(err.Error(), "discarded") {
		t.Fatalf("status gone: err = %v, want one that lists the statuses", err)
	}
}

func testDeadLetterDiscard(t *testing.T, b *testBundle) {
	keep, gone, replayed := b.newDeadLetter(t, "bad"), b.newDeadLetter(t, "worse"), b.newDeadLetter(t, "fixed")
	if err := b.s.MarkDeadLetterReplayed(b.ctx, replayed, b.now); err != nil {
		t.Fatal(err)
	}
	for _, r := range []store.Resolution{{By: "alice"}, {Reason: "why", By: " "}} {
		if _, err := b.s.DiscardDeadLetter(b.ctx, gone, r); err == nil {
			t.Fatalf("DiscardDeadLetter(%+v) succeeded, want an error naming the empty field", r)
		} else if field := map[bool]string{true: "reason", false: "by"}[r.Reason == ""]; !strings.Contains(err.Error(), field) {
			t.Fatalf("DiscardDeadLetter(%+v): %v; want it to name %q", r, err, field)
		}
	}
	d, err := b.s.DiscardDeadLetter(b.ctx, gone, store.Resolution{By: "alice", Reason: "test message from the vendor"})
	if err != nil {
		t.Fatal(err)
	}
	if d.Status() != connector.DeadLetterDiscarded || d.DiscardedBy != "alice" || d.DiscardReason != "test message from the vendor" || d.DiscardedAt == nil {
		t.Fatalf("discarded = %+v", d)
	}
	got, err := b.s.GetDeadLetter(b.ctx, gone)
	if err != nil || got.Status() != connector.DeadLetterDiscarded || got.DiscardedBy != "alice" || got.DiscardReason != d.DiscardReason ||
		!got.DiscardedAt.Equal(*d.DiscardedAt) || string(got.Data) != `{"x":1}` || got.Reason != "worse" {
		t.Fatalf("GetDeadLetter after discard = %+v, %v; want it kept, discarded by alice", got, err)
	}
	// Left out of the default listing and the open count; shown by status.
	if ids := b.deadLetterIDs(t, store.DeadLetterFilter{}); !slices.Equal(ids, []int64{keep}) {
		t.Fatalf("open = %v, want only %d", ids, keep)
	}
	if ids := b.deadLetterIDs(t, store.DeadLetterFilter{Status: connector.DeadLetterDiscarded}); !slices.Equal(ids, []int64{gone}) {
		t.Fatalf("discarded = %v, want %d", ids, gone)
	}
	if ids := b.deadLetterIDs(t, store.DeadLetterFilter{Status: connector.DeadLetterReplayed}); !slices.Equal(ids, []int64{replayed}) {
		t.Fatalf("replayed = %v, want %d", ids, replayed)
	}
	if ids := b.deadLetterIDs(t, store.DeadLetterFilter{Status: store.DeadLetterAll}); !slices.Equal(ids, []int64{replayed, gone, keep}) {
		t.Fatalf("all = %v", ids)
	}
	if c := b.counts(t); c.DeadLetters != 1 {
		t.Fatalf("Counts.DeadLetters = %d, want 1 (open only)", c.DeadLetters)
	}
	// Final: neither discarded again nor replayed; a replayed one is not discarded.
	if _, err := b.s.DiscardDeadLetter(b.ctx, gone, store.Resolution{By: "bob", Reason: "again"}); !errors.Is(err, connector.ErrConflict) || !strings.Contains(err.Error(), "alice") {
		t.Fatalf("discard twice: %v; want connector.ErrConflict naming alice", err)
	}
	if _, err := b.s.ReplayDeadLetter(b.ctx, gone, fact(hr("w1"), "e1", connector.KindHired, 0), "bob"); !errors.Is(err, connector.ErrConflict) {
		t.Fatalf("replay a discarded dead letter: %v; want connector.ErrConflict", err)
	}
	if err := b.s.MarkDeadLetterReplayed(b.ctx, gone, b.now); !errors.Is(err, connector.ErrConflict) {
		t.Fatalf("mark a discarded dead letter replayed: %v; want connector.ErrConflict", err)
	}
	if _, err := b.s.DiscardDeadLetter(b.ctx, replayed, store.Resolution{By: "bob", Reason: "x"}); !errors.Is(err, connector.ErrConflict) {
		t.Fatalf("discard a replayed dead letter: %v; want connector.ErrConflict", err)
	}
	if _, err := b.s.DiscardDeadLetter(b.ctx, 999999, store.Resolution{By: "bob", Reason: "x"}); !errors.Is(err, connector.ErrNotFound) {
		t.Fatalf("discard unknown: %v; want connector.ErrNotFound", err)
	}
	if facts, err := b.s.Facts(b.ctx, hr("w1")); err != nil || len(facts) != 0 {
		t.Fatalf("facts after a refused replay = %v, %v; want none", facts, err)
	}
	hist, err := b.s.DeadLetterHistory(b.ctx, gone)
	if err != nil || len(hist) != 1 || hist[0].Action != store.DeadLetterDiscardedAction || hist[0].By != "alice" || hist[0].Detail != d.DiscardReason {
		t.Fatalf("history = %+v, %v; want one discard by alice", hist, err)
	}
	audit := b.auditWithPlan(t, store.PlanDeadLetterDiscarded)
	if len(audit) != 1 || audit[0].Feed != "hr" || audit[0].Action != connector.ActionNone || audit[0].Outcome != connector.OutcomeOK ||
		!strings.Contains(audit[0].Detail, "alice") || !strings.Contains(audit[0].Detail, "test message from the vendor") {
		t.Fatalf("audit = %+v; want one row naming alice and the reason", audit)
	}
}

func testDeadLetterReplay(t *testing.T, b *testBundle) {
	w := hr("w1")
	id := b.newDeadLetter(t, `feed "hr" is not declared`)
	r, err := b.s.ReplayDeadLetter(b.ctx, id, fact(w, "e1", connector.KindHired, 0), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if r.Recorded != 1 || r.Woken != w {
		t.Fatalf("replay = %+v; want 1 recorded, %s woken", r, w)
	}
	// The converger finds the worker due now.
	b.claimOne(t, "c", b.now, w)
	if d, err := b.s.GetDeadLetter(b.ctx, id); err != nil || d.Status() != connector.DeadLetterReplayed {
		t.Fatalf("after replay: %+v, %v", d, err)
	}
	if _, err := b.s.ReplayDeadLetter(b.ctx, id, fact(w, "e1", connector.KindHired, 0), "bob"); !errors.Is(err, connector.ErrConflict) {
		t.Fatalf("replay twice: %v; want connector.ErrConflict", err)
	}
	hist, err := b.s.DeadLetterHistory(b.ctx, id)
	if err != nil || len(hist) != 1 || hist[0].Action != store.DeadLetterReplayedAction || hist[0].By != "alice" || !strings.Contains(hist[0].Detail, "/feeds/hr#e1") {
		t.Fatalf("history = %+v, %v; want one replay by alice naming the fact", hist, err)
	}
	audit := b.auditWithPlan(t, store.PlanDeadLetterReplayed)
	if len(audit) != 1 || audit[0].Feed != "hr" || audit[0].WorkerID != "w1" || !slices.Equal(audit[0].FactIDs, []string{"/feeds/hr#e1"}) {
		t.Fatalf("audit = %+v; want one row for hr:w1 naming the fact", audit)
	}
	// A successor's predecessor: the replay wakes the end of the chain.
	cur := hr("w2")
	rehire := fact(cur, "e2", connector.KindRehired, 5)
	rehire.PreviousWorkerID = w.WorkerID
	b.record(t, rehire)
	id2 := b.newDeadLetter(t, "bad")
	if r, err := b.s.ReplayDeadLetter(b.ctx, id2, fact(w, "e3", connector.KindUpdated, 1), ""); err != nil || r.Recorded != 1 || r.Woken != cur {
		t.Fatalf("replay for a predecessor = %+v, %v; want its successor %s woken", r, err, cur)
	}
}

// A fact recorded before (the publisher sent it again, or an earlier replay
// recorded it and crashed) still leaves the worker due; and a converger that
// holds the worker's claim while the replay commits leaves it due too.
func testDeadLetterReplayWakesAClaimInFlight(t *testing.T, b *testBundle) {
	w := hr("w1")
	hire := fact(w, "e1", connector.KindHired, 0)
	b.record(t, hire)
	c := b.claimOne(t, "c", b.now, w)
	id := b.newDeadLetter(t, "bad")
	r, err := b.s.ReplayDeadLetter(b.ctx, id, hire, "alice")
	if err != nil || r.Recorded != 0 || r.Woken != w {
		t.Fatalf("replay of a recorded fact = %+v, %v; want 0 recorded, %s woken", r, err, w)
	}
	// The claim taken before the replay completes as "nothing more to do".
	b.complete(t, connector.Completion{Claim: c, Owner: "c"})
	if at, ok := b.nextDue(t); !ok || at.After(b.now) {
		t.Fatalf("NextDue = %v, %v; want the worker due: the replay woke it", at, ok)
	}
	b.claimOne(t, "d", b.now, w)
	if hist, _ := b.s.DeadLetterHistory(b.ctx, id); len(hist) != 1 || !strings.Contains(hist[0].Detail, "recorded already") {
		t.Fatalf("history = %+v; want it to say the fact was recorded already", hist)
	}
}

func testDeadLetterReplayRefusedLeavesItOpen(t *testing.T, b *testBundle) {
	id := b.newDeadLetter(t, "bad")
	bad := fact(hr("w1"), "e1", connector.KindHired, 0)
	bad.WorkerID = ""
	if _, err := b.s.ReplayDeadLetter(b.ctx, id, bad, "alice"); err == nil || !connector.IsPermanent(err) {
		t.Fatalf("replay of an invalid fact: %v; want a permanent error", err)
	}
	if _, err := b.s.ReplayDeadLetter(b.ctx, 999999, fact(hr("w1"), "e1", connector.KindHired, 0), "alice"); !errors.Is(err, connector.ErrNotFound) {
		t.Fatalf("replay of an unknown dead letter: %v; want connector.ErrNotFound", err)
	}
	if facts, _ := b.s.Facts(b.ctx, hr("w1")); len(facts) != 0 {
		t.Fatalf("facts = %v; want none: the replay of an unknown dead letter records nothing", facts)
	}
	if err := b.s.NoteDeadLetterReplayFailed(b.ctx, id, "alice", errors.New(`feed "acme" is not declared`)); err != nil {
		t.Fatal(err)
	}
	if err := b.s.NoteDeadLetterReplayFailed(b.ctx, 999999, "alice", errors.New("x")); !errors.Is(err, connector.ErrNotFound) {
		t.Fatalf("note on an unknown dead letter: %v; want connector.ErrNotFound", err)
	}
	d, err := b.s.GetDeadLetter(b.ctx, id)
	if err != nil || d.Status() != connector.DeadLetterOpen {
		t.Fatalf("after a failed replay: %+v, %v; want it open", d, err)
	}
	hist, err := b.s.DeadLetterHistory(b.ctx, id)
	if err != nil || len(hist) != 1 || hist[0].Action != store.DeadLetterReplayFailedAction || hist[0].Detail != `feed "acme" is not declared` {
		t.Fatalf("history = %+v, %v; want the failed replay", hist, err)
	}
	if len(b.auditWithPlan(t, store.PlanDeadLetterReplayed)) != 0 {
		t.Fatal("a refused replay was audited as replayed")
	}
}

func testReviewResolve(t *testing.T, b *testBundle) {
	w := hr("w1")
	b.record(t, fact(w, "e1", connector.KindHired, 0))
	c := b.claimOne(t, "c", b.now, w)
	b.complete(t, connector.Completion{Claim: c, Owner: "c", Review: &connector.Review{Reason: "2 accounts match email; refusing to guess", Candidates: []string{"a1", "a2"}}})
	if _, ok := b.nextDue(t); ok {
		t.Fatal("a worker under review is due; want it to wait for a person")
	}
	rs, err := b.s.ListReviews(b.ctx, store.ReviewFilter{})
	if err != nil || len(rs) != 1 {
		t.Fatalf("reviews = %v, %v", rs, err)
	}
	id := rs[0].ID
	if _, err := b.s.ResolveReview(b.ctx, id, store.Resolution{By: "alice"}); err == nil || !strings.Contains(err.Error(), "reason") {
		t.Fatalf("resolve without a reason: %v; want an error naming the reason", err)
	}
	// A converger that claimed the worker before the resolution does not lose it.
	b.record(t, fact(w, "e2", connector.KindUpdated, 1))
	c = b.claimOne(t, "c", b.now, w)
	r, err := b.s.ResolveReview(b.ctx, id, store.Resolution{By: "alice", Reason: "merged a2 into a1 in the LMS"})
	if err != nil {
		t.Fatal(err)
	}
	if r.ResolvedAt == nil || r.ResolvedBy != "alice" || r.Resolution != "merged a2 into a1 in the LMS" || r.WorkerID != "w1" {
		t.Fatalf("resolved = %+v", r)
	}
	b.complete(t, connector.Completion{Claim: c, Owner: "c"})
	b.claimOne(t, "d", b.now, w)

	got, err := b.s.GetReview(b.ctx, id)
	if err != nil || got.ResolvedAt == nil || !got.ResolvedAt.Equal(*r.ResolvedAt) || got.ResolvedBy != "alice" || got.Resolution != r.Resolution ||
		!slices.Equal(got.Candidates, []string{"a1", "a2"}) {
		t.Fatalf("GetReview = %+v, %v", got, err)
	}
	if open, _ := b.s.ListReviews(b.ctx, store.ReviewFilter{}); len(open) != 0 {
		t.Fatalf("open reviews = %v; want none", open)
	}
	if _, err := b.s.ResolveReview(b.ctx, id, store.Resolution{By: "bob", Reason: "again"}); !errors.Is(err, connector.ErrConflict) || !strings.Contains(err.Error(), "alice") {
		t.Fatalf("resolve twice: %v; want connector.ErrConflict naming alice", err)
	}
	_, err = b.s.GetReview(b.ctx, 999999)
	wantNotFound(t, "GetReview(unknown)", err)
	audit := b.auditWithPlan(t, store.PlanReviewResolved)
	if len(audit) != 1 || audit[0].Feed != "hr" || audit[0].WorkerID != "w1" || !strings.Contains(audit[0].Detail, "alice") {
		t.Fatalf("audit = %+v; want one row for hr:w1 naming alice", audit)
	}
}
