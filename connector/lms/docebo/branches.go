package docebo

import (
	"context"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"

	"github.com/hrsync/hrsync/connector"
)

// Branches are Docebo's organisation tree; an account's Organization is the
// code of its branch. Docebo's API introduction warns that branch calls must
// never run concurrently, or the tree may be corrupted: every call that reads
// or changes branches or branch membership runs under branchMu, one at a time
// across the whole client.

const orgchartPath = "/manage/v1/orgchart"

// setBranch moves user id from the branch coded from (if any) to the branch
// coded to, creating that branch at the root if it does not exist.
func (c *Client) setBranch(ctx context.Context, id, from, to string) error {
	c.branchMu.Lock()
	defer c.branchMu.Unlock()
	toID, err := c.branchID(ctx, to, true)
	if err != nil {
		return err
	}
	if from != "" && !strings.EqualFold(from, to) {
		fromID, err := c.branchID(ctx, from, false)
		if err != nil {
			return err
		}
		if fromID > 0 {
			body := map[string]any{"branch_ids": []int{fromID}, "user_ids": intIDs([]string{id})}
			if err := c.call(ctx, "PUT", usersPath+"/remove_from_branch", nil, body, nil); err != nil {
				return err
			}
		}
	}
	body := map[string]any{"branch_id": toID, "user_ids": intIDs([]string{id})}
	return c.call(ctx, "POST", orgchartPath+"/assign_users", nil, body, nil)
}

// branchID returns the id of the branch coded code, from the cache or by
// searching the tree; if there is none and create is set, it creates one.
// The caller holds branchMu.
func (c *Client) branchID(ctx context.Context, code string, create bool) (int, error) {
	key := strings.ToLower(code)
	if id, ok := c.branches[key]; ok {
		return id, nil
	}
	var page struct {
		Items []map[string]json.RawMessage `json:"items"`
	}
	if err := c.call(ctx, "GET", orgchartPath, url.Values{"search_text": {code}}, nil, &page); err != nil {
		return 0, err
	}
	for _, b := range page.Items {
		if strings.EqualFold(lenientString(b["code"]), code) {
			id, _ := strconv.Atoi(lenientString(b["id"]))
			if id > 0 {
				c.branches[key] = id
				return id, nil
			}
		}
	}
	if !create {
		return 0, nil
	}
	var made struct {
		ID json.RawMessage `json:"id"`
	}
	body := map[string]any{"code": code, "translations": map[string]string{"english": code}}
	if err := c.call(ctx, "POST", orgchartPath, nil, body, &made); err != nil {
		return 0, err
	}
	id, _ := strconv.Atoi(lenientString(made.ID))
	if id <= 0 {
		return 0, &connector.LMSError{Kind: connector.KindUnavailable, Op: "POST " + orgchartPath, Reason: "no branch id in the answer"}
	}
	c.branches[key] = id
	return id, nil
}
