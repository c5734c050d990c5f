package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
)

// HoldStore is what the holds suite exercises beyond Store. *store.DB implements it.
type HoldStore interface {
	connector.HoldStore
	CreateHold(ctx context.Context, h connector.Hold) (int64, error)
	GetHold(ctx context.Context, id int64) (connector.Hold, error)
	ListHolds(ctx context.Context, f store.HoldFilter) ([]connector.Hold, error)
	HoldWorkers(ctx context.Context, id int64, after connector.WorkerKey, limit int) ([]connector.HeldWorker, error)
	DecideHold(ctx context.Context, id int64, d connector.HoldDecision) (connector.Hold, error)
	ApprovedHold(ctx context.Context, id int64) (connector.Hold, error)
	AllowSample(ctx context.Context, id int64, n int, by, reason string) (connector.Hold, error)
}

var _ HoldStore = (*store.DB)(nil)

// holdTests check the safeguard's store: the window's counting, one open live hold
// per feed, idempotent retries, approvals and rejections, upload holds.
var holdTests = []subTest{
	{"GrowingFeedIsMeasuredAgainBeforeAHold", testGrowingFeedIsMeasuredAgainBeforeAHold},
	{"HoldsThresholdOneHoldPerFeed", testHoldsThresholdOneHoldPerFeed},
	{"BurstIsHeldWhole", testBurstIsHeldWhole},
	{"BurstUnderThresholdsRunsWhole", testBurstUnderThresholdsRunsWhole},
	{"PersonCountedOnce", testPersonCountedOnce},
	{"JudgedUploadIsNotJudgedAgain", testJudgedUploadIsNotJudgedAgain},
	{"WindowSlides", testWindowSlides},
	{"ApproveAndReject", testApproveAndReject},
	{"ApprovalDuringHeldCommitStaysDue", testApprovalDuringHeldCommitStaysDue},
	{"UploadHold", testUploadHold},
	{"FourEyes", testFourEyes},
	{"SampleBatchOfLiveHold", testSampleBatchOfLiveHold},
	{"SampleBatchOfUploadHold", testSampleBatchOfUploadHold},
}

// hs returns b's store as a HoldStore.
func hs(t *testing.T, b *testBundle) HoldStore {
	t.Helper()
	s, ok := b.s.(HoldStore)
	if !ok {
		t.Fatalf("%T does not implement storetest.HoldStore", b.s)
	}
	return s
}

// populate hires n workers of feed, links each to an account created ok.
func populate(t *testing.T, b *testBundle, feed string, n int) []connector.WorkerKey {
	t.Helper()
	var ws []connector.WorkerKey
	var facts []connector.Fact
	for i := range n {
		w := key(feed, fmt.Sprintf("w%02d", i))
		ws = append(ws, w)
		facts = append(facts, fact(w, feed+w.WorkerID, connector.KindHired, 0))
	}
	b.record(t, facts...)
	cs := b.claim(t, "populate", b.now, n+10)
	var comps []connector.Completion
	for _, c := range cs {
		if c.Worker.Feed != feed {
			continue
		}
		acct := "acct-" + c.Worker.String()
		comps = append(comps, connector.Completion{Claim: c, Owner: "populate", AccountID: acct,
			Audit: []connector.AuditEntry{{Action: connector.ActionCreate, Outcome: connector.OutcomeOK, AccountID: acct}}})
	}
	if err := b.s.CompleteAll(b.ctx, comps); err != nil {
		t.Fatalf("CompleteAll: %v", err)
	}
	return ws
}

// limit20 holds more than 20% of the feed, or more than 20% of all feeds.
func limit20(c connector.WindowCounts) (bool, string) {
	th := connector.Thresholds{Percent: 20}
	if hit, why := th.Exceeded(c.FeedRemovals, c.FeedActive); hit {
		return true, "feed: " + why
	}
	if hit, why := th.Exceeded(c.AllRemovals, c.AllActive); hit {
		return true, "all: " + why
	}
	return false, ""
}

// req is a removal request of w's account at at, decided by limit20 over an hour's window.
func req(b *testBundle, w connector.WorkerKey, version int64, at time.Time) connector.RemovalRequest {
	return connector.RemovalRequest{Worker: w, Version: version, AccountID: "acct-" + w.String(), Action: connector.ActionDeactivate,
		Name: "Name " + w.WorkerID, Email: w.WorkerID + "@example.com", Now: at, Window: time.Hour, Decide: limit20}
}

// reserve reserves r and fails t on an error.
func reserve(t *testing.T, s HoldStore, r connector.RemovalRequest) connector.RemovalVerdict {
	t.Helper()
	v, err := s.ReserveRemoval(t.Context(), r)
	if err != nil {
		t.Fatalf("ReserveRemoval(%s): %v", r.Worker, err)
	}
	return v
}

func testGrowingFeedIsMeasuredAgainBeforeAHold(t *testing.T, b *testBundle) {
	s := hs(t, b)
	hr := populate(t, b, "hr", 10)
	// The window starts with 10 active accounts.
	if v := reserve(t, s, req(b, hr[0], 1, b.now)); !v.Allow {
		t.Fatalf("first removal = %+v", v)
	}
	// A bulk import: 90 more people, active, within the same window.
	var facts []connector.Fact
	for i := range 90 {
		w := key("hr", fmt.Sprintf("n%03d", i))
		facts = append(facts, fact(w, "imp"+w.WorkerID, connector.KindHired, 0))
	}
	b.record(t, facts...)
	var comps []connector.Completion
	for _, c := range b.claim(t, "import", b.now.Add(time.Minute), 200) {
		acct := "acct-" + c.Worker.String()
		comps = append(comps, connector.Completion{Claim: c, Owner: "import", AccountID: acct,
			Audit: []connector.AuditEntry{{Action: connector.ActionCreate, Outcome: connector.OutcomeOK, AccountID: acct}}})
	}
	if err := b.s.CompleteAll(b.ctx, comps); err != nil {
		t.Fatal(err)
	}
	// 20 removals of 100 active: the stale base of 10 would hold the 3rd.
	for i := 1; i < 10; i++ {
		if v := reserve(t, s, req(b, hr[i], 1, b.now.Add(2*time.Minute))); !v.Allow {
			t.Fatalf("removal %d of a grown feed = %+v, want allowed", i+1, v)
		}
	}
	for i := range 10 {
		if v := reserve(t, s, req(b, key("hr", fmt.Sprintf("n%03d", i)), 1, b.now.Add(3*time.Minute))); !v.Allow {
			t.Fatalf("removal %d of a grown feed = %+v, want allowed", i+11, v)
		}
	}
	// The 21st of 100 crosses 20%: held, measured against the grown feed (the
	// removals decided in the window count once, not also as active).
	v := reserve(t, s, req(b, key("hr", "n010"), 1, b.now.Add(4*time.Minute)))
	if v.Allow || v.Status != connector.HoldOpen {
		t.Fatalf("21st removal = %+v, want held", v)
	}
	if h, err := s.GetHold(b.ctx, v.HoldID); err != nil || h.Counts.Active != 100 {
		t.Fatalf("hold = %+v, %v; want measured against 100 active accounts", h, err)
	}
}

func testHoldsThresholdOneHoldPerFeed(t *testing.T, b *testBundle) {
	s := hs(t, b)
	hr := populate(t, b, "hr", 10)
	acme := populate(t, b, "partner-acme", 40)
	var seen []connector.RemovalVerdict
	for i := range 5 {
		seen = append(seen, reserve(t, s, req(b, hr[i], 1, b.now.Add(time.Duration(i)*time.Minute))))
	}
	// 2 of 10 is 20%: allowed; the 3rd opens a hold, the rest join it.
	if !seen[0].Allow || !seen[1].Allow || seen[0].HoldID != 0 {
		t.Fatalf("first two removals: %+v", seen[:2])
	}
	if seen[2].Allow || seen[2].Status != connector.HoldOpen || seen[2].HoldID == 0 {
		t.Fatalf("third removal = %+v, want held in a new hold", seen[2])
	}
	for _, v := range seen[3:] {
		if v.Allow || v.HoldID != seen[2].HoldID {
			t.Fatalf("later removal = %+v, want held in hold %d", v, seen[2].HoldID)
		}
	}
	// A retry of an allowed removal is allowed and not counted again; a held
	// one stays held.
	if v := reserve(t, s, req(b, hr[0], 1, b.now.Add(10*time.Minute))); !v.Allow {
		t.Fatalf("retry of an allowed removal = %+v", v)
	}
	if v := reserve(t, s, req(b, hr[3], 1, b.now.Add(10*time.Minute))); v.Allow || v.HoldID != seen[2].HoldID {
		t.Fatalf("retry of a held removal = %+v", v)
	}
	// Another feed is not held by hr's hold: 8 of 40 is 20%.
	for i := range 8 {
		if v := reserve(t, s, req(b, acme[i], 1, b.now.Add(11*time.Minute))); !v.Allow {
			t.Fatalf("partner removal %d = %+v, want allowed", i, v)
		}
	}
	h, err := s.GetHold(b.ctx, seen[2].HoldID)
	if err != nil {
		t.Fatal(err)
	}
	if h.Feed != "hr" || h.Kind != connector.HoldLive || h.Status != connector.HoldOpen || h.Counts.Removals != 3 ||
		h.Counts.Deactivations != 3 || h.Counts.Active != 10 || h.Reason == "" {
		t.Fatalf("hold = %+v", h)
	}
	ws, err := s.HoldWorkers(b.ctx, h.ID, connector.WorkerKey{}, 0)
	if err != nil || len(ws) != 3 || ws[0].Worker != hr[2] || ws[0].Version != 1 || ws[0].Email != "w02@example.com" || ws[0].AccountID != "acct-hr:w02" {
		t.Fatalf("HoldWorkers = %+v, %v", ws, err)
	}
	page, err := s.HoldWorkers(b.ctx, h.ID, ws[0].Worker, 1)
	if err != nil || len(page) != 1 || page[0].Worker != hr[3] {
		t.Fatalf("HoldWorkers page = %+v, %v", page, err)
	}
	list, err := s.ListHolds(b.ctx, store.HoldFilter{Status: connector.HoldOpen})
	if err != nil || len(list) != 1 || list[0].ID != h.ID {
		t.Fatalf("ListHolds(open) = %+v, %v", list, err)
	}
	if _, err := s.CreateHold(b.ctx, connector.Hold{Feed: "hr", Kind: connector.HoldLive, Reason: "x"}); !errors.Is(err, connector.ErrConflict) {
		t.Fatalf("second open live hold: err = %v, want ErrConflict", err)
	}
	_, err = s.GetHold(b.ctx, h.ID+100)
	wantNotFound(t, "GetHold", err)
}

// A burst settles, then is judged whole: 10 leavers of a 20-person feed sent
// together all wait, none runs (without a settle period 4 ran, then 6 held).
func testBurstIsHeldWhole(t *testing.T, b *testBundle) {
	s := hs(t, b)
	hr := populate(t, b, "hr", 20)
	settle := func(r connector.RemovalRequest) connector.RemovalRequest { r.Settle = time.Minute; return r }
	var burst int64
	for i := range 10 {
		v := reserve(t, s, settle(req(b, hr[i], 1, b.now.Add(time.Duration(i)*time.Second))))
		if v.Allow || v.Status != connector.HoldSettling || !v.Wait.Equal(b.now.Add(time.Minute)) {
			t.Fatalf("removal %d of the burst = %+v, want to wait until the burst is judged", i, v)
		}
		if burst == 0 {
			burst = v.HoldID
		} else if v.HoldID != burst {
			t.Fatalf("removal %d in burst %d, want %d", i, v.HoldID, burst)
		}
	}
	// Settling bursts wait for nobody: not listed by default.
	if list, err := s.ListHolds(b.ctx, store.HoldFilter{}); err != nil || len(list) != 0 {
		t.Fatalf("ListHolds = %+v, %v; want no hold while the burst settles", list, err)
	}
	judged := b.now.Add(time.Minute)
	for i := range 10 {
		v := reserve(t, s, settle(req(b, hr[i], 1, judged.Add(time.Duration(i)*time.Millisecond))))
		if v.Allow || v.Status != connector.HoldOpen || v.HoldID != burst || v.Reason == "" {
			t.Fatalf("removal %d after the burst settled = %+v, want held in hold %d", i, v, burst)
		}
	}
	h, err := s.GetHold(b.ctx, burst)
	if err != nil || h.Status != connector.HoldOpen || h.Counts.Removals != 10 || h.Counts.Active != 20 {
		t.Fatalf("hold = %+v, %v; want 10 removals of 20 active, open", h, err)
	}
	// A later leaver is a burst of its own: held removals do not count against
	// the window, so it runs while the held ones wait for a person.
	later := b.now.Add(5 * time.Minute)
	if v := reserve(t, s, settle(req(b, hr[15], 1, later))); v.Status != connector.HoldSettling {
		t.Fatalf("later leaver = %+v, want a new burst", v)
	}
	if v := reserve(t, s, settle(req(b, hr[15], 1, later.Add(time.Minute)))); !v.Allow {
		t.Fatalf("later leaver after its burst settled = %+v, want allowed", v)
	}
	// A held worker asking again stays in the hold.
	if v := reserve(t, s, settle(req(b, hr[3], 1, later.Add(2*time.Minute)))); v.Allow || v.HoldID != burst {
		t.Fatalf("held worker asking again = %+v, want still held in %d", v, burst)
	}
}

func testBurstUnderThresholdsRunsWhole(t *testing.T, b *testBundle) {
	s := hs(t, b)
	hr := populate(t, b, "hr", 20)
	settle := func(r connector.RemovalRequest) connector.RemovalRequest { r.Settle = time.Minute; return r }
	for i := range 4 { // 4 of 20 is 20%: not more
		if v := reserve(t, s, settle(req(b, hr[i], 1, b.now))); v.Status != connector.HoldSettling {
			t.Fatalf("removal %d = %+v, want settling", i, v)
		}
	}
	for i := range 4 {
		if v := reserve(t, s, settle(req(b, hr[i], 1, b.now.Add(time.Minute)))); !v.Allow {
			t.Fatalf("removal %d after the burst settled = %+v, want allowed", i, v)
		}
	}
	// The passed burst is kept for the record, and counts in the window: one
	// more leaver (5 of 20, 25%) in the next burst is held.
	if list, err := s.ListHolds(b.ctx, store.HoldFilter{Status: connector.HoldPassed}); err != nil || len(list) != 1 || list[0].Counts.Removals != 4 {
		t.Fatalf("passed bursts = %+v, %v", list, err)
	}
	reserve(t, s, settle(req(b, hr[10], 1, b.now.Add(2*time.Minute))))
	if v := reserve(t, s, settle(req(b, hr[10], 1, b.now.Add(3*time.Minute)))); v.Allow || v.Status != connector.HoldOpen {
		t.Fatalf("5th removal of 20 within the window = %+v, want held", v)
	}
}

// A person who leaves, comes back and leaves again within the window is one
// testJudgedUploadIsNotJudgedAgain: an upload judged whole under the thresholds is
// recorded as passed; its removals then run as they arrive, not judged again
// piecemeal against a window that other removals have filled meanwhile.
func testJudgedUploadIsNotJudgedAgain(t *testing.T, b *testBundle) {
	s := hs(t, b)
	hr := populate(t, b, "hr", 20)
	settle := func(r connector.RemovalRequest) connector.RemovalRequest { r.Settle = time.Minute; return r }
	// A live burst of 4 (20%) ran.
	for i := range 4 {
		reserve(t, s, settle(req(b, hr[i], 1, b.now)))
	}
	for i := range 4 {
		if v := reserve(t, s, settle(req(b, hr[i], 1, b.now.Add(time.Minute)))); !v.Allow {
			t.Fatalf("live removal %d = %+v", i, v)
		}
	}
	// An upload of 3 leavers (15%) passed its own check.
	up, err := s.CreateHold(b.ctx, connector.Hold{Feed: "hr", Kind: connector.HoldUpload, Status: connector.HoldPassed,
		Reason: "roster upload x.csv by partner: 3 leavers of 20 active",
		Workers: []connector.HeldWorker{{Worker: hr[10], Action: connector.ActionDeactivate, Name: "Ann Lee", Email: "ann@example.com"},
			{Worker: hr[11], Action: connector.ActionDeactivate}, {Worker: hr[12], Action: connector.ActionDeactivate}}})
	if err != nil {
		t.Fatal(err)
	}
	if h, err := s.GetHold(b.ctx, up); err != nil || h.Status != connector.HoldPassed || h.DecidedBy != "safeguard" {
		t.Fatalf("passed upload = %+v, %v", h, err)
	}
	// Its removals run at once: 4 + 3 of 20 would be held if judged again.
	for i := 10; i < 13; i++ {
		if v := reserve(t, s, settle(req(b, hr[i], 1, b.now.Add(2*time.Minute)))); !v.Allow {
			t.Fatalf("removal of upload leaver %d = %+v, want allowed without a new judgement", i, v)
		}
	}
	// Only an upload can be created as passed.
	if _, err := s.CreateHold(b.ctx, connector.Hold{Feed: "hr", Kind: connector.HoldLive, Status: connector.HoldPassed}); err == nil {
		t.Error("a live hold created as passed")
	}
}

// removal, not two.
func testPersonCountedOnce(t *testing.T, b *testBundle) {
	s := hs(t, b)
	hr := populate(t, b, "hr", 20)
	settle := func(r connector.RemovalRequest) connector.RemovalRequest { r.Settle = time.Minute; return r }
	at := b.now
	for round := int64(1); round <= 3; round++ {
		for i := range 4 {
			reserve(t, s, settle(req(b, hr[i], round, at)))
		}
		at = at.Add(time.Minute)
		for i := range 4 {
			if v := reserve(t, s, settle(req(b, hr[i], round, at))); !v.Allow {
				t.Fatalf("round %d, removal %d = %+v: the same 4 people of 20 were counted more than once", round, i, v)
			}
		}
		at = at.Add(time.Minute)
	}
}

func testWindowSlides(t *testing.T, b *testBundle) {
	s := hs(t, b)
	hr := populate(t, b, "hr", 10)
	for i := range 2 {
		if v := reserve(t, s, req(b, hr[i], 1, b.now)); !v.Allow {
			t.Fatalf("removal %d = %+v", i, v)
		}
	}
	// An hour later the first two no longer count: two more may go. The base is
	// measured again: the 8 still active (nobody recorded the deactivations in
	// the audit here, so 10) plus none removed within the window.
	later := b.now.Add(time.Hour + time.Second)
	for i := 2; i < 4; i++ {
		if v := reserve(t, s, req(b, hr[i], 1, later)); !v.Allow {
			t.Fatalf("removal %d an hour later = %+v", i, v)
		}
	}
	if v := reserve(t, s, req(b, hr[4], 1, later)); v.Allow {
		t.Fatalf("third removal of the new window = %+v, want held", v)
	}
}

func testApproveAndReject(t *testing.T, b *testBundle) {
	s := hs(t, b)
	hr := populate(t, b, "hr", 10)
	at := b.now.Add(time.Minute)
	for i := range 2 {
		reserve(t, s, req(b, hr[i], 1, at))
	}
	held := reserve(t, s, req(b, hr[2], 1, at))
	reserve(t, s, req(b, hr[3], 1, at))
	if held.Allow {
		t.Fatal("not held")
	}
	if _, err := s.DecideHold(b.ctx, held.HoldID, connector.HoldDecision{Approve: true}); err == nil {
		t.Fatal("a decision without who and why was accepted")
	}
	// Nothing is due before the decision (the test claimed everything).
	if cs := b.claim(t, "before", b.now.Add(time.Hour), 100); len(cs) != 0 {
		t.Fatalf("due before the decision: %v", claimKeys(cs))
	}
	h, err := s.DecideHold(b.ctx, held.HoldID, connector.HoldDecision{Approve: true, By: "alice", Reason: "end of season"})
	if err != nil || h.Status != connector.HoldApproved || h.DecidedBy != "alice" || h.Decision != "end of season" || h.DecidedAt == nil {
		t.Fatalf("DecideHold = %+v, %v", h, err)
	}
	if _, err := s.DecideHold(b.ctx, held.HoldID, connector.HoldDecision{By: "bob", Reason: "no"}); !errors.Is(err, connector.ErrConflict) {
		t.Fatalf("second decision: err = %v, want ErrConflict", err)
	}
	// The held workers are due, and their removals pass without counting.
	cs := b.claim(t, "after", b.now.Add(time.Hour), 100)
	if got := claimKeys(cs); len(got) != 2 || got[0] != "hr:w02" || got[1] != "hr:w03" {
		t.Fatalf("due after approval: %v", got)
	}
	for _, w := range hr[2:4] {
		if v := reserve(t, s, req(b, w, 1, at.Add(time.Minute))); !v.Allow || v.HoldID != held.HoldID || v.Status != connector.HoldApproved {
			t.Fatalf("approved removal of %s = %+v", w, v)
		}
	}
	audit, err := b.s.ListAudit(b.ctx, store.AuditFilter{Feed: "hr", WorkerID: "w02"})
	if err != nil || len(audit) == 0 || audit[0].Outcome != connector.OutcomeApproved || audit[0].Action != connector.ActionDeactivate {
		t.Fatalf("audit of w02 = %+v, %v", audit, err)
	}
	// Approved removals do not count: the window still has room for nothing
	// more than its own 2 of 10, so the next one opens a new hold.
	next := reserve(t, s, req(b, hr[4], 1, at.Add(2*time.Minute)))
	if next.Allow || next.HoldID == held.HoldID || next.Status != connector.HoldOpen {
		t.Fatalf("removal after the approval = %+v, want a new hold", next)
	}
	reserve(t, s, req(b, hr[5], 1, at.Add(2*time.Minute)))
	if _, err := s.DecideHold(b.ctx, next.HoldID, connector.HoldDecision{By: "bob", Reason: "truncated feed"}); err != nil {
		t.Fatal(err)
	}
	// Rejected: kept as is for the same facts, even when made due again.
	if v := reserve(t, s, req(b, hr[4], 1, at.Add(3*time.Minute))); v.Allow || v.Status != connector.HoldRejected || v.HoldID != next.HoldID || v.Reason != "truncated feed" {
		t.Fatalf("rejected removal = %+v", v)
	}
	if cs := b.claim(t, "rejected", b.now.Add(time.Hour), 100); len(cs) != 0 {
		t.Fatalf("due after a rejection: %v", claimKeys(cs))
	}
	// A new fact (version 2) is decided afresh: a new hold opens (the window
	// is still full).
	if v := reserve(t, s, req(b, hr[4], 2, at.Add(4*time.Minute))); v.Allow || v.Status != connector.HoldOpen || v.HoldID == next.HoldID {
		t.Fatalf("removal for a new fact after a rejection = %+v, want a new hold", v)
	}
	list, err := s.ListHolds(b.ctx, store.HoldFilter{Feed: "hr"})
	if err != nil || len(list) != 3 || list[1].Status != connector.HoldRejected || list[2].Status != connector.HoldApproved {
		t.Fatalf("ListHolds = %+v, %v", list, err)
	}
}

// An approval given while the converger commits the held plan survives that
// commit: the completion of a claim taken before the approval must not clear
// the due time the approval set (issue #10, defect 2).
func testApprovalDuringHeldCommitStaysDue(t *testing.T, b *testBundle) {
	for _, batch := range []bool{false, true} {
		t.Run(fmt.Sprintf("Batch=%v", batch), func(t *testing.T) {
			t.Parallel()
			b := b.another(t)
			s := hs(t, b)
			hr := populate(t, b, "hr", 10)
			at := b.now.Add(time.Minute)
			for i := range 2 {
				reserve(t, s, req(b, hr[i], 1, at))
			}
			// hr[2] and hr[3] leave; the converger claims them, plans
			// removals, and the safeguard holds hr[2].
			b.record(t, fact(hr[2], "leave2", connector.KindLeft, 1), fact(hr[3], "leave3", connector.KindLeft, 1))
			cs := b.claim(t, "conv", b.now, 10)
			if len(cs) != 2 {
				t.Fatalf("claimed %v, want hr:w02 and hr:w03", claimKeys(cs))
			}
			held := reserve(t, s, req(b, cs[0].Worker, cs[0].Version, at))
			if held.Allow || held.Status != connector.HoldOpen {
				t.Fatalf("removal of %s = %+v, want held", cs[0].Worker, held)
			}
			// A person approves before the converger commits the held outcome.
			if _, err := s.DecideHold(b.ctx, held.HoldID, connector.HoldDecision{Approve: true, By: "alice", Reason: "ok"}); err != nil {
				t.Fatal(err)
			}
			heldComp := connector.Completion{Claim: cs[0], Owner: "conv", Audit: []connector.AuditEntry{{
				Action: connector.ActionDeactivate, Outcome: connector.OutcomeHeld, Detail: fmt.Sprintf("held in hold %d", held.HoldID)}}}
			comps := []connector.Completion{heldComp}
			if batch {
				comps = append(comps, connector.Completion{Claim: cs[1], Owner: "conv"})
			}
			if err := b.s.CompleteAll(b.ctx, comps); err != nil {
				t.Fatal(err)
			}
			if !batch {
				b.complete(t, connector.Completion{Claim: cs[1], Owner: "conv"})
			}
			got := b.claim(t, "after", b.now.Add(time.Hour), 10)
			if keys := claimKeys(got); len(keys) != 1 || keys[0] != cs[0].Worker.String() {
				t.Fatalf("due after approve, then the held commit: %v, want only %s (the approval was lost)", keys, cs[0].Worker)
			}
			if v := reserve(t, s, req(b, got[0].Worker, got[0].Version, at.Add(time.Minute))); !v.Allow || v.HoldID != held.HoldID {
				t.Fatalf("removal after the approval = %+v, want allowed by hold %d", v, held.HoldID)
			}
			// The next claim's completion clears the wake: the worker is done.
			b.complete(t, connector.Completion{Claim: got[0], Owner: "after"})
			if cs := b.claim(t, "later", b.now.Add(2*time.Hour), 10); len(cs) != 0 {
				t.Fatalf("due after the approved removal was committed: %v", claimKeys(cs))
			}
		})
	}
}

func testUploadHold(t *testing.T, b *testBundle) {
	s := hs(t, b)
	hr := populate(t, b, "hr", 10)
	id, err := s.CreateHold(b.ctx, connector.Hold{Feed: "hr", Kind: connector.HoldUpload, Reason: "roster removes 9 of 10",
		Counts: connector.HoldCounts{Active: 10}, Payload: []byte(`{"events":[]}`),
		Workers: []connector.HeldWorker{{Worker: hr[0], Name: "=cmd", Action: connector.ActionDeactivate}, {Worker: hr[1]}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ApprovedHold(b.ctx, id); !errors.Is(err, store.ErrHoldNotApproved) {
		t.Fatalf("ApprovedHold of an open hold: err = %v", err)
	}
	h, err := s.GetHold(b.ctx, id)
	if err != nil || h.Kind != connector.HoldUpload || h.Counts.Removals != 2 || h.Counts.Active != 10 || string(h.Payload) != `{"events":[]}` {
		t.Fatalf("GetHold = %+v, %v", h, err)
	}
	if _, err := s.DecideHold(b.ctx, id, connector.HoldDecision{Approve: true, By: "carol", Reason: "annual roster"}); err != nil {
		t.Fatal(err)
	}
	// An upload's approval marks nobody due: its facts are not published yet.
	if cs := b.claim(t, "upload", b.now.Add(time.Hour), 100); len(cs) != 0 {
		t.Fatalf("due after an upload approval: %v", claimKeys(cs))
	}
	h, err = s.ApprovedHold(b.ctx, id)
	if err != nil || string(h.Payload) != `{"events":[]}` || h.DecidedBy != "carol" {
		t.Fatalf("ApprovedHold = %+v, %v", h, err)
	}
	// Once published, the approved workers' removals pass at whatever version
	// the facts give them, and stay bound to it.
	if v := reserve(t, s, req(b, hr[0], 2, b.now)); !v.Allow || v.HoldID != id {
		t.Fatalf("approved upload removal = %+v", v)
	}
	ws, err := s.HoldWorkers(b.ctx, id, connector.WorkerKey{}, 0)
	if err != nil || len(ws) != 2 || ws[0].Version != 2 || ws[1].Version != 0 {
		t.Fatalf("HoldWorkers after use = %+v, %v", ws, err)
	}
}

// Four eyes: who caused a hold never approves it, and a hold that needs two
// approvals is approved by the second different person, each approval audited.
func testFourEyes(t *testing.T, b *testBundle) {
	s := hs(t, b)
	hr := populate(t, b, "hr", 10)
	id, err := s.CreateHold(b.ctx, connector.Hold{Feed: "hr", Kind: connector.HoldUpload, Reason: "roster removes 9 of 10",
		CausedBy: "ursula", ApprovalsNeeded: 2, Counts: connector.HoldCounts{Active: 10},
		Workers: []connector.HeldWorker{{Worker: hr[0], Action: connector.ActionDeactivate}}})
	if err != nil {
		t.Fatal(err)
	}
	approve := func(by string) (connector.Hold, error) {
		return s.DecideHold(b.ctx, id, connector.HoldDecision{Approve: true, By: by, Reason: "checked"})
	}
	if _, err := approve("Ursula"); !errors.Is(err, connector.ErrFourEyes) {
		t.Fatalf("the uploader approving (another case): err = %v, want ErrFourEyes", err)
	}
	h, err := approve("alice")
	if err != nil || h.Status != connector.HoldOpen || len(h.Approvals) != 1 || h.Approvals[0] != "alice" {
		t.Fatalf("first of two approvals = %+v, %v; want still open, approved by alice", h, err)
	}
	if _, err := approve("alice"); !errors.Is(err, connector.ErrFourEyes) {
		t.Fatalf("the same approver twice: err = %v, want ErrFourEyes", err)
	}
	if h, err = s.GetHold(b.ctx, id); err != nil || h.CausedBy != "ursula" || h.Needed() != 2 || len(h.Approvals) != 1 {
		t.Fatalf("GetHold = %+v, %v", h, err)
	}
	h, err = approve("bob")
	if err != nil || h.Status != connector.HoldApproved || h.DecidedBy != "bob" {
		t.Fatalf("second approval = %+v, %v; want approved by bob", h, err)
	}
	es, err := b.s.(interface {
		ListAudit(context.Context, store.AuditFilter) ([]connector.AuditEntry, error)
	}).ListAudit(b.ctx, store.AuditFilter{Feed: "hr", Action: connector.ActionNone})
	if err != nil || len(es) != 1 || es[0].Outcome != connector.OutcomeApproved || es[0].HoldID != id {
		t.Fatalf("audit of the first approval = %+v, %v", es, err)
	}
	es, err = b.s.(interface {
		ListAudit(context.Context, store.AuditFilter) ([]connector.AuditEntry, error)
	}).ListAudit(b.ctx, store.AuditFilter{Feed: "hr", WorkerID: hr[0].WorkerID, Action: connector.ActionDeactivate})
	if err != nil || len(es) != 1 || es[0].Detail != fmt.Sprintf("hold %d approved by alice and bob: checked", id) {
		t.Fatalf("audit of the approval = %+v, %v", es, err)
	}
}

// A sample batch of a live hold: a person lets its first people (in key order)
// run before deciding the rest. Only they are due and allowed; the rest stay
// held; a newer fact for a sampled person is not covered by the sample.
func testSampleBatchOfLiveHold(t *testing.T, b *testBundle) {
	s := hs(t, b)
	hr := populate(t, b, "hr", 10)
	at := b.now.Add(time.Minute)
	for i := range 2 {
		reserve(t, s, req(b, hr[i], 1, at))
	}
	var held connector.RemovalVerdict
	for _, w := range hr[2:6] {
		if held = reserve(t, s, req(b, w, 1, at)); held.Allow || held.Status != connector.HoldOpen {
			t.Fatalf("removal of %s = %+v, want held", w, held)
		}
	}
	if _, err := s.AllowSample(b.ctx, held.HoldID, 2, "", "try two"); err == nil {
		t.Fatal("a sample without who decides was accepted")
	}
	h, err := s.AllowSample(b.ctx, held.HoldID, 2, "alice", "try two first")
	if err != nil || h.Sample != 2 || h.Status != connector.HoldOpen {
		t.Fatalf("AllowSample = %+v, %v; want a sample of 2, still open", h, err)
	}
	if _, err := s.AllowSample(b.ctx, held.HoldID, 1, "alice", "shrink"); err == nil {
		t.Fatal("a sample shrank")
	}
	// Only the sampled people are due, and only their removals run.
	cs := b.claim(t, "sample", b.now.Add(time.Hour), 100)
	if got := claimKeys(cs); len(got) != 2 || got[0] != "hr:w02" || got[1] != "hr:w03" {
		t.Fatalf("due after the sample: %v, want hr:w02 and hr:w03", got)
	}
	if v := reserve(t, s, req(b, hr[2], 1, at.Add(time.Minute))); !v.Allow || v.HoldID != held.HoldID || v.Status != connector.HoldApproved {
		t.Fatalf("sampled removal of w02 = %+v, want allowed by hold %d", v, held.HoldID)
	}
	for _, w := range hr[4:6] {
		if v := reserve(t, s, req(b, w, 1, at.Add(time.Minute))); v.Allow || v.HoldID != held.HoldID || v.Status != connector.HoldOpen {
			t.Fatalf("removal of %s outside the sample = %+v, want still held", w, v)
		}
	}
	// w03 left again (a newer fact) before its sampled removal ran: the sample
	// does not cover it, and asking again does not either.
	for range 2 {
		if v := reserve(t, s, req(b, hr[3], 2, at.Add(2*time.Minute))); v.Allow || v.Status != connector.HoldOpen {
			t.Fatalf("removal of w03 at a newer version = %+v, want held", v)
		}
	}
	ws, err := s.HoldWorkers(b.ctx, held.HoldID, connector.WorkerKey{}, 0)
	if err != nil || len(ws) != 4 || !ws[0].Sampled || ws[1].Sampled || ws[2].Sampled || ws[3].Sampled {
		t.Fatalf("HoldWorkers = %+v, %v; want only w02 sampled", ws, err)
	}
	audit, err := b.s.ListAudit(b.ctx, store.AuditFilter{Feed: "hr", WorkerID: "w02"})
	if err != nil || len(audit) == 0 || audit[0].Outcome != connector.OutcomeApproved || audit[0].Plan != "sample" ||
		audit[0].Detail != fmt.Sprintf("hold %d: in a sample batch of 2 of 4 people approved by alice: try two first", held.HoldID) {
		t.Fatalf("audit of w02 = %+v, %v", audit, err)
	}
	// The rest, approved, runs.
	if _, err := s.DecideHold(b.ctx, held.HoldID, connector.HoldDecision{Approve: true, By: "bob", Reason: "the sample went well"}); err != nil {
		t.Fatal(err)
	}
	for i, w := range hr[3:6] {
		version := map[bool]int64{true: 2, false: 1}[i == 0] // w03's newer fact is in the hold
		if v := reserve(t, s, req(b, w, version, at.Add(3*time.Minute))); !v.Allow || v.HoldID != held.HoldID {
			t.Fatalf("removal of %s after the approval = %+v", w, v)
		}
	}
}

// A sample batch of an upload hold: four eyes apply; nobody is made due (the
// caller publishes the sampled leavers); a sampled removal runs at whatever
// version its fact has; a rejection before it ran keeps the account.
func testSampleBatchOfUploadHold(t *testing.T, b *testBundle) {
	s := hs(t, b)
	hr := populate(t, b, "hr", 10)
	id, err := s.CreateHold(b.ctx, connector.Hold{Feed: "hr", Kind: connector.HoldUpload, Reason: "roster removes 3 of 10",
		CausedBy: "ursula", Counts: connector.HoldCounts{Active: 10},
		Workers: []connector.HeldWorker{{Worker: hr[0]}, {Worker: hr[1]}, {Worker: hr[2]}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AllowSample(b.ctx, id, 2, "Ursula", "mine"); !errors.Is(err, connector.ErrFourEyes) {
		t.Fatalf("the uploader's sample: err = %v, want ErrFourEyes", err)
	}
	if h, err := s.AllowSample(b.ctx, id, 5, "alice", "try first"); err != nil || h.Sample != 3 {
		t.Fatalf("AllowSample(5) of 3 = %+v, %v; want a sample of all 3", h, err)
	}
	if h, err := s.AllowSample(b.ctx, id, 3, "alice", "again"); err != nil || h.Sample != 3 {
		t.Fatalf("AllowSample again = %+v, %v", h, err)
	}
	if cs := b.claim(t, "upload", b.now.Add(time.Hour), 100); len(cs) != 0 {
		t.Fatalf("due after an upload's sample: %v", claimKeys(cs))
	}
	if v := reserve(t, s, req(b, hr[0], 3, b.now)); !v.Allow || v.HoldID != id {
		t.Fatalf("sampled upload removal = %+v, want allowed by hold %d", v, id)
	}
	if _, err := s.DecideHold(b.ctx, id, connector.HoldDecision{By: "bob", Reason: "wrong file after all"}); err != nil {
		t.Fatal(err)
	}
	if v := reserve(t, s, req(b, hr[1], 3, b.now)); v.Allow || v.Status != connector.HoldRejected || v.HoldID != id {
		t.Fatalf("sampled removal after the upload was rejected = %+v, want rejected", v)
	}
	if v := reserve(t, s, req(b, hr[0], 3, b.now)); !v.Allow {
		t.Fatalf("the sampled removal that ran, asked again = %+v, want allowed (a retry)", v)
	}
	ws, err := s.HoldWorkers(b.ctx, id, connector.WorkerKey{}, 0)
	if err != nil || ws[0].Version != 3 || ws[1].Version != 3 || ws[2].Version != 0 {
		t.Fatalf("HoldWorkers = %+v, %v; want the versions bound", ws, err)
	}
}
