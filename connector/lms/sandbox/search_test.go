package sandbox_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"testing"

	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/connector/lms/scim"
)

// TestHandlerSearch: POST /Users/.search (RFC 7644 §3.4.3) answers the query of
// its SearchRequest body as GET /Users answers the same query in the URL.
func TestHandlerSearch(t *testing.T) {
	t.Parallel()
	b := setupHTTP(t)
	ada := b.createAda(t)
	b.create(t, "bob@example.com", "hr:2")
	b.create(t, "cy@example.com", "hr:3")
	filter := `externalId eq "hr:1" or userName eq "cy@example.com" or externalId eq "hr:none"`

	var viaGet, viaPost scim.ListResponse
	b.do(t, "GET", "/scim/v2/Users?"+url.Values{"filter": {filter}}.Encode(), "").want(t, http.StatusOK, &viaGet)
	body, _ := json.Marshal(scim.SearchRequest{Schemas: []string{scim.MessageSearchRequest}, Filter: filter})
	b.do(t, "POST", "/scim/v2/Users/.search", string(body)).want(t, http.StatusOK, &viaPost)
	if viaPost.TotalResults != 2 || len(viaPost.Resources) != 2 || viaPost.Resources[0].ID != ada.ID ||
		len(viaPost.Schemas) != 1 || viaPost.Schemas[0] != scim.MessageListResponse {
		t.Errorf("POST /Users/.search: %+v, want ada and cy in a ListResponse", viaPost)
	}
	if !reflect.DeepEqual(viaGet, viaPost) {
		t.Errorf("GET and POST .search differ:\nGET  %+v\nPOST %+v", viaGet, viaPost)
	}

	// Paging: startIndex and count in the body; count 0 is totalResults only.
	one := 1
	body, _ = json.Marshal(scim.SearchRequest{Schemas: []string{scim.MessageSearchRequest}, Filter: filter, StartIndex: 2, Count: &one})
	var page scim.ListResponse
	b.do(t, "POST", "/scim/v2/Users/.search", string(body)).want(t, http.StatusOK, &page)
	if page.TotalResults != 2 || page.StartIndex != 2 || page.ItemsPerPage != 1 || len(page.Resources) != 1 || page.Resources[0].UserName != "cy@example.com" {
		t.Errorf("page 2 of 1: %+v", page)
	}
	zero := 0
	body, _ = json.Marshal(scim.SearchRequest{Schemas: []string{scim.MessageSearchRequest}, Count: &zero})
	b.do(t, "POST", "/scim/v2/Users/.search", string(body)).want(t, http.StatusOK, &page)
	if page.TotalResults != 3 || len(page.Resources) != 0 {
		t.Errorf("count 0: %+v, want 3 results and no resources", page)
	}

	// attributes and excludedAttributes (RFC 7644 §3.4.2.5): id and schemas always.
	body, _ = json.Marshal(map[string]any{"schemas": []string{scim.MessageSearchRequest}, "filter": `externalId eq "hr:1"`,
		"attributes": []string{"userName", "name.familyName", "emails.value", scim.SchemaEnterpriseUser + ":employeeNumber"}})
	var raw struct {
		Resources []map[string]json.RawMessage
	}
	b.do(t, "POST", "/scim/v2/Users/.search", string(body)).want(t, http.StatusOK, &raw)
	if len(raw.Resources) != 1 {
		t.Fatalf("attributes: %d resources", len(raw.Resources))
	}
	got := raw.Resources[0]
	var keys []string
	for k := range got {
		keys = append(keys, k)
	}
	if len(got) != 6 || string(got["name"]) != `{"familyName":"Lovelace"}` ||
		string(got["emails"]) != `[{"value":"ada@example.com"}]` ||
		string(got[scim.SchemaEnterpriseUser]) != `{"employeeNumber":"E1"}` || got["id"] == nil || got["schemas"] == nil || got["userName"] == nil {
		t.Errorf("attributes: keys %v, resource %s", keys, mustJSON(t, got))
	}
	var excl struct {
		Resources []map[string]json.RawMessage
	}
	b.do(t, "GET", "/scim/v2/Users?"+url.Values{"filter": {`externalId eq "hr:1"`},
		"excludedAttributes": {"emails,meta,id," + scim.SchemaTrainingUser}}.Encode(), "").want(t, http.StatusOK, &excl)
	if got := excl.Resources[0]; got["emails"] != nil || got["meta"] != nil || got[scim.SchemaTrainingUser] != nil || got["id"] == nil || got["userName"] == nil {
		t.Errorf("excludedAttributes: %s", mustJSON(t, got))
	}

	// A body that is not a SearchRequest, a filter the sandbox cannot evaluate, sorting.
	b.do(t, "POST", "/scim/v2/Users/.search", `{"filter":"externalId eq \"hr:1\""}`).wantError(t, http.StatusBadRequest, scim.ErrInvalidSyntax)
	b.do(t, "POST", "/scim/v2/Users/.search", `{"schemas":["`+scim.MessageSearchRequest+`"],"filter":"title co \"x\""}`).
		wantError(t, http.StatusBadRequest, scim.ErrInvalidFilter)
	b.do(t, "POST", "/scim/v2/Users/.search", `{"schemas":["`+scim.MessageSearchRequest+`"],"sortBy":"userName"}`).
		wantError(t, http.StatusBadRequest, scim.ErrInvalidValue)
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestHandlerNoSearch: the quirk answers .search as servers without it do.
func TestHandlerNoSearch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		q        sandbox.Quirks
		status   int
		scimType string
	}{
		{sandbox.Quirks{NoSearch: true}, http.StatusMethodNotAllowed, ""},
		{sandbox.Quirks{NoSearch: true, NoSearchStatus: http.StatusNotImplemented}, http.StatusNotImplemented, ""},
		{sandbox.Quirks{NoSearch: true, NoSearchStatus: http.StatusBadRequest, NoSearchType: scim.ErrInvalidSyntax}, http.StatusBadRequest, scim.ErrInvalidSyntax},
		{sandbox.Quirks{MaxFilterTerms: 1}, http.StatusBadRequest, scim.ErrTooMany},
	} {
		b := setupHTTP(t)
		srv := newQuirkServer(t, b, tc.q)
		r := srv.do(t, "POST", "/scim/v2/Users/.search",
			`{"schemas":["`+scim.MessageSearchRequest+`"],"filter":"externalId eq \"a\" or externalId eq \"b\""}`)
		r.wantError(t, tc.status, tc.scimType)
	}
}

// newQuirkServer serves b's sandbox with quirks q.
func newQuirkServer(t *testing.T, b *httpBundle, q sandbox.Quirks) *httpBundle {
	t.Helper()
	srv := httptest.NewServer(b.lms.HandlerWith(token, q))
	t.Cleanup(srv.Close)
	return &httpBundle{testBundle: b.testBundle, srv: srv}
}
