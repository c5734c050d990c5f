package roster

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/events"
	"github.com/hrsync/hrsync/store"
)

// seed records the hire of n people of feed, w-1 to w-n, p<i>@acme.example.
func seed(t *testing.T, db *store.DB, feed connector.Feed, n int) {
	t.Helper()
	now := time.Now().UTC()
	var facts []connector.Fact
	for i := 1; i <= n; i++ {
		facts = append(facts, connector.Fact{Feed: feed.Name, WorkerID: fmt.Sprintf("w-%d", i), Source: feed.Source,
			ID: fmt.Sprintf("h-%d", i), Kind: connector.KindHired, Effective: now.AddDate(0, -1, 0), Time: now.AddDate(0, -1, 0),
			Profile: connector.Profile{Email: fmt.Sprintf("p%d@acme.example", i), GivenName: fmt.Sprintf("P%d", i), FamilyName: "Acme"}})
	}
	if _, err := db.RecordFacts(t.Context(), facts); err != nil {
		t.Fatal(err)
	}
}

// setupUploader is an uploader of partner-acme over a SQLite store, with n
// people hired, and no NATS connection: an upload that would publish fails.
func setupUploader(t *testing.T, n int) (*Uploader, *store.DB) {
	t.Helper()
	db, err := store.Open(t.Context(), "sqlite://"+filepath.Join(t.TempDir(), "h.db"), nil, store.Migrate(true))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	acme := connector.DefaultFeed("partner-acme", connector.FeedPartner)
	feeds, _ := connector.NewFeeds(acme)
	seed(t, db, acme, n)
	return &Uploader{Store: db, Feeds: feeds, Rosters: map[string]Config{}, Now: time.Now,
		Log: slog.New(slog.DiscardHandler), ThresholdsFunc: func(string) connector.Thresholds { return connector.DefaultThresholds() }}, db
}

// dryRun uploads body to partner-acme as a dry run and returns the result and
// its events.
func dryRun(t *testing.T, up *Uploader, mode, body string) (Result, []events.Event) {
	t.Helper()
	res, err := up.Upload(t.Context(), Request{Feed: "partner-acme", Mode: mode, Body: strings.NewReader(body), Via: "test", DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(res.Close)
	var evs []events.Event
	if err := res.EachEvent(func(e events.Event) error { evs = append(evs, e); return nil }); err != nil {
		t.Fatal(err)
	}
	return res, evs
}

// TestSnapshotWithMalformedRowDeactivatesNoOne: a snapshot of all 20 people in
// which w-7's email is mistyped and w-3 changed their name: w-3 is updated,
// w-7 is kept as they are, nobody leaves, and the report names the line and
// the column.
func TestSnapshotWithMalformedRowDeactivatesNoOne(t *testing.T) {
	t.Parallel()
	up, _ := setupUploader(t, 20)
	body := strings.Replace(strings.Replace(rosterCSV(20), "w-7,p7@acme.example", "w-7,p7@acme", 1), "w-3,p3@acme.example,P3", "w-3,p3@acme.example,Petra", 1)
	res, evs := dryRun(t, up, "snapshot", body)
	s := res.Summary
	if len(evs) != 1 || evs[0].Kind != connector.KindUpdated || evs[0].Data.WorkerID != "w-3" {
		t.Fatalf("events %+v: want the one update of w-3", evs)
	}
	if s.Leavers != 0 || s.Kept != 1 || s.Invalid != 1 || s.Rows != 20 || len(s.Problems) != 1 {
		t.Fatalf("summary %+v", s)
	}
	p := s.Problems[0]
	if p.Line != 8 || p.Column != "email" || p.WorkerID != "w-7" || !strings.Contains(p.Effect, "not deactivated") || p.Fix == "" {
		t.Errorf("problem %+v", p)
	}
	var out bytes.Buffer
	if err := WriteResult(&out, "acme.csv", &res, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"19 of 20 rows were applied; 1 rows have a problem", "1 people whose row has a problem were kept as they are (not deactivated)",
		"8     email   w-7", "email 'p7@acme' is not an address"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the CLI's text lacks %q:\n%s", want, out.String())
		}
	}
}

// TestDeltaWithMalformedRowAppliesTheOthers: in a delta, the valid rows are
// applied and the malformed one is reported with its line and column.
func TestDeltaWithMalformedRowAppliesTheOthers(t *testing.T) {
	t.Parallel()
	up, _ := setupUploader(t, 5)
	body := "worker_id,action,email,effective\nw-1,remove,,\nw-8,add,p8@acme.example,\nw-9,add,p9@acme.example,31.12.2026\nw-2,remove,,\n"
	res, evs := dryRun(t, up, "delta", body)
	var got []string
	for _, e := range evs {
		got = append(got, string(e.Kind)+" "+e.Data.WorkerID)
	}
	if strings.Join(got, ", ") != "left w-1, hired w-8, left w-2" {
		t.Fatalf("events %v", got)
	}
	s := res.Summary
	if s.Invalid != 1 || len(s.Problems) != 1 || s.Problems[0].Line != 4 || s.Problems[0].Column != "effective" || s.Problems[0].Effect != "not applied" {
		t.Fatalf("summary %+v", s)
	}
	// With the feed's date format, the same row is good.
	up.Rosters["partner-acme"] = Config{DateFormats: []string{"02.01.2006"}}
	res, evs = dryRun(t, up, "delta", body)
	if len(evs) != 4 || res.Summary.Invalid != 0 || evs[2].Data.Effective != "2026-12-31" {
		t.Fatalf("with date_formats: %+v, %d events", res.Summary, len(evs))
	}
}

// TestTruncatedRosterWithCutRowIsHeld: a file cut off in the middle of its
// sixth row, for a feed of 5,000: the cut row is kept (unknown, not absent),
// the rest are leavers, and the safeguard holds it whole.
func TestTruncatedRosterWithCutRowIsHeld(t *testing.T) {
	t.Parallel()
	up, db := setupUploader(t, 5000)
	body := rosterCSV(6)
	body = body[:len(body)-12] // "w-6,p6@acme.exa"
	res, err := up.Upload(t.Context(), Request{Feed: "partner-acme", Mode: "snapshot", Body: strings.NewReader(body), Via: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != "held" || res.Summary.Leavers != 4994 || res.Summary.Kept != 1 || res.Summary.Invalid != 1 {
		t.Fatalf("result %+v: want held, 4994 leavers, w-6 kept", res)
	}
	if c, _ := db.Counts(t.Context()); c.Facts != 5000 {
		t.Fatalf("%d facts: the held upload recorded something", c.Facts)
	}
	// Cut inside a quoted field: the last row names no one; no one leaves.
	res, _ = dryRun(t, up, "snapshot", rosterCSV(5)+"\"w-6,p6@acme")
	if res.Summary.Leavers != 0 || res.Summary.Withheld != 4995 {
		t.Fatalf("summary %+v: want every leaver withheld", res.Summary)
	}
}

// TestUploadReportDownload: an upload's report is kept and served by the
// admin API as JSON, CSV and XLSX, to the feed's token and the admin's only.
func TestUploadReportDownload(t *testing.T) {
	t.Parallel()
	b := setupAdmin(t, Limits{})
	acme := b.api.Uploader.Feeds["partner-acme"]
	seed(t, b.db, acme, 3)
	// Everyone as they are, but w-3's row is cut short and w-2's email mistyped:
	// nothing to publish, two rows reported, nobody deactivated.
	body := "worker_id,email,given_name,family_name\nw-1,p1@acme.example,P1,Acme\nw-2,=cmd|' /C calc'!A0,P2,Acme\nw-3,p3@acme.example\n"
	resp, out := b.post(t, "partner-acme", "Bearer acme-token", "", strings.NewReader(body))
	res, _ := out["result"].(map[string]any)
	if resp.StatusCode != http.StatusOK || res["outcome"] != "unchanged" {
		t.Fatalf("%s %v", resp.Status, brief(out))
	}
	path, _ := out["report"].(string)
	if !strings.HasPrefix(path, "/v1/feeds/partner-acme/rosters/") {
		t.Fatalf("report link %q", path)
	}
	base := strings.TrimSuffix(b.url, "/v1/feeds/")
	get := func(token, query string) (*http.Response, []byte) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+path+query, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp, data
	}
	if resp, _ := get("globex-token", ""); resp.StatusCode != http.StatusForbidden {
		t.Errorf("globex's token read acme's report: %s", resp.Status)
	}
	resp, data := get("acme-token", "")
	var rep Report
	if err := json.Unmarshal(data, &rep); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s", resp.Status, data)
	}
	if rep.Rows != 3 || rep.Invalid != 2 || rep.Kept != 2 || rep.Total != 2 || rep.Problems[0].Line != 3 || rep.Problems[1].Line != 4 {
		t.Fatalf("report %+v", rep)
	}
	resp, data = get("root-token", "?format=csv")
	if resp.Header.Get("Content-Type") != "text/csv; charset=utf-8" {
		t.Errorf("content type %q", resp.Header.Get("Content-Type"))
	}
	recs, err := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(data, []byte("\uFEFF")))).ReadAll()
	if err != nil || len(recs) != 3 || recs[0][0] != "Line" || recs[1][0] != "3" || recs[1][1] != "email" || recs[2][0] != "4" {
		t.Fatalf("csv %q, %v", recs, err)
	}
	if strings.Contains(string(data), ",=cmd") || !strings.Contains(string(data), "'=cmd") {
		t.Errorf("a partner's cell reached the CSV as a formula:\n%s", data)
	}
	resp, data = get("acme-token", "?format=xlsx")
	f, err := excelize.OpenReader(bytes.NewReader(data))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("xlsx: %s %v", resp.Status, err)
	}
	defer f.Close()
	rows, err := f.GetRows("Problems")
	if err != nil || len(rows) != 3 || rows[2][0] != "4" || !strings.Contains(rows[2][5], "not deactivated") {
		t.Fatalf("xlsx rows %q, %v", rows, err)
	}
	if resp, _ := get("acme-token", "?format=pdf"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("format pdf: %s", resp.Status)
	}
}

// TestAdminAPIExcelSamples uploads each Excel-made sample through the admin
// API as the acme feed configures it, and finds the five people it lists.
func TestAdminAPIExcelSamples(t *testing.T) {
	t.Parallel()
	b := setupAdmin(t, Limits{})
	b.api.Uploader.Rosters["partner-acme"] = Config{Mode: "snapshot", UploadTokenSHA256: sha("acme-token"),
		Columns: map[string]string{"Personalnummer": "worker_id", "E-Mail": "email", "Vorname": "given_name", "Nachname": "family_name",
			"Eintritt": "effective", "Abteilung": "org_unit", "Funktion": "job_title"},
		DateFormats: []string{"02.01.2006"}}
	for _, name := range []string{"partner-acme-excel.xlsx", "partner-acme-windows1252.csv", "partner-acme-utf16.txt", "partner-acme-utf8bom.csv"} {
		data, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "testdata", "rosters", name))
		if err != nil {
			t.Fatal(err)
		}
		resp, out := b.post(t, "partner-acme", "Bearer acme-token", "?dry_run=true", bytes.NewReader(data))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s %v", name, resp.Status, brief(out))
		}
		evs, _ := out["events"].([]any)
		var names []string
		for _, e := range evs {
			d := e.(map[string]any)["Data"].(map[string]any)
			names = append(names, fmt.Sprint(d["given_name"], " ", d["family_name"], " ", d["effective"]))
		}
		want := "Jürgen Größ 2024-02-01, Zoë Weiß 2023-03-15, Özlem Kaya 2022-11-03, Björn Ångström 2025-04-05, François Müller 2026-12-31"
		if got := strings.Join(names, ", "); got != want {
			t.Errorf("%s: %s\nwant %s", name, got, want)
		}
	}
}

// TestConfigCheck: each reading setting of a feed is checked when the
// configuration is read, naming the setting.
func TestConfigCheck(t *testing.T) {
	t.Parallel()
	good := Config{Mode: "snapshot", Format: "xlsx", Sheet: "Mitarbeiter", Encoding: "windows-1252", Delimiter: "tab", DateFormats: []string{"02.01.2006", "01/02/2006"}}
	if err := good.Check(); err != nil {
		t.Fatalf("good settings refused: %v", err)
	}
	for want, c := range map[string]Config{
		"roster.format":       {Format: "ods"},
		"roster.encoding":     {Encoding: "ebcdic"},
		"roster.delimiter":    {Delimiter: "||"},
		"roster.date_formats": {DateFormats: []string{"02.01.2006 15:04"}},
		"roster.mode":         {Mode: "full"},
	} {
		if err := c.Check(); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%+v: %v, want an error naming %s", c, err, want)
		}
	}
}
