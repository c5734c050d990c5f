package events

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/xuri/excelize/v2"

	"github.com/hrsync/hrsync/connector"
)

// FuzzParseRoster checks that ParseRoster never panics; that every rejection is a
// *RosterErrors whose problems have a reason and a line ≥ 1, or line 0 for the file
// as a whole; and that every accepted file yields rows with a worker id and
// events that pass CheckEvent (one of each kind per input), in both modes.
//
//	go test -run '^$' -fuzz FuzzParseRoster -fuzztime 20s -fuzzminimizetime 1s ./events/
//
// A short -fuzzminimizetime matters here: the package's test binary is large (it
// embeds a NATS server), and the default minute of minimising each new input
// stalls a short run.
func FuzzParseRoster(f *testing.F) {
	b := setupRoster(f)
	for _, name := range []string{"partner-acme-snapshot.csv", "partner-acme-delta.csv"} {
		data := readSample(f, name)
		f.Add(data, false)
		f.Add(data, true)
	}
	for _, s := range []string{
		"", "\uFEFF", "worker_id,email\n", "worker_id,email\nw1,a@example.com\n",
		"worker_id;email;action\nw1;a@example.com;add\nw2;;remove\n",
		"worker_id,email,given_name\nw1,a@example.com,\"Ada\n",
		"worker_id,email\nw1,a@example.com\nw1,b@example.com\n",
		"worker_id,email,family_name\nw1,a@example.com,M\xfcller\n",
		"worker_id,email,effective,timezone\nw1,a@example.com,2026-12-01T18:00:00+01:00,Europe/Berlin\n",
		"worker_id,email,previous_worker_id,reason,locale\nw2,a@example.com,w1,gone,de-DE\n",
		"\"worker_id\",\"email\"\r\n\"w1\",\"a\"\"b@example.com\"\r\n",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	current := []Member{
		{WorkerID: "w1", Active: true, Profile: connector.Profile{Email: "a@example.com"}},
		{WorkerID: "w2"},
		{WorkerID: "A-1001", Active: true},
		{WorkerID: "A-1004"},
	}

	f.Fuzz(func(t *testing.T, data []byte, delta bool) {
		mode := RosterSnapshot
		if delta {
			mode = RosterDelta
		}
		r, err := ParseRoster(bytes.NewReader(data), b.mapping, RosterOptions{Mode: mode, MaxErrors: 10})
		if err != nil {
			var re *RosterErrors
			if !errors.As(err, &re) {
				t.Fatalf("error %v (%T) is not a *RosterErrors", err, err)
			}
			if re.Total < len(re.Errors) || len(re.Errors) == 0 || len(re.Errors) > 10 {
				t.Fatalf("%d errors kept of %d", len(re.Errors), re.Total)
			}
			for _, e := range re.Errors {
				if e.Line < 0 || e.Reason == "" || !utf8.ValidString(e.Error()) {
					t.Fatalf("bad problem %#v", e)
				}
				if e.Line == 0 && e.Field != "" {
					t.Fatalf("file-level problem with a field %#v", e)
				}
			}
			return
		}
		if len(r.Rows) == 0 {
			t.Fatal("accepted a roster without rows")
		}
		seen := map[string]bool{}
		for _, row := range r.Rows {
			if row.Line < 2 || row.WorkerID == "" || seen[row.WorkerID] || strings.TrimSpace(row.WorkerID) != row.WorkerID {
				t.Fatalf("bad row %+v", row)
			}
			seen[row.WorkerID] = true
		}
		evs, _, err := r.Events(b.feed, current, b.upload)
		if err != nil {
			var re *RosterErrors
			if !errors.As(err, &re) {
				t.Fatalf("Events: %v (%T)", err, err)
			}
			return
		}
		// CheckEvent is slow under coverage instrumentation: check one event of
		// each kind per input (the unit tests check every event).
		checked := map[connector.Kind]bool{}
		for _, e := range evs {
			if checked[e.Kind] {
				continue
			}
			checked[e.Kind] = true
			if err := CheckEvent(e, b.feeds); err != nil {
				t.Fatalf("event %+v breaks the contract: %v", e, err)
			}
		}
	})
}

// checkStream is what every streamed upload must hold, whatever the bytes: a
// refusal is a *RosterErrors whose problems have a reason; an accepted file has
// a valid row, its problems name rows, a snapshot that withholds its leavers
// makes none, and every event passes CheckEvent (one of each kind).
func checkStream(t *testing.T, b *rosterBundle, current []Member, data []byte, opts RosterOptions) {
	t.Helper()
	var evs []Event
	_, sum, err := StreamRoster(bytes.NewReader(data), b.mapping, opts, b.feed, current, b.upload,
		func(e Event) error { evs = append(evs, e); return nil })
	if err != nil {
		var re *RosterErrors
		if !errors.As(err, &re) {
			t.Fatalf("error %v (%T) is not a *RosterErrors", err, err)
		}
		if re.Total < len(re.Errors) || len(re.Errors) == 0 {
			t.Fatalf("%d errors kept of %d", len(re.Errors), re.Total)
		}
		for _, e := range re.Errors {
			if e.Line < 0 || e.Reason == "" || !utf8.ValidString(e.Error()) {
				t.Fatalf("bad problem %#v", e)
			}
		}
		return
	}
	if sum.Rows == 0 || sum.Invalid >= sum.Rows {
		t.Fatalf("accepted a file without a valid row: %+v", sum)
	}
	if sum.Withheld > 0 && sum.Leavers != 0 {
		t.Fatalf("withheld %d leavers, yet made %d", sum.Withheld, sum.Leavers)
	}
	if (sum.Invalid == 0) != (sum.ProblemsTotal == 0) {
		t.Fatalf("%d invalid rows, %d problems", sum.Invalid, sum.ProblemsTotal)
	}
	for _, p := range sum.Problems {
		if p.Line < 1 || p.Reason == "" || p.Effect == "" || p.Fix == "" || !utf8.ValidString(p.Error()+p.Fix) {
			t.Fatalf("bad row problem %#v", p)
		}
	}
	checked := map[connector.Kind]bool{}
	for _, e := range evs {
		if e.Kind == connector.KindLeft && opts.Mode == RosterSnapshot {
			for _, p := range sum.Problems {
				if p.WorkerID == e.Data.WorkerID && p.WorkerID != "" {
					t.Fatalf("%s left, though their row has a problem: %+v", e.Data.WorkerID, p)
				}
			}
		}
		if checked[e.Kind] {
			continue
		}
		checked[e.Kind] = true
		if err := CheckEvent(e, b.feeds); err != nil {
			t.Fatalf("event %+v breaks the contract: %v", e, err)
		}
	}
}

// FuzzRosterEncodings feeds any bytes, read in any encoding setting, as a
// snapshot or a delta, with the good rows applied: see checkStream.
//
//	go test -run '^$' -fuzz FuzzRosterEncodings -fuzztime 30s -fuzzminimizetime 1s ./events/
func FuzzRosterEncodings(f *testing.F) {
	b := setupRoster(f)
	for _, name := range []string{"partner-acme-snapshot.csv", "partner-acme-delta.csv", "partner-acme-windows1252.csv",
		"partner-acme-utf16.txt", "partner-acme-utf8bom.csv"} {
		data := readSample(f, name)
		for enc := range RosterEncodings {
			f.Add(data, uint8(enc), false)
		}
		f.Add(data, uint8(0), true)
	}
	f.Add([]byte("\xFF\xFEw\x00o\x00"), uint8(0), false)
	f.Add([]byte("\xFE\xFF\x00w\xD8\x00"), uint8(2), false)
	f.Add([]byte("Personalnummer;E-Mail\r\nA-1001;a@acme.example\r\n\"A-1002;\r\n"), uint8(5), false)
	current := []Member{
		{WorkerID: "A-1001", Active: true, Profile: connector.Profile{Email: "anna.mueller@acme.example", EmployeeNumber: "7"}},
		{WorkerID: "A-1004"},
		{WorkerID: "A-2001", Active: true},
		{WorkerID: "w1", Active: true},
	}
	f.Fuzz(func(t *testing.T, data []byte, enc uint8, delta bool) {
		mode := RosterSnapshot
		if delta {
			mode = RosterDelta
		}
		checkStream(t, b, current, data, RosterOptions{Mode: mode, Format: RosterFormatCSV, SkipInvalid: true, MaxErrors: 10,
			Encoding: RosterEncodings[int(enc)%len(RosterEncodings)], DateFormats: []string{"02.01.2006", "01/02/2006"}})
	})
}

// FuzzRosterXLSX feeds any bytes as an XLSX workbook: a broken archive or
// sheet is refused as a problem of the file, never a panic; see checkStream.
//
//	go test -run '^$' -fuzz FuzzRosterXLSX -fuzztime 30s -fuzzminimizetime 1s ./events/
func FuzzRosterXLSX(f *testing.F) {
	b := setupRoster(f)
	f.Add(readSample(f, "partner-acme-excel.xlsx"), false)
	f.Add(readSample(f, "partner-acme-excel.xlsx"), true)
	f.Add([]byte("PK\x03\x04"), false)
	current := []Member{{WorkerID: "A-2001", Active: true}, {WorkerID: "A-9999", Active: true}}
	f.Fuzz(func(t *testing.T, data []byte, sheet bool) {
		opts := RosterOptions{Mode: RosterSnapshot, Format: RosterFormatXLSX, SkipInvalid: true, MaxErrors: 10, DateFormats: []string{"02.01.2006"}}
		if sheet {
			opts.Sheet = "Mitarbeiter"
		}
		checkStream(t, b, current, data, opts)
	})
}

// FuzzRosterXLSXCells writes any cells into a real workbook, so that the
// fuzzer reaches the rows rather than the zip checksums: see checkStream.
//
//	go test -run '^$' -fuzz FuzzRosterXLSXCells -fuzztime 30s -fuzzminimizetime 1s ./events/
func FuzzRosterXLSXCells(f *testing.F) {
	b := setupRoster(f)
	f.Add("Personalnummer", "A-2001", "a@acme.example", "31.12.2026", 46387.0)
	f.Add("worker_id", "w 1", "x@", "03/04/2026", 0.5)
	f.Add("E-Mail", "", "\u202e", "", -1.0)
	current := []Member{{WorkerID: "A-2001", Active: true, Profile: connector.Profile{Email: "a@acme.example"}}, {WorkerID: "A-9999", Active: true}}
	f.Fuzz(func(t *testing.T, header, id, email, date string, serial float64) {
		x := excelize.NewFile()
		defer x.Close()
		rows := [][]any{{header, "E-Mail", "Eintritt", "Vorname"}, {id, email, date, serial}, {"A-9999", "z@acme.example", serial, id}}
		for i, r := range rows {
			c, _ := excelize.CoordinatesToCellName(1, i+1)
			if err := x.SetSheetRow("Sheet1", c, &r); err != nil {
				return // a cell excelize will not write
			}
		}
		var buf bytes.Buffer
		if _, err := x.WriteTo(&buf); err != nil {
			return
		}
		checkStream(t, b, current, buf.Bytes(), RosterOptions{Mode: RosterSnapshot, SkipInvalid: true, MaxErrors: 10, DateFormats: []string{"02.01.2006", "01/02/2006"}})
	})
}
