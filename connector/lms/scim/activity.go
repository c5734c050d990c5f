package scim

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"

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

// MaxActivityBatch implements connector.ActivityLister: 50, or the server's
// filter maxResults if lower; 0 when the server does not filter, or has shown
// that it does not evaluate id filters.
func (c *Client) MaxActivityBatch(ctx context.Context) int {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	caps := c.Capabilities(ctx)
	if !caps.Filter || c.noIDFilter.Load() {
		return 0
	}
	n := activityBatch
	if caps.MaxResults > 0 {
		n = min(n, caps.MaxResults)
	}
	return n
}

// ActivityOf implements connector.ActivityLister with one query per batch:
// GET /Users?filter=id eq "a" or id eq "b" ... (IDFilter). Activity comes from
// the training extension (SchemaTrainingUser); a user without it has unknown
// activity (Known false), never "none". Only users among ids count, whatever the
// server answers.
//
// An id the query does not return is read with GET /Users/{id}, so that only a
// 404 makes an account gone. A server that rejects the filter (400, 501), answers
// more users than ids (it ignored the filter), or misses a user that GET finds
// does not evaluate id filters: from then on the client reads each user with GET,
// and MaxActivityBatch is 0. A batch longer than the filter length allows is sent
// as several queries.
func (c *Client) ActivityOf(ctx context.Context, ids []string) (map[string]connector.AccountActivity, error) {
	out := make(map[string]connector.AccountActivity, len(ids))
	var want []string
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if id != "" && !seen[id] {
			seen[id] = true
			want = append(want, id)
		}
	}
	var missing []string         // not in a query's answer: read one by one
	queried := map[string]bool{} // of missing, those a query missed
	if n := c.MaxActivityBatch(ctx); n > 0 {
		for len(want) > 0 && !c.noIDFilter.Load() {
			chunk := idChunk(want, n)
			want = want[len(chunk):]
			found, err := c.usersByID(ctx, chunk)
			if err != nil {
				return nil, err
			}
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
		if queried[id] {
			// The query missed a user that exists: the server's filter cannot
			// be trusted with ids.
			c.noIDFilter.Store(true)
		}
	}
	return out, nil
}

// idChunk returns the first ids (at most n) whose IDFilter fits maxIDFilter;
// at least one.
func idChunk(ids []string, n int) []string {
	size := 0
	for k, id := range ids {
		size += len(` or id eq ""`) + len(escapeFilterValue(id))
		if k >= n || (k > 0 && size > maxIDFilter) {
			return ids[:k]
		}
	}
	return ids
}

// usersByID queries the users with ids and returns those among ids that the
// server answered, by id; nil when the server does not evaluate the filter.
func (c *Client) usersByID(ctx context.Context, ids []string) (map[string]connector.AccountActivity, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	wanted := make(map[string]bool, len(ids))
	for _, id := range ids {
		wanted[id] = true
	}
	out := map[string]connector.AccountActivity{}
	filter := IDFilter(ids)
	// A server may cap pages below what was asked: follow them, at most one
	// page per id (and one more) whatever it says.
	for start, pages := 1, 0; pages <= len(ids); pages++ {
		q := url.Values{"filter": {filter}, "startIndex": {strconv.Itoa(start)}, "count": {strconv.Itoa(len(ids))}}
		lr, err := c.list(ctx, q)
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
			}
		}
		start += len(lr.Resources)
		if len(lr.Resources) == 0 || start > lr.TotalResults {
			break
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
