package events

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/maphash"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/hrsync/hrsync/connector"
)

// Partner roster files → events. docs/rosters.md is the user's view of this file.
//
// The flow is two pure steps, so that a dry run is just "do not publish":
//
//	roster, err := ParseRoster(file, feedMapping, RosterOptions{Mode: RosterSnapshot})
//	evs, summary, err := roster.Events(feed, current, UploadInfo{SHA256: sum, Time: now})
//
// ParseRoster reads and validates every row of the file; Events compares the rows
// with the feed's current members and returns the contract-v1 events that bring the
// feed in line with the file, with deterministic ids.

// RosterMode says what a roster file means.
type RosterMode string

// The roster modes.
const (
	// RosterSnapshot: the file is the feed's whole roster. Active members missing
	// from it are leavers.
	RosterSnapshot RosterMode = "snapshot"
	// RosterDelta: the file lists changes, one per row, in an action column
	// (add or remove). Members not in the file are not touched.
	RosterDelta RosterMode = "delta"
)

// ParseRosterMode parses "snapshot" or "delta" (case-insensitive).
func ParseRosterMode(s string) (RosterMode, error) {
	switch m := RosterMode(strings.ToLower(strings.TrimSpace(s))); m {
	case RosterSnapshot, RosterDelta:
		return m, nil
	}
	return "", fmt.Errorf("unknown roster mode %q: want snapshot or delta", s)
}

// RosterAction is the action of one row of a delta roster.
type RosterAction string

// The actions of a delta roster. ParseRoster accepts add, hire and rehire for
// RosterAdd, and remove and leave for RosterRemove, in any case.
const (
	RosterAdd    RosterAction = "add"
	RosterRemove RosterAction = "remove"
)

// parseRosterAction maps the spellings of an action cell to an action.
func parseRosterAction(s string) (RosterAction, bool) {
	switch strings.ToLower(s) {
	case "add", "hire", "rehire":
		return RosterAdd, true
	case "remove", "leave":
		return RosterRemove, true
	}
	return "", false
}

// The limits of ParseRoster.
const (
	// DefaultMaxRosterRows is the largest number of data rows ParseRoster reads
	// when RosterOptions.MaxRows is zero.
	DefaultMaxRosterRows = 1_000_000
	// DefaultMaxRosterErrors is how many RosterErrors ParseRoster keeps when
	// RosterOptions.MaxErrors is zero; the rest are only counted.
	DefaultMaxRosterErrors = 100
	// DefaultRosterProgressEvery is how often, in rows, RosterOptions.Progress is
	// called when RosterOptions.ProgressEvery is zero.
	DefaultRosterProgressEvery = 10_000
	// maxHeaderLine is the longest header line the delimiter detection reads.
	maxHeaderLine = 64 << 10
)

// The contract fields a roster column can map to, in contract order.
const (
	fieldWorkerID         = "worker_id"
	fieldEmail            = "email"
	fieldGivenName        = "given_name"
	fieldFamilyName       = "family_name"
	fieldEmployeeNumber   = "employee_number"
	fieldOrgUnit          = "org_unit"
	fieldJobTitle         = "job_title"
	fieldManagerID        = "manager_id"
	fieldLocale           = "locale"
	fieldEffective        = "effective"
	fieldTimezone         = "timezone"
	fieldReason           = "reason"
	fieldPreviousWorkerID = "previous_worker_id"
	fieldAction           = "action"
)

// RosterFields lists the contract fields a roster column can map to. action is
// the only one that is not a data field of the contract: it is the delta mode's
// add or remove.
var RosterFields = []string{
	fieldWorkerID, fieldEmail, fieldGivenName, fieldFamilyName, fieldEmployeeNumber,
	fieldOrgUnit, fieldJobTitle, fieldManagerID, fieldLocale, fieldEffective,
	fieldTimezone, fieldReason, fieldPreviousWorkerID, fieldAction,
}

// RosterIgnore is the mapping target that drops a column on purpose, e.g. a
// partner's column called "email" that holds something else.
const RosterIgnore = "-"

// RosterMapping maps the column names of a feed's roster files to contract fields.
//
// Keys are header names, matched case-insensitively after trimming spaces; values
// are contract fields (RosterFields) or RosterIgnore. A header the mapping does not
// name, but that is itself a contract field name (worker_id, email, ...), maps to
// that field, so DefaultRosterMapping is implied by every mapping. Several headers
// may map to one field (alternative spellings), but one file may use only one of
// them. Columns that map to nothing are ignored and listed in Roster.Ignored.
type RosterMapping struct {
	Columns map[string]string `yaml:"columns" json:"columns"`
}

// DefaultRosterMapping returns the mapping whose header names are the contract
// field names themselves.
func DefaultRosterMapping() RosterMapping {
	m := RosterMapping{Columns: make(map[string]string, len(RosterFields))}
	for _, f := range RosterFields {
		m.Columns[f] = f
	}
	return m
}

// Validate checks the mapping and names every bad entry: an empty header name,
// an unknown target field, or two keys that are the same header.
func (m RosterMapping) Validate() error {
	var errs []string
	seen := map[string]string{}
	for _, key := range slices.Sorted(maps.Keys(m.Columns)) {
		target := m.Columns[key]
		norm := normHeader(key)
		switch {
		case norm == "":
			errs = append(errs, fmt.Sprintf("column %q: the header name is empty", key))
		case target != RosterIgnore && !slices.Contains(RosterFields, target):
			errs = append(errs, fmt.Sprintf("column %q maps to unknown field %q (known: %s, or %q to ignore it)", key, target, strings.Join(RosterFields, ", "), RosterIgnore))
		}
		if other, dup := seen[norm]; dup && norm != "" {
			errs = append(errs, fmt.Sprintf("columns %q and %q are the same header (names are case-insensitive)", other, key))
		}
		seen[norm] = key
	}
	if len(errs) > 0 {
		return fmt.Errorf("roster mapping: %s", strings.Join(errs, "; "))
	}
	return nil
}

// normHeader is how header names are compared.
func normHeader(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// resolver maps header names to fields under a mapping.
type resolver map[string]string

func newResolver(m RosterMapping) resolver {
	r := make(resolver, len(m.Columns))
	for k, v := range m.Columns {
		r[normHeader(k)] = v
	}
	return r
}

// field returns the contract field of header h, or "" if it maps to none.
func (r resolver) field(h string) string {
	n := normHeader(h)
	if t, ok := r[n]; ok {
		if t == RosterIgnore {
			return ""
		}
		return t
	}
	if slices.Contains(RosterFields, n) {
		return n
	}
	return ""
}

// RosterOptions controls ParseRoster.
type RosterOptions struct {
	// Mode is RosterSnapshot or RosterDelta. Required: there is no default,
	// because a delta file read as a snapshot would make leavers of everyone
	// it does not list.
	Mode RosterMode
	// DefaultEffective is the effective of rows with no effective value, and of
	// snapshot leavers and profile updates: an RFC 3339 date (2026-12-01, in the
	// feed's zone) or date-time with offset. Empty means the upload date in the
	// feed's zone (UploadInfo.Time), which is what you want for most uploads.
	DefaultEffective string
	// MaxRows limits the data rows of one file; zero means DefaultMaxRosterRows.
	MaxRows int
	// MaxErrors limits the RosterErrors kept; zero means DefaultMaxRosterErrors.
	// Every error is counted either way.
	MaxErrors int
	// Delimiter forces the field delimiter of a CSV file. Zero means: detect
	// comma, semicolon or tab from the header line.
	Delimiter rune
	// Format is RosterFormatCSV, RosterFormatXLSX, or RosterFormatAuto (also
	// ""): an XLSX file is a zip archive, told by its first bytes.
	Format string
	// Encoding is the text encoding of a CSV file (RosterEncodings); "" is
	// EncodingAuto. A byte order mark always wins.
	Encoding string
	// Sheet is the worksheet of an XLSX file to read; "" is the first.
	Sheet string
	// DateFormats are Go layouts (02.01.2006) the effective column may use
	// besides RFC 3339; a value two of them read as different dates is a
	// problem, never a guess. CheckDateFormats checks them.
	DateFormats []string
	// SkipInvalid applies the valid rows of a file and reports the others,
	// instead of refusing the whole file for one bad row. Only StreamRoster
	// takes it: in a snapshot, a person whose row is invalid is unknown, not
	// absent, and only the stream's planner knows whom to keep.
	SkipInvalid bool
	// Progress, if set, is called with the number of data rows read so far every
	// ProgressEvery rows, and once more with the total at the end.
	Progress func(rows int)
	// ProgressEvery is the interval of Progress in rows; zero means
	// DefaultRosterProgressEvery.
	ProgressEvery int
}

// RosterRow is one data row of a roster file, trimmed and validated. The embedded
// Data holds the contract fields; an empty field was not stated.
type RosterRow struct {
	// Line is the physical line of the file the row starts on (1 is the header).
	Line int `json:"line"`
	// Action is the row's action in delta mode; empty in snapshot mode.
	Action RosterAction `json:"action,omitempty"`
	Data
}

// RosterColumn is one column of the header that maps to a contract field.
type RosterColumn struct {
	Header string `json:"header"`
	Field  string `json:"field"`
}

// Roster is a parsed, validated roster file.
type Roster struct {
	Mode RosterMode `json:"mode"`
	// Rows are the data rows in file order. Rows with only empty cells are skipped.
	Rows []RosterRow `json:"rows"`
	// Delimiter is the field delimiter that was used.
	Delimiter rune `json:"delimiter"`
	// BOM says whether the file started with a byte order mark (UTF-8 or UTF-16).
	BOM bool `json:"bom"`
	// Format is csv or xlsx; Encoding the text encoding a CSV file was read in;
	// Sheet the worksheet an XLSX file was read from.
	Format   string `json:"format"`
	Encoding string `json:"encoding,omitempty"`
	Sheet    string `json:"sheet,omitempty"`
	// Problems are the rows not applied, when RosterOptions.SkipInvalid is set
	// (the first MaxErrors of them; ProblemsTotal counts all), and Invalid how
	// many rows they are.
	Problems      []RosterError `json:"problems,omitempty"`
	ProblemsTotal int           `json:"problems_total,omitempty"`
	Invalid       int           `json:"invalid,omitempty"`
	// Columns are the header's columns that map to contract fields, in file order;
	// Ignored are the header names that map to nothing.
	Columns []RosterColumn `json:"columns"`
	Ignored []string       `json:"ignored,omitempty"`
	// SHA256 is the hex SHA-256 of the file's bytes; Bytes is its size.
	SHA256 string `json:"sha256"`
	Bytes  int64  `json:"bytes"`
	// DefaultEffective is RosterOptions.DefaultEffective.
	DefaultEffective string `json:"default_effective,omitempty"`

	// checked is set by ParseRoster: Events validates the rows of a Roster built
	// any other way.
	checked bool
}

// RosterError is one problem with a roster file. Line is the physical line of the
// file (1 is the header line); zero means the file as a whole. Field is the
// contract field, Column the header it came from, when the problem has one.
type RosterError struct {
	Line   int    `json:"line,omitempty"`
	Field  string `json:"field,omitempty"`
	Column string `json:"column,omitempty"`
	Reason string `json:"reason"`
	// Fix says how to correct the file, for the person who keeps it.
	Fix string `json:"fix,omitempty"`
	// WorkerID is the worker the row names, when it names one validly; Effect
	// what became of the row when the valid rows were applied without it.
	WorkerID string `json:"worker_id,omitempty"`
	Effect   string `json:"effect,omitempty"`
}

// Error returns e.g. "line 17: email 'bob@' is not an address", with
// " (column E-Mail)" appended when the header is not the field's own name.
func (e RosterError) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteByte(' ')
	}
	b.WriteString(e.Reason)
	if e.Column != "" && normHeader(e.Column) != e.Field {
		fmt.Fprintf(&b, " (column %s)", e.Column)
	}
	return b.String()
}

// RosterErrors is what ParseRoster (and Events) return when a file is rejected.
// errors.As(err, new(*RosterErrors)) finds it; errors.As(err, new(RosterError))
// finds the first problem.
type RosterErrors struct {
	// Errors are the first problems, in file order (file-level ones may come last).
	Errors []RosterError `json:"errors"`
	// Total counts every problem, including those not kept in Errors.
	Total int `json:"total"`
	// Rows is the number of data rows read.
	Rows int `json:"rows"`
}

// Error lists the kept problems, one a line, and how many more there are.
func (e *RosterErrors) Error() string {
	var b strings.Builder
	if e.Total == 1 && len(e.Errors) == 1 {
		return "roster: " + e.Errors[0].Error()
	}
	fmt.Fprintf(&b, "roster: %d problems", e.Total)
	for _, re := range e.Errors {
		b.WriteString("\n")
		b.WriteString(re.Error())
	}
	if more := e.Total - len(e.Errors); more > 0 {
		fmt.Fprintf(&b, "\n… and %d more", more)
	}
	return b.String()
}

// Unwrap returns the kept problems as errors.
func (e *RosterErrors) Unwrap() []error {
	out := make([]error, len(e.Errors))
	for i, re := range e.Errors {
		out[i] = re
	}
	return out
}

// errList collects RosterErrors up to a limit.
type errList struct {
	RosterErrors
	max int
}

func (l *errList) add(e RosterError) {
	if e.Fix == "" {
		e.Fix = fixFor(e.Field)
	}
	if e.Fix == "" {
		e.Fix = "Correct what the problem names in the file, and upload it again"
	}
	l.Total++
	if len(l.Errors) < l.max {
		l.Errors = append(l.Errors, e)
	}
}

func (l *errList) err(rows int) error {
	if l.Total == 0 {
		return nil
	}
	l.Rows = rows
	e := l.RosterErrors
	return &e
}

// ParseRoster reads a roster file and validates every row before it returns.
//
// The file is CSV as in RFC 4180 (quotes must balance; a quote inside a field is
// doubled), UTF-8 with or without a byte order mark. The first line is the header.
// The delimiter is a comma or a semicolon: whichever separates more columns that
// the mapping knows, comma on a tie (opts.Delimiter overrides). Cells are trimmed;
// an empty cell means "not stated".
//
// The rows are checked against the same rules as the event contract (lengths,
// characters, email, locale, effective and timezone parsing). Every problem is
// collected; if there is any, the error is a *RosterErrors and the Roster is nil.
// A reader error is returned as it is, wrapped.
//
// The file is read once, as a stream; only the parsed rows are kept. StreamRoster
// reads it without keeping them.
func ParseRoster(r io.Reader, m RosterMapping, opts RosterOptions) (*Roster, error) {
	if opts.SkipInvalid {
		return nil, errors.New("roster: SkipInvalid needs StreamRoster: only it keeps the people of invalid rows")
	}
	p, err := newRosterParser(m, opts)
	if err != nil {
		return nil, err
	}
	var rows []RosterRow
	ro, err := p.parse(r, func(row RosterRow) error {
		rows = append(rows, row)
		return nil
	})
	if err != nil {
		return nil, err
	}
	ro.Rows = rows
	return ro, nil
}

// newRosterParser checks the mapping and the options.
func newRosterParser(m RosterMapping, opts RosterOptions) (*rosterParser, error) {
	if opts.Mode != RosterSnapshot && opts.Mode != RosterDelta {
		return nil, fmt.Errorf("roster: mode %q: want %s or %s", opts.Mode, RosterSnapshot, RosterDelta)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if opts.Delimiter != 0 && (opts.Delimiter == '"' || opts.Delimiter == '\r' || opts.Delimiter == '\n' || !utf8.ValidRune(opts.Delimiter) || opts.Delimiter == utf8.RuneError) {
		return nil, fmt.Errorf("roster: delimiter %q is not usable", opts.Delimiter)
	}
	p := &rosterParser{
		opts:    opts,
		mapping: m,
		res:     newResolver(m),
		errs:    errList{max: orDefault(opts.MaxErrors, DefaultMaxRosterErrors)},
		hash:    sha256.New(),
	}
	var err error
	if p.format, err = ParseRosterFormat(opts.Format); err != nil {
		return nil, fmt.Errorf("roster: %w", err)
	}
	if p.encoding, err = ParseRosterEncoding(opts.Encoding); err != nil {
		return nil, fmt.Errorf("roster: %w", err)
	}
	if err := CheckDateFormats(opts.DateFormats); err != nil {
		return nil, fmt.Errorf("roster: %w", err)
	}
	p.dates = dateReader{layouts: opts.DateFormats}
	p.maxRows = orDefault(opts.MaxRows, DefaultMaxRosterRows)
	p.every = orDefault(opts.ProgressEvery, DefaultRosterProgressEvery)
	if opts.DefaultEffective != "" {
		if reason := checkEffective(opts.DefaultEffective); reason != "" {
			return nil, fmt.Errorf("roster: default effective %s", reason)
		}
	}
	return p, nil
}

// orDefault returns v, or def if v is zero or less.
func orDefault(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// countingReader counts and hashes what passes through it.
type countingReader struct {
	r io.Reader
	h hash.Hash
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	c.h.Write(b[:n])
	return n, err
}

type rosterParser struct {
	opts     RosterOptions
	mapping  RosterMapping
	res      resolver
	errs     errList
	hash     hash.Hash
	maxRows  int
	every    int
	format   string
	encoding string
	dates    dateReader

	src  recordSource
	xlsx *xlsxSource // set while an XLSX file is read: its date cells are serial numbers
	// enc is the encoding a CSV file is read in; a U+FFFD in a cell of a
	// transcoded file is a byte that encoding does not have.
	enc string
	// rows counts the data rows read, invalid those with a problem; fatal is
	// set by a problem of the file as a whole, which no row can make up for.
	rows, invalid int
	fatal         bool
	// onInvalid, if set, learns who an invalid row may be, and says what became
	// of the row (RosterError.Effect).
	onInvalid func(rowIdentity) string
}

// rowIdentity is what an invalid row says of its person, in the cells that are
// valid on their own: it may still be enough to know whom the row is about.
type rowIdentity struct {
	workerID, previousID, email, employeeNumber string
}

// fail adds a problem of the file as a whole.
func (p *rosterParser) fail(e RosterError) {
	p.fatal = true
	p.errs.add(e)
}

// reject counts one invalid row whose problems were added since mark, and
// tells onInvalid who it may be.
func (p *rosterParser) reject(mark int, id rowIdentity) {
	p.invalid++
	effect := "not applied"
	if p.onInvalid != nil {
		effect = p.onInvalid(id)
	}
	for i := min(mark, len(p.errs.Errors)); i < len(p.errs.Errors); i++ {
		p.errs.Errors[i].WorkerID, p.errs.Errors[i].Effect = id.workerID, effect
	}
}

// identity reads the identifying cells of a record that has a problem.
func (p *rosterParser) identity(rec []string, cols []column) rowIdentity {
	var id rowIdentity
	for _, c := range cols {
		if c.index >= len(rec) {
			continue
		}
		v := strings.TrimSpace(rec[c.index])
		if v == "" || !utf8.ValidString(v) || (p.enc != EncodingUTF8 && strings.ContainsRune(v, utf8.RuneError)) {
			continue
		}
		switch c.field {
		case fieldWorkerID, fieldPreviousWorkerID:
			if checkField(c.field, v) != "" {
				continue
			}
			if c.field == fieldWorkerID {
				id.workerID = v
			} else {
				id.previousID = v
			}
		case fieldEmail:
			id.email = strings.ToLower(v)
		case fieldEmployeeNumber:
			id.employeeNumber = v
		}
	}
	return id
}

// column is one mapped column of the file.
type column struct {
	index  int
	header string
	field  string
}

// idKey identifies a worker id by two seeded 64-bit hashes: a file of a million
// rows keeps a million of them to find duplicates, and a key must not hold on to
// the line its id was cut from (the id is a substring of it). A false duplicate
// needs a 128-bit collision under a random seed.
type idKey [2]uint64

// idKeys makes the idKeys of one file.
type idKeys struct{ a, b maphash.Seed }

func newIDKeys() idKeys { return idKeys{maphash.MakeSeed(), maphash.MakeSeed()} }

func (k idKeys) key(id string) idKey {
	return idKey{maphash.String(k.a, id), maphash.String(k.b, id)}
}

// parse reads the file and calls emit with each valid row, in file order. Rows
// that follow a problem are still emitted: the caller learns from the returned
// error (or p.errs.Total) whether the file as a whole is valid. An error from emit
// stops the read and is returned as it is.
func (p *rosterParser) parse(in io.Reader, emit func(RosterRow) error) (*Roster, error) {
	cr := &countingReader{r: in, h: p.hash}
	raw := bufio.NewReaderSize(cr, maxHeaderLine)
	ro := &Roster{Mode: p.opts.Mode, DefaultEffective: p.opts.DefaultEffective}
	magic, err := raw.Peek(len(zipMagic))
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("roster: read: %w", err)
	}
	format, problem := sniffFormat(p.format, magic)
	if problem != "" {
		p.fail(fileProblem(problem))
		return nil, p.errs.err(0)
	}
	ro.Format = format
	if format == RosterFormatXLSX {
		path, size, tmp, err := spoolXLSX(in, raw)
		if err != nil {
			return nil, fmt.Errorf("roster: read: %w", err)
		}
		xs, problem, err := openXLSX(path, size, p.opts.Sheet)
		if tmp {
			if xs != nil {
				xs.tmp = path
			} else {
				_ = os.Remove(path)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("roster: read: %w", err)
		}
		if problem != "" {
			p.fail(fileProblem(problem))
			return nil, p.errs.err(0)
		}
		defer xs.close()
		p.src, p.xlsx, p.enc = xs, xs, EncodingUTF8
		ro.Sheet = p.opts.Sheet
		if ro.Sheet == "" {
			ro.Sheet = xs.f.GetSheetList()[0]
		}
	} else if ok, err := p.openCSV(raw, ro); err != nil {
		return nil, fmt.Errorf("roster: read: %w", err)
	} else if !ok {
		return nil, p.errs.err(0)
	}

	header, err := p.src.next()
	for err == nil && blank(header) { // lines of spaces or bare delimiters before the header
		header, err = p.src.next()
	}
	if err != nil {
		var pe *csv.ParseError
		var xe *xlsxError
		switch {
		case errors.Is(err, errRecordTooLong):
			p.fail(recordTooLong(1))
		case err == io.EOF:
			p.fail(RosterError{Reason: "the file is empty: it has no header row and no rows"})
		case errors.As(err, &pe):
			p.fail(quoteError(pe)) // without a header the rows cannot be read
		case errors.As(err, &xe):
			p.fail(RosterError{Reason: "the file " + xe.reason})
		default:
			return nil, fmt.Errorf("roster: read: %w", err)
		}
		return nil, p.errs.err(0)
	}
	headerLine := p.src.line(0)
	cols, ok := p.header(header, headerLine, ro)
	if !ok {
		p.fatal = true
		return nil, p.errs.err(0)
	}
	width := len(header)
	byField := map[string]column{}
	for _, c := range cols {
		byField[c.field] = c
	}
	if p.opts.Mode == RosterSnapshot {
		if c, ok := byField[fieldAction]; ok {
			p.fail(RosterError{Line: headerLine, Field: fieldAction, Column: c.header, Reason: "column is not allowed in a snapshot: is this a delta file? A delta read as a snapshot would make a leaver of everyone it does not list",
				Fix: "Upload the file as a delta, or remove the action column"})
		}
	}

	keys := newIDKeys()
	seen := make(map[idKey]int)
	lastLine := headerLine
	firstAddLine := 0
	rows, broken := 0, 0
	for {
		rec, err := p.src.next()
		if err == io.EOF {
			break
		}
		if errors.Is(err, errRecordTooLong) {
			p.fail(recordTooLong(lastLine + 1))
			return nil, p.errs.err(rows) // the rest cannot be told apart from that record
		}
		var xe *xlsxError
		if errors.As(err, &xe) {
			p.fail(RosterError{Line: lastLine + 1, Reason: xe.reason + ": the rest of the sheet was not read", Fix: "Open the file in Excel and save it again"})
			return nil, p.errs.err(rows)
		}
		if err != nil {
			var pe *csv.ParseError
			if !errors.As(err, &pe) {
				return nil, fmt.Errorf("roster: read: %w", err)
			}
			mark := len(p.errs.Errors)
			p.errs.add(quoteError(pe))
			if p.opts.SkipInvalid {
				broken++                      // a row, but not one of MaxRows: it keeps nothing
				p.reject(mark, rowIdentity{}) // who it is cannot be told
			}
			continue
		}
		line := p.src.line(0)
		lastLine = line
		if blank(rec) {
			continue
		}
		rows++
		if rows > p.maxRows {
			p.fail(RosterError{Line: line, Reason: fmt.Sprintf("the file has more than %d rows, the limit of one upload: split it", p.maxRows)})
			break
		}
		if p.opts.Progress != nil && rows%p.every == 0 {
			p.opts.Progress(rows)
		}
		if p.xlsx != nil && len(rec) < width { // Excel leaves out a row's empty cells at its end
			rec = append(rec, make([]string, width-len(rec))...)
		}
		mark := len(p.errs.Errors)
		if len(rec) != width {
			p.errs.add(RosterError{Line: line, Reason: fmt.Sprintf("has %d fields, but the header has %d", len(rec), width),
				Fix: "Give the row exactly one cell per column of the first line; a cell that holds the delimiter must be in quotes"})
			p.reject(mark, p.identity(rec, cols))
			continue
		}
		row, ok := p.row(rec, line, cols)
		if row.WorkerID != "" { // also for a row with other problems: report all of them
			k := keys.key(row.WorkerID)
			if prev, dup := seen[k]; dup {
				c := byField[fieldWorkerID]
				p.errs.add(RosterError{Line: line, Field: fieldWorkerID, Column: c.header, Reason: fmt.Sprintf("'%s' appears again: it is on line %d too", clip(row.WorkerID), prev),
					Fix: fmt.Sprintf("Keep one row per person: merge this row with line %d (that row was used)", prev)})
				ok = false
			} else {
				seen[k] = line
			}
		}
		if !ok {
			p.reject(mark, p.identity(rec, cols))
			continue
		}
		if row.Action == RosterAdd && firstAddLine == 0 {
			firstAddLine = line
		}
		if err := emit(row); err != nil {
			return nil, err
		}
	}
	p.rows = rows + broken
	if p.opts.Progress != nil && rows%p.every != 0 {
		p.opts.Progress(rows)
	}
	if _, ok := byField[fieldEmail]; !ok && firstAddLine > 0 {
		p.fail(RosterError{Line: headerLine, Field: "header", Reason: fmt.Sprintf("has no email column, which rows that add a worker need (line %d is the first)", firstAddLine)})
	}
	if rows == 0 && p.errs.Total == 0 {
		reason := "the file has a header but no rows"
		if p.opts.Mode == RosterSnapshot {
			reason += ": an empty snapshot would mean that everyone left"
		}
		p.fail(RosterError{Reason: reason})
	}
	if p.opts.SkipInvalid && !p.fatal && p.rows > 0 && p.invalid >= p.rows {
		p.fail(RosterError{Reason: fmt.Sprintf("no row of the file can be applied: all %d have a problem", p.rows), Fix: "Correct the rows listed here and upload the file again"})
	}
	if p.fatal || (!p.opts.SkipInvalid && p.errs.Total > 0) {
		return nil, p.errs.err(rows)
	}
	if p.errs.Total > 0 {
		ro.Problems, ro.ProblemsTotal, ro.Invalid = p.errs.Errors, p.errs.Total, p.invalid
	}
	ro.SHA256 = hex.EncodeToString(p.hash.Sum(nil))
	ro.Bytes = cr.n
	ro.checked = true
	return ro, nil
}

// fileProblem is a problem of the file as a whole, from a reason that ends in
// advice after its last ": ", which becomes the fix.
func fileProblem(problem string) RosterError {
	e := RosterError{Reason: "the file " + problem, Fix: "Open the file in Excel and save it again as \"CSV UTF-8\" or \"Excel Workbook (*.xlsx)\""}
	if i := strings.LastIndex(problem, ": "); i >= 0 {
		advice := problem[i+2:]
		e.Fix = strings.ToUpper(advice[:1]) + advice[1:]
	}
	return e
}

// openCSV detects the encoding of a CSV file and its delimiter, and sets p.src
// to read its records as UTF-8. False: a problem of the file, in p.errs; an
// error is the reader's.
func (p *rosterParser) openCSV(raw *bufio.Reader, ro *Roster) (bool, error) {
	head, err := raw.Peek(maxHeaderLine)
	if err != nil && err != io.EOF && !errors.Is(err, bufio.ErrBufferFull) {
		return false, err
	}
	enc, bom, problem := detectEncoding(p.encoding, head, err == io.EOF)
	if problem != "" {
		p.fail(fileProblem(problem))
		return false, nil
	}
	ro.Encoding, ro.BOM, p.enc = enc, bom > 0, enc
	_, _ = raw.Discard(bom)
	br := bufio.NewReaderSize(decoder(enc, raw), maxHeaderLine)
	head, err = br.Peek(maxHeaderLine)
	if err != nil && err != io.EOF && !errors.Is(err, bufio.ErrBufferFull) {
		return false, err
	}
	if len(bytes.TrimSpace(head)) == 0 {
		p.fail(RosterError{Reason: "the file is empty: it has no header row and no rows"})
		return false, nil
	}
	full := len(head) == maxHeaderLine
	for { // the header is the first line that is not blank, as for encoding/csv
		i := bytes.IndexByte(head, '\n')
		if i < 0 || len(bytes.TrimSpace(head[:i])) > 0 {
			break
		}
		head = head[i+1:]
	}
	if i := bytes.IndexByte(head, '\n'); i >= 0 {
		head = head[:i]
	} else if full {
		p.fail(RosterError{Line: 1, Field: "header", Reason: fmt.Sprintf("the first line is longer than %d bytes: is this a CSV file?", maxHeaderLine)})
		return false, nil
	}
	ro.Delimiter = p.opts.Delimiter
	if ro.Delimiter == 0 {
		ro.Delimiter = p.detectDelimiter(head)
	}
	lim := &recordLimiter{r: br}
	rd := csv.NewReader(lim)
	rd.Comma = ro.Delimiter
	rd.FieldsPerRecord = -1 // checked here, so that parsing goes on after a short row
	rd.ReuseRecord = true
	p.src = &csvSource{lim: lim, rd: rd}
	return true, nil
}

// maxRecordBytes bounds one record: a row, with every line a quoted field of it
// spans. encoding/csv holds a record whole, so without a bound a quote that is
// never closed would make it hold the rest of the file.
const maxRecordBytes = 1 << 20

var errRecordTooLong = errors.New("record too long")

// recordLimiter fails a read once more than maxRecordBytes (plus the csv
// reader's read-ahead) have been read since the last record.
type recordLimiter struct {
	r io.Reader
	n int
}

func (l *recordLimiter) Read(b []byte) (int, error) {
	if l.n > maxRecordBytes {
		return 0, errRecordTooLong
	}
	n, err := l.r.Read(b)
	l.n += n
	return n, err
}

// next reads one record and starts the count of the next.
func (l *recordLimiter) next(rd *csv.Reader) ([]string, error) {
	rec, err := rd.Read()
	l.n = 0
	return rec, err
}

func recordTooLong(line int) RosterError {
	return RosterError{Line: line, Reason: fmt.Sprintf("the row starting here is longer than %d bytes: is a quote not closed? The rest of the file was not read", maxRecordBytes),
		Fix: "Close the quote that this row opens (a quote inside a cell is written twice), or remove it"}
}

// detectDelimiter picks comma, semicolon or tab: whichever splits the header
// line into more columns the mapping knows; then whichever splits it into more
// cells; then in that order. The split is naive (quotes are only stripped from
// cells), which is enough for header names.
func (p *rosterParser) detectDelimiter(head []byte) rune {
	line := strings.TrimSuffix(string(head), "\r")
	score := func(sep string) (known, cells int) {
		parts := strings.Split(line, sep)
		for _, c := range parts {
			c = strings.Trim(strings.TrimSpace(c), `"`)
			if p.res.field(c) != "" {
				known++
			}
		}
		return known, len(parts)
	}
	best, bk, bc := ',', -1, -1
	for _, sep := range []rune{',', ';', '\t'} {
		k, c := score(string(sep))
		if k > bk || (k == bk && c > bc) {
			best, bk, bc = sep, k, c
		}
	}
	return best
}

// header maps the header row to columns and reports what is wrong with it.
func (p *rosterParser) header(rec []string, line int, ro *Roster) ([]column, bool) {
	for i, h := range rec {
		if reason, fix := p.badBytes(h); reason != "" {
			p.errs.add(RosterError{Line: line, Field: "header", Reason: fmt.Sprintf("column %d %s", i+1, reason), Fix: fix})
			return nil, false
		}
	}
	var cols []column
	byField := map[string]column{}
	for i, h := range rec {
		f := p.res.field(h)
		if f == "" {
			if strings.TrimSpace(h) != "" {
				ro.Ignored = append(ro.Ignored, strings.TrimSpace(h))
			}
			continue
		}
		c := column{index: i, header: strings.TrimSpace(h), field: f}
		if other, dup := byField[f]; dup {
			p.errs.add(RosterError{Line: line, Field: "header", Reason: fmt.Sprintf("columns '%s' and '%s' both map to %s", clip(other.header), clip(c.header), f)})
			continue
		}
		byField[f] = c
		cols = append(cols, c)
		ro.Columns = append(ro.Columns, RosterColumn{Header: c.header, Field: f})
	}
	if len(cols) == 0 {
		p.errs.add(RosterError{Line: line, Field: "header", Reason: fmt.Sprintf("is missing: no column of the first line ('%s') is a known column; the first line must name the columns, e.g. worker_id, email", clip(strings.Join(rec, string(ro.Delimiter))))})
		return nil, false
	}
	required := []string{fieldWorkerID}
	switch p.opts.Mode {
	case RosterSnapshot:
		required = append(required, fieldEmail) // any row may be a new hire
	case RosterDelta:
		required = append(required, fieldAction)
	}
	for _, f := range required {
		if _, ok := byField[f]; !ok {
			p.errs.add(RosterError{Line: line, Field: "header", Reason: fmt.Sprintf("has no %s column (%s)", f, p.namesFor(f))})
		}
	}
	return cols, p.errs.Total == 0
}

// namesFor says which header names map to field f, for an error message.
func (p *rosterParser) namesFor(f string) string {
	var names []string
	for k, v := range p.mapping.Columns {
		if v == f {
			names = append(names, "'"+strings.TrimSpace(k)+"'")
		}
	}
	if _, ok := p.res[f]; !ok {
		names = append(names, "'"+f+"'")
	}
	slices.Sort(names)
	return "a column named " + strings.Join(names, " or ")
}

// quoteError turns a CSV syntax error into a RosterError.
func quoteError(pe *csv.ParseError) RosterError {
	const fix = `Put quotes around a cell that holds a quote, the delimiter or a line break, and write each quote inside it twice: "5"" screen"`
	switch {
	case errors.Is(pe.Err, csv.ErrBareQuote):
		return RosterError{Line: pe.Line, Reason: fmt.Sprintf(`has a " inside an unquoted field (column %d): quote the whole field and double the quote, e.g. "5"" screen"`, pe.Column), Fix: fix}
	case errors.Is(pe.Err, csv.ErrQuote) && pe.Line != pe.StartLine:
		return RosterError{Line: pe.StartLine, Reason: fmt.Sprintf("has unbalanced quotes: a quoted field opened on this line is not closed properly (the parser gave up on line %d)", pe.Line), Fix: fix}
	case errors.Is(pe.Err, csv.ErrQuote):
		return RosterError{Line: pe.StartLine, Reason: fmt.Sprintf(`has unbalanced quotes: a quoted field is not closed, or text follows its closing quote (column %d); a " inside a quoted field is written ""`, pe.Column), Fix: fix}
	}
	line := pe.StartLine
	if line < 1 {
		line = max(pe.Line, 1)
	}
	return RosterError{Line: line, Reason: "is not valid CSV: " + pe.Err.Error(), Fix: fix}
}

// blank reports whether every cell of rec is empty or spaces.
func blank(rec []string) bool {
	for _, c := range rec {
		if strings.TrimSpace(c) != "" {
			return false
		}
	}
	return true
}

// badBytes says why a cell's bytes are not text in the file's encoding, and
// how to fix it; "" if they are.
func (p *rosterParser) badBytes(c string) (reason, fix string) {
	switch {
	case !utf8.ValidString(c):
		return "is not valid UTF-8: the file may be Windows-1252 or ISO-8859-1",
			"Save the file from Excel as \"CSV UTF-8\", or set the feed's encoding to windows-1252"
	case p.enc != EncodingUTF8 && strings.ContainsRune(c, utf8.RuneError):
		return fmt.Sprintf("has bytes that are not valid %s (shown as \uFFFD)", encodingName(p.enc)),
			"Save the file from Excel as \"CSV UTF-8\", or check the feed's encoding setting"
	}
	return "", ""
}

// row reads and validates one record.
func (p *rosterParser) row(rec []string, line int, cols []column) (RosterRow, bool) {
	for i, c := range rec {
		if reason, fix := p.badBytes(c); reason != "" {
			// The encoding is wrong for the file, so the text of its other rows
			// may be wrong too ("MÃ¼ller"): the file is refused, not the row.
			p.fail(RosterError{Line: p.src.line(i), Reason: fmt.Sprintf("field %d %s", i+1, reason), Fix: fix})
			return RosterRow{}, false
		}
	}
	row := RosterRow{Line: line}
	ok := true
	for _, c := range cols {
		v := strings.TrimSpace(rec[c.index])
		if v == "" {
			continue
		}
		reason, fix := "", ""
		switch c.field {
		case fieldAction:
			a, valid := parseRosterAction(v)
			if !valid {
				reason = fmt.Sprintf("'%s' is not add or remove", clip(v))
			}
			row.Action = a
		case fieldEffective:
			if d, serial := p.serialDate(v); serial {
				v = d
			}
			if d, why, how := p.dates.read(v); why != "" {
				reason, fix = why, how
			} else {
				v = d
			}
			setField(&row.Data, c.field, v)
		default:
			reason = checkField(c.field, v)
			setField(&row.Data, c.field, v)
		}
		if reason != "" {
			p.errs.add(RosterError{Line: p.src.line(c.index), Field: c.field, Column: c.header, Reason: reason, Fix: fix})
			ok = false
		}
	}
	if row.WorkerID == "" {
		p.errs.add(RosterError{Line: line, Field: fieldWorkerID, Column: colHeader(cols, fieldWorkerID), Reason: "is required"})
		ok = false
	}
	if p.opts.Mode == RosterDelta && ok {
		switch {
		case row.Action == "":
			p.errs.add(RosterError{Line: line, Field: fieldAction, Column: colHeader(cols, fieldAction), Reason: "is required: add or remove"})
			ok = false
		case row.Action == RosterAdd && row.Email == "" && colHeader(cols, fieldEmail) != "":
			p.errs.add(RosterError{Line: line, Field: fieldEmail, Column: colHeader(cols, fieldEmail), Reason: "is required to add a worker"})
			ok = false
		}
	}
	return row, ok
}

// serialDate reads a date cell of an XLSX file, which Excel stores as a
// serial number; ok is false for a CSV file and for any other value.
func (p *rosterParser) serialDate(v string) (string, bool) {
	if p.xlsx == nil {
		return "", false
	}
	return p.xlsx.serialDate(v)
}

// fixFor is how to fix a problem of field, for the person who keeps the file,
// when the problem has no more particular advice.
func fixFor(field string) string {
	switch field {
	case fieldWorkerID, fieldManagerID, fieldPreviousWorkerID:
		return "Write the person's id from your own system: no spaces, at most 128 characters"
	case fieldEmail:
		return "Write one full e-mail address, such as name@example.com"
	case fieldGivenName, fieldFamilyName, fieldEmployeeNumber, fieldOrgUnit, fieldJobTitle:
		return "Write the text on one line, without line breaks or special characters, at most 256 characters"
	case fieldLocale:
		return "Write a language code such as de-DE, en or fr-CH"
	case fieldEffective:
		return "Write the date as year-month-day, e.g. 2026-12-31"
	case fieldTimezone:
		return "Write a time zone name such as Europe/Berlin, or leave the cell empty"
	case fieldReason:
		return "Write the reason as plain text, at most 1024 characters"
	case fieldAction:
		return "Write add or remove"
	case "header":
		return "Correct the first line of the file, which names the columns"
	}
	return ""
}

// colHeader returns the header of the column that maps to field, or "".
func colHeader(cols []column, field string) string {
	for _, c := range cols {
		if c.field == field {
			return c.header
		}
	}
	return ""
}

// setField sets one contract field of d.
func setField(d *Data, field, v string) {
	switch field {
	case fieldWorkerID:
		d.WorkerID = v
	case fieldEmail:
		d.Email = v
	case fieldGivenName:
		d.GivenName = v
	case fieldFamilyName:
		d.FamilyName = v
	case fieldEmployeeNumber:
		d.EmployeeNumber = v
	case fieldOrgUnit:
		d.OrgUnit = v
	case fieldJobTitle:
		d.JobTitle = v
	case fieldManagerID:
		d.ManagerID = v
	case fieldLocale:
		d.Locale = v
	case fieldEffective:
		d.Effective = v
	case fieldTimezone:
		d.Timezone = v
	case fieldReason:
		d.Reason = v
	case fieldPreviousWorkerID:
		d.PreviousWorkerID = v
	}
}

// rosterDefs are the contract's own definitions (the $defs of the v1 schemas) for
// the values whose rules are patterns or formats, so that a roster cell is
// accepted exactly when the same value in an event would be.
var rosterDefs = compileRosterDefs()

func compileRosterDefs() map[string]*jsonschema.Schema {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	for _, k := range []connector.Kind{connector.KindHired, connector.KindLeft} {
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(SchemaJSON(k)))
		if err != nil {
			panic(fmt.Sprintf("events: schema %s: %v", SchemaFile(k), err))
		}
		if err := c.AddResource(SchemaID(k), doc); err != nil {
			panic(fmt.Sprintf("events: schema %s: %v", SchemaFile(k), err))
		}
	}
	hired := SchemaID(connector.KindHired)
	return map[string]*jsonschema.Schema{
		fieldEmail:     c.MustCompile(hired + "#/$defs/email"),
		fieldLocale:    c.MustCompile(hired + "#/$defs/locale"),
		fieldEffective: c.MustCompile(hired + "#/$defs/effective"),
		fieldTimezone:  c.MustCompile(hired + "#/$defs/timezone"),
		fieldReason:    c.MustCompile(SchemaID(connector.KindLeft) + "#/properties/reason"),
	}
}

// checkField validates a non-empty, trimmed cell for field and returns why it is
// wrong, or "". The rules are the contract's, the character rule included;
// identifiers are held a little
// stricter (no Unicode spaces or C1 controls), because they become the event's
// subject attribute.
func checkField(field, v string) string {
	// The character rule of the contract (text.go) comes first, so that the reason
	// names the character: no bidi control, zero-width or other format character
	// in any field, line breaks only in a reason. A plain control character keeps
	// the field's own message below.
	if p := badText(v, field == fieldReason); p != "" && !hasControl(v) {
		return p
	}
	switch field {
	case fieldWorkerID, fieldManagerID, fieldPreviousWorkerID:
		if n := utf8.RuneCountInString(v); n > 128 {
			return fmt.Sprintf("is %d characters, longer than the limit of 128", n)
		}
		for _, r := range v {
			if unicode.IsSpace(r) || r < 0x20 || (r >= 0x7f && r <= 0x9f) {
				return fmt.Sprintf("'%s' must not contain spaces or control characters", clip(v))
			}
		}
	case fieldGivenName, fieldFamilyName, fieldEmployeeNumber, fieldOrgUnit, fieldJobTitle:
		if n := utf8.RuneCountInString(v); n > 256 {
			return fmt.Sprintf("is %d characters, longer than the limit of 256", n)
		}
		if hasControl(v) {
			return fmt.Sprintf("'%s' contains a line break or control character", clip(v))
		}
	case fieldEmail:
		if rosterDefs[fieldEmail].Validate(v) != nil {
			return fmt.Sprintf("'%s' is not an address", clip(v))
		}
	case fieldLocale:
		if rosterDefs[fieldLocale].Validate(v) != nil {
			return fmt.Sprintf("'%s' is not a language tag such as de-DE", clip(v))
		}
	case fieldEffective:
		return checkEffective(v)
	case fieldTimezone:
		if rosterDefs[fieldTimezone].Validate(v) != nil {
			return fmt.Sprintf("'%s' is not an IANA time zone name such as Europe/Berlin", clip(v))
		}
		if _, err := loadLocation(v); err != nil {
			return fmt.Sprintf("'%s' is not an IANA time zone name such as Europe/Berlin", clip(v))
		}
	case fieldReason:
		if n := utf8.RuneCountInString(v); n > 1024 {
			return fmt.Sprintf("is %d characters, longer than the limit of 1024", n)
		}
		if rosterDefs[fieldReason].Validate(v) != nil {
			return fmt.Sprintf("'%s' contains a control character", clip(v))
		}
	}
	return ""
}

// checkEffective validates an effective value as the decoder does.
func checkEffective(v string) string {
	if rosterDefs[fieldEffective].Validate(v) != nil {
		return fmt.Sprintf("'%s' is not a date (2026-12-01) or a date-time with offset (2026-12-01T18:00:00+01:00)", clip(v))
	}
	if _, err := parseEffective(v, time.UTC); err != nil {
		return fmt.Sprintf("'%s' is not a date (2026-12-01) or a date-time with offset (2026-12-01T18:00:00+01:00)", clip(v))
	}
	return ""
}

// Member is one worker the feed knows, as the store's facts say at the upload
// time. The caller builds the list from the store (connector.Want per worker).
type Member struct {
	WorkerID string
	// Active: the worker's account is wanted active now, or a hire or rehire of
	// theirs is recorded and not yet due. A worker whose leave is recorded but
	// not yet due is still active. False means a leaver (inactive). Workers the
	// feed has never hired may be left out.
	Active bool
	// Profile is the worker's folded profile, to tell a changed row from an
	// unchanged one.
	Profile connector.Profile
}

// UploadInfo says which upload the events come from.
type UploadInfo struct {
	// SHA256 is the hex SHA-256 of the file (Roster.SHA256), kept in the summary.
	// It is deliberately not part of the event ids: see Events.
	SHA256 string
	// Time is when the file was uploaded: the CloudEvents time of every event,
	// and (as a date in the feed's zone) the default effective.
	Time time.Time
}

// RosterSummary counts what an upload does.
type RosterSummary struct {
	Mode   RosterMode `json:"mode"`
	SHA256 string     `json:"sha256,omitempty"`
	// Rows is the number of data rows in the file.
	Rows int `json:"rows"`
	// Active is the number of active members before the upload (the base of a
	// safeguard's percentage).
	Active int `json:"active"`
	// Hires, Rehires, Leavers and Updates count the events by kind.
	Hires   int `json:"hires"`
	Rehires int `json:"rehires"`
	Leavers int `json:"leavers"`
	Updates int `json:"updates"`
	// Unchanged counts rows that need no event: active and the same profile, or
	// (delta) a remove of someone who already left.
	Unchanged int `json:"unchanged"`
	// Skipped counts delta removes of workers the feed does not know; Notes says
	// which (the first DefaultMaxRosterErrors).
	Skipped int           `json:"skipped"`
	Notes   []RosterError `json:"notes,omitempty"`
	// Effective is the default effective the upload used (see RosterOptions).
	Effective string `json:"effective"`
	// With RosterOptions.SkipInvalid: Invalid counts the rows not applied
	// because of a problem; Problems lists the first of them (ProblemsTotal
	// counts all), each with its line, column, reason, fix and effect.
	Invalid       int           `json:"invalid"`
	Problems      []RosterError `json:"problems,omitempty"`
	ProblemsTotal int           `json:"problems_total,omitempty"`
	// Kept counts the active members of a snapshot whose only row is invalid:
	// unknown, not absent, so not leavers. Withheld counts the leavers a
	// snapshot did not make because some invalid row names no one hrsync can
	// recognise (any of them may be that row's person); Leavers is then 0.
	Kept     int `json:"kept"`
	Withheld int `json:"withheld"`
	// Format, Encoding and Delimiter say how the file was read.
	Format    string `json:"format,omitempty"`
	Encoding  string `json:"encoding,omitempty"`
	Delimiter string `json:"delimiter,omitempty"`
	Sheet     string `json:"sheet,omitempty"`
}

// Events returns the contract-v1 events that bring feed in line with the roster,
// given the feed's current members. It is pure: it neither reads nor writes
// anything, so a dry run prints what it returns.
//
// A row of someone the feed does not know is a hire (a rehire if the row names a
// previous_worker_id); of a leaver, a rehire; of an active member, an update if a
// stated profile field differs, else nothing. A delta remove of an active member
// is a leave. In snapshot mode every active member that no row names (as
// worker_id or previous_worker_id) is a leaver. Events come in file order, then
// the snapshot leavers by worker id.
//
// Hires, rehires and delta leaves take effect at the row's effective, or at the
// default effective (RosterOptions.DefaultEffective, else the upload date in the
// feed's zone). Updates and snapshot leaves always take effect at the default
// effective: they state what the upload says now.
//
// Event ids are deterministic: "roster-" and 32 hex digits of SHA-256 over the
// feed, the kind and every data field (effective included). They do not depend on
// the file's hash or the upload time. So the same file uploaded twice on the same
// day yields the same ids, and the store drops the second copy; an upload on a
// later day is a new statement and may produce a new leave. docs/rosters.md
// explains the consequences.
//
// A row that must hire or rehire without an email is an error (*RosterErrors).
func (r *Roster) Events(feed connector.Feed, current []Member, upload UploadInfo) ([]Event, RosterSummary, error) {
	pl, err := newRosterPlanner(r.Mode, r.DefaultEffective, feed, upload)
	pl.sum.SHA256, pl.sum.Rows = upload.SHA256, len(r.Rows)
	if err != nil {
		return nil, pl.sum, err
	}
	if !r.checked {
		errs := errList{max: DefaultMaxRosterErrors}
		r.check(&errs)
		if err := errs.err(len(r.Rows)); err != nil {
			return nil, pl.sum, err
		}
	}
	if err := pl.setMembers(current); err != nil {
		return nil, pl.sum, err
	}
	pl.describe(r)
	evs := make([]Event, 0, len(r.Rows)/8)
	add := func(e Event) error { evs = append(evs, e); return nil }
	for i := range r.Rows {
		_ = pl.row(&r.Rows[i], add)
	}
	if err := pl.errs.err(len(r.Rows)); err != nil {
		return nil, pl.sum, err
	}
	_ = pl.finish(add)
	return evs, pl.sum, nil
}

// StreamRoster reads a roster file as ParseRoster does and turns its rows into
// events as Roster.Events does, one row at a time: it keeps no rows, only a
// 16-byte key per worker id (to find duplicates) and a flag per current member.
// So its memory grows with the feed and by a few dozen bytes a row, not with
// the size of the file. The returned Roster has no Rows; the summary's SHA256 is
// the file's (upload.SHA256 is ignored: it is known only at the end).
//
// emit is called with each event, in the order Events returns them, as soon as
// the row that implies it has been read: before the rest of the file. So the file
// is valid only if StreamRoster returns no error, and a caller that acts on the
// events must keep them aside (spool them) until then, and drop them on error.
// After the first problem in the file, emit is not called again. An error from
// emit stops the read and is returned as it is.
//
// The errors are ParseRoster's, then Events's: a file with a problem ParseRoster
// finds reports only those, as the two steps would.
func StreamRoster(r io.Reader, m RosterMapping, opts RosterOptions, feed connector.Feed, current []Member,
	upload UploadInfo, emit func(Event) error) (*Roster, RosterSummary, error) {
	p, err := newRosterParser(m, opts)
	if err != nil {
		return nil, RosterSummary{Mode: opts.Mode}, err
	}
	pl, err := newRosterPlanner(opts.Mode, opts.DefaultEffective, feed, upload)
	if err != nil {
		return nil, pl.sum, err
	}
	if err := pl.setMembers(current); err != nil {
		return nil, pl.sum, err
	}
	skip := opts.SkipInvalid
	if skip {
		pl.skip = true
		pl.errs.max = p.errs.max
		p.onInvalid = pl.unknownRow
	}
	valid := func(e Event) error {
		if p.fatal || (!skip && (p.errs.Total > 0 || pl.errs.Total > 0)) {
			return nil // the file is refused: nobody will read the rest
		}
		return emit(e)
	}
	ro, err := p.parse(r, func(row RosterRow) error {
		if p.fatal || (!skip && p.errs.Total > 0) {
			return nil // only ParseRoster's problems are reported
		}
		pl.sum.Rows++
		return pl.row(&row, valid)
	})
	if err != nil {
		return nil, pl.sum, err
	}
	pl.sum.SHA256 = ro.SHA256
	pl.describe(ro)
	if !skip {
		if err := pl.errs.err(pl.sum.Rows); err != nil {
			return nil, pl.sum, err
		}
	} else {
		pl.sum.Rows = p.rows
		pl.sum.Invalid = p.invalid + pl.rejected
		pl.sum.Problems, pl.sum.ProblemsTotal = mergeProblems(ro.Problems, pl.errs.Errors, p.errs.max), ro.ProblemsTotal+pl.errs.Total
		if pl.sum.Invalid >= pl.sum.Rows {
			all := errList{max: p.errs.max}
			for _, e := range pl.sum.Problems {
				all.add(e)
			}
			all.Total = pl.sum.ProblemsTotal
			all.add(RosterError{Reason: fmt.Sprintf("no row of the file can be applied: all %d have a problem", pl.sum.Rows), Fix: "Correct the rows listed here and upload the file again"})
			return nil, pl.sum, all.err(pl.sum.Rows)
		}
	}
	if err := pl.finish(valid); err != nil {
		return nil, pl.sum, err
	}
	return ro, pl.sum, nil
}

// mergeProblems merges two lists of problems in line order, keeping at most max.
func mergeProblems(a, b []RosterError, max int) []RosterError {
	out := make([]RosterError, 0, min(len(a)+len(b), max))
	for len(out) < max && (len(a) > 0 || len(b) > 0) {
		if len(b) == 0 || (len(a) > 0 && a[0].Line <= b[0].Line) {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	return out
}

// rosterPlanner turns roster rows into events against the feed's current
// members. Events and StreamRoster share it, so that both decide alike.
type rosterPlanner struct {
	mode    RosterMode
	def     string
	current []Member
	members map[string]int
	// present (snapshot) says whether current[i] is named: 0 by no row,
	// namedValid by a valid row, namedInvalid only by rows with a problem.
	present []uint8
	sum     RosterSummary
	errs    errList
	g       eventGen

	// skip: invalid rows are reported, not fatal (RosterOptions.SkipInvalid).
	// rejected counts the rows the planner refused; unidentified the invalid
	// rows that name no one it can recognise.
	skip                   bool
	rejected, unidentified int
	byEmail, byNumber      map[string]int // built on first need
}

// What a snapshot row says of a current member.
const (
	namedValid   = 1
	namedInvalid = 2
)

// newRosterPlanner checks what does not depend on the rows. It returns the
// planner even on error, for its summary.
func newRosterPlanner(mode RosterMode, def string, feed connector.Feed, upload UploadInfo) (*rosterPlanner, error) {
	pl := &rosterPlanner{mode: mode, sum: RosterSummary{Mode: mode}, errs: errList{max: DefaultMaxRosterErrors}}
	if !connector.ValidFeedName(feed.Name) {
		return pl, fmt.Errorf("roster events: feed %q: name must match [a-z0-9-]+", feed.Name)
	}
	if upload.Time.IsZero() {
		return pl, fmt.Errorf("roster events: the upload time is required")
	}
	if mode != RosterSnapshot && mode != RosterDelta {
		return pl, fmt.Errorf("roster events: mode %q: want %s or %s", mode, RosterSnapshot, RosterDelta)
	}
	source := feed.Source
	if source == "" {
		source = "/feeds/" + feed.Name
	}
	loc := feed.Location
	if loc == nil {
		loc = time.UTC
	}
	if def == "" {
		def = upload.Time.In(loc).Format(time.DateOnly)
	} else if reason := checkEffective(def); reason != "" {
		return pl, fmt.Errorf("roster events: default effective %s", reason)
	}
	pl.def, pl.sum.Effective = def, def
	pl.g = eventGen{feed: feed.Name, source: source, time: upload.Time.UTC(), h: sha256.New()}
	return pl, nil
}

// describe notes in the summary how the file was read.
func (pl *rosterPlanner) describe(ro *Roster) {
	pl.sum.Format, pl.sum.Encoding, pl.sum.Sheet = ro.Format, ro.Encoding, ro.Sheet
	if ro.Delimiter != 0 {
		pl.sum.Delimiter = string(ro.Delimiter)
	}
}

// setMembers checks and indexes the feed's current members.
func (pl *rosterPlanner) setMembers(current []Member) error {
	pl.current = current
	pl.members = make(map[string]int, len(current))
	for i, m := range current {
		if reason := checkField(fieldWorkerID, m.WorkerID); reason != "" || m.WorkerID == "" {
			return fmt.Errorf("roster events: current member %d: worker_id %q is not a valid id", i, m.WorkerID)
		}
		if _, dup := pl.members[m.WorkerID]; dup {
			return fmt.Errorf("roster events: current member %q is listed twice", m.WorkerID)
		}
		pl.members[m.WorkerID] = i
		if m.Active {
			pl.sum.Active++
		}
	}
	if pl.mode == RosterSnapshot {
		pl.present = make([]uint8, len(current))
	}
	return nil
}

func (pl *rosterPlanner) mark(id string) {
	if i, ok := pl.members[id]; ok && pl.present != nil {
		pl.present[i] = namedValid
	}
}

// The effects of an invalid row (RosterError.Effect), in words for the person
// who keeps the file.
const (
	effectSkipped   = "not applied"
	effectKept      = "not applied; this person is kept as they are: not deactivated"
	effectNoLeavers = "not applied; this row names no one hrsync recognises, so this upload deactivates no one"
)

// unknownRow takes note of an invalid row: in a snapshot, the person it names
// is unknown, not absent. It matches the row to a member by worker id or
// previous worker id, else by email or employee number; a row that matches no
// one and has no valid worker id may be anyone, so the snapshot makes no
// leavers at all (finish). It returns the row's effect.
func (pl *rosterPlanner) unknownRow(id rowIdentity) string {
	if pl.mode != RosterSnapshot {
		return effectSkipped
	}
	found := false
	keep := func(i int) {
		found = true
		if pl.present[i] == 0 {
			pl.present[i] = namedInvalid
		}
	}
	for _, w := range []string{id.workerID, id.previousID} {
		if i, ok := pl.members[w]; ok && w != "" {
			keep(i)
		}
	}
	if id.workerID != "" {
		if found {
			return effectKept
		}
		return effectSkipped // someone the feed does not have: not hired
	}
	if pl.byEmail == nil {
		pl.byEmail, pl.byNumber = map[string]int{}, map[string]int{}
		for i, m := range pl.current {
			if m.Profile.Email != "" {
				pl.byEmail[strings.ToLower(m.Profile.Email)] = i
			}
			if m.Profile.EmployeeNumber != "" {
				pl.byNumber[m.Profile.EmployeeNumber] = i
			}
		}
	}
	if i, ok := pl.byEmail[id.email]; ok && id.email != "" {
		keep(i)
	}
	if i, ok := pl.byNumber[id.employeeNumber]; ok && id.employeeNumber != "" {
		keep(i)
	}
	if found {
		return effectKept
	}
	pl.unidentified++
	return effectNoLeavers
}

// row decides one row: it counts it and emits its event, if it has one. A
// problem is added to pl.errs.
func (pl *rosterPlanner) row(row *RosterRow, emit func(Event) error) error {
	pl.mark(row.WorkerID)
	if row.PreviousWorkerID != "" {
		pl.mark(row.PreviousWorkerID)
	}
	var m *Member
	if idx, known := pl.members[row.WorkerID]; known {
		m = &pl.current[idx]
	}
	eff := row.Effective
	if eff == "" {
		eff = pl.def
	}
	sum := &pl.sum
	if pl.mode == RosterDelta && row.Action == RosterRemove {
		switch {
		case m == nil:
			sum.Skipped++
			if len(sum.Notes) < DefaultMaxRosterErrors {
				sum.Notes = append(sum.Notes, RosterError{Line: row.Line, Field: fieldWorkerID, Reason: fmt.Sprintf("'%s' is not known to the feed: nothing to remove", clip(row.WorkerID))})
			}
		case !m.Active:
			sum.Unchanged++
		default:
			sum.Leavers++
			d := Data{WorkerID: row.WorkerID, Effective: eff, Timezone: row.Timezone, Reason: row.Reason}
			return emit(pl.g.event(connector.KindLeft, d))
		}
		return nil
	}
	if m != nil && m.Active {
		if !profileChanged(m.Profile, row.Profile()) {
			sum.Unchanged++
			return nil
		}
		d := row.Data
		d.Effective, d.Timezone, d.Reason, d.PreviousWorkerID = pl.def, "", "", ""
		sum.Updates++
		return emit(pl.g.event(connector.KindUpdated, d))
	}
	kind := connector.KindHired
	if m != nil || row.PreviousWorkerID != "" {
		kind = connector.KindRehired
	}
	if row.Email == "" {
		pl.errs.add(RosterError{Line: row.Line, Field: fieldEmail, Reason: fmt.Sprintf("is required: '%s' would be %s", clip(row.WorkerID), kindVerb(kind)),
			Fix: "Write the person's e-mail address: hrsync needs it to create or reactivate their account", WorkerID: row.WorkerID, Effect: effectSkipped})
		if pl.skip {
			pl.rejected++
		}
		return nil
	}
	d := row.Data
	d.Effective, d.Reason = eff, ""
	if kind == connector.KindHired {
		d.PreviousWorkerID = ""
		sum.Hires++
	} else {
		sum.Rehires++
	}
	return emit(pl.g.event(kind, d))
}

// finish emits the snapshot's leavers: every active member no row named, by
// worker id.
func (pl *rosterPlanner) finish(emit func(Event) error) error {
	if pl.mode != RosterSnapshot {
		return nil
	}
	var leavers []string
	for i, m := range pl.current {
		switch {
		case !m.Active:
		case pl.present[i] == 0:
			leavers = append(leavers, m.WorkerID)
		case pl.present[i] == namedInvalid:
			pl.sum.Kept++
		}
	}
	if pl.unidentified > 0 {
		// A row that names no one may be any of them: none is a leaver.
		pl.sum.Withheld = len(leavers)
		return nil
	}
	slices.Sort(leavers)
	pl.sum.Leavers += len(leavers)
	for _, id := range leavers {
		if err := emit(pl.g.event(connector.KindLeft, Data{WorkerID: id, Effective: pl.def})); err != nil {
			return err
		}
	}
	return nil
}

// check validates rows that did not come from ParseRoster.
func (r *Roster) check(errs *errList) {
	seen := make(map[string]int, len(r.Rows))
	for _, row := range r.Rows {
		line := max(row.Line, 1)
		fields := []struct{ name, v string }{
			{fieldWorkerID, row.WorkerID}, {fieldEmail, row.Email}, {fieldGivenName, row.GivenName},
			{fieldFamilyName, row.FamilyName}, {fieldEmployeeNumber, row.EmployeeNumber},
			{fieldOrgUnit, row.OrgUnit}, {fieldJobTitle, row.JobTitle}, {fieldManagerID, row.ManagerID},
			{fieldLocale, row.Locale}, {fieldEffective, row.Effective}, {fieldTimezone, row.Timezone},
			{fieldReason, row.Reason}, {fieldPreviousWorkerID, row.PreviousWorkerID},
		}
		for _, f := range fields {
			if f.v == "" {
				continue
			}
			if !utf8.ValidString(f.v) || f.v != strings.TrimSpace(f.v) {
				errs.add(RosterError{Line: line, Field: f.name, Reason: "is not trimmed, valid UTF-8"})
				continue
			}
			if reason := checkField(f.name, f.v); reason != "" {
				errs.add(RosterError{Line: line, Field: f.name, Reason: reason})
			}
		}
		if row.WorkerID == "" {
			errs.add(RosterError{Line: line, Field: fieldWorkerID, Reason: "is required"})
		} else if prev, dup := seen[row.WorkerID]; dup {
			errs.add(RosterError{Line: line, Field: fieldWorkerID, Reason: fmt.Sprintf("'%s' appears again: it is on line %d too", clip(row.WorkerID), prev)})
		}
		seen[row.WorkerID] = line
		switch {
		case r.Mode == RosterSnapshot && row.Action != "":
			errs.add(RosterError{Line: line, Field: fieldAction, Reason: "is not allowed in a snapshot"})
		case r.Mode == RosterDelta && row.Action != RosterAdd && row.Action != RosterRemove:
			errs.add(RosterError{Line: line, Field: fieldAction, Reason: fmt.Sprintf("'%s' is not add or remove", clip(string(row.Action)))})
		}
	}
	if len(r.Rows) == 0 {
		errs.add(RosterError{Reason: "the roster has no rows"})
	}
}

// kindVerb describes what a row would do, for an error message.
func kindVerb(k connector.Kind) string {
	if k == connector.KindRehired {
		return "rehired"
	}
	return "hired"
}

// profileChanged reports whether row states a profile field that differs from cur.
func profileChanged(cur, row connector.Profile) bool {
	return cur.Merge(row) != cur
}

// eventGen builds events with deterministic ids.
type eventGen struct {
	feed, source string
	time         time.Time
	h            hash.Hash
	buf          []byte
	sum          [sha256.Size]byte
}

// event returns the event of kind k with data d.
func (g *eventGen) event(k connector.Kind, d Data) Event {
	return Event{Feed: g.feed, Kind: k, ID: g.id(k, &d), Source: g.source, Time: g.time, Data: d}
}

// id is "roster-" and 32 hex digits of SHA-256 over the feed, the kind and every
// data field, each length-prefixed so that no two inputs collide by shifting bytes
// between fields.
func (g *eventGen) id(k connector.Kind, d *Data) string {
	b := g.buf[:0]
	for _, s := range [...]string{
		"hrsync roster v1", g.feed, string(k),
		d.WorkerID, d.Email, d.GivenName, d.FamilyName, d.EmployeeNumber, d.OrgUnit,
		d.JobTitle, d.ManagerID, d.Locale, d.Effective, d.Timezone, d.Reason, d.PreviousWorkerID,
	} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	g.buf = b
	g.h.Reset()
	g.h.Write(b)
	g.h.Sum(g.sum[:0])
	return "roster-" + hex.EncodeToString(g.sum[:16])
}

// FormatEvents writes evs as a table for people: kind, worker, effective, the
// stated fields and the id. A dry run prints this.
func FormatEvents(w io.Writer, evs []Event) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tWORKER\tEFFECTIVE\tDETAILS\tID")
	for _, e := range evs {
		d := e.Data
		var details []string
		add := func(name, v string) {
			if v != "" {
				details = append(details, name+"="+strings.ReplaceAll(v, "\t", " "))
			}
		}
		add("email", d.Email)
		add("given_name", d.GivenName)
		add("family_name", d.FamilyName)
		add("employee_number", d.EmployeeNumber)
		add("org_unit", d.OrgUnit)
		add("job_title", d.JobTitle)
		add("manager_id", d.ManagerID)
		add("locale", d.Locale)
		add("timezone", d.Timezone)
		add("reason", strings.Join(strings.Fields(d.Reason), " "))
		add("previous_worker_id", d.PreviousWorkerID)
		if len(details) == 0 {
			details = append(details, "-")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Kind, d.WorkerID, d.Effective, strings.Join(details, " "), e.ID)
	}
	return tw.Flush()
}
