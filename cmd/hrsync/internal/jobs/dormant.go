package jobs

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/hrsync/hrsync/connector"
)

// DormantRequest is one "cleanup dormant" (a hold) or "report dormant" (ReportOnly).
type DormantRequest struct {
	Filter connector.DormantFilter
	// ReportOnly writes the report and creates no hold.
	ReportOnly bool
	// Dir is the report directory; default ./cleanup-<UTC timestamp>, or
	// ./dormant-... with ReportOnly.
	Dir      string
	PageSize int
	// JSON prints the summary as JSON.
	JSON bool
	// By is who asked for the clean-up: the hold's CausedBy, who may not
	// approve it (four eyes).
	By string
}

// Dormant scans every LMS account for those r.Filter selects, writes the report,
// holds the plan unless r.ReportOnly, and prints the summary and the next steps.
// Nothing in the LMS changes. It returns the id of the hold it created (0: none).
func (e Env) Dormant(ctx context.Context, r DormantRequest) (held int64, err error) {
	ctx = connector.WithLMSPriority(ctx, connector.LMSBackground) // waits behind live changes under the LMS's rate limit
	f, db, lms := r.Filter, e.Store, e.LMS
	prog := NewProgress(e.Progress, "scanned")
	sel, err := connector.Selector{LMS: lms, Store: db, Feeds: e.Feeds, Policy: FeedPolicies(e.Feeds), PageSize: r.PageSize,
		Progress: func(scanned, total int) { prog.Update(scanned, total, "") }}.Select(ctx, f)
	prog.Done()
	if err != nil {
		return 0, err
	}
	est := Estimate(ctx, lms, len(sel.Items), 0, e.PerHour)
	dir := r.Dir
	if dir == "" {
		prefix := "cleanup-"
		if r.ReportOnly {
			prefix = "dormant-"
		}
		dir = prefix + e.Now().UTC().Format("20060102T150405Z")
	}
	if err := WriteReport(dir, sel, est); err != nil {
		return 0, err
	}
	var holdID int64
	if !r.ReportOnly && len(sel.Items) > 0 {
		payload, err := json.Marshal(Payload{Filter: f.String(), Selection: sel, Estimate: est, ReportDir: dir})
		if err != nil {
			return 0, err
		}
		holdID, err = db.CreateJob(ctx, connector.Hold{Kind: connector.HoldCleanup, Feed: f.Feed, ApprovalsNeeded: e.Approvals[connector.HoldCleanup],
			CausedBy: r.By,
			Reason:   "dormant accounts: " + f.String(), Payload: payload}, sel.Items)
		if err != nil {
			return 0, err
		}
		e.Log.Info("clean-up report held", "hold", holdID, "accounts", len(sel.Items), "filter", f.String())
	}
	if r.JSON {
		return holdID, json.NewEncoder(e.Out).Encode(map[string]any{"hold": holdID, "selection": sel, "estimate": est, "report_dir": dir})
	}
	w := e.Out
	fmt.Fprintf(w, "scanned %d LMS accounts; %d dormant (%s)\n", sel.Scanned, len(sel.Items), f.String())
	for _, k := range connector.SortedCounts(sel.ByFeed) {
		fmt.Fprintf(w, "  %-28s %d\n", k, sel.ByFeed[k])
	}
	if len(sel.Excluded) > 0 {
		fmt.Fprintln(w, "left alone:")
		for _, k := range connector.SortedCounts(sel.Excluded) {
			fmt.Fprintf(w, "  %-36s %d\n", k, sel.Excluded[k])
		}
	}
	fmt.Fprintf(w, "deleting them needs %s\n", est)
	fmt.Fprintf(w, "report: %s (accounts.csv, report.json)\n", dir)
	switch {
	case r.ReportOnly:
	case holdID == 0:
		fmt.Fprintln(w, "nothing to clean up; no hold was created")
	default:
		fmt.Fprintf(w, "held as hold %d; nothing was deleted. Next:\n", holdID)
		fmt.Fprintf(w, "  hrsync holds show %d --format csv                                  review every account\n", holdID)
		fmt.Fprintf(w, "  hrsync holds approve %d --sample-batch 50 --by NAME --reason TEXT  optional: a test batch first\n", holdID)
		fmt.Fprintf(w, "  hrsync holds approve %d --by NAME --reason TEXT                    approve all\n", holdID)
		fmt.Fprintf(w, "  hrsync holds run %d                                               delete (resumable)\n", holdID)
	}
	return holdID, nil
}
