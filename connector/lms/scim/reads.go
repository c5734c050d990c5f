package scim

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/hrsync/hrsync/connector"
)

var _ connector.AccountBatchReader = (*Client)(nil)

// MaxReadBatch implements connector.AccountBatchReader: as MaxActivityBatch (up
// to DefaultSearchBatch with POST /Users/.search, else 50; never more than the
// server's filter maxResults), and 0 when the server does not filter or has shown
// that it does not evaluate OR'ed filters (of ids or of attributes).
func (c *Client) MaxReadBatch(ctx context.Context) int {
	if c.noOrFilter.Load() {
		return 0
	}
	return c.MaxActivityBatch(ctx)
}

// GetAccounts implements connector.AccountBatchReader with ActivityOf: one
// `id eq "a" or id eq "b" ...` query per batch (POST /Users/.search, or GET
// chunks of 50 on a server without it), and GET /Users/{id} for an id the query
// did not return, so that only a 404 makes an account gone.
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
// `externalId eq "a" or externalId eq "b" ...`, as POST /Users/.search where the
// server has it, else as GET /Users?filter= of at most 50 values (search.go), in the filter form
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
	if c.MaxReadBatch(ctx) <= 0 || c.scanAttrs[attr] {
		return out, nil
	}
	c.mu.Lock()
	learned, known := c.filterForm[string(attr)]
	c.mu.Unlock()
	// The forms FindAccounts would try, in its order: the learned one alone
	// (a miss is then a miss), else each until one finds.
	order := []int{learned}
	if !known || learned >= len(forms) {
		known, order = false, order[:0]
		for i := range forms {
			order = append(order, i)
		}
	}
	var want []string
	seen := map[string]bool{}
	// With the form not learned yet, a value an account here is known to
	// have goes first: its hit proves the form, and the values after it are
	// not asked in the other forms (findIn). It is not part of the answer.
	probe := ""
	if !known {
		c.mu.Lock()
		probe = c.probes[attr]
		c.mu.Unlock()
		if probe != "" && !needsEscape(probe) && !slices.Contains(values, probe) {
			seen[probe] = true
			want = append(want, probe)
		} else {
			probe = ""
		}
	}
	for _, v := range values {
		if v != "" && !needsEscape(v) && !seen[v] {
			seen[v] = true
			want = append(want, v)
		}
	}
	for len(want) > 0 && !c.noOrFilter.Load() {
		lim := c.orLimits(ctx)
		if lim.n <= 0 {
			break
		}
		chunk := orChunk(want, lim, attr, order[0])
		missed, err := c.findIn(ctx, attr, order, !known, chunk, lim.search, out)
		if errors.Is(err, errRechunk) {
			continue // .search is off, or fewer values a query: cut again
		}
		if err != nil {
			return nil, err
		}
		want = want[len(chunk):]
		for _, v := range missed {
			out[v] = []connector.Account{} // every form FindAccounts would try missed it
		}
		if !known {
			c.mu.Lock()
			learned, known = c.filterForm[string(attr)]
			c.mu.Unlock()
			if known {
				order = []int{learned} // proven by a hit: the other forms need not be asked
			}
		}
	}
	delete(out, probe) // asked for the form's sake, not the caller's
	return out, nil
}

// findIn looks up chunk with each filter form of order in turn, for the values
// earlier forms missed, and puts the hits in out. It returns the values that
// every form answered without them; none when a form was rejected or the server
// did not evaluate the filter (those values are not vouched for); errRechunk
// when the chunk must be cut again (then the caller asks again for all of it).
func (c *Client) findIn(ctx context.Context, attr connector.FilterAttr, order []int, learn bool, chunk []string, search bool, out map[string][]connector.Account) ([]string, error) {
	remaining := chunk
	for k, form := range order {
		found, verdict, err := c.usersMatching(ctx, attr, form, remaining, search)
		if err != nil {
			return nil, err
		}
		switch verdict {
		case orRejected:
			if k == 0 {
				// The first form is the one FindAccounts finds with; a
				// rejection of it is taken as a rejection of "or".
				c.noOrFilter.Store(true)
			}
			return nil, nil
		case orIgnored:
			c.noOrFilter.Store(true)
			return nil, nil
		case orTooMany:
			return nil, nil
		}
		var missed []string
		for _, v := range remaining {
			f := connector.AccountFilter{Attr: attr, Value: v}
			hits := []connector.Account{}
			for _, a := range found {
				if f.Matches(a) {
					hits = append(hits, a)
				}
			}
			if len(hits) == 0 {
				missed = append(missed, v)
				continue
			}
			out[v] = hits
			if learn {
				c.mu.Lock()
				if _, ok := c.filterForm[string(attr)]; !ok {
					c.filterForm[string(attr)] = form // as FindAccounts learns it
				}
				c.mu.Unlock()
			}
		}
		hit := len(missed) < len(remaining)
		remaining = missed
		if len(remaining) == 0 || learn && hit {
			// Every value found; or this form found some, which proves it is
			// the form this server evaluates, the one FindAccounts learns and
			// then asks alone: a miss in it is a miss.
			break
		}
	}
	return remaining, nil
}

// Verdicts of one OR'ed query.
const (
	orEvaluated = iota
	orRejected  // 400 or 501
	orIgnored   // users that match none of the values
	orTooMany   // more users than a lookup may read
)

// orExpr is the comparison for v in filter form i of attr.
func orExpr(attr connector.FilterAttr, form int, v string) string {
	forms, err := filterForms(connector.AccountFilter{Attr: attr, Value: v})
	if err != nil || form >= len(forms) {
		return ""
	}
	return forms[form]
}

// orChunk returns the first values (at most lim.n) whose OR'ed filter fits
// lim.bytes; at least one.
func orChunk(values []string, lim orLimits, attr connector.FilterAttr, form int) []string {
	size := 0
	for k, v := range values {
		size += len(" or ") + len(orExpr(attr, form, v))
		if k >= lim.n || (k > 0 && size > lim.bytes) {
			return values[:k]
		}
	}
	return values
}

// usersMatching queries the users whose attr equals one of values, in filter
// form form (with .search if search), following pages, and says whether the
// server evaluated the filter; errRechunk when the query must be cut again.
func (c *Client) usersMatching(ctx context.Context, attr connector.FilterAttr, form int, values []string, search bool) ([]connector.Account, int, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	exprs := make([]string, len(values))
	for i, v := range values {
		exprs[i] = orExpr(attr, form, v)
	}
	filter := strings.Join(exprs, " or ")
	caps := c.Capabilities(ctx)
	// A value matches one user, as a rule: a page of len(values) holds them all.
	size := max(pageSize, len(values))
	if caps.MaxResults > 0 {
		size = min(size, caps.MaxResults)
	}
	var out []connector.Account
	seen := map[string]bool{}
	for start, pages := 1, 0; pages < maxPages; pages++ {
		lr, err := c.filteredPage(ctx, filter, len(values), start, size, search)
		if le, ok := errors.AsType[*connector.LMSError](err); ok &&
			(le.Status == http.StatusBadRequest || le.Status == http.StatusNotImplemented) {
			return nil, orRejected, nil
		}
		if err != nil {
			return nil, orEvaluated, err
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
				return nil, orIgnored, nil
			}
		}
		start += len(lr.Resources)
		switch {
		case len(seen) > maxFindResults:
			return nil, orTooMany, nil // too many to vouch for: the caller looks up one by one
		case fresh == 0 || start > lr.TotalResults:
			return out, orEvaluated, nil
		}
	}
	return nil, orTooMany, nil
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
