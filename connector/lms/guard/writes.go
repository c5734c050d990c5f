package guard

import (
	"context"
	"errors"
	"fmt"

	"github.com/hrsync/hrsync/connector"
)

// The batch writes of the LMS port pass through the guard: each call to the LMS
// behind it, of at most its Max... items, is one call under the rate limit (one
// token, however many accounts it carries), the quarantine and the retries.
// Retries resend only the items whose outcome was temporary, and only where
// sending them again cannot do a thing twice:
//
//   - setting active is idempotent: resent as it is;
//   - an update is resent; one that an earlier attempt may have applied and
//     that the retry finds at another version is read, and counts as done if
//     the account says what was asked (as UpdateAccount);
//   - a create is never resent once its answer may have been lost (a timeout,
//     a 5xx): the call fails as a whole, and the converger keeps its items'
//     intent rows pending, so its next converge looks the accounts up before
//     creating. Only items the LMS refused for its rate limit are resent.
//
// Without a capability (or with Max... 0) each item is its single guarded call.

var (
	_ connector.AccountCreator = (*LMS)(nil)
	_ connector.ActiveSetter   = (*LMS)(nil)
	_ connector.AccountUpdater = (*LMS)(nil)
)

// MaxCreateBatch implements connector.AccountCreator: what the LMS behind the
// guard says, or 0 when it cannot create in batches.
func (g *LMS) MaxCreateBatch(ctx context.Context) int {
	g.discover(ctx)
	if cr, ok := g.inner.(connector.AccountCreator); ok {
		return cr.MaxCreateBatch(ctx)
	}
	return 0
}

// MaxSetActiveBatch implements connector.ActiveSetter: what the LMS behind the
// guard says, or 0.
func (g *LMS) MaxSetActiveBatch(ctx context.Context) int {
	g.discover(ctx)
	if as, ok := g.inner.(connector.ActiveSetter); ok {
		return as.MaxSetActiveBatch(ctx)
	}
	return 0
}

// MaxUpdateBatch implements connector.AccountUpdater: what the LMS behind the
// guard says, or 0.
func (g *LMS) MaxUpdateBatch(ctx context.Context) int {
	g.discover(ctx)
	if up, ok := g.inner.(connector.AccountUpdater); ok {
		return up.MaxUpdateBatch(ctx)
	}
	return 0
}

// CreateAccounts implements connector.AccountCreator (see above: never resent
// after a lost answer).
func (g *LMS) CreateAccounts(ctx context.Context, accs []connector.Account) ([]connector.ItemResult, error) {
	cr, _ := g.inner.(connector.AccountCreator)
	n := g.MaxCreateBatch(ctx)
	if n <= 0 {
		out := make([]connector.ItemResult, len(accs))
		for i, a := range accs {
			out[i].Account, out[i].Err = g.CreateAccount(ctx, a)
		}
		return out, nil
	}
	notLost := func(err error) bool { return !answerLost(err) }
	resend := func(err error) bool { return isKind(err, connector.KindRateLimited) }
	return g.batchWrite(ctx, "CreateAccounts", len(accs), n, notLost, resend, func(ctx context.Context, idx []int) ([]connector.ItemResult, error) {
		sub := make([]connector.Account, len(idx))
		for k, i := range idx {
			sub[k] = accs[i]
		}
		return cr.CreateAccounts(ctx, sub)
	})
}

// SetActiveMany implements connector.ActiveSetter: idempotent, so resent as it is.
func (g *LMS) SetActiveMany(ctx context.Context, ids []string, active bool) ([]connector.ItemResult, error) {
	as, _ := g.inner.(connector.ActiveSetter)
	n := g.MaxSetActiveBatch(ctx)
	if n <= 0 {
		out := make([]connector.ItemResult, len(ids))
		for i, id := range ids {
			out[i].Account, out[i].Err = g.SetActive(ctx, id, active)
		}
		return out, nil
	}
	return g.batchWrite(ctx, "SetActiveMany", len(ids), n, retryable, retryable, func(ctx context.Context, idx []int) ([]connector.ItemResult, error) {
		sub := make([]string, len(idx))
		for k, i := range idx {
			sub[k] = ids[i]
		}
		return as.SetActiveMany(ctx, sub, active)
	})
}

// UpdateAccounts implements connector.AccountUpdater: resent; an item that an
// earlier attempt may have applied and that then fails its precondition is read,
// and done if the account says what was asked.
func (g *LMS) UpdateAccounts(ctx context.Context, accs []connector.Account) ([]connector.ItemResult, error) {
	up, _ := g.inner.(connector.AccountUpdater)
	n := g.MaxUpdateBatch(ctx)
	if n <= 0 {
		out := make([]connector.ItemResult, len(accs))
		for i, a := range accs {
			out[i].Account, out[i].Err = g.UpdateAccount(ctx, a)
		}
		return out, nil
	}
	return g.updateMany(ctx, "UpdateAccounts", accs, n, up.UpdateAccounts, sameData)
}

// updateMany makes the batch update call for accs, n a call, resent as
// retryable; an item that an earlier attempt may have applied and that then
// fails its precondition is read, and done if applied says the account shows
// what was asked.
func (g *LMS) updateMany(ctx context.Context, op string, accs []connector.Account, n int,
	call func(context.Context, []connector.Account) ([]connector.ItemResult, error), applied func(cur, want connector.Account) bool) ([]connector.ItemResult, error) {
	maybe := make([]bool, len(accs))
	out, err := g.batchWrite(ctx, op, len(accs), n, retryable, retryable, func(ctx context.Context, idx []int) ([]connector.ItemResult, error) {
		sub := make([]connector.Account, len(idx))
		for k, i := range idx {
			sub[k] = accs[i]
		}
		res, err := call(ctx, sub)
		for k, i := range idx {
			switch {
			case err != nil:
				maybe[i] = maybe[i] || answerLost(err)
			case k < len(res):
				maybe[i] = maybe[i] || answerLost(res[k].Err)
			}
		}
		return res, err
	})
	if err != nil {
		return nil, err
	}
	for i := range out {
		if maybe[i] && errors.Is(out[i].Err, connector.ErrPrecondition) {
			if cur, gerr := g.GetAccount(ctx, accs[i].ID); gerr == nil && applied(cur, accs[i]) {
				out[i] = connector.ItemResult{Account: cur}
			}
		}
	}
	return out, nil
}

// batchWrite makes count items' batch call in chunks of at most n, each chunk
// one guarded call (retried while again allows its whole-call error), resending
// within it only the items whose error resend allows. The error is for the call
// as a whole, returned only when no chunk got results; a later chunk that fails
// as a whole gives its error to each of its items and those not yet sent.
func (g *LMS) batchWrite(ctx context.Context, op string, count, n int, again, resend func(error) bool,
	call func(ctx context.Context, idx []int) ([]connector.ItemResult, error)) ([]connector.ItemResult, error) {
	out := make([]connector.ItemResult, count)
	known := false
	for from := 0; from < count; from += n {
		to := min(from+n, count)
		pending := make([]int, 0, to-from)
		for i := from; i < to; i++ {
			pending = append(pending, i)
		}
		got := false
		_, err := g.callIf(ctx, op, again, func(ctx context.Context) error {
			res, err := call(ctx, pending)
			if err != nil {
				return err
			}
			if len(res) != len(pending) {
				return &connector.LMSError{Kind: connector.KindUnavailable, Op: op,
					Reason: fmt.Sprintf("%d results for %d items", len(res), len(pending))}
			}
			got = true
			var retry []int
			var first error
			for k, i := range pending {
				out[i] = res[k]
				if e := res[k].Err; e != nil && retryable(e) && resend(e) {
					retry = append(retry, i)
					first = cmpOr(first, e)
				}
			}
			pending = retry
			return first // retryable: the call sends the pending items again
		})
		if err != nil && got {
			// A resend failed as a whole: its items' outcome is that failure's
			// (it may have been applied), not the earlier answer's.
			for _, i := range pending {
				out[i] = connector.ItemResult{Err: err}
			}
		}
		if err != nil && !got {
			if !known {
				return nil, err
			}
			for i := from; i < count; i++ {
				out[i] = connector.ItemResult{Err: err}
			}
			return out, nil
		}
		known = true
	}
	return out, nil
}

// UpdatesActive implements connector.ActiveUpdater: whether the LMS behind
// the guard can update an account and set its state in one call.
func (g *LMS) UpdatesActive(ctx context.Context) bool {
	au, ok := g.inner.(connector.ActiveUpdater)
	return ok && au.UpdatesActive(ctx)
}

// UpdateAccountActive implements connector.ActiveUpdater, resent as
// UpdateAccount is: an attempt that may have been applied and then fails its
// precondition is read, and done if the account says what was asked, state
// included.
func (g *LMS) UpdateAccountActive(ctx context.Context, a connector.Account) (connector.Account, error) {
	au, ok := g.inner.(connector.ActiveUpdater)
	if !ok {
		return connector.Account{}, connector.Permanent(errors.New("the LMS cannot update an account and set its state in one call"))
	}
	var out connector.Account
	maybe, err := g.call(ctx, "UpdateAccountActive", func(ctx context.Context) (err error) {
		out, err = au.UpdateAccountActive(ctx, a)
		return err
	})
	if err == nil || !maybe || !errors.Is(err, connector.ErrPrecondition) {
		return out, err
	}
	if cur, gerr := g.GetAccount(ctx, a.ID); gerr == nil && sameDataAndState(cur, a) {
		return cur, nil
	}
	return connector.Account{}, err
}

// UpdateAccountsActive implements connector.ActiveUpdater, as UpdateAccounts
// (resent; an item an earlier attempt may have applied is read when it then
// fails its precondition), one call per MaxUpdateBatch accounts; one
// UpdateAccountActive each when the LMS has no batch update.
func (g *LMS) UpdateAccountsActive(ctx context.Context, accs []connector.Account) ([]connector.ItemResult, error) {
	au, ok := g.inner.(connector.ActiveUpdater)
	n := g.MaxUpdateBatch(ctx)
	if !ok || n <= 0 {
		out := make([]connector.ItemResult, len(accs))
		for i, a := range accs {
			out[i].Account, out[i].Err = g.UpdateAccountActive(ctx, a)
		}
		return out, nil
	}
	return g.updateMany(ctx, "UpdateAccountsActive", accs, n, au.UpdateAccountsActive, sameDataAndState)
}

// sameDataAndState is sameData, and the state asked for.
func sameDataAndState(cur, want connector.Account) bool {
	return sameData(cur, want) && cur.Active == want.Active
}

var _ connector.ActiveUpdater = (*LMS)(nil)
