package scim

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/hrsync/hrsync/connector"
)

var _ connector.AccountBatchReader = (*Client)(nil)

// MaxReadBatch implements connector.AccountBatchReader: as MaxActivityBatch (50,
// or the server's filter maxResults if lower), and 0 when the server does not
// filter or has shown that it does not evaluate OR'ed filters (of ids or of
// attributes).
func (c *Client) MaxReadBatch(ctx context.Context) int {
	if c.noOrFilter.Load() {
		return 0
	}
	return c.MaxActivityBatch(ctx)
}

// GetAccounts implements connector.AccountBatchReader with ActivityOf: one
// `id eq "a" or id eq "b" ...` query per batch, and GET /Users/{id} for an id the
// query did not return, so that only a 404 makes an account gone.
func (c *Client) GetAccounts(ctx context.Context, ids []string) (map[string]connector.Account, error) {
	got, err := c.ActivityOf(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[string]connector.Account, len(got))
	for id, aa := range got {
		out[id] = aa.Account
	}
	return out, nil
}

// FindAccountsIn implements connector.AccountBatchReader with one query per batch:
// GET /Users?filter=externalId eq "a" or externalId eq "b" ..., in the filter form
// that FindAccounts uses for the attribute (the one that has found accounts on
// this server, else the canonical one). It answers for a value only what
// FindAccounts would:
//
//   - accounts the query found for it (re-checked with AccountFilter.Matches);
//   - "none" only when the form has already found accounts on this server (then
//     FindAccounts too takes a miss as a miss after one request); before that a
//     miss is left out, and the caller asks FindAccounts, which tries the other
//     forms;
//   - nothing for a value with a quote or backslash (FindAccounts has forms of
//     its own for those), nor for an attribute of WithClientSideFilter, nor
//     when the server does not filter.
//
// A server that rejects the OR'ed filter (400, 501) or answers users that match
// none of the values (it ignored the filter) is not asked again: MaxReadBatch is
// 0 from then on, and this call vouches for nothing.
func (c *Client) FindAccountsIn(ctx context.Context, attr connector.FilterAttr, values []string) (map[string][]connector.Account, error) {
	out := map[string][]connector.Account{}
	forms, err := filterForms(connector.AccountFilter{Attr: attr, Value: "v"})
	if err != nil {
		return nil, &connector.LMSError{Kind: connector.KindInvalid, Op: "GET /Users", Reason: err.Error()}
	}
	n := c.MaxReadBatch(ctx)
	if n <= 0 || c.scanAttrs[attr] {
		return out, nil
	}
	c.mu.Lock()
	form, known := c.filterForm[string(attr)]
	c.mu.Unlock()
	if !known || form >= len(forms) {
		form, known = 0, false
	}
	var want []string
	seen := map[string]bool{}
	for _, v := range values {
		if v != "" && !needsEscape(v) && !seen[v] {
			seen[v] = true
			want = append(want, v)
		}
	}
	for len(want) > 0 && !c.noOrFilter.Load() {
		chunk := orChunk(want, n, attr, form)
		want = want[len(chunk):]
		found, ok, err := c.usersMatching(ctx, attr, form, chunk)
		if err != nil {
			return nil, err
		}
		if !ok {
			return map[string][]connector.Account{}, nil
		}
		for _, v := range chunk {
			f := connector.AccountFilter{Attr: attr, Value: v}
			hits := []connector.Account{}
			for _, a := range found {
				if f.Matches(a) {
					hits = append(hits, a)
				}
			}
			switch {
			case len(hits) > 0:
				out[v] = hits
				if !known {
					c.mu.Lock()
					c.filterForm[string(attr)] = form // as FindAccounts learns it
					c.mu.Unlock()
				}
			case known:
				out[v] = hits
			}
		}
	}
	return out, nil
}

// orExpr is the comparison for v in filter form i of attr.
func orExpr(attr connector.FilterAttr, form int, v string) string {
	forms, err := filterForms(connector.AccountFilter{Attr: attr, Value: v})
	if err != nil || form >= len(forms) {
		return ""
	}
	return forms[form]
}

// orChunk returns the first values (at most n) whose OR'ed filter fits
// maxIDFilter; at least one.
func orChunk(values []string, n int, attr connector.FilterAttr, form int) []string {
	size := 0
	for k, v := range values {
		size += len(" or ") + len(orExpr(attr, form, v))
		if k >= n || (k > 0 && size > maxIDFilter) {
			return values[:k]
		}
	}
	return values
}

// usersMatching queries the users whose attr equals one of values, in filter
// form form, following pages; ok is false when the server does not evaluate the
// filter (then noOrFilter is set).
func (c *Client) usersMatching(ctx context.Context, attr connector.FilterAttr, form int, values []string) ([]connector.Account, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	exprs := make([]string, len(values))
	for i, v := range values {
		exprs[i] = orExpr(attr, form, v)
	}
	filter := strings.Join(exprs, " or ")
	caps := c.Capabilities(ctx)
	size := pageSize
	if caps.MaxResults > 0 {
		size = min(size, caps.MaxResults)
	}
	var out []connector.Account
	seen := map[string]bool{}
	for start, pages := 1, 0; pages < maxPages; pages++ {
		q := url.Values{"filter": {filter}, "startIndex": {strconv.Itoa(start)}, "count": {strconv.Itoa(size)}}
		lr, err := c.list(ctx, q)
		if le, ok := errors.AsType[*connector.LMSError](err); ok &&
			(le.Status == http.StatusBadRequest || le.Status == http.StatusNotImplemented) {
			c.noOrFilter.Store(true)
			return nil, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		fresh := 0
		for _, u := range lr.Resources {
			if seen[u.ID] {
				continue
			}
			seen[u.ID] = true
			fresh++
			a := ToAccount(u)
			switch {
			case matchesAnyLoosely(attr, values, a):
				out = append(out, a)
			case attr == connector.ByEmail:
				// A user has several emails, and the account shows one: the
				// filter may have matched another, which FindAccounts too leaves out.
			default:
				// Not one of the values, even compared case-insensitively: the
				// server did not evaluate the OR'ed filter.
				c.noOrFilter.Store(true)
				return nil, false, nil
			}
		}
		start += len(lr.Resources)
		switch {
		case len(seen) > maxFindResults:
			return nil, false, nil // too many to vouch for: the caller looks up one by one
		case fresh == 0 || start > lr.TotalResults:
			return out, true, nil
		}
	}
	return nil, false, nil
}

// matchesAnyLoosely reports whether a's attr equals one of values, compared
// case-insensitively: servers that fold case where RFC 7643 says caseExact
// evaluate the filter, loosely (the caller re-checks with Matches).
func matchesAnyLoosely(attr connector.FilterAttr, values []string, a connector.Account) bool {
	var got string
	switch attr {
	case connector.ByExternalID:
		got = a.ExternalID
	case connector.ByUserName:
		got = a.UserName
	case connector.ByEmail:
		got = a.Profile.Email
	case connector.ByEmployeeNumber:
		got = a.Profile.EmployeeNumber
	}
	for _, v := range values {
		if strings.EqualFold(got, v) {
			return true
		}
	}
	return false
}
