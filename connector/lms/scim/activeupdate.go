package scim

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/hrsync/hrsync/connector"
)

// An update and a state change of one account in one request: a PATCH whose
// operations replace the managed attributes and `active` together (RFC 7644
// §3.5.2: the operations of one PATCH are applied in order, atomically, "if any
// operation fails, the whole request fails"), conditional on the version where
// the server has ETags. A rehire under a new id (re-key, then reactivate) is
// then one request, and a batch of them one Bulk request of such PATCHes.

var _ connector.ActiveUpdater = (*Client)(nil)

// activeOp is the PATCH operation that sets active.
func activeOp(active bool) PatchOperation {
	return PatchOperation{Op: "replace", Path: "active", Value: json.RawMessage(strconv.FormatBool(active))}
}

// UpdatesActive implements connector.ActiveUpdater: when the server takes
// PATCH for updates (not on a server updated with PUT, whose replace of the
// whole resource would carry active anyway but is read first).
func (c *Client) UpdatesActive(ctx context.Context) bool {
	return c.Capabilities(ctx).Patch && !c.noPatch.Load() && !c.noPatchUpdate.Load()
}

// UpdateAccountActive implements connector.ActiveUpdater: one PATCH with the
// update's operations and active, If-Match the version where the server has
// ETags. A server that refuses it (PATCH not supported after all) gets the
// update and the state change as two requests.
func (c *Client) UpdateAccountActive(ctx context.Context, a connector.Account) (connector.Account, error) {
	if a.ID == "" {
		return connector.Account{}, &connector.LMSError{Kind: connector.KindInvalid, Op: "PATCH /Users/", Reason: "account id is empty"}
	}
	ops, err := patchOps(a)
	if err != nil {
		return connector.Account{}, &connector.LMSError{Kind: connector.KindInvalid, Op: "PATCH " + userPath(a.ID), Err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	caps := c.Capabilities(ctx)
	var hdr http.Header
	if caps.ETag && a.Version != "" {
		hdr = http.Header{"If-Match": {a.Version}}
	}
	var u User
	h, err := c.do(ctx, http.MethodPatch, userPath(a.ID), nil,
		PatchOp{Schemas: []string{MessagePatchOp}, Operations: append(ops, activeOp(a.Active))}, hdr, &u)
	if err != nil {
		if le, ok := errors.AsType[*connector.LMSError](err); ok && patchUnsupported(le) {
			return c.updateThenSetActive(ctx, a)
		}
		return connector.Account{}, c.gone(ctx, a.ID, err)
	}
	if u.ID == "" {
		// 204 No Content is allowed (RFC 7644 §3.5.2); read the result back.
		return c.GetAccount(ctx, a.ID)
	}
	return withETag(ToAccount(u), h), nil
}

// updateThenSetActive is UpdateAccountActive as two requests.
func (c *Client) updateThenSetActive(ctx context.Context, a connector.Account) (connector.Account, error) {
	if _, err := c.UpdateAccount(ctx, a); err != nil {
		return connector.Account{}, err
	}
	return c.SetActive(ctx, a.ID, a.Active)
}

// UpdateAccountsActive implements connector.ActiveUpdater: one Bulk request of
// such PATCHes (each with its version where the server has ETags), or one
// UpdateAccountActive each without bulk.
func (c *Client) UpdateAccountsActive(ctx context.Context, accs []connector.Account) ([]connector.ItemResult, error) {
	if c.MaxUpdateBatch(ctx) <= 0 {
		return c.each(ctx, len(accs), func(i int) (connector.Account, error) { return c.UpdateAccountActive(ctx, accs[i]) })
	}
	return c.bulkPatch(ctx, accs, true)
}
