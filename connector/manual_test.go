package connector_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
)

// TestKeepsManualDeactivation is the table of the rule in docs/reconcile.md,
// "Accounts deactivated by hand". hrsync last set the account active at t0
// (reactivate), and an admin has deactivated it since; now is t0 + 30 days.
func TestKeepsManualDeactivation(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)
	now := t0.AddDate(0, 0, 30)
	reactivated := &connector.AuditEntry{At: t0, Action: connector.ActionReactivate}
	seq := 0
	// f builds a fact effective at eff and recorded by the store at rec; its
	// event time is its effective time.
	f := func(kind connector.Kind, eff, rec time.Time) connector.Fact {
		seq++
		return connector.Fact{Feed: "hr", WorkerID: "w1", Source: "/feeds/hr", ID: fmt.Sprintf("e%d", seq), Kind: kind,
			Effective: eff, Time: eff, Recorded: rec, Profile: connector.Profile{Email: "ann@example.com"}}
	}
	day := func(n int) time.Time { return t0.AddDate(0, 0, n) }
	hire := f(connector.KindHired, day(-60), day(-60))
	tests := []struct {
		name  string
		last  *connector.AuditEntry
		facts []connector.Fact
		kept  bool
	}{
		{"NothingRecordedSince", reactivated, []connector.Fact{hire}, true},
		{"UpdateRecordedSince", reactivated, []connector.Fact{hire, f(connector.KindUpdated, day(5), day(5))}, true},
		{"HireRecordedSince", reactivated, []connector.Fact{hire, f(connector.KindHired, day(20), day(20))}, false},
		{"RehireRecordedSinceDatedBefore", reactivated, []connector.Fact{hire,
			f(connector.KindLeft, day(-40), day(20)), f(connector.KindRehired, day(-30), day(20))}, false},
		{"ResumeRecordedSince", reactivated, []connector.Fact{hire,
			f(connector.KindSuspended, day(-50), day(-50)), f(connector.KindResumed, day(-45), day(20))}, false},
		// Recorded at the instant of hrsync's own state change: not since.
		{"RecordedAtTheSameInstant", reactivated, []connector.Fact{hire, f(connector.KindHired, day(-1), t0)}, true},
		// The event time says "since", the store says before: the store wins.
		{"EventTimeSinceRecordedBefore", reactivated, []connector.Fact{hire,
			func() connector.Fact { x := f(connector.KindRehired, day(-2), day(-1)); x.Time = day(20); return x }()}, true},
		// A rehire recorded since but dated next month is not in force yet.
		{"RehireRecordedSinceNotYetDue", reactivated, []connector.Fact{hire, f(connector.KindRehired, day(60), day(20))}, true},
		// A leave in force that came into force since: hrsync had to deactivate
		// the account itself (its audit row may be lost), and a later-dated
		// rehire recorded before t0 is what makes the person active now.
		{"LeaveCameIntoForceSince", reactivated, []connector.Fact{hire,
			f(connector.KindRehired, day(25), day(-10)), f(connector.KindLeft, day(10), day(-10))}, false},
		{"HrsyncDeactivatedIt", &connector.AuditEntry{At: t0, Action: connector.ActionDeactivate}, []connector.Fact{hire}, false},
		{"CreatedActiveNothingSince", &connector.AuditEntry{At: t0, Action: connector.ActionCreate, Detail: "hired, no account"}, []connector.Fact{hire}, true},
		// hrsync never set the account's state (it adopted it): every fact is
		// HR's word since.
		{"NeverSetByHrsync", nil, []connector.Fact{hire}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w, _ := connector.Want(tc.facts, now, connector.DefaultPolicy())
			if w.State != connector.StateActive {
				t.Fatalf("bad case: the facts want %s, not active", w.State)
			}
			if got := connector.KeepsManualDeactivation(tc.last, w, tc.facts); got != tc.kept {
				t.Fatalf("KeepsManualDeactivation = %v, want %v", got, tc.kept)
			}
		})
	}
}

// The state an action left the account in is read as data; the audit's words are
// read only for rows written before the field existed.
func TestManualDeactivationReadsActiveAfter(t *testing.T) {
	t.Parallel()
	yes, no := true, false
	tests := []struct {
		name string
		last *connector.AuditEntry
		want bool
	}{
		{"CreatedInactiveAsData", &connector.AuditEntry{Action: connector.ActionCreate, ActiveAfter: &no}, false},
		{"CreatedActiveAsData", &connector.AuditEntry{Action: connector.ActionCreate, ActiveAfter: &yes, Detail: "pre-hire: created inactive"}, true},
		{"OldRowInWords", &connector.AuditEntry{Action: connector.ActionCreate, Detail: "left before an account existed; created inactive to keep the record"}, false},
		{"OldRowActive", &connector.AuditEntry{Action: connector.ActionCreate, Detail: "hired"}, true},
		{"Deactivated", &connector.AuditEntry{Action: connector.ActionDeactivate}, false},
		{"Reactivated", &connector.AuditEntry{Action: connector.ActionReactivate, ActiveAfter: &yes}, true},
		{"NoRow", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := connector.ManualDeactivation(tt.last); got != tt.want {
				t.Errorf("ManualDeactivation(%+v) = %v, want %v", tt.last, got, tt.want)
			}
		})
	}
}
