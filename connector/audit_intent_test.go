package connector_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
)

// crashingStore is the real store whose next CompleteAll fails without
// committing anything: the process died after the LMS calls, before their commit.
type crashingStore struct {
	*store.DB
	crash atomic.Bool
}

func (s *crashingStore) CompleteAll(ctx context.Context, cs []connector.Completion) error {
	if s.crash.CompareAndSwap(true, false) {
		return errors.New("killed before the commit")
	}
	return s.DB.CompleteAll(ctx, cs)
}

// TestCrashBetweenCallAndCommitKeepsTheAudit: an LMS call whose outcome was never
// committed still has its audit row, pending, and the worker's next converge
// resolves it by what the LMS shows: applied (recovered) for a create that
// landed, not applied for one that never did (issue #10, defect 6).
func TestCrashBetweenCallAndCommitKeepsTheAudit(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 10, 31, 9, 0, 0, 0, time.UTC)
	b := setup(t, start)
	cs := &crashingStore{DB: b.db}
	conv, err := connector.NewConverger(connector.ConvergerConfig{Store: cs, LMS: b.lms, Feeds: b.feeds, Now: b.clock, Lease: time.Minute,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	hire := func(id, event string) {
		t.Helper()
		f := connector.Fact{Feed: "hr", WorkerID: id, Source: b.feeds["hr"].Source, ID: event, Kind: connector.KindHired,
			Effective: start.AddDate(0, -1, 0), Time: b.clock(), Profile: connector.Profile{Email: id + "@example.com", GivenName: "Ann", FamilyName: id, EmployeeNumber: "E-" + id}}
		if _, err := b.db.RecordFacts(ctx, []connector.Fact{f}); err != nil {
			t.Fatal(err)
		}
	}
	audit := func(worker string) []connector.AuditEntry {
		t.Helper()
		a, err := b.db.ListAudit(ctx, store.AuditFilter{Feed: "hr", WorkerID: worker})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}

	// w1's create lands in the LMS; the process dies before the commit.
	hire("w1", "e1")
	cs.crash.Store(true)
	if _, err := conv.ConvergeOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if b.lms.Count() != 1 {
		t.Fatalf("%d accounts, want w1's", b.lms.Count())
	}
	if a := audit("w1"); len(a) != 1 || a[0].Action != connector.ActionCreate || a[0].Outcome != connector.OutcomePending || a[0].Cause == "" {
		t.Fatalf("audit of w1 after the crash = %+v, want one pending create", a)
	}

	// w2's create was announced but never made (the process died first).
	hire("w2", "e2")
	if _, err := b.db.BeginActions(ctx, []connector.AuditEntry{{At: b.clock(), Feed: "hr", WorkerID: "w2", Action: connector.ActionCreate, Cause: "hired"}}); err != nil {
		t.Fatal(err)
	}

	// After the lease, the next converge resolves both and converges as usual.
	b.set(start.Add(2 * time.Minute))
	if _, err := conv.Drain(ctx, 10); err != nil {
		t.Fatal(err)
	}
	if b.lms.Count() != 2 {
		t.Fatalf("%d accounts, want 2: w1's again, or w2's missing", b.lms.Count())
	}
	w1 := b.account(t, "hr:w1")
	a1 := audit("w1")
	if len(a1) != 1 || a1[0].Outcome != connector.OutcomeOK || a1[0].AccountID != w1.ID || !strings.Contains(a1[0].Detail, "applied (recovered)") {
		t.Fatalf("audit of w1 after recovery = %+v, want its create applied (recovered) on %s", a1, w1.ID)
	}
	w2 := b.account(t, "hr:w2")
	a2 := audit("w2") // newest first
	if len(a2) != 2 || a2[1].Outcome != connector.OutcomeNotApplied || a2[0].Outcome != connector.OutcomeOK || a2[0].AccountID != w2.ID {
		t.Fatalf("audit of w2 after recovery = %+v, want the announced create not applied, then the create ok", a2)
	}
	if p, err := b.db.PendingActions(ctx, []connector.WorkerKey{{Feed: "hr", WorkerID: "w1"}, {Feed: "hr", WorkerID: "w2"}}, b.clock().Add(time.Hour)); err != nil || len(p) != 0 {
		t.Fatalf("pending rows left = %v, %v", p, err)
	}
}

// TestPendingOfPredecessorResolvedBySuccessor: a worker killed between its LMS
// call and the commit, then rehired under a new id, is never converged again
// (superseded): its successor resolves the row it left pending.
func TestPendingOfPredecessorResolvedBySuccessor(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 10, 31, 9, 0, 0, 0, time.UTC)
	b := setup(t, start)
	cs := &crashingStore{DB: b.db}
	conv, err := connector.NewConverger(connector.ConvergerConfig{Store: cs, LMS: b.lms, Feeds: b.feeds, Now: b.clock, Lease: time.Minute,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	p := connector.Profile{Email: "w1@example.com", GivenName: "Ann", FamilyName: "Lee", EmployeeNumber: "E-1"}
	record := func(f connector.Fact) {
		t.Helper()
		b.seq++
		f.Feed, f.Source, f.ID, f.Time = "hr", b.feeds["hr"].Source, fmt.Sprintf("e%d", b.seq), b.clock()
		if _, err := b.db.RecordFacts(ctx, []connector.Fact{f}); err != nil {
			t.Fatal(err)
		}
	}
	record(connector.Fact{WorkerID: "w1", Kind: connector.KindHired, Effective: start.AddDate(0, -1, 0), Profile: p})
	if _, err := conv.Drain(ctx, 10); err != nil {
		t.Fatal(err)
	}
	record(connector.Fact{WorkerID: "w1", Kind: connector.KindLeft, Effective: start.Add(-time.Hour)})
	cs.crash.Store(true) // the deactivation lands; its outcome is never committed
	if _, err := conv.ConvergeOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if a := b.account(t, "hr:w1"); a.Active {
		t.Fatal("w1's account is still active: the deactivation did not land")
	}
	b.set(start.Add(2 * time.Minute)) // past w1's lease
	record(connector.Fact{WorkerID: "w1r", Kind: connector.KindRehired, PreviousWorkerID: "w1", Effective: b.clock().Add(-time.Minute), Profile: p})
	if _, err := conv.Drain(ctx, 10); err != nil {
		t.Fatal(err)
	}
	if p, err := b.db.PendingActions(ctx, []connector.WorkerKey{{Feed: "hr", WorkerID: "w1"}}, b.clock().Add(time.Hour)); err != nil || len(p) != 0 {
		t.Fatalf("w1's rows still pending after its successor converged: %v, %v", p, err)
	}
	a, err := b.db.ListAudit(ctx, store.AuditFilter{Feed: "hr", WorkerID: "w1", Action: connector.ActionDeactivate})
	if err != nil || len(a) != 1 || a[0].Outcome != connector.OutcomeOK || !strings.Contains(a[0].Detail, "applied (recovered)") {
		t.Fatalf("w1's deactivation in the audit: %+v (%v), want applied (recovered)", a, err)
	}
	if acc := b.account(t, "hr:w1r"); !acc.Active {
		au, _ := b.db.ListAudit(ctx, store.AuditFilter{Feed: "hr"})
		t.Errorf("the successor's account is not active: %+v; audit %+v", acc, au)
	}
}
