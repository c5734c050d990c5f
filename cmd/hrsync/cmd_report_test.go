package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/store"
	"github.com/hrsync/hrsync/store/pgtest"
)

// reportNow is the instant the report tests take as now.
var reportNow = time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)

func rday(month time.Month, d int) time.Time { return time.Date(2026, month, d, 9, 0, 0, 0, time.UTC) }

// seedReportStore records a half year of one HR feed and one partner feed into
// a SQLite store, converging against the sandbox LMS as the daemon would (the
// clock steps through each fact's record time and ends at reportNow), and returns
// the store's URL. An empty url is a new SQLite file.
//
//	alice  hr       Sales    hired Jan 10, left May 20
//	bob    hr       =Ops     hired Feb 3
//	carol  hr       Sales    hired Mar 1, left Apr 10, rehired May 5
//	dan    hr       Sales    hired May 10; a leave for May 31, cancelled by a rehire for May 31
//	eve    hr       Support  hired Jun 1, the hire sent twice under two ids
//	frank  partner  Acme     hired Apr 1
func seedReportStore(t *testing.T, url string) string {
	t.Helper()
	if url == "" {
		url = "sqlite://" + filepath.Join(t.TempDir(), "report.db")
	}
	db, err := store.Open(context.Background(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
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
	return url
}

func reportCSV(t *testing.T, args ...string) [][]string {
	t.Helper()
	out, stderr, err := runCLI(t, nil, append(args, "--format", "csv", "--now", reportNow.Format(time.RFC3339))...)
	if err != nil {
		t.Fatalf("hrsync %v: %v\n%s", args, err, stderr)
	}
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatalf("hrsync %v: not CSV: %v\n%s", args, err, out)
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

func TestReportHeadcountAndChurn(t *testing.T) {
	t.Parallel()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		testReportHeadcountAndChurn(t, seedReportStore(t, ""))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		testReportHeadcountAndChurn(t, seedReportStore(t, pgtest.URL(t)))
	})
}

func testReportHeadcountAndChurn(t *testing.T, db string) {

	// Now: Alice, deactivated last month, is gone; the org unit starting with =
	// is escaped.
	wantRecords(t, "current headcount", reportCSV(t, "report", "headcount", "--db", db),
		"feed,org_unit,active,pending_active,pending_inactive,on_leave,pre_hire",
		"hr,'=Ops,1,0,0,0,0",
		"hr,Sales,2,0,0,0,0",
		"hr,Support,1,0,0,0,0",
		"partner-acme,Acme,1,0,0,0,0",
		"TOTAL,,5,0,0,0,0")

	// Last month: Alice counts, and so do Carol (rehired in May) and Dan (hired in
	// May); Eve, hired on June 1, does not.
	wantRecords(t, "May headcount", reportCSV(t, "report", "headcount", "--db", db, "--from", "2026-05-01", "--to", "2026-06-01"),
		"feed,org_unit,active_in_period",
		"hr,'=Ops,1",
		"hr,Sales,3",
		"partner-acme,Acme,1",
		"TOTAL,,5")

	// April: Carol left on the 10th but was active before; Alice and Bob too.
	wantRecords(t, "April headcount, hr only", reportCSV(t, "report", "headcount", "--db", db, "--feed", "hr", "--from", "2026-04-01", "--to", "2026-05-01"),
		"feed,org_unit,active_in_period",
		"hr,'=Ops,1",
		"hr,Sales,2",
		"TOTAL,,3")

	// Churn: Dan's cancelled leave is no leaver (and its rehire no rehire); Eve's
	// doubled hire counts once.
	wantRecords(t, "churn", reportCSV(t, "report", "churn", "--db", db, "--from", "2026-01", "--to", "2026-06"),
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
	wantRecords(t, "churn in pages of 1", reportCSV(t, "report", "churn", "--db", db, "--from", "2026-05", "--to", "2026-05", "--page", "1"),
		"month,feed,hires,leavers,rehires",
		"2026-05,hr,1,1,1",
		"2026-05,partner-acme,0,0,0",
		"TOTAL,,1,1,1")

	// JSON and the table carry the same figures.
	out, _, err := runCLI(t, nil, "report", "headcount", "--db", db, "--format", "json", "--now", reportNow.Format(time.RFC3339))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Report string           `json:"report"`
		Rows   []map[string]any `json:"rows"`
		Total  map[string]int   `json:"total"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	if doc.Report != "headcount" || len(doc.Rows) != 4 || doc.Total["active"] != 5 || doc.Rows[0]["org_unit"] != "=Ops" {
		t.Errorf("json headcount: %s", out)
	}
	out, _, err = runCLI(t, nil, "report", "headcount", "--db", db, "--now", reportNow.Format(time.RFC3339))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "ORG_UNIT") || !strings.Contains(out, "TOTAL") || !strings.Contains(out, "Support") {
		t.Errorf("table headcount:\n%s", out)
	}
}

func TestReportCLIErrors(t *testing.T) {
	t.Parallel()
	db := "sqlite://" + filepath.Join(t.TempDir(), "x.db")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"report"}, "want a subcommand"},
		{[]string{"report", "nope"}, `unknown subcommand "nope"`},
		{[]string{"report", "headcount", "--db", db, "--from", "2026-05-01"}, "both --from and --to"},
		{[]string{"report", "headcount", "--db", db, "--from", "2026-05-01", "--to", "2026-04-01"}, "not before"},
		{[]string{"report", "headcount", "--db", db, "--format", "xml"}, "--format"},
		{[]string{"report", "churn", "--db", db, "--from", "2026-13"}, "YYYY-MM"},
		{[]string{"report", "churn", "--db", db, "--tz", "Nowhere/Else"}, "--tz"},
	} {
		if _, _, err := runCLI(t, nil, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("hrsync %v: %v, want an error containing %q", c.args, err, c.want)
		}
	}
	// Each registered report has its own -help, and "report -help" lists them.
	help := helpOf(t, "report")
	for name := range reportCommands {
		if !strings.Contains(help, "  "+name) {
			t.Errorf("report -help does not list %s:\n%s", name, help)
		}
		out, _, _ := runCLI(t, nil, "report", name, "-help")
		if !strings.Contains(out, "Usage: hrsync report "+name) {
			t.Errorf("report %s -help:\n%s", name, out)
		}
	}
}

// TestReportHeadcountPending: where HR and the audit disagree (facts recorded, not
// converged yet), the current headcount counts neither way, and says so; people
// on a leave of absence and new hires in their pre-hire lead time are columns
// of their own.
func TestReportHeadcountPending(t *testing.T) {
	t.Parallel()
	url := seedReportStore(t, "")
	db, err := store.Open(context.Background(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	at := reportNow.Add(-time.Hour)
	_, err = db.RecordFacts(context.Background(), []connector.Fact{
		{Feed: "hr", WorkerID: "gus", Source: "/feeds/hr", ID: "late-1", Kind: connector.KindHired, Effective: at, Time: at,
			Profile: connector.Profile{Email: "gus@example.com", OrgUnit: "Support"}},
		{Feed: "hr", WorkerID: "bob", Source: "/feeds/hr", ID: "late-2", Kind: connector.KindLeft, Effective: at, Time: at},
		{Feed: "hr", WorkerID: "carol", Source: "/feeds/hr", ID: "late-3", Kind: connector.KindSuspended, Effective: at, Time: at},
		{Feed: "hr", WorkerID: "hana", Source: "/feeds/hr", ID: "late-4", Kind: connector.KindHired, Effective: reportNow.AddDate(0, 0, 3), Time: at,
			Profile: connector.Profile{Email: "hana@example.com", OrgUnit: "Support"}},
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(t.TempDir(), "hrsync.yaml")
	if err := os.WriteFile(config, []byte("feeds:\n  - name: hr\n    kind: hr\n    pre_hire_lead_days: 7\n  - name: partner-acme\n    kind: partner\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wantRecords(t, "current headcount, four facts not converged", reportCSV(t, "report", "headcount", "--db", url, "--config", config),
		"feed,org_unit,active,pending_active,pending_inactive,on_leave,pre_hire",
		"hr,'=Ops,0,0,1,0,0",
		"hr,Sales,1,0,1,1,0",
		"hr,Support,1,1,0,0,1",
		"partner-acme,Acme,1,0,0,0,0",
		"TOTAL,,3,1,2,1,1")

	// Churn in June: Gus is a hire and Bob a leaver; Carol's leave of absence is
	// no leaver, and Hana, who starts after now, is no hire yet.
	wantRecords(t, "June churn", reportCSV(t, "report", "churn", "--db", url, "--from", "2026-06", "--to", "2026-06", "--feed", "hr"),
		"month,feed,hires,leavers,rehires",
		"2026-06,hr,2,1,0",
		"TOTAL,,2,1,0")
}
