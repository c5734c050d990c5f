package scim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/lmshttp"
)

// Batch writes over SCIM Bulk (RFC 7644 §3.7): creates as POST operations on
// /Users, updates and activation as PATCH operations on /Users/{id}, each with a
// bulkId, in requests of at most the server's maxOperations (and at most 1000)
// and its maxPayloadSize. Each operation's status is mapped as its single
// request's answer would be (409 ErrConflict, 404 ErrNotFound, 412
// ErrPrecondition, a 500 on a user that GET says is gone ErrNotFound). A
// successful operation's result carries its location and version; its response
// body (the user as stored) is optional, and where the server leaves it out the
// item's account is the one sent, with the id from the location and the version
// from the result. Updates and activation need PATCH: a server without it (or
// that refused an update's PATCH) gets MaxUpdateBatch and MaxSetActiveBatch 0,
// and the caller's single calls read and PUT.

var (
	_ connector.AccountCreator = (*Client)(nil)
	_ connector.ActiveSetter   = (*Client)(nil)
	_ connector.AccountUpdater = (*Client)(nil)
)

// MaxCreateBatch implements connector.AccountCreator: MaxBulkDeletes, the
// server's bulk maxOperations (at most 1000), or 0 without bulk.
func (c *Client) MaxCreateBatch(ctx context.Context) int { return c.MaxBulkDeletes(ctx) }

// MaxSetActiveBatch implements connector.ActiveSetter: as MaxCreateBatch where
// the server has PATCH, else 0.
func (c *Client) MaxSetActiveBatch(ctx context.Context) int {
	if !c.Capabilities(ctx).Patch {
		return 0
	}
	return c.MaxBulkDeletes(ctx)
}

// MaxUpdateBatch implements connector.AccountUpdater: as MaxSetActiveBatch, and
// 0 once the server refused an update's PATCH.
func (c *Client) MaxUpdateBatch(ctx context.Context) int {
	if c.noPatchUpdate.Load() {
		return 0
	}
	return c.MaxSetActiveBatch(ctx)
}

// CreateAccounts implements connector.AccountCreator with POST operations.
func (c *Client) CreateAccounts(ctx context.Context, accs []connector.Account) ([]connector.ItemResult, error) {
	if c.MaxCreateBatch(ctx) <= 0 {
		return c.each(ctx, len(accs), func(i int) (connector.Account, error) { return c.CreateAccount(ctx, accs[i]) })
	}
	ops := make([]BulkOperation, len(accs))
	for i, a := range accs {
		a.ID, a.Version, a.Created = "", "", time.Time{}
		ops[i] = BulkOperation{Method: http.MethodPost, Path: "/Users", Data: mustJSON(FromAccount(a))}
	}
	res, err := c.bulkWrite(ctx, ops, func(i int, r BulkOperationResponse) connector.Account {
		a := accs[i]
		a.ID, a.Version, a.Created = idFromLocation(r.Location), r.Version, time.Time{}
		return a
	})
	for i, r := range res {
		if r.Err == nil && i < len(accs) {
			c.noteProbes(accs[i])
			break // one is enough
		}
	}
	return res, err
}

// SetActiveMany implements connector.ActiveSetter with PATCH operations that
// replace active.
func (c *Client) SetActiveMany(ctx context.Context, ids []string, active bool) ([]connector.ItemResult, error) {
	if c.MaxSetActiveBatch(ctx) <= 0 {
		return c.each(ctx, len(ids), func(i int) (connector.Account, error) { return c.SetActive(ctx, ids[i], active) })
	}
	body := mustJSON(PatchOp{Schemas: []string{MessagePatchOp},
		Operations: []PatchOperation{{Op: "replace", Path: "active", Value: json.RawMessage(strconv.FormatBool(active))}}})
	ops := make([]BulkOperation, len(ids))
	for i, id := range ids {
		ops[i] = BulkOperation{Method: http.MethodPatch, Path: userPath(id), Data: body}
	}
	return c.bulkWrite(ctx, ops, func(i int, r BulkOperationResponse) connector.Account {
		return connector.Account{ID: ids[i], Active: active, Version: r.Version}
	})
}

// UpdateAccounts implements connector.AccountUpdater with the PATCH operations
// of UpdateAccount (patchOps), each conditional on its Version where the server
// has ETags.
func (c *Client) UpdateAccounts(ctx context.Context, accs []connector.Account) ([]connector.ItemResult, error) {
	if c.MaxUpdateBatch(ctx) <= 0 {
		return c.each(ctx, len(accs), func(i int) (connector.Account, error) { return c.UpdateAccount(ctx, accs[i]) })
	}
	return c.bulkPatch(ctx, accs, false)
}

// bulkPatch sends accs as one Bulk request of UpdateAccount's PATCHes
// (patchOps), each conditional on its Version where the server has ETags; with
// state, each PATCH also sets active (UpdateAccountsActive).
func (c *Client) bulkPatch(ctx context.Context, accs []connector.Account, state bool) ([]connector.ItemResult, error) {
	caps := c.Capabilities(ctx)
	out := make([]connector.ItemResult, len(accs))
	var ops []BulkOperation
	var at []int // the index in accs of each operation
	for i, a := range accs {
		pops, err := patchOps(a)
		if a.ID == "" || err != nil {
			out[i].Err = &connector.LMSError{Kind: connector.KindInvalid, Op: "PATCH " + userPath(a.ID), Reason: "account id is empty", Err: err}
			continue
		}
		if state {
			pops = append(pops, activeOp(a.Active))
		}
		op := BulkOperation{Method: http.MethodPatch, Path: userPath(a.ID), Data: mustJSON(PatchOp{Schemas: []string{MessagePatchOp}, Operations: pops})}
		if caps.ETag {
			op.Version = a.Version
		}
		ops, at = append(ops, op), append(at, i)
	}
	res, err := c.bulkWrite(ctx, ops, func(k int, r BulkOperationResponse) connector.Account {
		a := accs[at[k]]
		a.Version = r.Version
		return a
	})
	if err != nil {
		return nil, err
	}
	for k, i := range at {
		out[i] = res[k]
	}
	return out, nil
}

// each makes n single calls, for a server without bulk.
func (c *Client) each(ctx context.Context, n int, call func(i int) (connector.Account, error)) ([]connector.ItemResult, error) {
	out := make([]connector.ItemResult, n)
	for i := range n {
		out[i].Account, out[i].Err = call(i)
	}
	return out, nil
}

// bulkWrite sends ops (each given a bulkId) in as few bulk requests as the
// server's limits allow, and returns each operation's result: the user of its
// response, else sent(i, result). The error is for the call as a whole, set only
// when the first request failed as a whole; a later one that fails gives its
// error to each of its operations and those not yet sent.
func (c *Client) bulkWrite(ctx context.Context, ops []BulkOperation, sent func(i int, r BulkOperationResponse) connector.Account) ([]connector.ItemResult, error) {
	out := make([]connector.ItemResult, len(ops))
	if len(ops) == 0 {
		return out, nil
	}
	for i := range ops {
		ops[i].BulkID = "b" + strconv.Itoa(i)
	}
	caps := c.Capabilities(ctx)
	most := max(c.MaxBulkDeletes(ctx), 1)
	limit := caps.BulkMaxPayload
	if limit <= 0 {
		limit = defaultBulkPayload
	}
	for from := 0; from < len(ops); {
		to, size := from, bulkEnvelope
		for to < len(ops) && to-from < most {
			n := len(mustJSON(ops[to])) + 1
			if to > from && size+n > limit {
				break
			}
			size += n
			to++
		}
		if err := c.bulkSend(ctx, ops, from, to, out, sent); err != nil {
			if from == 0 {
				return nil, err
			}
			for i := from; i < len(ops); i++ {
				out[i] = connector.ItemResult{Err: err}
			}
			return out, nil
		}
		from = to
	}
	return out, nil
}

// bulkSend sends ops[from:to] as one POST /Bulk and sets their results in out. A
// 413 splits the range in two. The error is for the request as a whole.
func (c *Client) bulkSend(ctx context.Context, ops []BulkOperation, from, to int, out []connector.ItemResult,
	sent func(i int, r BulkOperationResponse) connector.Account) error {
	const op = "POST /Bulk"
	req := BulkRequest{Schemas: []string{MessageBulkRequest}, Operations: ops[from:to]}
	rctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var resp BulkResponse
	_, err := c.do(rctx, http.MethodPost, "/Bulk", nil, req, nil, &resp)
	if le, ok := errors.AsType[*connector.LMSError](err); ok {
		switch le.Status {
		case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented:
			c.noBulk.Store(true) // nothing was done; one call per item from now on
			return &connector.LMSError{Kind: connector.KindUnavailable, Op: op, Status: le.Status,
				Reason: "the server has no bulk endpoint after all; the client writes one by one from now on", Err: err}
		case http.StatusRequestEntityTooLarge:
			if to-from > 1 {
				half := from + (to-from)/2
				if err := c.bulkSend(ctx, ops, from, half, out, sent); err != nil {
					return err
				}
				if err := c.bulkSend(ctx, ops, half, to, out, sent); err != nil {
					for i := half; i < to; i++ {
						out[i] = connector.ItemResult{Err: err}
					}
				}
				return nil
			}
		}
	}
	if err != nil {
		return err
	}
	done := make([]bool, to-from)
	for pos, r := range resp.Operations {
		k := -1
		if i, perr := strconv.Atoi(r.BulkID[min(1, len(r.BulkID)):]); perr == nil && r.BulkID != "" && i >= from && i < to && ops[i].BulkID == r.BulkID {
			k = i - from
		} else if r.BulkID == "" && len(resp.Operations) == to-from {
			k = pos
		}
		if k < 0 || done[k] {
			continue
		}
		done[k] = true
		i := from + k
		out[i] = c.bulkItem(rctx, ops[i], r, func(r BulkOperationResponse) connector.Account { return sent(i, r) })
	}
	for k, ok := range done {
		if !ok {
			o := ops[from+k]
			out[from+k] = connector.ItemResult{Err: &connector.LMSError{Kind: connector.KindUnavailable, Op: op + ": " + o.Method + " " + o.Path,
				Reason: "the bulk response has no result for this operation"}}
		}
	}
	return nil
}

// bulkItem is the result of one write operation: the account for a 2xx status
// (the response's user where it has one), else the single request's error.
func (c *Client) bulkItem(ctx context.Context, o BulkOperation, r BulkOperationResponse, sent func(BulkOperationResponse) connector.Account) connector.ItemResult {
	op := "POST /Bulk: " + o.Method + " " + o.Path
	status, err := strconv.Atoi(r.Status)
	if err != nil {
		return connector.ItemResult{Err: &connector.LMSError{Kind: connector.KindUnavailable, Op: op, Reason: fmt.Sprintf("bulk operation status %q", r.Status)}}
	}
	if status >= 200 && status <= 299 {
		var u User
		if len(r.Response) > 0 && json.Unmarshal(r.Response, &u) == nil && u.ID != "" {
			a := ToAccount(u)
			if a.Version == "" {
				a.Version = r.Version
			}
			return connector.ItemResult{Account: a}
		}
		a := sent(r)
		if a.ID == "" {
			return connector.ItemResult{Err: &connector.LMSError{Kind: connector.KindUnavailable, Op: op,
				Reason: "created, but the bulk result names no location"}}
		}
		return connector.ItemResult{Account: a}
	}
	le := &connector.LMSError{Kind: lmshttp.KindOf(status), Op: op, Status: status, Reason: http.StatusText(status)}
	var se Error
	if json.Unmarshal(r.Response, &se) == nil {
		if se.Detail != "" {
			le.Reason = lmshttp.Truncate(scrubDetail(lmshttp.Truncate(se.Detail, 16*maxReason)), maxReason)
		}
		le.Code = lmshttp.Truncate(se.ScimType, maxReason)
	}
	if o.Method == http.MethodPost {
		return connector.ItemResult{Err: le}
	}
	return connector.ItemResult{Err: c.gone(ctx, idFromLocation(o.Path), le)}
}
