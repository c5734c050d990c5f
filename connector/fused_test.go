package connector_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/store"
)

// writeCounter names the sandbox's write calls in the order they are made.
type writeCounter struct {
	*sandbox.LMS
	mu    sync.Mutex
	calls []string
}

func (w *writeCounter) note(call string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls = append(w.calls, call)
}

func (w *writeCounter) UpdateAccount(ctx context.Context, a connector.Account) (connector.Account, error) {
	w.note("UpdateAccount")
	return w.LMS.UpdateAccount(ctx, a)
}

func (w *writeCounter) SetActive(ctx context.Context, id string, active bool) (connector.Account, error) {
	w.note("SetActive")
	return w.LMS.SetActive(ctx, id, active)
}

func (w *writeCounter) UpdateAccountActive(ctx context.Context, a connector.Account) (connector.Account, error) {
	w.note("UpdateAccountActive")
	return w.LMS.UpdateAccountActive(ctx, a)
}

func (w *writeCounter) taken() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.calls
	w.calls = nil
	return out
}

// noActiveUpdate is writeCounter without connector.ActiveUpdater: its fields
// shadow the promoted methods.
type noActiveUpdate struct {
	*writeCounter
	UpdatesActive, UpdateAccountActive, UpdateAccountsActive struct{}
}

// TestRehireUnderNewIDOneCall (issue 12): a rehire under a new worker id
// re-keys the old account and reactivates it. Where the LMS can update an
// account and set its state in one call (connector.ActiveUpdater), that is one
// call; the audit still has both rows, the reactivation with its state after,
// as the rules on manual deactivation and the rehire report read them. Without
// the capability it is two calls, as before.
func TestRehireUnderNewIDOneCall(t *testing.T) {
	t.Parallel()
	for _, fused := range []bool{true, false} {
		day := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
		b := setup(t, day)
		wc := &writeCounter{LMS: b.lms}
		var lms connector.LMS = wc
		if !fused {
			lms = &noActiveUpdate{writeCounter: wc}
			if _, ok := lms.(connector.ActiveUpdater); ok {
				t.Fatal("noActiveUpdate still updates the state")
			}
		}
		var err error
		b.conv, err = connector.NewConverger(connector.ConvergerConfig{Store: b.db, LMS: lms, Feeds: b.feeds, Now: b.clock, Mirror: b.db})
		if err != nil {
			t.Fatal(err)
		}
		b.record(t, connector.Fact{WorkerID: "w1", Kind: connector.KindHired, Effective: day, Profile: profile("ann@example.com")})
		b.set(day.AddDate(0, 1, 0))
		b.record(t, connector.Fact{WorkerID: "w1", Kind: connector.KindLeft, Effective: b.clock()})
		if b.account(t, "hr:w1").Active {
			t.Fatalf("fused=%v: the leave did not deactivate the account", fused)
		}
		wc.taken()
		b.set(day.AddDate(1, 0, 0))
		b.record(t, connector.Fact{WorkerID: "w2", Kind: connector.KindRehired, PreviousWorkerID: "w1", Effective: b.clock(),
			Profile: profile("ann@example.com")})
		a := b.account(t, "hr:w2")
		if !a.Active {
			t.Fatalf("fused=%v: after the rehire: %+v", fused, a)
		}
		ops := wc.taken()
		want := []string{"UpdateAccountActive"}
		if !fused {
			want = []string{"UpdateAccount", "SetActive"}
		}
		if !equalStrings(ops, want) {
			t.Errorf("fused=%v: the rehire's LMS writes %v, want %v", fused, ops, want)
		}
		for _, k := range []connector.ActionKind{connector.ActionUpdate, connector.ActionReactivate} {
			es, err := b.db.ListAudit(context.Background(), store.AuditFilter{Feed: "hr", WorkerID: "w2", Action: k})
			if err != nil {
				t.Fatal(err)
			}
			if len(es) != 1 || es[0].Outcome != connector.OutcomeOK || es[0].AccountID != a.ID {
				t.Fatalf("fused=%v: %s audit rows %+v, want one ok on %s", fused, k, es, a.ID)
			}
		}
		// The rules on manual deactivation read hrsync's last state action.
		last, err := b.db.LastStateActions(context.Background(), []string{a.ID})
		if err != nil {
			t.Fatal(err)
		}
		if e, ok := last[a.ID]; !ok || e.Action != connector.ActionReactivate || e.ActiveAfter == nil || !*e.ActiveAfter {
			t.Errorf("fused=%v: hrsync's last state action on %s is %+v, want the reactivation, active after", fused, a.ID, e)
		}
		pending, err := b.db.PendingActions(context.Background(), []connector.WorkerKey{{Feed: "hr", WorkerID: "w2"}}, b.clock().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if len(pending) != 0 {
			t.Errorf("fused=%v: intent rows left pending: %v", fused, pending)
		}
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestRehireUnderNewIDOneCallCrash: the process dies after the one call that
// re-keyed and reactivated the account, before its commit. Both actions' audit
// rows were committed before the call, pending; the next converge resolves each
// from what the LMS shows (applied, recovered) and makes no call again.
func TestRehireUnderNewIDOneCallCrash(t *testing.T) {
	t.Parallel()
	day := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	b := setup(t, day)
	wc := &writeCounter{LMS: b.lms}
	cs := &crashingStore{DB: b.db}
	conv, err := connector.NewConverger(connector.ConvergerConfig{Store: cs, LMS: wc, Feeds: b.feeds, Now: b.clock, Lease: time.Minute, Mirror: b.db})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	seq := 0
	record := func(f connector.Fact) {
		t.Helper()
		seq++
		f.Feed, f.Source, f.ID, f.Time, f.Effective = "hr", b.feeds["hr"].Source, fmt.Sprintf("e%d", seq), b.clock(), b.clock().Add(-time.Minute)
		if _, err := b.db.RecordFacts(ctx, []connector.Fact{f}); err != nil {
			t.Fatal(err)
		}
	}
	record(connector.Fact{WorkerID: "w1", Kind: connector.KindHired, Profile: profile("ann@example.com")})
	if _, err := conv.Drain(ctx, 10); err != nil {
		t.Fatal(err)
	}
	record(connector.Fact{WorkerID: "w1", Kind: connector.KindLeft})
	if _, err := conv.Drain(ctx, 10); err != nil {
		t.Fatal(err)
	}
	b.set(b.clock().Add(time.Hour))
	record(connector.Fact{WorkerID: "w2", Kind: connector.KindRehired, PreviousWorkerID: "w1", Profile: profile("ann@example.com")})
	wc.taken()
	cs.crash.Store(true)
	if _, err := conv.ConvergeOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if calls := wc.taken(); !equalStrings(calls, []string{"UpdateAccountActive"}) {
		t.Fatalf("the rehire's calls %v, want one UpdateAccountActive", calls)
	}
	pending, err := b.db.PendingActions(ctx, []connector.WorkerKey{{Feed: "hr", WorkerID: "w2"}}, b.clock().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(pending[connector.WorkerKey{Feed: "hr", WorkerID: "w2"}]); n != 2 {
		t.Fatalf("%d pending rows after the crash, want the update's and the reactivation's: %v", n, pending)
	}
	b.set(b.clock().Add(2 * time.Minute)) // past the lease
	if _, err := conv.Drain(ctx, 10); err != nil {
		t.Fatal(err)
	}
	if calls := wc.taken(); len(calls) != 0 {
		t.Errorf("after the crash the worker's converge wrote again: %v", calls)
	}
	if a := b.account(t, "hr:w2"); !a.Active {
		t.Fatalf("after recovery: %+v", a)
	}
	for _, k := range []connector.ActionKind{connector.ActionUpdate, connector.ActionReactivate} {
		es, err := b.db.ListAudit(ctx, store.AuditFilter{Feed: "hr", WorkerID: "w2", Action: k})
		if err != nil {
			t.Fatal(err)
		}
		if len(es) != 1 || es[0].Outcome != connector.OutcomeOK || !strings.Contains(es[0].Detail, "applied (recovered)") {
			t.Errorf("%s rows after recovery %+v, want one applied (recovered)", k, es)
		}
	}
}

// normalising is the sandbox as an LMS that keeps the family name in capitals,
// whatever it is sent.
type normalising struct {
	*writeCounter
}

func (n *normalising) CreateAccount(ctx context.Context, a connector.Account) (connector.Account, error) {
	a.Profile.FamilyName = strings.ToUpper(a.Profile.FamilyName)
	return n.writeCounter.LMS.CreateAccount(ctx, a)
}

func (n *normalising) UpdateAccount(ctx context.Context, a connector.Account) (connector.Account, error) {
	a.Profile.FamilyName = strings.ToUpper(a.Profile.FamilyName)
	return n.writeCounter.UpdateAccount(ctx, a)
}

// TestMirrorNoWriteLoop: an LMS that answers an update with a value other than
// the one sent (it normalises it) is not written again and again. An answer
// that differs from the facts makes a converge planned from the mirror converge
// again only when it wrote no update; otherwise each converge would write the
// update again, for ever.
func TestMirrorNoWriteLoop(t *testing.T) {
	t.Parallel()
	day := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	b := setup(t, day)
	lms := &normalising{writeCounter: &writeCounter{LMS: b.lms}}
	var err error
	b.conv, err = connector.NewConverger(connector.ConvergerConfig{Store: b.db, LMS: lms, Feeds: b.feeds, Now: b.clock, Mirror: b.db})
	if err != nil {
		t.Fatal(err)
	}
	b.record(t, connector.Fact{WorkerID: "w1", Kind: connector.KindHired, Effective: day, Profile: profile("ann@example.com")})
	lms.taken()
	p := profile("ann@example.com")
	p.FamilyName = "Renamed"
	b.set(day.AddDate(0, 0, 1))
	b.record(t, connector.Fact{WorkerID: "w1", Kind: connector.KindUpdated, Effective: b.clock(), Profile: p})
	if calls := lms.taken(); len(calls) != 1 {
		t.Fatalf("the update was written %d times (%v), want once", len(calls), calls)
	}
}
