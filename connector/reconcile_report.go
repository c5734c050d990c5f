package connector

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Report files that CreateReport writes in its directory.
const (
	ReportCSV    = "drift.csv"  // one row per finding
	ReportJSON   = "drift.json" // {"findings": [...], "summary": {...}}
	ReportCounts = "counts.csv" // feed, class, count
)

// reportHeader is the header row of drift.csv.
var reportHeader = []string{"class", "feed", "worker_id", "account_id", "external_id", "user_name",
	"want_state", "lms_active", "actions", "candidates", "detail", "marked_due"}

// EscapeCSVCell defuses a cell that a spreadsheet would run as a formula: a value
// starting with = + - @, a tab or a carriage return gets a leading apostrophe
// (OWASP's advice for CSV injection). Names and ids come from HR and LMS data
// that hrsync does not control, so every cell of a report goes through it.
func EscapeCSVCell(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + s
	}
	return s
}

// ReportWriter streams a drift report: findings as CSV rows and as JSON array
// items as they come, then the counts. It holds no finding in memory.
type ReportWriter struct {
	csv     *csv.Writer
	json    *bufio.Writer
	counts  io.Writer
	n       int
	closers []io.Closer
	err     error
}

// NewReportWriter writes the findings to csvOut and jsonOut, and at Close the
// counts per feed and class to countsOut (nil: not written).
func NewReportWriter(csvOut, jsonOut, countsOut io.Writer) *ReportWriter {
	w := &ReportWriter{csv: csv.NewWriter(csvOut), json: bufio.NewWriter(jsonOut), counts: countsOut}
	w.err = w.csv.Write(reportHeader)
	if w.err == nil {
		_, w.err = w.json.WriteString("{\"findings\": [")
	}
	return w
}

// CreateReport creates dir (and its parents) and a ReportWriter on the files
// ReportCSV, ReportJSON and ReportCounts in it. Close closes the files.
func CreateReport(dir string) (*ReportWriter, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	var files []*os.File
	for _, name := range []string{ReportCSV, ReportJSON, ReportCounts} {
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			return nil, fmt.Errorf("report: %w", err)
		}
		files = append(files, f)
	}
	w := NewReportWriter(files[0], files[1], files[2])
	for _, f := range files {
		w.closers = append(w.closers, f)
	}
	return w, nil
}

// Add writes one finding.
func (w *ReportWriter) Add(f Finding) error {
	if w.err != nil {
		return w.err
	}
	active := ""
	if f.LMSActive != nil {
		active = strconv.FormatBool(*f.LMSActive)
	}
	row := []string{string(f.Class), f.Feed, f.WorkerID, f.AccountID, f.ExternalID, f.UserName,
		string(f.WantState), active, strings.Join(f.Actions, "; "), strings.Join(f.Candidates, " "), f.Detail,
		strconv.FormatBool(f.MarkedDue)}
	for i := range row {
		row[i] = EscapeCSVCell(row[i])
	}
	if w.err = w.csv.Write(row); w.err != nil {
		return w.err
	}
	b, err := json.Marshal(f)
	if err != nil {
		w.err = err
		return err
	}
	sep := "\n  "
	if w.n > 0 {
		sep = ",\n  "
	}
	w.n++
	if _, w.err = w.json.WriteString(sep); w.err == nil {
		_, w.err = w.json.Write(b)
	}
	return w.err
}

// Close ends the JSON with the summary, writes the counts, flushes, and closes
// the files CreateReport opened.
func (w *ReportWriter) Close(s ReconcileSummary) error {
	err := w.err
	if err == nil {
		w.csv.Flush()
		err = w.csv.Error()
	}
	if err == nil {
		var b []byte
		if b, err = json.MarshalIndent(s, "", "  "); err == nil {
			_, err = fmt.Fprintf(w.json, "\n],\n\"summary\": %s}\n", b)
		}
	}
	if err == nil {
		err = w.json.Flush()
	}
	if err == nil && w.counts != nil {
		err = WriteCounts(w.counts, s)
	}
	for _, c := range w.closers {
		err = errors.Join(err, c.Close())
	}
	w.closers = nil
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// WriteCounts writes the counts of s as CSV: feed, class, count, one row per
// feed and class that occurred, then the totals under feed "*". Orphans that name
// no configured feed are under feed "".
func WriteCounts(out io.Writer, s ReconcileSummary) error {
	cw := csv.NewWriter(out)
	_ = cw.Write([]string{"feed", "class", "count"})
	feeds := make([]string, 0, len(s.ByFeed))
	for f := range s.ByFeed {
		feeds = append(feeds, f)
	}
	slices.Sort(feeds)
	for _, f := range feeds {
		for _, c := range DriftClasses {
			if n := s.ByFeed[f][c]; n > 0 {
				_ = cw.Write([]string{EscapeCSVCell(f), string(c), strconv.Itoa(n)})
			}
		}
	}
	for _, c := range DriftClasses {
		_ = cw.Write([]string{"*", string(c), strconv.Itoa(s.Counts[c])})
	}
	cw.Flush()
	return cw.Error()
}

// WriteSummary writes a human summary of s: totals per class, then per feed.
func WriteSummary(out io.Writer, s ReconcileSummary) {
	mode := "dry run: nothing was changed"
	if s.Apply {
		mode = fmt.Sprintf("apply: %d workers marked due for the converger", s.MarkedDue)
	}
	fmt.Fprintf(out, "reconciled %d workers against %d LMS accounts in %s (%s)\n",
		s.Workers, s.Accounts, s.Duration.Round(time.Millisecond), mode)
	for _, c := range DriftClasses {
		fmt.Fprintf(out, "  %-27s %d\n", c, s.Counts[c])
	}
	fmt.Fprintf(out, "  %-27s %d\n", "drift (all but in_sync)", s.Drift())
	if s.Skipped > 0 {
		fmt.Fprintf(out, "  %d workers skipped: their feed is not configured\n", s.Skipped)
	}
	if s.LinksChecked > 0 {
		fmt.Fprintf(out, "  %d links checked one by one, %d pointed at a deleted account\n", s.LinksChecked, s.StaleLinks)
	}
	feeds := make([]string, 0, len(s.ByFeed))
	for f := range s.ByFeed {
		feeds = append(feeds, f)
	}
	slices.Sort(feeds)
	for _, f := range feeds {
		name := f
		if name == "" {
			name = "(no feed)"
		}
		var parts []string
		for _, c := range DriftClasses {
			if n := s.ByFeed[f][c]; n > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", c, n))
			}
		}
		fmt.Fprintf(out, "  feed %s: %s\n", name, strings.Join(parts, ", "))
	}
}
