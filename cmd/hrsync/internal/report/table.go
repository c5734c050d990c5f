package report

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/hrsync/hrsync/connector"
)

// Table is a finished report: rows of key cells and counts, and totals.
type Table struct {
	Name   string
	Params map[string]string
	Keys   []string
	Counts []string
	Rows   []Row
	Total  []int
}

// Row is one row of a Table: its key cells and its counts, in the order of the
// Table's Keys and Counts.
type Row struct {
	Keys   []string
	Counts []int
}

// groupKey is one row of a report: a few key cells.
type groupKey [2]string

// counter sums counts per row key, in memory bounded by the number of rows.
type counter map[groupKey][]int

func (c counter) add(k groupKey, n int, col int) {
	if c[k] == nil {
		c[k] = make([]int, n)
	}
	c[k][col]++
}

// fill sets the rows from c, sorted by key, and the totals.
func (t *Table) fill(c counter) {
	t.Total = make([]int, len(t.Counts))
	for k, v := range c {
		t.Rows = append(t.Rows, Row{Keys: k[:len(t.Keys)], Counts: v})
		for i, n := range v {
			t.Total[i] += n
		}
	}
	slices.SortFunc(t.Rows, func(a, b Row) int { return slices.Compare(a.Keys, b.Keys) })
}

// Write prints t to w as "json", "csv" (cells escaped against formula
// injection) or, for any other format, an aligned text table. Each ends with a
// totals row.
func (t *Table) Write(w io.Writer, format string) error {
	switch format {
	case "json":
		obj := func(r Row) map[string]any {
			m := map[string]any{}
			for i, k := range t.Keys {
				m[k] = r.Keys[i]
			}
			for i, k := range t.Counts {
				m[k] = r.Counts[i]
			}
			return m
		}
		rows := make([]map[string]any, len(t.Rows))
		for i, r := range t.Rows {
			rows[i] = obj(r)
		}
		total := map[string]int{}
		for i, k := range t.Counts {
			total[k] = t.Total[i]
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"report": t.Name, "params": t.Params, "rows": rows, "total": total})
	case "csv":
		cw := csv.NewWriter(w)
		if err := cw.Write(append(slices.Clone(t.Keys), t.Counts...)); err != nil {
			return err
		}
		for _, r := range t.Rows {
			rec := make([]string, 0, len(t.Keys)+len(t.Counts))
			for _, k := range r.Keys {
				rec = append(rec, connector.EscapeCSVCell(k))
			}
			for _, n := range r.Counts {
				rec = append(rec, strconv.Itoa(n))
			}
			if err := cw.Write(rec); err != nil {
				return err
			}
		}
		rec := make([]string, len(t.Keys), len(t.Keys)+len(t.Counts))
		rec[0] = "TOTAL"
		for _, n := range t.Total {
			rec = append(rec, strconv.Itoa(n))
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
		cw.Flush()
		return cw.Error()
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := append(slices.Clone(t.Keys), t.Counts...)
	fmt.Fprintln(tw, strings.ToUpper(strings.Join(head, "\t")))
	for _, r := range t.Rows {
		cells := make([]string, 0, len(head))
		for _, k := range r.Keys {
			cells = append(cells, orDash(k))
		}
		for _, n := range r.Counts {
			cells = append(cells, strconv.Itoa(n))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	cells := make([]string, len(t.Keys), len(head))
	cells[0] = "TOTAL"
	for i := 1; i < len(t.Keys); i++ {
		cells[i] = ""
	}
	for _, n := range t.Total {
		cells = append(cells, strconv.Itoa(n))
	}
	fmt.Fprintln(tw, strings.Join(cells, "\t"))
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
