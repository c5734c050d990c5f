package connector_test

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
)

// countingLMS counts the writes that reach the LMS and keeps what creates sent.
type countingLMS struct {
	connector.LMS
	mu      sync.Mutex
	creates []connector.Account
	updates int
}

func (c *countingLMS) CreateAccount(ctx context.Context, a connector.Account) (connector.Account, error) {
	c.mu.Lock()
	c.creates = append(c.creates, a)
	c.mu.Unlock()
	return c.LMS.CreateAccount(ctx, a)
}

func (c *countingLMS) UpdateAccount(ctx context.Context, a connector.Account) (connector.Account, error) {
	c.mu.Lock()
	c.updates++
	c.mu.Unlock()
	return c.LMS.UpdateAccount(ctx, a)
}

func (c *countingLMS) counts() (creates, updates int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.creates), c.updates
}

// scimmyBundle is a reconBundle whose LMS drops what SCIMMY drops, with a
// converger and reconcilers that share one KeptAttributes, as one process's do.
type scimmyBundle struct {
	*reconBundle
	calls *countingLMS
	attrs *connector.KeptAttributes
	logs  *bytes.Buffer
}

func scimmySetup(t *testing.T) *scimmyBundle {
	t.Helper()
	b := &scimmyBundle{reconBundle: reconSetup(t), logs: &bytes.Buffer{}}
	b.lms = sandbox.New(sandbox.WithClock(func() time.Time { return b.now }),
		sandbox.WithDroppedAttributes("employeeNumber", "department", "manager"))
	b.restart(t)
	return b
}

// restart forgets what was learnt, as a new process would.
func (b *scimmyBundle) restart(t *testing.T) {
	t.Helper()
	var err error
	b.logs.Reset()
	log := slog.New(slog.NewTextHandler(b.logs, nil))
	if b.attrs, err = connector.NewKeptAttributes(log); err != nil {
		t.Fatal(err)
	}
	b.calls = &countingLMS{LMS: b.lms}
	// One worker a batch: a batch is planned whole before it acts, so what one
	// answer teaches reaches the next batch; this makes the count exact.
	b.conv, err = connector.NewConverger(connector.ConvergerConfig{Store: b.db, LMS: b.calls, Feeds: b.feeds,
		Now: func() time.Time { return b.now }, Batch: 1, Concurrency: 1, Loops: 1, Attributes: b.attrs, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
}

func (b *scimmyBundle) reconcilerApply(t *testing.T) *connector.Reconciler {
	t.Helper()
	r, err := connector.NewReconciler(connector.ReconcilerConfig{Store: b.db, LMS: b.calls, Feeds: b.feeds,
		Now: func() time.Time { return b.now }, PageSize: 4, Concurrency: 3, Apply: true, Attributes: b.attrs})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func fullProfile(w string) connector.Profile {
	return connector.Profile{Email: w + "@example.com", GivenName: w, FamilyName: "Lee", EmployeeNumber: "E-" + w,
		OrgUnit: "Sales", JobTitle: "Clerk", ManagerID: "M-1", Locale: "en-GB"}
}

// Against an LMS that drops employeeNumber, department and manager, reconcile
// --apply twice rewrites no account for them: the first write's answer teaches
// the converger, and the reconciler that shares what it learnt reports no
// profile drift. A field the LMS keeps still drifts and is put right.
func TestReconcileApplyTwiceDroppedAttributes(t *testing.T) {
	t.Parallel()
	b := scimmySetup(t)
	const n = 8
	workers := make([]string, n)
	for i := range workers {
		workers[i] = string(rune('a'+i)) + "w"
		b.fact(t, "hr", workers[i], connector.KindHired, rDay1, fullProfile(workers[i]))
	}
	b.converge(t)
	if c, u := b.calls.counts(); c != n || u != 0 {
		t.Fatalf("hires: %d creates, %d updates; want %d, 0", c, u, n)
	}
	for _, c := range b.calls.creates { // dropped fields are still sent on create
		if c.Profile.EmployeeNumber == "" || c.Profile.OrgUnit == "" || c.Profile.ManagerID == "" {
			t.Errorf("create sent %+v, want every field", c.Profile)
		}
	}
	if got := b.attrs.Dropped(); !slices.Equal(got, []string{"employee_number", "manager_id", "org_unit"}) {
		t.Errorf("Dropped() = %v", got)
	}
	if !strings.Contains(b.logs.String(), "the LMS does not keep employee_number: left out of drift and updates") ||
		strings.Count(b.logs.String(), "does not keep employee_number") != 1 {
		t.Errorf("want one INFO line per dropped field; logs:\n%s", b.logs)
	}

	// A new process, that has learnt nothing yet: two passes of reconcile --apply.
	b.restart(t)
	s, _ := b.reconcile(t, b.reconcilerApply(t))
	if s.Counts[connector.ClassProfileDrift] != n || s.MarkedDue != n {
		t.Fatalf("pass 1: %v, %d marked due; want %d profile_drift (nothing learnt yet)", s.Counts, s.MarkedDue, n)
	}
	b.converge(t)
	if _, u := b.calls.counts(); u != 1 {
		t.Errorf("pass 1 made %d updates, want 1: the first answer teaches the rest", u)
	}
	s, got := b.reconcile(t, b.reconcilerApply(t))
	if s.Counts[connector.ClassProfileDrift] != 0 || s.MarkedDue != 0 || s.Counts[connector.ClassInSync] != n {
		t.Fatalf("pass 2: %v, %d marked due; want all %d in sync (findings %v)", s.Counts, s.MarkedDue, n, got)
	}
	b.converge(t)
	if _, u := b.calls.counts(); u != 1 {
		t.Errorf("%d updates after pass 2, want still 1", u)
	}

	// Someone changes a kept field by hand: that is still drift, and is fixed.
	a := b.account(t, "hr:"+workers[3])
	a.Profile.JobTitle = "Edited"
	if _, err := b.lms.UpdateAccount(b.ctx, a); err != nil {
		t.Fatal(err)
	}
	s, got = b.reconcile(t, b.reconcilerApply(t))
	f := got["hr:"+workers[3]]
	if s.Counts[connector.ClassProfileDrift] != 1 || f.Class != connector.ClassProfileDrift || f.Detail != "fields differ: job_title" {
		t.Fatalf("after a hand edit: %v; finding %+v", s.Counts, f)
	}
	b.converge(t)
	if _, u := b.calls.counts(); u != 2 {
		t.Errorf("%d updates in all, want 2", u)
	}
	if a := b.account(t, "hr:"+workers[3]); a.Profile.JobTitle != "Clerk" {
		t.Errorf("job title not put right: %+v", a.Profile)
	}
}

// The live converger: after a hire, an unrelated change is one update, and a
// converge with nothing changed is none.
func TestConvergerDroppedAttributesNoUselessUpdate(t *testing.T) {
	t.Parallel()
	b := scimmySetup(t)
	p := fullProfile("w1")
	b.fact(t, "hr", "w1", connector.KindHired, rDay1, p)
	b.converge(t)
	if c, u := b.calls.counts(); c != 1 || u != 0 {
		t.Fatalf("hire: %d creates, %d updates", c, u)
	}
	b.fact(t, "hr", "w1", connector.KindUpdated, rDay2, connector.Profile{JobTitle: "Lead"})
	b.converge(t)
	if _, u := b.calls.counts(); u != 1 {
		t.Fatalf("a job title change made %d updates, want 1", u)
	}
	if a := b.account(t, "hr:w1"); a.Profile.JobTitle != "Lead" || a.Profile.GivenName != "w1" {
		t.Errorf("account after the update: %+v", a.Profile)
	}
	// The same values again: converged, nothing to write.
	b.fact(t, "hr", "w1", connector.KindUpdated, rDay2.Add(time.Hour), connector.Profile{JobTitle: "Lead", EmployeeNumber: p.EmployeeNumber})
	b.converge(t)
	if _, u := b.calls.counts(); u != 1 {
		t.Errorf("a converge with nothing changed made %d updates", u-1)
	}
}

// Configured attributes are neither sent nor compared, and an update made for
// another reason keeps the LMS's value; learnt ones are unlearnt when an answer
// carries them again.
func TestKeptAttributes(t *testing.T) {
	t.Parallel()
	if _, err := connector.NewKeptAttributes(nil, "shoeSize"); err == nil || !strings.Contains(err.Error(), `ignore_attributes: attribute "shoeSize"`) {
		t.Fatalf("unknown attribute: %v", err)
	}
	k, err := connector.NewKeptAttributes(nil, "title")
	if err != nil {
		t.Fatal(err)
	}
	w := connector.Wanted{Worker: connector.WorkerKey{Feed: "hr", WorkerID: "w1"}, State: connector.StateActive, EverHired: true,
		Profile: fullProfile("w1")}
	pol := connector.Policy{Attributes: k}
	plan := connector.Plan(w, nil, pol)
	if len(plan) != 1 || plan[0].Kind != connector.ActionCreate || plan[0].Account.Profile.JobTitle != "" || plan[0].Account.Profile.EmployeeNumber == "" {
		t.Fatalf("create with title ignored: %+v", plan)
	}
	have := connector.Desired(w)
	have.ID, have.Profile.JobTitle = "u-1", "Set by hand"
	if plan := connector.Plan(w, &have, pol); len(plan) != 0 {
		t.Errorf("an ignored field drifted: %v", plan)
	}
	have.Profile.GivenName = "Edited"
	plan = connector.Plan(w, &have, pol)
	if len(plan) != 1 || plan[0].Reason != "profile drift: given_name" || plan[0].Account.Profile.JobTitle != "Set by hand" || plan[0].Account.Profile.GivenName != "w1" {
		t.Fatalf("update with title ignored: %+v", plan)
	}

	// Learnt from an answer, and unlearnt.
	have.Profile = fullProfile("w1")
	answer := have
	answer.Profile.EmployeeNumber = ""
	k.Observe(have, answer)
	if k.Kept("employee_number") || !slices.Equal(k.Dropped(), []string{"employee_number", "job_title"}) {
		t.Fatalf("after a dropping answer: %v", k.Dropped())
	}
	have.Profile.EmployeeNumber = "E-changed"
	if plan := connector.Plan(w, &have, pol); len(plan) != 0 {
		t.Errorf("a dropped field drifted: %v", plan)
	}
	k.Observe(connector.Account{Profile: w.Profile}, connector.Account{}) // no answer: nothing learnt
	k.Observe(answer, have)                                               // not sent: nothing learnt
	if k.Kept("employee_number") {
		t.Fatal("unlearnt from an answer to a write that did not send it")
	}
	k.Observe(have, have)
	if !k.Kept("employee_number") || k.Kept("job_title") {
		t.Errorf("after a keeping answer: %v", k.Dropped())
	}
	if drift := connector.ProfileDriftOf(connector.Desired(w), have, k); !slices.Equal(drift, []string{"employee_number"}) {
		t.Errorf("drift of a kept field: %v", drift)
	}
}
