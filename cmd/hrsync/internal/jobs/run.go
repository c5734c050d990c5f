package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
)

// RunOptions tune RunHold: the accounts per batch (0: the LMS's bulk size, else
// 100), and for an offboarding that anonymises, the erasure key and the
// environment that holds the old keys.
type RunOptions struct {
	Batch  int
	Key    string
	Getenv func(string) string
}

// RunHold runs the approved part of the clean-up or offboarding hold id, in
// batches under the LMS's rate, with progress on e.Progress, then closes an
// offboarded feed once its every account is done. A run resumes where the last
// one stopped.
func (e Env) RunHold(ctx context.Context, id int64, o RunOptions) error {
	ctx = connector.WithLMSPriority(ctx, connector.LMSBackground) // waits behind live changes under the LMS's rate limit
	db, lms, log := e.Store, e.LMS, e.Log
	h, err := db.GetHold(ctx, id)
	if err != nil {
		return err
	}
	runner := connector.JobRunner{LMS: lms, Store: db, Policy: FeedPolicies(e.Feeds), Batch: o.Batch, Logger: log}
	if h.Kind == connector.HoldOffboard {
		if runner.Anonymise, err = OffboardAnonymiser(ctx, db, lms, o.Key, o.Getenv, h); err != nil {
			return err
		}
	}
	prog := NewProgress(e.Progress, "accounts")
	runner.Progress = func(p connector.JobProgress) {
		prog.Update(p.Finished, p.Total, fmt.Sprintf("done %d skipped %d failed %d, %d LMS calls", p.Done, p.Skipped, p.Failed, p.Calls))
	}
	sum, err := runner.Run(ctx, id)
	prog.Done()
	w := e.Out
	fmt.Fprintf(w, "hold %d (%s): this run %d done, %d skipped, %d failed, %d LMS calls in %s\n",
		id, sum.Kind, sum.Done, sum.Skipped, sum.Failed, sum.Calls, sum.Elapsed.Round(time.Millisecond))
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "all runs: %d done, %d skipped, %d failed, %d pending\n", sum.Totals[connector.JobDone],
		sum.Totals[connector.JobSkipped], sum.Totals[connector.JobFailed], sum.Totals[connector.JobPending])
	switch {
	case sum.Sample:
		fmt.Fprintf(w, "the test batch is done; check it (hrsync holds show %d --format csv), then approve the rest or reject it\n", id)
	case sum.Complete && h.Kind == connector.HoldOffboard:
		if err := db.CloseFeed(ctx, store.ClosedFeed{Feed: h.Feed, ClosedBy: h.DecidedBy, Reason: h.Decision, HoldID: id}); err != nil {
			return err
		}
		log.Info("feed closed after offboarding", "feed", h.Feed, "hold", id)
		fmt.Fprintf(w, "feed %s is closed: its events are dead-lettered and its roster uploads and tokens refused\n", h.Feed)
	}
	if sum.Totals[connector.JobFailed] > 0 {
		fmt.Fprintf(w, "see the failures: hrsync holds show %d --format csv\n", id)
	}
	return nil
}
