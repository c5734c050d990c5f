package bench

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/events"
)

// TestTimedLMSCounts checks that every call is counted by op, failed ones too,
// and that a phase's changes are done only by the write its test accepts.
func TestTimedLMSCounts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	timed := NewTimedLMS(sandbox.New(), 4)
	a, err := timed.CreateAccount(ctx, account("hr:w1"))
	if err != nil {
		t.Fatal(err)
	}
	timed.phase(1, func(op string, a connector.Account) bool { return op == "SetActive" && !a.Active })
	if timed.Count() != 0 {
		t.Fatalf("a new phase starts with %d changes done", timed.Count())
	}
	if _, err := timed.FindAccounts(ctx, connector.AccountFilter{Attr: connector.ByExternalID, Value: "hr:w1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := timed.SetActive(ctx, a.ID, true); err != nil { // not this phase's write
		t.Fatal(err)
	}
	if timed.Count() != 0 {
		t.Fatal("an activation counted as a leave")
	}
	if _, err := timed.SetActive(ctx, a.ID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := timed.GetAccount(ctx, "no-such-id"); err == nil {
		t.Fatal("GetAccount of a missing account succeeded")
	}
	if timed.Count() != 1 {
		t.Fatalf("Count = %d after the leave, want 1", timed.Count())
	}
	want := map[string]int{"CreateAccount": 1, "FindAccounts": 1, "SetActive": 2, "GetAccount": 1}
	if got := timed.Calls(); !reflect.DeepEqual(got, want) {
		t.Errorf("Calls = %v, want %v", got, want)
	}
}

// TestTimedLMSBulk checks that --lms-bulk=false hides the bulk capabilities from
// the guard, and that with them a bulk call is one call.
func TestTimedLMSBulk(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	timed := NewTimedLMS(sandbox.New(), 2)
	if _, ok := timed.Bulk(false).(connector.BulkDeleter); ok {
		t.Fatal("Bulk(false) offers bulk deletion")
	}
	bd, ok := timed.Bulk(true).(connector.BulkDeleter)
	if !ok {
		t.Fatal("Bulk(true) hides the sandbox's bulk deletion")
	}
	var dels []connector.Deletion
	for _, ext := range []string{"hr:w1", "hr:w2"} {
		a, err := timed.CreateAccount(ctx, account(ext))
		if err != nil {
			t.Fatal(err)
		}
		dels = append(dels, connector.Deletion{ID: a.ID})
	}
	if errs, err := bd.DeleteAccounts(ctx, dels); err != nil || errs[0] != nil || errs[1] != nil {
		t.Fatalf("DeleteAccounts: %v %v", errs, err)
	}
	if got := timed.Calls()["DeleteAccounts"]; got != 1 {
		t.Errorf("%d DeleteAccounts calls, want 1", got)
	}
}

func TestSkipClock(t *testing.T) {
	t.Parallel()
	var c SkipClock
	before := time.Now()
	at := <-c.After(time.Hour) // at once
	if time.Since(before) > 10*time.Second {
		t.Fatal("After waited")
	}
	if at.Sub(before) < time.Hour || c.Now().Sub(before) < time.Hour || c.Skipped() < time.Hour {
		t.Errorf("after skipping an hour: After gave %v, Now %v, Skipped %v, from %v", at, c.Now(), c.Skipped(), before)
	}
	<-c.After(-time.Minute) // a negative wait does not move the clock back
	if c.Skipped() < time.Hour {
		t.Errorf("Skipped = %v after a negative wait", c.Skipped())
	}
}

func TestPhases(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	ph, err := Phases(MixLifecycle, 100, "p", now)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	sizes := map[string]int{}
	for _, p := range ph {
		kinds = append(kinds, p.Kind)
		sizes[p.Kind] = len(p.Events)
		for _, e := range p.Events {
			if _, err := events.Encode(e, events.Binary); err != nil {
				t.Errorf("%s: %v", p.Kind, err)
			}
		}
	}
	if want := []string{ChangeHire, ChangeLeave, ChangeUpdate, ChangeRehireSame, ChangeRehireNewID}; !reflect.DeepEqual(kinds, want) {
		t.Errorf("phases %v, want %v", kinds, want)
	}
	if want := map[string]int{ChangeHire: 50, ChangeLeave: 20, ChangeUpdate: 20, ChangeRehireSame: 5, ChangeRehireNewID: 5}; !reflect.DeepEqual(sizes, want) {
		t.Errorf("sizes %v, want %v", sizes, want)
	}
	// Rehires are of leavers; a new id is no hire's, and names the leaver it was.
	leavers := map[string]bool{}
	for _, e := range ph[1].Events {
		leavers[e.Data.WorkerID] = true
	}
	for _, e := range ph[3].Events {
		if !leavers[e.Data.WorkerID] {
			t.Errorf("rehire of %s, who did not leave", e.Data.WorkerID)
		}
	}
	hired := map[string]bool{}
	for _, e := range ph[0].Events {
		hired[e.Data.WorkerID] = true
	}
	for _, e := range ph[4].Events {
		if hired[e.Data.WorkerID] || !leavers[e.Data.PreviousWorkerID] {
			t.Errorf("rehire under a new id %s of %s", e.Data.WorkerID, e.Data.PreviousWorkerID)
		}
		if !ph[4].Done("SetActive", connector.Account{ExternalID: Feed + ":" + e.Data.WorkerID, Active: true}) ||
			ph[4].Done("SetActive", connector.Account{ExternalID: Feed + ":" + e.Data.PreviousWorkerID, Active: true}) {
			t.Errorf("rehire of %s as %s: done is not judged by the new externalId", e.Data.PreviousWorkerID, e.Data.WorkerID)
		}
	}
	if _, err := Phases("leavers", 100, "p", now); err == nil {
		t.Error("an unknown mix was accepted")
	}
	if ph, err := Phases(MixHires, 7, "p", now); err != nil || len(ph) != 1 || len(ph[0].Events) != 7 {
		t.Errorf("hires: %v %v", ph, err)
	}
}
