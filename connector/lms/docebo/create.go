package docebo

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/lmshttp"
)

var _ connector.AccountCreator = (*Client)(nil)

// MaxCreateBatch is how many users one batch import carries. Docebo's
// community guides cap bulk user calls at 1,000; the SDK's importer sends 100
// a chunk by default; 200 keeps a batch's answer and its walk in step.
const MaxCreateBatch = 200

// MaxCreateBatch implements connector.AccountCreator.
func (c *Client) MaxCreateBatch(context.Context) int { return MaxCreateBatch }

// importRow is one row of the batch import's answer (the SDK's
// ManageUserBatchResponse): row_index, success, message; a user_id is read
// where the platform sends one, but the documentation promises none.
type importRow struct {
	RowIndex json.RawMessage `json:"row_index"`
	Success  json.RawMessage `json:"success"`
	Message  json.RawMessage `json:"message"`
	UserID   json.RawMessage `json:"user_id"`
}

// CreateAccounts creates accs with Docebo's batch import (POST
// /manage/v1/user/batch, existing users refused: update_user_info false), when
// that costs fewer calls than one create each. The import's answer says, per
// row, whether the user was made, not its id: the new ids are read back by
// walking the users once (or by one search per username, if that is fewer
// calls), and the new users are put in their branches with one call per
// branch. So a batch of k costs 2 + min(k, ⌈users/200⌉) calls plus the
// branches, and a batch that would not gain is made one create at a time.
func (c *Client) CreateAccounts(ctx context.Context, accs []connector.Account) ([]connector.ItemResult, error) {
	out := make([]connector.ItemResult, len(accs))
	if len(accs) == 0 {
		return out, nil
	}
	pages := 0
	if len(accs) > 2 {
		p, err := c.walkPages(ctx, len(accs))
		if err != nil {
			return nil, err
		}
		pages = p + (len(accs)+PageSize-1)/PageSize // the walk after the import reads the new users too
	}
	if len(accs) <= 2 || len(accs) <= 2+min(pages, len(accs)) {
		for i, a := range accs {
			out[i].Account, out[i].Err = c.CreateAccount(ctx, a)
		}
		return out, nil
	}
	for from := 0; from < len(accs); from += MaxCreateBatch {
		chunk := accs[from:min(from+MaxCreateBatch, len(accs))]
		if err := c.importChunk(ctx, chunk, out[from:from+len(chunk)], pages); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// importChunk imports chunk and fills its results.
func (c *Client) importChunk(ctx context.Context, chunk []connector.Account, out []connector.ItemResult, pages int) error {
	const op = "POST " + usersPath + "/batch"
	items := make([]map[string]any, len(chunk))
	for i, a := range chunk {
		b := c.body(a)
		it := map[string]any{"username": b.UserID, "email": b.Email, "firstname": b.FirstName, "lastname": b.LastName,
			"password": password(), "active": a.Active}
		for _, f := range b.Additional {
			it["field_"+strconv.Itoa(f.ID)] = f.Value
		}
		items[i] = it
	}
	body := map[string]any{"items": items, "options": map[string]any{"update_user_info": false, "change_user_password": false}}
	var raw json.RawMessage
	if err := c.call(ctx, "POST", usersPath+"/batch", nil, body, &raw); err != nil {
		return err
	}
	var rows []importRow
	if err := json.Unmarshal(raw, &rows); err != nil {
		var wrapped struct {
			Items []importRow `json:"items"`
		}
		if json.Unmarshal(raw, &wrapped) != nil {
			return &connector.LMSError{Kind: connector.KindUnavailable, Op: op, Reason: "unexpected answer", Err: err}
		}
		rows = wrapped.Items
	}
	answered := make([]*importRow, len(chunk))
	for i := range rows {
		if n, err := strconv.Atoi(lenientString(rows[i].RowIndex)); err == nil && n >= 0 && n < len(chunk) {
			answered[n] = &rows[i]
		}
	}
	need := map[string]int{} // folded username -> index in chunk, for rows made without an id
	for i, a := range chunk {
		row := answered[i]
		out[i].Account = c.kept(a)
		switch {
		case row == nil:
			out[i].Err = &connector.LMSError{Kind: connector.KindUnavailable, Op: op, Reason: "no row in the answer for this user"}
		case lenientString(row.Success) != "1":
			msg := messageText(row.Message)
			kind := connector.KindInvalid
			if isTaken(msg) {
				kind = connector.KindConflict
			}
			out[i].Err = &connector.LMSError{Kind: kind, Op: op, Reason: cmpOr(lmshttp.Truncate(msg, maxReason), "row refused")}
		case validID(lenientString(row.UserID)):
			out[i].Account.ID = lenientString(row.UserID)
		default:
			need[strings.ToLower(c.userNameOf(a))] = i
		}
	}
	if err := c.resolveIDs(ctx, need, out, pages); err != nil {
		return err
	}
	return c.assignBranches(ctx, chunk, out)
}

// resolveIDs finds the ids of the users just made, by username: one search
// each, or one walk if that is fewer calls. A user not found is an error for
// its item (made, but not linkable now: a later lookup finds it).
func (c *Client) resolveIDs(ctx context.Context, need map[string]int, out []connector.ItemResult, pages int) error {
	if len(need) == 0 {
		return nil
	}
	found := func(u user) {
		if i, ok := need[strings.ToLower(u.UserName)]; ok && out[i].Account.ID == "" {
			out[i].Account.ID = u.ID
		}
	}
	if len(need) < pages {
		for name := range need {
			if err := c.each(ctx, name, found); err != nil {
				return err
			}
		}
	} else if err := c.each(ctx, "", found); err != nil {
		return err
	}
	for _, i := range need {
		if out[i].Account.ID == "" {
			out[i].Err = &connector.LMSError{Kind: connector.KindUnavailable, Op: "GET " + usersPath,
				Reason: "imported, but not found by its username"}
		}
	}
	return nil
}

// assignBranches puts the users made in their branches, one call per branch.
func (c *Client) assignBranches(ctx context.Context, chunk []connector.Account, out []connector.ItemResult) error {
	byOrg := map[string][]int{}
	var orgs []string
	for i, a := range chunk {
		if a.Organization == "" || out[i].Err != nil || out[i].Account.ID == "" {
			continue
		}
		key := strings.ToLower(a.Organization)
		if _, ok := byOrg[key]; !ok {
			orgs = append(orgs, a.Organization)
		}
		byOrg[key] = append(byOrg[key], i)
	}
	slices.Sort(orgs)
	c.branchMu.Lock()
	defer c.branchMu.Unlock()
	for _, org := range orgs {
		idx := byOrg[strings.ToLower(org)]
		fail := func(err error) {
			for _, i := range idx {
				out[i].Err = err
			}
		}
		id, err := c.branchID(ctx, org, true)
		if err != nil {
			fail(err)
			continue
		}
		ids := make([]string, len(idx))
		for j, i := range idx {
			ids[j] = out[i].Account.ID
		}
		if err := c.call(ctx, "POST", orgchartPath+"/assign_users", nil, map[string]any{"branch_id": id, "user_ids": intIDs(ids)}, nil); err != nil {
			fail(err)
			continue
		}
		for _, i := range idx {
			out[i].Account.Organization = chunk[i].Organization
		}
	}
	return nil
}
