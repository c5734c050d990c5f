package scim

import (
	"context"
	"errors"
	"net/http"

	"github.com/hrsync/hrsync/connector"
)

const (
	// activityBatch is the most ids of one OR'ed id filter.
	activityBatch = 50
	// maxIDFilter bounds the length of one id filter, before URL escaping, so
	// that the request line stays well below common limits (8 KiB).
	maxIDFilter = 3000
)

var _ connector.ActivityLister = (*Client)(nil)

// MaxActivityBatch implements connector.ActivityLister: the most ids one query
// carries (see search.go): up to DefaultSearchBatch where the server has POST
// /Users/.search, else 50 (a GET's filter is in its URL), and never more than the
// server's filter maxResults; 0 when the server does not filter, or has shown
// that it does not evaluate id filters.
func (c *Client) MaxActivityBatch(ctx context.Context) int {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if c.noIDFilter.Load() {
		return 0
	}
	return c.orLimits(ctx).n
}

// ActivityOf implements connector.ActivityLister with one query per batch:
// `id eq "a" or id eq "b" ...` (IDFilter), as POST /Users/.search where the
// server has it, else as GET /Users?filter= (search.go). Activity comes from
// the training extension (SchemaTrainingUser); a user without it has unknown
// activity (Known false), never "none". Only users among ids count, whatever the
// server answers.
//
// An id the query does not return is read with GET /Users/{id}, so that only a
// 404 makes an account gone. A server that rejects the filter (400, 501), answers
// more users than ids (it ignored the filter), or misses a user that GET finds
// does not evaluate id filters: from then on the client reads each user with GET,
// and MaxActivityBatch is 0. A batch longer than one query allows is sent as
// several queries.
func (c *Client) ActivityOf(ctx context.Context, ids []string) (map[string]connector.AccountActivity, error) {
	return c.activityOf(ctx, ids, nil)
}

// activityOf is ActivityOf, calling seen (if not nil) with each user read.
func (c *Client) activityOf(ctx context.Context, ids []string, seen func(User)) (map[string]connector.AccountActivity, error) {
	out := make(map[string]connector.AccountActivity, len(ids))
	var want []string
	dup := make(map[string]bool, len(ids))
	for _, id := range ids {
		if id != "" && !dup[id] {
			dup[id] = true
			want = append(want, id)
		}
	}
	var missing []string         // not in a query's answer: read one by one
	queried := map[string]bool{} // of missing, those a query missed
	for len(want) > 0 && !c.noIDFilter.Load() {
		lim := c.orLimits(ctx)
		if lim.n <= 0 {
			break
		}
		chunk := idChunk(want, lim)
		found, err := c.usersByID(ctx, chunk, lim.search, seen)
		if errors.Is(err, errRechunk) {
			continue // .search is off, or fewer values a query: cut again
		}
		if err != nil {
			return nil, err
		}
		want = want[len(chunk):]
		if found == nil { // the server does not evaluate the filter
			missing = append(missing, chunk...)
			break
		}
		for _, id := range chunk {
			if aa, ok := found[id]; ok {
				out[id] = aa
			} else {
				missing = append(missing, id)
				queried[id] = true
			}
		}
	}
	missing = append(missing, want...)
	for _, id := range missing {
		u, err := c.GetUser(ctx, id)
		if errors.Is(err, connector.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[id] = accountActivity(u)
		if seen != nil {
			seen(u)
		}
		if queried[id] {
			// The query missed a user that exists: the server's filter cannot
			// be trusted with ids.
			c.noIDFilter.Store(true)
		}
	}
	return out, nil
}

// idChunk returns the first ids (at most lim.n) whose IDFilter fits lim.bytes;
// at least one.
func idChunk(ids []string, lim orLimits) []string {
	size := 0
	for k, id := range ids {
		size += len(` or id eq ""`) + len(escapeFilterValue(id))
		if k >= lim.n || (k > 0 && size > lim.bytes) {
			return ids[:k]
		}
	}
	return ids
}

// usersByID queries the users with ids (with .search if search) and returns
// those among ids that the server answered, by id; nil when the server does not
// evaluate the filter; errRechunk when the query must be cut again. seen (if not
// nil) is called with each of those users once the query is judged sound.
func (c *Client) usersByID(ctx context.Context, ids []string, search bool, seen func(User)) (map[string]connector.AccountActivity, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	wanted := make(map[string]bool, len(ids))
	for _, id := range ids {
		wanted[id] = true
	}
	out := map[string]connector.AccountActivity{}
	var users []User
	filter := IDFilter(ids)
	// A server may cap pages below what was asked: follow them, at most one
	// page per id (and one more) whatever it says.
	for start, pages := 1, 0; pages <= len(ids); pages++ {
		lr, err := c.filteredPage(ctx, filter, len(ids), start, len(ids), search)
		if le, ok := errors.AsType[*connector.LMSError](err); ok &&
			(le.Status == http.StatusBadRequest || le.Status == http.StatusNotImplemented) {
			c.noIDFilter.Store(true)
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if lr.TotalResults > len(ids) {
			// An OR of distinct ids matches at most that many users.
			c.noIDFilter.Store(true)
			return nil, nil
		}
		for _, u := range lr.Resources {
			if wanted[u.ID] {
				out[u.ID] = accountActivity(u)
				users = append(users, u)
			}
		}
		start += len(lr.Resources)
		if len(lr.Resources) == 0 || start > lr.TotalResults {
			break
		}
	}
	if seen != nil {
		for _, u := range users {
			seen(u)
		}
	}
	return out, nil
}

// accountActivity is the account and the activity the user u carries.
func accountActivity(u User) connector.AccountActivity {
	aa := connector.AccountActivity{Account: ToAccount(u)}
	if t := u.Training; t != nil {
		aa.Activity = connector.Activity{Known: true, LastLogin: t.LastLogin, Enrollments: len(t.Enrollments),
			Completions: len(t.Completions), Uploads: t.Uploads, Rewards: t.Rewards}
	}
	return aa
}
