package sandbox

import (
	"context"

	"github.com/hrsync/hrsync/connector"
)

var _ connector.AccountBatchReader = (*LMS)(nil)

// MaxReadBatch implements connector.AccountBatchReader: MaxResults.
func (l *LMS) MaxReadBatch(context.Context) int { return MaxResults }

// FindAccountsIn implements connector.AccountBatchReader: for every one of values,
// what FindAccounts answers for it (the sandbox vouches for every value). More
// values than MaxReadBatch fail the call (KindInvalid), as an attribute it cannot
// filter on does.
func (l *LMS) FindAccountsIn(ctx context.Context, attr connector.FilterAttr, values []string) (map[string][]connector.Account, error) {
	const op = "FindAccountsIn"
	if err := ctxErr(ctx, op); err != nil {
		return nil, err
	}
	switch attr {
	case connector.ByExternalID, connector.ByUserName, connector.ByEmail, connector.ByEmployeeNumber:
	default:
		return nil, lmsError(connector.KindInvalid, op, "cannot filter on %q", attr)
	}
	if len(values) > MaxResults {
		return nil, lmsError(connector.KindInvalid, op, "%d values in one call; at most %d", len(values), MaxResults)
	}
	out := make(map[string][]connector.Account, len(values))
	for _, v := range values {
		as := []connector.Account{}
		for _, r := range l.query(&connector.AccountFilter{Attr: attr, Value: v}) {
			as = append(as, r.acct)
		}
		out[v] = as
	}
	return out, nil
}

// GetAccounts implements connector.AccountBatchReader: the accounts of ids that
// exist. More ids than MaxReadBatch fail the call (KindInvalid).
func (l *LMS) GetAccounts(ctx context.Context, ids []string) (map[string]connector.Account, error) {
	const op = "GetAccounts"
	if err := ctxErr(ctx, op); err != nil {
		return nil, err
	}
	if len(ids) > MaxResults {
		return nil, lmsError(connector.KindInvalid, op, "%d ids in one call; at most %d", len(ids), MaxResults)
	}
	out := make(map[string]connector.Account, len(ids))
	for _, res := range l.byIDs(ids) {
		out[res.acct.ID] = res.acct
	}
	return out, nil
}
