package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/jobs"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
)

const holdsDesc = `
A hold is a set of deactivations or deletions that crossed a safeguard threshold
(default: more than 20% of a feed's active accounts, or more than 500 accounts,
within one hour of live events or one upload; safeguard: in the configuration file).
Live removals gather for safeguard.settle (30s) into a burst that is judged whole:
a burst over the thresholds is held whole, and none of it runs until a person
decides; a later burst that crosses them joins the feed's open hold, one under them
runs.
Hires, updates and rehires are never held.

  hrsync holds list                     the holds with their counts (newest first)
  hrsync holds show ID                  one hold: counts, reason, a sample of the people
                                        affected; --format csv lists every one of them
  hrsync holds approve ID --by NAME --reason TEXT
                                        the held removals run through the converger
  hrsync holds reject ID --by NAME --reason TEXT
                                        the accounts stay as they are; the same facts never
                                        remove them (a new fact is decided afresh)

The decision is kept with the hold and in the audit trail, one row per person.
Four eyes: who caused a hold (the uploader of a held roster, who asked for a
clean-up or an offboarding) may not approve it, and holds.approvals in the
configuration file can ask for two or more different approvers (docs/console.md).

Clean-up and offboarding jobs (kinds cleanup and offboard; hrsync cleanup dormant,
hrsync feed offboard) are holds too, of LMS accounts:

  hrsync holds approve ID --sample-batch N --by NAME --reason TEXT
                                        let only the first N accounts run, as a test;
                                        the hold stays open for the decision on the rest
  hrsync holds run ID                   run what is approved, in resumable batches under
                                        the LMS rate limit

holds list and holds show exit 3 when they show an open hold: a person must decide it.`

func newHoldsCmd(env *environment) *cobra.Command {
	return group(env, "holds", "held removals and jobs: list, show, approve, reject, run", holdsDesc,
		newHoldsListCmd(env), newHoldsShowCmd(env), newHoldsDecideCmd(env, true), newHoldsDecideCmd(env, false), newHoldsRunCmd(env))
}

func newHoldsListCmd(env *environment) *cobra.Command {
	cmd := newCmd("list", "the holds with their counts (newest first)", holdsDesc, noArgs)
	fs := cmd.Flags()
	var c connFlags
	c.addDB(fs)
	feed := addFeed(fs, "only holds of this feed")
	status := &choice{allowed: []string{"open", "approved", "rejected"}}
	fs.Var(status, "status", "only holds in this state: open, approved or rejected")
	limit := fs.Int("limit", 100, "at most this many")
	out := addOutput(fs, true, "table", "csv", "json")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		db, _, err := c.openStore(cmd.Context(), env)
		if err != nil {
			return err
		}
		defer db.Close()
		holds, err := db.ListHolds(cmd.Context(), store.HoldFilter{Feed: feed.name, Status: connector.HoldStatus(status.v), Limit: *limit})
		if err != nil {
			return err
		}
		r := records{header: []string{"id", "created", "feed", "kind", "status", "removals", "active", "decided_by", "reason"}}
		var open []string
		for _, h := range holds {
			r.rows = append(r.rows, []string{strconv.FormatInt(h.ID, 10), h.CreatedAt.UTC().Format(time.RFC3339), h.Feed, string(h.Kind),
				string(h.Status), strconv.Itoa(h.Counts.Removals), strconv.Itoa(h.Counts.Active), h.DecidedBy, h.Reason})
			r.items = append(r.items, h)
			if h.Status == connector.HoldOpen {
				open = append(open, strconv.FormatInt(h.ID, 10))
			}
		}
		if err := out.print(cmd, env, "holds", r); err != nil {
			return err
		}
		if len(open) > 0 {
			return attentionf("%d open holds await a decision (%s): hrsync holds show ID", len(open), strings.Join(open, ", "))
		}
		return nil
	}
	return cmd
}

func newHoldsShowCmd(env *environment) *cobra.Command {
	cmd := newCmd("show ID", "one hold: counts, reason, the people or accounts affected", `
Show one hold: its counts, its reason, its decision, and a sample of the people (or,
for a clean-up or offboarding, the accounts) it affects. --format csv lists every
one of them, with --out FILE to a file; --format json prints the hold with the sample.

Exits 3 when the hold is open: a person must decide it.`, exactArgs(1, "one hold ID"))
	fs := cmd.Flags()
	var c connFlags
	c.addDB(fs)
	sample := fs.Int("sample", 20, "how many of the affected people to print (table and JSON)")
	out := addOutput(fs, true, "table", "csv", "json")
	cmd.Example = "  hrsync holds show 7\n  hrsync holds show 7 --format csv --out held.csv"
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		id, err := parseID(cmd, "hold", args[0])
		if err != nil {
			return err
		}
		format, err := out.resolve(cmd)
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		db, _, err := c.openStore(ctx, env)
		if err != nil {
			return err
		}
		defer db.Close()
		h, err := db.GetHold(ctx, id)
		if err != nil {
			return fmt.Errorf("hold %d: %w", id, err)
		}
		w, done, err := out.create(env)
		if err != nil {
			return err
		}
		n, err := showHold(ctx, env, db, h, max(*sample, 0), format, w)
		if err := done(fmt.Sprintf("%d affected people of hold %d", n, id), err); err != nil {
			return err
		}
		if h.Status == connector.HoldOpen {
			return attentionf("hold %d is open and awaits a decision: hrsync holds approve|reject %d --by NAME --reason TEXT", id, id)
		}
		return nil
	}
	return cmd
}

// showHold prints hold h to w in format, with sample affected people (table,
// JSON) or every one of them (CSV); it returns how many it printed.
func showHold(ctx context.Context, env *environment, db *store.DB, h connector.Hold, sample int, format string, w io.Writer) (int, error) {
	if h.Kind.IsJob() {
		csvPath := ""
		if format == "csv" {
			csvPath = "-"
		}
		return h.Counts.Removals, jobs.ShowHold(ctx, db, h, sample, csvPath, format == "json", w, env.stderr)
	}
	if format == "csv" {
		return writeHoldCSV(ctx, db, h.ID, w)
	}
	ws, err := db.HoldWorkers(ctx, h.ID, connector.WorkerKey{}, sample)
	if err != nil {
		return 0, err
	}
	if format == "json" {
		h.Workers = ws
		return len(ws), json.NewEncoder(w).Encode(h)
	}
	printHold(w, h, ws)
	return len(ws), nil
}

func newHoldsDecideCmd(env *environment, approve bool) *cobra.Command {
	verb, short, long := "reject", "reject a hold: the accounts stay as they are", `
Reject the hold ID: the accounts stay as they are, and the same facts never remove
them (a new fact for a person is decided afresh). --by and --reason are required:
the decision is kept with the hold and in the audit trail, one row per person.`
	if approve {
		verb, short, long = "approve", "approve a hold: its removals run", `
Approve the hold ID: the held removals of a live hold run through the converger (a
running daemon converges them); an upload hold's events are published; a clean-up or
offboarding runs with hrsync holds run ID. --by and --reason are required: the
decision is kept with the hold and in the audit trail, one row per person.

--sample-batch N lets only the first N accounts (a clean-up's or offboarding's) or
people (a live or upload hold's, in the order the hold lists them) run, as
a test; the hold stays open for the decision on the rest, which stay held. A live
hold's sampled people are due at once (a running daemon converges them); an upload
hold's sampled leavers are published (only their leaving events); a job's run with
hrsync holds run ID. The person who caused the hold may not approve a sample.`
	}
	cmd := newCmd(verb+" ID", short, long, exactArgs(1, "one hold ID"))
	fs := cmd.Flags()
	var c connFlags
	c.addDB(fs)
	by := fs.String("by", "", "`NAME` of who decides (required)")
	reason := fs.String("reason", "", "`TEXT` saying why (required)")
	var sampleBatch *int
	if approve {
		c.addNATS(fs) // an upload hold's events are published
		sampleBatch = fs.Int("sample-batch", 0, "let only the hold's first N accounts or people run as a test (the hold stays open)")
		cmd.Example = "  hrsync holds approve 7 --by alice --reason \"acme confirmed the leavers\"\n" +
			"  hrsync holds approve 12 --sample-batch 50 --by alice --reason \"test on a small group\""
	} else {
		cmd.Example = "  hrsync holds reject 7 --by alice --reason \"truncated file\""
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		id, err := parseID(cmd, "hold", args[0])
		if err != nil {
			return err
		}
		if strings.TrimSpace(*by) == "" || strings.TrimSpace(*reason) == "" {
			return usagef(cmd, "holds %s: --by and --reason are required: the decision is audited", verb)
		}
		ctx := cmd.Context()
		db, _, err := c.openStore(ctx, env)
		if err != nil {
			return err
		}
		defer db.Close()
		if sampleBatch != nil && *sampleBatch != 0 {
			h, err := db.AllowSample(ctx, id, *sampleBatch, *by, *reason)
			if err != nil {
				return err
			}
			switch h.Kind {
			case connector.HoldUpload:
				n, err := publishUploadSample(ctx, &c, db, h.ID)
				if err != nil {
					return fmt.Errorf("hold %d: the sample of %d is approved, but publishing its leavers stopped after %d events (run this command again to finish): %w",
						h.ID, h.Sample, n, err)
				}
				fmt.Fprintf(env.stdout, "hold %d: the first %d of %d people may leave as a test (approved by %s): %d events published; the rest waits for the decision\n",
					h.ID, h.Sample, h.Counts.Removals, *by, n)
			case connector.HoldLive:
				fmt.Fprintf(env.stdout, "hold %d: the first %d of %d removals may run as a test (approved by %s): they are due now, and a running daemon converges them; the rest waits for the decision\n",
					h.ID, h.Sample, h.Counts.Removals, *by)
			default:
				fmt.Fprintf(env.stdout, "hold %d: the first %d of %d accounts may run as a test (approved by %s); run them with hrsync holds run %d\n",
					h.ID, h.Sample, h.Counts.Removals, *by, h.ID)
			}
			return nil
		}
		return decideHold(ctx, env, &c, db, id, connector.HoldDecision{Approve: approve, By: *by, Reason: *reason})
	}
	return cmd
}

// decideHold approves or rejects hold id, and publishes an approved upload's events.
func decideHold(ctx context.Context, env *environment, c *connFlags, db *store.DB, id int64, d connector.HoldDecision) error {
	h, err := db.DecideHold(ctx, id, d)
	if errors.Is(err, connector.ErrConflict) && d.Approve {
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
	case h.Status == connector.HoldOpen:
		fmt.Fprintf(env.stdout, "hold %d: approval %d of %d recorded (by %s); it needs another approver, not %s\n",
			h.ID, len(h.Approvals), h.Needed(), d.By, strings.Join(h.Approvals, " or "))
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

// writeHoldCSV writes every worker of hold id to w as CSV, a page at a time, and
// returns how many. Every cell is escaped against formula injection
// (connector.EscapeCSVCell).
func writeHoldCSV(ctx context.Context, db *store.DB, id int64, w io.Writer) (int, error) {
	cw := csv.NewWriter(w)
	if err := cw.Write(holdCSVHeader); err != nil {
		return 0, err
	}
	const page = 1000
	after := connector.WorkerKey{}
	n := 0
	for {
		ws, err := db.HoldWorkers(ctx, id, after, page)
		if err != nil {
			return n, err
		}
		for _, hw := range ws {
			row := []string{strconv.FormatInt(id, 10), hw.Worker.Feed, hw.Worker.WorkerID, hw.Name, hw.Email, hw.AccountID,
				string(hw.Action), strconv.FormatInt(hw.Version, 10), hw.At.UTC().Format(time.RFC3339)}
			for i := range row {
				row[i] = connector.EscapeCSVCell(row[i])
			}
			if err := cw.Write(row); err != nil {
				return n, err
			}
		}
		n += len(ws)
		if len(ws) < page {
			break
		}
		after = ws[len(ws)-1].Worker
	}
	cw.Flush()
	return n, cw.Error()
}
