package connector

import (
	"fmt"
	"reflect"
	"testing"
	"time"
)

var (
	day1 = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	day2 = day1.AddDate(0, 0, 1)
	day3 = day1.AddDate(0, 0, 2)
	day4 = day1.AddDate(0, 0, 3)
)

var factSeq int

// fact builds a fact for worker id of feed hr. recorded is the event time.
func fact(kind Kind, id string, effective, recorded time.Time, opts ...func(*Fact)) Fact {
	factSeq++
	f := Fact{Feed: "hr", WorkerID: id, Source: "/feeds/hr", ID: fmt.Sprintf("e%d", factSeq), Kind: kind,
		Effective: effective, Time: recorded,
		Profile: Profile{Email: id + "@example.com", GivenName: "G" + id, FamilyName: "F" + id}}
	if kind == KindLeft || kind == KindUpdated {
		f.Profile = Profile{}
	}
	for _, o := range opts {
		o(&f)
	}
	return f
}

func hired(id string, eff time.Time) Fact   { return fact(KindHired, id, eff, eff) }
func left(id string, eff time.Time) Fact    { return fact(KindLeft, id, eff, eff) }
func rehired(id string, eff time.Time) Fact { return fact(KindRehired, id, eff, eff) }

func withEmail(e string) func(*Fact)  { return func(f *Fact) { f.Profile.Email = e } }
func withPrev(id string) func(*Fact)  { return func(f *Fact) { f.PreviousWorkerID = id } }
func withReason(r string) func(*Fact) { return func(f *Fact) { f.Reason = r } }

func TestWant(t *testing.T) {
	t.Parallel()
	noon := func(d time.Time) time.Time { return d.Add(12 * time.Hour) }
	tests := []struct {
		name      string
		facts     []Fact
		now       time.Time
		state     State
		everHired bool
		next      time.Time
		email     string
	}{
		{"NoFacts", nil, day1, StateAbsent, false, time.Time{}, ""},
		{"HireDue", []Fact{hired("w1", day1)}, noon(day1), StateActive, true, time.Time{}, "w1@example.com"},
		{"HireFutureDated", []Fact{hired("w1", day3)}, day1, StateAbsent, false, day3, ""},
		{"HireExactlyNow", []Fact{hired("w1", day1)}, day1, StateActive, true, time.Time{}, "w1@example.com"},
		{"LeaveDue", []Fact{hired("w1", day1), left("w1", day2)}, noon(day2), StateInactive, true, time.Time{}, "w1@example.com"},
		{"LeavePending", []Fact{hired("w1", day1), left("w1", day3)}, noon(day2), StateActive, true, day3, "w1@example.com"},
		{"LeaveArrivedFirst", []Fact{left("w1", day2), hired("w1", day1)}, noon(day2), StateInactive, true, time.Time{}, "w1@example.com"},
		{"Rehire", []Fact{hired("w1", day1), left("w1", day2), rehired("w1", day3)}, noon(day3), StateActive, true, time.Time{}, "w1@example.com"},
		{"RehireArrivedFirst", []Fact{rehired("w1", day3), left("w1", day2), hired("w1", day1)}, noon(day3), StateActive, true, time.Time{}, "w1@example.com"},
		{"DuplicateHire", func() []Fact { h := hired("w1", day1); return []Fact{h, h} }(), noon(day1), StateActive, true, time.Time{}, "w1@example.com"},
		{"LeaveOfUnknown", []Fact{left("w1", day1)}, noon(day1), StateInactive, false, time.Time{}, ""},
		{"UpdateOnly", []Fact{fact(KindUpdated, "w1", day1, day1, withEmail("x@example.com"))}, noon(day1), StateAbsent, false, time.Time{}, "x@example.com"},
		{"UpdateChangesEmail", []Fact{hired("w1", day1), fact(KindUpdated, "w1", day2, day2, withEmail("new@example.com"))}, noon(day2), StateActive, true, time.Time{}, "new@example.com"},
		{"FutureUpdateNotYet", []Fact{hired("w1", day1), fact(KindUpdated, "w1", day3, day1, withEmail("new@example.com"))}, noon(day2), StateActive, true, day3, "w1@example.com"},
		{
			// Notice given for day4; on day2 HR records that the person stays on (rehire
			// effective day3 <= day4). They must never be deactivated.
			"LeaveCancelledByLaterRehire",
			[]Fact{hired("w1", day1), fact(KindLeft, "w1", day4, day1), fact(KindRehired, "w1", day3, day2)},
			noon(day4), StateActive, true, time.Time{}, "w1@example.com",
		},
		{
			// The same rehire recorded before the leave does not cancel it.
			"LeaveAfterEarlierRehireStands",
			[]Fact{hired("w1", day1), fact(KindRehired, "w1", day3, day1), fact(KindLeft, "w1", day4, day2)},
			noon(day4), StateInactive, true, time.Time{}, "w1@example.com",
		},
		{
			"SameInstantLeaveAndRehire",
			[]Fact{hired("w1", day1), fact(KindLeft, "w1", day3, day1), fact(KindRehired, "w1", day3, day2)},
			noon(day3), StateActive, true, time.Time{}, "w1@example.com",
		},
		{
			"RehireUnderNewID",
			[]Fact{hired("w1", day1), left("w1", day2), fact(KindRehired, "w2", day3, day3, withPrev("w1"), withEmail("w1.new@example.com"))},
			noon(day3), StateActive, true, time.Time{}, "w1.new@example.com",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w, next := Want(tt.facts, tt.now, DefaultPolicy())
			if w.State != tt.state || w.EverHired != tt.everHired || !next.Equal(tt.next) || w.Profile.Email != tt.email {
				t.Fatalf("Want = state %s everHired %v next %v email %q; want %s %v %v %q",
					w.State, w.EverHired, next, w.Profile.Email, tt.state, tt.everHired, tt.next, tt.email)
			}
		})
	}
}

// TestWantRehireWithdrawsLeave pins the ordering rule of docs/events.md, "How
// facts are ordered", with its worked example: a rehire sent (CloudEvents time)
// after a leave and dated no later than the leave's effective date withdraws the
// leave; every other fact folds by effective date. The result must not depend
// on the arrival order, so each case is checked in every order.
func TestWantRehireWithdrawsLeave(t *testing.T) {
	t.Parallel()
	d := func(s string) time.Time {
		v, err := time.Parse(time.DateOnly, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	hire := fact(KindHired, "w-1001", d("2026-01-05"), d("2026-01-05"))
	leave := fact(KindLeft, "w-1001", d("2027-03-31"), d("2026-11-20"), withReason("resignation"))
	tests := []struct {
		name   string
		facts  []Fact
		now    time.Time
		state  State
		reason string
	}{
		// The example: notice on 2026-11-20 for 2027-03-31; on 2027-02-10 HR
		// sends a rehire dated 2027-03-01. The leave is withdrawn: the account is
		// never deactivated, on 2027-03-31 or later.
		{"WithdrawnOnTheLeaveDate", []Fact{hire, leave, fact(KindRehired, "w-1001", d("2027-03-01"), d("2027-02-10"))},
			d("2027-03-31"), StateActive, ""},
		{"WithdrawnLater", []Fact{hire, leave, fact(KindRehired, "w-1001", d("2027-03-01"), d("2027-02-10"))},
			d("2027-06-01"), StateActive, ""},
		// A rehire dated on the leave's own date withdraws it too.
		{"SameDateWithdraws", []Fact{hire, leave, fact(KindRehired, "w-1001", d("2027-03-31"), d("2027-02-10"))},
			d("2027-04-01"), StateActive, ""},
		// Sent after the leave took effect, dated before it: withdrawn after the
		// fact; the account comes back.
		{"WithdrawnAfterItTookEffect", []Fact{hire, leave, fact(KindRehired, "w-1001", d("2027-03-15"), d("2027-04-02"))},
			d("2027-04-03"), StateActive, ""},
		// Sent before the notice: it is no answer to it, the leave stands.
		{"RehireSentBeforeTheNotice", []Fact{hire, leave, fact(KindRehired, "w-1001", d("2027-03-01"), d("2026-11-01"))},
			d("2027-04-01"), StateInactive, "resignation"},
		// Sent at the very same time as the notice: not after it, the leave stands.
		{"RehireSentWithTheNotice", []Fact{hire, leave, fact(KindRehired, "w-1001", d("2027-03-01"), d("2026-11-20"))},
			d("2027-04-01"), StateInactive, "resignation"},
		// Dated after the leave: an ordinary rehire; the person is away in between.
		{"RehireAfterTheLeaveIsARehire", []Fact{hire, leave, fact(KindRehired, "w-1001", d("2027-05-01"), d("2027-02-10"))},
			d("2027-04-01"), StateInactive, "resignation"},
		{"RehireAfterTheLeaveIsARehireLater", []Fact{hire, leave, fact(KindRehired, "w-1001", d("2027-05-01"), d("2027-02-10"))},
			d("2027-05-01"), StateActive, ""},
		// Only rehired withdraws a leave: a hired, resumed or updated event sent
		// later and dated earlier folds by its date, and the leave stands.
		{"HiredDoesNotWithdraw", []Fact{hire, leave, fact(KindHired, "w-1001", d("2027-03-01"), d("2027-02-10"))},
			d("2027-04-01"), StateInactive, "resignation"},
		{"ResumedDoesNotWithdraw", []Fact{hire, leave, fact(KindResumed, "w-1001", d("2027-03-01"), d("2027-02-10"))},
			d("2027-04-01"), StateInactive, "resignation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, order := range [][3]int{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}} {
				facts := []Fact{tt.facts[order[0]], tt.facts[order[1]], tt.facts[order[2]]}
				w, _ := Want(facts, tt.now, DefaultPolicy())
				if w.State != tt.state || w.LeftReason != tt.reason {
					t.Fatalf("arrival order %v: state %s reason %q; want %s %q", order, w.State, w.LeftReason, tt.state, tt.reason)
				}
			}
		})
	}
}

func TestWantRehireUnderNewIDNamesSuccessor(t *testing.T) {
	t.Parallel()
	facts := []Fact{
		fact(KindRehired, "w2", day3, day3, withPrev("w1"), withEmail("new@example.com")),
		hired("w1", day1), left("w1", day2),
	}
	w, _ := Want(facts, day4, DefaultPolicy())
	if w.Worker != (WorkerKey{"hr", "w2"}) {
		t.Fatalf("Worker = %v, want hr:w2", w.Worker)
	}
	if !reflect.DeepEqual(w.PreviousWorkerIDs, []string{"w1"}) {
		t.Fatalf("PreviousWorkerIDs = %v", w.PreviousWorkerIDs)
	}
	if !reflect.DeepEqual(w.Emails, []string{"new@example.com", "w1@example.com"}) {
		t.Fatalf("Emails = %v, want newest first", w.Emails)
	}
}

func TestWantLeftReason(t *testing.T) {
	t.Parallel()
	w, _ := Want([]Fact{hired("w1", day1), fact(KindLeft, "w1", day2, day2, withReason("end of season"))}, day3, DefaultPolicy())
	if w.LeftReason != "end of season" {
		t.Fatalf("LeftReason = %q", w.LeftReason)
	}
	w, _ = Want([]Fact{hired("w1", day1), fact(KindLeft, "w1", day2, day2, withReason("x")), rehired("w1", day3)}, day4, DefaultPolicy())
	if w.LeftReason != "" {
		t.Fatalf("LeftReason after rehire = %q, want empty", w.LeftReason)
	}
}

func TestPlan(t *testing.T) {
	t.Parallel()
	base := func(state State) Wanted {
		return Wanted{Worker: WorkerKey{"hr", "w1"}, State: state, EverHired: state != StateAbsent,
			Profile: Profile{Email: "w1@example.com", GivenName: "Ann", FamilyName: "Lee"}}
	}
	acct := func(active bool) *Account {
		return &Account{ID: "a1", ExternalID: "hr:w1", UserName: "w1@example.com", Active: active,
			Profile: Profile{Email: "W1@example.com", GivenName: "Ann", FamilyName: "Lee", JobTitle: "kept"}}
	}
	kinds := func(p []Action) []ActionKind {
		var out []ActionKind
		for _, a := range p {
			out = append(out, a.Kind)
		}
		return out
	}
	leaverNeverSeen := base(StateInactive)
	leaverNeverSeen.EverHired = false
	renamed := base(StateActive)
	renamed.Profile.FamilyName = "Lee-Smith"

	tests := []struct {
		name string
		want Wanted
		have *Account
		out  []ActionKind
	}{
		{"HireNew", base(StateActive), nil, []ActionKind{ActionCreate}},
		{"HireExistingActive", base(StateActive), acct(true), nil},
		{"LeaveActive", base(StateInactive), acct(true), []ActionKind{ActionDeactivate}},
		{"LeaveAlreadyInactive", base(StateInactive), acct(false), nil},
		{"RehireInactive", base(StateActive), acct(false), []ActionKind{ActionReactivate}},
		{"LeaverWithoutAccountCreatedInactive", base(StateInactive), nil, []ActionKind{ActionCreate}},
		{"LeaveOfNeverHiredWithoutAccount", leaverNeverSeen, nil, nil},
		{"AbsentNeverTouches", base(StateAbsent), acct(true), nil},
		{"AbsentNoAccount", base(StateAbsent), nil, nil},
		{"ProfileDrift", renamed, acct(true), []ActionKind{ActionUpdate}},
		{"DriftAndReactivate", renamed, acct(false), []ActionKind{ActionUpdate, ActionReactivate}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := kinds(Plan(tt.want, tt.have, DefaultPolicy()))
			if !reflect.DeepEqual(got, tt.out) {
				t.Fatalf("Plan = %v, want %v", got, tt.out)
			}
		})
	}

	t.Run("CreateInactiveCarriesActiveFalse", func(t *testing.T) {
		t.Parallel()
		p := Plan(base(StateInactive), nil, DefaultPolicy())
		if p[0].Account.Active || p[0].Account.ExternalID != "hr:w1" || p[0].Account.UserName != "w1@example.com" {
			t.Fatalf("create = %+v", p[0].Account)
		}
	})
	t.Run("UpdateKeepsUnmanagedFields", func(t *testing.T) {
		t.Parallel()
		p := Plan(renamed, acct(true), DefaultPolicy())
		if p[0].Account.Profile.JobTitle != "kept" || p[0].Account.Profile.FamilyName != "Lee-Smith" || p[0].AccountID != "a1" {
			t.Fatalf("update = %+v", p[0])
		}
	})
}

func TestFeedScope(t *testing.T) {
	t.Parallel()
	hr := DefaultFeed("hr", FeedHR)
	acme := DefaultFeed("partner-acme", FeedPartner)
	acme.Scope.ExternalIDPrefixes = []string{"acme-legacy:"}
	cases := []struct {
		feed Feed
		ext  string
		want bool
	}{
		{hr, "hr:1", true}, {hr, "", true}, {hr, "partner-acme:1", false},
		{acme, "partner-acme:1", true}, {acme, "acme-legacy:9", true}, {acme, "", false}, {acme, "hr:1", false},
		{acme, "partner-acme-evil:1", false},
	}
	branch := acme
	branch.Scope.Organizations = []string{"Acme GmbH"}
	for _, c := range []struct {
		org  string
		want bool
	}{{"Acme GmbH", true}, {"acme gmbh", true}, {"Globex", false}, {"", false}} {
		if got := branch.InScope(Account{ExternalID: "partner-acme:1", Organization: c.org}); got != c.want {
			t.Errorf("organization %q: InScope = %v, want %v", c.org, got, c.want)
		}
	}
	for _, c := range cases {
		if got := c.feed.InScope(Account{ExternalID: c.ext}); got != c.want {
			t.Errorf("%s.InScope(%q) = %v, want %v", c.feed.Name, c.ext, got, c.want)
		}
	}
}

func TestNewFeedsRejectsBadConfig(t *testing.T) {
	t.Parallel()
	bad := DefaultFeed("Bad Name", FeedHR)
	if _, err := NewFeeds(bad); err == nil {
		t.Fatal("bad name accepted")
	}
	a, b := DefaultFeed("a", FeedHR), DefaultFeed("b", FeedPartner)
	b.Source = a.Source
	if _, err := NewFeeds(a, b); err == nil {
		t.Fatal("shared source accepted")
	}
	if _, err := NewFeeds(a, a); err == nil {
		t.Fatal("duplicate feed accepted")
	}
}

func suspended(id string, eff time.Time) Fact { return fact(KindSuspended, id, eff, eff, noProfile) }
func resumed(id string, eff time.Time) Fact   { return fact(KindResumed, id, eff, eff, noProfile) }
func noProfile(f *Fact)                       { f.Profile = Profile{} }

func TestWantLeaveOfAbsence(t *testing.T) {
	t.Parallel()
	noon := func(d time.Time) time.Time { return d.Add(12 * time.Hour) }
	day5 := day1.AddDate(0, 0, 4)
	tests := []struct {
		name    string
		facts   []Fact
		now     time.Time
		state   State
		resumed bool
		next    time.Time
	}{
		{"Suspended", []Fact{hired("w1", day1), suspended("w1", day2)}, noon(day2), StateSuspended, false, time.Time{}},
		{"SuspensionPending", []Fact{hired("w1", day1), suspended("w1", day3)}, noon(day2), StateActive, false, day3},
		{"Resumed", []Fact{hired("w1", day1), suspended("w1", day2), resumed("w1", day3)}, noon(day3), StateActive, true, time.Time{}},
		{"ResumePending", []Fact{hired("w1", day1), suspended("w1", day2), resumed("w1", day4)}, noon(day3), StateSuspended, false, day4},
		{"ResumeArrivedFirst", []Fact{resumed("w1", day3), suspended("w1", day2), hired("w1", day1)}, noon(day3), StateActive, true, time.Time{}},
		{"RehireEndsSuspension", []Fact{hired("w1", day1), suspended("w1", day2), rehired("w1", day3)}, noon(day3), StateActive, false, time.Time{}},
		{"LeaveWhileSuspended", []Fact{hired("w1", day1), suspended("w1", day2), left("w1", day3)}, noon(day3), StateInactive, false, time.Time{}},
		{"ResumeAfterLeaveDoesNotReactivate", []Fact{hired("w1", day1), suspended("w1", day2), left("w1", day3), resumed("w1", day4)}, noon(day4), StateInactive, false, time.Time{}},
		{"SuspendAfterLeaveStaysInactive", []Fact{hired("w1", day1), left("w1", day2), suspended("w1", day3)}, noon(day3), StateInactive, false, time.Time{}},
		{"SuspendOfUnknown", []Fact{suspended("w1", day1)}, noon(day1), StateAbsent, false, time.Time{}},
		{"ResumeWithoutSuspension", []Fact{hired("w1", day1), resumed("w1", day2)}, noon(day2), StateActive, false, time.Time{}},
		{"SuspendedAgain", []Fact{hired("w1", day1), suspended("w1", day2), resumed("w1", day3), suspended("w1", day4)}, noon(day5), StateSuspended, false, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w, next := Want(tt.facts, tt.now, DefaultPolicy())
			if w.State != tt.state || w.Resumed != tt.resumed || !next.Equal(tt.next) {
				t.Fatalf("Want = state %s resumed %v next %v; want %s %v %v", w.State, w.Resumed, next, tt.state, tt.resumed, tt.next)
			}
		})
	}
	t.Run("SuspendReason", func(t *testing.T) {
		t.Parallel()
		w, _ := Want([]Fact{hired("w1", day1), fact(KindSuspended, "w1", day2, day2, noProfile, withReason("parental leave"))}, day3, DefaultPolicy())
		if w.SuspendReason != "parental leave" || w.LeftReason != "" {
			t.Fatalf("SuspendReason = %q, LeftReason = %q", w.SuspendReason, w.LeftReason)
		}
	})
}

func TestWantPreHireLead(t *testing.T) {
	t.Parallel()
	start := day1.AddDate(0, 0, 14)
	lead := 7 * 24 * time.Hour
	inactive := Policy{Leaver: LeaverDeactivate, PreHireLead: lead}
	active := Policy{Leaver: LeaverDeactivate, PreHireLead: lead, PreHireActive: true}
	tests := []struct {
		name    string
		facts   []Fact
		now     time.Time
		p       Policy
		state   State
		preHire bool
		next    time.Time
	}{
		{"BeforeLead", []Fact{hired("w1", start)}, day1, inactive, StateAbsent, false, start.Add(-lead)},
		{"LeadBeginsInactive", []Fact{hired("w1", start)}, start.Add(-lead), inactive, StateInactive, true, start},
		{"InLeadInactive", []Fact{hired("w1", start)}, start.Add(-time.Hour), inactive, StateInactive, true, start},
		{"InLeadActive", []Fact{hired("w1", start)}, start.Add(-time.Hour), active, StateActive, true, start},
		{"StartDate", []Fact{hired("w1", start)}, start, inactive, StateActive, false, time.Time{}},
		{"NoLead", []Fact{hired("w1", start)}, start.Add(-time.Hour), DefaultPolicy(), StateAbsent, false, start},
		{"LeaverInLeadOfRehireStaysInactive", []Fact{hired("w1", day1), left("w1", day2), rehired("w1", start)}, start.Add(-time.Hour), inactive, StateInactive, true, start},
		{"LeaverInLeadOfRehireActive", []Fact{hired("w1", day1), left("w1", day2), rehired("w1", start)}, start.Add(-time.Hour), active, StateActive, true, start},
		{"EmployedIsNotPreHire", []Fact{hired("w1", day1), rehired("w1", start)}, start.Add(-time.Hour), active, StateActive, false, start},
		{"PendingLeaveFirst", []Fact{hired("w1", day1), left("w1", start.Add(-2*time.Hour)), rehired("w1", start)}, start.Add(-3 * time.Hour), active, StateActive, false, start.Add(-2 * time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w, next := Want(tt.facts, tt.now, tt.p)
			if w.State != tt.state || w.PreHire != tt.preHire || !next.Equal(tt.next) {
				t.Fatalf("Want = state %s preHire %v next %v; want %s %v %v", w.State, w.PreHire, next, tt.state, tt.preHire, tt.next)
			}
			if w.PreHire && (w.Profile.Email != "w1@example.com" || !w.StartsAt.Equal(start)) {
				t.Fatalf("pre-hire profile %+v starts %v", w.Profile, w.StartsAt)
			}
		})
	}
}

func TestPlanLeaveOfAbsenceAndPreHire(t *testing.T) {
	t.Parallel()
	start := day3
	base := func(state State) Wanted {
		return Wanted{Worker: WorkerKey{"hr", "w1"}, State: state, EverHired: true,
			Profile: Profile{Email: "w1@example.com", GivenName: "Ann", FamilyName: "Lee"}}
	}
	acct := func(active bool) *Account {
		return &Account{ID: "a1", ExternalID: "hr:w1", UserName: "w1@example.com", Active: active,
			Profile: Profile{Email: "w1@example.com", GivenName: "Ann", FamilyName: "Lee"}}
	}
	susp := base(StateSuspended)
	susp.SuspendReason = "parental leave"
	back := base(StateActive)
	back.Resumed = true
	preIn := base(StateInactive)
	preIn.EverHired, preIn.PreHire, preIn.StartsAt = false, true, start
	preAct := base(StateActive)
	preAct.EverHired, preAct.PreHire, preAct.StartsAt = false, true, start
	tests := []struct {
		name   string
		want   Wanted
		have   *Account
		kind   []ActionKind
		active bool
		reason string
	}{
		{"SuspendActive", susp, acct(true), []ActionKind{ActionDeactivate}, false, "suspended (leave of absence): parental leave"},
		{"SuspendAlreadyInactive", susp, acct(false), nil, false, ""},
		{"SuspendedNoAccount", base(StateSuspended), nil, []ActionKind{ActionCreate}, false, "suspended (leave of absence) before an account existed; created inactive"},
		{"Resume", back, acct(false), []ActionKind{ActionReactivate}, false, "resumed after a leave of absence"},
		{"PreHireInactiveCreates", preIn, nil, []ActionKind{ActionCreate}, false, "pre-hire: created inactive ahead of the start date 2026-03-04T00:00:00Z"},
		{"PreHireActiveCreates", preAct, nil, []ActionKind{ActionCreate}, true, "pre-hire: created active ahead of the start date 2026-03-04T00:00:00Z"},
		{"PreHireInactiveLeavesActiveAccount", preIn, acct(true), nil, false, ""},
		{"PreHireActiveReactivates", preAct, acct(false), []ActionKind{ActionReactivate}, false, "pre-hire: active ahead of the start date 2026-03-04T00:00:00Z"},
		{"StartDateActivates", base(StateActive), acct(false), []ActionKind{ActionReactivate}, false, "employed again"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			plan := Plan(tt.want, tt.have, DefaultPolicy())
			var kinds []ActionKind
			for _, a := range plan {
				kinds = append(kinds, a.Kind)
			}
			if !reflect.DeepEqual(kinds, tt.kind) {
				t.Fatalf("Plan = %v, want %v", kinds, tt.kind)
			}
			if len(plan) > 0 && (plan[0].Reason != tt.reason || plan[0].Account.Active != tt.active) {
				t.Fatalf("action = %q active %v, want %q active %v", plan[0].Reason, plan[0].Account.Active, tt.reason, tt.active)
			}
		})
	}
	t.Run("InactiveCreatesReadAsHrsyncs", func(t *testing.T) {
		t.Parallel()
		// A later reactivation is never mistaken for undoing an admin's deactivation.
		for _, w := range []Wanted{preIn, base(StateSuspended)} {
			p := Plan(w, nil, DefaultPolicy())
			if ManualDeactivation(&AuditEntry{Action: ActionCreate, Detail: p[0].Reason}) {
				t.Fatalf("create %q reads as a manual deactivation", p[0].Reason)
			}
		}
	})
}

func TestFeedPolicyPreHire(t *testing.T) {
	t.Parallel()
	f := DefaultFeed("hr", FeedHR)
	f.PreHireLeadDays, f.PreHireActive = 14, true
	p := f.Policy(Policy{Leaver: LeaverDeactivate, ReactivateManual: true})
	if p.PreHireLead != 14*24*time.Hour || !p.PreHireActive || !p.ReactivateManual || p.Leaver != LeaverDeactivate {
		t.Fatalf("Policy = %+v", p)
	}
	f.PreHireLeadDays = -1
	if err := f.Validate(); err == nil {
		t.Fatal("negative pre_hire_lead_days accepted")
	}
}

func TestWantLeaverDeletePolicy(t *testing.T) {
	t.Parallel()
	pol := Policy{Leaver: LeaverDeleteIfNoActivity, DeleteAfter: 48 * time.Hour}
	facts := []Fact{hired("w1", day1), left("w1", day2)}
	w, next := Want(facts, day3, pol)
	if w.State != StateInactive || w.DeleteDue || !next.Equal(day4) {
		t.Fatalf("in the grace period: %+v next %v", w, next)
	}
	if w, next = Want(facts, day4, pol); !w.DeleteDue || !next.IsZero() {
		t.Fatalf("after the grace period: DeleteDue %v next %v", w.DeleteDue, next)
	}
	if w, _ = Want(append(facts, rehired("w1", day3)), day4, pol); w.DeleteDue || w.State != StateActive {
		t.Fatalf("a rehire within the grace period: %+v", w)
	}
	if w, _ = Want(facts, day4, DefaultPolicy()); w.DeleteDue {
		t.Fatal("the default policy deletes")
	}
	plan := Plan(Wanted{Worker: WorkerKey{"hr", "w1"}, State: StateInactive, EverHired: true, DeleteDue: true}, &Account{ID: "a1", ExternalID: "hr:w1"}, pol)
	if len(plan) != 1 || plan[0].Kind != ActionDelete {
		t.Fatalf("plan = %v, want delete", plan)
	}
	if plan := Plan(Wanted{Worker: WorkerKey{"hr", "w1"}, State: StateInactive, EverHired: true, DeleteDue: true}, nil, pol); plan != nil {
		t.Fatalf("a deleted account is brought back: %v", plan)
	}
	if _, err := ParseLeaverAction("shred"); err == nil {
		t.Fatal("an unknown leaver policy was accepted")
	}
}
