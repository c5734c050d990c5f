package person

import (
	"context"
	"slices"
	"time"

	"github.com/hrsync/hrsync/connector"
)

// Converger converges one worker now, whether or not it is due, through the
// match, plan, safeguard, LMS calls and audit of the daemon. Implemented by
// *connector.Converger.
type Converger interface {
	ConvergeWorker(ctx context.Context, w connector.WorkerKey) (connector.Completion, error)
}

var _ Converger = (*connector.Converger)(nil)

// Applied is what converging one person now did: "sync now" on the console's
// person page, "hrsync explain --apply" on the command line.
type Applied struct {
	// Steps are the audit rows this converge wrote, oldest first: one per LMS
	// call with its outcome, or the hold or review that stopped it.
	Steps []connector.AuditEntry `json:"steps"`
	// AccountID is the account the worker is linked to after it.
	AccountID string `json:"account_id,omitempty"`
	// Waited is the end of the burst settle the converge waited for, if any.
	Waited time.Time `json:"waited_for_settle,omitzero"`
	// NextDue is when the converger comes back to the worker (a future date).
	NextDue time.Time `json:"next_due,omitzero"`
	// Failed: the attempt failed (a temporary LMS failure); it is retried at NextDue.
	Failed bool `json:"failed,omitempty"`
	// After is the account as the LMS has it after the converge.
	After *connector.Account `json:"after,omitempty"`
}

// Apply converges the person of story (told just before) now through conv and
// returns what it did, read back from the audit trail (the rows after the
// story's newest, including any another converger wrote meanwhile) and the
// LMS. A removal that settles into its burst (safeguard.settle) runs nothing
// at first: Apply waits for the burst to be judged, if that is within settle
// (and a second), and converges again, as the daemon would; waiting, if not
// nil, is told first. It returns ConvergeWorker's error as it is: one matching
// connector.ErrWorkerBusy if the worker cannot be leased now, and one that
// names the worker and its retry time if the converge failed.
func Apply(ctx context.Context, conv Converger, src Sources, story Story, settle time.Duration, now func() time.Time,
	auditLimit int, waiting func(until time.Time)) (*Applied, error) {
	wk := story.Worker
	var seen int64
	for _, e := range story.Audit {
		seen = max(seen, e.ID)
	}
	done := &Applied{}
	comp, err := conv.ConvergeWorker(ctx, wk)
	if err != nil {
		return nil, err
	}
	removes := slices.ContainsFunc(story.Plan, func(a connector.Action) bool { return a.Kind.Removes() })
	if len(comp.Audit) == 0 && removes && !comp.NextDue.IsZero() {
		if wait := comp.NextDue.Sub(now()); wait > 0 && wait <= settle+time.Second {
			if waiting != nil {
				waiting(comp.NextDue)
			}
			done.Waited = comp.NextDue
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			case <-t.C:
			}
			if comp, err = conv.ConvergeWorker(ctx, wk); err != nil {
				return nil, err
			}
		}
	}
	if comp.NextDue.After(now()) {
		done.NextDue = comp.NextDue
	}
	done.Failed = comp.Failed
	after, err := Tell(ctx, src, wk, now(), auditLimit)
	if err != nil {
		return nil, err
	}
	for _, e := range after.Audit {
		if e.ID > seen {
			done.Steps = append(done.Steps, e)
		}
	}
	slices.Reverse(done.Steps)
	done.AccountID, done.After = comp.AccountID, after.Account
	if done.AccountID == "" && after.Account != nil {
		done.AccountID = after.Account.ID
	}
	return done, nil
}
