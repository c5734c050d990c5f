package sandbox

import (
	"context"

	"github.com/hrsync/hrsync/connector"
)

// The batch writes of the LMS port (connector.AccountCreator, ActiveSetter,
// AccountUpdater). Each item is exactly what its single call does, logged as
// that call's op, so that a batch and the calls it replaces leave the same
// accounts and the same op log. MaxBulkDeletes (WithMaxBulk) bounds them too:
// with bulk off, the converger makes one call per action.

var (
	_ connector.AccountCreator = (*LMS)(nil)
	_ connector.ActiveSetter   = (*LMS)(nil)
	_ connector.AccountUpdater = (*LMS)(nil)
)

// MaxCreateBatch implements connector.AccountCreator: MaxBulkDeletes.
func (l *LMS) MaxCreateBatch(ctx context.Context) int { return l.MaxBulkDeletes(ctx) }

// MaxSetActiveBatch implements connector.ActiveSetter: MaxBulkDeletes.
func (l *LMS) MaxSetActiveBatch(ctx context.Context) int { return l.MaxBulkDeletes(ctx) }

// MaxUpdateBatch implements connector.AccountUpdater: MaxBulkDeletes.
func (l *LMS) MaxUpdateBatch(ctx context.Context) int { return l.MaxBulkDeletes(ctx) }

// CreateAccounts implements connector.AccountCreator: CreateAccount for each of
// accs, in order. More than MaxCreateBatch fail the whole call (KindInvalid).
func (l *LMS) CreateAccounts(ctx context.Context, accs []connector.Account) ([]connector.ItemResult, error) {
	const op = "CreateAccounts"
	if err := l.batchCheck(ctx, op, len(accs)); err != nil {
		return nil, err
	}
	out := make([]connector.ItemResult, len(accs))
	for i, a := range accs {
		res, err := l.create(op, a)
		out[i] = connector.ItemResult{Account: res.acct, Err: err}
	}
	return out, nil
}

// SetActiveMany implements connector.ActiveSetter: SetActive for each of ids.
func (l *LMS) SetActiveMany(ctx context.Context, ids []string, active bool) ([]connector.ItemResult, error) {
	const op = "SetActiveMany"
	if err := l.batchCheck(ctx, op, len(ids)); err != nil {
		return nil, err
	}
	out := make([]connector.ItemResult, len(ids))
	for i, id := range ids {
		res, err := l.modify(op, id, "", func(cur *connector.Account) ([]OpKind, error) {
			cur.Active = active
			return []OpKind{activeOp(active)}, nil
		})
		out[i] = connector.ItemResult{Account: res.acct, Err: err}
	}
	return out, nil
}

// UpdateAccounts implements connector.AccountUpdater: UpdateAccount for each of
// accs, conditional on its Version when it has one.
func (l *LMS) UpdateAccounts(ctx context.Context, accs []connector.Account) ([]connector.ItemResult, error) {
	const op = "UpdateAccounts"
	if err := l.batchCheck(ctx, op, len(accs)); err != nil {
		return nil, err
	}
	out := make([]connector.ItemResult, len(accs))
	for i, a := range accs {
		res, err := l.modify(op, a.ID, a.Version, func(cur *connector.Account) ([]OpKind, error) {
			cur.ExternalID, cur.UserName, cur.Profile = a.ExternalID, a.UserName, a.Profile
			return []OpKind{OpUpdate}, nil
		})
		out[i] = connector.ItemResult{Account: res.acct, Err: err}
	}
	return out, nil
}

// batchCheck fails a batch call whose context is done or that carries more
// items than the sandbox takes in one call.
func (l *LMS) batchCheck(ctx context.Context, op string, n int) error {
	if err := ctxErr(ctx, op); err != nil {
		return err
	}
	if most := l.MaxBulkDeletes(ctx); n > most {
		return lmsError(connector.KindInvalid, op, "%d items in one call; at most %d", n, most)
	}
	return nil
}

// UpdatesActive implements connector.ActiveUpdater: the sandbox always can.
func (l *LMS) UpdatesActive(context.Context) bool { return true }

// UpdateAccountActive implements connector.ActiveUpdater: UpdateAccount that
// also sets a.Active, in one operation (conditional on a.Version when set), as
// a SCIM PATCH with both would.
func (l *LMS) UpdateAccountActive(ctx context.Context, a connector.Account) (connector.Account, error) {
	const op = "UpdateAccountActive"
	if err := ctxErr(ctx, op); err != nil {
		return connector.Account{}, err
	}
	res, err := l.modify(op, a.ID, a.Version, updateActive(a))
	return res.acct, err
}

// UpdateAccountsActive implements connector.ActiveUpdater: UpdateAccountActive
// for each of accs, in one call.
func (l *LMS) UpdateAccountsActive(ctx context.Context, accs []connector.Account) ([]connector.ItemResult, error) {
	const op = "UpdateAccountsActive"
	if err := l.batchCheck(ctx, op, len(accs)); err != nil {
		return nil, err
	}
	out := make([]connector.ItemResult, len(accs))
	for i, a := range accs {
		res, err := l.modify(op, a.ID, a.Version, updateActive(a))
		out[i] = connector.ItemResult{Account: res.acct, Err: err}
	}
	return out, nil
}

// updateActive is the change of UpdateAccountActive: the update, then the
// state, logged as both operations.
func updateActive(a connector.Account) func(cur *connector.Account) ([]OpKind, error) {
	return func(cur *connector.Account) ([]OpKind, error) {
		cur.ExternalID, cur.UserName, cur.Profile = a.ExternalID, a.UserName, a.Profile
		ops := []OpKind{OpUpdate}
		if cur.Active != a.Active {
			cur.Active = a.Active
			ops = append(ops, activeOp(a.Active))
		}
		return ops, nil
	}
}

var _ connector.ActiveUpdater = (*LMS)(nil)
