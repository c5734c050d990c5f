package events

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hrsync/hrsync/connector"
)

// rosterDir holds the sample roster files (testdata/ at the repository root).
var rosterDir = filepath.Join("..", "testdata", "rosters")

// rosterBundle is what every roster test needs: the feed, its feeds for
// CheckEvent, the acme mapping and an upload time.
type rosterBundle struct {
	feed    connector.Feed
	feeds   connector.Feeds
	mapping RosterMapping
	upload  UploadInfo
}

func setupRoster(t testing.TB) *rosterBundle {
	t.Helper()
	feeds := testFeeds(t)
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	feed := feeds["partner-acme"]
	feed.Location = berlin
	feeds["partner-acme"] = feed
	return &rosterBundle{
		feed:    feed,
		feeds:   feeds,
		mapping: loadAcmeMapping(t),
		// 23:30 UTC is already the next day in Berlin: the default effective is
		// the upload date in the feed's zone.
		upload: UploadInfo{SHA256: strings.Repeat("ab", 32), Time: time.Date(2026, 11, 19, 23, 30, 0, 0, time.UTC)},
	}
}

// loadAcmeMapping reads the sample mapping as the configuration loader does:
// gopkg.in/yaml.v3, unknown keys refused.
func loadAcmeMapping(t testing.TB) RosterMapping {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(rosterDir, "partner-acme.mapping.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var m RosterMapping
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	return m
}

func readSample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(rosterDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustParse(t testing.TB, data []byte, m RosterMapping, opts RosterOptions) *Roster {
	t.Helper()
	r, err := ParseRoster(bytes.NewReader(data), m, opts)
	if err != nil {
		t.Fatalf("ParseRoster: %v", err)
	}
	return r
}

// mustEvents runs Events and checks every event against the contract with the
// daemon's own decoder.
func (b *rosterBundle) mustEvents(t testing.TB, r *Roster, current []Member) ([]Event, RosterSummary) {
	t.Helper()
	evs, sum, err := r.Events(b.feed, current, b.upload)
	if err != nil {
		t.Fatalf("Events: %v", err)
	}
	for _, e := range evs {
		if err := CheckEvent(e, b.feeds); err != nil {
			t.Fatalf("event %s %s breaks the contract: %v", e.Kind, e.Data.WorkerID, err)
		}
	}
	return evs, sum
}

// apply plays evs onto current as the store and Want would: the members after
// the events are recorded.
func apply(current []Member, evs []Event) []Member {
	out := slices.Clone(current)
	idx := map[string]int{}
	for i, m := range out {
		idx[m.WorkerID] = i
	}
	for _, e := range evs {
		i, ok := idx[e.Data.WorkerID]
		if !ok {
			out = append(out, Member{WorkerID: e.Data.WorkerID})
			i = len(out) - 1
			idx[e.Data.WorkerID] = i
		}
		m := &out[i]
		m.Profile = m.Profile.Merge(e.Data.Profile())
		switch e.Kind {
		case connector.KindHired, connector.KindRehired:
			m.Active = true
		case connector.KindLeft:
			m.Active = false
		}
	}
	return out
}

// ids returns "kind worker" of every event, in order.
func kinds(evs []Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, string(e.Kind)+" "+e.Data.WorkerID)
	}
	return out
}

func eventIDs(evs []Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.ID)
	}
	return out
}

// rosterErrs returns the RosterErrors of err, failing if it is something else.
func rosterErrs(t testing.TB, err error) *RosterErrors {
	t.Helper()
	var re *RosterErrors
	if !errors.As(err, &re) {
		t.Fatalf("error %v (%T) is not a *RosterErrors", err, err)
	}
	return re
}

func TestRosterMappingValidate(t *testing.T) {
	t.Parallel()
	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		for _, m := range []RosterMapping{{}, DefaultRosterMapping(), {Columns: map[string]string{"Mail": "email", "E-Mail": "email", "email": RosterIgnore}}} {
			if err := m.Validate(); err != nil {
				t.Errorf("%v: %v", m, err)
			}
		}
	})
	t.Run("ErrUnknownTarget", func(t *testing.T) {
		t.Parallel()
		err := RosterMapping{Columns: map[string]string{"Vorname": "first_name", "Nachname": "family_name", "Ort": "city"}}.Validate()
		if err == nil || !strings.Contains(err.Error(), `column "Vorname" maps to unknown field "first_name"`) || !strings.Contains(err.Error(), `column "Ort" maps to unknown field "city"`) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("ErrSameHeader", func(t *testing.T) {
		t.Parallel()
		err := RosterMapping{Columns: map[string]string{"E-Mail": "email", " e-mail": "email"}}.Validate()
		if err == nil || !strings.Contains(err.Error(), "are the same header") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("ErrEmptyHeader", func(t *testing.T) {
		t.Parallel()
		err := RosterMapping{Columns: map[string]string{" ": "email"}}.Validate()
		if err == nil || !strings.Contains(err.Error(), "header name is empty") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("ErrParseRoster", func(t *testing.T) {
		t.Parallel()
		_, err := ParseRoster(strings.NewReader("worker_id,email\nw1,a@b.de\n"), RosterMapping{Columns: map[string]string{"x": "y"}}, RosterOptions{Mode: RosterSnapshot})
		if err == nil || !strings.Contains(err.Error(), "roster mapping") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestParseRosterSnapshotSample(t *testing.T) {
	t.Parallel()
	b := setupRoster(t)
	data := readSample(t, "partner-acme-snapshot.csv")
	var progress []int
	r := mustParse(t, data, b.mapping, RosterOptions{Mode: RosterSnapshot, ProgressEvery: 10, Progress: func(n int) { progress = append(progress, n) }})

	if !r.BOM || r.Delimiter != ';' {
		t.Errorf("BOM %v, delimiter %q; want a BOM and ';'", r.BOM, r.Delimiter)
	}
	if len(r.Rows) != 30 {
		t.Fatalf("%d rows, want 30", len(r.Rows))
	}
	sum := sha256.Sum256(data)
	if r.SHA256 != hex.EncodeToString(sum[:]) || r.Bytes != int64(len(data)) {
		t.Errorf("SHA256 %s, %d bytes; want the file's", r.SHA256, r.Bytes)
	}
	if !slices.Equal(r.Ignored, []string{"Bemerkung"}) {
		t.Errorf("Ignored = %v", r.Ignored)
	}
	if want := []RosterColumn{{"Personalnummer", "worker_id"}, {"E-Mail", "email"}, {"Vorname", "given_name"}, {"Nachname", "family_name"}, {"Eintritt", "effective"}, {"Abteilung", "org_unit"}, {"Funktion", "job_title"}, {"Sprache", "locale"}}; !slices.Equal(r.Columns, want) {
		t.Errorf("Columns = %v", r.Columns)
	}
	first := r.Rows[0]
	want := RosterRow{Line: 2, Data: Data{WorkerID: "A-1001", Email: "anna.mueller@acme.example", GivenName: "Anna", FamilyName: "Müller", Effective: "2018-01-01", OrgUnit: "Vertrieb", JobTitle: "Sachbearbeitung", Locale: "en-GB"}}
	if first != want {
		t.Errorf("row 1 = %+v\nwant %+v", first, want)
	}
	if got := r.Rows[4].JobTitle; got != "Monteur; Elektrik" {
		t.Errorf("quoted field with the delimiter: %q", got)
	}
	if last := r.Rows[29]; last.Line != 31 || last.WorkerID != "A-1030" {
		t.Errorf("last row: line %d, %s", last.Line, last.WorkerID)
	}
	if !slices.Equal(progress, []int{10, 20, 30}) {
		t.Errorf("progress = %v", progress)
	}
}

func TestRosterSnapshotEvents(t *testing.T) {
	t.Parallel()
	b := setupRoster(t)
	r := mustParse(t, readSample(t, "partner-acme-snapshot.csv"), b.mapping, RosterOptions{Mode: RosterSnapshot})

	// Before: A-1001..A-1020 known; A-1002 with another org unit, A-1003 a leaver,
	// A-0999 active but not in the file, A-0998 a leaver not in the file.
	var current []Member
	for _, row := range r.Rows[:20] {
		current = append(current, Member{WorkerID: row.WorkerID, Active: true, Profile: row.Profile()})
	}
	current[1].Profile.OrgUnit = "Alt"
	current[2].Active = false
	current = append(current, Member{WorkerID: "A-0999", Active: true}, Member{WorkerID: "A-0998"})

	evs, sum := b.mustEvents(t, r, current)
	wantKinds := []string{"updated A-1002", "rehired A-1003"}
	for i := 21; i <= 30; i++ {
		wantKinds = append(wantKinds, fmt.Sprintf("hired A-10%d", i))
	}
	wantKinds = append(wantKinds, "left A-0999")
	if got := kinds(evs); !slices.Equal(got, wantKinds) {
		t.Fatalf("events:\n%v\nwant\n%v", got, wantKinds)
	}
	wantSum := RosterSummary{Mode: RosterSnapshot, SHA256: b.upload.SHA256, Rows: 30, Active: 20, Hires: 10, Rehires: 1, Leavers: 1, Updates: 1, Unchanged: 18, Effective: "2026-11-20"}
	if sum.Mode != wantSum.Mode || sum.SHA256 != wantSum.SHA256 || sum.Rows != wantSum.Rows || sum.Active != wantSum.Active || sum.Hires != wantSum.Hires ||
		sum.Rehires != wantSum.Rehires || sum.Leavers != wantSum.Leavers || sum.Updates != wantSum.Updates || sum.Unchanged != wantSum.Unchanged || sum.Effective != wantSum.Effective || sum.Skipped != 0 {
		t.Errorf("summary %+v\nwant    %+v", sum, wantSum)
	}

	byWorker := map[string]Event{}
	for _, e := range evs {
		byWorker[e.Data.WorkerID] = e
		if e.Source != "/feeds/partner-acme" || e.Feed != "partner-acme" || !e.Time.Equal(b.upload.Time) {
			t.Errorf("event %+v: wrong feed, source or time", e)
		}
	}
	// A hire takes effect at its row's Eintritt; an update and a snapshot leave
	// at the upload date in Berlin.
	if e := byWorker["A-1021"]; e.Data != (Data{WorkerID: "A-1021", Email: "ulrich.braun@acme.example", GivenName: "Ulrich", FamilyName: "Braun", OrgUnit: "Vertrieb", JobTitle: "Sachbearbeitung", Locale: "en-GB", Effective: "2022-09-01"}) {
		t.Errorf("hire: %+v", e.Data)
	}
	if e := byWorker["A-1002"]; e.Data.Effective != "2026-11-20" || e.Data.OrgUnit != "Service" {
		t.Errorf("update: %+v", e.Data)
	}
	if e := byWorker["A-0999"]; e.Data != (Data{WorkerID: "A-0999", Effective: "2026-11-20"}) {
		t.Errorf("leave: %+v", e.Data)
	}

	t.Run("OrderOfCurrentDoesNotMatter", func(t *testing.T) {
		t.Parallel()
		rev := slices.Clone(current)
		slices.Reverse(rev)
		evs2, _ := b.mustEvents(t, r, rev)
		if !slices.Equal(eventIDs(evs2), eventIDs(evs)) {
			t.Fatal("events differ when current is reversed")
		}
	})
	t.Run("PreviousWorkerIDKeepsTheOldIDPresent", func(t *testing.T) {
		t.Parallel()
		csv := "worker_id,email,previous_worker_id\nw-new,ada@example.com,w-old\nw-2,bob@example.com,\n"
		r := mustParse(t, []byte(csv), RosterMapping{}, RosterOptions{Mode: RosterSnapshot})
		evs, _ := b.mustEvents(t, r, []Member{{WorkerID: "w-old", Active: true}, {WorkerID: "w-2", Active: true, Profile: connector.Profile{Email: "bob@example.com"}}})
		if got := kinds(evs); !slices.Equal(got, []string{"rehired w-new"}) || evs[0].Data.PreviousWorkerID != "w-old" {
			t.Fatalf("events %v %+v", got, evs)
		}
	})
}

func TestRosterDeltaEvents(t *testing.T) {
	t.Parallel()
	b := setupRoster(t)
	data := readSample(t, "partner-acme-delta.csv")
	// The delta file uses the contract's own column names: the acme mapping and
	// the default mapping read it alike.
	r := mustParse(t, data, b.mapping, RosterOptions{Mode: RosterDelta})
	if r2 := mustParse(t, data, DefaultRosterMapping(), RosterOptions{Mode: RosterDelta}); !slices.Equal(r2.Rows, r.Rows) {
		t.Fatal("the default mapping reads the delta file differently")
	}
	if r.Delimiter != ',' || r.BOM {
		t.Errorf("delimiter %q, BOM %v", r.Delimiter, r.BOM)
	}
	current := []Member{
		{WorkerID: "A-1004", Active: true},
		{WorkerID: "A-1012"}, // already left
		{WorkerID: "A-1020", Profile: connector.Profile{Email: "tanja.zimmermann@acme.example"}}, // a leaver who comes back
	}
	evs, sum := b.mustEvents(t, r, current)
	if got, want := kinds(evs), []string{"hired A-1031", "hired A-1032", "left A-1004", "rehired A-1020"}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	if sum.Hires != 2 || sum.Rehires != 1 || sum.Leavers != 1 || sum.Unchanged != 1 || sum.Skipped != 0 {
		t.Errorf("summary %+v", sum)
	}
	if d := evs[2].Data; d != (Data{WorkerID: "A-1004", Effective: "2026-11-30", Reason: `Vertragsende, "befristet"`}) {
		t.Errorf("leave data %+v", d)
	}
	if d := evs[1].Data; d.OrgUnit != "Technik, Nord" || d.Effective != "2026-12-01" {
		t.Errorf("hire data %+v", d)
	}

	t.Run("RemoveUnknownIsSkipped", func(t *testing.T) {
		t.Parallel()
		evs, sum := b.mustEvents(t, r, nil)
		if got := kinds(evs); !slices.Equal(got, []string{"hired A-1031", "hired A-1032", "hired A-1020"}) {
			t.Fatalf("events %v", got)
		}
		if sum.Skipped != 2 || len(sum.Notes) != 2 || sum.Notes[0].Error() != "line 4: worker_id 'A-1004' is not known to the feed: nothing to remove" {
			t.Fatalf("summary %+v", sum)
		}
	})
	t.Run("AddOfActiveIsUpdateOrNothing", func(t *testing.T) {
		t.Parallel()
		csv := "worker_id,action,email,job_title\nw1,hire,a@example.com,Boss\nw2,add,b@example.com,\n"
		r := mustParse(t, []byte(csv), RosterMapping{}, RosterOptions{Mode: RosterDelta})
		evs, sum := b.mustEvents(t, r, []Member{{WorkerID: "w1", Active: true, Profile: connector.Profile{Email: "a@example.com"}}, {WorkerID: "w2", Active: true, Profile: connector.Profile{Email: "b@example.com"}}})
		if got := kinds(evs); !slices.Equal(got, []string{"updated w1"}) || sum.Unchanged != 1 {
			t.Fatalf("events %v, summary %+v", got, sum)
		}
	})
	t.Run("OnlyRemovesNeedNoEmailColumn", func(t *testing.T) {
		t.Parallel()
		r := mustParse(t, []byte("worker_id;action\nw1;leave\n"), RosterMapping{}, RosterOptions{Mode: RosterDelta})
		evs, _ := b.mustEvents(t, r, []Member{{WorkerID: "w1", Active: true}})
		if got := kinds(evs); !slices.Equal(got, []string{"left w1"}) || evs[0].Data.Effective != "2026-11-20" {
			t.Fatalf("events %v", evs)
		}
	})
}

// TestRosterReupload: uploading the same file twice changes nothing.
func TestRosterReupload(t *testing.T) {
	t.Parallel()
	b := setupRoster(t)
	data := readSample(t, "partner-acme-snapshot.csv")
	current := []Member{{WorkerID: "A-0999", Active: true}, {WorkerID: "A-1001", Active: true, Profile: connector.Profile{Email: "old@acme.example"}}}

	r1 := mustParse(t, data, b.mapping, RosterOptions{Mode: RosterSnapshot})
	first, _ := b.mustEvents(t, r1, current)

	t.Run("SameIDsBeforeTheFirstIsRecorded", func(t *testing.T) {
		t.Parallel()
		// A double submit: both uploads see the same state and yield the same ids,
		// so the store keeps one copy.
		r2 := mustParse(t, data, b.mapping, RosterOptions{Mode: RosterSnapshot})
		later := *b
		later.upload.Time = b.upload.Time.Add(5 * time.Minute)
		second, _ := later.mustEvents(t, r2, current)
		if !slices.Equal(eventIDs(second), eventIDs(first)) {
			t.Fatal("a re-upload got different ids")
		}
	})
	t.Run("NoEventsOnceRecorded", func(t *testing.T) {
		t.Parallel()
		after := apply(current, first)
		evs, sum := b.mustEvents(t, r1, after)
		if len(evs) != 0 || sum.Unchanged != 30 {
			t.Fatalf("re-upload after the first was recorded: %v, %+v", kinds(evs), sum)
		}
	})
	t.Run("LeaverRehiredMeanwhile", func(t *testing.T) {
		t.Parallel()
		// Upload 1 made A-0999 a leaver (L1). HR rehires A-0999. The same file,
		// uploaded again the same day, states A-0999's leave again with the same
		// id L1, which the store already holds: nothing happens, the rehire
		// stands. Uploaded on a later day, it is a new statement: a new leave.
		var l1 string
		for _, e := range first {
			if e.Kind == connector.KindLeft && e.Data.WorkerID == "A-0999" {
				l1 = e.ID
			}
		}
		state := apply(current, first)
		state = apply(state, []Event{{Kind: connector.KindRehired, Data: Data{WorkerID: "A-0999", Email: "x@acme.example"}}})

		again, _ := b.mustEvents(t, r1, state)
		if len(again) != 1 || again[0].ID != l1 {
			t.Fatalf("same day: %v, want only the leave %s again", kinds(again), l1)
		}
		nextDay := *b
		nextDay.upload.Time = b.upload.Time.Add(24 * time.Hour)
		later, _ := nextDay.mustEvents(t, r1, state)
		if len(later) != 1 || later[0].Kind != connector.KindLeft || later[0].ID == l1 || later[0].Data.Effective != "2026-11-21" {
			t.Fatalf("next day: %+v, want a new leave effective 2026-11-21", later)
		}
	})
	t.Run("IDsDependOnContentNotFile", func(t *testing.T) {
		t.Parallel()
		// Another file (other order, one more row) gives the same person the same
		// event, and so the same id.
		a := mustParse(t, []byte("worker_id,email\nw1,a@example.com\nw2,b@example.com\n"), RosterMapping{}, RosterOptions{Mode: RosterSnapshot})
		c := mustParse(t, []byte("email;worker_id;given_name\nc@example.com;w3;\nb@example.com;w2;\na@example.com;w1;\n"), RosterMapping{}, RosterOptions{Mode: RosterSnapshot})
		ea, _ := b.mustEvents(t, a, nil)
		ec, _ := b.mustEvents(t, c, nil)
		if ea[0].ID != ec[2].ID || ea[1].ID != ec[1].ID || ea[0].ID == ea[1].ID {
			t.Fatalf("ids %v vs %v", eventIDs(ea), eventIDs(ec))
		}
		// A different feed or a changed field is a different event.
		other := *b
		other.feed = connector.DefaultFeed("hr", connector.FeedHR)
		eo, _ := other.mustEvents(t, a, nil)
		if eo[0].ID == ea[0].ID {
			t.Fatal("same id in another feed")
		}
		a.Rows[0].GivenName = "Ada"
		ea2, _ := b.mustEvents(t, a, nil)
		if ea2[0].ID == ea[0].ID || ea2[1].ID != ea[1].ID {
			t.Fatal("a changed row kept its id, or an unchanged one lost it")
		}
	})
}

func TestParseRosterErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		mode RosterMode
		opts RosterOptions
		csv  string
		// want are the RosterErrors' messages, in order.
		want  []string
		total int
	}{
		{name: "ErrBadEmail", csv: "worker_id,email\nw1,ada@example.com\nw2,bob@\n",
			want: []string{"line 3: email 'bob@' is not an address"}},
		{name: "ErrBadEmailMappedColumn", csv: "Personalnummer;E-Mail\nw1;bob@\n",
			want: []string{"line 2: email 'bob@' is not an address (column E-Mail)"}},
		{name: "ErrBadEncoding", csv: "worker_id,email,family_name\nw1,a@example.com,M\xfcller\nw2,b@example.com,Ok\n", opts: RosterOptions{Encoding: EncodingUTF8},
			want: []string{"line 2: field 3 is not valid UTF-8: the file may be Windows-1252 or ISO-8859-1"}},
		{name: "ErrBadEncodingHeader", csv: "worker_id,email,Stra\xdfe\nw1,a@example.com,x\n", opts: RosterOptions{Encoding: EncodingUTF8},
			want: []string{"line 1: header column 3 is not valid UTF-8: the file may be Windows-1252 or ISO-8859-1"}},
		{name: "ErrUnbalancedQuotes", csv: "worker_id,email,given_name\nw1,a@example.com,\"Ada\nw2,b@example.com,Bob\n",
			want: []string{"line 2: has unbalanced quotes: a quoted field opened on this line is not closed properly (the parser gave up on line 3)"}},
		{name: "ErrQuoteFollowedByText", csv: "worker_id,email,given_name\nw1,a@example.com,\"Ada\"x\nw2,b@example.com,Bob\n",
			want: []string{`line 2: has unbalanced quotes: a quoted field is not closed, or text follows its closing quote (column 22); a " inside a quoted field is written ""`}},
		{name: "ErrBareQuote", csv: "worker_id,email,job_title\nw1,a@example.com,5\" screen\nw2,b@example.com,ok\n",
			want: []string{`line 2: has a " inside an unquoted field (column 19): quote the whole field and double the quote, e.g. "5"" screen"`}},
		{name: "ErrMissingHeader", csv: "w1,ada@example.com,Ada\nw2,bob@example.com,Bob\n",
			want: []string{"line 1: header is missing: no column of the first line ('w1,ada@example.com,Ada') is a known column; the first line must name the columns, e.g. worker_id, email"}},
		{name: "ErrMissingWorkerIDColumn", csv: "email,given_name\na@example.com,Ada\n",
			want: []string{"line 1: header has no worker_id column (a column named 'Personalnummer' or 'worker_id')"}},
		{name: "ErrMissingEmailColumnSnapshot", csv: "worker_id,given_name\nw1,Ada\n",
			want: []string{"line 1: header has no email column (a column named 'E-Mail' or 'email')"}},
		{name: "ErrMissingActionColumnDelta", mode: RosterDelta, csv: "worker_id,email\nw1,a@example.com\n",
			want: []string{"line 1: header has no action column (a column named 'action')"}},
		{name: "ErrTwoColumnsOneField", csv: "worker_id,email,e-mail\nw1,a@example.com,a@example.com\n",
			want: []string{"line 1: header columns 'email' and 'e-mail' both map to email"}, opts: RosterOptions{}},
		{name: "ErrDuplicateWorkerID", csv: "worker_id,email\nw1,a@example.com\nw2,b@example.com\n\nw1,c@example.com\n",
			want: []string{"line 5: worker_id 'w1' appears again: it is on line 2 too"}},
		{name: "ErrDuplicateOfInvalidRow", csv: "worker_id,email\nw1,bob@\nw1,bob@example.com\n",
			want: []string{"line 2: email 'bob@' is not an address", "line 3: worker_id 'w1' appears again: it is on line 2 too"}},
		{name: "ErrEmptyFile", csv: "",
			want: []string{"the file is empty: it has no header row and no rows"}},
		{name: "ErrEmptyFileBOM", csv: "\uFEFF\r\n\r\n",
			want: []string{"the file is empty: it has no header row and no rows"}},
		{name: "ErrHeaderOnlySnapshot", csv: "worker_id,email\n,\n , \n",
			want: []string{"the file has a header but no rows: an empty snapshot would mean that everyone left"}},
		{name: "ErrHeaderOnlyDelta", mode: RosterDelta, csv: "worker_id,action\n",
			want: []string{"the file has a header but no rows"}},
		{name: "ErrBadEffective", csv: "worker_id,email,effective\nw1,a@example.com,2026-13-01\nw2,b@example.com,2026-12-01T18:00:00\nw3,c@example.com,01.12.2026\n",
			want: []string{
				"line 2: effective '2026-13-01' is not a date (2026-12-01) or a date-time with offset (2026-12-01T18:00:00+01:00)",
				"line 3: effective '2026-12-01T18:00:00' is not a date (2026-12-01) or a date-time with offset (2026-12-01T18:00:00+01:00)",
				"line 4: effective '01.12.2026' is not a date (2026-12-01) or a date-time with offset (2026-12-01T18:00:00+01:00)",
			}},
		{name: "ErrBadTimezone", csv: "worker_id,email,timezone\nw1,a@example.com,Mars/Olympus\nw2,b@example.com,Local\nw3,c@example.com,Europe/Berlin\n",
			want: []string{
				"line 2: timezone 'Mars/Olympus' is not an IANA time zone name such as Europe/Berlin",
				"line 3: timezone 'Local' is not an IANA time zone name such as Europe/Berlin",
			}},
		{name: "ErrLengthLimits", csv: "worker_id,email,given_name,locale\n" + strings.Repeat("x", 129) + ",a@example.com,Ada,de\nw2,b@example.com," + strings.Repeat("ä", 257) + ",de-DE-x-toolongvalue\n",
			want: []string{
				"line 2: worker_id is 129 characters, longer than the limit of 128",
				"line 3: given_name is 257 characters, longer than the limit of 256",
				"line 3: locale 'de-DE-x-toolongvalue' is not a language tag such as de-DE",
			}},
		{name: "ErrSpaceInWorkerID", csv: "worker_id,email\nw 1,a@example.com\n",
			want: []string{"line 2: worker_id 'w 1' must not contain spaces or control characters"}},
		{name: "ErrLineBreakInName", csv: "worker_id,email,given_name\nw1,a@example.com,\"Ada\nLovelace\"\nw2,b@example.com,Bob\n",
			want: []string{"line 2: given_name 'Ada\nLovelace' contains a line break or control character"}},
		{name: "ErrFieldCount", csv: "worker_id,email,given_name\nw1,a@example.com\nw2,b@example.com,Bob,extra\n",
			want: []string{"line 2: has 2 fields, but the header has 3", "line 3: has 4 fields, but the header has 3"}},
		{name: "ErrWorkerIDRequired", csv: "worker_id,email\n,a@example.com\n",
			want: []string{"line 2: worker_id is required"}},
		{name: "ErrActionInSnapshot", csv: "worker_id,email,action\nw1,a@example.com,add\n",
			want: []string{"line 1: action column is not allowed in a snapshot: is this a delta file? A delta read as a snapshot would make a leaver of everyone it does not list"}},
		{name: "ErrBadAction", mode: RosterDelta, csv: "worker_id,email,action\nw1,a@example.com,delete\nw2,,\n",
			want: []string{"line 2: action 'delete' is not add or remove", "line 3: action is required: add or remove"}},
		{name: "ErrAddWithoutEmail", mode: RosterDelta, csv: "worker_id,email,action\nw1,,add\nw2,,remove\n",
			want: []string{"line 2: email is required to add a worker"}},
		{name: "ErrAddWithoutEmailColumn", mode: RosterDelta, csv: "worker_id,action\nw1,remove\nw2,add\n",
			want: []string{"line 1: header has no email column, which rows that add a worker need (line 3 is the first)"}},
		{name: "ErrMaxRows", opts: RosterOptions{MaxRows: 2}, csv: "worker_id,email\nw1,a@example.com\nw2,b@example.com\nw3,c@example.com\nw4,d@example.com\n",
			want: []string{"line 4: the file has more than 2 rows, the limit of one upload: split it"}},
		{name: "ErrBounded", opts: RosterOptions{MaxErrors: 2}, csv: "worker_id,email\nw1,x\nw2,y\nw3,z\n",
			want: []string{"line 2: email 'x' is not an address", "line 3: email 'y' is not an address"}, total: 3},
		{name: "ErrEveryRowChecked", csv: "worker_id,email,effective\nw1,bob@,2026-02-30\nw1,ok@example.com,\n\"w3,c@example.com\n",
			want: []string{
				"line 2: email 'bob@' is not an address",
				"line 2: effective '2026-02-30' is not a date (2026-12-01) or a date-time with offset (2026-12-01T18:00:00+01:00)",
				"line 3: worker_id 'w1' appears again: it is on line 2 too",
				`line 4: has unbalanced quotes: a quoted field is not closed, or text follows its closing quote (column 19); a " inside a quoted field is written ""`,
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts := tc.opts
			opts.Mode = tc.mode
			if opts.Mode == "" {
				opts.Mode = RosterSnapshot
			}
			r, err := ParseRoster(strings.NewReader(tc.csv), RosterMapping{Columns: map[string]string{"Personalnummer": "worker_id", "E-Mail": "email"}}, opts)
			if err == nil {
				t.Fatalf("accepted: %+v", r)
			}
			if r != nil {
				t.Error("a Roster came with the error")
			}
			re := rosterErrs(t, err)
			var got []string
			for _, e := range re.Errors {
				got = append(got, e.Error())
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			total := tc.total
			if total == 0 {
				total = len(tc.want)
			}
			if re.Total != total {
				t.Errorf("Total = %d, want %d", re.Total, total)
			}
			var first RosterError
			if !errors.As(err, &first) || first != re.Errors[0] {
				t.Errorf("errors.As(RosterError) = %v", first)
			}
		})
	}
}

func TestRosterErrorsMessage(t *testing.T) {
	t.Parallel()
	one := &RosterErrors{Errors: []RosterError{{Line: 17, Field: "email", Reason: "'bob@' is not an address"}}, Total: 1}
	if got := one.Error(); got != "roster: line 17: email 'bob@' is not an address" {
		t.Errorf("one: %q", got)
	}
	many := &RosterErrors{Errors: []RosterError{{Line: 2, Reason: "a"}, {Reason: "b"}}, Total: 5}
	if got := many.Error(); got != "roster: 5 problems\nline 2: a\nb\n… and 3 more" {
		t.Errorf("many: %q", got)
	}
}

func TestParseRosterDelimiter(t *testing.T) {
	t.Parallel()
	acme := RosterMapping{Columns: map[string]string{"Personalnummer": "worker_id", "E-Mail": "email", "Name, Vorname": "given_name"}}
	tests := []struct {
		name  string
		csv   string
		delim rune
		opts  RosterOptions
	}{
		{name: "Comma", csv: "worker_id,email\nw1,a@example.com\n", delim: ','},
		{name: "Semicolon", csv: "worker_id;email\nw1;a@example.com\n", delim: ';'},
		{name: "SemicolonBOMCRLF", csv: "\uFEFFPersonalnummer;E-Mail\r\nw1;a@example.com\r\n", delim: ';'},
		{name: "CommaBOM", csv: "\uFEFFworker_id,email\nw1,a@example.com\n", delim: ','},
		// The header "Name, Vorname" holds a comma, but semicolons separate more
		// known columns.
		{name: "CommaInsideHeader", csv: "Personalnummer;\"Name, Vorname\";E-Mail\nw1;Ada;a@example.com\n", delim: ';'},
		// Unknown extra columns with commas in them do not outvote the known ones.
		{name: "KnownColumnsWin", csv: "worker_id;email;Notiz a,b,c,d\nw1;a@example.com;x\n", delim: ';'},
		{name: "BlankLinesBeforeHeader", csv: "\uFEFF\r\n  \r\nworker_id;email\r\nw1;a@example.com\r\n", delim: ';'},
		{name: "Forced", csv: "worker_id\temail\nw1\ta@example.com\n", delim: '\t', opts: RosterOptions{Delimiter: '\t'}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts := tc.opts
			opts.Mode = RosterSnapshot
			r := mustParse(t, []byte(tc.csv), acme, opts)
			if r.Delimiter != tc.delim {
				t.Fatalf("delimiter %q, want %q", r.Delimiter, tc.delim)
			}
			if len(r.Rows) != 1 || r.Rows[0].WorkerID != "w1" || r.Rows[0].Email != "a@example.com" {
				t.Fatalf("rows %+v", r.Rows)
			}
			if r.BOM != strings.HasPrefix(tc.csv, "\uFEFF") {
				t.Errorf("BOM = %v", r.BOM)
			}
		})
	}
}

func TestParseRosterOptions(t *testing.T) {
	t.Parallel()
	t.Run("ErrNoMode", func(t *testing.T) {
		t.Parallel()
		if _, err := ParseRoster(strings.NewReader("worker_id,email\nw1,a@example.com\n"), RosterMapping{}, RosterOptions{}); err == nil {
			t.Fatal("no error without a mode")
		}
	})
	t.Run("ErrDefaultEffective", func(t *testing.T) {
		t.Parallel()
		_, err := ParseRoster(strings.NewReader("worker_id,email\nw1,a@example.com\n"), RosterMapping{}, RosterOptions{Mode: RosterSnapshot, DefaultEffective: "tomorrow"})
		if err == nil || !strings.Contains(err.Error(), "default effective 'tomorrow' is not a date") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("DefaultEffective", func(t *testing.T) {
		t.Parallel()
		b := setupRoster(t)
		r := mustParse(t, []byte("worker_id,email,effective\nw1,a@example.com,\nw2,b@example.com,2027-01-01\n"), RosterMapping{}, RosterOptions{Mode: RosterSnapshot, DefaultEffective: "2026-12-01T08:00:00+01:00"})
		evs, sum := b.mustEvents(t, r, []Member{{WorkerID: "w0", Active: true}})
		got := []string{evs[0].Data.Effective, evs[1].Data.Effective, evs[2].Data.Effective}
		if !slices.Equal(got, []string{"2026-12-01T08:00:00+01:00", "2027-01-01", "2026-12-01T08:00:00+01:00"}) || sum.Effective != "2026-12-01T08:00:00+01:00" {
			t.Fatalf("effective %v", got)
		}
	})
	t.Run("ParseRosterMode", func(t *testing.T) {
		t.Parallel()
		for in, want := range map[string]RosterMode{"snapshot": RosterSnapshot, " Delta": RosterDelta} {
			if got, err := ParseRosterMode(in); err != nil || got != want {
				t.Errorf("ParseRosterMode(%q) = %q, %v", in, got, err)
			}
		}
		if _, err := ParseRosterMode("full"); err == nil {
			t.Error("ParseRosterMode(full) succeeded")
		}
	})
}

func TestRosterEventsErrors(t *testing.T) {
	t.Parallel()
	b := setupRoster(t)
	t.Run("ErrEmailRequiredForHire", func(t *testing.T) {
		t.Parallel()
		r := mustParse(t, []byte("worker_id,email\nw1,\nw2,b@example.com\nw3,\n"), RosterMapping{}, RosterOptions{Mode: RosterSnapshot})
		// w1 is active (no email needed), w3 left before (a rehire needs one).
		_, _, err := r.Events(b.feed, []Member{{WorkerID: "w1", Active: true}, {WorkerID: "w3"}}, b.upload)
		re := rosterErrs(t, err)
		if len(re.Errors) != 1 || re.Errors[0].Error() != "line 4: email is required: 'w3' would be rehired" {
			t.Fatalf("errors %v", re.Errors)
		}
	})
	t.Run("ErrNoUploadTime", func(t *testing.T) {
		t.Parallel()
		r := mustParse(t, []byte("worker_id,email\nw1,a@example.com\n"), RosterMapping{}, RosterOptions{Mode: RosterSnapshot})
		if _, _, err := r.Events(b.feed, nil, UploadInfo{}); err == nil {
			t.Fatal("no error without an upload time")
		}
	})
	t.Run("ErrDuplicateMember", func(t *testing.T) {
		t.Parallel()
		r := mustParse(t, []byte("worker_id,email\nw1,a@example.com\n"), RosterMapping{}, RosterOptions{Mode: RosterSnapshot})
		if _, _, err := r.Events(b.feed, []Member{{WorkerID: "w9"}, {WorkerID: "w9"}}, b.upload); err == nil {
			t.Fatal("no error for a member listed twice")
		}
	})
	t.Run("HandBuiltRosterIsChecked", func(t *testing.T) {
		t.Parallel()
		r := &Roster{Mode: RosterSnapshot, Rows: []RosterRow{{Line: 2, Data: Data{WorkerID: "w1", Email: "bob@"}}}}
		_, _, err := r.Events(b.feed, nil, b.upload)
		if re := rosterErrs(t, err); re.Errors[0].Error() != "line 2: email 'bob@' is not an address" {
			t.Fatalf("errors %v", re.Errors)
		}
		r.Rows[0].Email = "bob@example.com"
		b.mustEvents(t, r, nil)
	})
}

func TestFormatEvents(t *testing.T) {
	t.Parallel()
	b := setupRoster(t)
	r := mustParse(t, readSample(t, "partner-acme-delta.csv"), b.mapping, RosterOptions{Mode: RosterDelta})
	evs, _ := b.mustEvents(t, r, []Member{{WorkerID: "A-1004", Active: true}})
	var out bytes.Buffer
	if err := FormatEvents(&out, evs); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 1+len(evs) {
		t.Fatalf("%d lines for %d events:\n%s", len(lines), len(evs), out.String())
	}
	if !strings.HasPrefix(lines[0], "KIND") || !strings.Contains(lines[0], "EFFECTIVE") {
		t.Errorf("header %q", lines[0])
	}
	for i, e := range evs {
		l := lines[i+1]
		if !strings.HasPrefix(l, string(e.Kind)+" ") || !strings.Contains(l, e.Data.WorkerID) || !strings.HasSuffix(l, e.ID) {
			t.Errorf("line %q does not show %s %s %s", l, e.Kind, e.Data.WorkerID, e.ID)
		}
	}
	if !strings.Contains(out.String(), `reason=Vertragsende, "befristet"`) {
		t.Errorf("no reason in\n%s", out.String())
	}
}
