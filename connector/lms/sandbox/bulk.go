package sandbox

import (
	"context"
	"slices"

	"github.com/hrsync/hrsync/connector"
)

// DefaultMaxBulk is how many deletions one DeleteAccounts call, and one SCIM
// bulk request, may carry unless WithMaxBulk says otherwise.
const DefaultMaxBulk = 1000

var (
	_ connector.BulkDeleter    = (*LMS)(nil)
	_ connector.ActivityLister = (*LMS)(nil)
)

// WithMaxBulk sets MaxBulkDeletes, which is also the maxOperations that the SCIM
// server's bulk endpoint allows; n <= 0 turns bulk off (MaxBulkDeletes 0, and the
// SCIM server says bulk.supported=false).
func WithMaxBulk(n int) Option {
	return func(l *LMS) {
		if n <= 0 {
			n = -1
		}
		l.maxBulk = n
	}
}

// MaxBulkDeletes implements connector.BulkDeleter: DefaultMaxBulk, or what
// WithMaxBulk set (0 when it turned bulk off).
func (l *LMS) MaxBulkDeletes(context.Context) int {
	switch {
	case l.maxBulk == 0:
		return DefaultMaxBulk
	case l.maxBulk < 0:
		return 0
	}
	return l.maxBulk
}

// DeleteAccounts implements connector.BulkDeleter. Each deletion is what
// DeleteAccount does (and is logged as one OpDelete), conditional on its Version
// when it has one: a stale Version is an error matching connector.ErrPrecondition
// and keeps the account, a missing account one matching connector.ErrNotFound.
// More deletions than MaxBulkDeletes fail the whole call (KindInvalid).
func (l *LMS) DeleteAccounts(ctx context.Context, dels []connector.Deletion) ([]error, error) {
	const op = "DeleteAccounts"
	if err := ctxErr(ctx, op); err != nil {
		return nil, err
	}
	if n := l.MaxBulkDeletes(ctx); len(dels) > n {
		return nil, lmsError(connector.KindInvalid, op, "%d deletions in one call; at most %d", len(dels), n)
	}
	errs := make([]error, len(dels))
	for i, d := range dels {
		if err := l.delete(op, d.ID, d.Version); err != nil {
			errs[i] = err
		}
	}
	return errs, nil
}

// MaxActivityBatch implements connector.ActivityLister: MaxResults.
func (l *LMS) MaxActivityBatch(context.Context) int { return MaxResults }

// ActivityOf implements connector.ActivityLister: the account and its activity
// (from its Training; the sandbox always knows it) for each of ids that exists.
// More ids than MaxActivityBatch fail the call (KindInvalid).
func (l *LMS) ActivityOf(ctx context.Context, ids []string) (map[string]connector.AccountActivity, error) {
	const op = "ActivityOf"
	if err := ctxErr(ctx, op); err != nil {
		return nil, err
	}
	if len(ids) > MaxResults {
		return nil, lmsError(connector.KindInvalid, op, "%d ids in one call; at most %d", len(ids), MaxResults)
	}
	out := make(map[string]connector.AccountActivity, len(ids))
	for _, res := range l.byIDs(ids) {
		out[res.acct.ID] = connector.AccountActivity{Account: res.acct, Activity: activityOf(res.training)}
	}
	return out, nil
}

// activityOf is what the sandbox knows of an account's use: everything.
func activityOf(t Training) connector.Activity {
	return connector.Activity{Known: true, LastLogin: t.LastLogin, Enrollments: len(t.Enrollments),
		Completions: len(t.Completions), Uploads: t.Uploads, Rewards: t.Rewards}
}

// byIDs returns the accounts of ids that exist, each once, in creation order.
func (l *LMS) byIDs(ids []string) []resource {
	l.mu.Lock()
	defer l.mu.Unlock()
	slots := make([]int32, 0, len(ids))
	for _, id := range ids {
		if s, ok := l.slotOf(id); ok {
			slots = append(slots, s)
		}
	}
	slices.Sort(slots)
	slots = slices.Compact(slots)
	out := make([]resource, 0, len(slots))
	for _, s := range slots {
		out = append(out, l.recs[s].resource())
	}
	return out
}
