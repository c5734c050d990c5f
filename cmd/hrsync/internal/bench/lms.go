package bench

import (
	"context"
	"errors"
	"maps"
	"sync"
	"time"

	"github.com/hrsync/hrsync/connector"
)

// TimedLMS sits between the LMS and the guard. It counts every call the guard
// lets through (each attempt of a retried call is one), by operation, and records
// when each change of the current phase reached the LMS: the first write whose
// answer satisfies the phase's test, by the externalId of the account.
type TimedLMS struct {
	connector.LMS
	mu    sync.Mutex
	done  func(op string, a connector.Account) bool // nil: a successful create
	times map[string]time.Time
	calls map[string]int
}

// NewTimedLMS returns lms timed, with room for n changes, in the phase of hires:
// a change is done when its account is created.
func NewTimedLMS(lms connector.LMS, n int) *TimedLMS {
	return &TimedLMS{LMS: lms, times: make(map[string]time.Time, n), calls: map[string]int{}}
}

// phase starts a new phase: the times recorded so far are dropped, and a change is
// done once a write op returns an account for which done is true.
func (t *TimedLMS) phase(n int, done func(op string, a connector.Account) bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.done, t.times = done, make(map[string]time.Time, n)
}

func (t *TimedLMS) count(op string) {
	t.mu.Lock()
	t.calls[op]++
	t.mu.Unlock()
}

// wrote records a's change as done if this is the phase's write.
func (t *TimedLMS) wrote(op string, a connector.Account, err error) {
	if err != nil {
		return
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	ok := op == "CreateAccount"
	if t.done != nil {
		ok = t.done(op, a)
	}
	if _, seen := t.times[a.ExternalID]; ok && !seen {
		t.times[a.ExternalID] = now
	}
}

// Count returns the number of changes of the current phase done so far.
func (t *TimedLMS) Count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.times)
}

// Calls returns the calls made so far, by operation (the connector.LMS method).
func (t *TimedLMS) Calls() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.calls)
}

func (t *TimedLMS) GetAccount(ctx context.Context, id string) (connector.Account, error) {
	t.count("GetAccount")
	return t.LMS.GetAccount(ctx, id)
}

func (t *TimedLMS) FindAccounts(ctx context.Context, f connector.AccountFilter) ([]connector.Account, error) {
	t.count("FindAccounts")
	return t.LMS.FindAccounts(ctx, f)
}

func (t *TimedLMS) CreateAccount(ctx context.Context, a connector.Account) (connector.Account, error) {
	t.count("CreateAccount")
	out, err := t.LMS.CreateAccount(ctx, a)
	if err == nil && out.ExternalID == "" {
		out.ExternalID = a.ExternalID
	}
	t.wrote("CreateAccount", out, err)
	return out, err
}

func (t *TimedLMS) UpdateAccount(ctx context.Context, a connector.Account) (connector.Account, error) {
	t.count("UpdateAccount")
	out, err := t.LMS.UpdateAccount(ctx, a)
	t.wrote("UpdateAccount", out, err)
	return out, err
}

func (t *TimedLMS) SetActive(ctx context.Context, id string, active bool) (connector.Account, error) {
	t.count("SetActive")
	out, err := t.LMS.SetActive(ctx, id, active)
	t.wrote("SetActive", out, err)
	return out, err
}

func (t *TimedLMS) DeleteAccount(ctx context.Context, id string) error {
	t.count("DeleteAccount")
	return t.LMS.DeleteAccount(ctx, id)
}

func (t *TimedLMS) ListAccounts(ctx context.Context, startIndex, count int) (connector.AccountPage, error) {
	t.count("ListAccounts")
	return t.LMS.ListAccounts(ctx, startIndex, count)
}

// Bulk returns t as the guard should see it: with the bulk capabilities of the
// LMS behind it (connector.BulkDeleter, connector.ActivityLister and the batch
// writes, connector.AccountCreator, ActiveSetter and AccountUpdater), counted,
// when it has them and bulk is true; without any otherwise, so that every change
// takes the per-call path (--lms-bulk=false).
func (t *TimedLMS) Bulk(bulk bool) connector.LMS {
	bd, okD := t.LMS.(connector.BulkDeleter)
	al, okA := t.LMS.(connector.ActivityLister)
	cr, okC := t.LMS.(connector.AccountCreator)
	as, okS := t.LMS.(connector.ActiveSetter)
	up, okU := t.LMS.(connector.AccountUpdater)
	if !bulk || !okD || !okA || !okC || !okS || !okU {
		return t
	}
	return &timedBulk{TimedLMS: t, bd: bd, al: al, cr: cr, as: as, up: up}
}

// timedBulk is a TimedLMS that passes the bulk capabilities through.
type timedBulk struct {
	*TimedLMS
	bd connector.BulkDeleter
	al connector.ActivityLister
	cr connector.AccountCreator
	as connector.ActiveSetter
	up connector.AccountUpdater
}

var (
	_ connector.BulkDeleter    = (*timedBulk)(nil)
	_ connector.ActivityLister = (*timedBulk)(nil)
	_ connector.AccountCreator = (*timedBulk)(nil)
	_ connector.ActiveSetter   = (*timedBulk)(nil)
	_ connector.AccountUpdater = (*timedBulk)(nil)
)

func (b *timedBulk) MaxCreateBatch(ctx context.Context) int { return b.cr.MaxCreateBatch(ctx) }

// CreateAccounts is one call; each item created is a change done, as the
// CreateAccount it replaces.
func (b *timedBulk) CreateAccounts(ctx context.Context, accs []connector.Account) ([]connector.ItemResult, error) {
	b.count("CreateAccounts")
	res, err := b.cr.CreateAccounts(ctx, accs)
	for i, r := range res {
		if r.Account.ExternalID == "" && i < len(accs) {
			r.Account.ExternalID = accs[i].ExternalID
		}
		b.wrote("CreateAccount", r.Account, cmpErr(err, r.Err))
	}
	return res, err
}

func (b *timedBulk) MaxSetActiveBatch(ctx context.Context) int { return b.as.MaxSetActiveBatch(ctx) }

func (b *timedBulk) SetActiveMany(ctx context.Context, ids []string, active bool) ([]connector.ItemResult, error) {
	b.count("SetActiveMany")
	res, err := b.as.SetActiveMany(ctx, ids, active)
	for _, r := range res {
		b.wrote("SetActive", r.Account, cmpErr(err, r.Err))
	}
	return res, err
}

func (b *timedBulk) MaxUpdateBatch(ctx context.Context) int { return b.up.MaxUpdateBatch(ctx) }

func (b *timedBulk) UpdateAccounts(ctx context.Context, accs []connector.Account) ([]connector.ItemResult, error) {
	b.count("UpdateAccounts")
	res, err := b.up.UpdateAccounts(ctx, accs)
	for _, r := range res {
		b.wrote("UpdateAccount", r.Account, cmpErr(err, r.Err))
	}
	return res, err
}

// cmpErr is the first of a batch call's error and its item's.
func cmpErr(call, item error) error {
	if call != nil {
		return call
	}
	return item
}

func (b *timedBulk) MaxBulkDeletes(ctx context.Context) int { return b.bd.MaxBulkDeletes(ctx) }

func (b *timedBulk) DeleteAccounts(ctx context.Context, dels []connector.Deletion) ([]error, error) {
	b.count("DeleteAccounts")
	return b.bd.DeleteAccounts(ctx, dels)
}

func (b *timedBulk) MaxActivityBatch(ctx context.Context) int { return b.al.MaxActivityBatch(ctx) }

func (b *timedBulk) ActivityOf(ctx context.Context, ids []string) (map[string]connector.AccountActivity, error) {
	b.count("ActivityOf")
	return b.al.ActivityOf(ctx, ids)
}

// TimedLMS passes the batch reads of the LMS behind it through, counted, with
// --lms-bulk or without: reads shared by a claimed batch are part of the per-call
// path too (issue #12: "0.02 more for shared lookups of hires"). Without the
// capability behind it, MaxReadBatch is 0 and callers read one by one.
var _ connector.AccountBatchReader = (*TimedLMS)(nil)

// errNoBatchReads answers a batch read the LMS behind cannot make (MaxReadBatch
// was 0): never an empty answer, which would say "no such account".
var errNoBatchReads = errors.New("the LMS behind the bench cannot batch reads")

func (t *TimedLMS) MaxReadBatch(ctx context.Context) int {
	if r, ok := t.LMS.(connector.AccountBatchReader); ok {
		return r.MaxReadBatch(ctx)
	}
	return 0
}

func (t *TimedLMS) FindAccountsIn(ctx context.Context, attr connector.FilterAttr, values []string) (map[string][]connector.Account, error) {
	r, ok := t.LMS.(connector.AccountBatchReader)
	if !ok {
		return nil, errNoBatchReads
	}
	t.count("FindAccountsIn")
	return r.FindAccountsIn(ctx, attr, values)
}

func (t *TimedLMS) GetAccounts(ctx context.Context, ids []string) (map[string]connector.Account, error) {
	r, ok := t.LMS.(connector.AccountBatchReader)
	if !ok {
		return nil, errNoBatchReads
	}
	t.count("GetAccounts")
	return r.GetAccounts(ctx, ids)
}

// Completions passes connector.TrainingReader through, counted: the rehire
// training note a reactivation reads (connector/training.go).
func (t *TimedLMS) Completions(ctx context.Context, id string) ([]connector.CompletionRecord, error) {
	r, ok := t.LMS.(connector.TrainingReader)
	if !ok {
		return nil, connector.ErrTrainingUnknown
	}
	t.count("Completions")
	return r.Completions(ctx, id)
}

// MaxTrainingBatch and CompletionsOf pass connector.TrainingBatchReader
// through, counted.
func (t *TimedLMS) MaxTrainingBatch(ctx context.Context) int {
	if r, ok := t.LMS.(connector.TrainingBatchReader); ok {
		return r.MaxTrainingBatch(ctx)
	}
	return 0
}

func (t *TimedLMS) CompletionsOf(ctx context.Context, ids []string) (map[string][]connector.CompletionRecord, error) {
	r, ok := t.LMS.(connector.TrainingBatchReader)
	if !ok {
		return nil, connector.ErrTrainingUnknown
	}
	t.count("CompletionsOf")
	return r.CompletionsOf(ctx, ids)
}

var (
	_ connector.TrainingReader      = (*TimedLMS)(nil)
	_ connector.TrainingBatchReader = (*TimedLMS)(nil)
)
