package jobs

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/hrsync/hrsync/connector"
)

// ShowStore is what ShowHold needs of the store. Implemented by *store.DB.
type ShowStore interface {
	// JobCounts returns the hold's items counted by status.
	JobCounts(ctx context.Context, hold int64) (map[connector.JobItemStatus]int, error)
	// JobItems returns up to limit items of the hold with seq after after.
	JobItems(ctx context.Context, hold int64, after, limit int) ([]connector.JobItem, error)
}

// ShowHold is "holds show" for a clean-up or offboarding: the hold, its items'
// progress and a sample of its accounts on out, or as JSON; with csvPath ("-":
// out) every account and its status as CSV first (a note of the file on errw).
func ShowHold(ctx context.Context, db ShowStore, h connector.Hold, sample int, csvPath string, asJSON bool, out, errw io.Writer) error {
	counts, err := db.JobCounts(ctx, h.ID)
	if err != nil {
		return err
	}
	if csvPath != "" {
		w := out
		var f *os.File
		if csvPath != "-" {
			if f, err = os.Create(csvPath); err != nil {
				return fmt.Errorf("holds show: %w", err)
			}
			w = f
		}
		cw := csv.NewWriter(w)
		_ = cw.Write(CSVHeader)
		n := 0
		for after := 0; ; {
			items, err := db.JobItems(ctx, h.ID, after, 1000)
			if err != nil {
				return err
			}
			for _, it := range items {
				_ = cw.Write(CSVRow(it))
			}
			n += len(items)
			if len(items) < 1000 {
				break
			}
			after = items[len(items)-1].Seq
		}
		cw.Flush()
		err = cw.Error()
		if f != nil {
			err = errors.Join(err, f.Close())
			fmt.Fprintf(errw, "wrote %d accounts of hold %d to %s\n", n, h.ID, csvPath)
		}
		if err != nil || csvPath == "-" {
			return err
		}
	}
	items, err := db.JobItems(ctx, h.ID, 0, sample)
	if err != nil {
		return err
	}
	if asJSON {
		var p Payload
		_ = json.Unmarshal(h.Payload, &p)
		return json.NewEncoder(out).Encode(map[string]any{"hold": h, "counts": counts, "report": p, "accounts": items})
	}
	w := out
	feed := h.Feed
	if feed == "" {
		feed = "(all feeds)"
	}
	fmt.Fprintf(w, "hold %d: %s job of %s, %s\n", h.ID, h.Kind, feed, h.Status)
	fmt.Fprintf(w, "  created   %s\n", h.CreatedAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "  reason    %s\n", h.Reason)
	var p Payload
	if json.Unmarshal(h.Payload, &p) == nil && p.Estimate.Items > 0 {
		fmt.Fprintf(w, "  estimate  %s\n", p.Estimate)
	}
	if h.Sample > 0 {
		fmt.Fprintf(w, "  sample    the first %d accounts may run before the decision\n", h.Sample)
	}
	if h.DecidedAt != nil {
		fmt.Fprintf(w, "  decided   %s by %s at %s: %s\n", h.Status, h.DecidedBy, h.DecidedAt.UTC().Format(time.RFC3339), h.Decision)
	}
	fmt.Fprintf(w, "  accounts  %d: %d pending, %d done, %d skipped, %d failed\n", h.Counts.Removals, counts[connector.JobPending],
		counts[connector.JobDone], counts[connector.JobSkipped], counts[connector.JobFailed])
	fmt.Fprintf(w, "\n%d of %d accounts:\n", len(items), h.Counts.Removals)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tACCOUNT\tUSER NAME\tFEED\tACTION\tSTATUS\tDETAIL")
	for _, it := range items {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", it.Seq, it.AccountID, it.UserName, it.Feed(), it.Action, it.Status, it.Detail)
	}
	return tw.Flush()
}
