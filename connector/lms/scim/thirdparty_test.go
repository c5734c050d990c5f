package scim_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	elimity "github.com/elimity-com/scim"
	elimityerr "github.com/elimity-com/scim/errors"
	"github.com/elimity-com/scim/optional"
	"github.com/elimity-com/scim/schema"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/lmstest"
	"github.com/hrsync/hrsync/connector/lms/scim"
)

// This file runs the conformance suite on the SCIM client against a SCIM server
// we did not write: github.com/elimity-com/scim. It parses requests, validates
// them against the RFC 7643 User and enterprise schemas, parses filters and PATCH
// paths, and writes ListResponses and errors. All we supply is the storage
// callbacks (elimityUsers), kept as plain as the library's own example.
// docs/lms-compat.md lists how this server differs from the RFC and the sandbox.

// elimityUsers is an in-memory elimity.ResourceHandler for /Users. It enforces
// what the schema declares: userName is unique (uniqueness "server", compared
// case-insensitively as the attribute is not caseExact); externalId is not
// unique (uniqueness "none" in the library's common attributes).
type elimityUsers struct {
	mu    sync.Mutex
	seq   int
	users map[string]*elimityUser
}

type elimityUser struct {
	seq      int
	attrs    elimity.ResourceAttributes
	created  time.Time
	modified time.Time
}

func newElimityUsers() *elimityUsers { return &elimityUsers{users: map[string]*elimityUser{}} }

func (h *elimityUsers) resource(id string, u *elimityUser) elimity.Resource {
	var ext optional.String
	if v, ok := u.attrs["externalId"].(string); ok && v != "" {
		ext = optional.NewString(v)
	}
	created, modified := u.created, u.modified
	return elimity.Resource{
		ID: id, ExternalID: ext, Attributes: u.attrs,
		Meta: elimity.Meta{Created: &created, LastModified: &modified},
	}
}

// taken reports whether another user than self has userName; h.mu must be held.
func (h *elimityUsers) taken(attrs elimity.ResourceAttributes, self string) bool {
	name, _ := attrs["userName"].(string)
	for id, u := range h.users {
		if other, _ := u.attrs["userName"].(string); id != self && strings.EqualFold(other, name) {
			return true
		}
	}
	return false
}

func (h *elimityUsers) Create(r *http.Request, attrs elimity.ResourceAttributes) (elimity.Resource, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.taken(attrs, "") {
		return elimity.Resource{}, elimityerr.ScimErrorUniqueness
	}
	h.seq++
	id := fmt.Sprintf("%08x-0000-4000-8000-%012x", h.seq, h.seq)
	now := time.Now().UTC().Truncate(time.Second)
	u := &elimityUser{seq: h.seq, attrs: attrs, created: now, modified: now}
	h.users[id] = u
	return h.resource(id, u), nil
}

func (h *elimityUsers) Get(r *http.Request, id string) (elimity.Resource, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	u, ok := h.users[id]
	if !ok {
		return elimity.Resource{}, elimityerr.ScimErrorResourceNotFound(id)
	}
	return h.resource(id, u), nil
}

func (h *elimityUsers) GetAll(r *http.Request, params elimity.ListRequestParams) (elimity.Page, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ids := make([]string, 0, len(h.users))
	for id, u := range h.users {
		if params.FilterValidator == nil || params.FilterValidator.PassesFilter(u.attrs) == nil {
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, func(a, b string) int { return h.users[a].seq - h.users[b].seq })
	page := elimity.Page{TotalResults: len(ids), Resources: []elimity.Resource{}}
	start := max(params.StartIndex, 1) - 1
	for i := start; i < len(ids) && i < start+params.Count; i++ {
		page.Resources = append(page.Resources, h.resource(ids[i], h.users[ids[i]]))
	}
	return page, nil
}

func (h *elimityUsers) Replace(r *http.Request, id string, attrs elimity.ResourceAttributes) (elimity.Resource, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	u, ok := h.users[id]
	if !ok {
		return elimity.Resource{}, elimityerr.ScimErrorResourceNotFound(id)
	}
	if h.taken(attrs, id) {
		return elimity.Resource{}, elimityerr.ScimErrorUniqueness
	}
	// "Replace replaces ALL existing attributes": what the body leaves out is gone.
	u.attrs = attrs
	u.modified = time.Now().UTC().Truncate(time.Second)
	return h.resource(id, u), nil
}

func (h *elimityUsers) Delete(r *http.Request, id string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.users[id]; !ok {
		return elimityerr.ScimErrorResourceNotFound(id)
	}
	delete(h.users, id)
	return nil
}

// Patch applies the operations the library has parsed and validated. It answers
// with no attributes (204 No Content) when nothing changed, as the library's
// documentation of ResourceHandler.Patch asks.
func (h *elimityUsers) Patch(r *http.Request, id string, ops []elimity.PatchOperation) (elimity.Resource, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	u, ok := h.users[id]
	if !ok {
		return elimity.Resource{}, elimityerr.ScimErrorResourceNotFound(id)
	}
	attrs := make(elimity.ResourceAttributes, len(u.attrs))
	for k, v := range u.attrs {
		attrs[k] = v
	}
	changed := false
	for _, op := range ops {
		target := map[string]any(attrs)
		if op.Path == nil {
			value, ok := op.Value.(map[string]any)
			if !ok {
				return elimity.Resource{}, elimityerr.ScimErrorInvalidValue
			}
			for k, v := range value {
				if fmt.Sprint(attrs[k]) != fmt.Sprint(v) {
					attrs[k], changed = v, true
				}
			}
			continue
		}
		name := op.Path.AttributePath.AttributeName
		if uri := op.Path.AttributePath.URI(); uri != "" && uri != schema.CoreUserSchema().ID {
			ext, _ := attrs[uri].(map[string]any)
			ext = maps(ext)
			attrs[uri] = ext
			target = ext
		}
		if sub := op.Path.AttributePath.SubAttributeName(); sub != "" {
			inner, _ := target[name].(map[string]any)
			inner = maps(inner)
			target[name] = inner
			target, name = inner, sub
		}
		switch op.Op {
		case elimity.PatchOperationRemove:
			if _, ok := target[name]; ok {
				delete(target, name)
				changed = true
			}
		default:
			if fmt.Sprint(target[name]) != fmt.Sprint(op.Value) {
				target[name], changed = op.Value, true
			}
		}
	}
	if !changed {
		return elimity.Resource{}, nil
	}
	if h.taken(attrs, id) {
		return elimity.Resource{}, elimityerr.ScimErrorUniqueness
	}
	u.attrs = attrs
	u.modified = time.Now().UTC().Truncate(time.Second)
	return h.resource(id, u), nil
}

// maps returns a copy of m (an empty map for nil).
func maps(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// newElimityServer serves an elimity SCIM server with the RFC 7643 User schema
// and enterprise extension under /v2 on loopback, and returns its SCIM root.
func newElimityServer(t *testing.T) (*httptest.Server, string) {
	t.Helper()
	srv, err := elimity.NewServer(&elimity.ServerArgs{
		ServiceProviderConfig: &elimity.ServiceProviderConfig{
			SupportFiltering: true,
			SupportPatch:     true,
			MaxResults:       100,
		},
		ResourceTypes: []elimity.ResourceType{{
			ID:               optional.NewString("User"),
			Name:             "User",
			Endpoint:         "/Users",
			Schema:           schema.CoreUserSchema(),
			SchemaExtensions: []elimity.SchemaExtension{{Schema: schema.ExtensionEnterpriseUser()}},
			Handler:          newElimityUsers(),
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v2/", srv)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return hs, hs.URL + "/v2"
}

func newElimityClient(t *testing.T) *scim.Client {
	t.Helper()
	hs, base := newElimityServer(t)
	// The library never finds a user by an enterprise extension attribute: its
	// filter looks employeeNumber up at the top level of the stored attributes,
	// where the extension's fields are not. See docs/lms-compat.md.
	c, err := scim.New(base, scim.WithHTTPClient(hs.Client()), scim.WithClientSideFilter(connector.ByEmployeeNumber))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestConformanceElimity runs lmstest on the client against elimity-com/scim.
func TestConformanceElimity(t *testing.T) {
	t.Parallel()
	lmstest.Run(t, lmstest.Features{
		// The library hard-codes etag.supported=false in its ServiceProviderConfig
		// and never evaluates If-Match, so there are no conditional updates.
		ETags: false,
		// The library's common attributes give externalId uniqueness "none",
		// and the handler enforces only what the schema declares.
		DuplicateExternalIDs: true,
		// Its users carry no training extension: activity is unknown.
		NoActivity: true,
	}, func(t *testing.T) connector.LMS { return newElimityClient(t) })
}

// TestElimitySearch: elimity-com/scim routes POST /Users/.search but answers
// 501 ("Search is not supported for this resource type") unless the resource
// handler implements search, which ours, like most, does not: the client asks
// once, then reads with GET; an id filter, which the library cannot evaluate
// (400 invalidFilter over GET), falls back to a GET per user.
func TestElimitySearch(t *testing.T) {
	t.Parallel()
	hs, base := newElimityServer(t)
	var mu sync.Mutex
	var seen []string
	inner := hs.Config.Handler
	hs.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+strings.TrimPrefix(r.URL.Path, "/v2"))
		mu.Unlock()
		inner.ServeHTTP(w, r)
	})
	c, err := scim.New(base, scim.WithHTTPClient(hs.Client()))
	if err != nil {
		t.Fatal(err)
	}
	var accs []connector.Account
	for i := range 3 {
		a, err := c.CreateAccount(t.Context(), connector.Account{ExternalID: fmt.Sprintf("hr:%d", i), UserName: fmt.Sprintf("u%d@example.com", i), Active: true})
		if err != nil {
			t.Fatal(err)
		}
		accs = append(accs, a)
	}
	took := func() string {
		mu.Lock()
		defer mu.Unlock()
		out := fmt.Sprint(seen)
		seen = nil
		return out
	}
	took()
	found, err := c.FindAccountsIn(t.Context(), connector.ByExternalID, []string{"hr:0", "hr:2", "hr:9"})
	if err != nil || len(found) != 3 || found["hr:2"][0].ID != accs[2].ID || len(found["hr:9"]) != 0 {
		t.Fatalf("FindAccountsIn: %+v, %v", found, err)
	}
	if got := took(); got != "[GET /ServiceProviderConfig POST /Users/.search GET /Users]" {
		t.Errorf("FindAccountsIn sent %v, want discovery, the refused .search and one GET", got)
	}
	act, err := c.ActivityOf(t.Context(), []string{accs[0].ID, accs[2].ID})
	if err != nil || len(act) != 2 {
		t.Fatalf("ActivityOf: %+v, %v", act, err)
	}
	if got := took(); got != "[GET /Users GET /Users/"+accs[0].ID+" GET /Users/"+accs[2].ID+"]" {
		t.Errorf("ActivityOf sent %v, want the refused id filter, then a GET per user", got)
	}
}
