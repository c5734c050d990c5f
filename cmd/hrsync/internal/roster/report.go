package roster

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/xuri/excelize/v2"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/events"
	"github.com/hrsync/hrsync/store"
)

// Report is what an upload did with each row that has a problem, for the
// person who keeps the roster: the line, the column, what is wrong, how to fix
// it and what became of the row. It is kept with the upload (store.Upload.Report)
// and served as JSON, CSV or XLSX (docs/rosters.md, "The upload report").
type Report struct {
	UploadID int64  `json:"upload_id,omitempty"`
	Feed     string `json:"feed"`
	Filename string `json:"filename,omitempty"`
	Outcome  string `json:"outcome"`
	// Rows counts the file's data rows, Invalid those not applied; Kept and
	// Withheld are a snapshot's (events.RosterSummary).
	Rows     int `json:"rows"`
	Invalid  int `json:"invalid"`
	Kept     int `json:"kept"`
	Withheld int `json:"withheld"`
	// Problems are the first MaxReportProblems; Total counts all.
	Problems []events.RosterError `json:"problems"`
	Total    int                  `json:"problems_total"`
}

// storedReport is the part of a Report kept in store.Upload.Report; the rest
// is in the upload's own columns.
type storedReport struct {
	Problems []events.RosterError `json:"problems"`
	Total    int                  `json:"problems_total"`
}

// reportJSON is what an upload keeps of its problems; nil when it has none.
func reportJSON(problems []events.RosterError, total int) []byte {
	if total == 0 {
		return nil
	}
	b, _ := json.Marshal(storedReport{Problems: problems, Total: total})
	return b
}

// UploadReport is the report of a recorded upload.
func UploadReport(u store.Upload) (Report, error) {
	r := Report{UploadID: u.ID, Feed: u.Feed, Filename: u.Filename, Outcome: u.Outcome, Rows: u.Rows, Invalid: u.Invalid,
		Kept: u.Kept, Withheld: u.Withheld, Problems: []events.RosterError{}}
	if len(u.Report) > 0 {
		var s storedReport
		if err := json.Unmarshal(u.Report, &s); err != nil {
			return r, fmt.Errorf("upload %d: its report cannot be read: %w", u.ID, err)
		}
		r.Problems, r.Total = s.Problems, s.Total
	}
	return r, nil
}

// ResultReport is the report of an upload that just ran.
func ResultReport(res *Result, filename string) Report {
	s := res.Summary
	r := Report{UploadID: res.UploadID, Feed: res.Feed, Filename: filename, Outcome: res.Outcome, Rows: s.Rows,
		Invalid: s.Invalid, Kept: s.Kept, Withheld: s.Withheld, Problems: s.Problems, Total: s.ProblemsTotal}
	if r.Problems == nil {
		r.Problems = []events.RosterError{}
	}
	return r
}

// reportHeader names the columns of the CSV and XLSX reports, in words for the
// person who fixes the file.
var reportHeader = []string{"Line", "Column", "Worker", "What is wrong", "How to fix it", "What hrsync did"}

// cells is one problem as the columns of reportHeader.
func cells(p events.RosterError) []string {
	line := ""
	if p.Line > 0 {
		line = strconv.Itoa(p.Line)
	}
	column := p.Column
	if column == "" && p.Field != "" && p.Field != "header" {
		column = p.Field
	}
	what := p.Reason
	if p.Field != "" && p.Field != "header" {
		what = p.Field + " " + p.Reason
	}
	effect := p.Effect
	if effect == "" {
		effect = "the file was refused"
	}
	return []string{line, column, p.WorkerID, what, p.Fix, effect}
}

// Summary says in a sentence or two what the upload did with the rows.
func (r Report) Summary() string {
	var b strings.Builder
	applied := r.Rows - r.Invalid
	switch {
	case r.Outcome == "rejected" || (r.Rows == 0 && r.Total > 0):
		fmt.Fprintf(&b, "The file was refused: nothing of it was applied. Fix the %d problem(s) below and upload it again.", r.Total)
	case r.Invalid == 0:
		fmt.Fprintf(&b, "All %d rows were read without a problem.", r.Rows)
	default:
		fmt.Fprintf(&b, "%d of %d rows were applied; %d rows have a problem and were not applied: fix them and upload the file again.", applied, r.Rows, r.Invalid)
	}
	if r.Kept > 0 {
		fmt.Fprintf(&b, " %d people whose row has a problem were kept as they are (not deactivated).", r.Kept)
	}
	if r.Withheld > 0 {
		fmt.Fprintf(&b, " No one was deactivated by this upload (%d people are missing from the file), because a row with a problem names no one hrsync recognises.", r.Withheld)
	}
	if more := r.Total - len(r.Problems); more > 0 {
		fmt.Fprintf(&b, " The first %d problems are listed; %d more are not.", len(r.Problems), more)
	}
	return b.String()
}

// WriteCSV writes the problems as CSV with a header row, UTF-8 with a byte
// order mark so that Excel opens umlauts as they are.
func (r Report) WriteCSV(w io.Writer) error {
	if _, err := io.WriteString(w, "\uFEFF"); err != nil {
		return err
	}
	cw := csv.NewWriter(w)
	_ = cw.Write(reportHeader)
	for _, p := range r.Problems {
		cs := cells(p)
		for i := range cs {
			cs[i] = connector.EscapeCSVCell(cs[i]) // a partner's cell must not become a formula
		}
		_ = cw.Write(cs)
	}
	cw.Flush()
	return cw.Error()
}

// WriteXLSX writes the problems as a workbook: a sheet of problems, one row
// each, and a sheet with the summary.
func (r Report) WriteXLSX(w io.Writer) error {
	f := excelize.NewFile()
	defer f.Close()
	const sheet = "Problems"
	if err := f.SetSheetName("Sheet1", sheet); err != nil {
		return err
	}
	sw, err := f.NewStreamWriter(sheet)
	if err != nil {
		return err
	}
	row := func(n int, vals []string) error {
		cellsAny := make([]any, len(vals))
		for i, v := range vals {
			cellsAny[i] = v
			if i == 0 && v != "" {
				cellsAny[i], _ = strconv.Atoi(v)
			}
		}
		c, _ := excelize.CoordinatesToCellName(1, n)
		return sw.SetRow(c, cellsAny)
	}
	if err := row(1, reportHeader); err != nil {
		return err
	}
	for i, p := range r.Problems {
		if err := row(i+2, cells(p)); err != nil {
			return err
		}
	}
	if err := sw.Flush(); err != nil {
		return err
	}
	if _, err := f.NewSheet("Summary"); err != nil {
		return err
	}
	for i, kv := range [][2]any{{"Feed", r.Feed}, {"File", r.Filename}, {"Outcome", r.Outcome}, {"Rows", r.Rows},
		{"Rows not applied", r.Invalid}, {"Kept (not deactivated)", r.Kept}, {"Leavers withheld", r.Withheld}, {"Summary", r.Summary()}} {
		for j, v := range kv {
			c, _ := excelize.CoordinatesToCellName(j+1, i+1)
			if err := f.SetCellValue("Summary", c, v); err != nil {
				return err
			}
		}
	}
	_, err = f.WriteTo(w)
	return err
}

// WriteText writes the summary and the problems as a table, for a terminal.
func (r Report) WriteText(w io.Writer) error {
	fmt.Fprintln(w, r.Summary())
	if len(r.Problems) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.ToUpper(strings.Join(reportHeader, "\t")))
	for _, p := range r.Problems {
		cs := cells(p)
		for i := range cs {
			cs[i] = strings.Join(strings.Fields(cs[i]), " ")
			if cs[i] == "" {
				cs[i] = "-"
			}
		}
		fmt.Fprintln(tw, strings.Join(cs, "\t"))
	}
	return tw.Flush()
}

// WriteReport writes r as format: json, csv, xlsx or table (text).
func WriteReport(w io.Writer, r Report, format string) error {
	switch format {
	case "json":
		return json.NewEncoder(w).Encode(r)
	case "csv":
		return r.WriteCSV(w)
	case "xlsx":
		return r.WriteXLSX(w)
	case "table", "text", "":
		return r.WriteText(w)
	}
	return fmt.Errorf("report format %q: want json, csv, xlsx or table", format)
}

// ReportContentType is the media type of a report format.
func ReportContentType(format string) string {
	switch format {
	case "csv":
		return "text/csv; charset=utf-8"
	case "xlsx":
		return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
	case "table", "text":
		return "text/plain; charset=utf-8"
	}
	return "application/json"
}
