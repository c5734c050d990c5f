package connector_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
)

// TestConvergeWorker: one named worker is converged now, through the same
// path as a claimed batch, and no other due worker is touched.
func TestConvergeWorker(t *testing.T) {
	t.Parallel()
	b := setup(t, time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC))
	ctx := context.Background()
	src := b.feeds["hr"].Source
	if _, err := b.db.RecordFacts(ctx, []connector.Fact{
		{Source: src, ID: "e1", Feed: "hr", WorkerID: "w1", Kind: connector.KindHired, Effective: b.clock(), Time: b.clock(), Profile: profile("ann@example.com")},
		{Source: src, ID: "e2", Feed: "hr", WorkerID: "w2", Kind: connector.KindHired, Effective: b.clock(), Time: b.clock(), Profile: profile("bo@example.com")},
	}); err != nil {
		t.Fatal(err)
	}
	w1 := connector.WorkerKey{Feed: "hr", WorkerID: "w1"}
	comp, err := b.conv.ConvergeWorker(ctx, w1)
	if err != nil {
		t.Fatal(err)
	}
	if len(comp.Audit) != 1 || comp.Audit[0].Action != connector.ActionCreate || comp.Audit[0].Outcome != connector.OutcomeOK {
		t.Fatalf("completion audit = %+v, want one ok create", comp.Audit)
	}
	if a := b.account(t, "hr:w1"); !a.Active || a.ID != comp.AccountID {
		t.Fatalf("account %+v, completion links %q", a, comp.AccountID)
	}
	if n := b.lms.Count(); n != 1 {
		t.Fatalf("%d accounts: w2, still due, was converged too", n)
	}
	if due, _, err := b.db.WorkerSchedule(ctx, connector.WorkerKey{Feed: "hr", WorkerID: "w2"}); err != nil || due == nil {
		t.Fatalf("w2 due = %v (%v), want still due", due, err)
	}

	// Not due any more: converged again all the same, in sync, no action.
	again, err := b.conv.ConvergeWorker(ctx, w1)
	if err != nil || len(again.Audit) != 0 {
		t.Fatalf("second ConvergeWorker = %+v, %v; want no action", again.Audit, err)
	}
	if _, err := b.conv.ConvergeWorker(ctx, connector.WorkerKey{Feed: "hr", WorkerID: "nobody"}); !errors.Is(err, connector.ErrWorkerBusy) {
		t.Fatalf("unknown worker: err %v, want ErrWorkerBusy", err)
	}
}
