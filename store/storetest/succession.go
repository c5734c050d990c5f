package storetest

import (
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
)

// successionTests check the races of a rehire under a new worker id: the new id
// must not be converged while the old one's converge is in flight, and an old id
// whose outcome is committed after the takeover must wake its successor.
var successionTests = []subTest{
	{"SuccessorWaitsForPredecessorLease", testSuccessorWaitsForPredecessorLease},
	{"SuccessorClaimableAfterPredecessorLeaseExpires", testSuccessorClaimableAfterPredecessorLeaseExpires},
	{"LateOutcomeOfTakenOverWorkerWakesSuccessor", testLateOutcomeOfTakenOverWorkerWakesSuccessor},
	{"DeadLetterOncePerStreamMessage", testDeadLetterOncePerStreamMessage},
	{"ExtendLeases", testExtendLeases},
}

// rehire returns the rehire of hr:id on day d, succeeding hr:prev.
func rehire(id, prev string, d int) connector.Fact {
	f := fact(hr(id), id+"-r", connector.KindRehired, d)
	f.PreviousWorkerID = prev
	return f
}

func testSuccessorWaitsForPredecessorLease(t *testing.T, b *testBundle) {
	b.record(t, fact(hr("old"), "h", connector.KindHired, 0), fact(hr("old"), "l", connector.KindLeft, 1))
	held := b.claimOne(t, "A", b.now, hr("old")) // A is converging old (lease 1 minute)
	b.record(t, rehire("new", "old", 2))
	if cs := b.claim(t, "B", b.now, 10); len(cs) != 0 {
		t.Fatalf("B claimed %v while old's converge is in flight", claimKeys(cs))
	}
	if at, ok := b.nextDue(t); !ok || at.Before(held.LeaseUntil) {
		t.Fatalf("NextDue = %v %v; want no earlier than the predecessor's lease end %v", at, ok, held.LeaseUntil)
	}
	b.complete(t, connector.Completion{Claim: held, Owner: "A", AccountID: "acct-1"})
	b.claimOne(t, "B", b.now, hr("new"))
}

func testSuccessorClaimableAfterPredecessorLeaseExpires(t *testing.T, b *testBundle) {
	b.record(t, fact(hr("old"), "h", connector.KindHired, 0))
	held := b.claimOne(t, "A", b.now, hr("old"))
	b.record(t, rehire("new", "old", 2))
	b.claimOne(t, "B", held.LeaseUntil.Add(time.Microsecond), hr("new")) // A died
}

func testLateOutcomeOfTakenOverWorkerWakesSuccessor(t *testing.T, b *testBundle) {
	b.record(t, fact(hr("old"), "h", connector.KindHired, 0))
	b.link(t, hr("old"), "acct-1")
	b.record(t, fact(hr("old"), "l", connector.KindLeft, 1))
	stale := b.claimOne(t, "A", b.now, hr("old")) // A acts on the leave...
	b.record(t, rehire("new", "old", 2))
	// ...while, after A's lease ran out, B converged the successor and took the account.
	later := stale.LeaseUntil.Add(time.Microsecond)
	c := b.claimOne(t, "B", later, hr("new"))
	b.complete(t, connector.Completion{Claim: c, Owner: "B", AccountID: "acct-1", ReleasePredecessors: []string{"old"}})
	if cs := b.claim(t, "C", later, 10); len(cs) != 0 {
		t.Fatalf("claimable before A commits: %v", claimKeys(cs))
	}
	// A's late commit must not fail on the link its successor now holds, and
	// must make the successor look at the account again.
	b.complete(t, connector.Completion{Claim: stale, Owner: "A", AccountID: "acct-1",
		Audit: []connector.AuditEntry{{Action: connector.ActionDeactivate, Outcome: connector.OutcomeOK, AccountID: "acct-1"}}})
	if w, err := b.s.LinkedWorker(b.ctx, "acct-1"); err != nil || w != hr("new") {
		t.Fatalf("acct-1 linked to %v (%v), want hr:new", w, err)
	}
	b.claimOne(t, "C", later, hr("new"))
}

func testDeadLetterOncePerStreamMessage(t *testing.T, b *testBundle) {
	d := connector.DeadLetter{Feed: "hr", Subject: "hrsync.events.hr.hired", Data: []byte("x"), Reason: "body: not JSON",
		Stream: "HRSYNC", StreamSeq: 42}
	first, err := b.s.DeadLetter(b.ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	again, err := b.s.DeadLetter(b.ctx, d) // redelivered after a crash before Term
	if err != nil || again != first {
		t.Fatalf("second DeadLetter of stream seq 42 = %d, %v; want the first id %d", again, err, first)
	}
	other, err := b.s.DeadLetter(b.ctx, connector.DeadLetter{Subject: "s", Reason: "r", Stream: "HRSYNC", StreamSeq: 43})
	if err != nil || other == first {
		t.Fatalf("another message = %d, %v", other, err)
	}
	// Messages without a stream position (tests, tools) are never merged.
	n1, _ := b.s.DeadLetter(b.ctx, connector.DeadLetter{Subject: "s", Reason: "r"})
	n2, _ := b.s.DeadLetter(b.ctx, connector.DeadLetter{Subject: "s", Reason: "r"})
	if n1 == n2 {
		t.Fatal("dead letters without a stream position were merged")
	}
	if got, err := b.s.GetDeadLetter(b.ctx, first); err != nil || got.Stream != "HRSYNC" || got.StreamSeq != 42 {
		t.Fatalf("GetDeadLetter = %+v, %v", got, err)
	}
	if c := b.counts(t); c.DeadLetters != 4 {
		t.Fatalf("Counts.DeadLetters = %d, want 4", c.DeadLetters)
	}
}

func testExtendLeases(t *testing.T, b *testBundle) {
	b.record(t, fact(hr("a"), "a1", connector.KindHired, 0), fact(hr("b"), "b1", connector.KindHired, 0))
	cs := b.claim(t, "A", b.now, 10)
	if len(cs) != 2 {
		t.Fatalf("claimed %v", claimKeys(cs))
	}
	later := cs[0].LeaseUntil.Add(time.Minute)
	got, err := b.s.ExtendLeases(b.ctx, "A", []connector.WorkerKey{hr("a"), hr("b"), hr("nobody")}, later)
	if err != nil || len(got) != 2 {
		t.Fatalf("ExtendLeases = %v, %v; want both of A's workers", got, err)
	}
	// After the old lease end, the renewed workers are still A's.
	if stolen := b.claim(t, "B", cs[0].LeaseUntil.Add(time.Second), 10); len(stolen) != 0 {
		t.Fatalf("B claimed %v despite the renewed leases", claimKeys(stolen))
	}
	// Another owner cannot extend A's leases.
	if got, err := b.s.ExtendLeases(b.ctx, "B", []connector.WorkerKey{hr("a")}, later.Add(time.Hour)); err != nil || len(got) != 0 {
		t.Fatalf("B extended %v (%v)", got, err)
	}
	b.claim(t, "B", later.Add(time.Second), 10) // expired at last
}
