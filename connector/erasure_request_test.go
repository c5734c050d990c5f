package connector_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
)

// TestWantErasureRequested: an erasure request makes the want anonymised from the
// moment it is recorded, whatever its time and whatever follows, and Plan leaves
// the account to the erasure.
func TestWantErasureRequested(t *testing.T) {
	t.Parallel()
	day := time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)
	fact := func(k connector.Kind, at time.Time) connector.Fact {
		return connector.Fact{Feed: "hr", WorkerID: "w1", Source: "/feeds/hr", ID: string(k) + at.Format("0102"), Kind: k,
			Effective: at, Time: at, Profile: connector.Profile{Email: "ann@example.com"}}
	}
	req := fact(connector.KindErasureRequested, day.AddDate(0, 0, 7)) // a skewed clock: dated after now
	req.Profile, req.Reason, req.RequestedBy = connector.Profile{}, "DSR-9", "dpo"
	for _, facts := range [][]connector.Fact{
		{fact(connector.KindHired, day.AddDate(0, -1, 0)), req},
		{req, fact(connector.KindHired, day.AddDate(0, -1, 0)), fact(connector.KindRehired, day.AddDate(0, 0, 1))},
		{fact(connector.KindHired, day.AddDate(0, -1, 0)), fact(connector.KindLeft, day.AddDate(0, -1, 5)), req},
	} {
		w, _ := connector.Want(facts, day, connector.DefaultPolicy())
		if w.State != connector.StateAnonymised || w.Erasure == nil || w.Erasure.ID != req.ID {
			t.Fatalf("Want(%d facts) = %s, erasure %+v; want anonymised with the request", len(facts), w.State, w.Erasure)
		}
		if r := connector.RequestOf(*w.Erasure); r.Worker.String() != "hr:w1" || r.Reason != "DSR-9" || r.RequestedBy != "dpo" || r.FactID != "/feeds/hr#"+req.ID {
			t.Fatalf("RequestOf = %+v", r)
		}
		have := &connector.Account{ID: "a1", ExternalID: "hr:w1", UserName: "old@example.com", Active: true}
		if plan := connector.Plan(w, have, connector.DefaultPolicy()); plan != nil {
			t.Fatalf("Plan of an erasure request = %v; want none (the converger erases)", plan)
		}
		if plan := connector.Plan(w, nil, connector.DefaultPolicy()); plan != nil {
			t.Fatalf("Plan of an erasure request without account = %v; want none", plan)
		}
	}
}

// TestConvergerErasureRequest: the converger hands an erasure request to its
// EraseFunc instead of planning. Without one (or while it fails) the request is
// kept, retried, and visible as a review item; a failure after the LMS step (a
// crash before the store's erasure) is healed by the retry; afterwards the store
// knows nothing of the worker and the account is anonymised.
func TestConvergerErasureRequest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	start := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	b := setup(t, start)
	w := connector.WorkerKey{Feed: "hr", WorkerID: "w1"}
	b.record(t, connector.Fact{WorkerID: "w1", Kind: connector.KindHired, Effective: start.AddDate(0, 0, -1), Profile: profile("ann.lee@example.com")})
	acct := b.account(t, "hr:w1")

	// b.conv has no EraseFunc: the request stays pending, with a review item.
	b.record(t, connector.Fact{WorkerID: "w1", Kind: connector.KindErasureRequested, Effective: start, Reason: "DSR-77", RequestedBy: "dpo"})
	if facts, _ := b.db.Facts(ctx, w); len(facts) != 2 {
		t.Fatalf("facts after a pending erasure = %v; want the hire and the request", facts)
	}
	reviews, err := b.db.ListReviews(ctx, store.ReviewFilter{Feed: "hr"})
	if err != nil || len(reviews) != 1 || !strings.Contains(reviews[0].Reason, "GDPR erasure requested by event /feeds/hr#e2 is pending") {
		t.Fatalf("reviews = %+v, %v; want the pending erasure", reviews, err)
	}
	if a := b.account(t, "hr:w1"); !a.Active || a.UserName != "ann.lee@example.com" {
		t.Fatalf("account touched without an erasure: %+v", a)
	}
	next, ok, err := b.db.NextDue(ctx)
	if err != nil || !ok || !next.After(start) {
		t.Fatalf("NextDue = %v %v %v; want a retry", next, ok, err)
	}

	// A converger that can erase; its first attempt fails after the LMS step.
	key := []byte("k-conv")
	if err := b.db.UseErasureKey(ctx, key); err != nil {
		t.Fatal(err)
	}
	var got []connector.ErasureRequest
	erase := func(ctx context.Context, r connector.ErasureRequest) error {
		got = append(got, r)
		subj, err := b.db.ErasureSubject(ctx, r.Worker)
		if err != nil {
			return err
		}
		hash := connector.ErasureHash(key, r.Worker)
		a, found, err := connector.FindErasureAccount(ctx, b.lms, r.Worker, hash, subj.Accounts)
		if err != nil || !found {
			return errors.Join(err, errors.New("no account"))
		}
		if _, err := connector.EraseAccount(ctx, b.lms, a, hash, true); err != nil {
			return err
		}
		if len(got) == 1 {
			return errors.New("crashed before the store's erasure")
		}
		_, err = b.db.Erase(ctx, store.Erasure{Worker: r.Worker, Reason: r.Reason, By: r.RequestedBy, AccountID: a.ID})
		return err
	}
	conv, err := connector.NewConverger(connector.ConvergerConfig{Store: b.db, LMS: b.lms, Feeds: b.feeds, Now: b.clock,
		EraseFunc: erase, Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		next, ok, err := b.db.NextDue(ctx)
		if err != nil || !ok {
			t.Fatalf("attempt %d: nothing due (%v %v); want the pending erasure", i+1, ok, err)
		}
		b.set(next)
		if _, err := conv.Drain(ctx, 10); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != 2 || got[1].Worker != w || got[1].Reason != "DSR-77" || got[1].RequestedBy != "dpo" || got[1].FactID != "/feeds/hr#e2" {
		t.Fatalf("EraseFunc calls = %+v; want two for the request", got)
	}
	if facts, _ := b.db.Facts(ctx, w); len(facts) != 0 {
		t.Fatalf("facts after the erasure = %v", facts)
	}
	if _, ok, _ := b.db.NextDue(ctx); ok {
		t.Fatal("a worker is still due after the erasure")
	}
	a, err := b.lms.GetAccount(ctx, acct.ID)
	if err != nil || a.Active || strings.Contains(a.UserName, "ann") || !strings.HasPrefix(a.ExternalID, "erased:") {
		t.Fatalf("account after the erasure = %+v, %v; want it anonymised and inactive", a, err)
	}
	if res, err := b.db.FindResidue(ctx, []string{"ann.lee@example.com", "hr:w1"}); err != nil || len(res) > 0 {
		t.Fatalf("residue = %v, %v", res, err)
	}
	if reviews, _ := b.db.ListReviews(ctx, store.ReviewFilter{Feed: "hr"}); len(reviews) != 0 {
		t.Fatalf("reviews after the erasure = %+v; want none", reviews)
	}
}

// TestErasureRequestsPassTheSafeguard: erasure cannot be undone, so a feed that
// asks to erase many of its people at once is held like a mass deactivation; the
// first few run, the rest wait for a person, and an approval lets them go.
func TestErasureRequestsPassTheSafeguard(t *testing.T) {
	t.Parallel()
	b := setupSafeguard(t, 20)
	var mu sync.Mutex // two claimed batches erase at once
	var erased []string
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(erased) }
	sg, err := connector.NewSafeguard(connector.SafeguardConfig{Store: b.db, Now: b.clock})
	if err != nil {
		t.Fatal(err)
	}
	b.conv, err = connector.NewConverger(connector.ConvergerConfig{Store: b.db, LMS: b.lms, Feeds: b.feeds, Now: b.clock, Safeguard: sg,
		EraseFunc: func(_ context.Context, r connector.ErasureRequest) error {
			mu.Lock()
			defer mu.Unlock()
			erased = append(erased, r.Worker.WorkerID)
			return nil
		},
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError}))})
	if err != nil {
		t.Fatal(err)
	}
	var reqs []connector.Fact
	for i := range 12 {
		reqs = append(reqs, connector.Fact{WorkerID: fmt.Sprintf("w%02d", i), Kind: connector.KindErasureRequested, Effective: b.clock(), Reason: "DSR batch"})
	}
	b.recordAll(t, reqs...)
	// 20% of 20 active accounts is 4; up to MinRemovals (5) never hold for the percentage.
	if count() != 5 {
		t.Fatalf("erased %d before the hold, want 5: %v", count(), erased)
	}
	h := b.oneHold(t)
	if h.Status != connector.HoldOpen || h.Counts.Removals != 7 {
		t.Fatalf("hold = %+v, want 7 erasures held", h)
	}
	if out := b.outcomes(t, connector.ActionAnonymise); out[connector.OutcomeHeld] != 7 {
		t.Errorf("audit outcomes = %v, want 7 held", out)
	}
	if _, err := b.db.DecideHold(t.Context(), h.ID, connector.HoldDecision{Approve: true, By: "dpo", Reason: "verified requests"}); err != nil {
		t.Fatal(err)
	}
	b.converge(t)
	if count() != 12 {
		t.Fatalf("erased %d after the approval, want 12", count())
	}
}
