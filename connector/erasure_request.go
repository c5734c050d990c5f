package connector

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErasureRequest is a GDPR erasure that an hrsync.worker.erasure_requested.v1
// event asked for (a fact of KindErasureRequested). The converger hands it to
// ConvergerConfig.EraseFunc, which runs the same erasure as "hrsync erase".
type ErasureRequest struct {
	// Worker is the worker the event named; the erasure covers its whole chain
	// (predecessors and successors through rehires).
	Worker WorkerKey
	// Reason and RequestedBy are the event's words. They are kept with the
	// tombstone and in the audit, so they must not name the person.
	Reason, RequestedBy string
	// FactID is "source#id" of the event.
	FactID string
}

// RequestOf returns the erasure request that fact f (KindErasureRequested) states.
func RequestOf(f Fact) ErasureRequest {
	return ErasureRequest{Worker: f.Key(), Reason: f.Reason, RequestedBy: f.RequestedBy, FactID: f.Source + "#" + f.ID}
}

// errNoEraseFunc: a converger without EraseFunc keeps erasure requests pending.
var errNoEraseFunc = errors.New("this converger cannot erase (no EraseFunc); the request is kept and retried")

// erase runs the erasure that want.Erasure asks for, instead of a plan. On
// success the store no longer knows the worker, so there is nothing to commit. A
// failure keeps the request (the fact stays, the worker is retried with backoff)
// and raises a review item that says why, so that a pending erasure is visible
// in "hrsync review list"; the review is not repeated while the reason is the same.
func (c *Converger) erase(ctx context.Context, cl Claim, want Wanted, hist History, held func() bool) (Completion, error) {
	r := RequestOf(*want.Erasure)
	// An erasure cannot be undone: like a deletion it passes the safeguard, so a
	// feed that suddenly asks to erase many people is held for a person.
	guarded := Completion{Claim: cl}
	plan := []Action{{Kind: ActionAnonymise, AccountID: hist.Links[cl.Worker.WorkerID],
		Reason: fmt.Sprintf("GDPR erasure requested by event %s", r.FactID)}}
	if held, done, err := c.safeguard(ctx, cl, want, plan, time.Time{}, guarded); done {
		for i := range held.Audit {
			held.Audit[i].Plan = PlanString(plan)
		}
		return held, err
	}
	if !held() {
		return Completion{}, errLeaseLost
	}
	err := errNoEraseFunc
	if c.cfg.EraseFunc != nil {
		err = c.cfg.EraseFunc(ctx, r)
	}
	if err == nil {
		c.hookAction(ActionAnonymise, OutcomeOK)
		return Completion{erased: true}, nil
	}
	c.hookAction(ActionAnonymise, OutcomeRetry)
	comp := Completion{Failed: true, NextDue: c.cfg.Now().Add(c.backoff(cl.Attempts, err))}
	comp.Review = &Review{At: c.cfg.Now(), Feed: cl.Worker.Feed, WorkerID: cl.Worker.WorkerID,
		Reason: fmt.Sprintf("GDPR erasure requested by event %s is pending: %v", r.FactID, err)}
	c.log.Warn("erasure pending; will retry", "feed", cl.Worker.Feed, "worker_id", cl.Worker.WorkerID,
		"event", r.FactID, "attempt", cl.Attempts+1, "retry_at", comp.NextDue, "err", err)
	return comp, nil
}
