package connector_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/store"
)

// batchLMS is the sandbox with its batch writes counted, and failures to order.
type batchLMS struct {
	*sandbox.LMS
	mu    sync.Mutex
	calls map[string]int
	// failItem: the externalId whose next create item is refused as unavailable.
	failItem string
	// loseCreates: how many CreateAccounts calls are applied and then answered 503.
	loseCreates int
	// refuseSets: how many SetActiveMany calls are refused whole, 429, before any item.
	refuseSets int
	// notSent: how many CreateAccounts calls fail as the guard fails a call it
	// never sent (quarantined).
	notSent int
}

func (l *batchLMS) count(op string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.calls == nil {
		l.calls = map[string]int{}
	}
	l.calls[op]++
	return l.calls[op]
}

func (l *batchLMS) n(op string) int { l.mu.Lock(); defer l.mu.Unlock(); return l.calls[op] }

func (l *batchLMS) CreateAccount(ctx context.Context, a connector.Account) (connector.Account, error) {
	l.count("CreateAccount")
	return l.LMS.CreateAccount(ctx, a)
}

func (l *batchLMS) SetActive(ctx context.Context, id string, active bool) (connector.Account, error) {
	l.count("SetActive")
	return l.LMS.SetActive(ctx, id, active)
}

func (l *batchLMS) CreateAccounts(ctx context.Context, accs []connector.Account) ([]connector.ItemResult, error) {
	l.count("CreateAccounts")
	l.mu.Lock()
	fail, lose, unsent := l.failItem, l.loseCreates > 0, l.notSent > 0
	l.failItem = ""
	if lose {
		l.loseCreates--
	}
	if unsent {
		l.notSent--
	}
	l.mu.Unlock()
	if unsent {
		return nil, &connector.LMSError{Kind: connector.KindUnavailable, Op: "CreateAccounts", Reason: "quarantined",
			Err: fmt.Errorf("quarantined (%w)", connector.ErrNotSent)}
	}
	var send []connector.Account
	for _, a := range accs {
		if a.ExternalID != fail {
			send = append(send, a)
		}
	}
	res, err := l.LMS.CreateAccounts(ctx, send)
	if err != nil {
		return nil, err
	}
	if lose {
		return nil, &connector.LMSError{Kind: connector.KindUnavailable, Op: "CreateAccounts", Status: 503}
	}
	out := make([]connector.ItemResult, 0, len(accs))
	for _, a := range accs {
		if a.ExternalID == fail {
			out = append(out, connector.ItemResult{Err: &connector.LMSError{Kind: connector.KindUnavailable, Op: "CreateAccounts", Reason: "busy"}})
			continue
		}
		out, res = append(out, res[0]), res[1:]
	}
	return out, nil
}

func (l *batchLMS) SetActiveMany(ctx context.Context, ids []string, active bool) ([]connector.ItemResult, error) {
	l.count("SetActiveMany")
	l.mu.Lock()
	refuse := l.refuseSets > 0
	if refuse {
		l.refuseSets--
	}
	l.mu.Unlock()
	if refuse {
		return nil, &connector.LMSError{Kind: connector.KindRateLimited, Op: "SetActiveMany", Status: 429}
	}
	return l.LMS.SetActiveMany(ctx, ids, active)
}

// batchBundle is a converger over lms whose batches hold every due worker.
func batchBundle(t *testing.T, lms connector.LMS, st connector.ConvergerStore, b *testBundle) *connector.Converger {
	t.Helper()
	conv, err := connector.NewConverger(connector.ConvergerConfig{Store: st, LMS: lms, Feeds: b.feeds, Now: b.clock,
		Batch: 64, Concurrency: 4, Lease: time.Minute,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError}))})
	if err != nil {
		t.Fatal(err)
	}
	return conv
}

func (b *testBundle) hires(t *testing.T, ids ...string) {
	t.Helper()
	var facts []connector.Fact
	for _, id := range ids {
		b.seq++
		facts = append(facts, connector.Fact{Feed: "hr", Source: b.feeds["hr"].Source, ID: fmt.Sprintf("e%d", b.seq), WorkerID: id,
			Kind: connector.KindHired, Effective: b.clock().AddDate(0, 0, -1), Time: b.clock(),
			Profile: connector.Profile{Email: id + "@example.com", GivenName: "Ann", FamilyName: id, EmployeeNumber: "E-" + id}})
	}
	if _, err := b.db.RecordFacts(t.Context(), facts); err != nil {
		t.Fatal(err)
	}
}

func (b *testBundle) leaves(t *testing.T, ids ...string) {
	t.Helper()
	var facts []connector.Fact
	for _, id := range ids {
		b.seq++
		facts = append(facts, connector.Fact{Feed: "hr", Source: b.feeds["hr"].Source, ID: fmt.Sprintf("e%d", b.seq), WorkerID: id,
			Kind: connector.KindLeft, Effective: b.clock().Add(-time.Minute), Time: b.clock()})
	}
	if _, err := b.db.RecordFacts(t.Context(), facts); err != nil {
		t.Fatal(err)
	}
}

func (b *testBundle) auditOf(t *testing.T, worker string) []connector.AuditEntry {
	t.Helper()
	a, err := b.db.ListAudit(t.Context(), store.AuditFilter{Feed: "hr", WorkerID: worker})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestBatchWritesPerItem: a batch's creates go out as one call, and one item's
// failure is that worker's alone: w3's item answered unavailable is retried on
// its own (its intent pending, then settled not applied, then created), w5's conflict (its userName taken by an account no
// rule matches) raises its review, and the others are created at once.
func TestBatchWritesPerItem(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	b := setup(t, start)
	lms := &batchLMS{LMS: b.lms, failItem: "hr:w3"}
	conv := batchBundle(t, lms, b.db, b)
	if _, err := b.lms.CreateAccount(t.Context(), connector.Account{UserName: "w5@example.com", Active: true}); err != nil {
		t.Fatal(err)
	}
	ids := []string{"w1", "w2", "w3", "w4", "w5", "w6"}
	b.hires(t, ids...)
	if n, err := conv.ConvergeOnce(t.Context()); err != nil || n != 6 {
		t.Fatalf("ConvergeOnce = %d, %v", n, err)
	}
	if c, s := lms.n("CreateAccounts"), lms.n("CreateAccount"); c != 1 || s != 0 {
		t.Fatalf("%d CreateAccounts and %d CreateAccount calls for 6 hires, want 1 and 0", c, s)
	}
	for _, id := range []string{"w1", "w2", "w4", "w6"} {
		a := b.account(t, "hr:"+id)
		if au := b.auditOf(t, id); len(au) != 1 || au[0].Outcome != connector.OutcomeOK || au[0].AccountID != a.ID {
			t.Errorf("audit of %s = %+v, want its create ok on %s", id, au, a.ID)
		}
	}
	if au := b.auditOf(t, "w3"); len(au) != 1 || au[0].Outcome != connector.OutcomePending {
		t.Errorf("audit of w3 = %+v, want its create pending: unavailable leaves open whether it was made", au)
	}
	if au := b.auditOf(t, "w5"); len(au) != 2 || au[1].Outcome != connector.OutcomeReview || au[0].Outcome != connector.OutcomeReview {
		t.Errorf("audit of w5 = %+v, want its create not done, under review", au)
	}
	b.set(start.Add(10 * time.Minute))
	if _, err := conv.Drain(t.Context(), 10); err != nil {
		t.Fatal(err)
	}
	b.account(t, "hr:w3")
	if au := b.auditOf(t, "w3"); len(au) != 2 || au[1].Outcome != connector.OutcomeNotApplied || au[0].Outcome != connector.OutcomeOK {
		t.Errorf("audit of w3 = %+v, want the first create found not applied, then the retried create ok", au)
	}
	if b.lms.Count() != 6 {
		t.Errorf("%d accounts, want 5 hires and the hand-made one", b.lms.Count())
	}
}

// TestBatchCreateLostAnswer: a batch create applied by the LMS whose answer was
// lost is not resent: the intent rows stay pending, and the next converge finds
// the accounts (by externalId), records them applied (recovered) and links them.
// Nothing is created twice.
func TestBatchCreateLostAnswer(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	b := setup(t, start)
	lms := &batchLMS{LMS: b.lms, loseCreates: 1}
	conv := batchBundle(t, lms, b.db, b)
	b.hires(t, "w1", "w2", "w3")
	if _, err := conv.ConvergeOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if b.lms.Count() != 3 {
		t.Fatalf("%d accounts after the lost answer, want 3", b.lms.Count())
	}
	for _, id := range []string{"w1", "w2", "w3"} {
		if au := b.auditOf(t, id); len(au) != 1 || au[0].Outcome != connector.OutcomePending {
			t.Fatalf("audit of %s = %+v, want its create pending (outcome unknown)", id, au)
		}
	}
	b.set(start.Add(10 * time.Minute))
	if _, err := conv.Drain(t.Context(), 10); err != nil {
		t.Fatal(err)
	}
	if b.lms.Count() != 3 || lms.n("CreateAccounts") != 1 || lms.n("CreateAccount") != 0 {
		t.Fatalf("%d accounts, %d batch creates, %d creates; want 3, 1, 0", b.lms.Count(), lms.n("CreateAccounts"), lms.n("CreateAccount"))
	}
	for _, id := range []string{"w1", "w2", "w3"} {
		a := b.account(t, "hr:"+id)
		au := b.auditOf(t, id)
		if len(au) != 1 || au[0].Outcome != connector.OutcomeOK || au[0].AccountID != a.ID || !strings.Contains(au[0].Detail, "applied (recovered)") {
			t.Errorf("audit of %s = %+v, want its create applied (recovered) on %s", id, au, a.ID)
		}
	}
	// Linked: a leave is one SetActiveMany for the three, no lookups needed.
	b.leaves(t, "w1", "w2", "w3")
	if _, err := conv.Drain(t.Context(), 10); err != nil {
		t.Fatal(err)
	}
	if n := lms.n("SetActiveMany"); n != 1 {
		t.Errorf("%d SetActiveMany calls for 3 leavers, want 1", n)
	}
	for _, id := range []string{"w1", "w2", "w3"} {
		if b.account(t, "hr:"+id).Active {
			t.Errorf("%s still active", id)
		}
	}
}

// TestBatchSetActiveRefused: a batch call refused as a whole fails each of its
// items as the single call would (retried later, audited), and the retry does
// them all.
func TestBatchSetActiveRefused(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	b := setup(t, start)
	lms := &batchLMS{LMS: b.lms}
	conv := batchBundle(t, lms, b.db, b)
	b.hires(t, "w1", "w2")
	if _, err := conv.Drain(t.Context(), 10); err != nil {
		t.Fatal(err)
	}
	lms.mu.Lock()
	lms.refuseSets = 1
	lms.mu.Unlock()
	b.leaves(t, "w1", "w2")
	if _, err := conv.ConvergeOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"w1", "w2"} {
		if au := b.auditOf(t, id); au[0].Action != connector.ActionDeactivate || au[0].Outcome != connector.OutcomeRetry {
			t.Errorf("audit of %s = %+v, want its deactivation to be retried", id, au[0])
		}
	}
	b.set(start.Add(10 * time.Minute))
	if _, err := conv.Drain(t.Context(), 10); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"w1", "w2"} {
		if b.account(t, "hr:"+id).Active {
			t.Errorf("%s still active", id)
		}
		if au := b.auditOf(t, id); au[0].Action != connector.ActionDeactivate || au[0].Outcome != connector.OutcomeOK {
			t.Errorf("audit of %s = %+v, want its deactivation ok", id, au[0])
		}
	}
	if n, s := lms.n("SetActiveMany"), lms.n("SetActive"); n != 2 || s != 0 {
		t.Errorf("%d SetActiveMany, %d SetActive; want 2 and 0", n, s)
	}
}

// TestBatchWritesFallback: an LMS whose batch writes are off (Max... 0) gets one
// call per action, with the same outcomes.
func TestBatchWritesFallback(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	b := setup(t, start)
	lms := &batchLMS{LMS: sandbox.New(sandbox.WithClock(b.clock), sandbox.WithMaxBulk(0))}
	b.lms = lms.LMS
	conv := batchBundle(t, lms, b.db, b)
	b.hires(t, "w1", "w2", "w3")
	if _, err := conv.Drain(t.Context(), 10); err != nil {
		t.Fatal(err)
	}
	b.leaves(t, "w1", "w2", "w3")
	if _, err := conv.Drain(t.Context(), 10); err != nil {
		t.Fatal(err)
	}
	if c, s, cs, ss := lms.n("CreateAccount"), lms.n("SetActive"), lms.n("CreateAccounts"), lms.n("SetActiveMany"); c != 3 || s != 3 || cs != 0 || ss != 0 {
		t.Errorf("%d CreateAccount, %d SetActive, %d CreateAccounts, %d SetActiveMany; want 3, 3, 0, 0", c, s, cs, ss)
	}
	for _, id := range []string{"w1", "w2", "w3"} {
		if b.account(t, "hr:"+id).Active {
			t.Errorf("%s still active", id)
		}
	}
}

// TestBatchCrashBetweenCallAndCommit: the process dies after a batch create,
// before the commit: every item keeps its pending intent row, and the next
// converge resolves each as applied (recovered), with no account made twice.
func TestBatchCrashBetweenCallAndCommit(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	b := setup(t, start)
	lms := &batchLMS{LMS: b.lms}
	cs := &crashingStore{DB: b.db}
	conv := batchBundle(t, lms, cs, b)
	ids := []string{"w1", "w2", "w3", "w4"}
	b.hires(t, ids...)
	cs.crash.Store(true)
	if _, err := conv.ConvergeOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if b.lms.Count() != 4 || lms.n("CreateAccounts") != 1 {
		t.Fatalf("%d accounts, %d batch creates; want 4 and 1", b.lms.Count(), lms.n("CreateAccounts"))
	}
	for _, id := range ids {
		if au := b.auditOf(t, id); len(au) != 1 || au[0].Outcome != connector.OutcomePending {
			t.Fatalf("audit of %s after the crash = %+v, want one pending create", id, au)
		}
	}
	b.set(start.Add(2 * time.Minute)) // past the lease
	if _, err := conv.Drain(t.Context(), 10); err != nil {
		t.Fatal(err)
	}
	if b.lms.Count() != 4 || lms.n("CreateAccounts") != 1 || lms.n("CreateAccount") != 0 {
		t.Fatalf("%d accounts, %d batch creates, %d creates; want 4, 1, 0", b.lms.Count(), lms.n("CreateAccounts"), lms.n("CreateAccount"))
	}
	for _, id := range ids {
		a := b.account(t, "hr:"+id)
		if au := b.auditOf(t, id); len(au) != 1 || au[0].Outcome != connector.OutcomeOK || au[0].AccountID != a.ID {
			t.Errorf("audit of %s after recovery = %+v, want applied (recovered) on %s", id, au, a.ID)
		}
	}
}

// TestBatchCreateNotSent: a batch create that never reached the LMS (the guard
// failed it fast) is a plain retry: nothing can have been made, so its intent
// rows get their outcome at once and nothing is looked up to settle them.
func TestBatchCreateNotSent(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	b := setup(t, start)
	lms := &batchLMS{LMS: b.lms, notSent: 1}
	conv := batchBundle(t, lms, b.db, b)
	b.hires(t, "w1", "w2")
	if _, err := conv.ConvergeOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"w1", "w2"} {
		if au := b.auditOf(t, id); len(au) != 1 || au[0].Outcome != connector.OutcomeRetry {
			t.Fatalf("audit of %s = %+v, want its create to be retried", id, au)
		}
	}
	b.set(start.Add(10 * time.Minute))
	if _, err := conv.Drain(t.Context(), 10); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"w1", "w2"} {
		b.account(t, "hr:"+id)
		if au := b.auditOf(t, id); len(au) != 2 || au[0].Outcome != connector.OutcomeOK {
			t.Errorf("audit of %s = %+v, want the retried create ok", id, au)
		}
	}
}
