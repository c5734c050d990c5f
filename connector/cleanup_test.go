package connector_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
)

func TestDormantRules(t *testing.T) {
	old := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
	cutoff := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	login := old.AddDate(0, 1, 0)
	acct := connector.Account{ID: "a", Created: old}
	none := connector.Activity{Known: true}
	for _, tc := range []struct {
		name string
		f    connector.DormantFilter
		a    connector.Account
		act  connector.Activity
		want string // "" selected
	}{
		{"never used", connector.DormantFilter{NoLogin: true}, acct, none, ""},
		{"unknown activity is active", connector.DormantFilter{NoLogin: true}, acct, connector.Activity{}, connector.ExcludedUnknown},
		{"completions always protect", connector.DormantFilter{NoLogin: true}, acct, connector.Activity{Known: true, Completions: 1}, connector.ExcludedRecords},
		{"uploads always protect", connector.DormantFilter{NoEnrollments: true}, acct, connector.Activity{Known: true, Uploads: 2}, connector.ExcludedRecords},
		{"rewards always protect", connector.DormantFilter{NoLogin: true}, acct, connector.Activity{Known: true, Rewards: 1}, connector.ExcludedRecords},
		{"logged in", connector.DormantFilter{NoLogin: true}, acct, connector.Activity{Known: true, LastLogin: &login}, connector.ExcludedLogin},
		{"login allowed without --no-login", connector.DormantFilter{NoEnrollments: true}, acct, connector.Activity{Known: true, LastLogin: &login}, ""},
		{"enrolled", connector.DormantFilter{NoEnrollments: true}, acct, connector.Activity{Known: true, Enrollments: 1}, connector.ExcludedEnrolled},
		{"enrolled but never started, --no-login only", connector.DormantFilter{NoLogin: true}, acct, connector.Activity{Known: true, Enrollments: 1}, ""},
		{"created before", connector.DormantFilter{NoLogin: true, CreatedBefore: cutoff}, acct, none, ""},
		{"created after", connector.DormantFilter{NoLogin: true, CreatedBefore: cutoff}, connector.Account{ID: "b", Created: cutoff}, none, connector.ExcludedCreated},
		{"creation unknown", connector.DormantFilter{NoLogin: true, CreatedBefore: cutoff}, connector.Account{ID: "c"}, none, connector.ExcludedNoCreated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, why := tc.f.Dormant(tc.a, tc.act)
			if ok != (tc.want == "") || why != tc.want {
				t.Fatalf("Dormant = %v, %q; want %q", ok, why, tc.want)
			}
		})
	}
	if err := (connector.DormantFilter{}).Validate(); err == nil {
		t.Error("a filter without an activity rule is valid")
	}
	if err := (connector.DormantFilter{NoLogin: true, Feed: "hr", Orphaned: true}).Validate(); err == nil {
		t.Error("--feed with --orphaned is valid")
	}
}

func TestEstimateJob(t *testing.T) {
	// 16,000 deletions at Docebo's 1,000 calls an hour.
	bulk := connector.EstimateJob(16000, 0, 1000, 100, 1000)
	if bulk.ActionCalls != 16 || bulk.CheckCalls != 160 || bulk.Calls != 176 || bulk.Duration != time.Duration(176)*3600*time.Millisecond {
		t.Errorf("bulk estimate = %+v", bulk)
	}
	one := connector.EstimateJob(16000, 0, 0, 0, 1000)
	if one.ActionCalls != 16000 || one.CheckCalls != 32000 || one.Duration != 48*time.Hour {
		t.Errorf("one-by-one estimate = %+v", one)
	}
	if !strings.Contains(bulk.String(), "bulk calls of up to 1000") {
		t.Errorf("estimate text = %q", bulk.String())
	}
	anon := connector.EstimateJob(10, 10, 1000, 100, 0)
	if anon.ActionCalls != 20 || anon.Duration != 0 {
		t.Errorf("anonymise estimate = %+v", anon)
	}
}

// cleanupWorld is a reconciliation bundle with accounts for every clean-up rule.
type cleanupWorld struct {
	*reconBundle
	ids map[string]string // name → account id
	api connector.LMS     // the LMS as clean-up sees it
}

func newCleanupWorld(t *testing.T) *cleanupWorld {
	t.Helper()
	b := reconSetup(t)
	w := &cleanupWorld{reconBundle: b, ids: map[string]string{}, api: b.lms}
	longAgo := b.now.AddDate(-2, 0, 0)
	hireAt := b.now
	b.now = longAgo
	for _, n := range []string{"legacy-1", "legacy-2", "legacy-3", "legacy-4", "legacy-login", "legacy-completed"} {
		w.ids[n] = b.create(t, connector.Account{ExternalID: "import:" + n, UserName: n + "@old.example", Active: true,
			Profile: connector.Profile{Email: n + "@old.example"}}).ID
	}
	// An employee and a leaver, linked by the converger, created long ago too.
	b.fact(t, "hr", "emp", connector.KindHired, longAgo, person("emp@example.com"))
	b.fact(t, "hr", "gone", connector.KindHired, longAgo, person("gone@example.com"))
	b.converge(t)
	w.ids["emp"] = b.account(t, "hr:emp").ID
	w.ids["gone"] = b.account(t, "hr:gone").ID
	b.now = hireAt
	b.fact(t, "hr", "gone", connector.KindLeft, hireAt.Add(-time.Hour), person("gone@example.com"))
	b.converge(t)
	w.ids["new"] = b.create(t, connector.Account{ExternalID: "import:new", UserName: "new@old.example", Active: true}).ID
	if err := b.lms.RecordLogin(w.ids["legacy-login"], longAgo.AddDate(0, 1, 0)); err != nil {
		t.Fatal(err)
	}
	if err := b.lms.CompleteCourse(w.ids["legacy-completed"], "safety", longAgo.AddDate(0, 1, 0)); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *cleanupWorld) selector() connector.Selector {
	return connector.Selector{LMS: w.api, Store: w.db, Feeds: w.feeds, Now: func() time.Time { return w.now }, PageSize: 3}
}

// oneByOne is an LMS with activity but no bulk calls: clean-up falls back to a
// read and a delete per account.
type oneByOne struct{ *sandbox.LMS }

func (o oneByOne) MaxBulkDeletes(context.Context) int   { return 0 }
func (o oneByOne) MaxActivityBatch(context.Context) int { return 0 }

func TestCleanupSelect(t *testing.T) {
	w := newCleanupWorld(t)
	f := connector.DormantFilter{NoLogin: true, CreatedBefore: w.now.AddDate(0, -6, 0)}
	sel, err := w.selector().Select(w.ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, it := range sel.Items {
		got[it.AccountID] = true
		if it.Status != connector.JobPending || it.Action != connector.ActionDelete || !it.Activity.Known {
			t.Errorf("item %+v", it)
		}
	}
	for _, n := range []string{"legacy-1", "legacy-2", "legacy-3", "legacy-4", "gone"} {
		if !got[w.ids[n]] {
			t.Errorf("%s (%s) not selected", n, w.ids[n])
		}
	}
	if len(sel.Items) != 5 {
		t.Errorf("selected %d, want 5: %+v", len(sel.Items), sel.Items)
	}
	want := map[string]int{connector.ExcludedLogin: 1, connector.ExcludedRecords: 1, connector.ExcludedCreated: 1, connector.ExcludedEmployed: 1}
	for k, n := range want {
		if sel.Excluded[k] != n {
			t.Errorf("excluded %q = %d, want %d (all: %v)", k, sel.Excluded[k], n, sel.Excluded)
		}
	}
	if sel.Scanned != 9 || sel.ByFeed["hr"] != 1 || sel.ByFeed["(orphan)"] != 4 {
		t.Errorf("scanned %d, by feed %v", sel.Scanned, sel.ByFeed)
	}

	// Scoped: the leaver is hr's; the imports are orphans.
	if sel, err = w.selector().Select(w.ctx, connector.DormantFilter{NoLogin: true, Feed: "hr"}); err != nil || len(sel.Items) != 1 || sel.Items[0].Worker.WorkerID != "gone" {
		t.Errorf("--feed hr = %+v, %v", sel.Items, err)
	}
	if sel, err = w.selector().Select(w.ctx, connector.DormantFilter{NoLogin: true, Orphaned: true}); err != nil || len(sel.Items) != 5 {
		t.Errorf("--orphaned = %d items, %v", len(sel.Items), err)
	}
	if _, err := w.selector().Select(w.ctx, connector.DormantFilter{NoLogin: true, Feed: "nope"}); err == nil {
		t.Error("an unknown feed was accepted")
	}
}

// TestCleanupRun runs a clean-up as a person would: a sample first, then the rest,
// killed half-way and resumed, with an account that logged in after the report and
// one deleted by hand meanwhile. Each account is deleted exactly once.
func TestCleanupRun(t *testing.T) {
	t.Run("bulk", func(t *testing.T) { testCleanupRun(t, false) })
	t.Run("one-by-one", func(t *testing.T) { testCleanupRun(t, true) })
}

func testCleanupRun(t *testing.T, oneAtATime bool) {
	w := newCleanupWorld(t)
	if oneAtATime {
		w.api = oneByOne{w.lms}
	}
	sel, err := w.selector().Select(w.ctx, connector.DormantFilter{NoLogin: true, CreatedBefore: w.now.AddDate(0, -6, 0)})
	if err != nil {
		t.Fatal(err)
	}
	hold, err := w.db.CreateJob(w.ctx, connector.Hold{Kind: connector.HoldCleanup, Reason: "test"}, sel.Items)
	if err != nil {
		t.Fatal(err)
	}
	runner := connector.JobRunner{LMS: w.api, Store: w.db, Now: func() time.Time { return w.now }, Batch: 2}

	if _, err := runner.Run(w.ctx, hold); !errors.Is(err, connector.ErrJobNotRunnable) {
		t.Fatalf("run before approval = %v, want ErrJobNotRunnable", err)
	}
	if _, err := w.db.AllowSample(w.ctx, hold, 1, "ana", "one first"); err != nil {
		t.Fatal(err)
	}
	sum, err := runner.Run(w.ctx, hold)
	if err != nil || !sum.Sample || sum.Done != 1 || sum.Complete {
		t.Fatalf("sample run = %+v, %v", sum, err)
	}
	first := sel.Items[0].AccountID
	if _, err := w.lms.GetAccount(w.ctx, first); !errors.Is(err, connector.ErrNotFound) {
		t.Fatalf("sample account %s still there: %v", first, err)
	}
	if sum, err = runner.Run(w.ctx, hold); err != nil || sum.Done+sum.Skipped+sum.Failed != 0 {
		t.Fatalf("second sample run did something: %+v, %v", sum, err)
	}

	// After the report: one logs in, one is deleted by hand.
	w.now = w.now.Add(time.Hour)
	if err := w.lms.RecordLogin(sel.Items[2].AccountID, w.now); err != nil {
		t.Fatal(err)
	}
	if err := w.lms.DeleteAccount(w.ctx, sel.Items[3].AccountID); err != nil {
		t.Fatal(err)
	}
	if _, err := w.db.DecideHold(w.ctx, hold, connector.HoldDecision{Approve: true, By: "ana", Reason: "sample fine"}); err != nil {
		t.Fatal(err)
	}
	// Killed after the first batch of the rest.
	ctx, cancel := context.WithCancel(w.ctx)
	killed := runner
	killed.Progress = func(connector.JobProgress) { cancel() }
	sum, err = killed.Run(ctx, hold)
	if !errors.Is(err, context.Canceled) || sum.Done != 1 || sum.Skipped != 1 {
		t.Fatalf("killed run = %+v, %v", sum, err)
	}
	// A batch of two: one re-check and one bulk call, or a read of the account
	// and of its activity each and one delete.
	if wantCalls := map[bool]int{false: 2, true: 5}[oneAtATime]; sum.Calls != wantCalls {
		t.Errorf("the first batch made %d LMS calls, want %d", sum.Calls, wantCalls)
	}
	sum, err = runner.Run(w.ctx, hold)
	if err != nil || !sum.Complete {
		t.Fatalf("resumed run = %+v, %v", sum, err)
	}
	if sum.Totals[connector.JobDone] != 4 || sum.Totals[connector.JobSkipped] != 1 || sum.Totals[connector.JobPending] != 0 {
		t.Fatalf("totals = %v", sum.Totals)
	}
	items, err := w.db.JobItems(w.ctx, hold, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, it := range items {
		switch i {
		case 2:
			if it.Status != connector.JobSkipped || !strings.Contains(it.Detail, "logged in") {
				t.Errorf("item that logged in: %+v", it)
			}
			if _, err := w.lms.GetAccount(w.ctx, it.AccountID); err != nil {
				t.Errorf("the account that logged in was deleted: %v", err)
			}
		case 3:
			if it.Status != connector.JobDone || !strings.Contains(it.Detail, "already gone") {
				t.Errorf("item deleted by hand: %+v", it)
			}
		default:
			if it.Status != connector.JobDone {
				t.Errorf("item %d: %+v", i, it)
			}
		}
	}
	deletes := map[string]int{}
	for _, op := range w.lms.Ops() {
		if op.Kind == sandbox.OpDelete {
			deletes[op.AccountID]++
		}
	}
	for id, n := range deletes {
		if n != 1 {
			t.Errorf("account %s deleted %d times", id, n)
		}
	}
	for _, n := range []string{"emp", "legacy-login", "legacy-completed", "new"} {
		if _, err := w.lms.GetAccount(w.ctx, w.ids[n]); err != nil {
			t.Errorf("%s was deleted: %v", n, err)
		}
	}
}

// TestCleanupSkipsNewlyEmployed: an account selected as a leaver's whose person is
// rehired before the run is kept.
func TestCleanupSkipsNewlyEmployed(t *testing.T) {
	w := newCleanupWorld(t)
	sel, err := w.selector().Select(w.ctx, connector.DormantFilter{NoLogin: true, Feed: "hr"})
	if err != nil || len(sel.Items) != 1 {
		t.Fatalf("select = %+v, %v", sel.Items, err)
	}
	hold, err := w.db.CreateJob(w.ctx, connector.Hold{Kind: connector.HoldCleanup, Feed: "hr", Reason: "test"}, sel.Items)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.db.DecideHold(w.ctx, hold, connector.HoldDecision{Approve: true, By: "ana", Reason: "ok"}); err != nil {
		t.Fatal(err)
	}
	w.fact(t, "hr", "gone", connector.KindRehired, w.now.Add(-time.Minute), person("gone@example.com"))
	sum, err := connector.JobRunner{LMS: w.lms, Store: w.db, Now: func() time.Time { return w.now }}.Run(w.ctx, hold)
	if err != nil || sum.Skipped != 1 || sum.Done != 0 {
		t.Fatalf("run = %+v, %v", sum, err)
	}
	items, _ := w.db.JobItems(w.ctx, hold, 0, 0)
	if !strings.Contains(items[0].Detail, "employed") {
		t.Errorf("detail = %q", items[0].Detail)
	}
	if _, err := w.lms.GetAccount(w.ctx, w.ids["gone"]); err != nil {
		t.Errorf("the rehire's account was deleted: %v", err)
	}
}
