package connector_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
)

// setupPolicy is setup with the converger's policy taken from each feed (its
// pre-hire lead time), as hrsync run configures it.
func setupPolicy(t *testing.T, start time.Time, feeds ...connector.Feed) *testBundle {
	t.Helper()
	b := setup(t, start, feeds...)
	var err error
	b.conv, err = connector.NewConverger(connector.ConvergerConfig{Store: b.db, LMS: b.lms, Feeds: b.feeds, Now: b.clock,
		Policy: func(feed string) connector.Policy { return b.feeds[feed].Policy(connector.DefaultPolicy()) }})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *testBundle) lastAudit(t *testing.T, action connector.ActionKind) connector.AuditEntry {
	t.Helper()
	entries, err := b.db.ListAudit(context.Background(), store.AuditFilter{Feed: "hr", WorkerID: "w1", Action: action})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries { // newest first
		if e.Outcome == connector.OutcomeOK {
			return e
		}
	}
	t.Fatalf("no %s in the audit: %+v", action, entries)
	return connector.AuditEntry{}
}

// TestConvergerLeaveOfAbsence: suspended deactivates, resumed reactivates the
// same account, and the audit tells a leave of absence from a leaver.
func TestConvergerLeaveOfAbsence(t *testing.T) {
	t.Parallel()
	day := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	b := setup(t, day)
	b.record(t, connector.Fact{WorkerID: "w1", Kind: connector.KindHired, Effective: day, Profile: profile("ann@example.com")})
	id := b.account(t, "hr:w1").ID

	b.record(t, connector.Fact{WorkerID: "w1", Kind: connector.KindSuspended, Effective: day.AddDate(0, 0, 10), Reason: "parental leave"})
	b.record(t, connector.Fact{WorkerID: "w1", Kind: connector.KindResumed, Effective: day.AddDate(0, 3, 0)})
	if !b.account(t, "hr:w1").Active {
		t.Fatal("deactivated before the leave starts")
	}
	b.set(day.AddDate(0, 0, 10))
	b.converge(t)
	if a := b.account(t, "hr:w1"); a.Active || a.ID != id {
		t.Fatalf("on leave: %+v", a)
	}
	if d := b.lastAudit(t, connector.ActionDeactivate).Detail; d != "suspended (leave of absence): parental leave" {
		t.Fatalf("deactivation detail %q", d)
	}
	b.set(day.AddDate(0, 3, 0))
	b.converge(t)
	if a := b.account(t, "hr:w1"); !a.Active || a.ID != id || b.lms.Count() != 1 {
		t.Fatalf("back from leave: %+v (%d accounts)", a, b.lms.Count())
	}
	if d := b.lastAudit(t, connector.ActionReactivate).Detail; d != "resumed after a leave of absence" {
		t.Fatalf("reactivation detail %q", d)
	}
}

// TestConvergerPreHireLead: with a lead time the account appears, inactive, N
// days before the start date, and is activated on the start date; the converger
// wakes at both instants.
func TestConvergerPreHireLead(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	for _, active := range []bool{false, true} {
		hr := connector.DefaultFeed("hr", connector.FeedHR)
		hr.PreHireLeadDays, hr.PreHireActive = 14, active
		b := setupPolicy(t, start.AddDate(0, -1, 0), hr)
		b.record(t, connector.Fact{WorkerID: "w1", Kind: connector.KindHired, Effective: start, Profile: profile("ann@example.com")})
		if n := b.lms.Count(); n != 0 {
			t.Fatalf("active=%v: %d accounts before the lead time", active, n)
		}
		lead := start.AddDate(0, 0, -14)
		if next, ok, err := b.db.NextDue(context.Background()); err != nil || !ok || !next.Equal(lead) {
			t.Fatalf("active=%v: NextDue = %v %v %v, want %v", active, next, ok, err, lead)
		}
		b.set(lead)
		b.converge(t)
		if a := b.account(t, "hr:w1"); a.Active != active || a.UserName != "ann@example.com" {
			t.Fatalf("active=%v: in the lead time: %+v", active, a)
		}
		if d := b.lastAudit(t, connector.ActionCreate).Detail; !strings.HasPrefix(d, "pre-hire: created") {
			t.Fatalf("create detail %q", d)
		}
		if next, ok, err := b.db.NextDue(context.Background()); err != nil || !ok || !next.Equal(start) {
			t.Fatalf("active=%v: NextDue = %v %v %v, want the start date", active, next, ok, err)
		}
		b.set(start)
		b.converge(t)
		if a := b.account(t, "hr:w1"); !a.Active || b.lms.Count() != 1 {
			t.Fatalf("active=%v: on the start date: %+v (%d accounts)", active, a, b.lms.Count())
		}
	}
}

// TestConvergerRehireTrainingInAudit: the reactivation of a rehire's account
// lists, in its audit row, the person's prior courses and the expired ones.
func TestConvergerRehireTrainingInAudit(t *testing.T) {
	t.Parallel()
	day := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	b := setup(t, day)
	year := 365 * 24 * time.Hour
	var err error
	b.conv, err = connector.NewConverger(connector.ConvergerConfig{Store: b.db, LMS: b.lms, Feeds: b.feeds, Now: b.clock,
		Policy: func(string) connector.Policy {
			p := connector.DefaultPolicy()
			p.CourseValidity = map[string]time.Duration{"safety-101": year, "forklift": 3 * year}
			return p
		}})
	if err != nil {
		t.Fatal(err)
	}
	b.record(t, connector.Fact{WorkerID: "w1", Kind: connector.KindHired, Effective: day, Profile: profile("ann@example.com")})
	id := b.account(t, "hr:w1").ID
	for _, c := range []string{"safety-101", "forklift", "onboarding"} {
		if err := b.lms.CompleteCourse(id, c, day.AddDate(0, 1, 0)); err != nil {
			t.Fatal(err)
		}
	}
	b.set(day.AddDate(0, 2, 0))
	b.record(t, connector.Fact{WorkerID: "w1", Kind: connector.KindLeft, Effective: day.AddDate(0, 2, 0)})
	b.set(day.AddDate(2, 0, 0))
	b.record(t, connector.Fact{WorkerID: "w1", Kind: connector.KindRehired, Effective: day.AddDate(2, 0, 0), Profile: profile("ann@example.com")})
	if a := b.account(t, "hr:w1"); !a.Active || a.ID != id {
		t.Fatalf("after rehire: %+v", a)
	}
	want := "employed again; rehire training: 3 courses, 1 expired (safety-101)"
	if d := b.lastAudit(t, connector.ActionReactivate).Detail; d != want {
		t.Fatalf("reactivation detail %q, want %q", d, want)
	}
}
