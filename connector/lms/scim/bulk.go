package scim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/lmshttp"
)

// The bulk message URNs (RFC 7644 §3.7).
const (
	MessageBulkRequest  = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
	MessageBulkResponse = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
)

// BulkRequest is the body of POST /Bulk (RFC 7644 §3.7.1). FailOnErrors, when
// positive, is the number of failed operations after which the server stops.
type BulkRequest struct {
	Schemas      []string        `json:"schemas"`
	FailOnErrors int             `json:"failOnErrors,omitempty"`
	Operations   []BulkOperation `json:"Operations"`
}

// BulkOperation is one operation of a BulkRequest: Method and Path ("/Users/{id}")
// as the single request would have them; Version is the If-Match of that request.
type BulkOperation struct {
	Method  string          `json:"method"`
	BulkID  string          `json:"bulkId,omitempty"`
	Version string          `json:"version,omitempty"`
	Path    string          `json:"path"`
	Data    json.RawMessage `json:"data,omitempty"`
}

// BulkResponse is the answer to a BulkRequest (RFC 7644 §3.7.3).
type BulkResponse struct {
	Schemas    []string                `json:"schemas"`
	Operations []BulkOperationResponse `json:"Operations"`
}

// BulkOperationResponse is the result of one operation: Status is the HTTP status
// the single request would have had (a string, as the RFC says; UnmarshalJSON
// also accepts a number), and Response the SCIM error body of a failure.
type BulkOperationResponse struct {
	Location string          `json:"location,omitempty"`
	Method   string          `json:"method"`
	BulkID   string          `json:"bulkId,omitempty"`
	Version  string          `json:"version,omitempty"`
	Status   string          `json:"status"`
	Response json.RawMessage `json:"response,omitempty"`
}

// UnmarshalJSON accepts "status" as a string or a number.
func (o *BulkOperationResponse) UnmarshalJSON(b []byte) error {
	type plain BulkOperationResponse
	var raw struct {
		plain
		Status json.RawMessage `json:"status"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*o = BulkOperationResponse(raw.plain)
	o.Status = ""
	var s string
	var n json.Number
	switch {
	case json.Unmarshal(raw.Status, &s) == nil:
		o.Status = s
	case json.Unmarshal(raw.Status, &n) == nil:
		o.Status = n.String()
	}
	return nil
}

const (
	// maxBulkDeletes caps the deletions of one bulk request, whatever the server
	// allows: a bigger request only makes a lost answer costlier.
	maxBulkDeletes = 1000
	// defaultBulkPayload is assumed when a server offers bulk without a maxPayloadSize.
	defaultBulkPayload = 1 << 20
	// bulkEnvelope is a generous bound on the bytes of a BulkRequest besides its
	// operations (schemas, brackets, commas).
	bulkEnvelope = 256
)

var _ connector.BulkDeleter = (*Client)(nil)

// MaxBulkDeletes implements connector.BulkDeleter: the server's bulk
// maxOperations (ServiceProviderConfig), at most 1000; 0 when the server has no
// bulk endpoint, says no maxOperations, or answered /Bulk with 404, 405 or 501.
func (c *Client) MaxBulkDeletes(ctx context.Context) int {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	caps := c.Capabilities(ctx)
	if !caps.Bulk || caps.BulkMaxOperations <= 0 {
		return 0
	}
	return min(caps.BulkMaxOperations, maxBulkDeletes)
}

// DeleteAccounts implements connector.BulkDeleter. With bulk it sends POST /Bulk
// of DELETE operations (each with a bulkId, and with the Version as the
// operation's version where the server has ETags), split so that no request
// passes maxOperations or maxPayloadSize, and maps each operation's status as the
// single request's would be (404 ErrNotFound, 412 ErrPrecondition, a 500 for a
// user that GET says is gone ErrNotFound); an operation the answer leaves out is
// unavailable (temporary). A request refused with 413 is split in two and sent
// again. Without bulk it sends one DELETE per deletion, with If-Match. A server
// that offers bulk but answers /Bulk with 404, 405 or 501 fails the call with a
// temporary error, and MaxBulkDeletes is 0 from then on, so that one call never
// turns into a DELETE per account behind a rate limit that counted it as one.
//
// The returned error is set only when nothing is known about any deletion (the
// first request failed as a whole); a later request that fails as a whole gives
// its error to each of its deletions and to those not yet sent.
func (c *Client) DeleteAccounts(ctx context.Context, dels []connector.Deletion) ([]error, error) {
	errs := make([]error, len(dels))
	if len(dels) == 0 {
		return errs, nil
	}
	most := c.MaxBulkDeletes(ctx)
	caps := c.Capabilities(ctx)
	var todo []int // indices still to delete
	for i, d := range dels {
		if d.ID == "" {
			errs[i] = &connector.LMSError{Kind: connector.KindInvalid, Op: "DELETE /Users/", Reason: "account id is empty"}
			continue
		}
		todo = append(todo, i)
	}
	if most <= 0 {
		c.deleteEach(ctx, dels, todo, errs, caps)
		return errs, nil
	}
	known := len(todo) < len(dels)
	for len(todo) > 0 {
		chunk, oversized := bulkChunk(dels, todo, most, caps)
		for _, i := range oversized {
			errs[i] = &connector.LMSError{Kind: connector.KindInvalid, Op: "POST /Bulk",
				Reason: fmt.Sprintf("the deletion of %q alone is larger than the server's bulk maxPayloadSize", dels[i].ID)}
			known = true
		}
		todo = todo[len(chunk)+len(oversized):]
		if len(chunk) == 0 {
			continue
		}
		if err := c.bulkDelete(ctx, dels, chunk, errs, caps); err != nil {
			if !known {
				return nil, err
			}
			for _, i := range append(chunk, todo...) {
				errs[i] = err
			}
			return errs, nil
		}
		known = true
	}
	return errs, nil
}

// bulkChunk returns the first indices of todo that fit in one bulk request (at
// most `most` operations and the server's maxPayloadSize), and the deletions among
// them (in todo order, before the first that fits) too large for any request.
func bulkChunk(dels []connector.Deletion, todo []int, most int, caps Capabilities) (chunk, oversized []int) {
	limit := caps.BulkMaxPayload
	if limit <= 0 {
		limit = defaultBulkPayload
	}
	size := bulkEnvelope
	for _, i := range todo {
		n := len(mustJSON(bulkDeleteOp(dels[i], len(chunk), caps))) + 1
		switch {
		case bulkEnvelope+n > limit && len(chunk) == 0:
			oversized = append(oversized, i)
			continue
		case len(chunk) >= most || size+n > limit:
			return chunk, oversized
		}
		chunk = append(chunk, i)
		size += n
	}
	return chunk, oversized
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// bulkDeleteOp is the operation that deletes d, the k-th of its request.
func bulkDeleteOp(d connector.Deletion, k int, caps Capabilities) BulkOperation {
	op := BulkOperation{Method: http.MethodDelete, BulkID: "d" + strconv.Itoa(k), Path: userPath(d.ID)}
	if caps.ETag {
		op.Version = d.Version
	}
	return op
}

// bulkDelete sends the deletions chunk (indices into dels) as one POST /Bulk and
// sets their results in errs. A 413 splits the chunk in two and sends each half.
// The error is for the request as a whole.
func (c *Client) bulkDelete(ctx context.Context, dels []connector.Deletion, chunk []int, errs []error, caps Capabilities) error {
	const op = "POST /Bulk"
	req := BulkRequest{Schemas: []string{MessageBulkRequest}}
	for k, i := range chunk {
		req.Operations = append(req.Operations, bulkDeleteOp(dels[i], k, caps))
	}
	rctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var resp BulkResponse
	_, err := c.do(rctx, http.MethodPost, "/Bulk", nil, req, nil, &resp)
	if le, ok := errors.AsType[*connector.LMSError](err); ok {
		switch le.Status {
		case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented:
			// The server offered bulk but has none. Nothing was deleted: the
			// caller tries again, and MaxBulkDeletes is 0 from now on.
			c.noBulk.Store(true)
			return &connector.LMSError{Kind: connector.KindUnavailable, Op: op, Status: le.Status,
				Reason: "the server has no bulk endpoint after all; the client deletes one by one from now on", Err: err}
		case http.StatusRequestEntityTooLarge:
			if len(chunk) > 1 {
				half := len(chunk) / 2
				if err := c.bulkDelete(ctx, dels, chunk[:half], errs, caps); err != nil {
					return err
				}
				if err := c.bulkDelete(ctx, dels, chunk[half:], errs, caps); err != nil {
					for _, i := range chunk[half:] {
						errs[i] = err
					}
				}
				return nil
			}
		}
	}
	if err != nil {
		return err
	}
	// Match each result to its operation: by bulkId, else by the id in its
	// location, else by position when the answer has one result per operation.
	done := make([]bool, len(chunk))
	byBulkID := make(map[string]int, len(chunk))
	for k, o := range req.Operations {
		byBulkID[o.BulkID] = k
	}
	for pos, r := range resp.Operations {
		k := -1
		if kk, ok := byBulkID[r.BulkID]; ok && r.BulkID != "" {
			k = kk
		} else if id := idFromLocation(r.Location); id != "" {
			for kk, i := range chunk {
				if !done[kk] && dels[i].ID == id {
					k = kk
					break
				}
			}
		} else if len(resp.Operations) == len(chunk) {
			k = pos
		}
		if k < 0 || done[k] {
			continue
		}
		done[k] = true
		errs[chunk[k]] = c.bulkResult(rctx, r, dels[chunk[k]].ID)
	}
	for k, i := range chunk {
		if !done[k] {
			errs[i] = &connector.LMSError{Kind: connector.KindUnavailable, Op: op + ": DELETE " + userPath(dels[i].ID),
				Reason: "the bulk response has no result for this operation"}
		}
	}
	return nil
}

// bulkResult is the error of one bulk operation on user id: nil for a 2xx status,
// else what the single request's answer would have been.
func (c *Client) bulkResult(ctx context.Context, r BulkOperationResponse, id string) error {
	status, err := strconv.Atoi(r.Status)
	if err == nil && status >= 200 && status <= 299 {
		return nil
	}
	op := "POST /Bulk: DELETE " + userPath(id)
	if err != nil {
		return &connector.LMSError{Kind: connector.KindUnavailable, Op: op, Reason: fmt.Sprintf("bulk operation status %q", r.Status)}
	}
	le := &connector.LMSError{Kind: lmshttp.KindOf(status), Op: op, Status: status, Reason: http.StatusText(status)}
	var se Error
	if json.Unmarshal(r.Response, &se) == nil && se.Detail != "" {
		le.Reason = lmshttp.Truncate(se.Detail, maxReason)
	}
	return c.gone(ctx, id, le)
}

// deleteEach deletes dels[i] for each i of todo with one DELETE each, with
// If-Match where the server has ETags, and sets errs[i]. Once ctx is done, the
// deletions left get its error.
func (c *Client) deleteEach(ctx context.Context, dels []connector.Deletion, todo []int, errs []error, caps Capabilities) {
	for _, i := range todo {
		if err := ctx.Err(); err != nil {
			errs[i] = &connector.LMSError{Kind: connector.KindUnavailable, Op: "DELETE " + userPath(dels[i].ID), Err: err}
			continue
		}
		errs[i] = c.deleteIf(ctx, dels[i], caps)
	}
}

// deleteIf is DeleteAccount, conditional on d.Version where the server has ETags.
func (c *Client) deleteIf(ctx context.Context, d connector.Deletion, caps Capabilities) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var hdr http.Header
	if caps.ETag && d.Version != "" {
		hdr = http.Header{"If-Match": {d.Version}}
	}
	_, err := c.do(ctx, http.MethodDelete, userPath(d.ID), nil, nil, hdr, nil)
	return c.gone(ctx, d.ID, err)
}
