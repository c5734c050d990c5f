package events

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/unicode"
)

// writeSamples rewrites the Excel-made roster samples in testdata/rosters:
//
//	go test ./events/ -run TestRosterExcelSamples -write-roster-samples
var writeSamples = flag.Bool("write-roster-samples", false, "rewrite the Excel-made roster samples in testdata/rosters")

// excelPeople are the people of every Excel-made sample: umlauts, ß, Å, ç and
// € (which Windows-1252 has and ISO-8859-1 has not), dates before and after
// the upload.
var excelPeople = []struct {
	id, email, given, family string
	start                    time.Time
	org, job                 string
}{
	{"A-2001", "juergen.groess@acme.example", "Jürgen", "Größ", time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC), "Lager", "Fahrer"},
	{"A-2002", "zoe.weiss@acme.example", "Zoë", "Weiß", time.Date(2023, 3, 15, 0, 0, 0, 0, time.UTC), "Büro", "Sachbearbeitung"},
	{"A-2003", "oezlem.kaya@acme.example", "Özlem", "Kaya", time.Date(2022, 11, 3, 0, 0, 0, 0, time.UTC), "Einkauf €", "Einkäuferin"},
	{"A-2004", "bjoern.angstroem@acme.example", "Björn", "Ångström", time.Date(2025, 4, 5, 0, 0, 0, 0, time.UTC), "Qualität", "Prüfer; Nord"},
	{"A-2005", "francois.mueller@acme.example", "François", "Müller", time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC), "Vertrieb", "Außendienst"},
}

// excelHeader is the header of the samples, in the acme mapping's names.
var excelHeader = []string{"Personalnummer", "E-Mail", "Vorname", "Nachname", "Eintritt", "Abteilung", "Funktion", "Bemerkung"}

// excelDateFormats are the date formats a feed sending these samples configures.
var excelDateFormats = []string{"02.01.2006", "2006-01-02"}

// excelText writes the samples as Excel writes text: every line ends in CRLF,
// a cell with the delimiter or a quote is quoted, dates as the layout shows them.
func excelText(sep, dateLayout string) string {
	var b strings.Builder
	cell := func(s string) string {
		if strings.ContainsAny(s, sep+"\"\r\n") {
			return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
		}
		return s
	}
	b.WriteString(strings.Join(excelHeader, sep) + "\r\n")
	for _, p := range excelPeople {
		cells := []string{p.id, p.email, p.given, p.family, p.start.Format(dateLayout), p.org, p.job, ""}
		for i := range cells {
			cells[i] = cell(cells[i])
		}
		b.WriteString(strings.Join(cells, sep) + "\r\n")
	}
	return b.String()
}

// excelSamples returns each sample's bytes by file name.
func excelSamples(t testing.TB) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	// German Excel's "CSV (Trennzeichen-getrennt)": Windows-1252, semicolons, dd.mm.yyyy.
	w1252, err := charmap.Windows1252.NewEncoder().String(excelText(";", "02.01.2006"))
	if err != nil {
		t.Fatal(err)
	}
	out["partner-acme-windows1252.csv"] = []byte(w1252)
	// "Unicode Text": UTF-16LE with a byte order mark, tab-separated.
	u16, err := unicode.UTF16(unicode.LittleEndian, unicode.UseBOM).NewEncoder().String(excelText("\t", "02.01.2006"))
	if err != nil {
		t.Fatal(err)
	}
	out["partner-acme-utf16.txt"] = []byte(u16)
	// "CSV UTF-8 (Comma delimited)": a UTF-8 byte order mark, commas.
	out["partner-acme-utf8bom.csv"] = []byte("\uFEFF" + excelText(",", "2006-01-02"))
	// A workbook whose first sheet is the roster, with real date cells, and a
	// second sheet of notes.
	f := excelize.NewFile()
	defer f.Close()
	if err := f.SetSheetName("Sheet1", "Mitarbeiter"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.NewSheet("Hinweise"); err != nil {
		t.Fatal(err)
	}
	dateStyle, err := f.NewStyle(&excelize.Style{NumFmt: 14})
	if err != nil {
		t.Fatal(err)
	}
	set := func(sheet, cell string, v any) {
		if err := f.SetCellValue(sheet, cell, v); err != nil {
			t.Fatal(err)
		}
	}
	for i, h := range excelHeader {
		c, _ := excelize.CoordinatesToCellName(i+1, 1)
		set("Mitarbeiter", c, h)
	}
	for r, p := range excelPeople {
		row := r + 2
		for i, v := range []any{p.id, p.email, p.given, p.family, p.start, p.org, p.job} {
			c, _ := excelize.CoordinatesToCellName(i+1, row)
			set("Mitarbeiter", c, v)
			if i == 4 {
				if err := f.SetCellStyle("Mitarbeiter", c, c, dateStyle); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	set("Hinweise", "A1", "Stand: Dezember 2026")
	var buf bytes.Buffer
	if _, err := f.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	out["partner-acme-excel.xlsx"] = buf.Bytes()
	return out
}

// TestRosterExcelSamples reads each committed Excel-made sample, with the
// format, the encoding and the delimiter detected and the feed's date formats,
// and finds every person as the table states them. With -write-roster-samples
// it first writes the samples.
func TestRosterExcelSamples(t *testing.T) {
	b := setupRoster(t)
	if *writeSamples {
		for name, data := range excelSamples(t) {
			if err := os.WriteFile(filepath.Join(rosterDir, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, c := range []struct {
		name, format, encoding string
		delim                  rune
		bom                    bool
	}{
		{"partner-acme-windows1252.csv", RosterFormatCSV, EncodingWindows1252, ';', false},
		{"partner-acme-utf16.txt", RosterFormatCSV, EncodingUTF16LE, '\t', true},
		{"partner-acme-utf8bom.csv", RosterFormatCSV, EncodingUTF8, ',', true},
		{"partner-acme-excel.xlsx", RosterFormatXLSX, "", 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := mustParse(t, readSample(t, c.name), b.mapping, RosterOptions{Mode: RosterSnapshot, DateFormats: excelDateFormats})
			if r.Format != c.format || r.Encoding != c.encoding || r.Delimiter != c.delim || r.BOM != c.bom {
				t.Errorf("read as format %s, encoding %s, delimiter %q, bom %v; want %s, %s, %q, %v", r.Format, r.Encoding, r.Delimiter, r.BOM, c.format, c.encoding, c.delim, c.bom)
			}
			if c.format == RosterFormatXLSX && r.Sheet != "Mitarbeiter" {
				t.Errorf("sheet %q, want the first, Mitarbeiter", r.Sheet)
			}
			if len(r.Rows) != len(excelPeople) {
				t.Fatalf("%d rows, want %d", len(r.Rows), len(excelPeople))
			}
			for i, p := range excelPeople {
				got := r.Rows[i]
				want := Data{WorkerID: p.id, Email: p.email, GivenName: p.given, FamilyName: p.family,
					Effective: p.start.Format(time.DateOnly), OrgUnit: p.org, JobTitle: p.job}
				if got.Data != want || got.Line != i+2 {
					t.Errorf("row %d = line %d %+v\nwant line %d %+v", i, got.Line, got.Data, i+2, want)
				}
			}
			evs, _ := b.mustEvents(t, r, nil)
			if len(evs) != len(excelPeople) {
				t.Errorf("%d events, want a hire each", len(evs))
			}
		})
	}
}

// TestRosterExcelSheetByName: a configured sheet is read instead of the first;
// a sheet that is not there is refused naming the sheets there are.
func TestRosterExcelSheetByName(t *testing.T) {
	b := setupRoster(t)
	data := readSample(t, "partner-acme-excel.xlsx")
	_, err := ParseRoster(bytes.NewReader(data), b.mapping, RosterOptions{Mode: RosterSnapshot, Sheet: "Hinweise"})
	if re := rosterErrs(t, err); !strings.Contains(re.Error(), "header is missing") {
		t.Errorf("the notes sheet read as a roster: %v", err)
	}
	_, err = ParseRoster(bytes.NewReader(data), b.mapping, RosterOptions{Mode: RosterSnapshot, Sheet: "Roster"})
	if re := rosterErrs(t, err); !strings.Contains(re.Error(), "has no sheet named 'Roster' (its sheets: Mitarbeiter, Hinweise)") {
		t.Errorf("missing sheet: %v", err)
	}
	r := mustParse(t, data, b.mapping, RosterOptions{Mode: RosterSnapshot, Sheet: "Mitarbeiter", DateFormats: excelDateFormats})
	if len(r.Rows) != len(excelPeople) || r.Sheet != "Mitarbeiter" {
		t.Errorf("%d rows from sheet %q", len(r.Rows), r.Sheet)
	}
}

// TestRosterXLSXRowNumbers: a row's line is its row number in the sheet, also
// after empty rows, and a number in the effective column is a date cell.
func TestRosterXLSXRowNumbers(t *testing.T) {
	t.Parallel()
	book := func(email5 string) []byte {
		f := excelize.NewFile()
		defer f.Close()
		for cell, v := range map[string]any{"A1": "worker_id", "B1": "email", "C1": "effective",
			"A2": "w1", "B2": "w1@example.com", "A5": "w5", "B5": email5, "C5": 46387, "A7": "w7", "B7": "w7@example.com", "C7": "31.12.2026"} {
			if err := f.SetCellValue("Sheet1", cell, v); err != nil {
				t.Fatal(err)
			}
		}
		var buf bytes.Buffer
		if _, err := f.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	opts := RosterOptions{Mode: RosterSnapshot, DateFormats: []string{"02.01.2006"}}
	_, err := ParseRoster(bytes.NewReader(book("w5@")), RosterMapping{}, opts)
	re := rosterErrs(t, err)
	if re.Total != 1 || re.Errors[0].Line != 5 || re.Errors[0].Field != "email" {
		t.Fatalf("problems %v, want line 5's email alone", re)
	}
	r := mustParse(t, book("w5@example.com"), RosterMapping{}, opts)
	var got []string
	for _, row := range r.Rows {
		got = append(got, fmt.Sprintf("%d %s %s", row.Line, row.WorkerID, row.Effective))
	}
	if want := "2 w1 , 5 w5 2026-12-31, 7 w7 2026-12-31"; strings.Join(got, ", ") != want {
		t.Errorf("rows %q, want %q", strings.Join(got, ", "), want)
	}
}
