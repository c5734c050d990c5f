package docebo

import (
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/hrsync/hrsync/connector"
)

// Activity and learning history come from two places: the user's
// last_access_date, and its enrollments (GET /learn/v1/enrollments, filtered
// by id_user), each with its status and, once completed, course_complete_date.
// Deactivating a Docebo user keeps its enrollments, so a rehire finds them.

const enrollmentsPath = "/learn/v1/enrollments"

// enrollment is one item of GET /learn/v1/enrollments.
type enrollment struct {
	UserID      string
	Course      string // the course code, or its name when it has no code
	Completed   bool
	CompletedAt *time.Time
}

// enrollments returns the enrollments of ids, every page of them.
func (c *Client) enrollments(ctx context.Context, ids []string) ([]enrollment, error) {
	const op = "GET " + enrollmentsPath
	var out []enrollment
	for page := 1; page <= maxPages; page++ {
		q := url.Values{"page": {strconv.Itoa(page)}, "page_size": {strconv.Itoa(PageSize)}}
		for _, id := range ids {
			q.Add("id_user[]", id)
		}
		var p listPage
		if err := c.read(ctx, enrollmentsPath, q, &p); err != nil {
			return nil, err
		}
		for _, raw := range p.Items {
			var m map[string]json.RawMessage
			if err := json.Unmarshal(raw, &m); err != nil {
				return nil, &connector.LMSError{Kind: connector.KindUnavailable, Op: op, Err: err}
			}
			e := enrollment{UserID: lenientString(m["user_id"]), Course: cmpOr(lenientString(m["code"]), lenientString(m["name"]))}
			e.CompletedAt = parseTime(lenientString(m["course_complete_date"]))
			e.Completed = lenientString(m["status"]) == "completed" || e.CompletedAt != nil
			out = append(out, e)
		}
		if !p.HasMoreData || len(p.Items) == 0 {
			return out, nil
		}
	}
	return nil, &connector.LMSError{Kind: connector.KindUnavailable, Op: op, Reason: "more than 10000 pages"}
}

// activity sums up user u's last access and those of es that are its own.
func activity(u user, es []enrollment) connector.Activity {
	act := connector.Activity{Known: true, LastLogin: u.LastAccess}
	for _, e := range es {
		if e.UserID != "" && e.UserID != u.ID {
			continue
		}
		act.Enrollments++
		if e.Completed {
			act.Completions++
		}
	}
	return act
}

// Activity returns the user's last access and how many enrollments and
// completions it has: two calls (the user, its enrollments).
func (c *Client) Activity(ctx context.Context, id string) (connector.Activity, error) {
	u, err := c.view(ctx, id)
	if err != nil {
		return connector.Activity{}, err
	}
	es, err := c.enrollments(ctx, []string{id})
	if err != nil {
		return connector.Activity{}, err
	}
	return activity(u, es), nil
}

// MaxActivityBatch is how many ids one ActivityOf call reads.
func (c *Client) MaxActivityBatch(context.Context) int { return c.maxBatch }

// ActivityOf reads each user (one call each: the list has no id filter) and
// the enrollments of all of them in one query (id_user is a list).
func (c *Client) ActivityOf(ctx context.Context, ids []string) (map[string]connector.AccountActivity, error) {
	users := map[string]user{}
	var found []string
	for _, id := range ids {
		if _, seen := users[id]; seen || !validID(id) {
			continue
		}
		u, err := c.view(ctx, id)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		users[id] = u
		found = append(found, id)
	}
	out := make(map[string]connector.AccountActivity, len(found))
	if len(found) == 0 {
		return out, nil
	}
	es, err := c.enrollments(ctx, found)
	if err != nil {
		return nil, err
	}
	for _, id := range found {
		u := users[id]
		out[id] = connector.AccountActivity{Account: c.account(u), Activity: activity(u, es)}
	}
	return out, nil
}

// Completions returns the user's completed enrollments, course by code (or
// name), at their completion dates. Docebo keeps one enrollment per course and
// user, so a course completed twice shows once, at its latest completion.
func (c *Client) Completions(ctx context.Context, id string) ([]connector.CompletionRecord, error) {
	if !validID(id) {
		return nil, notFound("GET "+enrollmentsPath, id)
	}
	es, err := c.enrollments(ctx, []string{id})
	if err != nil {
		return nil, err
	}
	var out []connector.CompletionRecord
	for _, e := range es {
		if e.Completed && (e.UserID == "" || e.UserID == id) {
			r := connector.CompletionRecord{Course: e.Course}
			if e.CompletedAt != nil {
				r.CompletedAt = *e.CompletedAt
			}
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b connector.CompletionRecord) int { return a.CompletedAt.Compare(b.CompletedAt) })
	return out, nil
}
