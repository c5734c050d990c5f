package connector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// JobStore is what running a job needs from the store. Implemented by package
// store; store/storetest checks it.
type JobStore interface {
	// GetHold returns the job's hold, with Sample set.
	GetHold(ctx context.Context, id int64) (Hold, error)
	// PendingJobItems returns up to limit pending items of the hold with seq at
	// most maxSeq (0: any), in seq order.
	PendingJobItems(ctx context.Context, hold int64, maxSeq, limit int) ([]JobItem, error)
	// FinishJobItems records the end of items (their Status, Detail and DoneAt) and
	// their audit rows (audit[i] is items[i]'s), in one transaction. An item that is
	// no longer pending is left as it is, without its audit row.
	FinishJobItems(ctx context.Context, hold int64, items []JobItem, audit []AuditEntry) error
	// JobCounts returns the hold's items counted by status.
	JobCounts(ctx context.Context, hold int64) (map[JobItemStatus]int, error)
	// LinkedHistoryReader tells who an item's account belongs to now.
	LinkedHistoryReader
}

// ErrJobNotRunnable: the hold is rejected, or open without an approved sample.
var ErrJobNotRunnable = errors.New("job is not approved")

// JobProgress is reported after every batch.
type JobProgress struct {
	Hold                  int64
	Total                 int // items the run may touch (the sample, or all)
	Finished              int // items finished, in this run and earlier ones
	Done, Skipped, Failed int // of this run
	Calls                 int // LMS calls of this run
	Elapsed               time.Duration
	ETA                   time.Duration // zero when unknown
	Remaining             int
}

// JobSummary is how a run ended.
type JobSummary struct {
	Hold    int64                 `json:"hold"`
	Kind    HoldKind              `json:"kind"`
	Feed    string                `json:"feed,omitempty"`
	Sample  bool                  `json:"sample"`
	Done    int                   `json:"done"`
	Skipped int                   `json:"skipped"`
	Failed  int                   `json:"failed"`
	Calls   int                   `json:"calls"`
	Elapsed time.Duration         `json:"elapsed"`
	Totals  map[JobItemStatus]int `json:"totals"`
	// Complete is true when the hold is approved and no item is pending.
	Complete bool `json:"complete"`
}

// JobRunner runs the approved part of a job in batches.
type JobRunner struct {
	LMS   LMS
	Store JobStore
	Now   func() time.Time
	// Policy gives a feed's policy (nil: DefaultPolicy), to decide who is employed.
	Policy func(feed string) Policy
	// Batch is the items per batch; default the LMS's bulk size, else 100.
	Batch int
	// Anonymise anonymises the account of an anonymise item (offboarding with a
	// retention policy that keeps learning records) and removes the worker's
	// personal data; it returns what the audit should say. Required for jobs with
	// anonymise items.
	Anonymise func(ctx context.Context, it JobItem, a Account) (string, error)
	Progress  func(JobProgress)
	Logger    *slog.Logger
}

// Run runs the pending items the hold's decision allows, batch by batch, until
// none is left, ctx is done, or the LMS fails in a way that is worth retrying later
// (then the error says so and a new Run resumes).
func (r JobRunner) Run(ctx context.Context, hold int64) (JobSummary, error) {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	log := r.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h, err := r.Store.GetHold(ctx, hold)
	if err != nil {
		return JobSummary{}, err
	}
	sum := JobSummary{Hold: hold, Kind: h.Kind, Feed: h.Feed}
	if !h.Kind.IsJob() {
		return sum, fmt.Errorf("hold %d is a %s hold: the converger runs it once approved, not hrsync holds run", hold, h.Kind)
	}
	maxSeq := 0
	switch {
	case h.Status == HoldApproved:
	case h.Status == HoldOpen && h.Sample > 0:
		maxSeq, sum.Sample = h.Sample, true
	case h.Status == HoldRejected:
		return sum, fmt.Errorf("hold %d was rejected by %s (%s): %w", hold, h.DecidedBy, h.Decision, ErrJobNotRunnable)
	default:
		return sum, fmt.Errorf("hold %d is open: approve it, or a sample of it, first (hrsync holds approve %d --by NAME --reason TEXT, with --sample-batch N for a sample): %w", hold, hold, ErrJobNotRunnable)
	}
	batch := r.Batch
	bulk := 0
	if bd, ok := r.LMS.(BulkDeleter); ok {
		bulk = bd.MaxBulkDeletes(ctx)
	}
	if batch <= 0 {
		batch = 100
		if bulk > 0 {
			batch = bulk
		}
	}
	counts, err := r.Store.JobCounts(ctx, hold)
	if err != nil {
		return sum, err
	}
	total := 0
	for _, n := range counts {
		total += n
	}
	if maxSeq > 0 {
		total = min(total, maxSeq)
	}
	finished := counts[JobDone] + counts[JobSkipped] + counts[JobFailed]
	if maxSeq > 0 {
		finished = max(0, total-pendingUpTo(ctx, r.Store, hold, maxSeq))
	}
	start := now()
	log.Info("job run starting", "hold", hold, "kind", h.Kind, "feed", h.Feed, "sample", sum.Sample, "items", total, "finished_before", finished, "batch", batch, "bulk", bulk)
	for {
		if err := ctx.Err(); err != nil {
			sum.Elapsed = now().Sub(start)
			return sum, fmt.Errorf("stopped after %d items; run again to resume: %w", sum.Done+sum.Skipped+sum.Failed, err)
		}
		items, err := r.Store.PendingJobItems(ctx, hold, maxSeq, batch)
		if err != nil {
			return sum, err
		}
		if len(items) == 0 {
			break
		}
		ended, audit, calls, runErr := r.runBatch(ctx, h, items, bulk, now())
		sum.Calls += calls
		if len(ended) > 0 {
			// Commit what ended even when the batch stopped early, so that a resumed
			// run does not do it again.
			if err := r.Store.FinishJobItems(context.WithoutCancel(ctx), hold, ended, audit); err != nil {
				return sum, fmt.Errorf("record a batch of hold %d: %w", hold, err)
			}
		}
		for _, it := range ended {
			switch it.Status {
			case JobDone:
				sum.Done++
			case JobSkipped:
				sum.Skipped++
			case JobFailed:
				sum.Failed++
			}
		}
		finished += len(ended)
		if r.Progress != nil {
			el := now().Sub(start)
			p := JobProgress{Hold: hold, Total: total, Finished: finished, Done: sum.Done, Skipped: sum.Skipped, Failed: sum.Failed,
				Calls: sum.Calls, Elapsed: el, Remaining: max(total-finished, 0)}
			if n := sum.Done + sum.Skipped + sum.Failed; n > 0 && p.Remaining > 0 {
				p.ETA = time.Duration(float64(el) / float64(n) * float64(p.Remaining))
			}
			r.Progress(p)
		}
		if runErr != nil {
			sum.Elapsed = now().Sub(start)
			return sum, fmt.Errorf("stopped after %d items; run again to resume: %w", sum.Done+sum.Skipped+sum.Failed, runErr)
		}
		if len(ended) == 0 {
			return sum, errors.New("a batch ended no item; stopping rather than looping")
		}
	}
	sum.Elapsed = now().Sub(start)
	if sum.Totals, err = r.Store.JobCounts(ctx, hold); err != nil {
		return sum, err
	}
	sum.Complete = h.Status == HoldApproved && sum.Totals[JobPending] == 0
	log.Info("job run finished", "hold", hold, "done", sum.Done, "skipped", sum.Skipped, "failed", sum.Failed, "calls", sum.Calls, "elapsed", sum.Elapsed, "complete", sum.Complete)
	return sum, nil
}

// pendingUpTo counts the pending items with seq <= maxSeq (at most maxSeq).
func pendingUpTo(ctx context.Context, s JobStore, hold int64, maxSeq int) int {
	items, err := s.PendingJobItems(ctx, hold, maxSeq, maxSeq)
	if err != nil {
		return maxSeq
	}
	return len(items)
}

// runBatch re-checks items against the LMS and the store, then acts on those still
// due. It returns the items that ended (the rest stay pending) and their audit
// rows; err is set when the LMS failed in a way worth retrying, after which the
// run stops.
func (r JobRunner) runBatch(ctx context.Context, h Hold, items []JobItem, bulk int, at time.Time) (ended []JobItem, audit []AuditEntry, calls int, err error) {
	end := func(it JobItem, st JobItemStatus, detail string) {
		it.Status, it.Detail, it.DoneAt = st, detail, &at
		ended = append(ended, it)
		out := map[JobItemStatus]Outcome{JobDone: OutcomeOK, JobSkipped: OutcomeSkipped, JobFailed: OutcomeFailed}[st]
		who := it.Worker
		if it.Action == ActionAnonymise {
			// The worker may be erased by now: the audit names the account and the
			// pseudonym in the detail, never the worker id.
			who.WorkerID = ""
		}
		audit = append(audit, AuditEntry{At: at, Feed: who.Feed, WorkerID: who.WorkerID, AccountID: it.AccountID,
			Action: it.Action, Outcome: out, Detail: fmt.Sprintf("%s hold %d: %s", h.Kind, h.ID, detail)})
	}
	current, calls, err := r.current(ctx, items)
	if err != nil {
		return nil, nil, calls, err
	}
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = it.AccountID
	}
	linked, err := r.Store.LinkedHistories(ctx, ids)
	if err != nil {
		return nil, nil, calls, fmt.Errorf("read the workers linked to the batch's accounts: %w", err)
	}
	var dels []JobItem
	var anons []JobItem
	for _, it := range items {
		cur, ok := current[it.AccountID]
		if !ok {
			if it.Action == ActionDelete {
				end(it, JobDone, "already gone from the LMS")
			} else {
				end(it, JobSkipped, "gone from the LMS: nothing left to anonymise")
			}
			continue
		}
		if why := r.stillDue(h, it, cur, linked, at); why != "" {
			end(it, JobSkipped, why)
			continue
		}
		if it.Action == ActionAnonymise {
			anons = append(anons, it)
		} else {
			dels = append(dels, it)
		}
	}
	var n int
	n, err = r.delete(ctx, dels, bulk, end)
	calls += n
	if err != nil {
		return ended, audit, calls, err
	}
	for _, it := range anons {
		if r.Anonymise == nil {
			end(it, JobFailed, "this job anonymises accounts, and the run was given no way to (an erasure key is needed)")
			continue
		}
		detail, aerr := r.Anonymise(ctx, it, current[it.AccountID].Account)
		calls += 2
		switch {
		case aerr == nil:
			end(it, JobDone, detail)
		case IsPermanent(aerr):
			end(it, JobFailed, "anonymise: "+aerr.Error())
		default:
			return ended, audit, calls, fmt.Errorf("anonymise account %s: %w", it.AccountID, aerr)
		}
	}
	return ended, audit, calls, nil
}

// stillDue returns why item it must be skipped now, or "".
func (r JobRunner) stillDue(h Hold, it JobItem, cur AccountActivity, linked map[string]History, at time.Time) string {
	if hist, ok := linked[it.AccountID]; ok && h.Kind == HoldCleanup {
		p := DefaultPolicy()
		if r.Policy != nil {
			p = r.Policy(hist.Worker.Feed)
		}
		if w, _ := Want(hist.Facts, at, p); w.State == StateActive || w.State == StateSuspended || w.PreHire {
			return fmt.Sprintf("linked to %s, who is employed", hist.Worker)
		}
	}
	if h.Kind != HoldCleanup {
		return "" // offboarding removes the feed's accounts whatever their use
	}
	if it.Version != "" && cur.Account.Version != "" && it.Version != cur.Account.Version {
		return fmt.Sprintf("changed in the LMS since the report (version %s, now %s)", it.Version, cur.Account.Version)
	}
	if why := becameActive(it.Activity, cur.Activity); why != "" {
		return why + " since the report"
	}
	return ""
}

// becameActive says how activity now shows use that before did not, or "".
func becameActive(before, now Activity) string {
	switch {
	case !now.Known:
		return "activity can no longer be read"
	case now.LastLogin != nil && (before.LastLogin == nil || now.LastLogin.After(*before.LastLogin)):
		return "logged in at " + now.LastLogin.UTC().Format(time.RFC3339)
	case now.Enrollments > before.Enrollments:
		return fmt.Sprintf("enrolled in %d more courses", now.Enrollments-before.Enrollments)
	case now.Completions > before.Completions || now.Uploads > before.Uploads || now.Rewards > before.Rewards:
		return "has new completions, uploads or rewards"
	}
	return ""
}

// current reads the items' accounts and activity from the LMS, in batches where it
// can. An account missing from the result is gone.
func (r JobRunner) current(ctx context.Context, items []JobItem) (map[string]AccountActivity, int, error) {
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = it.AccountID
	}
	if out, calls, ok, err := activityBatches(ctx, r.LMS, ids); ok {
		if err != nil {
			err = fmt.Errorf("re-check: %w", err)
		}
		return out, calls, err
	}
	out := make(map[string]AccountActivity, len(items))
	calls := 0
	for _, id := range ids {
		a, err := r.LMS.GetAccount(ctx, id)
		calls++
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, calls, fmt.Errorf("re-read account %s: %w", id, err)
		}
		act, err := ReadActivity(ctx, r.LMS, id)
		calls++
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, calls, fmt.Errorf("re-check the activity of account %s: %w", id, err)
		}
		out[id] = AccountActivity{Account: a, Activity: act}
	}
	return out, calls, nil
}

// delete deletes items, in bulk calls where the LMS has them, conditionally on the
// version the report saw. Per-item outcomes go to end; an error worth retrying
// stops it (the items not ended stay pending).
func (r JobRunner) delete(ctx context.Context, items []JobItem, bulk int, end func(JobItem, JobItemStatus, string)) (int, error) {
	one := func(it JobItem, err error) error {
		switch {
		case err == nil:
			end(it, JobDone, "deleted")
		case errors.Is(err, ErrNotFound):
			end(it, JobDone, "already gone from the LMS")
		case errors.Is(err, ErrPrecondition):
			end(it, JobSkipped, "changed in the LMS since the report (its version no longer matches)")
		case IsPermanent(err):
			end(it, JobFailed, "delete: "+err.Error())
		default:
			return fmt.Errorf("delete account %s: %w", it.AccountID, err)
		}
		return nil
	}
	calls := 0
	if bd, ok := r.LMS.(BulkDeleter); ok && bulk > 0 {
		for i := 0; i < len(items); i += bulk {
			chunk := items[i:min(i+bulk, len(items))]
			dels := make([]Deletion, len(chunk))
			for j, it := range chunk {
				dels[j] = Deletion{ID: it.AccountID, Version: it.Version}
			}
			errs, err := bd.DeleteAccounts(ctx, dels)
			calls++
			if err != nil {
				return calls, fmt.Errorf("bulk delete of %d accounts: %w", len(dels), err)
			}
			if len(errs) != len(chunk) {
				return calls, fmt.Errorf("bulk delete of %d accounts answered %d results", len(dels), len(errs))
			}
			for j, it := range chunk {
				if err := one(it, errs[j]); err != nil {
					return calls, err
				}
			}
		}
		return calls, nil
	}
	for _, it := range items {
		// DeleteAccount is unconditional; the version was checked just before, in
		// the batch's re-check.
		err := r.LMS.DeleteAccount(ctx, it.AccountID)
		calls++
		if err := one(it, err); err != nil {
			return calls, err
		}
	}
	return calls, nil
}
