package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
)

// reportNow is the instant the report tests take as now.
var reportNow = time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)

// seedReportStore records, without converging, a few facts into a new SQLite
// store and returns its URL: the reports' figures are tested in
// internal/report; these tests check what the CLI passes to it and prints.
//
//	bob   hr  =Ops     hired Feb 3
//	hana  hr  Support  hired three days after reportNow
func seedReportStore(t *testing.T) string {
	t.Helper()
	url := "sqlite://" + filepath.Join(t.TempDir(), "report.db")
	db := openStore(t, url)
	feb3 := time.Date(2026, 2, 3, 9, 0, 0, 0, time.UTC)
	_, err := db.RecordFacts(context.Background(), []connector.Fact{
		{Feed: "hr", WorkerID: "bob", Source: "/feeds/hr", ID: "e1", Kind: connector.KindHired, Effective: feb3, Time: feb3,
			Profile: connector.Profile{Email: "bob@example.com", OrgUnit: "=Ops"}},
		{Feed: "hr", WorkerID: "hana", Source: "/feeds/hr", ID: "e2", Kind: connector.KindHired, Effective: reportNow.AddDate(0, 0, 3), Time: feb3,
			Profile: connector.Profile{Email: "hana@example.com", OrgUnit: "Support"}},
	})
	if err != nil {
		t.Fatal(err)
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

// TestReportCLI: report headcount and churn read the store named by --db, take
// the feeds' pre-hire lead time from --config, and print the package's table as
// CSV, JSON or text, to stdout or --out.
func TestReportCLI(t *testing.T) {
	t.Parallel()
	db := seedReportStore(t)

	// Nothing converged: Bob is pending, Hana is no pre-hire without a lead time.
	wantRecords(t, "current headcount", reportCSV(t, "report", "headcount", "--db", db),
		"feed,org_unit,active,pending_active,pending_inactive,on_leave,pre_hire",
		"hr,'=Ops,0,1,0,0,0",
		"TOTAL,,0,1,0,0,0")
	config := filepath.Join(t.TempDir(), "hrsync.yaml")
	if err := os.WriteFile(config, []byte("feeds:\n  - name: hr\n    kind: hr\n    pre_hire_lead_days: 7\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wantRecords(t, "current headcount, hr's lead time from --config", reportCSV(t, "report", "headcount", "--db", db, "--config", config),
		"feed,org_unit,active,pending_active,pending_inactive,on_leave,pre_hire",
		"hr,'=Ops,0,1,0,0,0",
		"hr,Support,0,0,0,0,1",
		"TOTAL,,0,1,0,0,1")
	wantRecords(t, "May headcount", reportCSV(t, "report", "headcount", "--db", db, "--from", "2026-05-01", "--to", "2026-06-01"),
		"feed,org_unit,active_in_period",
		"hr,'=Ops,1",
		"TOTAL,,1")
	wantRecords(t, "churn", reportCSV(t, "report", "churn", "--db", db, "--from", "2026-02", "--to", "2026-03", "--feed", "hr", "--page-size", "1"),
		"month,feed,hires,leavers,rehires",
		"2026-02,hr,1,0,0",
		"2026-03,hr,0,0,0",
		"TOTAL,,1,0,0")

	out, _, err := runCLI(t, nil, "report", "churn", "--db", db, "--format", "json", "--now", reportNow.Format(time.RFC3339))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Report string            `json:"report"`
		Params map[string]string `json:"params"`
		Rows   []map[string]any  `json:"rows"`
		Total  map[string]int    `json:"total"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	// The default range is the twelve months up to the month of --now.
	if doc.Report != "churn" || doc.Params["from"] != "2025-07" || doc.Params["to"] != "2026-06" || len(doc.Rows) != 12 || doc.Total["hires"] != 1 {
		t.Errorf("json churn: %s", out)
	}
	file := filepath.Join(t.TempDir(), "headcount.txt")
	_, stderr, err := runCLI(t, nil, "report", "headcount", "--db", db, "--now", reportNow.Format(time.RFC3339), "--out", file)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if s := string(b); !strings.Contains(s, "ORG_UNIT") || !strings.Contains(s, "TOTAL") || !strings.Contains(s, "=Ops") ||
		!strings.Contains(stderr, "wrote headcount report (1 rows)") {
		t.Errorf("table headcount in --out:\n%s\nstderr: %s", s, stderr)
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
	// Each report has its own --help, and "report --help" lists them.
	help := helpOf(t, "report")
	for _, name := range []string{"headcount", "churn", "dormant", "rehire"} {
		if !strings.Contains(help, "  "+name) {
			t.Errorf("report --help does not list %s:\n%s", name, help)
		}
		if out := helpOf(t, "report "+name); !strings.Contains(out, "Usage:\n  hrsync report "+name) || !strings.Contains(out, "--format") {
			t.Errorf("report %s --help:\n%s", name, out)
		}
	}
}
