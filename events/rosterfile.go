package events

import (
	"archive/zip"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/xuri/excelize/v2"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/unicode"
	"golang.org/x/text/transform"
)

// What a roster file is made of, as Excel and its users save it: the format
// (CSV or XLSX), the text encoding of a CSV file, and the date formats of its
// effective column. docs/rosters.md ("Formats and encodings") is the user's view.

// The roster formats (RosterOptions.Format).
const (
	RosterFormatAuto = "auto"
	RosterFormatCSV  = "csv"
	RosterFormatXLSX = "xlsx"
)

// The text encodings of a CSV roster (RosterOptions.Encoding). A byte order
// mark always wins over the setting: it cannot be mistaken.
const (
	// EncodingAuto: a byte order mark says UTF-8 or UTF-16; without one, the file
	// is UTF-8 if its first 64 KiB are valid UTF-8, else Windows-1252.
	EncodingAuto = "auto"
	EncodingUTF8 = "utf-8"
	// EncodingUTF16 is what Excel's "Unicode text" writes: UTF-16 with a byte
	// order mark; without one it is read as little-endian, as Windows writes it.
	EncodingUTF16   = "utf-16"
	EncodingUTF16LE = "utf-16le"
	EncodingUTF16BE = "utf-16be"
	// EncodingWindows1252 is Excel's plain "CSV" on a Western European Windows.
	EncodingWindows1252 = "windows-1252"
)

// RosterFormats and RosterEncodings list the accepted settings.
var (
	RosterFormats   = []string{RosterFormatAuto, RosterFormatCSV, RosterFormatXLSX}
	RosterEncodings = []string{EncodingAuto, EncodingUTF8, EncodingUTF16, EncodingUTF16LE, EncodingUTF16BE, EncodingWindows1252}
)

// ParseRosterFormat checks a format setting; "" is auto.
func ParseRosterFormat(s string) (string, error) {
	v := strings.ToLower(strings.TrimSpace(s))
	if v == "" {
		return RosterFormatAuto, nil
	}
	if !slices.Contains(RosterFormats, v) {
		return "", fmt.Errorf("unknown roster format %q: want one of %s", s, strings.Join(RosterFormats, ", "))
	}
	return v, nil
}

// ParseRosterEncoding checks an encoding setting; "" is auto. A few common
// spellings are accepted (utf8, cp1252, ucs-2, ...).
func ParseRosterEncoding(s string) (string, error) {
	v := strings.ToLower(strings.TrimSpace(s))
	switch v {
	case "":
		return EncodingAuto, nil
	case "utf8":
		return EncodingUTF8, nil
	case "utf16", "unicode", "ucs-2":
		return EncodingUTF16, nil
	case "cp1252", "windows1252", "win-1252", "ansi":
		return EncodingWindows1252, nil
	}
	if !slices.Contains(RosterEncodings, v) {
		return "", fmt.Errorf("unknown roster encoding %q: want one of %s", s, strings.Join(RosterEncodings, ", "))
	}
	return v, nil
}

// ParseRosterDelimiter reads a delimiter setting: "", ",", ";", "tab" (or a
// tab character) or another single character. Zero means detect.
func ParseRosterDelimiter(s string) (rune, error) {
	switch s {
	case "", "auto":
		return 0, nil
	case "tab", `\t`, "\t":
		return '\t', nil
	}
	r, n := utf8.DecodeRuneInString(s)
	if n != len(s) || r == '"' || r == '\r' || r == '\n' || r == utf8.RuneError {
		return 0, fmt.Errorf("roster delimiter %q: want one character such as , or ; or the word tab", s)
	}
	return r, nil
}

// CheckDateFormats checks Go layouts for the effective column: each must be a
// date (day, month and year, no time of day) that reads back what it writes.
func CheckDateFormats(layouts []string) error {
	refs := []time.Time{time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), time.Date(2027, 3, 5, 0, 0, 0, 0, time.UTC)}
	for _, l := range layouts {
		if refs[0].Format(l) != refs[0].Add(13*time.Hour+45*time.Minute+30*time.Second).Format(l) {
			return fmt.Errorf("date format %q has a time of day: the effective column takes dates (a date-time needs RFC 3339 with its offset)", l)
		}
		for _, ref := range refs {
			s := ref.Format(l)
			got, err := time.Parse(l, s)
			if err != nil || !got.Equal(ref) {
				return fmt.Errorf("date format %q is not a date layout that can be read back (it writes %s as %q): use Go's reference date, e.g. 02.01.2006 for 31.12.2026 or 01/02/2006 for 12/31/2026", l, ref.Format(time.DateOnly), s)
			}
		}
	}
	return nil
}

// dateReader reads the effective column: RFC 3339 as the contract has it, or
// one of the feed's date formats, never a value two formats read differently.
type dateReader struct{ layouts []string }

// read returns v as the contract's effective (a date as 2006-01-02), or why it
// cannot, with how to fix it.
func (d dateReader) read(v string) (string, string, string) {
	if checkEffective(v) == "" {
		return v, "", ""
	}
	var got []time.Time
	var by []string
	for _, l := range d.layouts {
		t, err := time.Parse(l, v)
		if err != nil {
			continue
		}
		if !slices.ContainsFunc(got, t.Equal) {
			got, by = append(got, t), append(by, l)
		}
	}
	switch len(got) {
	case 1:
		return got[0].Format(time.DateOnly), "", ""
	case 0:
		if len(d.layouts) == 0 {
			return "", checkEffective(v), "Write the date as year-month-day, e.g. 2026-12-31; if your file writes dates another way (31.12.2026), ask for the feed's date_formats to be set"
		}
		return "", fmt.Sprintf("'%s' is not a date in any of the formats %s", clip(v), exampleDates(d.layouts)),
			fmt.Sprintf("Write the date as %s", exampleDates(d.layouts))
	}
	var readings []string
	for i, t := range got {
		readings = append(readings, fmt.Sprintf("%s (as %s)", t.Format("2 January 2006"), by[i]))
	}
	return "", fmt.Sprintf("'%s' can be read two ways: %s", clip(v), strings.Join(readings, " or ")),
		fmt.Sprintf("Write it as %s, which can be read only one way, or keep only one of these date formats in the feed's settings", got[0].Format(time.DateOnly))
}

// exampleDates shows each layout with 31 December 2026.
func exampleDates(layouts []string) string {
	ex := []string{"2026-12-31"}
	for _, l := range layouts {
		if s := time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC).Format(l); !slices.Contains(ex, s) {
			ex = append(ex, s)
		}
	}
	return strings.Join(ex, " or ")
}

// recordSource hands on the records of a roster file, whatever its format.
type recordSource interface {
	// next returns the next record; io.EOF at the end. A *csv.ParseError or
	// errRecordTooLong is a problem of the file, any other error a read error.
	next() ([]string, error)
	// line is the line (CSV) or row (XLSX) of field i of the last record.
	line(i int) int
	close()
}

// csvSource reads CSV records, each bounded by recordLimiter.
type csvSource struct {
	lim *recordLimiter
	rd  *csv.Reader
}

func (s *csvSource) next() ([]string, error) { return s.lim.next(s.rd) }
func (s *csvSource) line(i int) int          { l, _ := s.rd.FieldPos(i); return l }
func (s *csvSource) close()                  {}

// zipMagic starts every XLSX file (a zip archive's local file header).
var zipMagic = []byte("PK\x03\x04")

// sniffFormat decides CSV or XLSX from the first bytes and the setting, and
// says what is wrong when they disagree.
func sniffFormat(setting string, magic []byte) (string, string) {
	isZip := bytes.HasPrefix(magic, zipMagic)
	switch setting {
	case RosterFormatXLSX:
		if !isZip {
			return "", "is not an XLSX file (an XLSX file is a zip archive, and this one does not start like one): save it from Excel as \"Excel Workbook (*.xlsx)\", or set the feed's format to csv"
		}
		return RosterFormatXLSX, ""
	case RosterFormatCSV:
		if isZip {
			return "", "is a zip archive, probably an Excel workbook, but the feed's format is csv: save it as CSV, or set the feed's format to xlsx or auto"
		}
		return RosterFormatCSV, ""
	}
	if isZip {
		return RosterFormatXLSX, ""
	}
	return RosterFormatCSV, ""
}

// detectEncoding returns the encoding of a CSV file from its first bytes and
// the setting, how many bytes of byte order mark to skip, and a problem.
func detectEncoding(setting string, head []byte, atEOF bool) (enc string, bom int, problem string) {
	switch {
	case bytes.HasPrefix(head, []byte("\xEF\xBB\xBF")):
		return EncodingUTF8, 3, ""
	case bytes.HasPrefix(head, []byte("\xFF\xFE")):
		return EncodingUTF16LE, 2, ""
	case bytes.HasPrefix(head, []byte("\xFE\xFF")):
		return EncodingUTF16BE, 2, ""
	}
	switch setting {
	case EncodingUTF16:
		return EncodingUTF16LE, 0, ""
	case EncodingUTF8, EncodingUTF16LE, EncodingUTF16BE, EncodingWindows1252:
		return setting, 0, ""
	}
	if bytes.IndexByte(head, 0) >= 0 {
		return "", 0, "contains NUL bytes: it is probably UTF-16 without a byte order mark; save it from Excel as \"Unicode Text\", or set the feed's encoding to utf-16le or utf-16be"
	}
	if !atEOF { // a character cut by the end of the window is not a fault
		if j := lastRuneStart(head); j >= 0 && !utf8.FullRune(head[j:]) {
			head = head[:j]
		}
	}
	if utf8.Valid(head) {
		return EncodingUTF8, 0, ""
	}
	return EncodingWindows1252, 0, ""
}

// lastRuneStart is the index of the last byte that may start a UTF-8 sequence
// within the last utf8.UTFMax bytes, or -1.
func lastRuneStart(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			return i
		}
	}
	return -1
}

// decoder returns a reader of r's text as UTF-8. Bytes that are not valid in
// enc become U+FFFD, which the row checks report with their line: the
// transcoding keeps every line break where it was.
func decoder(enc string, r io.Reader) io.Reader {
	switch enc {
	case EncodingWindows1252:
		return transform.NewReader(r, charmap.Windows1252.NewDecoder())
	case EncodingUTF16LE:
		return transform.NewReader(r, unicode.UTF16(unicode.LittleEndian, unicode.IgnoreBOM).NewDecoder())
	case EncodingUTF16BE:
		return transform.NewReader(r, unicode.UTF16(unicode.BigEndian, unicode.IgnoreBOM).NewDecoder())
	}
	return r
}

// encodingName is how messages name an encoding.
func encodingName(enc string) string {
	switch enc {
	case EncodingUTF8:
		return "UTF-8"
	case EncodingUTF16LE:
		return "UTF-16 (little-endian)"
	case EncodingUTF16BE:
		return "UTF-16 (big-endian)"
	case EncodingWindows1252:
		return "Windows-1252"
	}
	return enc
}

// The bounds of an XLSX roster. The worksheet and the shared strings are
// streamed from temporary files once larger than xlsxInMemory; every other
// part of the archive (styles, the workbook, pictures) is read into memory, so
// those are bounded together by xlsxOtherParts; and the archive may not unpack
// to more than xlsxUnpacked, so that a small zip bomb cannot fill the disk.
const (
	xlsxInMemory   = 8 << 20
	xlsxOtherParts = 64 << 20
	xlsxUnpacked   = 2 << 30
)

// xlsxSource reads the rows of one worksheet with excelize's row iterator.
type xlsxSource struct {
	f        *excelize.File
	rows     *excelize.Rows
	row      int
	date1904 bool
	tmp      string // a spooled copy to remove, if any
}

// openXLSX opens the workbook held in path (size bytes) and its sheet (the
// first if empty). A problem of the file is returned as a string.
func openXLSX(path string, size int64, sheet string) (src *xlsxSource, problem string, err error) {
	defer func() {
		if r := recover(); r != nil { // a malformed workbook must not take the process down
			if src != nil {
				src.close()
			}
			src, problem, err = nil, fmt.Sprintf("is not a readable XLSX workbook (%v): open it in Excel and save it again as \"Excel Workbook (*.xlsx)\"", r), nil
		}
	}()
	fh, err := os.Open(path)
	if err != nil {
		return nil, "", err
	}
	zr, zerr := zip.NewReader(fh, size)
	if zerr != nil {
		fh.Close()
		return nil, fmt.Sprintf("is not a readable XLSX workbook (%v): open it in Excel and save it again as \"Excel Workbook (*.xlsx)\"", zerr), nil
	}
	var other, total uint64
	for _, zf := range zr.File {
		total += zf.UncompressedSize64
		name := strings.ToLower(strings.ReplaceAll(zf.Name, `\`, "/"))
		if !strings.HasPrefix(name, "xl/worksheets/sheet") && name != "xl/sharedstrings.xml" {
			other += zf.UncompressedSize64
		}
	}
	fh.Close()
	if other > xlsxOtherParts || total > xlsxUnpacked {
		return nil, fmt.Sprintf("unpacks to %d MiB, of which %d MiB are not the sheets themselves (pictures, styles): more than a roster needs (limits %d and %d MiB); copy the roster's columns into a new workbook",
			total>>20, other>>20, xlsxUnpacked>>20, xlsxOtherParts>>20), nil
	}
	f, oerr := excelize.OpenFile(path, excelize.Options{RawCellValue: true, UnzipXMLSizeLimit: xlsxInMemory, UnzipSizeLimit: xlsxUnpacked})
	if oerr != nil {
		if f != nil {
			_ = f.Close()
		}
		return nil, fmt.Sprintf("is not a readable XLSX workbook (%v): open it in Excel and save it again as \"Excel Workbook (*.xlsx)\"", oerr), nil
	}
	src = &xlsxSource{f: f}
	sheets := f.GetSheetList()
	if sheet == "" {
		if len(sheets) == 0 {
			src.close()
			return nil, "has no worksheet", nil
		}
		sheet = sheets[0]
	} else if !slices.Contains(sheets, sheet) {
		src.close()
		return nil, fmt.Sprintf("has no sheet named '%s' (its sheets: %s): rename the sheet, or change the feed's sheet setting", clip(sheet), clip(strings.Join(sheets, ", "))), nil
	}
	if props, perr := f.GetWorkbookProps(); perr == nil && props.Date1904 != nil {
		src.date1904 = *props.Date1904
	}
	rows, rerr := f.Rows(sheet)
	if rerr != nil {
		src.close()
		return nil, fmt.Sprintf("sheet '%s' cannot be read (%v): open the file in Excel and save it again", clip(sheet), rerr), nil
	}
	src.rows = rows
	return src, "", nil
}

func (s *xlsxSource) next() (rec []string, err error) {
	defer func() {
		if r := recover(); r != nil {
			rec, err = nil, &xlsxError{fmt.Sprintf("row %d cannot be read (%v)", s.row+1, r)}
		}
	}()
	if !s.rows.Next() {
		if err := s.rows.Error(); err != nil {
			return nil, &xlsxError{fmt.Sprintf("the sheet cannot be read after row %d (%v)", s.row, err)}
		}
		return nil, io.EOF
	}
	s.row++
	rec, err = s.rows.Columns()
	if err != nil {
		return nil, &xlsxError{fmt.Sprintf("row %d cannot be read (%v)", s.row, err)}
	}
	return rec, nil
}

func (s *xlsxSource) line(int) int { return s.row }

func (s *xlsxSource) close() {
	if s.rows != nil {
		_ = s.rows.Close()
	}
	if s.f != nil {
		_ = s.f.Close()
	}
	if s.tmp != "" {
		_ = os.Remove(s.tmp)
	}
}

// serialDate reads an Excel date serial number (how a date cell is stored) as
// the contract's date. ok is false for anything else.
func (s *xlsxSource) serialDate(v string) (date string, ok bool) {
	n, err := strconv.ParseFloat(v, 64)
	if err != nil || n < 1 || n > 2958465 || n != float64(int64(n)) {
		return "", false
	}
	t, err := excelize.ExcelDateToTime(n, s.date1904)
	if err != nil {
		return "", false
	}
	return t.Format(time.DateOnly), true
}

// xlsxError is a workbook that cannot be read on: the rest of its rows are
// unknown, so the file is refused.
type xlsxError struct{ reason string }

func (e *xlsxError) Error() string { return e.reason }

// spoolXLSX gives the workbook in r a path excelize can open without reading
// it into memory (a zip's directory is at its end): the file itself when in
// is one, else a temporary copy. It hashes and counts every byte through cr.
func spoolXLSX(in io.Reader, rest io.Reader) (path string, size int64, tmp bool, err error) {
	if f, ok := in.(*os.File); ok {
		n, err := io.Copy(io.Discard, rest) // for the hash and count
		if err != nil {
			return "", 0, false, err
		}
		if off, err := f.Seek(0, io.SeekCurrent); err == nil && off == n {
			return f.Name(), n, false, nil
		}
		return "", 0, false, errors.New("the XLSX file was not read from its start")
	}
	t, err := os.CreateTemp("", "hrsync-roster-*.xlsx")
	if err != nil {
		return "", 0, false, err
	}
	defer t.Close()
	n, err := io.Copy(t, rest)
	if err == nil {
		err = t.Sync()
	}
	if err != nil {
		_ = os.Remove(t.Name())
		return "", 0, false, err
	}
	return t.Name(), n, true, nil
}
