package events

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/unicode"

	"github.com/hrsync/hrsync/connector"
)

func utf16Bytes(t *testing.T, e unicode.Endianness, bom unicode.BOMPolicy, s string) string {
	t.Helper()
	out, err := unicode.UTF16(e, bom).NewEncoder().String(s)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func w1252(t *testing.T, s string) string {
	t.Helper()
	out, err := charmap.Windows1252.NewEncoder().String(s)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRosterEncodingDetection: a byte order mark decides (whatever the
// setting); without one, valid UTF-8 is UTF-8 and anything else Windows-1252,
// unless the feed's setting says otherwise.
func TestRosterEncodingDetection(t *testing.T) {
	t.Parallel()
	const text = "worker_id,email,family_name\r\nw1,a@example.com,Müller €\r\n"
	for _, c := range []struct {
		name, data, setting, want string
		delim                     rune
	}{
		{"UTF8", text, "", EncodingUTF8, ','},
		{"UTF8BOM", "\uFEFF" + text, "", EncodingUTF8, ','},
		{"UTF8BOMWinsOverSetting", "\uFEFF" + text, EncodingWindows1252, EncodingUTF8, ','},
		{"Windows1252", w1252(t, text), "", EncodingWindows1252, ','},
		{"Windows1252Configured", w1252(t, text), EncodingWindows1252, EncodingWindows1252, ','},
		{"UTF16LEBOM", utf16Bytes(t, unicode.LittleEndian, unicode.UseBOM, strings.ReplaceAll(text, ",", "\t")), "", EncodingUTF16LE, '\t'},
		{"UTF16BEBOM", utf16Bytes(t, unicode.BigEndian, unicode.UseBOM, strings.ReplaceAll(text, ",", "\t")), "", EncodingUTF16BE, '\t'},
		{"UTF16ConfiguredNoBOMIsLE", utf16Bytes(t, unicode.LittleEndian, unicode.IgnoreBOM, text), EncodingUTF16, EncodingUTF16LE, ','},
		{"UTF16BEConfiguredNoBOM", utf16Bytes(t, unicode.BigEndian, unicode.IgnoreBOM, text), EncodingUTF16BE, EncodingUTF16BE, ','},
		{"Semicolon1252", w1252(t, strings.ReplaceAll(text, ",", ";")), "", EncodingWindows1252, ';'},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r, err := ParseRoster(strings.NewReader(c.data), RosterMapping{}, RosterOptions{Mode: RosterSnapshot, Encoding: c.setting})
			if err != nil {
				t.Fatal(err)
			}
			if r.Encoding != c.want || r.Delimiter != c.delim {
				t.Errorf("read as %s with %q, want %s with %q", r.Encoding, r.Delimiter, c.want, c.delim)
			}
			if len(r.Rows) != 1 || r.Rows[0].FamilyName != "Müller €" || r.Rows[0].Line != 2 {
				t.Errorf("rows = %+v", r.Rows)
			}
		})
	}
}

// TestRosterEncodingProblems: bytes that the encoding does not have are
// refused with their line and field; a file that cannot be told apart is
// refused with what to do.
func TestRosterEncodingProblems(t *testing.T) {
	t.Parallel()
	head := "worker_id,email,family_name\n"
	for _, c := range []struct {
		name, data, setting, want string
	}{
		{"Windows1252Undefined", head + "w1,a@example.com,Ok\nw2,b@example.com,M\x81ller\n", EncodingWindows1252,
			"line 3: field 3 has bytes that are not valid Windows-1252 (shown as \uFFFD)"},
		{"UTF16UnpairedSurrogate", "\xFF\xFE" + utf16Bytes(t, unicode.LittleEndian, unicode.IgnoreBOM, head+"w1,a@example.com,") + "\x00\xD8" +
			utf16Bytes(t, unicode.LittleEndian, unicode.IgnoreBOM, "x\n"), "", "line 2: field 3 has bytes that are not valid UTF-16 (little-endian) (shown as \uFFFD)"},
		{"UTF16OddByteAtEnd", "\xFE\xFF" + utf16Bytes(t, unicode.BigEndian, unicode.IgnoreBOM, head+"w1,a@example.com,Kim") + "\x00", "",
			"line 2: field 3 has bytes that are not valid UTF-16 (big-endian) (shown as \uFFFD)"},
		{"UTF8Configured", head + "w1,a@example.com,M\xfcller\n", EncodingUTF8, "line 2: field 3 is not valid UTF-8: the file may be Windows-1252 or ISO-8859-1"},
		{"UTF16WithoutBOM", utf16Bytes(t, unicode.LittleEndian, unicode.IgnoreBOM, head+"w1,a@example.com,Kim\n"), "",
			"the file contains NUL bytes: it is probably UTF-16 without a byte order mark; save it from Excel as \"Unicode Text\", or set the feed's encoding to utf-16le or utf-16be"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseRoster(strings.NewReader(c.data), RosterMapping{}, RosterOptions{Mode: RosterSnapshot, Encoding: c.setting})
			re := rosterErrs(t, err)
			if re.Errors[0].Error() != c.want || re.Errors[0].Fix == "" {
				t.Errorf("got %q (fix %q)\nwant %q", re.Errors[0].Error(), re.Errors[0].Fix, c.want)
			}
		})
	}
}

// TestRosterFormatSetting: a configured format that the bytes contradict is
// refused saying which; an unknown setting is refused before reading.
func TestRosterFormatSetting(t *testing.T) {
	t.Parallel()
	xlsx := readSample(t, "partner-acme-excel.xlsx")
	csv := []byte("worker_id,email\nw1,a@example.com\n")
	for _, c := range []struct {
		name, format string
		data         []byte
		want         string
	}{
		{"XLSXAsCSV", RosterFormatCSV, xlsx, "the file is a zip archive, probably an Excel workbook, but the feed's format is csv"},
		{"CSVAsXLSX", RosterFormatXLSX, csv, "the file is not an XLSX file"},
		{"BrokenZip", RosterFormatAuto, append([]byte("PK\x03\x04"), bytes.Repeat([]byte{0}, 40)...), "the file is not a readable XLSX workbook"},
	} {
		_, err := ParseRoster(bytes.NewReader(c.data), RosterMapping{}, RosterOptions{Mode: RosterSnapshot, Format: c.format})
		if re := rosterErrs(t, err); !strings.HasPrefix(re.Errors[0].Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	if _, err := ParseRoster(bytes.NewReader(csv), RosterMapping{}, RosterOptions{Mode: RosterSnapshot, Format: "ods"}); err == nil || !strings.Contains(err.Error(), `unknown roster format "ods"`) {
		t.Errorf("format ods: %v", err)
	}
	if _, err := ParseRoster(bytes.NewReader(csv), RosterMapping{}, RosterOptions{Mode: RosterSnapshot, Encoding: "latin-9"}); err == nil || !strings.Contains(err.Error(), `unknown roster encoding "latin-9"`) {
		t.Errorf("encoding latin-9: %v", err)
	}
}

// TestRosterDateFormats: dates are read in the feed's formats; a date two
// formats read differently is a problem that names both readings; RFC 3339
// always works; bad layouts are refused.
func TestRosterDateFormats(t *testing.T) {
	t.Parallel()
	parse := func(dates []string, cell string) (*Roster, error) {
		return ParseRoster(strings.NewReader("worker_id,email,effective\nw1,a@example.com,"+cell+"\n"), RosterMapping{},
			RosterOptions{Mode: RosterSnapshot, DateFormats: dates})
	}
	for _, c := range []struct {
		dates      []string
		cell, want string
	}{
		{[]string{"02.01.2006"}, "31.12.2026", "2026-12-31"},
		{[]string{"02.01.2006"}, "2026-12-31", "2026-12-31"},
		{[]string{"02.01.2006"}, "2026-12-31T08:00:00+01:00", "2026-12-31T08:00:00+01:00"},
		{[]string{"02/01/2006", "01/02/2006"}, "13/04/2026", "2026-04-13"},
		{[]string{"02/01/2006", "01/02/2006"}, "04/13/2026", "2026-04-13"},
		{[]string{"02/01/2006", "01/02/2006"}, "04/04/2026", "2026-04-04"}, // both read it alike
		{[]string{"2.1.2006"}, "3.4.2026", "2026-04-03"},
	} {
		r, err := parse(c.dates, c.cell)
		if err != nil {
			t.Errorf("%v %q: %v", c.dates, c.cell, err)
			continue
		}
		if got := r.Rows[0].Effective; got != c.want {
			t.Errorf("%v %q read as %q, want %q", c.dates, c.cell, got, c.want)
		}
	}
	for _, c := range []struct {
		dates      []string
		cell, want string
	}{
		{[]string{"02/01/2006", "01/02/2006"}, "03/04/2026",
			"line 2: effective '03/04/2026' can be read two ways: 3 April 2026 (as 02/01/2006) or 4 March 2026 (as 01/02/2006)"},
		{[]string{"02.01.2006"}, "31/12/2026", "line 2: effective '31/12/2026' is not a date in any of the formats 2026-12-31 or 31.12.2026"},
		{nil, "31.12.2026", "line 2: effective '31.12.2026' is not a date (2026-12-01) or a date-time with offset (2026-12-01T18:00:00+01:00)"},
	} {
		_, err := parse(c.dates, c.cell)
		re := rosterErrs(t, err)
		if re.Errors[0].Error() != c.want || re.Errors[0].Column != "effective" || re.Errors[0].Fix == "" {
			t.Errorf("%v %q: %q (fix %q)\nwant %q", c.dates, c.cell, re.Errors[0].Error(), re.Errors[0].Fix, c.want)
		}
	}
	for _, bad := range [][]string{{"15:04"}, {"2006"}, {"02.01."}, {"Jan 2006"}} {
		if err := CheckDateFormats(bad); err == nil {
			t.Errorf("date format %q accepted", bad)
		}
	}
	if _, err := parse([]string{"02.01.06x15"}, "x"); err == nil || !strings.Contains(err.Error(), "date format") {
		t.Errorf("a bad layout reached the rows: %v", err)
	}
}

// TestRosterDelimiterDetection: comma, semicolon and tab are told apart by the
// known columns they yield.
func TestRosterDelimiterDetection(t *testing.T) {
	t.Parallel()
	for head, want := range map[string]rune{
		"worker_id,email,given_name":        ',',
		"worker_id;email;given_name":        ';',
		"worker_id\temail\tgiven_name":      '\t',
		"worker_id\t\"email, work\"\temail": '\t',
	} {
		p, _ := newRosterParser(RosterMapping{}, RosterOptions{Mode: RosterSnapshot})
		if got := p.detectDelimiter([]byte(head)); got != want {
			t.Errorf("%q: %q, want %q", head, got, want)
		}
	}
	for in, want := range map[string]rune{"": 0, "tab": '\t', ";": ';', ",": ','} {
		if got, err := ParseRosterDelimiter(in); err != nil || got != want {
			t.Errorf("ParseRosterDelimiter(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseRosterDelimiter(";;"); err == nil {
		t.Error("two characters accepted as a delimiter")
	}
}

// skipBundle is a feed of five active members for SkipInvalid.
func skipMembers() []Member {
	var ms []Member
	for _, id := range []string{"w1", "w2", "w3", "w4", "w5"} {
		ms = append(ms, Member{WorkerID: id, Active: true, Profile: connector.Profile{Email: id + "@example.com", EmployeeNumber: "E-" + id}})
	}
	return ms
}

// TestStreamRosterSkipInvalidSnapshot: the valid rows of a snapshot are
// applied; a person whose row is invalid is unknown, not absent: kept, found by
// worker id, or by email or employee number when the id itself is the typo;
// only the people no row names are leavers, and the report names each bad row.
func TestStreamRosterSkipInvalidSnapshot(t *testing.T) {
	t.Parallel()
	b := setupRoster(t)
	file := "worker_id,email,employee_number,given_name\n" +
		"w1,w1@example.com,E-w1,Ann\n" + // valid, changed name: an update
		"w2,w2@,E-w2,Bea\n" + // bad email: kept
		"w 4,W4@Example.com,E-w4,Dan\n" + // bad id, known email: kept
		"w5,w5@example.com,E-w5\n" + // too few fields: kept by its id
		"w6,w6@example.com,E-w6,New\n" // a hire
	var evs []Event
	_, sum, err := StreamRoster(strings.NewReader(file), RosterMapping{}, RosterOptions{Mode: RosterSnapshot, SkipInvalid: true},
		b.feed, skipMembers(), b.upload, func(e Event) error { evs = append(evs, e); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if sum.Rows != 5 || sum.Invalid != 3 || sum.Kept != 3 || sum.Leavers != 1 || sum.Hires != 1 || sum.Updates != 1 || sum.Withheld != 0 {
		t.Errorf("summary %+v", sum)
	}
	var got []string
	for _, e := range evs {
		got = append(got, string(e.Kind)+" "+e.Data.WorkerID)
	}
	if want := []string{"updated w1", "hired w6", "left w3"}; !slices.Equal(got, want) {
		t.Errorf("events %v, want %v: w3 alone is in no row", got, want)
	}
	var lines []string
	for _, p := range sum.Problems {
		lines = append(lines, p.Error()+" | "+p.WorkerID+" | "+p.Effect)
		if p.Fix == "" {
			t.Errorf("problem without a fix: %+v", p)
		}
	}
	want := []string{
		"line 3: email 'w2@' is not an address | w2 | " + effectKept,
		"line 4: worker_id 'w 4' must not contain spaces or control characters |  | " + effectKept,
		"line 5: has 3 fields, but the header has 4 | w5 | " + effectKept,
	}
	if !slices.Equal(lines, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

// TestStreamRosterSkipInvalidNamesNoOne: a snapshot row that names no one
// hrsync recognises may be any member: no one is a leaver, and the report
// says why.
func TestStreamRosterSkipInvalidNamesNoOne(t *testing.T) {
	t.Parallel()
	b := setupRoster(t)
	file := "worker_id,email\nw1,w1@example.com\nw2,w2@example.com\n,stranger@\n\"w4,w4@example.com\n"
	var evs []Event
	_, sum, err := StreamRoster(strings.NewReader(file), RosterMapping{}, RosterOptions{Mode: RosterSnapshot, SkipInvalid: true},
		b.feed, skipMembers(), b.upload, func(e Event) error { evs = append(evs, e); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 0 || sum.Leavers != 0 || sum.Withheld != 3 || sum.Invalid != 2 {
		t.Errorf("summary %+v, %d events: want no leavers, 3 withheld", sum, len(evs))
	}
	if len(sum.Problems) == 0 || sum.Problems[0].Effect != effectNoLeavers {
		t.Errorf("problems %+v", sum.Problems)
	}
}

// TestStreamRosterSkipInvalidDelta: a delta applies its valid rows and
// reports the others; a file with no valid row is refused.
func TestStreamRosterSkipInvalidDelta(t *testing.T) {
	t.Parallel()
	b := setupRoster(t)
	file := "worker_id,action,email,effective\nw1,remove,,\nw9,add,w9@example.com,2026-13-01\nw8,add,w8@example.com,\nw7,hire,,\n"
	var evs []Event
	_, sum, err := StreamRoster(strings.NewReader(file), RosterMapping{}, RosterOptions{Mode: RosterDelta, SkipInvalid: true},
		b.feed, skipMembers(), b.upload, func(e Event) error { evs = append(evs, e); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].Kind != connector.KindLeft || evs[1].Data.WorkerID != "w8" || sum.Invalid != 2 || sum.Leavers != 1 || sum.Hires != 1 {
		t.Errorf("summary %+v, events %v", sum, evs)
	}
	if len(sum.Problems) != 2 || sum.Problems[0].Line != 3 || sum.Problems[0].Column != "effective" || sum.Problems[1].Line != 5 || sum.Problems[1].Effect != effectSkipped {
		t.Errorf("problems %+v", sum.Problems)
	}
	_, _, err = StreamRoster(strings.NewReader("worker_id,action,email\nw9,add,bad\nw1,drop,\n"), RosterMapping{}, RosterOptions{Mode: RosterDelta, SkipInvalid: true},
		b.feed, skipMembers(), b.upload, func(Event) error { t.Error("an event of a refused file"); return nil })
	if re := rosterErrs(t, err); !strings.Contains(re.Error(), "no row of the file can be applied: all 2 have a problem") {
		t.Errorf("a file of bad rows: %v", err)
	}
}

// TestRosterBadBytesRefuseTheFile: bytes the encoding does not have refuse
// the whole file, with every such line, even with the good rows applied: the
// encoding is wrong for the file, so its other rows' text may be wrong too.
func TestRosterBadBytesRefuseTheFile(t *testing.T) {
	t.Parallel()
	b := setupRoster(t)
	file := "worker_id,email,family_name\nw1,w1@example.com,Ok\nw2,w2@example.com,M\xfcller\nw3,w3@example.com,Ok\nw4,w4@example.com,K\xf6hler\n"
	_, _, err := StreamRoster(strings.NewReader(file), RosterMapping{}, RosterOptions{Mode: RosterSnapshot, SkipInvalid: true, Encoding: EncodingUTF8},
		b.feed, skipMembers(), b.upload, func(Event) error { return nil }) // events before the refusal are dropped by the caller
	re := rosterErrs(t, err)
	if re.Total != 2 || re.Errors[0].Line != 3 || re.Errors[1].Line != 5 {
		t.Fatalf("problems %v, want lines 3 and 5", re)
	}
}
