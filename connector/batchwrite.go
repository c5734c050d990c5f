package connector

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// Writes of a claimed batch, grouped by kind (docs/design.md, "One call per
// batch").
//
// Each worker of a batch plans on its own, exactly as a lone converge does: its
// reads, the rules on changes made by hand, the safeguard and its holds, the
// policies. When it reaches an LMS write, it parks the write with its intent row
// (batchIntents) instead of calling the LMS. Once every worker of the batch has
// parked a write or finished, one insert commits all the parked intents, then
// the writes go out grouped by kind, through the LMS's batch capabilities
// (AccountCreator, ActiveSetter, AccountUpdater, BulkDeleter) where it has them,
// at most their Max... items a call, and one call per write where it has not.
// Each worker then gets its own item's result, and handles it exactly as the
// result of its single call: one item's failure is that worker's outcome alone.
//
// So nothing waits for a batch to fill: a round goes out as soon as the workers
// already claimed have planned. Nothing reaches the LMS that a lone converge
// would not have sent, and every write has its intent row committed before it.
//
// A batch create that fails as a whole in a way that leaves open whether the LMS
// made the accounts (a timeout, a 5xx: the answer is lost) is not resent: each
// of its items keeps its intent row pending, as a crash would leave it, and the
// worker's next converge looks the account up (by externalId) before it plans
// again, so an account made by that call is found and adopted, not duplicated.

// writeResult is what a parked write came back with.
type writeResult struct {
	id        int64   // the intent row's id
	acct      Account // the account as the LMS answered
	intentErr error   // the intent row could not be committed: the call was not made
	err       error   // the call's (or its item's) error
	// unknown: err is a batch create's whole-call failure whose answer was lost;
	// the LMS may have made the account.
	unknown bool
	// leaseLost: the worker's lease ran out while its intent was committed; the
	// call was not made.
	leaseLost bool
}

// write commits the intent in of action a and makes the call: parked with its
// batch when the converge is part of one (ConvergeOnce), else at once.
func (c *Converger) write(ctx context.Context, in AuditEntry, a Action) writeResult {
	if b, ok := ctx.Value(batchIntentsKey{}).(*batchIntents); ok && b.exec != nil {
		return b.beginAct(ctx, in, a)
	}
	id, err := c.beginIntent(ctx, in)
	if err != nil {
		return writeResult{intentErr: err}
	}
	if held := leaseCheck(ctx); held != nil && !held() {
		return writeResult{id: id, leaseLost: true}
	}
	acct, err := c.act(ctx, a)
	return writeResult{id: id, acct: acct, err: err}
}

// actMany makes the calls of one round of parked writes, grouped by kind, up to
// cap(sem) at once (taking sem's slots, which the parked workers gave back), and
// sets each request's result.
func (c *Converger) actMany(ctx context.Context, reqs []*intentReq, sem chan struct{}) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.CallTimeout)
	defer cancel()
	var wg sync.WaitGroup
	run := func(fn func()) {
		sem <- struct{}{}
		wg.Go(func() { defer func() { <-sem }(); fn() })
	}
	groups := map[ActionKind][]*intentReq{}
	var fused []*intentReq
	for _, r := range reqs {
		if r.held != nil && !r.held() {
			r.res.leaseLost = true // its intent was committed too late: not made
			continue
		}
		if r.act.setsActive {
			fused = append(fused, r) // an update that also sets the state
			continue
		}
		groups[r.act.Kind] = append(groups[r.act.Kind], r)
	}
	if n := c.batchSize(ctx, ActionUpdate, len(fused)); n > 1 {
		for chunk := range slices.Chunk(fused, n) {
			run(func() { c.actFused(ctx, chunk) })
		}
	} else {
		for _, r := range fused {
			run(func() { r.res.acct, r.res.err = c.act(ctx, *r.act) })
		}
	}
	for _, kind := range ActionKinds {
		g := groups[kind]
		n := c.batchSize(ctx, kind, len(g))
		if n <= 1 {
			for _, r := range g {
				run(func() { r.res.acct, r.res.err = c.act(ctx, *r.act) })
			}
			continue
		}
		for chunk := range slices.Chunk(g, n) {
			run(func() { c.actChunk(ctx, kind, chunk) })
		}
	}
	wg.Wait()
}

// batchSize is how many writes of kind one call may carry: 1 (one call each)
// when there are fewer than two or the LMS has no batch capability for kind.
func (c *Converger) batchSize(ctx context.Context, kind ActionKind, n int) int {
	if n < 2 {
		return 1
	}
	var most int
	switch kind {
	case ActionCreate:
		if cr, ok := c.cfg.LMS.(AccountCreator); ok {
			most = cr.MaxCreateBatch(ctx)
		}
	case ActionUpdate:
		if up, ok := c.cfg.LMS.(AccountUpdater); ok {
			most = up.MaxUpdateBatch(ctx)
		}
	case ActionDeactivate, ActionReactivate:
		if as, ok := c.cfg.LMS.(ActiveSetter); ok {
			most = as.MaxSetActiveBatch(ctx)
		}
	case ActionDelete:
		if bd, ok := c.cfg.LMS.(BulkDeleter); ok {
			most = bd.MaxBulkDeletes(ctx)
		}
	}
	return max(most, 1)
}

// actChunk makes one batch call for chunk, all of kind, and sets each item's
// result: its own, or the call's error when the call failed as a whole.
func (c *Converger) actChunk(ctx context.Context, kind ActionKind, chunk []*intentReq) {
	var res []ItemResult
	var err error
	op := ""
	switch kind {
	case ActionCreate:
		op = "CreateAccounts"
		accs := make([]Account, len(chunk))
		for i, r := range chunk {
			accs[i] = r.act.Account
		}
		res, err = c.cfg.LMS.(AccountCreator).CreateAccounts(ctx, accs)
	case ActionUpdate:
		op = "UpdateAccounts"
		accs := make([]Account, len(chunk))
		for i, r := range chunk {
			accs[i] = r.act.Account
		}
		res, err = c.cfg.LMS.(AccountUpdater).UpdateAccounts(ctx, accs)
	case ActionDeactivate, ActionReactivate:
		op = "SetActiveMany"
		ids := make([]string, len(chunk))
		for i, r := range chunk {
			ids[i] = r.act.AccountID
		}
		res, err = c.cfg.LMS.(ActiveSetter).SetActiveMany(ctx, ids, kind == ActionReactivate)
	case ActionDelete:
		op = "DeleteAccounts"
		dels := make([]Deletion, len(chunk))
		for i, r := range chunk {
			dels[i] = Deletion{ID: r.act.AccountID}
		}
		var errs []error
		errs, err = c.cfg.LMS.(BulkDeleter).DeleteAccounts(ctx, dels)
		if err == nil {
			res = make([]ItemResult, len(errs))
			for i, e := range errs {
				res[i] = ItemResult{Err: e}
			}
		}
	}
	if err == nil && len(res) != len(chunk) {
		err = &LMSError{Kind: KindUnavailable, Op: op, Reason: fmt.Sprintf("%d results for %d items", len(res), len(chunk))}
	}
	if err != nil {
		unknown := kind == ActionCreate && answerLost(err)
		for _, r := range chunk {
			r.res.err, r.res.unknown = err, unknown
		}
		return
	}
	for i, r := range chunk {
		r.res.acct, r.res.err = res[i].Account, res[i].Err
		// An item of a batch create whose answer was lost is as unknown as the
		// whole call's would be.
		r.res.unknown = kind == ActionCreate && res[i].Err != nil && answerLost(res[i].Err)
	}
}

// answerLost reports whether a call that failed with err may have been applied:
// it is unavailable (a timeout, a broken connection) or was answered with a 5xx,
// and was sent (not failed fast by the guard: ErrNotSent).
func answerLost(err error) bool {
	if errors.Is(err, ErrNotSent) {
		return false
	}
	var le *LMSError
	if errors.As(err, &le) {
		return le.Kind == KindUnavailable || le.Status >= 500
	}
	return !errors.Is(err, ErrConflict) && !errors.Is(err, ErrNotFound) && !IsPermanent(err)
}

// fuseState returns the state change that follows the update plan[i] on the
// same account, with the id of its intent row, when the LMS can make both in one
// call (ActiveUpdater) and the row was committed; nil otherwise, and the two go
// out one after the other as before. The state change's intent row is committed
// on its own, before the update's (which is committed with the call, as any
// write's): so a crash after the call leaves both pending, and the next
// converge resolves each from what the LMS shows (docs/audit.md).
func (c *Converger) fuseState(ctx context.Context, cl Claim, plan []Action, i int, have *Account, want Wanted, planText string) (*Action, int64) {
	a := plan[i]
	if a.Kind != ActionUpdate || i+1 >= len(plan) || a.AccountID == "" {
		return nil, 0
	}
	next := plan[i+1]
	if (next.Kind != ActionReactivate && next.Kind != ActionDeactivate) || next.AccountID != a.AccountID {
		return nil, 0
	}
	au, ok := c.cfg.LMS.(ActiveUpdater)
	if !ok || !au.UpdatesActive(ctx) {
		return nil, 0
	}
	in := intent(cl, next, have, want, c.cfg.Now())
	if in.Plan == "" {
		in.Plan = planText
	}
	id, err := c.beginIntent(ctx, in)
	if err != nil {
		c.log.Warn("recording a state change before fusing it with its update failed; made as two calls", "feed", cl.Worker.Feed,
			"worker_id", cl.Worker.WorkerID, "err", err)
		return nil, 0
	}
	return &next, id
}

// actFused makes one UpdateAccountsActive call for chunk, updates that also set
// the account's state, and sets each item's result.
func (c *Converger) actFused(ctx context.Context, chunk []*intentReq) {
	accs := make([]Account, len(chunk))
	for i, r := range chunk {
		accs[i] = r.act.Account
	}
	res, err := c.cfg.LMS.(ActiveUpdater).UpdateAccountsActive(ctx, accs)
	if err == nil && len(res) != len(chunk) {
		err = &LMSError{Kind: KindUnavailable, Op: "UpdateAccountsActive", Reason: fmt.Sprintf("%d results for %d items", len(res), len(chunk))}
	}
	for i, r := range chunk {
		if err != nil {
			r.res.err = err
			continue
		}
		r.res.acct, r.res.err = res[i].Account, res[i].Err
	}
}
