package docebo

import (
	"context"
	"strings"

	"github.com/hrsync/hrsync/connector"
)

var _ connector.AccountBatchReader = (*Client)(nil)

// MaxReadBatch is how many values one FindAccountsIn (or ids one GetAccounts)
// takes. Docebo reads no list of values in one call; what the batch saves is
// the walk: an attribute search_text cannot reach costs one walk through every
// user per lookup, and FindAccountsIn answers any number of values with one.
const MaxReadBatch = 1000

// MaxReadBatch implements connector.AccountBatchReader.
func (c *Client) MaxReadBatch(context.Context) int { return MaxReadBatch }

// FindAccountsIn answers FindAccounts for each of values. For userName (and an
// externalId kept in the username) it asks search_text once per value, as
// FindAccounts does; for email, employee number and an externalId in an
// additional field it walks through every user once, 200 a page, for all the
// values together. Each match is read once more for its branch. Every value
// is vouched for.
func (c *Client) FindAccountsIn(ctx context.Context, attr connector.FilterAttr, values []string) (map[string][]connector.Account, error) {
	out := make(map[string][]connector.Account, len(values))
	if c.searchable(attr) {
		for _, v := range values {
			if _, done := out[v]; done {
				continue
			}
			got, err := c.FindAccounts(ctx, connector.AccountFilter{Attr: attr, Value: v})
			if err != nil {
				return nil, err
			}
			out[v] = got
		}
		return out, nil
	}
	key := func(s string) string { return s }
	if attr == connector.ByEmail || attr == connector.ByUserName {
		key = strings.ToLower
	}
	want := map[string][]string{} // key -> values as given
	for _, v := range values {
		if _, dup := out[v]; dup {
			continue
		}
		out[v] = nil
		if v != "" && (attr != connector.ByEmployeeNumber || c.fields.EmployeeNumber != "") {
			want[key(v)] = append(want[key(v)], v)
		}
	}
	if len(want) == 0 {
		return out, nil
	}
	matched := map[string][]string{} // value -> user ids
	err := c.each(ctx, "", func(u user) {
		a := c.account(u)
		var have string
		switch attr {
		case connector.ByExternalID:
			have = a.ExternalID
		case connector.ByUserName:
			have = a.UserName
		case connector.ByEmail:
			have = a.Profile.Email
		case connector.ByEmployeeNumber:
			have = a.Profile.EmployeeNumber
		}
		for _, v := range want[key(have)] {
			if (connector.AccountFilter{Attr: attr, Value: v}).Matches(a) {
				matched[v] = append(matched[v], u.ID)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	views := map[string]connector.Account{}
	for v, ids := range matched {
		for _, id := range ids {
			a, ok := views[id]
			if !ok {
				got, err := c.views(ctx, []string{id})
				if err != nil {
					return nil, err
				}
				if len(got) == 0 {
					continue // gone since the walk
				}
				a, views[id] = got[0], got[0]
			}
			out[v] = append(out[v], a)
		}
	}
	return out, nil
}

// GetAccounts returns the current account of each of ids that exists. The
// user list has no id filter, so it reads each user (one call each) or, when
// that is fewer calls, walks through every user once: a batch of 2,000
// leavers on a platform of 2,000 users is then 10 calls, not 2,000. Accounts
// read by the walk carry no Organization (the list shows no branches); the
// converger does not judge a linked account by its organisation, only the
// candidates of a lookup (FindAccounts, FindAccountsIn), which do carry it.
func (c *Client) GetAccounts(ctx context.Context, ids []string) (map[string]connector.Account, error) {
	want := map[string]bool{}
	for _, id := range ids {
		if validID(id) {
			want[id] = true
		}
	}
	out := make(map[string]connector.Account, len(want))
	if len(want) == 0 {
		return out, nil
	}
	pages, err := c.walkPages(ctx, len(want))
	if err != nil {
		return nil, err
	}
	if len(want) <= pages {
		for id := range want {
			got, err := c.views(ctx, []string{id})
			if err != nil {
				return nil, err
			}
			if len(got) == 1 {
				out[id] = got[0]
			}
		}
		return out, nil
	}
	err = c.each(ctx, "", func(u user) {
		if want[u.ID] {
			out[u.ID] = c.account(u)
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// walkPages returns how many calls a walk through every user costs: from the
// last total the list reported, or, when n reads would cost more than one
// call to find out, by asking for it.
func (c *Client) walkPages(ctx context.Context, n int) (int, error) {
	total := int(c.lastTotal.Load())
	if total == 0 {
		if n <= 2 {
			return n, nil // reading them costs no more than asking
		}
		var err error
		if _, _, total, err = c.list(ctx, 1, 1, ""); err != nil {
			return 0, err
		}
	}
	return max(1, (total+PageSize-1)/PageSize), nil
}
