package main

import (
	"context"
	"fmt"

	"github.com/hrsync/hrsync/connector"
)

// eraseRequested is the daemon converger's EraseFunc: it runs the erasure that an
// hrsync.worker.erasure_requested.v1 event asked for exactly as "hrsync erase"
// does (findErasure, then run), with the daemon's erasure key and the feed's
// retention policy. The event's reason and requester are kept in the tombstone
// and the audit, with the event's id. An error leaves the request recorded: the
// converger retries it and raises a review item saying why (see docs/erasure.md).
func (a *app) eraseRequested(ctx context.Context, r connector.ErasureRequest) error {
	lms, err := a.LMS()
	if err != nil {
		return err
	}
	e, err := findErasure(ctx, a.db, lms, a.set.erasureKey, r.Worker)
	if err != nil {
		return err
	}
	by := "event " + r.FactID
	if r.RequestedBy != "" {
		by = r.RequestedBy + " (" + by + ")"
	}
	d, err := e.run(ctx, a.db, lms, a.set.retention.keep(r.Worker.Feed), r.Reason, by)
	if err != nil {
		return err
	}
	// From here on the person is named only by the pseudonym, in the log too.
	pseudo := connector.ErasedID(e.Hash)
	a.log.Info("erased on request", "feed", r.Worker.Feed, "erased_id", pseudo, "event", r.FactID, "account_id", e.Account.ID,
		"learning_records", d.Training, "facts", d.Report.Facts, "workers", d.Report.Workers, "dead_letters", d.Report.DeadLetters)
	if d.Report.HoldPayloads > 0 {
		a.log.Warn("erased person still named in held roster uploads; reject them or delete them by hand",
			"erased_id", pseudo, "holds", d.Report.HoldPayloads)
	}
	if d.Training == connector.TrainingUnsupported {
		a.log.Warn(fmt.Sprintf("learning records of account %s not deleted: the LMS cannot delete them through hrsync; delete them in the LMS by hand", e.Account.ID),
			"erased_id", pseudo)
	}
	return nil
}
