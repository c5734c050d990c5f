package report_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/report"
	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/store"
	"github.com/hrsync/hrsync/store/pgtest"
)

// reportNow is the instant the report tests take as now.
var reportNow = time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)

func rday(month time.Month, d int) time.Time { return time.Date(2026, month, d, 9, 0, 0, 0, time.UTC) }

// seedStore records a half year of one HR feed and one partner feed into the
// store at url (a new SQLite file if ""), converging against the sandbox LMS as
// the daemon would (the clock steps through each fact's record time and ends at
// reportNow), and returns the store, open.
//
//	alice  hr       Sales    hired Jan 10, left May 20
//	bob    hr       =Ops     hired Feb 3
//	carol  hr       Sales    hired Mar 1, left Apr 10, rehired May 5
//	dan    hr       Sales    hired May 10; a leave for May 31, cancelled by a rehire for May 31
//	eve    hr       Support  hired Jun 1, the hire sent twice under two ids
//	frank  partner  Acme     hired Apr 1
func seedStore(t *testing.T, url string) *store.DB {
	t.Helper()
	if url == "" {
		url = "sqlite://" + filepath.Join(t.TempDir(), "report.db")
	}
	db, err := store.Open(context.Background(), url, nil, store.Migrate(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	var mu sync.Mutex
	now := rday(1, 1)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	setClock := func(at time.Time) { mu.Lock(); defer mu.Unlock(); now = at }
	db.Now = clock
	feeds, err := connector.NewFeeds(connector.DefaultFeed("hr", connector.FeedHR), connector.DefaultFeed("partner-acme", connector.FeedPartner))
	if err != nil {
		t.Fatal(err)
	}
	conv, err := connector.NewConverger(connector.ConvergerConfig{Store: db, LMS: sandbox.New(sandbox.WithClock(clock)), Feeds: feeds, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	seq := 0
	fact := func(feed, worker string, kind connector.Kind, eff, recorded time.Time, org string) connector.Fact {
		seq++
		return connector.Fact{Feed: feed, WorkerID: worker, Source: feeds[feed].Source, ID: fmt.Sprintf("e%d", seq), Kind: kind,
			Effective: eff, Time: recorded, Profile: connector.Profile{Email: worker + "@example.com", OrgUnit: org}}
	}
	hr := func(worker string, kind connector.Kind, eff time.Time, org string) connector.Fact {
		return fact("hr", worker, kind, eff, eff.Add(-time.Hour), org)
	}
	facts := []connector.Fact{
		hr("alice", connector.KindHired, rday(1, 10), "Sales"),
		hr("bob", connector.KindHired, rday(2, 3), "=Ops"),
		hr("carol", connector.KindHired, rday(3, 1), "Sales"),
		fact("partner-acme", "frank", connector.KindHired, rday(4, 1), rday(4, 1).Add(-time.Hour), "Acme"),
		hr("carol", connector.KindLeft, rday(4, 10), ""),
		hr("carol", connector.KindRehired, rday(5, 5), ""),
		hr("dan", connector.KindHired, rday(5, 10), "Sales"),
		fact("hr", "dan", connector.KindLeft, rday(5, 31), rday(5, 12), ""),
		fact("hr", "dan", connector.KindRehired, rday(5, 31), rday(5, 14), ""),
		hr("alice", connector.KindLeft, rday(5, 20), ""),
		hr("eve", connector.KindHired, rday(6, 1), "Support"),
		hr("eve", connector.KindHired, rday(6, 1), "Support"),
	}
	slices.SortStableFunc(facts, func(a, b connector.Fact) int { return a.Time.Compare(b.Time) })
	ctx := context.Background()
	drain := func() {
		if _, err := conv.Drain(ctx, 100); err != nil {
			t.Fatal(err)
		}
	}
	// The clock visits every record time and every effective time, in order, as a
	// daemon waking at due times would.
	var steps []time.Time
	for _, f := range facts {
		steps = append(steps, f.Time, f.Effective)
	}
	slices.SortFunc(steps, time.Time.Compare)
	steps = slices.Compact(steps)
	for _, at := range steps {
		setClock(at)
		for _, f := range facts {
			if f.Time.Equal(at) {
				if _, err := db.RecordFacts(ctx, []connector.Fact{f}); err != nil {
					t.Fatal(err)
				}
			}
		}
		drain()
	}
	setClock(reportNow)
	drain()
	// Alice's account was deactivated by hrsync in May, when her leave came due.
	deact, err := db.ListAudit(ctx, store.AuditFilter{WorkerID: "alice", Action: connector.ActionDeactivate})
	if err != nil || len(deact) != 1 || deact[0].Outcome != connector.OutcomeOK || !deact[0].At.Equal(rday(5, 20)) {
		t.Fatalf("alice's deactivation in the audit: %+v, %v", deact, err)
	}
	return db
}

// records is t written as CSV and read back.
func records(t *testing.T, tab *report.Table, err error) [][]string {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := tab.Write(&b, "csv"); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatalf("not CSV: %v\n%s", err, b.String())
	}
	return recs
}

func wantRecords(t *testing.T, what string, got [][]string, want ...string) {
	t.Helper()
	lines := make([]string, len(got))
	for i, r := range got {
		lines[i] = strings.Join(r, ",")
	}
	if !slices.Equal(lines, want) {
		t.Errorf("%s:\n got %s\nwant %s", what, strings.Join(lines, "\n     "), strings.Join(want, "\n     "))
	}
}

func month(s string) time.Time {
	m, err := time.Parse("2006-01", s)
	if err != nil {
		panic(err)
	}
	return m
}

func TestHeadcountAndChurn(t *testing.T) {
	t.Parallel()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		testHeadcountAndChurn(t, seedStore(t, ""))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		testHeadcountAndChurn(t, seedStore(t, pgtest.URL(t)))
	})
}

func testHeadcountAndChurn(t *testing.T, db *store.DB) {
	ctx := context.Background()
	defaults := report.FeedPolicies(nil)

	// Now: Alice, deactivated last month, is gone; the org unit starting with =
	// is escaped.
	tab, err := report.Headcount(ctx, db, "", 500, reportNow, defaults)
	wantRecords(t, "current headcount", records(t, tab, err),
		"feed,org_unit,active,pending_active,pending_inactive,on_leave,pre_hire",
		"hr,'=Ops,1,0,0,0,0",
		"hr,Sales,2,0,0,0,0",
		"hr,Support,1,0,0,0,0",
		"partner-acme,Acme,1,0,0,0,0",
		"TOTAL,,5,0,0,0,0")

	// Last month: Alice counts, and so do Carol (rehired in May) and Dan (hired in
	// May); Eve, hired on June 1, does not.
	tab, err = report.HeadcountPeriod(ctx, db, "", 500, rday(5, 1).Truncate(24*time.Hour), rday(6, 1).Truncate(24*time.Hour), reportNow)
	wantRecords(t, "May headcount", records(t, tab, err),
		"feed,org_unit,active_in_period",
		"hr,'=Ops,1",
		"hr,Sales,3",
		"partner-acme,Acme,1",
		"TOTAL,,5")

	// April: Carol left on the 10th but was active before; Alice and Bob too.
	tab, err = report.HeadcountPeriod(ctx, db, "hr", 500, rday(4, 1).Truncate(24*time.Hour), rday(5, 1).Truncate(24*time.Hour), reportNow)
	wantRecords(t, "April headcount, hr only", records(t, tab, err),
		"feed,org_unit,active_in_period",
		"hr,'=Ops,1",
		"hr,Sales,2",
		"TOTAL,,3")

	// Churn: Dan's cancelled leave is no leaver (and its rehire no rehire); Eve's
	// doubled hire counts once.
	tab, err = report.Churn(ctx, db, "", 500, month("2026-01"), month("2026-06"), reportNow)
	wantRecords(t, "churn", records(t, tab, err),
		"month,feed,hires,leavers,rehires",
		"2026-01,hr,1,0,0",
		"2026-01,partner-acme,0,0,0",
		"2026-02,hr,1,0,0",
		"2026-02,partner-acme,0,0,0",
		"2026-03,hr,1,0,0",
		"2026-03,partner-acme,0,0,0",
		"2026-04,hr,0,1,0",
		"2026-04,partner-acme,1,0,0",
		"2026-05,hr,1,1,1",
		"2026-05,partner-acme,0,0,0",
		"2026-06,hr,1,0,0",
		"2026-06,partner-acme,0,0,0",
		"TOTAL,,6,2,1")

	// A page of one worker gives the same figures as one page of all.
	tab, err = report.Churn(ctx, db, "", 1, month("2026-05"), month("2026-05"), reportNow)
	wantRecords(t, "churn in pages of 1", records(t, tab, err),
		"month,feed,hires,leavers,rehires",
		"2026-05,hr,1,1,1",
		"2026-05,partner-acme,0,0,0",
		"TOTAL,,1,1,1")

	// JSON and the table carry the same figures.
	tab, err = report.Headcount(ctx, db, "", 500, reportNow, defaults)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := tab.Write(&out, "json"); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Report string           `json:"report"`
		Rows   []map[string]any `json:"rows"`
		Total  map[string]int   `json:"total"`
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatalf("json: %v\n%s", err, out.String())
	}
	if doc.Report != "headcount" || len(doc.Rows) != 4 || doc.Total["active"] != 5 || doc.Rows[0]["org_unit"] != "=Ops" {
		t.Errorf("json headcount: %s", out.String())
	}
	out.Reset()
	if err := tab.Write(&out, "table"); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.Contains(s, "ORG_UNIT") || !strings.Contains(s, "TOTAL") || !strings.Contains(s, "Support") {
		t.Errorf("table headcount:\n%s", s)
	}
}

// TestHeadcountPending: where HR and the audit disagree (facts recorded, not
// converged yet), the current headcount counts neither way, and says so; people
// on a leave of absence and new hires in their pre-hire lead time are columns
// of their own.
func TestHeadcountPending(t *testing.T) {
	t.Parallel()
	db := seedStore(t, "")
	ctx := context.Background()
	at := reportNow.Add(-time.Hour)
	_, err := db.RecordFacts(ctx, []connector.Fact{
		{Feed: "hr", WorkerID: "gus", Source: "/feeds/hr", ID: "late-1", Kind: connector.KindHired, Effective: at, Time: at,
			Profile: connector.Profile{Email: "gus@example.com", OrgUnit: "Support"}},
		{Feed: "hr", WorkerID: "bob", Source: "/feeds/hr", ID: "late-2", Kind: connector.KindLeft, Effective: at, Time: at},
		{Feed: "hr", WorkerID: "carol", Source: "/feeds/hr", ID: "late-3", Kind: connector.KindSuspended, Effective: at, Time: at},
		{Feed: "hr", WorkerID: "hana", Source: "/feeds/hr", ID: "late-4", Kind: connector.KindHired, Effective: reportNow.AddDate(0, 0, 3), Time: at,
			Profile: connector.Profile{Email: "hana@example.com", OrgUnit: "Support"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	hr := connector.DefaultFeed("hr", connector.FeedHR)
	hr.PreHireLeadDays = 7
	feeds, err := connector.NewFeeds(hr, connector.DefaultFeed("partner-acme", connector.FeedPartner))
	if err != nil {
		t.Fatal(err)
	}
	tab, err := report.Headcount(ctx, db, "", 500, reportNow, report.FeedPolicies(feeds))
	wantRecords(t, "current headcount, four facts not converged", records(t, tab, err),
		"feed,org_unit,active,pending_active,pending_inactive,on_leave,pre_hire",
		"hr,'=Ops,0,0,1,0,0",
		"hr,Sales,1,0,1,1,0",
		"hr,Support,1,1,0,0,1",
		"partner-acme,Acme,1,0,0,0,0",
		"TOTAL,,3,1,2,1,1")

	// Churn in June: Gus is a hire and Bob a leaver; Carol's leave of absence is
	// no leaver, and Hana, who starts after now, is no hire yet.
	tab, err = report.Churn(ctx, db, "hr", 500, month("2026-06"), month("2026-06"), reportNow)
	wantRecords(t, "June churn", records(t, tab, err),
		"month,feed,hires,leavers,rehires",
		"2026-06,hr,2,1,0",
		"TOTAL,,2,1,0")
}

// pages is a PageStore over a fixed list of workers; it counts its reads.
type pages struct {
	links []connector.WorkerLink
	facts map[connector.WorkerKey][]connector.Fact
	reads int
}

func (p *pages) ListWorkerLinks(_ context.Context, after connector.WorkerKey, limit int) ([]connector.WorkerLink, error) {
	p.reads++
	var out []connector.WorkerLink
	for _, l := range p.links {
		if (l.Worker.Feed > after.Feed || l.Worker.Feed == after.Feed && l.Worker.WorkerID > after.WorkerID) && len(out) < limit {
			out = append(out, l)
		}
	}
	return out, nil
}

func (p *pages) LoadHistories(_ context.Context, ws []connector.WorkerKey) ([]connector.History, error) {
	hs := make([]connector.History, len(ws))
	for i, w := range ws {
		hs[i] = connector.History{Worker: w, Facts: p.facts[w], Links: map[string]string{"old-" + w.WorkerID: "acct-" + w.WorkerID}}
	}
	return hs, nil
}

// TestEachPage: people come in key order, page at a time; a superseded worker
// is skipped, a worker without a link of its own takes its chain's account, and
// the walk stops at the end of the feed.
func TestEachPage(t *testing.T) {
	t.Parallel()
	k := func(feed, id string) connector.WorkerKey { return connector.WorkerKey{Feed: feed, WorkerID: id} }
	p := &pages{links: []connector.WorkerLink{
		{Worker: k("hr", "a"), AccountID: "A"},
		{Worker: k("hr", "b"), Superseded: true},
		{Worker: k("hr", "c")},
		{Worker: k("hr", "d"), AccountID: "D"},
		{Worker: k("partner-acme", "e"), AccountID: "E"},
	}}
	var got []string
	err := report.EachPage(context.Background(), p, "hr", 2, func(ps []report.Person) error {
		for _, x := range ps {
			got = append(got, x.Worker.String()+"="+x.AccountID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := "hr:a=A hr:c=acct-c hr:d=D"; strings.Join(got, " ") != want {
		t.Errorf("people = %s, want %s", strings.Join(got, " "), want)
	}
	if p.reads != 3 {
		t.Errorf("%d page reads, want 3 (the third sees the next feed and stops)", p.reads)
	}
}

// twice is an LMS that finds every account twice, as one with two accounts
// of the same externalId would.
type twice struct{ *sandbox.LMS }

func (l twice) FindAccounts(ctx context.Context, f connector.AccountFilter) ([]connector.Account, error) {
	as, err := l.LMS.FindAccounts(ctx, f)
	return append(as, as...), err
}

// noTraining is an LMS that does not report learning records.
type noTraining struct{ connector.LMS }

func TestRehire(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sb := sandbox.New()
	a, err := sb.CreateAccount(ctx, connector.Account{ExternalID: "hr:w7", UserName: "kai@example.com", Active: true,
		Profile: connector.Profile{Email: "kai@example.com", GivenName: "Kai"}})
	if err != nil {
		t.Fatal(err)
	}
	at := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }
	for _, c := range []struct {
		course string
		at     time.Time
	}{{"safety-101", at(2024, 5, 1)}, {"forklift", at(2025, 1, 10)}, {"onboarding", at(2023, 1, 1)}, {"gdpr", at(2026, 9, 1)}} {
		if err := sb.CompleteCourse(a.ID, c.course, c.at); err != nil {
			t.Fatal(err)
		}
	}
	// Left, then rehired: the account is reactivated with its history.
	if _, err := sb.SetActive(ctx, a.ID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := sb.SetActive(ctx, a.ID, true); err != nil {
		t.Fatal(err)
	}
	year := 8760 * time.Hour
	q := report.RehireQuery{Worker: connector.WorkerKey{Feed: "hr", WorkerID: "w7"}, Now: at(2026, 11, 1),
		Validity: map[string]time.Duration{"safety-101": year, "forklift": 2 * year, "gdpr": year}}

	r, err := report.Rehire(ctx, sb, q)
	if err != nil {
		t.Fatal(err)
	}
	var summary []string
	for _, c := range r.Courses {
		summary = append(summary, c.Course+"="+c.Status+"/"+c.Validity)
	}
	want := "forklift=valid/17520h0m0s gdpr=valid/8760h0m0s onboarding=no-expiry/ safety-101=expired/8760h0m0s"
	if strings.Join(summary, " ") != want || r.Expired != 1 || r.AccountID != a.ID || r.Worker != "hr:w7" {
		t.Fatalf("report = %s expired %d account %s worker %s; want %s, 1, %s, hr:w7", strings.Join(summary, " "), r.Expired, r.AccountID, r.Worker, want, a.ID)
	}

	var out bytes.Buffer
	if err := r.Write(&out, "json"); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Worker    string `json:"worker"`
		AccountID string `json:"account_id"`
		Courses   []struct {
			Course, Status, Validity string
		} `json:"courses"`
		Expired int `json:"expired"`
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil || doc.Worker != "hr:w7" || doc.AccountID != a.ID || len(doc.Courses) != 4 || doc.Expired != 1 {
		t.Fatalf("json: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := r.Write(&out, "table"); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.Contains(s, "safety-101") || !strings.Contains(s, "expired") || !strings.Contains(s, "4 courses, 1 expired") {
		t.Fatalf("table:\n%s", s)
	}

	// Named by account, the worker is not looked up.
	if r, err := report.Rehire(ctx, sb, report.RehireQuery{AccountID: a.ID, Now: q.Now}); err != nil || len(r.Courses) != 4 || r.Worker != "" {
		t.Fatalf("by account: %+v, %v", r, err)
	}
	if _, err := report.Rehire(ctx, sb, report.RehireQuery{Worker: connector.WorkerKey{Feed: "hr", WorkerID: "nobody"}, Now: q.Now}); err == nil ||
		!strings.Contains(err.Error(), "no LMS account") {
		t.Fatalf("unknown worker: %v", err)
	}
	if _, err := report.Rehire(ctx, twice{sb}, q); err == nil || !strings.Contains(err.Error(), "2 LMS accounts") {
		t.Fatalf("two accounts with one externalId: %v", err)
	}
	if _, err := report.Rehire(ctx, noTraining{sb}, q); err != connector.ErrTrainingUnknown {
		t.Fatalf("an LMS without learning records: %v", err)
	}
}
