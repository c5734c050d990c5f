package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/scim"
)

// maxBulkPayload is the bulk endpoint's maxPayloadSize: the request body limit.
const maxBulkPayload = maxRequestBody

// bulkMax is the bulk endpoint's maxOperations; 0 when it has none.
func (h *handler) bulkMax() int {
	if h.q.NoBulk {
		return 0
	}
	return h.l.MaxBulkDeletes(context.Background())
}

// bulkConfig is the bulk part of /ServiceProviderConfig.
func (h *handler) bulkConfig() scim.BulkConfig {
	n := h.bulkMax()
	if n <= 0 {
		return scim.BulkConfig{Supported: false}
	}
	return scim.BulkConfig{Supported: true, MaxOperations: n, MaxPayloadSize: maxBulkPayload}
}

// bulk is POST /Bulk (RFC 7644 §3.7) for POST operations on /Users and PUT,
// PATCH and DELETE operations on /Users/{id}: each is what its single request
// does, with the operation's version as If-Match, and its result carries the
// status, location and version (and the body: the user as stored, or the
// error) that request would have had. Operations of other methods fail with 405.
// More operations than maxOperations, or a body larger than maxPayloadSize, is
// 413; failOnErrors stops after that many failed operations. bulkId references
// in data ("bulkId:...") are not resolved.
func (h *handler) bulk(w http.ResponseWriter, r *http.Request) {
	most := h.bulkMax()
	if most <= 0 {
		writeError(w, http.StatusNotImplemented, "", "bulk is not supported")
		return
	}
	var req scim.BulkRequest
	if !decode(w, r, &req) {
		return
	}
	if !containsFold(req.Schemas, scim.MessageBulkRequest) {
		writeError(w, http.StatusBadRequest, scim.ErrInvalidSyntax, "schemas must contain "+scim.MessageBulkRequest)
		return
	}
	if len(req.Operations) > most {
		writeError(w, http.StatusRequestEntityTooLarge, "",
			fmt.Sprintf("the bulk request has %d operations, more than maxOperations (%d)", len(req.Operations), most))
		return
	}
	if req.FailOnErrors < 0 {
		writeError(w, http.StatusBadRequest, scim.ErrInvalidValue, "failOnErrors must not be negative")
		return
	}
	resp := scim.BulkResponse{Schemas: []string{scim.MessageBulkResponse}, Operations: []scim.BulkOperationResponse{}}
	failed := 0
	for _, op := range req.Operations {
		res := h.bulkOp(r, op)
		resp.Operations = append(resp.Operations, res)
		if status, _ := strconv.Atoi(res.Status); status >= 400 {
			failed++
			if req.FailOnErrors > 0 && failed >= req.FailOnErrors {
				break
			}
		}
	}
	writeJSON(w, http.StatusOK, scim.MediaType, resp)
}

// bulkOp performs one operation of a bulk request.
func (h *handler) bulkOp(r *http.Request, op scim.BulkOperation) scim.BulkOperationResponse {
	out := scim.BulkOperationResponse{Method: op.Method, BulkID: op.BulkID}
	fail := func(status int, scimType, detail string) scim.BulkOperationResponse {
		out.Status = strconv.Itoa(status)
		out.Response, _ = json.Marshal(scim.NewError(status, scimType, detail))
		return out
	}
	method := strings.ToUpper(op.Method)
	switch method {
	case http.MethodPost:
		if op.Path != "/Users" {
			return fail(http.StatusBadRequest, scim.ErrInvalidPath, fmt.Sprintf("path %q: a POST operation wants /Users", op.Path))
		}
		if op.BulkID == "" {
			return fail(http.StatusBadRequest, scim.ErrInvalidValue, "a POST operation needs a bulkId")
		}
		return h.bulkSingle(r, op, "", h.createUser)
	case http.MethodPut, http.MethodPatch, http.MethodDelete:
	default:
		return fail(http.StatusMethodNotAllowed, "", fmt.Sprintf("method %q is not supported in a bulk request", op.Method))
	}
	rest, ok := strings.CutPrefix(op.Path, "/Users/")
	id, err := url.PathUnescape(rest)
	if !ok || rest == "" || strings.Contains(rest, "/") || err != nil {
		return fail(http.StatusBadRequest, scim.ErrInvalidPath, fmt.Sprintf("path %q: want /Users/{id}", op.Path))
	}
	switch method {
	case http.MethodPut:
		return h.bulkSingle(r, op, id, h.replaceUser)
	case http.MethodPatch:
		return h.bulkSingle(r, op, id, h.patchUser)
	}
	if !h.q.NoLocation {
		out.Location = location(r, id)
	}
	ifMatch := op.Version
	if h.q.NoETags {
		ifMatch = ""
	}
	if err := h.l.delete("POST /Bulk", id, ifMatch); err != nil {
		// The status and body are those DELETE /Users/{id} would answer.
		var rec recorder
		h.writeGone(&rec, err)
		out.Status = strconv.Itoa(rec.status)
		out.Response = json.RawMessage(bytes.TrimSpace(rec.body.Bytes()))
		return out
	}
	out.Status = strconv.Itoa(http.StatusNoContent)
	return out
}

// bulkSingle performs op as its single request would be served by serve (with
// the operation's data as body, its version as If-Match, id as the path's
// {id}) and answers with that request's status, location, ETag and body.
func (h *handler) bulkSingle(r *http.Request, op scim.BulkOperation, id string, serve http.HandlerFunc) scim.BulkOperationResponse {
	out := scim.BulkOperationResponse{Method: op.Method, BulkID: op.BulkID}
	sub, err := http.NewRequestWithContext(r.Context(), strings.ToUpper(op.Method), BasePath+op.Path, bytes.NewReader(op.Data))
	if err != nil {
		out.Status = strconv.Itoa(http.StatusBadRequest)
		out.Response, _ = json.Marshal(scim.NewError(http.StatusBadRequest, scim.ErrInvalidPath, err.Error()))
		return out
	}
	sub.Host, sub.TLS = r.Host, r.TLS
	sub.Header.Set("Content-Type", scim.MediaType)
	if op.Version != "" {
		sub.Header.Set("If-Match", op.Version)
	}
	if id != "" {
		sub.SetPathValue("id", id)
	}
	var rec recorder
	serve(&rec, sub)
	out.Status = strconv.Itoa(rec.status)
	out.Response = json.RawMessage(bytes.TrimSpace(rec.body.Bytes()))
	if len(out.Response) == 0 {
		out.Response = nil
	}
	if rec.status < 300 {
		out.Version = rec.Header().Get("ETag")
		var u scim.User
		switch {
		case rec.Header().Get("Location") != "":
			out.Location = rec.Header().Get("Location")
		case id != "" && !h.q.NoLocation:
			out.Location = location(r, id)
		case out.Response != nil && json.Unmarshal(out.Response, &u) == nil && u.ID != "" && !h.q.NoLocation:
			out.Location = location(r, u.ID)
		}
	}
	return out
}

// recorder is an http.ResponseWriter that keeps the status and body, so that a
// bulk operation answers exactly what its single request would.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header {
	if r.header == nil {
		r.header = http.Header{}
	}
	return r.header
}

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(b)
}

// filtered returns the users that the filter expr selects (all if expr is
// empty), in creation order, or answers 400 itself. expr is comparisons joined by
// "or" (scim.ParseDisjunction): on externalId, userName, emails.value,
// employeeNumber, and id.
func (h *handler) filtered(w http.ResponseWriter, expr string) ([]resource, bool) {
	if expr == "" {
		return h.l.query(nil), true
	}
	if name := filterAttrName(expr); h.q.CaseSensitiveNames && !canonicalFilterAttrs[name] {
		writeError(w, http.StatusBadRequest, scim.ErrInvalidFilter, fmt.Sprintf("unknown attribute %q (names are case-sensitive)", name))
		return nil, false
	}
	d, err := scim.ParseDisjunction(expr)
	if err != nil {
		writeError(w, http.StatusBadRequest, scim.ErrInvalidFilter, err.Error())
		return nil, false
	}
	if n := h.q.MaxFilterTerms; n > 0 && len(d.Attrs) > n {
		writeError(w, http.StatusBadRequest, scim.ErrTooMany, fmt.Sprintf("the filter has %d comparisons; at most %d", len(d.Attrs), n))
		return nil, false
	}
	if h.q.CaseSensitiveNames {
		for _, name := range d.Attrs {
			if !canonicalFilterAttrs[name] {
				writeError(w, http.StatusBadRequest, scim.ErrInvalidFilter, fmt.Sprintf("unknown attribute %q (names are case-sensitive)", name))
				return nil, false
			}
		}
	}
	match := func(f connector.AccountFilter) []resource {
		if !h.q.FilterFoldsCase {
			return h.l.query(&f)
		}
		var out []resource
		for _, res := range h.l.query(nil) {
			if foldMatches(f, res.acct) {
				out = append(out, res)
			}
		}
		return out
	}
	if len(d.IDs) == 0 && len(d.Filters) == 1 {
		return match(d.Filters[0]), true
	}
	ids := d.IDs
	for _, f := range d.Filters {
		for _, res := range match(f) {
			ids = append(ids, res.acct.ID)
		}
	}
	return h.l.byIDs(ids), true
}
