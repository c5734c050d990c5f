package sandbox

import (
	"cmp"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/scim"
)

// Paths the handler serves.
const (
	// BasePath is the SCIM root: a client's base URL is "http://host:port" + BasePath.
	BasePath = "/scim/v2"
	// TrainingPath is the side endpoint's pattern; {id} is the account id.
	TrainingPath = "/hrsync/v1/accounts/{id}/training"
)

// maxRequestBody bounds a request body; larger ones get 413.
const maxRequestBody = 1 << 20

// Handler returns the sandbox as a SCIM 2.0 server under BasePath, plus the
// training side endpoint (see the package documentation). When token is not
// empty, every request must carry "Authorization: Bearer <token>"; others get 401.
func (l *LMS) Handler(token string) http.Handler { return l.handler(token, Quirks{}) }

func (l *LMS) handler(token string, q Quirks) http.Handler {
	h := &handler{l: l, q: q}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+BasePath+"/ServiceProviderConfig", h.serviceProviderConfig)
	mux.HandleFunc("GET "+BasePath+"/Users", h.listUsers)
	mux.HandleFunc("POST "+BasePath+"/Users", h.createUser)
	mux.HandleFunc("POST "+BasePath+"/Users/.search", h.searchUsers)
	mux.HandleFunc("GET "+BasePath+"/Users/{id}", h.getUser)
	mux.HandleFunc("PUT "+BasePath+"/Users/{id}", h.replaceUser)
	mux.HandleFunc("PATCH "+BasePath+"/Users/{id}", h.patchUser)
	mux.HandleFunc("DELETE "+BasePath+"/Users/{id}", h.deleteUser)
	mux.HandleFunc("POST "+BasePath+"/Bulk", h.bulk)
	mux.HandleFunc("GET "+TrainingPath, h.getTraining)
	mux.HandleFunc("POST "+TrainingPath, h.addTraining)
	for path, allow := range map[string]string{
		BasePath + "/ServiceProviderConfig": "GET",
		BasePath + "/Users":                 "GET, POST",
		BasePath + "/Users/{id}":            "GET, PUT, PATCH, DELETE",
		BasePath + "/Bulk":                  "POST",
		TrainingPath:                        "GET, POST",
	} {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, "", fmt.Sprintf("%s is not allowed on %s; use %s", r.Method, path, allow))
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "", fmt.Sprintf("no endpoint %s %s", r.Method, r.URL.Path))
	})
	if token == "" {
		return mux
	}
	want := []byte(token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := bearerToken(r.Header.Get("Authorization"))
		if !ok || subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sandbox-lms"`)
			writeError(w, http.StatusUnauthorized, "", "a valid bearer token is required")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// bearerToken returns the token of an "Authorization: Bearer <token>" header; the
// scheme is case-insensitive (RFC 9110 §11.1).
func bearerToken(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

type handler struct {
	l *LMS
	q Quirks
}

func writeJSON(w http.ResponseWriter, status int, contentType string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, scimType, detail string) {
	writeJSON(w, status, scim.MediaType, scim.NewError(status, scimType, detail))
}

// writeLMSError answers with the HTTP status and scimType for an error of the
// LMS core (the inverse of the scim client's table).
func writeLMSError(w http.ResponseWriter, err error) {
	var le *connector.LMSError
	if !errors.As(err, &le) {
		writeError(w, http.StatusInternalServerError, "", err.Error())
		return
	}
	switch le.Kind {
	case connector.KindInvalid:
		writeError(w, http.StatusBadRequest, scim.ErrInvalidValue, le.Reason)
	case connector.KindNotFound:
		writeError(w, http.StatusNotFound, "", le.Reason)
	case connector.KindConflict:
		writeError(w, http.StatusConflict, scim.ErrUniqueness, le.Reason)
	case connector.KindPrecondition:
		writeError(w, http.StatusPreconditionFailed, "", le.Reason)
	default:
		writeError(w, http.StatusInternalServerError, "", le.Error())
	}
}

// decode reads a JSON request body of at most maxRequestBody bytes into v, and
// answers 400 or 413 itself when it cannot.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBody))
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("unexpected data after the JSON value")
	}
	if err == nil {
		return true
	}
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		writeError(w, http.StatusRequestEntityTooLarge, "", fmt.Sprintf("request body is larger than %d bytes", maxRequestBody))
		return false
	}
	writeError(w, http.StatusBadRequest, scim.ErrInvalidSyntax, "request body: "+err.Error())
	return false
}

// baseURL is the scheme and host the request came to, for meta.location.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func location(r *http.Request, id string) string {
	return baseURL(r) + BasePath + "/Users/" + url.PathEscape(id)
}

// writeGone answers for an error of PUT, PATCH or DELETE: like writeLMSError,
// except that with GoneIs500 a missing user is 500.
func (h *handler) writeGone(w http.ResponseWriter, err error) {
	if h.q.GoneIs500 && errors.Is(err, connector.ErrNotFound) {
		writeError(w, http.StatusInternalServerError, "", "internal error")
		return
	}
	writeLMSError(w, err)
}

// ifMatch is the request's If-Match, or "" when the server has no ETags.
func (h *handler) ifMatch(r *http.Request) string {
	if h.q.NoETags {
		return ""
	}
	return r.Header.Get("If-Match")
}

// toUser is the SCIM representation of an account, with the training extension.
func (h *handler) toUser(r *http.Request, res resource) scim.User {
	u := scim.FromAccount(res.acct)
	if u.Enterprise == nil {
		u.Schemas = append(u.Schemas, scim.SchemaEnterpriseUser)
		u.Enterprise = &scim.EnterpriseUser{}
	}
	u.Schemas = append(u.Schemas, scim.SchemaTrainingUser)
	u.Training = &scim.Training{
		LastLogin:   res.training.LastLogin,
		Enrollments: []scim.TrainingEnrollment{},
		Completions: []scim.TrainingCompletion{},
		Uploads:     res.training.Uploads,
		Rewards:     res.training.Rewards,
	}
	for _, e := range res.training.Enrollments {
		u.Training.Enrollments = append(u.Training.Enrollments, scim.TrainingEnrollment{Course: e.Course, EnrolledAt: e.EnrolledAt})
	}
	for _, c := range res.training.Completions {
		u.Training.Completions = append(u.Training.Completions, scim.TrainingCompletion{Course: c.Course, CompletedAt: c.CompletedAt})
	}
	u.Meta = &scim.Meta{
		ResourceType: "User",
		Created:      res.acct.Created,
		LastModified: res.modified,
		Location:     location(r, res.acct.ID),
		Version:      res.acct.Version,
	}
	if h.q.NoLocation {
		u.Meta.Location = ""
	}
	if h.q.NoETags {
		u.Meta.Version = ""
	}
	return u
}

func (h *handler) writeUser(w http.ResponseWriter, r *http.Request, status int, res resource) {
	if !h.q.NoETags {
		w.Header().Set("ETag", res.acct.Version)
	}
	if !h.q.NoLocation {
		w.Header().Set("Location", location(r, res.acct.ID))
	}
	writeJSON(w, status, scim.MediaType, h.toUser(r, res))
}

func (h *handler) serviceProviderConfig(w http.ResponseWriter, r *http.Request) {
	if h.q.NoServiceProviderConfig {
		writeError(w, http.StatusNotFound, "", "no endpoint GET "+r.URL.Path)
		return
	}
	writeJSON(w, http.StatusOK, scim.MediaType, scim.ServiceProviderConfig{
		Schemas:        []string{scim.SchemaServiceProviderConfig},
		Patch:          scim.Supported{Supported: !h.q.NoPatch},
		Bulk:           h.bulkConfig(),
		Filter:         scim.FilterConfig{Supported: true, MaxResults: MaxResults},
		ChangePassword: scim.Supported{Supported: false},
		Sort:           scim.Supported{Supported: false},
		ETag:           scim.Supported{Supported: !h.q.NoETags},
		AuthenticationSchemes: []scim.AuthenticationScheme{{
			Type: "oauthbearertoken", Name: "OAuth Bearer Token",
			Description: "Authentication with a static bearer token (Authorization: Bearer <token>)", Primary: true,
		}},
		Meta: &scim.Meta{ResourceType: "ServiceProviderConfig", Location: baseURL(r) + BasePath + "/ServiceProviderConfig"},
	})
}

// intParam reads an optional integer query parameter.
func intParam(r *http.Request, name string, def int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%s=%q is not an integer", name, v)
	}
	return n, nil
}

func (h *handler) listUsers(w http.ResponseWriter, r *http.Request) {
	start, err := intParam(r, "startIndex", 1)
	if err != nil {
		writeError(w, http.StatusBadRequest, scim.ErrInvalidValue, err.Error())
		return
	}
	count, err := intParam(r, "count", MaxResults)
	if err != nil {
		writeError(w, http.StatusBadRequest, scim.ErrInvalidValue, err.Error())
		return
	}
	q := r.URL.Query()
	h.writeList(w, r, query{filter: q.Get("filter"), start: start, count: count,
		attrs: attrList(q.Get("attributes")), excluded: attrList(q.Get("excludedAttributes"))})
}

// searchUsers is POST /Users/.search (RFC 7644 §3.4.3): the query of GET /Users
// with its parameters in a SearchRequest body, answered the same way. Its
// schemas must name the SearchRequest message; a missing count is MaxResults.
func (h *handler) searchUsers(w http.ResponseWriter, r *http.Request) {
	if h.q.NoSearch {
		status := cmp.Or(h.q.NoSearchStatus, http.StatusMethodNotAllowed)
		if status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", "GET, PUT, PATCH, DELETE")
		}
		writeError(w, status, h.q.NoSearchType, "no endpoint POST "+r.URL.Path)
		return
	}
	var req scim.SearchRequest
	if !decode(w, r, &req) {
		return
	}
	if !containsFold(req.Schemas, scim.MessageSearchRequest) {
		writeError(w, http.StatusBadRequest, scim.ErrInvalidSyntax, "schemas must be ["+scim.MessageSearchRequest+"]")
		return
	}
	if req.SortBy != "" {
		writeError(w, http.StatusBadRequest, scim.ErrInvalidValue, "sorting is not supported (sort.supported is false)")
		return
	}
	count := MaxResults
	if req.Count != nil {
		count = *req.Count
	}
	h.writeList(w, r, query{filter: req.Filter, start: cmp.Or(req.StartIndex, 1), count: count,
		attrs: req.Attributes, excluded: req.ExcludedAttributes})
}

// query is a query of /Users, from the URL (GET) or a SearchRequest (POST .search).
type query struct {
	filter          string
	start, count    int
	attrs, excluded []string
}

// writeList answers a query with a ListResponse: a startIndex below 1 is 1 and
// a negative count is 0 (RFC 7644 §3.4.2.4); a count above MaxResults is
// MaxResults, as filter.maxResults says.
func (h *handler) writeList(w http.ResponseWriter, r *http.Request, q query) {
	count := min(max(q.count, 0), MaxResults)
	if h.q.MaxPageSize > 0 {
		count = min(count, h.q.MaxPageSize)
	}
	start := max(q.start, 1)
	// Without a filter, only the page is copied: copying every account for
	// each page made paging through n accounts cost O(n²).
	var total int
	var page []resource
	if q.filter == "" {
		total, page = h.l.pageOf(start, count)
	} else {
		all, ok := h.filtered(w, q.filter)
		if !ok {
			return
		}
		total, page = len(all), pageOf(all, start, count)
	}
	if len(q.attrs) == 0 && len(q.excluded) == 0 {
		lr := scim.ListResponse{
			Schemas:      []string{scim.MessageListResponse},
			TotalResults: total,
			StartIndex:   start,
			Resources:    make([]scim.User, 0, len(page)),
		}
		for _, res := range page {
			lr.Resources = append(lr.Resources, h.toUser(r, res))
		}
		lr.ItemsPerPage = len(lr.Resources)
		writeJSON(w, http.StatusOK, scim.MediaType, lr)
		return
	}
	resources := make([]map[string]json.RawMessage, 0, len(page))
	for _, res := range page {
		u, err := project(h.toUser(r, res), q.attrs, q.excluded)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "", err.Error())
			return
		}
		resources = append(resources, u)
	}
	writeJSON(w, http.StatusOK, scim.MediaType, map[string]any{
		"schemas": []string{scim.MessageListResponse}, "totalResults": total, "startIndex": start,
		"itemsPerPage": len(resources), "Resources": resources,
	})
}

func (h *handler) createUser(w http.ResponseWriter, r *http.Request) {
	var u scim.User
	if !decode(w, r, &u) {
		return
	}
	a := scim.ToAccount(u)
	res, err := h.l.create("POST /Users", a)
	if err != nil {
		writeLMSError(w, err)
		return
	}
	if h.q.CreateEmptyBody {
		if !h.q.NoLocation {
			w.Header().Set("Location", location(r, res.acct.ID))
		}
		w.WriteHeader(http.StatusCreated)
		return
	}
	h.writeUser(w, r, http.StatusCreated, res)
}

func (h *handler) getUser(w http.ResponseWriter, r *http.Request) {
	res, err := h.l.get("GET /Users", r.PathValue("id"))
	if err != nil {
		writeLMSError(w, err)
		return
	}
	h.writeUser(w, r, http.StatusOK, res)
}

// replaceUser is PUT: externalId, userName and the profile are replaced (what the
// body leaves out is cleared); active changes only if the body has it.
func (h *handler) replaceUser(w http.ResponseWriter, r *http.Request) {
	var u scim.User
	if !decode(w, r, &u) {
		return
	}
	in := scim.ToAccount(u)
	if u.Active == nil && h.q.PutResetsActive {
		active := true
		u.Active = &active
	}
	res, err := h.l.modify("PUT /Users", r.PathValue("id"), h.ifMatch(r), func(a *connector.Account) ([]OpKind, error) {
		a.ExternalID, a.UserName, a.Profile = in.ExternalID, in.UserName, in.Profile
		kinds := []OpKind{OpUpdate}
		if u.Active != nil && *u.Active != a.Active {
			a.Active = *u.Active
			kinds = append(kinds, activeOp(a.Active))
		}
		return kinds, nil
	})
	if err != nil {
		h.writeGone(w, err)
		return
	}
	h.writeUser(w, r, http.StatusOK, res)
}

func (h *handler) patchUser(w http.ResponseWriter, r *http.Request) {
	if h.q.NoPatch {
		status := h.q.NoPatchStatus
		if status == 0 {
			status = http.StatusMethodNotAllowed
		}
		w.Header().Set("Allow", "GET, PUT, DELETE")
		writeError(w, status, "", "PATCH is not supported; use PUT")
		return
	}
	var p scim.PatchOp
	if !decode(w, r, &p) {
		return
	}
	if !containsFold(p.Schemas, scim.MessagePatchOp) {
		writeError(w, http.StatusBadRequest, scim.ErrInvalidSyntax, "schemas must contain "+scim.MessagePatchOp)
		return
	}
	if len(p.Operations) == 0 {
		writeError(w, http.StatusBadRequest, scim.ErrInvalidValue, "Operations is empty")
		return
	}
	if h.q.CaseSensitiveNames {
		for i, op := range p.Operations {
			if op.Path != "" && !canonicalPatchPaths[op.Path] {
				writeError(w, http.StatusBadRequest, scim.ErrInvalidPath, fmt.Sprintf("Operations[%d]: unknown path %q (names are case-sensitive)", i, op.Path))
				return
			}
		}
	}
	res, err := h.l.patch("PATCH /Users", r.PathValue("id"), h.ifMatch(r), p.Operations)
	if pe, ok := errors.AsType[*patchError](err); ok {
		writeError(w, http.StatusBadRequest, pe.scimType, pe.detail)
		return
	}
	if err != nil {
		h.writeGone(w, err)
		return
	}
	if h.q.PatchNoContent {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	h.writeUser(w, r, http.StatusOK, res)
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

func (h *handler) deleteUser(w http.ResponseWriter, r *http.Request) {
	if err := h.l.delete("DELETE /Users", r.PathValue("id"), h.ifMatch(r)); err != nil {
		h.writeGone(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *handler) getTraining(w http.ResponseWriter, r *http.Request) {
	t, err := h.l.Training(r.PathValue("id"))
	if err != nil {
		writeLMSError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, "application/json", t)
}

func (h *handler) addTraining(w http.ResponseWriter, r *http.Request) {
	var in Training
	if !decode(w, r, &in) {
		return
	}
	t, err := h.l.AddTraining(r.PathValue("id"), in)
	if err != nil {
		writeLMSError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, "application/json", t)
}
