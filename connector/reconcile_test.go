package connector_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/store"
)

var (
	rDay1 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	rDay2 = rDay1.AddDate(0, 0, 1)
	rDay3 = rDay1.AddDate(0, 0, 2)
)

func TestClassifyPair(t *testing.T) {
	t.Parallel()
	pol := connector.DefaultPolicy()
	w := connector.WorkerKey{Feed: "hr", WorkerID: "w1"}
	want := func(s connector.State, email string) connector.Wanted {
		return connector.Wanted{Worker: w, State: s, EverHired: s != connector.StateAbsent,
			Profile: connector.Profile{Email: email, GivenName: "Ann"}}
	}
	acct := func(active bool, email, given string) *connector.Account {
		return &connector.Account{ID: "a1", ExternalID: "hr:w1", UserName: email, Active: active,
			Profile: connector.Profile{Email: email, GivenName: given}}
	}
	tests := []struct {
		name    string
		want    connector.Wanted
		have    *connector.Account
		class   connector.DriftClass
		actions []string
	}{
		{"InSync", want(connector.StateActive, "a@x"), acct(true, "a@x", "Ann"), connector.ClassInSync, nil},
		{"InSyncInactive", want(connector.StateInactive, "a@x"), acct(false, "A@X", "Ann"), connector.ClassInSync, nil},
		{"AbsentNoAccount", want(connector.StateAbsent, ""), nil, connector.ClassInSync, nil},
		{"AbsentWithAccountIsLeftAlone", want(connector.StateAbsent, ""), acct(true, "a@x", "Bob"), connector.ClassInSync, nil},
		{"Missing", want(connector.StateActive, "a@x"), nil, connector.ClassMissing, []string{"create"}},
		{"MissingLeaverKeepsRecord", want(connector.StateInactive, "a@x"), nil, connector.ClassMissing, []string{"create"}},
		{"ShouldBeInactive", want(connector.StateInactive, "a@x"), acct(true, "a@x", "Ann"), connector.ClassShouldBeInactive, []string{"deactivate a1"}},
		{"ShouldBeActive", want(connector.StateActive, "a@x"), acct(false, "a@x", "Ann"), connector.ClassShouldBeActive, []string{"reactivate a1"}},
		{"ProfileDrift", want(connector.StateActive, "a@x"), acct(true, "a@x", "Anne"), connector.ClassProfileDrift, []string{"update a1"}},
		{"StateWinsOverProfile", want(connector.StateInactive, "b@x"), acct(true, "a@x", "Ann"), connector.ClassShouldBeInactive, []string{"update a1", "deactivate a1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			class, plan := connector.ClassifyPair(tc.want, tc.have, pol)
			var got []string
			for _, a := range plan {
				got = append(got, a.String())
			}
			if class != tc.class || !slices.Equal(got, tc.actions) {
				t.Fatalf("ClassifyPair = %s %v, want %s %v", class, got, tc.class, tc.actions)
			}
		})
	}
}

func TestManualDeactivation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		last *connector.AuditEntry
		want bool
	}{
		{"NoAuditAtAll", nil, true},
		{"HrsyncDeactivated", &connector.AuditEntry{Action: connector.ActionDeactivate}, false},
		{"ReactivatedSince", &connector.AuditEntry{Action: connector.ActionReactivate}, true},
		{"CreatedActive", &connector.AuditEntry{Action: connector.ActionCreate, Detail: "hired, no account"}, true},
		{"CreatedInactive", &connector.AuditEntry{Action: connector.ActionCreate, Detail: "left before an account existed; created inactive to keep the record"}, false},
	}
	for _, tc := range tests {
		if got := connector.ManualDeactivation(tc.last); got != tc.want {
			t.Errorf("%s: ManualDeactivation = %v, want %v", tc.name, got, tc.want)
		}
	}
	// The plan's reason for a create-inactive must keep the words ManualDeactivation looks for.
	plan := connector.Plan(connector.Wanted{State: connector.StateInactive, EverHired: true}, nil, connector.DefaultPolicy())
	if len(plan) != 1 || connector.ManualDeactivation(&connector.AuditEntry{Action: plan[0].Kind, Detail: plan[0].Reason}) {
		t.Fatalf("plan %v: a create-inactive must count as hrsync's deactivation", plan)
	}
}

// TestReconcileManualDeactivationRecordedSince: the report applies the
// converger's rule (connector.KeepsManualDeactivation), so its
// manually_deactivated rows are the accounts the converger keeps inactive. An
// admin deactivated both accounts by hand; HR then recorded a new hire of
// "rehired" only. Apply without --reactivate-manual brings that one back and
// leaves the other.
func TestReconcileManualDeactivationRecordedSince(t *testing.T) {
	t.Parallel()
	b := reconSetup(t)
	for _, w := range []string{"kept", "rehired"} {
		b.fact(t, "hr", w, connector.KindHired, rDay1, person(w+"@example.com"))
	}
	b.converge(t)
	for _, w := range []string{"hr:kept", "hr:rehired"} {
		if _, err := b.lms.SetActive(b.ctx, b.account(t, w).ID, false); err != nil { // an admin, by hand
			t.Fatal(err)
		}
	}
	b.now = b.now.Add(24 * time.Hour)
	b.fact(t, "hr", "rehired", connector.KindHired, b.now, person("rehired@example.com"))

	_, got := b.reconcile(t, b.reconciler(t, false, false))
	if c := got["hr:kept"].Class; c != connector.ClassManuallyDeactivated {
		t.Errorf("kept: class %s, want %s", c, connector.ClassManuallyDeactivated)
	}
	if c := got["hr:rehired"].Class; c != connector.ClassShouldBeActive {
		t.Errorf("rehired: class %s, want %s: HR recorded a hire after the admin's deactivation", c, connector.ClassShouldBeActive)
	}

	s, got := b.reconcile(t, b.reconciler(t, true, false))
	if s.MarkedDue != 1 || !got["hr:rehired"].MarkedDue || got["hr:kept"].MarkedDue {
		t.Fatalf("apply marked %d due: kept %+v, rehired %+v; want rehired only", s.MarkedDue, got["hr:kept"], got["hr:rehired"])
	}
	b.converge(t)
	if !b.account(t, "hr:rehired").Active || b.account(t, "hr:kept").Active {
		t.Fatalf("after apply: rehired %+v, kept %+v; want rehired active, kept inactive", b.account(t, "hr:rehired"), b.account(t, "hr:kept"))
	}
}

func TestEscapeCSVCell(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"":                     "",
		"ann@example.com":      "ann@example.com",
		"=1+2":                 "'=1+2",
		"+49 30 1234":          "'+49 30 1234",
		"-2+3":                 "'-2+3",
		"@SUM(A1:A2)":          "'@SUM(A1:A2)",
		"\tx":                  "'\tx",
		"\rx":                  "'\rx",
		"a=b":                  "a=b",
		"'quoted":              "'quoted",
		"=HYPERLINK(\"x\")":    "'=HYPERLINK(\"x\")",
		" =leading-space-kept": " =leading-space-kept",
	}
	for in, want := range tests {
		if got := connector.EscapeCSVCell(in); got != want {
			t.Errorf("EscapeCSVCell(%q) = %q, want %q", in, got, want)
		}
	}
}

// reconBundle is a store, a sandbox LMS, a converger and a clock for
// reconciliation tests.
type reconBundle struct {
	ctx   context.Context
	db    *store.DB
	lms   *sandbox.LMS
	conv  *connector.Converger
	feeds connector.Feeds
	now   time.Time
	seq   int
}

func reconSetup(t *testing.T) *reconBundle {
	t.Helper()
	b := &reconBundle{ctx: t.Context(), now: rDay3.Add(time.Hour)}
	var err error
	b.feeds, err = connector.NewFeeds(connector.DefaultFeed("hr", connector.FeedHR), connector.DefaultFeed("partner-acme", connector.FeedPartner))
	if err != nil {
		t.Fatal(err)
	}
	b.db, err = store.Open(b.ctx, "sqlite://"+filepath.Join(t.TempDir(), "r.db"), nil, store.Migrate(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.db.Close() })
	clock := func() time.Time { return b.now }
	b.db.Now = clock
	b.lms = sandbox.New(sandbox.WithClock(clock))
	b.conv, err = connector.NewConverger(connector.ConvergerConfig{Store: b.db, LMS: b.lms, Feeds: b.feeds, Now: clock,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fact records one fact and does not converge it.
func (b *reconBundle) fact(t *testing.T, feed, worker string, kind connector.Kind, eff time.Time, p connector.Profile) {
	t.Helper()
	b.seq++
	f := connector.Fact{Feed: feed, WorkerID: worker, Source: b.feeds[feed].Source, ID: fmt.Sprintf("e%d", b.seq),
		Kind: kind, Effective: eff, Time: eff, Profile: p}
	if _, err := b.db.RecordFacts(b.ctx, []connector.Fact{f}); err != nil {
		t.Fatal(err)
	}
}

func (b *reconBundle) converge(t *testing.T) {
	t.Helper()
	if _, err := b.conv.Drain(b.ctx, 100); err != nil {
		t.Fatal(err)
	}
}

func (b *reconBundle) account(t *testing.T, externalID string) connector.Account {
	t.Helper()
	found, err := b.lms.FindAccounts(b.ctx, connector.AccountFilter{Attr: connector.ByExternalID, Value: externalID})
	if err != nil || len(found) != 1 {
		t.Fatalf("accounts with externalId %s: %v (err %v)", externalID, found, err)
	}
	return found[0]
}

func (b *reconBundle) create(t *testing.T, a connector.Account) connector.Account {
	t.Helper()
	got, err := b.lms.CreateAccount(b.ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func (b *reconBundle) reconciler(t *testing.T, apply, reactivateManual bool) *connector.Reconciler {
	t.Helper()
	r, err := connector.NewReconciler(connector.ReconcilerConfig{Store: b.db, LMS: b.lms, Feeds: b.feeds,
		Now: func() time.Time { return b.now }, PageSize: 4, Concurrency: 3, Apply: apply, ReactivateManual: reactivateManual,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (b *reconBundle) reconcile(t *testing.T, r *connector.Reconciler) (connector.ReconcileSummary, map[string]connector.Finding) {
	t.Helper()
	got := map[string]connector.Finding{}
	s, err := r.Reconcile(b.ctx, func(f connector.Finding) error {
		k := f.Feed + ":" + f.WorkerID
		if f.WorkerID == "" || f.Class == connector.ClassDuplicate {
			k = "account " + f.AccountID
		}
		if _, dup := got[k]; dup {
			t.Errorf("two findings for %s", k)
		}
		got[k] = f
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, got
}

func person(email string) connector.Profile {
	name, _, _ := strings.Cut(email, "@")
	return connector.Profile{Email: email, GivenName: name, FamilyName: "Lee"}
}

// seedEveryClass builds a store and an LMS with one case of every class (and two
// feeds) and returns the ids of the accounts it created outside hrsync.
func seedEveryClass(t *testing.T, b *reconBundle) map[string]string {
	t.Helper()
	hire := func(feed, w string) { b.fact(t, feed, w, connector.KindHired, rDay1, person(w+"@example.com")) }
	for _, w := range []string{"ins", "stale", "leaver", "back", "manual", "drift", "dup"} {
		hire("hr", w)
	}
	hire("partner-acme", "p-ok")
	hire("partner-acme", "p-drift")
	b.fact(t, "hr", "back", connector.KindLeft, rDay2, connector.Profile{})
	b.converge(t)

	ids := map[string]string{}
	// stale: its linked account is deleted by hand.
	if err := b.lms.DeleteAccount(b.ctx, b.account(t, "hr:stale").ID); err != nil {
		t.Fatal(err)
	}
	// leaver left, back came back: recorded, not converged yet.
	b.fact(t, "hr", "leaver", connector.KindLeft, rDay3, connector.Profile{})
	b.fact(t, "hr", "back", connector.KindRehired, rDay3, connector.Profile{})
	// manual: an admin deactivated the account.
	if _, err := b.lms.SetActive(b.ctx, b.account(t, "hr:manual").ID, false); err != nil {
		t.Fatal(err)
	}
	// drift and p-drift: someone edited the profile in the LMS.
	for _, x := range []string{"hr:drift", "partner-acme:p-drift"} {
		a := b.account(t, x)
		a.Profile.GivenName = "Edited"
		if _, err := b.lms.UpdateAccount(b.ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	// dup: its account lost its externalId, and a second account carries it.
	a := b.account(t, "hr:dup")
	a.ExternalID = "legacy:dup"
	if _, err := b.lms.UpdateAccount(b.ctx, a); err != nil {
		t.Fatal(err)
	}
	ids["dup"] = a.ID
	ids["dup2"] = b.create(t, connector.Account{ExternalID: "hr:dup", UserName: "dup2@example.com", Active: true, Profile: person("dup2@example.com")}).ID
	// new: hired, not converged, no account anywhere.
	hire("hr", "new")
	// adopt: hired, not converged; an unmanaged account has the email.
	ids["adopt"] = b.create(t, connector.Account{UserName: "adopt@example.com", Active: true, Profile: person("adopt@example.com")}).ID
	hire("hr", "adopt")
	// disp: hired, not converged; two unmanaged accounts share the email.
	hire("hr", "disp")
	for i := range 2 {
		ids[fmt.Sprint("disp", i)] = b.create(t, connector.Account{UserName: fmt.Sprintf("disp%d@example.com", i), Active: true,
			Profile: connector.Profile{Email: "disp@example.com"}}).ID
	}
	// future: hired from next month: nothing is due, nothing is drift.
	b.fact(t, "hr", "future", connector.KindHired, rDay3.AddDate(0, 1, 0), person("future@example.com"))
	// Orphans: no externalId (with a name that would be a formula), an unknown
	// worker of a configured feed, another system's externalId.
	ids["orphan-bare"] = b.create(t, connector.Account{UserName: "=HYPERLINK(\"http://evil\")", Active: true, Profile: connector.Profile{Email: "x@example.com"}}).ID
	ids["orphan-ghost"] = b.create(t, connector.Account{ExternalID: "hr:ghost", UserName: "ghost@example.com", Active: true}).ID
	ids["orphan-other"] = b.create(t, connector.Account{ExternalID: "crm:17", UserName: "crm@example.com", Active: false}).ID
	return ids
}

func TestReconcileEveryClass(t *testing.T) {
	t.Parallel()
	b := reconSetup(t)
	ids := seedEveryClass(t, b)
	r := b.reconciler(t, false, false)
	before := len(b.lms.Ops())

	var csvBuf, jsonBuf, countsBuf bytes.Buffer
	w := connector.NewReportWriter(&csvBuf, &jsonBuf, &countsBuf)
	got := map[string]connector.Finding{}
	s, err := r.Reconcile(b.ctx, func(f connector.Finding) error {
		k := f.Feed + ":" + f.WorkerID
		if f.WorkerID == "" || f.Class == connector.ClassDuplicate {
			k = "account " + f.AccountID
		}
		if _, dup := got[k]; dup {
			t.Errorf("two findings for %s", k)
		}
		got[k] = f
		return w.Add(f)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(s); err != nil {
		t.Fatal(err)
	}
	if n := len(b.lms.Ops()); n != before {
		t.Fatalf("a dry run changed the LMS: %d ops", n-before)
	}

	wantClass := map[string]connector.DriftClass{
		"hr:stale":                       connector.ClassMissing,
		"hr:new":                         connector.ClassMissing,
		"hr:leaver":                      connector.ClassShouldBeInactive,
		"hr:back":                        connector.ClassShouldBeActive,
		"hr:manual":                      connector.ClassManuallyDeactivated,
		"hr:drift":                       connector.ClassProfileDrift,
		"hr:dup":                         connector.ClassProfileDrift, // its account lost the externalId
		"partner-acme:p-drift":           connector.ClassProfileDrift,
		"hr:adopt":                       connector.ClassUnlinkedMatched,
		"hr:disp":                        connector.ClassDisputed,
		"account " + ids["orphan-bare"]:  connector.ClassOrphan,
		"account " + ids["orphan-ghost"]: connector.ClassOrphan,
		"account " + ids["orphan-other"]: connector.ClassOrphan,
	}
	// The second account of dup is reported under the worker whose externalId it carries.
	dupKey := "hr:dup"
	gotDup := false
	for k, f := range got {
		if f.Class == connector.ClassDuplicate {
			if gotDup || f.AccountID != ids["dup2"] || f.WorkerID != "dup" || !slices.Equal(f.Candidates, []string{ids["dup"], ids["dup2"]}) {
				t.Errorf("duplicate finding %s: %+v", k, f)
			}
			gotDup = true
			delete(got, k)
		}
	}
	if !gotDup {
		t.Errorf("no duplicate finding for the second account of %s", dupKey)
	}
	for k, c := range wantClass {
		f, ok := got[k]
		if !ok {
			t.Errorf("%s: no finding, want %s", k, c)
			continue
		}
		if f.Class != c {
			t.Errorf("%s: class %s, want %s (%+v)", k, f.Class, c, f)
		}
		delete(got, k)
	}
	for k, f := range got {
		t.Errorf("unexpected finding %s: %+v", k, f)
	}

	wantCounts := map[connector.DriftClass]int{
		connector.ClassInSync: 3, connector.ClassMissing: 2, connector.ClassShouldBeInactive: 1, connector.ClassShouldBeActive: 1,
		connector.ClassManuallyDeactivated: 1, connector.ClassProfileDrift: 3, connector.ClassUnlinkedMatched: 1,
		connector.ClassOrphan: 3, connector.ClassDuplicate: 1, connector.ClassDisputed: 1,
	}
	if !maps.Equal(s.Counts, wantCounts) {
		t.Errorf("Counts = %v\nwant     %v", s.Counts, wantCounts)
	}
	wantPartner := map[connector.DriftClass]int{connector.ClassInSync: 1, connector.ClassProfileDrift: 1}
	if !maps.Equal(s.ByFeed["partner-acme"], wantPartner) {
		t.Errorf("ByFeed[partner-acme] = %v, want %v", s.ByFeed["partner-acme"], wantPartner)
	}
	if s.ByFeed[""][connector.ClassOrphan] != 2 || s.ByFeed["hr"][connector.ClassOrphan] != 1 {
		t.Errorf("orphans by feed = %v / %v; want 2 without a feed, 1 under hr", s.ByFeed[""], s.ByFeed["hr"])
	}
	if s.Workers != 13 || s.Accounts != 15 || s.StaleLinks != 1 || s.MarkedDue != 0 {
		t.Errorf("summary = %+v; want 13 workers, 15 accounts, 1 stale link, nothing marked", s)
	}

	// The CSV: a header, one row per finding, formula cells defused.
	rows, err := csv.NewReader(&csvBuf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1+s.Drift() || rows[0][0] != "class" {
		t.Fatalf("CSV has %d rows, want a header and %d findings", len(rows), s.Drift())
	}
	var evil []string
	for _, row := range rows[1:] {
		for _, cell := range row {
			if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
				t.Errorf("CSV cell %q is a formula", cell)
			}
		}
		if row[3] == ids["orphan-bare"] {
			evil = row
		}
	}
	if evil == nil || evil[5] != `'=HYPERLINK("http://evil")` || evil[0] != "orphan" {
		t.Errorf("orphan row = %q, want its userName escaped with an apostrophe", evil)
	}
	// The JSON: the same findings and the summary.
	var doc struct {
		Findings []connector.Finding        `json:"findings"`
		Summary  connector.ReconcileSummary `json:"summary"`
	}
	if err := json.Unmarshal(jsonBuf.Bytes(), &doc); err != nil {
		t.Fatalf("JSON report: %v\n%s", err, jsonBuf.String())
	}
	if len(doc.Findings) != s.Drift() || !maps.Equal(doc.Summary.Counts, wantCounts) || doc.Summary.ByFeed["partner-acme"][connector.ClassProfileDrift] != 1 {
		t.Errorf("JSON report: %d findings, summary counts %v", len(doc.Findings), doc.Summary.Counts)
	}
	if !strings.Contains(countsBuf.String(), "partner-acme,profile_drift,1\n") || !strings.Contains(countsBuf.String(), "*,orphan,3\n") {
		t.Errorf("counts.csv:\n%s", countsBuf.String())
	}
}

func TestReconcileApplyHeals(t *testing.T) {
	t.Parallel()
	b := reconSetup(t)
	ids := seedEveryClass(t, b)
	manualID := b.account(t, "hr:manual").ID

	s, _ := b.reconcile(t, b.reconciler(t, true, false))
	// missing ×2, leaver, back, drift ×3, adopt, disp; not manual, orphans, duplicate.
	if s.MarkedDue != 9 {
		t.Fatalf("MarkedDue = %d, want 9", s.MarkedDue)
	}
	b.converge(t)

	// Left: what a person must decide. dup's account cannot take its externalId
	// back while the second account carries it: the converger raised a review.
	s, got := b.reconcile(t, b.reconciler(t, false, false))
	want := map[connector.DriftClass]int{connector.ClassManuallyDeactivated: 1, connector.ClassOrphan: 3,
		connector.ClassDuplicate: 1, connector.ClassDisputed: 1, connector.ClassProfileDrift: 1}
	for c, n := range s.Counts {
		if c != connector.ClassInSync && want[c] != n {
			t.Errorf("after apply: %d %s, want %d (findings %v)", n, c, want[c], got)
		}
	}
	if got["hr:manual"].AccountID != manualID || got["hr:manual"].MarkedDue {
		t.Errorf("manual: %+v", got["hr:manual"])
	}
	if got["hr:dup"].Class != connector.ClassProfileDrift {
		t.Errorf("dup: %+v", got["hr:dup"])
	}
	reviews, err := b.db.ListReviews(b.ctx, store.ReviewFilter{})
	var reviewed []string
	for _, r := range reviews {
		reviewed = append(reviewed, r.WorkerID)
	}
	slices.Sort(reviewed)
	if err != nil || !slices.Equal(reviewed, []string{"disp", "dup"}) {
		t.Errorf("reviews for %v, %v; want the disputed match and the duplicate", reviewed, err)
	}

	// With --reactivate-manual the admin's deactivation is undone too: the same
	// policy reaches the converger that applies the drift.
	s, _ = b.reconcile(t, b.reconciler(t, true, true))
	if s.MarkedDue != 3 { // manual, and disp and dup again
		t.Fatalf("MarkedDue = %d, want 3", s.MarkedDue)
	}
	b.conv, err = connector.NewConverger(connector.ConvergerConfig{Store: b.db, LMS: b.lms, Feeds: b.feeds, Now: func() time.Time { return b.now },
		Policy: func(string) connector.Policy { return connector.Policy{ReactivateManual: true} }})
	if err != nil {
		t.Fatal(err)
	}
	b.converge(t)
	if a := b.account(t, "hr:manual"); !a.Active {
		t.Fatalf("manual not reactivated: %+v", a)
	}
	s, _ = b.reconcile(t, b.reconciler(t, false, false))
	if s.Counts[connector.ClassManuallyDeactivated] != 0 || s.Drift() != 6 {
		t.Fatalf("after the second apply: %v", s.Counts)
	}
	// Orphans and duplicates are never deleted.
	for _, k := range []string{"orphan-bare", "orphan-ghost", "orphan-other", "dup2", "disp0", "disp1"} {
		if _, err := b.lms.GetAccount(b.ctx, ids[k]); err != nil {
			t.Errorf("account %s (%s): %v", ids[k], k, err)
		}
	}
	deletes := 0
	for _, op := range b.lms.Ops() {
		if op.Kind == sandbox.OpDelete {
			deletes++
		}
	}
	if deletes != 1 { // the test's own
		t.Errorf("%d accounts deleted, want only the one the test deleted", deletes)
	}
	audit, err := b.db.ListAudit(b.ctx, store.AuditFilter{WorkerID: "leaver", Action: connector.ActionDeactivate})
	if err != nil || len(audit) != 1 || audit[0].Outcome != connector.OutcomeOK {
		t.Fatalf("leaver's deactivation is not in the audit trail: %+v, %v", audit, err)
	}
}

func TestReconcilerStartStop(t *testing.T) {
	t.Parallel()
	b := reconSetup(t)
	b.fact(t, "hr", "w1", connector.KindHired, rDay1, person("w1@example.com"))
	var mu sync.Mutex
	var sinks []*memSink
	passes := make(chan connector.ReconcileSummary, 4)
	marked := make(chan int, 4)
	r, err := connector.NewReconciler(connector.ReconcilerConfig{Store: b.db, LMS: b.lms, Feeds: b.feeds,
		Now: func() time.Time { return b.now }, Interval: time.Hour, RunOnStart: true, Apply: true,
		Report: func(time.Time) (connector.ReportSink, error) {
			mu.Lock()
			defer mu.Unlock()
			s := &memSink{}
			sinks = append(sinks, s)
			return s, nil
		},
		Hooks: connector.ReconcilerHooks{
			Reconciled: func(s connector.ReconcileSummary, err error) {
				if err != nil {
					t.Errorf("pass: %v", err)
				}
				passes <- s
			},
			MarkedDue: func(n int) { marked <- n },
		}})
	if err != nil {
		t.Fatal(err)
	}
	r.Stop() // before Start: a no-op
	if err := r.Start(b.ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(b.ctx); err == nil {
		t.Fatal("second Start succeeded")
	}
	s := <-passes
	if n := <-marked; n != 1 || s.Counts[connector.ClassMissing] != 1 {
		t.Fatalf("pass: marked %d, counts %v", n, s.Counts)
	}
	r.Stop()
	r.Stop()
	mu.Lock()
	defer mu.Unlock()
	if len(sinks) != 1 || len(sinks[0].findings) != 1 || !sinks[0].closed || !sinks[0].findings[0].MarkedDue {
		t.Fatalf("sinks = %+v", sinks)
	}
	if len(passes) != 0 {
		t.Fatalf("%d more passes within the hour", len(passes))
	}
	if _, err := connector.NewReconciler(connector.ReconcilerConfig{Store: b.db, LMS: b.lms, Feeds: b.feeds}); err != nil {
		t.Fatal(err)
	} else if r2, _ := connector.NewReconciler(connector.ReconcilerConfig{Store: b.db, LMS: b.lms, Feeds: b.feeds}); r2.Start(b.ctx) == nil {
		t.Fatal("Start without Interval succeeded")
	}
}

type memSink struct {
	findings []connector.Finding
	closed   bool
}

func (m *memSink) Add(f connector.Finding) error          { m.findings = append(m.findings, f); return nil }
func (m *memSink) Close(connector.ReconcileSummary) error { m.closed = true; return nil }

// A reconciliation pass refreshes the account mirror with every page it reads
// (mirror.go), stamped with when the page was asked for: a copy seen later (a
// converger's write made while the pass ran) is not replaced by it, and a copy
// of an account the pass did not list is dropped.
func TestReconcileRefreshesMirror(t *testing.T) {
	t.Parallel()
	b := reconSetup(t)
	var ids []string
	for i := range 5 {
		a, err := b.lms.CreateAccount(b.ctx, connector.Account{UserName: fmt.Sprintf("p%d@example.com", i), Active: true,
			Profile: connector.Profile{Email: fmt.Sprintf("p%d@example.com", i)}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.ID)
	}
	// A copy of the first account seen after the pass starts: kept.
	later := connector.Account{ID: ids[0], UserName: "later@example.com"}
	if err := b.db.RememberAccounts(b.ctx, b.now.Add(time.Hour), []connector.Account{later}); err != nil {
		t.Fatal(err)
	}
	// A copy of an account deleted by hand since: the pass does not list it,
	// so its copy (and the personal data in it) goes.
	if err := b.db.RememberAccounts(b.ctx, b.now.Add(-time.Hour), []connector.Account{{ID: "u-gone", UserName: "gone@example.com"}}); err != nil {
		t.Fatal(err)
	}
	r, err := connector.NewReconciler(connector.ReconcilerConfig{Store: b.db, LMS: b.lms, Feeds: b.feeds, PageSize: 2,
		Now: func() time.Time { return b.now }, Mirror: b.db})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reconcile(b.ctx, func(connector.Finding) error { return nil }); err != nil {
		t.Fatal(err)
	}
	got, err := b.db.MirroredAccounts(b.ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(ids) {
		t.Fatalf("the mirror holds %d of the %d accounts the pass read", len(got), len(ids))
	}
	for _, id := range ids[1:] {
		if got[id].UserName == "" || got[id].Version == "" {
			t.Errorf("%s: mirrored as %+v, want the account as the page showed it", id, got[id])
		}
	}
	if got[ids[0]].UserName != "later@example.com" {
		t.Errorf("the pass replaced a copy seen after it: %+v", got[ids[0]])
	}
	if gone, err := b.db.MirroredAccounts(b.ctx, []string{"u-gone"}); err != nil || len(gone) != 0 {
		t.Errorf("the copy of an account the LMS no longer has is kept: %v, %v", gone, err)
	}
}
