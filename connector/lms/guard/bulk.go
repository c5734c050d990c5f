package guard

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/hrsync/hrsync/connector"
)

var (
	_ connector.BulkDeleter        = (*LMS)(nil)
	_ connector.ActivityLister     = (*LMS)(nil)
	_ connector.AccountBatchReader = (*LMS)(nil)
)

// discoverer is implemented by adapters that learn what the LMS supports on
// first use, such as scim.Client, which reads /ServiceProviderConfig.
type discoverer interface {
	Discover(ctx context.Context) error
}

// discover lets the LMS behind the guard learn what it supports, as one guarded
// call with retries, until it succeeds once: a passing failure must not make
// MaxBulkDeletes 0 and a clean-up one call per account.
func (g *LMS) discover(ctx context.Context) {
	d, ok := g.inner.(discoverer)
	if !ok || g.discovered.Load() {
		return
	}
	if _, err := g.call(ctx, "Discover", d.Discover); err == nil {
		g.discovered.Store(true)
	}
}

// MaxBulkDeletes implements connector.BulkDeleter: what the LMS behind the guard
// says, or 0 when it has no bulk deletion.
func (g *LMS) MaxBulkDeletes(ctx context.Context) int {
	g.discover(ctx)
	if bd, ok := g.inner.(connector.BulkDeleter); ok {
		return bd.MaxBulkDeletes(ctx)
	}
	return 0
}

// DeleteAccounts implements connector.BulkDeleter. Each call to the LMS behind the
// guard, of at most its MaxBulkDeletes deletions, is one call under the rate limit,
// the retries and the quarantine: one token, however many accounts it deletes.
//
// A retry sends again only the deletions whose outcome is not known or was
// temporary (unavailable, rate limited). A deletion that an earlier attempt may
// have applied (its answer was lost: a timeout, a 5xx) and that a retry finds gone
// is reported deleted (nil), as DeleteAccount does; unlike DeleteAccount, the
// guard does not read each account first, which would cost a call per account.
// Callers re-read a batch just before deleting it (clean-up does, with
// ActivityOf), so "gone" is what they asked for either way.
//
// Without bulk (MaxBulkDeletes <= 0, or when the LMS stops offering it during the
// call) each deletion is DeleteAccount, which reads the account first; the read
// also checks the Version (so the check is not atomic, as a bulk one is).
func (g *LMS) DeleteAccounts(ctx context.Context, dels []connector.Deletion) ([]error, error) {
	bd, _ := g.inner.(connector.BulkDeleter)
	n := g.MaxBulkDeletes(ctx)
	errs := make([]error, len(dels))
	if n > 0 {
		known := false
		for from := 0; from < len(dels); from += n {
			to := min(from+n, len(dels))
			if from > 0 && bd.MaxBulkDeletes(ctx) <= 0 {
				for i := from; i < len(dels); i++ {
					errs[i] = errBulkGone
				}
				break
			}
			if err := g.bulkCall(ctx, bd, dels[from:to], errs[from:to]); err != nil {
				if !known {
					return nil, err
				}
				for i := from; i < len(dels); i++ {
					errs[i] = err
				}
				return errs, nil
			}
			known = true
		}
	}
	// One by one: without bulk, or what is left when the LMS stopped offering it.
	for i, d := range dels {
		if n <= 0 || errors.Is(errs[i], errBulkGone) {
			errs[i] = g.deleteChecked(ctx, d)
		}
	}
	return errs, nil
}

// errBulkGone marks the deletions left when the LMS stopped offering bulk
// deletion (MaxBulkDeletes 0) during a call: they are deleted one by one.
var errBulkGone = errors.New("the lms stopped offering bulk deletion")

// bulkCall runs bd.DeleteAccounts(dels) as one guarded call, retrying the
// deletions whose outcome was temporary, and sets their results in errs. The
// error is for the call as a whole: no attempt returned per-item results.
func (g *LMS) bulkCall(ctx context.Context, bd connector.BulkDeleter, dels []connector.Deletion, errs []error) error {
	pending := make([]int, len(dels))
	for i := range pending {
		pending[i] = i
	}
	maybe := make([]bool, len(dels)) // an earlier attempt may have deleted dels[i]
	known := false
	_, err := g.call(ctx, "DeleteAccounts", func(ctx context.Context) error {
		if len(pending) > 1 && bd.MaxBulkDeletes(ctx) <= 0 {
			return errBulkGone // not one call any more: the caller goes one by one
		}
		sub := make([]connector.Deletion, len(pending))
		for k, i := range pending {
			sub[k] = dels[i]
		}
		res, err := bd.DeleteAccounts(ctx, sub)
		if err != nil {
			if isKind(err, connector.KindUnavailable) {
				for _, i := range pending {
					maybe[i] = true
				}
			}
			return err
		}
		if len(res) != len(sub) {
			return &connector.LMSError{Kind: connector.KindUnavailable, Op: "DeleteAccounts",
				Reason: fmt.Sprintf("%d results for %d deletions", len(res), len(sub))}
		}
		known = true
		var again []int
		var first error
		for k, i := range pending {
			e := res[k]
			switch {
			case e != nil && retryable(e):
				again = append(again, i)
				maybe[i] = maybe[i] || isKind(e, connector.KindUnavailable)
				first = cmpOr(first, e)
			case e != nil && maybe[i] && errors.Is(e, connector.ErrNotFound):
				e = nil // our earlier attempt deleted it
			}
			errs[i] = e
		}
		pending = again
		return first // retryable: the call tries the pending deletions again
	})
	if errors.Is(err, errBulkGone) {
		for _, i := range pending {
			errs[i] = errBulkGone
		}
		return nil
	}
	if err != nil && known {
		for _, i := range pending {
			if errs[i] == nil {
				errs[i] = err
			}
		}
		return nil
	}
	return err
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// deleteChecked deletes d without bulk: as DeleteAccount does (a read, then the
// delete), refusing with connector.ErrPrecondition when the read shows another
// version than d.Version.
func (g *LMS) deleteChecked(ctx context.Context, d connector.Deletion) error {
	cur, err := g.GetAccount(ctx, d.ID)
	if err != nil {
		return err
	}
	if d.Version != "" && cur.Version != "" && d.Version != cur.Version {
		return &connector.LMSError{Kind: connector.KindPrecondition, Op: "DeleteAccounts",
			Reason: fmt.Sprintf("version %s is not the current %s", d.Version, cur.Version)}
	}
	return g.deleteRead(ctx, d.ID)
}

// MaxActivityBatch implements connector.ActivityLister: what the LMS behind the
// guard says, or 0 when it cannot batch.
func (g *LMS) MaxActivityBatch(ctx context.Context) int {
	g.discover(ctx)
	if al, ok := g.inner.(connector.ActivityLister); ok {
		return al.MaxActivityBatch(ctx)
	}
	return 0
}

// ActivityOf implements connector.ActivityLister: each call to the LMS behind the
// guard, of at most its MaxActivityBatch ids, is one guarded call (one token). An
// LMS that cannot batch is asked per id: GetAccount, then its activity
// (connector.ReadActivity).
func (g *LMS) ActivityOf(ctx context.Context, ids []string) (map[string]connector.AccountActivity, error) {
	al, _ := g.inner.(connector.ActivityLister)
	n := g.MaxActivityBatch(ctx)
	out := make(map[string]connector.AccountActivity, len(ids))
	if n <= 0 {
		for _, id := range ids {
			a, err := g.GetAccount(ctx, id)
			if errors.Is(err, connector.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			act, err := connector.ReadActivity(ctx, g, id)
			if errors.Is(err, connector.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			out[id] = connector.AccountActivity{Account: a, Activity: act}
		}
		return out, nil
	}
	return callChunks(ctx, g, "ActivityOf", ids, n, out, al.ActivityOf)
}

// MaxReadBatch implements connector.AccountBatchReader: what the LMS behind the
// guard says, or 0 when it cannot batch reads (callers then read one by one, each
// read guarded as usual).
func (g *LMS) MaxReadBatch(ctx context.Context) int {
	g.discover(ctx)
	if br, ok := g.inner.(connector.AccountBatchReader); ok {
		return br.MaxReadBatch(ctx)
	}
	return 0
}

// FindAccountsIn implements connector.AccountBatchReader: each call to the LMS
// behind the guard, of at most its MaxReadBatch values, is one guarded call (one
// token, retried and judged by the quarantine as any other). Without the
// capability it vouches for nothing (an empty map, no call): the caller reads
// each value with FindAccounts.
func (g *LMS) FindAccountsIn(ctx context.Context, attr connector.FilterAttr, values []string) (map[string][]connector.Account, error) {
	out := make(map[string][]connector.Account, len(values))
	br, _ := g.inner.(connector.AccountBatchReader)
	n := g.MaxReadBatch(ctx)
	if n <= 0 {
		return out, nil
	}
	return callChunks(ctx, g, "FindAccountsIn", values, n, out, func(ctx context.Context, chunk []string) (map[string][]connector.Account, error) {
		return br.FindAccountsIn(ctx, attr, chunk)
	})
}

// GetAccounts implements connector.AccountBatchReader: each call to the LMS
// behind the guard, of at most its MaxReadBatch ids, is one guarded call. Without
// the capability each id is read with GetAccount (guarded).
func (g *LMS) GetAccounts(ctx context.Context, ids []string) (map[string]connector.Account, error) {
	out := make(map[string]connector.Account, len(ids))
	br, _ := g.inner.(connector.AccountBatchReader)
	n := g.MaxReadBatch(ctx)
	if n <= 0 {
		for _, id := range ids {
			a, err := g.GetAccount(ctx, id)
			if errors.Is(err, connector.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			out[id] = a
		}
		return out, nil
	}
	return callChunks(ctx, g, "GetAccounts", ids, n, out, br.GetAccounts)
}

// callChunks asks read for keys in chunks of at most n, each chunk one guarded
// call named op, and adds the answers to out.
func callChunks[V any](ctx context.Context, g *LMS, op string, keys []string, n int, out map[string]V,
	read func(context.Context, []string) (map[string]V, error)) (map[string]V, error) {
	for chunk := range slices.Chunk(keys, n) {
		var got map[string]V
		if _, err := g.call(ctx, op, func(ctx context.Context) (err error) {
			got, err = read(ctx, chunk)
			return err
		}); err != nil {
			return nil, err
		}
		maps.Copy(out, got)
	}
	return out, nil
}
