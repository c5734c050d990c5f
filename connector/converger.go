package connector

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ConvergerHooks are optional callbacks for metrics and tests. Each may be nil.
type ConvergerHooks struct {
	// Action is called after every LMS action with its outcome.
	Action func(kind ActionKind, outcome Outcome)
	// Converged is called after each worker converge attempt with its duration:
	// from the start of its batch to the commit of the outcome.
	Converged func(w WorkerKey, d time.Duration, err error)
	// Review is called when a review item is raised.
	Review func(r Review)
	// Trace, if set, is called as each worker's converge starts, with the
	// context its store reads and LMS calls get; it returns the context to use
	// instead (one carrying a tracing span) and the function to call with the
	// converge's outcome when it ends. docs/tracing.md.
	Trace func(ctx context.Context, w WorkerKey) (context.Context, func(error))
	// Mirror is called for each first plan made from the account mirror's copy
	// (mirror.go): served true when it was carried out without a read, false
	// when the account was read because a stale copy could have changed it.
	Mirror func(served bool)
}

// ConvergerConfig configures a Converger. Zero values get the defaults listed.
type ConvergerConfig struct {
	Store ConvergerStore
	LMS   LMS
	Feeds Feeds
	// Policy returns the policy of a feed; default DefaultPolicy for every feed.
	Policy func(feed string) Policy
	Logger *slog.Logger
	// Owner names this converger in leases; default host-pid-random.
	Owner string
	// Lease is how long a claim holds a worker before another replica may take it
	// over; default 2 minutes. It must be longer than converging one worker takes.
	Lease time.Duration
	// Batch is how many workers one claim takes; default 64.
	Batch int
	// Concurrency is how many workers of a batch are converged at once; default 8.
	Concurrency int
	// Loops is how many claim batches Run works on at once; default 2, so that one
	// batch's LMS calls overlap another's database round trips.
	Loops int
	// Now is the clock; default time.Now.
	Now func() time.Time
	// PollInterval bounds how long Run sleeps before it looks for due work that
	// another replica recorded; default 1s. Local facts wake it at once (Notify), and
	// future effective dates wake it at their due time.
	PollInterval time.Duration
	// RetryBase and RetryMax bound the exponential backoff after a temporary LMS
	// failure; defaults 1s and 5m.
	RetryBase, RetryMax time.Duration
	// CallTimeout bounds the work on one worker, LMS calls included; default 1m.
	CallTimeout time.Duration
	Hooks       ConvergerHooks
	// Safeguard, if set, is asked before a plan that deactivates or deletes an
	// account runs, and may hold it for a person's decision (see safeguard.go).
	Safeguard Safeguard
	// EraseFunc runs the GDPR erasure that an erasure_requested fact asks for
	// (see erasure_request.go); nil keeps such requests pending.
	EraseFunc func(ctx context.Context, r ErasureRequest) error
	// Attributes learns from the answers to creates and updates which profile
	// fields the LMS does not keep, and leaves them out of plans (kept.go). Share
	// one with the reconciler of the same process (ReconcilerConfig.Attributes);
	// default: one of the converger's own, learning, with nothing ignored.
	Attributes *KeptAttributes
	// Mirror, if set, is the store's copy of the LMS accounts hrsync has seen
	// (mirror.go): a linked worker's state change is then made without reading
	// its account first, where a stale copy cannot change the outcome. nil:
	// every converge reads.
	Mirror AccountMirror
}

// Converger leases due workers and converges each LMS account to what the worker's
// facts imply. Several Convergers (in one process or in replicas sharing a store)
// split the work between them; the store's leases keep them from doing it twice.
type Converger struct {
	cfg ConvergerConfig
	log *slog.Logger

	mu   sync.Mutex
	wake chan struct{} // closed by Notify, then replaced

	paused atomic.Bool // the LMS said it is unavailable; for logging transitions once

	intents *intentWriter // writes the audit rows of LMS calls before they are made
}

// NewConverger checks cfg and fills in defaults.
func NewConverger(cfg ConvergerConfig) (*Converger, error) {
	if cfg.Store == nil || cfg.LMS == nil {
		return nil, errors.New("converger: Store and LMS are required")
	}
	if len(cfg.Feeds) == 0 {
		return nil, errors.New("converger: no feeds configured")
	}
	if cfg.Policy == nil {
		cfg.Policy = func(string) Policy { return DefaultPolicy() }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Owner == "" {
		cfg.Owner = DefaultOwner()
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.Lease, 2*time.Minute)
	def(&cfg.PollInterval, time.Second)
	def(&cfg.RetryBase, time.Second)
	def(&cfg.RetryMax, 5*time.Minute)
	def(&cfg.CallTimeout, time.Minute)
	if cfg.Batch <= 0 {
		cfg.Batch = 64
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.Loops <= 0 {
		cfg.Loops = 2
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Attributes == nil {
		cfg.Attributes, _ = NewKeptAttributes(cfg.Logger) // ignores nothing: cannot fail
	}
	cfg.Policy = withAttributes(cfg.Policy, cfg.Attributes)
	c := &Converger{cfg: cfg, log: cfg.Logger, wake: make(chan struct{}), intents: &intentWriter{store: cfg.Store}}
	return c, nil
}

// DefaultOwner returns a lease owner name unique to this process.
func DefaultOwner() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// Owner returns the name this converger uses in leases.
func (c *Converger) Owner() string { return c.cfg.Owner }

// Notify wakes Run's loops: new facts were recorded. It never blocks.
func (c *Converger) Notify() {
	c.mu.Lock()
	defer c.mu.Unlock()
	close(c.wake)
	c.wake = make(chan struct{})
}

// woken returns the channel the next Notify closes.
func (c *Converger) woken() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wake
}

// Run converges due workers until ctx is done, then finishes the batches in flight
// and returns nil. Each of its Loops sleeps until the next due time, a Notify, or
// PollInterval.
func (c *Converger) Run(ctx context.Context) error {
	c.log.Info("converger started", "owner", c.cfg.Owner, "batch", c.cfg.Batch, "concurrency", c.cfg.Concurrency, "loops", c.cfg.Loops)
	defer c.log.Info("converger stopped", "owner", c.cfg.Owner)
	var wg sync.WaitGroup
	for range c.cfg.Loops {
		wg.Go(func() { c.loop(ctx) })
	}
	wg.Wait()
	return nil
}

// adoptInBatch records, in a claimed batch, that w takes the account id it
// matched but is not linked to (nor is any worker of its chain), and reports
// the worker of the batch that took it first, if another did. Outside a batch,
// or for an account already linked to w's chain, nothing is recorded.
func (c *Converger) adoptInBatch(ctx context.Context, w WorkerKey, id string, hist History) (WorkerKey, bool) {
	b, ok := ctx.Value(batchIntentsKey{}).(*batchIntents)
	if !ok {
		return WorkerKey{}, false
	}
	for _, linked := range hist.Links {
		if linked == id {
			return WorkerKey{}, false
		}
	}
	return b.adopt(id, w)
}

// respectManualDeactivation drops a reactivation from plan when someone deactivated
// the account outside hrsync and the policy does not allow undoing that
// (KeepsManualDeactivation). It returns the review item that says so.
func (c *Converger) respectManualDeactivation(ctx context.Context, cl Claim, want Wanted, hist History, have *Account, plan []Action, pol Policy) ([]Action, *Review, error) {
	kept, reason, err := RespectManualDeactivation(ctx, c.cfg.Store, want, hist.Facts, have, plan, pol)
	if err != nil || reason == "" {
		return kept, nil, err
	}
	r := &Review{At: c.cfg.Now(), Feed: cl.Worker.Feed, WorkerID: cl.Worker.WorkerID, Candidates: []string{have.ID}, Reason: reason}
	return kept, r, nil
}

// RespectManualDeactivation drops a reactivation from plan when someone
// deactivated the account outside hrsync and the policy does not allow undoing
// that (KeepsManualDeactivation: hrsync's last state action on the account was
// not a deactivation, and HR recorded no hire, rehire or resume since). It
// returns the plan to run and, when it dropped the reactivation, why (the
// converger raises a review item with it). It only reads; the converger and
// the person's story ("hrsync explain") both plan with it.
func RespectManualDeactivation(ctx context.Context, store StateActionReader, want Wanted, facts []Fact, have *Account, plan []Action, pol Policy) ([]Action, string, error) {
	if pol.ReactivateManual || have == nil || !slices.ContainsFunc(plan, func(a Action) bool { return a.Kind == ActionReactivate }) {
		return plan, "", nil
	}
	last, err := store.LastStateActions(ctx, []string{have.ID})
	if err != nil {
		return nil, "", fmt.Errorf("read the account's audit: %w", err)
	}
	var entry *AuditEntry
	if e, ok := last[have.ID]; ok {
		entry = &e
	}
	if !KeepsManualDeactivation(entry, want, facts) {
		return plan, "", nil
	}
	kept := slices.DeleteFunc(slices.Clone(plan), func(a Action) bool { return a.Kind == ActionReactivate })
	return kept, fmt.Sprintf("account %s was deactivated outside hrsync while HR says the person works there; not reactivated (policy reactivate_manual is off)", have.ID), nil
}

// errLeaseLost: the worker's lease ran out before an action; do nothing more.
var errLeaseLost = errors.New("lease lost")

// batchLeases tracks the leases of one claim batch while it is converged.
type batchLeases struct {
	mu     sync.Mutex
	until  time.Time // all leases of the batch end then, unless renewed
	margin time.Duration
	lost   map[WorkerKey]bool
}

func newBatchLeases(claims []Claim, lease time.Duration) *batchLeases {
	b := &batchLeases{until: claims[0].LeaseUntil, margin: lease / 10, lost: map[WorkerKey]bool{}}
	for _, cl := range claims {
		if cl.LeaseUntil.Before(b.until) {
			b.until = cl.LeaseUntil
		}
	}
	return b
}

// held reports whether w's lease still holds at now, with a margin for clock skew
// between replicas.
func (b *batchLeases) held(w WorkerKey, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.lost[w] && now.Before(b.until.Add(-b.margin))
}

// renewLeases extends the batch's leases every third of a lease until the returned
// function is called.
func (c *Converger) renewLeases(ctx context.Context, b *batchLeases, keys []WorkerKey) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(max(c.cfg.Lease/3, time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			until := c.cfg.Now().Add(c.cfg.Lease)
			got, err := c.cfg.Store.ExtendLeases(ctx, c.cfg.Owner, keys, until)
			if err != nil {
				c.log.Warn("renewing leases failed; the batch stops acting when they run out", "err", err)
				continue
			}
			kept := make(map[WorkerKey]bool, len(got))
			for _, k := range got {
				kept[k] = true
			}
			b.mu.Lock()
			b.until = until
			for _, k := range keys {
				if !kept[k] {
					b.lost[k] = true
				}
			}
			b.mu.Unlock()
		}
	}()
	return func() { close(done); <-finished }
}

// minIdle is the shortest sleep of a loop that found due work it could not claim.
const minIdle = 20 * time.Millisecond

func (c *Converger) loop(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		if ctx.Err() != nil {
			return
		}
		if wait, paused := c.pause(); paused {
			// Claiming now would only burn the workers' retries on fast failures.
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
			continue
		}
		wake := c.woken()
		n, err := c.ConvergeOnce(ctx)
		if err != nil && ctx.Err() == nil {
			c.log.Error("converge pass failed; retrying", "err", err)
		}
		if n >= c.cfg.Batch && err == nil {
			continue // probably more due right now
		}
		wait := c.cfg.PollInterval
		if err == nil {
			if next, ok, err := c.cfg.Store.NextDue(ctx); err == nil && ok {
				if d := next.Sub(c.cfg.Now()); d < wait {
					wait = d
				}
			}
		}
		if wait <= 0 {
			if n > 0 {
				continue
			}
			// Due but nothing could be claimed (leased elsewhere): never spin.
			wait = minIdle
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-timer.C:
		}
	}
}

// minPause is the shortest wait of a loop paused because the LMS is unavailable.
const minPause = 10 * time.Millisecond

// pause reports whether the LMS says it cannot take calls now (see Availability),
// and how long to wait before asking again: until its retry time, but at most
// PollInterval and at least minPause. It logs when the converger pauses and resumes.
func (c *Converger) pause() (time.Duration, bool) {
	av, ok := c.cfg.LMS.(Availability)
	if !ok {
		return 0, false
	}
	up, retryAt := av.Available()
	if up {
		if c.paused.CompareAndSwap(true, false) {
			c.log.Info("converger resumed: the lms is available again", "owner", c.cfg.Owner)
		}
		return 0, false
	}
	if c.paused.CompareAndSwap(false, true) {
		c.log.Warn("converger paused: the lms is unavailable; no work is claimed until it is back",
			"owner", c.cfg.Owner, "retry_at", retryAt)
	}
	wait := c.cfg.PollInterval
	if d := retryAt.Sub(c.cfg.Now()); d > 0 && d < wait {
		wait = d
	}
	return max(wait, minPause), true
}

// Drain converges until no worker is due now. It is for one-shot runs and tests.
// Bounded: it stops after maxPasses claim passes.
func (c *Converger) Drain(ctx context.Context, maxPasses int) (int, error) {
	total := 0
	for range maxPasses {
		n, err := c.ConvergeOnce(ctx)
		total += n
		if err != nil || n == 0 {
			return total, err
		}
	}
	return total, fmt.Errorf("converger: still work due after %d passes", maxPasses)
}

// ConvergeOnce claims one batch of due workers and converges them: one read of
// their histories, the LMS calls (Concurrency at a time), then one commit of all
// outcomes. No transaction is open during the LMS calls. Work in flight is finished
// even if ctx is cancelled meanwhile, so that a shutdown does nothing twice and
// loses nothing. It returns how many workers it claimed.
func (c *Converger) ConvergeOnce(ctx context.Context) (int, error) {
	if ctx.Err() != nil {
		return 0, nil
	}
	claimedAt := c.cfg.Now()
	claims, err := c.cfg.Store.ClaimDue(ctx, c.cfg.Owner, claimedAt, c.cfg.Lease, c.cfg.Batch)
	if err != nil {
		return 0, fmt.Errorf("claim due workers: %w", err)
	}
	if len(claims) == 0 {
		return 0, nil
	}
	if comps, _, err := c.convergeClaims(ctx, claims, claimedAt); comps == nil {
		return len(claims), err
	}
	// A failed commit was logged: the leases expire and the workers are
	// converged again, which heals it.
	return len(claims), nil
}

// WorkerClaimer is the optional capability of a ConvergerStore that
// ConvergeWorker needs: leasing one named worker, due or not. Package store
// implements it.
type WorkerClaimer interface {
	// ClaimWorker leases w to owner until now+lease if w is known, not leased
	// (or its lease has expired at now), not superseded, and no predecessor of
	// it is leased; ok is false otherwise.
	ClaimWorker(ctx context.Context, owner string, w WorkerKey, now time.Time, lease time.Duration) (cl Claim, ok bool, err error)
}

// ErrWorkerBusy: ConvergeWorker could not lease the worker: another converger
// holds it (or a predecessor of it) right now, it was superseded by a rehire
// under a new id, or the store does not know it.
var ErrWorkerBusy = errors.New("connector: the worker cannot be leased now (leased by another converger, superseded, or unknown)")

// ConvergeWorker converges one worker now, whether or not it is due, exactly as
// ConvergeOnce converges a claimed batch (one of one): match, plan, safeguard,
// LMS calls, audit, commit. It returns the completion it committed, so that a
// caller can show what happened ("hrsync explain --apply"). It returns
// ErrWorkerBusy if the worker cannot be leased now, an error if the store
// cannot lease single workers, and the completion with an error when the
// converge failed (committed as a failed attempt, retried at its NextDue).
// A completion with Failed set and no error failed in an LMS call that its
// audit rows (outcome retry) describe.
func (c *Converger) ConvergeWorker(ctx context.Context, w WorkerKey) (Completion, error) {
	wc, ok := c.cfg.Store.(WorkerClaimer)
	if !ok {
		return Completion{}, errors.New("converger: the store cannot lease a single worker")
	}
	claimedAt := c.cfg.Now()
	cl, ok, err := wc.ClaimWorker(ctx, c.cfg.Owner, w, claimedAt, c.cfg.Lease)
	if err != nil {
		return Completion{}, fmt.Errorf("claim worker %s:%s: %w", w.Feed, w.WorkerID, err)
	}
	if !ok {
		return Completion{}, fmt.Errorf("%s:%s: %w", w.Feed, w.WorkerID, ErrWorkerBusy)
	}
	comps, errs, err := c.convergeClaims(ctx, []Claim{cl}, claimedAt)
	if err != nil {
		return Completion{}, err
	}
	if errs[0] != nil {
		// Committed as a failed attempt: the worker is retried at NextDue.
		return comps[0], fmt.Errorf("converge %s:%s failed (retried at %s): %w", w.Feed, w.WorkerID,
			comps[0].NextDue.UTC().Format(time.RFC3339), errs[0])
	}
	return comps[0], nil
}

// convergeClaims converges claimed workers (ConvergeOnce's body): it returns
// their completions and each one's converge error, in claims' order, and an
// error when the histories could not be read (no completions) or the outcomes
// not committed.
func (c *Converger) convergeClaims(ctx context.Context, claims []Claim, claimedAt time.Time) ([]Completion, []error, error) {
	work := context.WithoutCancel(ctx)
	start := time.Now()
	keys := make([]WorkerKey, len(claims))
	for i, cl := range claims {
		keys[i] = cl.Worker
	}
	hists, err := c.cfg.Store.LoadHistories(work, keys)
	if err != nil {
		// The leases expire and the workers are claimed again: nothing is lost.
		return nil, nil, fmt.Errorf("load histories: %w", err)
	}
	// The LMS calls that earlier converges of these workers began and never
	// recorded the outcome of (a crash): written before this claim, so their
	// writers no longer hold the workers.
	// A successor resolves the rows its predecessors left (rehired under a new
	// id): a superseded worker is never claimed again, and a successor is
	// claimed only once its predecessors' leases have ended.
	pendKeys, succOf := slices.Clone(keys), map[WorkerKey]WorkerKey{}
	for i, h := range hists {
		for _, f := range h.Facts {
			k := WorkerKey{Feed: f.Feed, WorkerID: f.WorkerID}
			if _, seen := succOf[k]; !seen && k != claims[i].Worker && h.SupersededBy == nil && f.Feed == claims[i].Worker.Feed {
				succOf[k] = claims[i].Worker
				pendKeys = append(pendKeys, k)
			}
		}
	}
	pending, err := c.intents.store.PendingActions(work, pendKeys, claimedAt)
	if err != nil {
		c.log.Warn("reading pending audit rows failed; they are resolved on a later converge", "err", err)
	}
	for pred, succ := range succOf {
		if rows, ok := pending[pred]; ok {
			pending[succ] = append(pending[succ], rows...)
			delete(pending, pred)
		}
	}

	// Renew the batch's leases while it works: a slow LMS must not let another
	// converger take a worker this one is still acting on.
	leases := newBatchLeases(claims, c.cfg.Lease)
	stopRenew := c.renewLeases(work, leases, keys)

	// The reads the batch's first plans would make, in as few LMS calls as it
	// allows (prefetch.go); nil when the LMS cannot batch them.
	reads := c.prefetch(work, claims, hists, pending)

	comps := make([]Completion, len(claims))
	errs := make([]error, len(claims))
	var wg sync.WaitGroup
	sem := make(chan struct{}, c.cfg.Concurrency)
	intents := newBatchIntents(c.intents.store, len(claims), sem)
	intents.exec = c.actMany // writes go out grouped by kind (batchwrite.go)
	bctx := withBatchIntents(work, intents)
	for i, cl := range claims {
		sem <- struct{}{}
		wg.Go(func() {
			// The slot is given back before done: done may make the round's
			// calls, which take slots of their own.
			defer intents.done(work)
			defer func() { <-sem }()
			held := func() bool { return leases.held(cl.Worker, c.cfg.Now()) }
			wctx, end := withLeaseCheck(withWorkerReads(bctx, reads, cl.Worker), held), func(error) {}
			if c.cfg.Hooks.Trace != nil {
				wctx, end = c.cfg.Hooks.Trace(wctx, cl.Worker)
			}
			comps[i], errs[i] = c.convergeClaim(wctx, cl, hists[i], pending[cl.Worker], held)
			end(errs[i])
		})
	}
	wg.Wait()
	// The rehires' training notes, read for the batch at once.
	c.noteTraining(work, comps)
	stopRenew()

	// A worker whose lease was lost belongs to another converger now: committing
	// this outcome would overwrite its state. Its LMS actions stay in the log.
	kept := comps[:0:0]
	for i, comp := range comps {
		if comp.erased {
			continue // the erasure removed the worker from the store: nothing to commit
		}
		if !leases.held(claims[i].Worker, c.cfg.Now()) || errors.Is(errs[i], errLeaseLost) {
			c.log.Warn("lease lost while converging; the worker's new owner commits its outcome",
				"feed", claims[i].Worker.Feed, "worker_id", claims[i].Worker.WorkerID, "audit_rows_dropped", len(comp.Audit))
			continue
		}
		kept = append(kept, comp)
	}
	commitErr := c.cfg.Store.CompleteAll(work, kept)
	if commitErr != nil {
		// Those leases expire and the workers are converged again; converging is
		// idempotent, so this heals itself.
		c.log.Error("commit converge outcomes failed; the leases will expire and the workers be retried", "err", commitErr)
	}
	for i, comp := range comps {
		if comp.Review != nil && c.cfg.Hooks.Review != nil {
			c.cfg.Hooks.Review(*comp.Review)
		}
		if c.cfg.Hooks.Converged != nil {
			c.cfg.Hooks.Converged(claims[i].Worker, time.Since(start), errors.Join(errs[i], commitErr))
		}
	}
	if commitErr != nil {
		// ConvergeOnce's callers only log it; ConvergeWorker's must not report
		// an outcome that was not kept.
		return comps, errs, fmt.Errorf("commit converge outcomes: %w", commitErr)
	}
	return comps, errs, nil
}

// convergeClaim converges one claimed worker and returns the completion to commit.
// A failure becomes a completion too (a retry time), so nothing is lost.
func (c *Converger) convergeClaim(ctx context.Context, cl Claim, hist History, pending []AuditEntry, held func() bool) (Completion, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	defer cancel()
	resolved := c.resolvePending(ctx, cl.Worker, pending)
	if len(resolved) > 0 {
		// Committed before this converge's own calls (SettleActions); if that
		// fails, they are committed with the outcome, as before.
		if err := c.intents.store.SettleActions(ctx, resolved); err != nil {
			c.log.Warn("committing resolved audit rows before acting failed; they are committed with the outcome", "feed", cl.Worker.Feed,
				"worker_id", cl.Worker.WorkerID, "err", err)
		}
	}
	comp, err := c.converge(ctx, cl, hist, held)
	if err != nil {
		comp = Completion{Failed: true, NextDue: c.cfg.Now().Add(c.backoff(cl.Attempts, err))}
		c.log.Warn("converge failed; will retry", "feed", cl.Worker.Feed, "worker_id", cl.Worker.WorkerID,
			"attempt", cl.Attempts+1, "retry_at", comp.NextDue, "err", err)
	}
	comp.Claim, comp.Owner = cl, c.cfg.Owner
	comp.Audit = append(resolved, comp.Audit...)
	// A call an earlier converge made and never recorded (a crash) may have
	// changed the account after its mirrored copy was taken: the copy goes
	// (before this converge's own sightings, which are newer), and the next
	// converge reads the account (mirror.go).
	if c.cfg.Mirror != nil && len(pending) > 0 {
		var forget []MirrorUpdate
		for _, e := range pending {
			if e.AccountID != "" {
				forget = append(forget, c.gone(e.AccountID))
			}
		}
		comp.Mirror = append(forget, comp.Mirror...)
	}
	return comp, err
}

// backoff is exponential with full jitter, at least what the LMS asked for.
func (c *Converger) backoff(attempts int, err error) time.Duration {
	d := float64(c.cfg.RetryBase) * math.Pow(2, float64(min(attempts, 20)))
	d = min(d, float64(c.cfg.RetryMax))
	d = d/2 + mrand.Float64()*d/2
	var le *LMSError
	if errors.As(err, &le) && le.RetryAfter > time.Duration(d) {
		return le.RetryAfter
	}
	return time.Duration(d)
}

// converge does the work for one worker: want, have, plan, act. It returns the
// completion to commit. An error means "retry later" with nothing else to record.
func (c *Converger) converge(ctx context.Context, cl Claim, hist History, held func() bool) (out Completion, err error) {
	if hist.SupersededBy != nil {
		// The successor owns the account now; it folds this worker's facts too.
		return Completion{}, nil
	}
	feed, ok := c.cfg.Feeds[cl.Worker.Feed]
	if !ok {
		return c.review(cl, nil, fmt.Sprintf("feed %q is not configured; facts are kept, nothing is done", cl.Worker.Feed), nil), nil
	}
	pol := c.cfg.Policy(feed.Name)
	now := c.cfg.Now()
	want, next := Want(hist.Facts, now, pol)
	want.Worker = cl.Worker
	if want.Erasure != nil {
		return c.erase(ctx, cl, want, hist, held)
	}
	comp := Completion{NextDue: next}
	if want.State == StateAbsent {
		return comp, nil // nothing due yet: touch nothing, wake at next
	}
	if held, done, err := c.settleBeforeRead(ctx, cl, want, hist, next, comp, pol); done {
		return held, err
	}

	m, err := c.match(ctx, feed, want, hist)
	if err != nil {
		return Completion{}, err
	}
	var servedPlan []Action // the plan made from the mirror's copy, when it is carried out
	if m.Mirrored {
		servedPlan = c.mirrorServes(ctx, cl, want, hist, m.Account, pol)
		served := servedPlan != nil
		if c.cfg.Hooks.Mirror != nil {
			c.cfg.Hooks.Mirror(served)
		}
		if !served {
			// The mirror's copy may be stale, and this plan depends on it:
			// read. The batch's reads are spent, so this match reads the LMS.
			if m, err = c.match(ctx, feed, want, hist); err != nil {
				return Completion{}, err
			}
		}
	}
	if m.Account != nil && !m.Mirrored {
		c.remember(&comp, c.seen(*m.Account))
	}
	comp.Unlink = m.Unlink
	if len(m.Ambiguous) > 0 {
		r := c.review(cl, &want, fmt.Sprintf("%d accounts match %s; refusing to guess", len(m.Ambiguous), m.By), m.Ambiguous)
		r.NextDue = next
		return r, nil
	}
	var have *Account
	if m.Account != nil {
		have = m.Account
		if first, taken := c.adoptInBatch(ctx, cl.Worker, have.ID, hist); taken {
			c.log.Info("account matched by two workers of one batch; this one waits for the next batch",
				"feed", cl.Worker.Feed, "worker_id", cl.Worker.WorkerID, "account_id", have.ID, "first_worker_id", first.WorkerID)
			return Completion{NextDue: now}, nil
		}
		comp.AccountID = have.ID
		for _, prev := range want.PreviousWorkerIDs {
			if _, linked := hist.Links[prev]; linked {
				comp.ReleasePredecessors = append(comp.ReleasePredecessors, prev)
			}
		}
	}

	plan := servedPlan // judged by the rules on changes made by hand already
	var manual *Review
	if plan == nil {
		plan = Plan(want, have, pol)
		if plan, manual, err = c.respectManualDeactivation(ctx, cl, want, hist, have, plan, pol); err != nil {
			return Completion{}, err
		}
	}
	if manual != nil {
		comp.Review = manual
		comp.Audit = append(comp.Audit, AuditEntry{At: manual.At, Feed: manual.Feed, WorkerID: manual.WorkerID,
			AccountID: have.ID, Action: ActionReactivate, Outcome: OutcomeSkipped, Detail: manual.Reason, FactIDs: want.FactIDs})
	}
	// Every audit row of this converge names the whole plan it was part of.
	planText := PlanString(plan)
	defer func() {
		for i := range out.Audit {
			if out.Audit[i].Plan == "" {
				out.Audit[i].Plan = planText
			}
		}
	}()
	if held, done, err := c.safeguard(ctx, cl, want, plan, next, comp); done {
		return held, err
	}
	mirrorBase := have // the account as the plan's writes so far leave it
	answered := false  // the last write's answer was the whole account
	updated := false   // an update was among the writes
	for i := 0; i < len(plan); i++ {
		a := plan[i]
		if !held() {
			return Completion{}, errLeaseLost // another converger may act on this worker now
		}
		if a.Kind == ActionDelete {
			act, err := ReadActivity(ctx, c.cfg.LMS, a.AccountID)
			if err != nil {
				return Completion{}, fmt.Errorf("read the activity of account %s before deleting it: %w", a.AccountID, err)
			}
			if act.Any() {
				// Never delete an account with any activity (or that the LMS cannot
				// vouch for): it stays deactivated.
				c.hookAction(a.Kind, OutcomeSkipped)
				comp.Audit = append(comp.Audit, AuditEntry{At: c.cfg.Now(), Feed: cl.Worker.Feed, WorkerID: cl.Worker.WorkerID,
					AccountID: a.AccountID, Action: a.Kind, Outcome: OutcomeSkipped, FactIDs: want.FactIDs,
					Detail: "kept, not deleted: " + describeActivity(act)})
				continue
			}
		}
		if a.Kind == ActionCreate && a.Account.Organization == "" && len(feed.Scope.Organizations) > 0 {
			a.Account.Organization = feed.Scope.Organizations[0] // where the feed's people belong
		}
		entry := AuditEntry{Feed: cl.Worker.Feed, WorkerID: cl.Worker.WorkerID,
			AccountID: a.AccountID, Action: a.Kind, Detail: a.Reason, FactIDs: want.FactIDs, Cause: a.Reason, HoldID: a.HoldID}
		// Committed before the call: a crash after it leaves this row pending,
		// and the next converge resolves it (docs/audit.md).
		in := intent(cl, a, have, want, c.cfg.Now())
		if in.Plan == "" {
			in.Plan = planText
		}
		// An update followed by a state change of the same account is one call
		// where the LMS can (ActiveUpdater): the state change's intent row is
		// committed first, then the update's with the call (fuseState).
		state, stateID := c.fuseState(ctx, cl, plan, i, have, want, planText)
		if state != nil {
			a.setsActive, a.Account.Active = true, state.Kind == ActionReactivate
			i++ // the state change is this call's too
		}
		// With the batch's other writes of its kind, where it is part of one.
		wr := c.write(ctx, in, a)
		if err := wr.intentErr; err != nil {
			comp.Failed, comp.NextDue = true, now.Add(c.backoff(cl.Attempts, err))
			c.log.Warn("recording an LMS call before making it failed; not made, will retry", "action", a.Kind,
				"feed", cl.Worker.Feed, "worker_id", cl.Worker.WorkerID, "retry_at", comp.NextDue, "err", err)
			return comp, nil
		}
		if wr.leaseLost {
			// Not made: the lease ran out while the intent was written, and the
			// worker may be another converger's now. Say so on the intent row if
			// the store lets us; else the next converge resolves it by the LMS.
			in.ID, in.Outcome, in.At = wr.id, OutcomeNotApplied, c.cfg.Now()
			in.Detail = "not made: the lease ran out while the call was being recorded; " + in.Detail
			if err := c.intents.store.SettleActions(context.WithoutCancel(ctx), []AuditEntry{in}); err != nil {
				c.log.Warn("settling an LMS call not made failed; the worker's next converge resolves it",
					"audit_id", wr.id, "feed", cl.Worker.Feed, "worker_id", cl.Worker.WorkerID, "err", err)
			}
			return Completion{}, errLeaseLost
		}
		entry.ID, entry.Before = wr.id, in.Before
		acct, err := wr.acct, wr.err
		entry.At = c.cfg.Now()
		if err == nil {
			entry.Outcome = OutcomeOK
			if a.Kind == ActionCreate || a.Kind == ActionUpdate {
				c.cfg.Attributes.Observe(a.Account, acct) // what the LMS did not keep
			}
			if acct.ID != "" {
				entry.AccountID = acct.ID
				comp.AccountID = acct.ID
			}
			if a.Kind == ActionCreate || a.Kind == ActionDeactivate || a.Kind == ActionReactivate {
				active := a.Kind == ActionReactivate || a.Kind == ActionCreate && a.Account.Active
				entry.ActiveAfter = &active
			}
			if a.Kind == ActionReactivate && a.Reason == ReasonEmployedAgain && a.AccountID != "" {
				// Read for the whole batch once its writes are done (noteTraining).
				comp.training = append(comp.training, trainingNote{audit: len(comp.Audit), account: a.AccountID, validity: pol.CourseValidity})
			}
			if a.Kind == ActionDelete {
				comp.Unlink, comp.AccountID = true, "" // the account is gone; Want keeps it gone
				c.remember(&comp, c.gone(a.AccountID))
			} else if seen, ok, whole := afterWrite(a, mirrorBase, acct); ok {
				c.remember(&comp, c.seen(seen))
				mirrorBase = &seen // a later action of this plan changes it further
				// (a fused update's answer, or what it sent, has the new state)
				answered = whole
				updated = updated || a.Kind == ActionUpdate
			}
			if state != nil {
				// The state change made by the same call: its own audit row (its
				// intent row, given its outcome), as if made on its own.
				active := state.Kind == ActionReactivate
				se := AuditEntry{ID: stateID, At: entry.At, Feed: cl.Worker.Feed, WorkerID: cl.Worker.WorkerID, AccountID: entry.AccountID,
					Action: state.Kind, Outcome: OutcomeOK, Detail: state.Reason, FactIDs: want.FactIDs, Cause: state.Reason,
					HoldID: state.HoldID, ActiveAfter: &active, Plan: planText}
				comp.Audit = append(comp.Audit, entry)
				c.hookAction(a.Kind, OutcomeOK)
				entry = se
				a = *state
				if a.Kind == ActionReactivate && a.Reason == ReasonEmployedAgain {
					comp.training = append(comp.training, trainingNote{audit: len(comp.Audit), account: entry.AccountID, validity: pol.CourseValidity})
				}
			}
			comp.Audit = append(comp.Audit, entry)
			c.hookAction(a.Kind, OutcomeOK)
			// The reason may quote HR's free text (a leave reason): DEBUG only.
			c.log.Info("lms action", "action", a.Kind, "feed", cl.Worker.Feed, "worker_id", cl.Worker.WorkerID,
				"account_id", entry.AccountID)
			c.log.Debug("lms action reason", "action", a.Kind, "feed", cl.Worker.Feed, "worker_id", cl.Worker.WorkerID,
				"reason", a.Reason)
			continue
		}
		switch {
		case wr.unknown:
			// A batch create (the call, or this item) failed in a way that
			// leaves open whether the LMS made the account (a lost answer). Its
			// intent row stays pending, as after a crash; the next converge
			// settles it and looks the account up before it plans (batchwrite.go).
			c.hookAction(a.Kind, OutcomeRetry)
			comp.Failed, comp.NextDue = true, now.Add(c.backoff(cl.Attempts, err))
			c.log.Warn("lms batch create failed and may have been applied; will look up before retrying", "feed", cl.Worker.Feed,
				"worker_id", cl.Worker.WorkerID, "retry_at", comp.NextDue, "err", err)
			return comp, nil
		case a.Kind == ActionCreate && errors.Is(err, ErrConflict):
			c.hookAction(a.Kind, OutcomeReview)
			r := c.review(cl, &want, fmt.Sprintf("cannot create account: userName or externalId %q is taken by an account this feed may not touch or did not match (%v)", a.Account.UserName, err), nil)
			if entry.ID != 0 {
				// The pending row of this create gets its outcome.
				entry.Outcome, entry.Detail = OutcomeReview, "not created: "+err.Error()
				comp.Audit = append(comp.Audit, entry)
			}
			r.Audit = append(comp.Audit, r.Audit...)
			r.AccountID, r.NextDue = comp.AccountID, next
			return r, nil
		case errors.Is(err, ErrNotFound) && a.AccountID != "":
			// The account vanished between read and write: forget the link, look again.
			c.hookAction(a.Kind, OutcomeRetry)
			entry.Outcome, entry.Detail = OutcomeRetry, "account disappeared: "+err.Error()
			comp.Audit = append(comp.Audit, entry)
			comp.Unlink, comp.AccountID = true, ""
			c.remember(&comp, c.gone(a.AccountID))
			comp.Failed, comp.NextDue = true, now.Add(c.backoff(cl.Attempts, err))
			if m.Mirrored && cl.Attempts == 0 {
				// Planned from the mirror: this is how a deletion by hand is
				// found. Look again at once (once: a second time backs off).
				comp.NextDue = now
			}
			return comp, nil
		case IsTemporary(err) || isKind(err, KindAuth):
			c.hookAction(a.Kind, OutcomeRetry)
			entry.Outcome, entry.Detail = OutcomeRetry, err.Error()
			comp.Audit = append(comp.Audit, entry)
			if errors.Is(err, ErrPrecondition) && a.AccountID != "" {
				// Changed since it was read or mirrored: the next converge reads it.
				c.remember(&comp, c.gone(a.AccountID))
				if m.Mirrored && cl.Attempts == 0 {
					// The mirror's copy was stale, which its version showed:
					// read and plan again at once (once: a second time backs off).
					comp.Failed, comp.NextDue = true, now
					return comp, nil
				}
			}
			comp.Failed, comp.NextDue = true, now.Add(c.backoff(cl.Attempts, err))
			c.log.Warn("lms action failed; will retry", "action", a.Kind, "feed", cl.Worker.Feed,
				"worker_id", cl.Worker.WorkerID, "retry_at", comp.NextDue, "err", err)
			return comp, nil
		default:
			c.hookAction(a.Kind, OutcomeFailed)
			entry.Outcome, entry.Detail = OutcomeFailed, err.Error()
			r := c.review(cl, &want, fmt.Sprintf("%s failed permanently: %v", a.Kind, err), nil)
			r.Audit = append(append(comp.Audit, entry), r.Audit...)
			r.AccountID, r.NextDue = comp.AccountID, next
			return r, nil
		}
	}
	if m.Mirrored && answered && !updated && len(Plan(want, mirrorBase, pol)) > 0 {
		// Planned from the mirror, and the LMS's answer shows the account was
		// changed by hand since the copy (mirror.go): converge again, from it.
		// Not after an update: an answer that still differs from what was just
		// written is the LMS's way of keeping it (a value it normalises), and
		// converging again would write it again, for ever.
		comp.NextDue = now
	}
	return comp, nil
}

func isKind(err error, k ErrorKind) bool {
	var le *LMSError
	return errors.As(err, &le) && le.Kind == k
}

func (c *Converger) hookAction(k ActionKind, o Outcome) {
	if c.cfg.Hooks.Action != nil {
		c.cfg.Hooks.Action(k, o)
	}
}

// review builds a completion that raises a review item and touches nothing.
func (c *Converger) review(cl Claim, w *Wanted, reason string, candidates []string) Completion {
	r := &Review{At: c.cfg.Now(), Feed: cl.Worker.Feed, WorkerID: cl.Worker.WorkerID, Reason: reason, Candidates: candidates}
	var facts []string
	if w != nil {
		facts = w.FactIDs
	}
	// The reason may quote a userName (an email) or an LMS's words: DEBUG only;
	// the review item keeps it for the people who resolve it.
	c.log.Warn("review item raised", "feed", cl.Worker.Feed, "worker_id", cl.Worker.WorkerID, "candidates", len(candidates))
	c.log.Debug("review item reason", "feed", cl.Worker.Feed, "worker_id", cl.Worker.WorkerID, "reason", reason)
	return Completion{Review: r, Audit: []AuditEntry{{At: r.At, Feed: r.Feed, WorkerID: r.WorkerID,
		Action: ActionNone, Outcome: OutcomeReview, Detail: reason, FactIDs: facts}}}
}

// act runs one action against the LMS.
func (c *Converger) act(ctx context.Context, a Action) (Account, error) {
	switch a.Kind {
	case ActionCreate:
		return c.cfg.LMS.CreateAccount(ctx, a.Account)
	case ActionUpdate:
		if a.setsActive {
			return c.cfg.LMS.(ActiveUpdater).UpdateAccountActive(ctx, a.Account)
		}
		return c.cfg.LMS.UpdateAccount(ctx, a.Account)
	case ActionDeactivate:
		return c.cfg.LMS.SetActive(ctx, a.AccountID, false)
	case ActionReactivate:
		return c.cfg.LMS.SetActive(ctx, a.AccountID, true)
	case ActionDelete:
		return Account{}, c.cfg.LMS.DeleteAccount(ctx, a.AccountID)
	}
	return Account{}, Permanent(fmt.Errorf("action %s is not supported by this converger", a.Kind))
}

// AccountMatch is what matching found for a worker: the account (nil: none),
// the rule that found it, the candidates when a rule found several, and
// whether the worker's own link points at an account the LMS no longer has.
type AccountMatch struct {
	Account *Account
	// By is the rule that matched, in words ("link of w1", externalId "hr:w1").
	By string
	// Ambiguous are the account ids of the candidates when one rule matched more
	// than one: the converger raises a review item and does nothing.
	Ambiguous []string
	// Unlink: the worker's link names an account that is gone.
	Unlink bool
	// Mirrored: Account is the account mirror's copy, not a read (mirror.go).
	Mirrored bool
}

// FindAccount finds w's account as the converger does before it plans: its
// link, a predecessor's link, then the rules of Matcher (externalId, employee
// number, email), shared with the reconciler. Two candidates for one rule stop
// the search: a person must decide. It only reads, so "hrsync explain" and the
// console's person page show the match the converger would make.
func FindAccount(ctx context.Context, lms LMS, links LinkReader, feed Feed, w Wanted, hist History) (AccountMatch, error) {
	return findAccount(ctx, lms, links, nil, feed, w, hist)
}

// match is FindAccount with the batch's prefetched reads, which serve this
// first plan only (prefetch.go).
func (c *Converger) match(ctx context.Context, feed Feed, w Wanted, hist History) (AccountMatch, error) {
	return findAccount(ctx, c.cfg.LMS, c.cfg.Store, takeWorkerReads(ctx), feed, w, hist)
}

func findAccount(ctx context.Context, lms LMS, links LinkReader, reads *batchReads, feed Feed, w Wanted, hist History) (AccountMatch, error) {
	var res AccountMatch
	chain := append([]string{w.Worker.WorkerID}, w.PreviousWorkerIDs...)
	for i, id := range chain {
		accID, ok := hist.Links[id]
		if !ok {
			continue
		}
		var a Account
		var err error
		mirrored := false
		if got, gone, ok := reads.account(accID); ok {
			a, mirrored = got, reads.mirrored[accID]
			if gone {
				err = notFoundPrefetched(accID)
			}
		} else {
			a, err = lms.GetAccount(ctx, accID)
		}
		switch {
		case errors.Is(err, ErrNotFound):
			if i == 0 {
				res.Unlink = true
			}
			continue
		case err != nil:
			return res, fmt.Errorf("read linked account %s: %w", accID, err)
		}
		res.Account, res.By, res.Mirrored = &a, "link of "+id, mirrored
		return res, nil
	}

	m, err := Matcher{LMS: lms, Links: links, reads: reads}.Match(ctx, feed, w)
	if err != nil {
		return res, err
	}
	res.Account, res.By = m.Account, m.By()
	for _, a := range m.Ambiguous {
		res.Ambiguous = append(res.Ambiguous, a.ID)
	}
	return res, nil
}

// describeActivity says in words why an account counts as used.
func describeActivity(a Activity) string {
	if !a.Known {
		return "the LMS cannot tell whether the account was used"
	}
	return fmt.Sprintf("the account has activity (last login %v, %d enrollments, %d completions, %d uploads, %d rewards)",
		a.LastLogin != nil, a.Enrollments, a.Completions, a.Uploads, a.Rewards)
}

// beginIntent commits the intent row of an LMS call: with its batch's round when
// the call is part of a claimed batch (ConvergeOnce), else on its own.
func (c *Converger) beginIntent(ctx context.Context, e AuditEntry) (int64, error) {
	if b, ok := ctx.Value(batchIntentsKey{}).(*batchIntents); ok {
		return b.begin(ctx, e)
	}
	return c.intents.begin(ctx, e)
}

// settleBeforeRead puts a removal into its burst before the account is read, when
// the store's own record says one is due: the worker is linked, its facts want the
// account inactive, and hrsync's last state action on it left it active. While the
// burst settles, and when it is held, the LMS is not called at all; once it passes,
// the converge reads the account and acts as usual (the safeguard then answers the
// same removal again, counted once). So settling costs no LMS call: a leave is still
// one read and one write. Where the record is not enough (no link, an account
// hrsync never set, a deletion policy), the plan's own removal is judged after the
// read, as before.
func (c *Converger) settleBeforeRead(ctx context.Context, cl Claim, want Wanted, hist History, next time.Time, comp Completion, pol Policy) (Completion, bool, error) {
	id, linked := hist.Links[cl.Worker.WorkerID]
	if c.cfg.Safeguard == nil || want.State != StateInactive || !linked {
		return comp, false, nil
	}
	last, err := c.cfg.Store.LastStateActions(ctx, []string{id})
	if err != nil {
		return comp, false, nil // the account is read and the plan judged as usual
	}
	e, ok := last[id]
	if !ok || !ManualDeactivation(&e) { // hrsync did not leave it active
		return comp, false, nil
	}
	var removal []Action
	for _, a := range Plan(want, &Account{ID: id, ExternalID: cl.Worker.ExternalID(), Active: true, Profile: want.Profile}, pol) {
		if a.Kind.Removes() {
			removal = append(removal, a)
			break
		}
	}
	if len(removal) == 0 {
		return comp, false, nil
	}
	return c.safeguard(ctx, cl, want, removal, next, comp)
}
