package storetest

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
)

// EraseStore is what the erasure suite exercises beyond Store. *store.DB implements it.
type EraseStore interface {
	UseErasureKey(ctx context.Context, key []byte) error
	ErasureSubject(ctx context.Context, w connector.WorkerKey) (store.ErasureSubject, error)
	Erase(ctx context.Context, e store.Erasure) (store.ErasureReport, error)
	Tombstones(ctx context.Context) ([]store.Tombstone, error)
	FindResidue(ctx context.Context, needles []string) ([]store.Residue, error)
}

var _ EraseStore = (*store.DB)(nil)

// RunErase runs only the erasure part of Run.
func RunErase(t *testing.T, newStore func(t *testing.T) Store) {
	runTests(t, setupFunc(newStore), true, eraseTests)
}

// eraseTests check GDPR erasure: nothing of the person remains in any table, the
// audit keeps that it happened without personal data, and a later fact for the
// person is refused with a reason.
var eraseTests = []subTest{
	{"EraseLeavesNothing", testEraseLeavesNothing},
}

func testEraseLeavesNothing(t *testing.T, b *testBundle) {
	es, ok := b.s.(EraseStore)
	if !ok {
		t.Fatalf("%T does not implement storetest.EraseStore", b.s)
	}
	ekey := []byte("test erasure key")
	old, cur, other := key("hr", "zed-0417"), key("hr", "zed-0999"), key("hr", "other-1")
	pii := []string{"zoe.quartz@example.com", "Zoe", "Quartzfield", "EMPQ-88123", "zed-0417", "zed-0999"}
	hire := fact(old, "q1", connector.KindHired, 0)
	hire.Profile = connector.Profile{Email: "Zoe.Quartz@example.com", GivenName: "Zoe", FamilyName: "Quartzfield",
		EmployeeNumber: "EMPQ-88123", OrgUnit: "Ops", JobTitle: "Analyst", Locale: "nl-NL"}
	left := fact(old, "q2", connector.KindLeft, 3)
	rehire := fact(cur, "q3", connector.KindRehired, 9)
	rehire.PreviousWorkerID = old.WorkerID
	rehire.Profile = hire.Profile
	bystander := fact(other, "o1", connector.KindHired, 0)
	bystander.Profile.GivenName = "Bea"
	b.record(t, hire, left, rehire)

	c := b.claimOne(t, "c", b.now, cur)
	b.complete(t, connector.Completion{Claim: c, Owner: "c", AccountID: "acct-77",
		Audit: []connector.AuditEntry{{At: b.now, Feed: "hr", WorkerID: cur.WorkerID, AccountID: "acct-77",
			Action: connector.ActionCreate, Outcome: connector.OutcomeOK, Detail: "created zoe.quartz@example.com (Zoe Quartzfield)",
			FactIDs: []string{"/feeds/hr#q1", "/feeds/hr#q3"}, Plan: "create zoe.quartz@example.com"}},
		Review: &connector.Review{At: b.now, Feed: "hr", WorkerID: cur.WorkerID, Reason: "email Zoe.Quartz@example.com also matches acct-5"}})
	b.record(t, bystander)
	b.link(t, other, "acct-88")
	dl := func(data string) int64 {
		id, err := b.s.DeadLetter(b.ctx, connector.DeadLetter{At: b.now, Feed: "hr", Subject: "hrsync.events.hr.hired",
			Data: []byte(data), Reason: "data.start_date: missing"})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	dl(`{"data":{"worker_id":"zed-0999","email":"x@example.com"}}`)
	dl(`{"data":{"worker_id":"nobody","email":"ZOE.QUARTZ@example.com"}}`)
	keep := dl(`{"data":{"worker_id":"other-1","email":"other-1@example.com"}}`)
	// A dead letter whose message names nobody, but whose failed replay quoted
	// the person: its history is part of it, and both go.
	quoted := dl(`{"data":{"worker_id":"ghost"}}`)
	if err := b.s.NoteDeadLetterReplayFailed(b.ctx, quoted, "ops", errors.New(`data.employee_number "EMPQ-88123" belongs to another worker`)); err != nil {
		t.Fatal(err)
	}

	// The residue check sees every needle before the erasure (it is not blind).
	before, err := es.FindResidue(b.ctx, pii)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range before {
		seen[r.Needle] = true
	}
	for _, n := range pii {
		if !seen[n] {
			t.Fatalf("FindResidue before erasure did not find %q: %v", n, before)
		}
	}
	if _, err := es.Erase(b.ctx, store.Erasure{Worker: old}); err == nil {
		t.Fatal("Erase without an erasure key succeeded")
	}
	if err := es.UseErasureKey(b.ctx, ekey); err != nil {
		t.Fatal(err)
	}
	subj, err := es.ErasureSubject(b.ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(subj.Chain, ",") != "zed-0417,zed-0999" || len(subj.Accounts) != 1 || subj.Accounts[0] != "acct-77" || subj.Facts != 3 {
		t.Fatalf("ErasureSubject = %+v; want chain zed-0417,zed-0999, account acct-77, 3 facts", subj)
	}
	rep, err := es.Erase(b.ctx, store.Erasure{Worker: old, Reason: "Art. 17 request #12", By: "dpo", AccountID: "acct-77", Training: connector.TrainingKept})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Facts != 3 || rep.Links != 1 || rep.Reviews != 1 || rep.DeadLetters != 3 || rep.Audit != 1 || rep.Workers != 2 {
		t.Errorf("Erase report = %+v; want 3 facts, 1 link, 1 review, 3 dead letters, 1 audit row, 2 workers", rep)
	}
	res, err := es.FindResidue(b.ctx, pii)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) > 0 {
		t.Errorf("personal data left in the store after erasure: %v", res)
	}
	// The bystander is untouched.
	if got, err := b.s.Facts(b.ctx, other); err != nil || len(got) != 1 || got[0].Profile.GivenName != "Bea" {
		t.Errorf("bystander's facts = %+v, %v; want them intact", got, err)
	}
	if _, err := b.s.GetDeadLetter(b.ctx, keep); err != nil {
		t.Errorf("bystander's dead letter: %v", err)
	}
	if links, err := b.s.Links(b.ctx); err != nil || len(links) != 1 || links[other] != "acct-88" {
		t.Errorf("links = %v, %v; want only the bystander's", links, err)
	}
	// The audit keeps that it happened, under the pseudonym.
	pseudo := connector.ErasedID(connector.ErasureHash(ekey, old))
	if pseudo != "erased:"+rep.Hash[:16] {
		t.Errorf("pseudonym %s does not match the report's hash %s", pseudo, rep.Hash)
	}
	rows, err := b.s.ListAudit(b.ctx, store.AuditFilter{Feed: "hr"})
	if err != nil {
		t.Fatal(err)
	}
	var erase, created bool
	for _, a := range rows {
		switch {
		case a.Action == connector.ActionAnonymise && a.Outcome == connector.OutcomeOK && a.AccountID == "acct-77" &&
			a.WorkerID == pseudo && strings.Contains(a.Detail, "Art. 17 request #12"):
			erase = true
		case a.Action == connector.ActionCreate && a.WorkerID == connector.ErasedID(connector.ErasureHash(ekey, cur)) &&
			a.Detail == "erased" && len(a.FactIDs) == 0:
			created = true
		}
	}
	if !erase || !created {
		t.Errorf("audit = %+v; want the erase row (anonymise, ok, acct-77, %s) and the pseudonymised create row", rows, pseudo)
	}
	ts, err := es.Tombstones(b.ctx)
	if err != nil || len(ts) != 2 {
		t.Fatalf("Tombstones = %+v, %v; want one per worker of the chain", ts, err)
	}

	// No silent resurrection: a new hire of either worker id, or a rehire naming
	// one as predecessor, is refused permanently with the reason.
	back := fact(old, "q9", connector.KindHired, 30)
	again := fact(key("hr", "zed-2000"), "q10", connector.KindRehired, 30)
	again.PreviousWorkerID = cur.WorkerID
	for _, f := range []connector.Fact{back, again} {
		_, err := b.s.RecordFacts(b.ctx, []connector.Fact{f, fact(key("hr", "fresh-1"), "f-"+f.ID, connector.KindHired, 30)})
		var ee *store.ErasedError
		if !connector.IsPermanent(err) || !errors.As(err, &ee) || !strings.Contains(err.Error(), "worker was erased on") {
			t.Fatalf("RecordFacts(%s) = %v; want a permanent *store.ErasedError", f.ID, err)
		}
		if ee.Field != map[bool]string{true: "worker_id", false: "previous_worker_id"}[f.ID == "q9"] {
			t.Errorf("ErasedError.Field = %q for %s", ee.Field, f.ID)
		}
	}
	if res, _ := es.FindResidue(b.ctx, pii); len(res) > 0 {
		t.Errorf("a refused fact left data behind: %v", res)
	}
	if n := b.record(t, fact(key("hr", "fresh-1"), "f1", connector.KindHired, 30)); n != 1 {
		t.Errorf("an unrelated fact recorded %d, want 1", n)
	}
	// Erasing again is harmless.
	if rep, err := es.Erase(b.ctx, store.Erasure{Worker: old, By: "dpo"}); err != nil || !rep.AlreadyErased {
		t.Errorf("second Erase = %+v, %v; want AlreadyErased", rep, err)
	}
	// The key is checked against the tombstones.
	if err := es.UseErasureKey(b.ctx, []byte("another key")); err == nil {
		t.Error("UseErasureKey accepted a key other than the tombstones'")
	}
	if err := es.UseErasureKey(b.ctx, nil); err == nil {
		t.Error("UseErasureKey accepted no key although tombstones exist")
	}
}
