package docebo

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/lmshttp"
)

const usersPath = "/manage/v1/user"

// validID reports whether id can be a Docebo user id (a positive integer); any
// other id names no user, and is answered ErrNotFound without a call.
func validID(id string) bool {
	n, err := strconv.ParseInt(id, 10, 64)
	return err == nil && n > 0
}

func notFound(op, id string) error {
	return &connector.LMSError{Kind: connector.KindNotFound, Op: op, Reason: "no user " + strconv.Quote(id)}
}

// GetAccount reads GET /manage/v1/user/{id}: the user, its additional fields
// and its branches (the first branch's code is the account's Organization).
func (c *Client) GetAccount(ctx context.Context, id string) (connector.Account, error) {
	u, err := c.view(ctx, id)
	if err != nil {
		return connector.Account{}, err
	}
	return c.account(u), nil
}

// view reads the user id, or ErrNotFound.
func (c *Client) view(ctx context.Context, id string) (user, error) {
	const op = "GET " + usersPath + "/{id}"
	if !validID(id) {
		return user{}, notFound(op, id)
	}
	var raw json.RawMessage
	if err := c.read(ctx, usersPath+"/"+id, nil, &raw); err != nil {
		return user{}, err
	}
	u, err := parseUser(raw)
	if err != nil {
		return user{}, &connector.LMSError{Kind: connector.KindUnavailable, Op: op, Err: err}
	}
	return u, nil
}

// listPage is data of GET /manage/v1/user.
type listPage struct {
	Items       []json.RawMessage `json:"items"`
	HasMoreData bool              `json:"has_more_data"`
	TotalCount  json.RawMessage   `json:"total_count"`
	CurrentPage json.RawMessage   `json:"current_page"`
}

// list reads one page of GET /manage/v1/user, sorted by username.
func (c *Client) list(ctx context.Context, page, size int, search string) ([]user, bool, int, error) {
	q := url.Values{"page": {strconv.Itoa(page)}, "page_size": {strconv.Itoa(size)}, "get_total_count": {"1"},
		"sort_attr": {"username"}, "sort_dir": {"asc"}}
	if search != "" {
		q.Set("search_text", search)
	}
	var p listPage
	if err := c.read(ctx, usersPath, q, &p); err != nil {
		return nil, false, 0, err
	}
	users := make([]user, 0, len(p.Items))
	for _, raw := range p.Items {
		u, err := parseUser(raw)
		if err != nil {
			return nil, false, 0, &connector.LMSError{Kind: connector.KindUnavailable, Op: "GET " + usersPath, Err: err}
		}
		users = append(users, u)
	}
	total, _ := strconv.Atoi(lenientString(p.TotalCount))
	if search == "" && total > 0 {
		c.lastTotal.Store(int64(total))
	}
	return users, p.HasMoreData, total, nil
}

// maxPages bounds every walk through the user list (200 per page: two million users).
const maxPages = 10000

// each calls fn for every user whose first name, last name or username
// contains search (every user if search is empty), a page of 200 at a time.
func (c *Client) each(ctx context.Context, search string, fn func(u user)) error {
	for page := 1; page <= maxPages; page++ {
		users, more, _, err := c.list(ctx, page, PageSize, search)
		if err != nil {
			return err
		}
		for _, u := range users {
			fn(u)
		}
		if !more || len(users) == 0 {
			return nil
		}
	}
	return &connector.LMSError{Kind: connector.KindUnavailable, Op: "GET " + usersPath, Reason: "more than 10000 pages"}
}

// searchable reports whether Docebo's search_text reaches attr: it searches
// first name, last name and username, so userName and an externalId kept in
// the username are found with one query; email, employee number and an
// externalId in an additional field need a walk through every user.
func (c *Client) searchable(attr connector.FilterAttr) bool {
	return attr == connector.ByUserName || attr == connector.ByExternalID && c.fields.ExternalID == UserNameField
}

// FindAccounts returns the accounts matching f. Docebo filters on no attribute
// exactly: for userName (and an externalId kept in the username) it asks
// search_text, which matches substrings of names and usernames; for the other
// attributes it reads every user, 200 a page. Either way the answer is
// filtered here with f.Matches, and each match is read once more (GET
// /manage/v1/user/{id}) for its branches.
func (c *Client) FindAccounts(ctx context.Context, f connector.AccountFilter) ([]connector.Account, error) {
	if f.Value == "" {
		return nil, nil
	}
	if f.Attr == connector.ByEmployeeNumber && c.fields.EmployeeNumber == "" {
		return nil, nil // not kept: no account can match
	}
	search := ""
	if c.searchable(f.Attr) {
		search = f.Value
	}
	var ids []string
	err := c.each(ctx, search, func(u user) {
		if f.Matches(c.account(u)) {
			ids = append(ids, u.ID)
		}
	})
	if err != nil {
		return nil, err
	}
	return c.views(ctx, ids)
}

// views reads each of ids; one that is gone meanwhile is left out.
func (c *Client) views(ctx context.Context, ids []string) ([]connector.Account, error) {
	out := make([]connector.Account, 0, len(ids))
	for _, id := range ids {
		a, err := c.GetAccount(ctx, id)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

func isNotFound(err error) bool { return errors.Is(err, connector.ErrNotFound) }

// ListAccounts reads the users sorted by username. Docebo pages by number, so a
// startIndex that is not on a page boundary of count is read with the largest
// smaller page size that puts it on one (the port allows short pages).
// Accounts listed here carry no Organization: the list shows no branches.
func (c *Client) ListAccounts(ctx context.Context, startIndex, count int) (connector.AccountPage, error) {
	startIndex = max(startIndex, 1)
	size := min(max(count, 1), PageSize)
	for (startIndex-1)%size != 0 {
		size--
	}
	users, _, total, err := c.list(ctx, (startIndex-1)/size+1, size, "")
	if err != nil {
		return connector.AccountPage{}, err
	}
	page := connector.AccountPage{StartIndex: startIndex, TotalResults: total, Accounts: make([]connector.Account, 0, len(users))}
	if count <= 0 {
		return page, nil
	}
	for _, u := range users {
		page.Accounts = append(page.Accounts, c.account(u))
	}
	return page, nil
}

// createData is data of POST /manage/v1/user.
type createData struct {
	Success json.RawMessage `json:"success"`
	UserID  json.RawMessage `json:"user_id"`
	Message json.RawMessage `json:"message"`
}

// CreateAccount creates the user with POST /manage/v1/user, with a random
// password (people sign in through the platform's SSO or reset it), then puts
// it in its branch. Fields that Fields does not map come back empty.
func (c *Client) CreateAccount(ctx context.Context, a connector.Account) (connector.Account, error) {
	const op = "POST " + usersPath
	b := c.body(a)
	b.Password = password()
	valid, force := 0, 0
	if a.Active {
		valid = 1
	}
	b.Valid, b.ForceChange = &valid, &force
	var d createData
	if err := c.call(ctx, "POST", usersPath, nil, b, &d); err != nil {
		return connector.Account{}, err
	}
	id := lenientString(d.UserID)
	if lenientString(d.Success) == "0" || !validID(id) {
		msg := messageText(d.Message)
		kind := connector.KindInvalid
		if isTaken(msg) {
			kind = connector.KindConflict
		}
		return connector.Account{}, &connector.LMSError{Kind: kind, Op: op, Reason: cmpOr(lmshttp.Truncate(msg, maxReason), "no user_id in the answer")}
	}
	got := c.kept(a)
	got.ID = id
	if a.Organization != "" {
		if err := c.setBranch(ctx, id, "", a.Organization); err != nil {
			return got, err
		}
		got.Organization = a.Organization
	}
	return got, nil
}

// kept returns a as Docebo keeps it: the fields Fields does not map are empty,
// and an externalId kept in the username is the username.
func (c *Client) kept(a connector.Account) connector.Account {
	u := user{UserName: c.userNameOf(a), Email: a.Profile.Email, FirstName: a.Profile.GivenName,
		LastName: a.Profile.FamilyName, Active: a.Active, Fields: map[string]string{}}
	for _, f := range c.fields.additional(a) {
		u.Fields[strconv.Itoa(f.ID)] = f.Value
	}
	got := c.account(u)
	got.ID, got.Organization = a.ID, a.Organization
	return got
}

// password returns a random password that meets Docebo's usual rules (letters
// of both cases, digits, a symbol).
func password() string {
	return rand.Text()[:20] + "a9!Z"
}

// UpdateAccount replaces the username, email, names and mapped fields with PUT
// /manage/v1/user/{id} (active is not part of it), moves the user to
// a.Organization's branch if that changed, and reads the user back. Docebo has
// no versions: a.Version is ignored.
func (c *Client) UpdateAccount(ctx context.Context, a connector.Account) (connector.Account, error) {
	if !validID(a.ID) {
		return connector.Account{}, notFound("PUT "+usersPath+"/{id}", a.ID)
	}
	if err := c.call(ctx, "PUT", usersPath+"/"+a.ID, nil, c.body(a), nil); err != nil {
		return connector.Account{}, err
	}
	got, err := c.GetAccount(ctx, a.ID)
	if err != nil {
		return connector.Account{}, err
	}
	if a.Organization != "" && !strings.EqualFold(got.Organization, a.Organization) {
		if err := c.setBranch(ctx, a.ID, got.Organization, a.Organization); err != nil {
			return got, err
		}
		got.Organization = a.Organization
	}
	return got, nil
}

// statusData is data of PUT /manage/v1/user/change_status (an object, or a
// list of one, as the SDK's model says).
type statusData struct {
	Success       json.RawMessage   `json:"success"`
	UpdatedIDs    []json.RawMessage `json:"updated_ids"`
	NotUpdatedIDs []json.RawMessage `json:"not_updated_ids"`
}

// changeStatus sets the status of ids with one call and returns the ids the
// answer says it updated.
func (c *Client) changeStatus(ctx context.Context, ids []string, active bool) (map[string]bool, error) {
	status := "0"
	if active {
		status = "1"
	}
	body := map[string]any{"user_ids": intIDs(ids), "status": status}
	var raw json.RawMessage
	if err := c.call(ctx, "PUT", usersPath+"/change_status", nil, body, &raw); err != nil {
		return nil, err
	}
	var ds []statusData
	if json.Unmarshal(raw, &ds) != nil {
		var d statusData
		if err := json.Unmarshal(raw, &d); err != nil {
			return nil, &connector.LMSError{Kind: connector.KindUnavailable, Op: "PUT " + usersPath + "/change_status", Err: err}
		}
		ds = []statusData{d}
	}
	done := map[string]bool{}
	for _, d := range ds {
		for _, id := range d.UpdatedIDs {
			done[lenientString(id)] = true
		}
	}
	return done, nil
}

// intIDs returns ids as numbers, as the API's schema has them.
func intIDs(ids []string) []int64 {
	out := make([]int64, 0, len(ids))
	for _, id := range ids {
		n, _ := strconv.ParseInt(id, 10, 64)
		out = append(out, n)
	}
	return out
}

// SetActive sets the user's status with change_status (status 1 activates, 0
// deactivates; enrollments are kept) and reads the user back.
func (c *Client) SetActive(ctx context.Context, id string, active bool) (connector.Account, error) {
	rs, err := c.SetActiveMany(ctx, []string{id}, active)
	if err != nil {
		return connector.Account{}, err
	}
	if rs[0].Err != nil {
		return connector.Account{}, rs[0].Err
	}
	return c.GetAccount(ctx, id)
}

// MaxSetActiveBatch is how many ids one change_status call carries.
func (c *Client) MaxSetActiveBatch(context.Context) int { return c.maxBatch }

// SetActiveMany sets the status of every account of ids with one
// change_status call per MaxSetActiveBatch ids. An id the answer does not
// list as updated is read: gone is ErrNotFound, already in the wanted status
// is done, anything else is an error for that item.
func (c *Client) SetActiveMany(ctx context.Context, ids []string, active bool) ([]connector.ItemResult, error) {
	const op = "PUT " + usersPath + "/change_status"
	out := make([]connector.ItemResult, len(ids))
	var valid []string
	for i, id := range ids {
		out[i].Account = connector.Account{ID: id, Active: active}
		if !validID(id) {
			out[i].Err = notFound(op, id)
			continue
		}
		valid = append(valid, id)
	}
	done := map[string]bool{}
	for chunk := range slices.Chunk(valid, c.maxBatch) {
		d, err := c.changeStatus(ctx, chunk, active)
		if err != nil {
			return nil, err
		}
		for id := range d {
			done[id] = true
		}
	}
	for i, id := range ids {
		if out[i].Err != nil || done[id] {
			continue
		}
		out[i].Err = c.explain(ctx, op, id, func(a connector.Account) bool { return a.Active == active })
	}
	return out, nil
}

// explain classifies an id a batch answer left out: ErrNotFound if the user is
// gone, nil if it already is as wanted (ok), an error for that item otherwise.
func (c *Client) explain(ctx context.Context, op, id string, ok func(connector.Account) bool) error {
	a, err := c.GetAccount(ctx, id)
	switch {
	case isNotFound(err):
		return notFound(op, id)
	case err != nil:
		return err
	case ok != nil && ok(a):
		return nil
	}
	return &connector.LMSError{Kind: connector.KindInvalid, Op: op, Reason: "Docebo did not apply the change to user " + id}
}

// deleteData is data of DELETE /manage/v1/user/delete.
type deleteData struct {
	Success        json.RawMessage   `json:"success"`
	DeletedUserIDs []json.RawMessage `json:"deleted_user_ids"`
}

// DeleteAccount deletes the user with DELETE /manage/v1/user/delete.
func (c *Client) DeleteAccount(ctx context.Context, id string) error {
	errs, err := c.DeleteAccounts(ctx, []connector.Deletion{{ID: id}})
	if err != nil {
		return err
	}
	return errs[0]
}

// MaxBulkDeletes is how many users one DELETE /manage/v1/user/delete carries.
func (c *Client) MaxBulkDeletes(context.Context) int { return c.maxBatch }

// DeleteAccounts deletes dels with one call (user_ids). Docebo has no versions,
// so a Deletion's Version is not checked. A user the answer does not list as
// deleted is read: gone is ErrNotFound, still there an error for that item.
func (c *Client) DeleteAccounts(ctx context.Context, dels []connector.Deletion) ([]error, error) {
	const op = "DELETE " + usersPath + "/delete"
	errs := make([]error, len(dels))
	var ids []string
	for i, d := range dels {
		if !validID(d.ID) {
			errs[i] = notFound(op, d.ID)
			continue
		}
		if !slices.Contains(ids, d.ID) {
			ids = append(ids, d.ID)
		}
	}
	deleted := map[string]bool{}
	for chunk := range slices.Chunk(ids, c.maxBatch) {
		var raw json.RawMessage
		if err := c.call(ctx, "DELETE", usersPath+"/delete", nil, map[string]any{"user_ids": intIDs(chunk)}, &raw); err != nil {
			return nil, err
		}
		var ds []deleteData
		if json.Unmarshal(raw, &ds) != nil {
			var d deleteData
			if err := json.Unmarshal(raw, &d); err != nil {
				return nil, &connector.LMSError{Kind: connector.KindUnavailable, Op: op, Err: err}
			}
			ds = []deleteData{d}
		}
		for _, d := range ds {
			for _, id := range d.DeletedUserIDs {
				deleted[lenientString(id)] = true
			}
		}
	}
	reported := map[string]bool{}
	for i, d := range dels {
		if errs[i] != nil {
			continue
		}
		if deleted[d.ID] && !reported[d.ID] {
			reported[d.ID] = true
			continue
		}
		// Not deleted by this call (or named twice: the second is already gone).
		errs[i] = c.explain(ctx, op, d.ID, nil)
	}
	return errs, nil
}
