package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
	"github.com/hrsync/hrsync/store/pgtest"
)

// excelSamples are the Excel-made samples in testdata/rosters, each with a
// short name for its feeds.
var excelSamples = []struct{ short, file string }{
	{"xlsx", "partner-acme-excel.xlsx"},
	{"w1252", "partner-acme-windows1252.csv"},
	{"utf16", "partner-acme-utf16.txt"},
	{"utf8", "partner-acme-utf8bom.csv"},
}

// excelPeople are the people of every sample, as the facts must record them.
var excelPeople = []struct{ id, given, family, effective, org string }{
	{"A-2001", "Jürgen", "Größ", "2024-02-01", "Lager"},
	{"A-2002", "Zoë", "Weiß", "2023-03-15", "Büro"},
	{"A-2003", "Özlem", "Kaya", "2022-11-03", "Einkauf €"},
	{"A-2004", "Björn", "Ångström", "2025-04-05", "Qualität"},
	{"A-2005", "François", "Müller", "2026-12-31", "Vertrieb"},
}

// TestRosterExcelFilesRecorded runs the daemon and uploads each Excel-made
// sample (XLSX, Windows-1252 with ; and dd.mm.yyyy, UTF-16 "Unicode Text",
// UTF-8 with BOM) twice: through the admin API to one feed and through
// "hrsync roster upload" to another. Every feed ends up with the five people's
// hires recorded as facts, names and dates as the file states them.
func TestRosterExcelFilesRecorded(t *testing.T) {
	t.Parallel()
	natsURL, dbURL, lms := startNATS(t), pgtest.URL(t), startLMS(t, nil)
	dir := t.TempDir()
	var cfg strings.Builder
	cfg.WriteString("feeds:\n  - name: hr\n")
	for _, s := range excelSamples {
		for _, via := range []string{"api", "cli"} {
			fmt.Fprintf(&cfg, `  - name: partner-%s-%s
    kind: partner
    roster:
      mode: snapshot
      date_formats: ["02.01.2006"]
      columns: {Personalnummer: worker_id, E-Mail: email, Vorname: given_name, Nachname: family_name, Eintritt: effective, Abteilung: org_unit, Funktion: job_title}
`, s.short, via)
		}
	}
	cfgPath := filepath.Join(dir, "hrsync.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	admin := freeLoopbackAddr(t)
	runTestDaemon(t, "--config", cfgPath, "--lms-url", lms.url, "--lms-token", lms.token,
		"--nats-url", natsURL, "--db", dbURL, "--admin-addr", admin, "--admin-token", "root-token", "--poll-interval", "50ms")
	post := func(feed string, body []byte) (int, map[string]any) {
		t.Helper()
		var resp *http.Response
		waitFor(t, 10*time.Second, "the admin port", func() (bool, string) {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+admin+"/v1/feeds/"+feed+"/rosters", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer root-token")
			var err error
			if resp, err = http.DefaultClient.Do(req); err != nil {
				return false, err.Error()
			}
			return true, ""
		})
		defer resp.Body.Close()
		var out map[string]any
		data, _ := io.ReadAll(resp.Body)
		_ = json.Unmarshal(data, &out)
		return resp.StatusCode, out
	}
	for _, s := range excelSamples {
		path := filepath.Join("..", "..", "testdata", "rosters", s.file)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if code, out := post("partner-"+s.short+"-api", data); code != http.StatusOK || out["result"].(map[string]any)["outcome"] != "published" {
			t.Fatalf("%s through the admin API: %d %v", s.file, code, out)
		}
		stdout, stderr, err := runCLI(t, nil, "roster", "upload", "--feed", "partner-"+s.short+"-cli", "--db", dbURL, "--config", cfgPath,
			"--nats-url", natsURL, "--by", "test", path)
		if err != nil || !strings.Contains(stdout, "published 5 events") {
			t.Fatalf("%s through the CLI: %v\n%s\n%s", s.file, err, stdout, stderr)
		}
	}
	db := openStore(t, dbURL)
	for _, s := range excelSamples {
		for _, via := range []string{"api", "cli"} {
			feed := "partner-" + s.short + "-" + via
			for _, p := range excelPeople {
				var facts []connector.Fact
				waitFor(t, 30*time.Second, feed+" "+p.id+" recorded", func() (bool, string) {
					var err error
					facts, err = db.Facts(t.Context(), connector.WorkerKey{Feed: feed, WorkerID: p.id})
					return err == nil && len(facts) == 1, fmt.Sprint(len(facts), err)
				})
				f := facts[0]
				if f.Kind != connector.KindHired || f.Profile.GivenName != p.given || f.Profile.FamilyName != p.family ||
					f.Profile.OrgUnit != p.org || f.Effective.UTC().Format(time.DateOnly) != p.effective {
					t.Errorf("%s %s: %s %q %q %q effective %s; want hired %q %q %q %s", feed, p.id, f.Kind, f.Profile.GivenName, f.Profile.FamilyName,
						f.Profile.OrgUnit, f.Effective.UTC().Format(time.DateOnly), p.given, p.family, p.org, p.effective)
				}
			}
		}
	}
}

// TestRosterReportCommand: "hrsync roster report" prints an upload's report as
// a table, CSV, JSON or XLSX, only for the upload's own feed.
func TestRosterReportCommand(t *testing.T) {
	t.Parallel()
	url := "sqlite://" + filepath.Join(t.TempDir(), "hrsync.db")
	db := openStore(t, url)
	id, err := db.RecordUpload(t.Context(), store.Upload{Feed: "partner-acme", Mode: "snapshot", Filename: "acme.xlsx", Outcome: "published",
		Rows: 20, Invalid: 1, Kept: 1, Report: []byte(`{"problems":[{"line":8,"field":"email","column":"E-Mail","reason":"'p7@acme' is not an address",` +
			`"fix":"Write one full e-mail address, such as name@example.com","worker_id":"A-1007","effect":"not applied; this person is kept as they are: not deactivated"}],"problems_total":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := runCLI(t, nil, "roster", "report", fmt.Sprint(id), "--feed", "partner-acme", "--db", url)
	if err != nil || !strings.Contains(out, "19 of 20 rows were applied") || !strings.Contains(out, "8     E-Mail  A-1007") {
		t.Fatalf("table: %v\n%s", err, out)
	}
	out, _, err = runCLI(t, nil, "roster", "report", fmt.Sprint(id), "--feed", "partner-acme", "--db", url, "--format", "csv")
	if err != nil || !strings.HasPrefix(out, "\uFEFFLine,Column,Worker,What is wrong,How to fix it,What hrsync did\n8,E-Mail,A-1007,email 'p7@acme' is not an address,") {
		t.Fatalf("csv: %v\n%s", err, out)
	}
	xlsx := filepath.Join(t.TempDir(), "report.xlsx")
	if _, stderr, err := runCLI(t, nil, "roster", "report", fmt.Sprint(id), "--feed", "partner-acme", "--db", url, "--format", "xlsx", "--out", xlsx); err != nil ||
		!strings.Contains(stderr, "wrote the report of upload") {
		t.Fatalf("xlsx: %v %s", err, stderr)
	}
	if b, err := os.ReadFile(xlsx); err != nil || !bytes.HasPrefix(b, []byte("PK\x03\x04")) {
		t.Fatalf("the xlsx report is not a workbook: %v", err)
	}
	if _, _, err := runCLI(t, nil, "roster", "report", fmt.Sprint(id), "--feed", "partner-globex", "--db", url); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("another feed's report: %v", err)
	}
}
