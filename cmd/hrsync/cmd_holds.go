package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
)

const holdsSynopsis = "holds list [flags] | holds show [flags] ID | holds approve|reject --by NAME --reason TEXT [--sample-batch N] ID | holds run [flags] ID"

const holdsDesc = `
A hold is a set of deactivations or deletions that crossed a safeguard threshold
(default: more than 20% of a feed's active accounts, or more than 500 accounts,
within one hour of live events or one upload; safeguard: in the configuration file).
Live removals gather for safeguard.settle (30s) into a burst that is judged whole:
a burst over the thresholds is held whole, and none of it runs until a person
decides; a later burst that crosses them joins the feed's open hold, one under them
runs.
Hires, updates and rehires are never held.

  holds list            the holds with their counts (newest first)
  holds show ID         one hold: counts, reason, a sample of the people affected;
                        --csv FILE exports every one of them
  holds approve ID      the held removals run through the converger
  holds reject ID       the accounts stay as they are; the same facts never remove
                        them (a new fact for a person is decided afresh)

Approve and reject require --by and --reason; the decision is kept with the hold and
in the audit trail, one row per person.

Clean-up and offboarding jobs (kinds cleanup and offboard; hrsync cleanup dormant,
hrsync feed offboard) are holds too, of LMS accounts:

  holds approve ID --sample-batch N   let only the first N accounts run, as a test;
                        the hold stays open for the decision on the rest
  holds run ID          run what is approved, in resumable batches under the LMS
                        rate limit (see hrsync holds run -help)`

func cmdHolds(ctx context.Context, env *environment, args []string) error {
	if len(args) > 0 && args[0] == "run" {
		return runJobHold(ctx, env, args[1:])
	}
	subs := map[string]bool{"list": true, "show": true, "approve": true, "reject": true}
	if len(args) == 0 || !subs[args[0]] {
		fs := newFlagSet(env, "holds", holdsSynopsis, holdsDesc)
		if err := parseFlags(fs, env, args, nil); err != nil {
			return err
		}
		fs.Usage()
		return errors.New("holds: want list, show, approve, reject or run")
	}
	sub, args := args[0], args[1:]
	fs := newFlagSet(env, "holds "+sub, holdsSynopsis, holdsDesc)
	vars := map[string]string{}
	var c connFlags
	c.register(fs, vars, sub == "approve")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	feed := fs.String("only-feed", "", "list: only holds of this feed")
	status := fs.String("status", "", "list: only holds in this state: open, approved or rejected")
	limit := fs.Int("limit", 100, "list: at most this many")
	sample := fs.Int("sample", 20, "show: how many of the affected people to print")
	csvPath := fs.String("csv", "", "show: write every affected person to this CSV file (- for stdout)")
	by := fs.String("by", "", "approve, reject: who decides (required)")
	reason := fs.String("reason", "", "approve, reject: why (required)")
	sampleBatch := fs.Int("sample-batch", 0, "approve a clean-up or offboarding: let only its first N accounts run as a test (the hold stays open)")
	if err := parseFlags(fs, env, args, vars); err != nil {
		return err
	}
	var id int64
	if sub != "list" {
		if fs.NArg() != 1 {
			return fmt.Errorf("holds %s: want exactly one hold ID", sub)
		}
		var err error
		if id, err = strconv.ParseInt(fs.Arg(0), 10, 64); err != nil {
			return fmt.Errorf("holds %s: ID %q is not a number", sub, fs.Arg(0))
		}
	}
	if (sub == "approve" || sub == "reject") && (*by == "" || *reason == "") {
		return fmt.Errorf("holds %s: --by and --reason are required: the decision is audited", sub)
	}
	switch st := connector.HoldStatus(*status); st {
	case "", connector.HoldOpen, connector.HoldApproved, connector.HoldRejected:
	default:
		return fmt.Errorf("holds list: --status %q: want open, approved or rejected", st)
	}
	db, _, err := c.openStore(ctx, env)
	if err != nil {
		return err
	}
	defer db.Close()

	switch sub {
	case "list":
		holds, err := db.ListHolds(ctx, store.HoldFilter{Feed: *feed, Status: connector.HoldStatus(*status), Limit: *limit})
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(env.stdout)
			for _, h := range holds {
				if err := enc.Encode(h); err != nil {
					return err
				}
			}
			return nil
		}
		tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tCREATED\tFEED\tKIND\tSTATUS\tREMOVALS\tACTIVE\tDECIDED BY\tREASON")
		for _, h := range holds {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", h.ID, h.CreatedAt.UTC().Format(time.RFC3339), h.Feed, h.Kind,
				h.Status, h.Counts.Removals, h.Counts.Active, h.DecidedBy, h.Reason)
		}
		return tw.Flush()

	case "show":
		h, err := db.GetHold(ctx, id)
		if err != nil {
			return fmt.Errorf("hold %d: %w", id, err)
		}
		if h.Kind.IsJob() {
			return showJobHold(ctx, env, db, h, max(*sample, 0), *csvPath, *asJSON)
		}
		ws, err := db.HoldWorkers(ctx, id, connector.WorkerKey{}, max(*sample, 0))
		if err != nil {
			return err
		}
		if *csvPath != "" {
			if err := writeHoldCSV(ctx, env, db, id, *csvPath); err != nil {
				return err
			}
			if *csvPath == "-" {
				return nil
			}
		}
		if *asJSON {
			h.Workers = ws
			return json.NewEncoder(env.stdout).Encode(h)
		}
		printHold(env.stdout, h, ws)
		return nil
	}

	if *sampleBatch != 0 {
		if sub != "approve" {
			return errors.New("holds reject: --sample-batch only goes with approve")
		}
		h, err := db.AllowSample(ctx, id, *sampleBatch, *by, *reason)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "hold %d: the first %d of %d accounts may run as a test (approved by %s); run them with hrsync holds run %d\n",
			h.ID, h.Sample, h.Counts.Removals, *by, h.ID)
		return nil
	}
	h, err := db.DecideHold(ctx, id, connector.HoldDecision{Approve: sub == "approve", By: *by, Reason: *reason})
	if errors.Is(err, connector.ErrConflict) && sub == "approve" {
		// Approved before: an upload hold whose publishing failed is published again
		// (its event ids are deterministic, so nothing is recorded twice).
		if prev, gerr := db.ApprovedHold(ctx, id); gerr == nil && prev.Kind == connector.HoldUpload {
			h, err = prev, nil
		}
	}
	if err != nil {
		return err
	}
	switch {
	case h.Status == connector.HoldApproved && h.Kind == connector.HoldLive:
		fmt.Fprintf(env.stdout, "hold %d approved by %s: %d removals are due now; a running daemon converges them\n", h.ID, h.DecidedBy, h.Counts.Removals)
	case h.Status == connector.HoldApproved && h.Kind == connector.HoldUpload:
		n, err := publishUploadHold(ctx, c, db, h.ID)
		if err != nil {
			return fmt.Errorf("hold %d is approved, but publishing its upload stopped after %d events (run this command again to finish): %w", h.ID, n, err)
		}
		fmt.Fprintf(env.stdout, "hold %d approved by %s: the roster upload's %d events are published (%d removals)\n", h.ID, h.DecidedBy, n, h.Counts.Removals)
	case h.Status == connector.HoldApproved && h.Kind.IsJob():
		fmt.Fprintf(env.stdout, "hold %d approved by %s: %d accounts; run them with hrsync holds run %d\n", h.ID, h.DecidedBy, h.Counts.Removals, h.ID)
	case h.Status == connector.HoldApproved:
		fmt.Fprintf(env.stdout, "hold %d approved by %s (%d removals)\n", h.ID, h.DecidedBy, h.Counts.Removals)
	default:
		fmt.Fprintf(env.stdout, "hold %d rejected by %s: %d accounts stay as they are\n", h.ID, h.DecidedBy, h.Counts.Removals)
	}
	return nil
}

func printHold(w io.Writer, h connector.Hold, sample []connector.HeldWorker) {
	fmt.Fprintf(w, "hold %d: %s hold of feed %s, %s\n", h.ID, h.Kind, h.Feed, h.Status)
	fmt.Fprintf(w, "  created   %s\n", h.CreatedAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "  reason    %s\n", h.Reason)
	fmt.Fprintf(w, "  removals  %d (%d deactivations, %d deletions) of %d active accounts\n",
		h.Counts.Removals, h.Counts.Deactivations, h.Counts.Deletions, h.Counts.Active)
	if h.DecidedAt != nil {
		fmt.Fprintf(w, "  decided   %s by %s at %s: %s\n", h.Status, h.DecidedBy, h.DecidedAt.UTC().Format(time.RFC3339), h.Decision)
	}
	fmt.Fprintf(w, "\n%d of %d affected people:\n", len(sample), h.Counts.Removals)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKER\tNAME\tEMAIL\tACCOUNT\tACTION")
	for _, hw := range sample {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", hw.Worker, hw.Name, hw.Email, hw.AccountID, hw.Action)
	}
	_ = tw.Flush()
}

// holdCSVHeader are the columns of a hold's CSV export.
var holdCSVHeader = []string{"hold_id", "feed", "worker_id", "name", "email", "account_id", "action", "version", "held_at"}

// writeHoldCSV writes every worker of hold id to path (- for stdout), a page at a
// time. Every cell is escaped against formula injection (connector.EscapeCSVCell).
func writeHoldCSV(ctx context.Context, env *environment, db *store.DB, id int64, path string) (err error) {
	out := env.stdout
	if path != "-" {
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("holds show: %w", err)
		}
		defer func() {
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}()
		out = f
	}
	cw := csv.NewWriter(out)
	if err := cw.Write(holdCSVHeader); err != nil {
		return err
	}
	const page = 1000
	after := connector.WorkerKey{}
	n := 0
	for {
		ws, err := db.HoldWorkers(ctx, id, after, page)
		if err != nil {
			return err
		}
		for _, hw := range ws {
			row := []string{strconv.FormatInt(id, 10), hw.Worker.Feed, hw.Worker.WorkerID, hw.Name, hw.Email, hw.AccountID,
				string(hw.Action), strconv.FormatInt(hw.Version, 10), hw.At.UTC().Format(time.RFC3339)}
			for i := range row {
				row[i] = connector.EscapeCSVCell(row[i])
			}
			if err := cw.Write(row); err != nil {
				return err
			}
		}
		n += len(ws)
		if len(ws) < page {
			break
		}
		after = ws[len(ws)-1].Worker
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	if path != "-" {
		fmt.Fprintf(env.stderr, "wrote %d affected people of hold %d to %s\n", n, id, path)
	}
	return nil
}
