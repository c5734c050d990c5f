package connector

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// The audit's intent rows (docs/audit.md). Before the converger makes an LMS
// call, it commits an audit row with outcome pending that names the action, the
// worker, the account if known, the hold that allowed it and its cause; the
// call's outcome replaces that row when the converge commits. A crash between the
// two leaves the pending row, and the worker's next converge resolves it by what
// the LMS shows. So every call the LMS applied has an audit row, whatever the
// crash.

// intentWriter batches the intent rows of concurrent converges into one insert
// (group commit): the first caller writes what is queued; callers arriving while
// it writes queue up, and the next of them writes all of those at once. So a
// batch of Concurrency workers costs about one insert per wave of LMS calls, not
// one per call, and no caller waits for a timer.
type intentWriter struct {
	store AuditIntents

	mu    sync.Mutex
	queue []*intentReq
	busy  bool // a caller is writing; the others wait
}

type intentReq struct {
	e    AuditEntry
	id   int64
	err  error
	lead bool          // handed the next write instead of a result
	done chan struct{} // signalled once: the result, or the lead

	// For a batch's parked write (batchwrite.go): the action to make once the
	// intent is committed, and what it came back with.
	act *Action
	res writeResult
	// taken: a flush took the request; its waiter waits for the round's end
	// even if its context is done, since the call may be in flight.
	taken bool
	// held reports whether the worker's lease is still held (nil: no lease to
	// check); a write whose lease ran out while its round was written is not made.
	held func() bool
}

// begin commits e as a pending audit row and returns its id.
func (w *intentWriter) begin(ctx context.Context, e AuditEntry) (int64, error) {
	r := &intentReq{e: e, done: make(chan struct{}, 1)}
	w.mu.Lock()
	w.queue = append(w.queue, r)
	if w.busy {
		w.mu.Unlock()
		<-r.done
		if !r.lead {
			return r.id, r.err
		}
		w.mu.Lock() // our turn: r is still in the queue
	}
	w.busy = true
	batch := w.queue
	w.queue = nil
	w.mu.Unlock()

	w.write(ctx, batch, r)

	w.mu.Lock()
	if len(w.queue) > 0 {
		next := w.queue[0]
		next.lead = true
		next.done <- struct{}{}
	} else {
		w.busy = false
	}
	w.mu.Unlock()
	return r.id, r.err
}

// write inserts batch and hands every request but self its result.
func (w *intentWriter) write(ctx context.Context, batch []*intentReq, self *intentReq) {
	es := make([]AuditEntry, len(batch))
	for i, r := range batch {
		es[i] = r.e
	}
	ids, err := w.store.BeginActions(ctx, es)
	if err == nil && len(ids) != len(batch) {
		err = fmt.Errorf("store returned %d ids for %d intents", len(ids), len(batch))
	}
	for i, r := range batch {
		if err != nil {
			r.err = err
		} else {
			r.id = ids[i]
		}
		if r != self {
			r.done <- struct{}{}
		}
	}
}

// intent is the pending audit row of action a of cl's worker, before the call at now.
func intent(cl Claim, a Action, have *Account, want Wanted, now time.Time) AuditEntry {
	e := AuditEntry{At: now, Feed: cl.Worker.Feed, WorkerID: cl.Worker.WorkerID, AccountID: a.AccountID, Action: a.Kind,
		Outcome: OutcomePending, Detail: a.Reason, Cause: a.Reason, HoldID: a.HoldID, FactIDs: want.FactIDs}
	if have != nil && have.ID == a.AccountID {
		e.Before = have.Version
	}
	return e
}

// resolvePending settles the pending audit rows that an earlier converge of the
// worker left (it crashed, or lost its lease, between the LMS call and its
// commit), by what the LMS shows now. It returns the rows with their outcome (by
// ID, so the store updates them), and leaves out any it could not settle: an LMS
// read that failed leaves it pending for the next converge.
func (c *Converger) resolvePending(ctx context.Context, w WorkerKey, pending []AuditEntry) []AuditEntry {
	var out []AuditEntry
	for _, p := range pending {
		outcome, acct, why, err := c.pendingOutcome(ctx, w, p)
		if err != nil {
			c.log.Warn("cannot resolve a pending audit row yet; it stays pending", "audit_id", p.ID, "feed", w.Feed,
				"worker_id", w.WorkerID, "action", p.Action, "err", err)
			continue
		}
		p.At, p.Outcome = c.cfg.Now(), outcome
		if acct != "" {
			p.AccountID = acct
		}
		label := map[Outcome]string{OutcomeOK: "applied (recovered)", OutcomeNotApplied: "not applied", OutcomeUnknown: "unknown"}[outcome]
		p.Detail = fmt.Sprintf("%s after a crash before its outcome was recorded: %s; %s", label, why, p.Detail)
		c.log.Info("pending audit row resolved", "audit_id", p.ID, "feed", w.Feed, "worker_id", w.WorkerID,
			"action", p.Action, "account_id", p.AccountID, "outcome", outcome)
		out = append(out, p)
	}
	return out
}

// pendingOutcome reads what the LMS shows of pending action p: the outcome, the
// account it concerns (a create's, once found), and why in words. p may be a
// predecessor's row, resolved by its successor (w): a create is looked up by the
// externalId of the worker that made it.
func (c *Converger) pendingOutcome(ctx context.Context, w WorkerKey, p AuditEntry) (Outcome, string, string, error) {
	if p.Feed != "" && p.WorkerID != "" {
		w = WorkerKey{Feed: p.Feed, WorkerID: p.WorkerID}
	}
	if p.Action == ActionCreate {
		found, err := c.cfg.LMS.FindAccounts(ctx, AccountFilter{Attr: ByExternalID, Value: w.ExternalID()})
		if err != nil {
			return "", "", "", err
		}
		if len(found) > 0 {
			return OutcomeOK, found[0].ID, fmt.Sprintf("the LMS has account %s with externalId %s", found[0].ID, w.ExternalID()), nil
		}
		return OutcomeNotApplied, "", "the LMS has no account with externalId " + w.ExternalID(), nil
	}
	if p.AccountID == "" {
		return OutcomeUnknown, "", "the row names no account", nil
	}
	a, err := c.cfg.LMS.GetAccount(ctx, p.AccountID)
	gone := errors.Is(err, ErrNotFound)
	if err != nil && !gone {
		return "", "", "", err
	}
	applied := func(ok bool, yes, no string) (Outcome, string, string, error) {
		if ok {
			return OutcomeOK, "", yes, nil
		}
		return OutcomeNotApplied, "", no, nil
	}
	switch {
	case p.Action == ActionDelete:
		return applied(gone, "the account is gone", "the account still exists")
	case gone:
		return OutcomeNotApplied, "", "the account is gone", nil
	case p.Action == ActionDeactivate:
		return applied(!a.Active, "the account is inactive", "the account is active")
	case p.Action == ActionReactivate:
		return applied(a.Active, "the account is active", "the account is inactive")
	case p.Action == ActionUpdate && p.Before != "" && a.Version != "":
		return applied(a.Version != p.Before, "the account's version changed since", "the account's version is unchanged")
	}
	return OutcomeUnknown, "", "the LMS cannot show whether it happened", nil
}

// batchIntents writes the intent rows of one claimed batch together: a worker
// that reaches its first LMS write gives its concurrency slot back and waits
// until every other worker of the batch is waiting too or has finished; then one
// insert commits all their intents, and they take their slots again for the
// calls. So a batch costs one intent insert per round of writes (usually one),
// not one per wave of Concurrency workers, and the LMS never sees more than
// Concurrency calls at once.
type batchIntents struct {
	store AuditIntents
	sem   chan struct{}
	// exec makes a round's parked writes (Converger.actMany); nil: begin only
	// commits intents, and the callers make their calls themselves.
	exec func(ctx context.Context, reqs []*intentReq, sem chan struct{})

	mu      sync.Mutex
	live    int // workers not finished
	waiting []*intentReq
	flushed chan struct{} // closed when the current round is written
	// adopted are the accounts that workers of the batch have matched without
	// being linked to them (an account made by hand before the hire), by the
	// worker that matched it first.
	adopted map[string]WorkerKey
}

// adopt records that w adopts the unlinked account id, and reports whether
// another worker of the batch adopted it first: then w must wait for the next
// batch, where that worker's link is committed and w's matching sees it (as two
// hires converged one after the other do), instead of both taking one account.
func (b *batchIntents) adopt(id string, w WorkerKey) (first WorkerKey, taken bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.adopted == nil {
		b.adopted = map[string]WorkerKey{}
	}
	if f, ok := b.adopted[id]; ok && f != w {
		return f, true
	}
	b.adopted[id] = w
	return WorkerKey{}, false
}

func newBatchIntents(store AuditIntents, n int, sem chan struct{}) *batchIntents {
	return &batchIntents{store: store, sem: sem, live: n, flushed: make(chan struct{})}
}

type batchIntentsKey struct{}

type leaseCheckKey struct{}

// withLeaseCheck gives a worker's converge the check of its lease, so that a
// write whose intent round outlasted the lease (the database slow or away
// while it was written) is not made: another converger may own the worker by
// then and make the same call (found by TestClusterFaults with a lease shorter
// than a database outage).
func withLeaseCheck(ctx context.Context, held func() bool) context.Context {
	return context.WithValue(ctx, leaseCheckKey{}, held)
}

// leaseCheck is the check withLeaseCheck gave ctx, or nil.
func leaseCheck(ctx context.Context) func() bool {
	h, _ := ctx.Value(leaseCheckKey{}).(func() bool)
	return h
}

func withBatchIntents(ctx context.Context, b *batchIntents) context.Context {
	return context.WithValue(ctx, batchIntentsKey{}, b)
}

// begin commits e as a pending audit row with the batch's round and returns its id.
func (b *batchIntents) begin(ctx context.Context, e AuditEntry) (int64, error) {
	r := &intentReq{e: e}
	b.park(ctx, r)
	return r.id, r.err
}

// beginAct parks the write a with its intent row e until the round goes out:
// the intent is committed with the round's, then a is made with the round's
// other writes of its kind (batchwrite.go).
func (b *batchIntents) beginAct(ctx context.Context, e AuditEntry, a Action) writeResult {
	r := &intentReq{e: e, act: &a, held: leaseCheck(ctx)}
	b.park(ctx, r)
	if r.err != nil {
		return writeResult{intentErr: r.err}
	}
	r.res.id = r.id
	return r.res
}

// park waits, with its concurrency slot given back, until r's round is written
// (and its writes made), or ctx is done before a flush took r.
func (b *batchIntents) park(ctx context.Context, r *intentReq) {
	b.mu.Lock()
	b.waiting = append(b.waiting, r)
	round := b.flushed
	last := len(b.waiting) == b.live
	b.mu.Unlock()
	<-b.sem // give the slot back while the others plan
	if last {
		b.flush(ctx)
	} else {
		select {
		case <-round:
		case <-ctx.Done():
			b.mu.Lock()
			taken := r.taken
			if !taken {
				b.waiting = slices.DeleteFunc(b.waiting, func(x *intentReq) bool { return x == r })
				r.err = ctx.Err()
			}
			b.mu.Unlock()
			if taken {
				<-round // its intent is being written, its call may be in flight: wait for the outcome
			}
		}
	}
	b.sem <- struct{}{}
}

// done says a worker of the batch finished; if every other live worker waits, it
// writes their round.
func (b *batchIntents) done(ctx context.Context) {
	b.mu.Lock()
	b.live--
	ready := len(b.waiting) > 0 && len(b.waiting) == b.live
	b.mu.Unlock()
	if ready {
		b.flush(ctx)
	}
}

// flush writes the waiting round, if still there, and releases its workers.
func (b *batchIntents) flush(ctx context.Context) {
	b.mu.Lock()
	batch, round := b.waiting, b.flushed
	b.waiting, b.flushed = nil, make(chan struct{})
	for _, r := range batch {
		r.taken = true
	}
	b.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	es := make([]AuditEntry, len(batch))
	for i, r := range batch {
		es[i] = r.e
	}
	ids, err := b.store.BeginActions(context.WithoutCancel(ctx), es)
	if err == nil && len(ids) != len(batch) {
		err = fmt.Errorf("store returned %d ids for %d intents", len(ids), len(batch))
	}
	var acts []*intentReq
	b.mu.Lock()
	for i, r := range batch {
		if err != nil {
			r.err = err
		} else {
			r.id = ids[i]
			if r.act != nil {
				acts = append(acts, r)
			}
		}
	}
	b.mu.Unlock()
	if len(acts) > 0 && b.exec != nil {
		// Every intent of the round is committed: now its calls, grouped by kind.
		b.exec(ctx, acts, b.sem)
	}
	close(round)
}
