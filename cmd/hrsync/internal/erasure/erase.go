package erasure

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
)

// ResidueStore is what "hrsync erase" needs of the store besides Store: the
// residue check of --verify. Implemented by *store.DB.
type ResidueStore interface {
	Store
	// FindResidue returns the columns that still contain one of needles.
	FindResidue(ctx context.Context, needles []string) ([]store.Residue, error)
}

// Request is one "hrsync erase": the worker, why and who asked, the feed's
// retention (Keep), and whether to only show what would happen (DryRun) and to
// search the store for the person's identifiers afterwards (Verify).
type Request struct {
	Worker     connector.WorkerKey
	Reason, By string
	Key        []byte
	Keep       bool
	DryRun     bool
	Verify     bool
}

// Erase finds and erases r.Worker (or with r.DryRun, says what it would do) and
// writes what it did to out.
func Erase(ctx context.Context, db ResidueStore, lms connector.LMS, r Request, out io.Writer) error {
	e, err := Find(ctx, db, lms, r.Key, r.Worker)
	if err != nil {
		return err
	}
	w, subj, acct := r.Worker, e.Subject, e.Account
	pseudo := connector.ErasedID(e.Hash)
	policy := "keep learning records, pseudonymised"
	if !r.Keep {
		policy = "delete learning records"
	}
	if r.DryRun {
		fmt.Fprintf(out, "dry run: erasing %s would\n", w)
		if e.Found {
			fmt.Fprintf(out, "  anonymise and deactivate LMS account %s (%s)\n", acct.ID, policy)
		} else {
			fmt.Fprintln(out, "  find no LMS account")
		}
		fmt.Fprintf(out, "  delete %d facts of %d workers (%s) and their links, reviews and dead letters\n", subj.Facts, len(subj.Chain), strings.Join(subj.Chain, ", "))
		fmt.Fprintf(out, "  pseudonymise their audit rows as %s and write a tombstone\n", pseudo)
		if subj.Erased {
			fmt.Fprintln(out, "  (the worker was erased before)")
		}
		return nil
	}

	d, err := e.Run(ctx, db, lms, r.Keep, r.Reason, r.By)
	switch {
	case !e.Found:
		fmt.Fprintf(out, "LMS: no account found for %s (links: %d)\n", w, len(subj.Accounts))
	case d.Training != "":
		fmt.Fprintf(out, "LMS account %s: anonymised and deactivated; learning records %s\n", acct.ID, d.Training)
	}
	if err != nil {
		return err
	}
	rep := d.Report
	fmt.Fprintf(out, "store: removed %d facts of %d workers, %d links, %d reviews, %d dead letters, %d held removals; pseudonymised %d audit rows\n",
		rep.Facts, rep.Workers, rep.Links, rep.Reviews, rep.DeadLetters, rep.HoldWorkers+rep.Removals, rep.Audit)
	fmt.Fprintf(out, "erased %s; from now on it is %s, and a new event for it is refused\n", w, pseudo)
	if rep.HoldPayloads > 0 {
		fmt.Fprintf(out, "warning: %d held roster uploads still name the person in their payload; reject them or delete them by hand\n", rep.HoldPayloads)
	}
	if d.Training == connector.TrainingUnsupported {
		fmt.Fprintln(out, "warning: the LMS cannot delete learning records through hrsync; delete them in the LMS by hand")
	}
	if r.Verify {
		res, err := db.FindResidue(ctx, d.Identifiers)
		if err != nil {
			return err
		}
		if len(res) == 0 {
			fmt.Fprintln(out, "verify: none of the person's identifiers is left in the store")
		}
		for _, r := range res {
			// Substring matches: a short worker id may match another worker's.
			fmt.Fprintf(out, "verify: check %s.%s: it contains an identifier of the person (or a longer string containing it)\n", r.Table, r.Column)
		}
	}
	return nil
}

// Requested runs the erasure that an hrsync.worker.erasure_requested.v1 event
// asked for exactly as "hrsync erase" does (Find, then Run), with the daemon's
// erasure key and the feed's retention policy (keep). The event's reason and
// requester are kept in the tombstone and the audit, with the event's id. An
// error leaves the request recorded: the converger retries it and raises a review
// item saying why (see docs/erasure.md). It logs under the pseudonym only.
func Requested(ctx context.Context, db Store, lms connector.LMS, key []byte, keep bool, r connector.ErasureRequest, log *slog.Logger) error {
	e, err := Find(ctx, db, lms, key, r.Worker)
	if err != nil {
		return err
	}
	by := "event " + r.FactID
	if r.RequestedBy != "" {
		by = r.RequestedBy + " (" + by + ")"
	}
	d, err := e.Run(ctx, db, lms, keep, r.Reason, by)
	if err != nil {
		return err
	}
	// From here on the person is named only by the pseudonym, in the log too.
	pseudo := connector.ErasedID(e.Hash)
	log.Info("erased on request", "feed", r.Worker.Feed, "erased_id", pseudo, "event", r.FactID, "account_id", e.Account.ID,
		"learning_records", d.Training, "facts", d.Report.Facts, "workers", d.Report.Workers, "dead_letters", d.Report.DeadLetters)
	if d.Report.HoldPayloads > 0 {
		log.Warn("erased person still named in held roster uploads; reject them or delete them by hand",
			"erased_id", pseudo, "holds", d.Report.HoldPayloads)
	}
	if d.Training == connector.TrainingUnsupported {
		log.Warn(fmt.Sprintf("learning records of account %s not deleted: the LMS cannot delete them through hrsync; delete them in the LMS by hand", e.Account.ID),
			"erased_id", pseudo)
	}
	return nil
}
