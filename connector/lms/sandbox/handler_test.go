package sandbox_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/connector/lms/scim"
)

const token = "tok"

type httpBundle struct {
	*testBundle
	srv *httptest.Server
}

func setupHTTP(t *testing.T) *httpBundle {
	t.Helper()
	b := setup(t)
	srv := httptest.NewServer(b.lms.Handler(token))
	t.Cleanup(srv.Close)
	return &httpBundle{testBundle: b, srv: srv}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request with the bearer token (plus header) to path under the server.
func (b *httpBundle) do(t *testing.T, method, path, body string, header ...string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, b.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", scim.MediaType)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := b.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: data}
}

// want checks the status and decodes the body into out (if not nil).
func (r response) want(t *testing.T, status int, out any) response {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if out != nil {
		if err := json.Unmarshal(r.body, out); err != nil {
			t.Fatalf("decode %s: %v", r.body, err)
		}
	}
	return r
}

// wantError checks a SCIM error response.
func (r response) wantError(t *testing.T, status int, scimType string) {
	t.Helper()
	var e scim.Error
	r.want(t, status, &e)
	if len(e.Schemas) != 1 || e.Schemas[0] != scim.MessageError || e.Status != fmt.Sprint(status) || e.ScimType != scimType || e.Detail == "" {
		t.Errorf("error body %s; want status %d, scimType %q and a detail", r.body, status, scimType)
	}
	if ct := r.header.Get("Content-Type"); ct != scim.MediaType {
		t.Errorf("Content-Type %q", ct)
	}
}

const adaJSON = `{
  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
  "externalId": "hr:1", "userName": "Ada@Example.com", "active": true,
  "name": {"givenName": "Ada", "familyName": "Lovelace"},
  "title": "Engineer", "locale": "en-GB",
  "emails": [{"value": "home@example.com", "type": "home"}, {"value": "ada@example.com", "type": "work", "primary": true}],
  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "E1", "department": "R&D", "manager": {"value": "M1"}}
}`

func (b *httpBundle) createAda(t *testing.T) scim.User {
	t.Helper()
	var u scim.User
	b.do(t, "POST", "/scim/v2/Users", adaJSON).want(t, http.StatusCreated, &u)
	return u
}

func TestHandlerAuth(t *testing.T) {
	t.Parallel()
	b := setupHTTP(t)
	for name, auth := range map[string]string{"Missing": "", "Wrong": "Bearer nope", "Prefix": "Bearer to", "Basic": "Basic dG9r"} {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", b.srv.URL+"/scim/v2/Users", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := b.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		r := response{status: resp.StatusCode, header: resp.Header, body: body}
		r.wantError(t, http.StatusUnauthorized, "")
		if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: WWW-Authenticate %q", name, resp.Header.Get("WWW-Authenticate"))
		}
	}
	b.do(t, "GET", "/scim/v2/Users", "", "Authorization", "bearer "+token).want(t, http.StatusOK, nil)

	open := httptest.NewServer(sandbox.New().Handler(""))
	t.Cleanup(open.Close)
	resp, err := open.Client().Get(open.URL + "/scim/v2/Users")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("no token configured: status %d", resp.StatusCode)
	}
}

func TestHandlerServiceProviderConfig(t *testing.T) {
	t.Parallel()
	b := setupHTTP(t)
	var c scim.ServiceProviderConfig
	b.do(t, "GET", "/scim/v2/ServiceProviderConfig", "").want(t, http.StatusOK, &c)
	if c.Schemas[0] != scim.SchemaServiceProviderConfig || !c.Patch.Supported || !c.ETag.Supported || !c.Filter.Supported ||
		c.Filter.MaxResults != sandbox.MaxResults || c.Sort.Supported || c.ChangePassword.Supported ||
		c.Bulk != (scim.BulkConfig{Supported: true, MaxOperations: sandbox.DefaultMaxBulk, MaxPayloadSize: 1 << 20}) ||
		len(c.AuthenticationSchemes) != 1 {
		t.Errorf("ServiceProviderConfig %+v", c)
	}
}

func TestHandlerCreateGet(t *testing.T) {
	t.Parallel()
	b := setupHTTP(t)
	var u scim.User
	r := b.do(t, "POST", "/scim/v2/Users", adaJSON).want(t, http.StatusCreated, &u)
	loc := r.header.Get("Location")
	if loc != b.srv.URL+"/scim/v2/Users/"+u.ID || u.Meta.Location != loc {
		t.Errorf("Location %q, meta.location %q", loc, u.Meta.Location)
	}
	if et := r.header.Get("ETag"); et == "" || et != u.Meta.Version {
		t.Errorf("ETag %q, meta.version %q", et, u.Meta.Version)
	}
	if u.Meta.ResourceType != "User" || !u.Meta.Created.Equal(day0) || !u.Meta.LastModified.Equal(day0) {
		t.Errorf("meta %+v", u.Meta)
	}
	want := connector.Account{
		ID: u.ID, ExternalID: "hr:1", UserName: "Ada@Example.com", Active: true, Version: u.Meta.Version, Created: day0,
		Profile: connector.Profile{Email: "ada@example.com", GivenName: "Ada", FamilyName: "Lovelace", EmployeeNumber: "E1",
			OrgUnit: "R&D", JobTitle: "Engineer", ManagerID: "M1", Locale: "en-GB"},
	}
	if got := scim.ToAccount(u); got != want {
		t.Errorf("created\n%+v\nwant\n%+v", got, want)
	}
	for _, s := range []string{scim.SchemaUser, scim.SchemaEnterpriseUser, scim.SchemaTrainingUser} {
		if !strings.Contains(string(r.body), `"`+s+`"`) {
			t.Errorf("body lacks schema %s", s)
		}
	}
	var got scim.User
	r = b.do(t, "GET", "/scim/v2/Users/"+u.ID, "").want(t, http.StatusOK, &got)
	if r.header.Get("ETag") != u.Meta.Version || scim.ToAccount(got) != want {
		t.Errorf("GET: ETag %q, %+v", r.header.Get("ETag"), scim.ToAccount(got))
	}
	if got.Training == nil || got.Training.Enrollments == nil || got.Training.Completions == nil {
		t.Errorf("training extension %+v; want empty lists", got.Training)
	}

	b.do(t, "POST", "/scim/v2/Users", strings.Replace(adaJSON, "hr:1", "hr:2", 1)).wantError(t, http.StatusConflict, scim.ErrUniqueness)
	b.do(t, "POST", "/scim/v2/Users", `{"userName":""}`).wantError(t, http.StatusBadRequest, scim.ErrInvalidValue)
	b.do(t, "GET", "/scim/v2/Users/nope", "").wantError(t, http.StatusNotFound, "")
}

func TestHandlerFilters(t *testing.T) {
	t.Parallel()
	b := setupHTTP(t)
	ada := b.createAda(t)
	for _, f := range []string{
		`externalId eq "hr:1"`,
		`userName eq "ada@example.COM"`,
		`USERNAME eq "Ada@Example.com"`,
		`emails.value eq "ADA@example.com"`,
		`emails[value eq "ada@example.com"]`,
		`employeeNumber eq "E1"`,
		`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "E1"`,
	} {
		var lr scim.ListResponse
		b.do(t, "GET", "/scim/v2/Users?filter="+url.QueryEscape(f), "").want(t, http.StatusOK, &lr)
		if lr.TotalResults != 1 || lr.ItemsPerPage != 1 || len(lr.Resources) != 1 || lr.Resources[0].ID != ada.ID ||
			lr.Schemas[0] != scim.MessageListResponse || lr.StartIndex != 1 {
			t.Errorf("filter %s: %+v", f, lr)
		}
	}
	for _, f := range []string{`externalId eq "HR:1"`, `employeeNumber eq "e1"`, `emails.value eq "home@example.com"`} {
		var lr scim.ListResponse
		b.do(t, "GET", "/scim/v2/Users?filter="+url.QueryEscape(f), "").want(t, http.StatusOK, &lr)
		if lr.TotalResults != 0 || lr.Resources == nil {
			t.Errorf("filter %s: %+v, want an empty Resources list", f, lr)
		}
	}
	for _, f := range []string{`userName sw "a"`, `title eq "x"`, `userName eq "a" and userName eq "b"`,
		`userName eq "a" or`, `userName eq "a"or userName eq "b"`, `(userName eq "a")`, `id eq "a" or title eq "b"`} {
		b.do(t, "GET", "/scim/v2/Users?filter="+url.QueryEscape(f), "").wantError(t, http.StatusBadRequest, scim.ErrInvalidFilter)
	}
}

func TestHandlerPaging(t *testing.T) {
	t.Parallel()
	b := setupHTTP(t)
	for i := range 5 {
		b.create(t, fmt.Sprintf("u%d", i), "")
	}
	for _, tc := range []struct {
		query              string
		start, items, user int
	}{
		{"", 1, 5, 0}, {"?startIndex=2&count=2", 2, 2, 1}, {"?startIndex=5&count=10", 5, 1, 4},
		{"?startIndex=9", 9, 0, -1}, {"?count=0", 1, 0, -1}, {"?startIndex=0&count=1", 1, 1, 0}, {"?count=99999", 1, 5, 0},
	} {
		var lr scim.ListResponse
		b.do(t, "GET", "/scim/v2/Users"+tc.query, "").want(t, http.StatusOK, &lr)
		if lr.TotalResults != 5 || lr.StartIndex != tc.start || lr.ItemsPerPage != tc.items || len(lr.Resources) != tc.items {
			t.Errorf("%s: total %d start %d items %d (%d)", tc.query, lr.TotalResults, lr.StartIndex, lr.ItemsPerPage, len(lr.Resources))
		}
		if tc.user >= 0 && lr.Resources[0].UserName != fmt.Sprintf("u%d", tc.user) {
			t.Errorf("%s: first is %s", tc.query, lr.Resources[0].UserName)
		}
	}
	b.do(t, "GET", "/scim/v2/Users?count=ten", "").wantError(t, http.StatusBadRequest, scim.ErrInvalidValue)
}

func TestHandlerPatch(t *testing.T) {
	t.Parallel()
	b := setupHTTP(t)
	ada := b.createAda(t)
	path := "/scim/v2/Users/" + ada.ID
	patch := func(ops string) string {
		return `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":` + ops + `}`
	}
	get := func() connector.Account {
		t.Helper()
		a, err := b.lms.GetAccount(t.Context(), ada.ID)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}

	var u scim.User
	r := b.do(t, "PATCH", path, patch(`[{"op":"replace","path":"active","value":false}]`)).want(t, http.StatusOK, &u)
	if *u.Active || get().Active || r.header.Get("ETag") == ada.Meta.Version {
		t.Errorf("path form: active %v, ETag %q", *u.Active, r.header.Get("ETag"))
	}
	b.do(t, "PATCH", path, patch(`[{"op":"Replace","value":{"active":true}}]`)).want(t, http.StatusOK, nil)
	if !get().Active {
		t.Errorf("value form did not activate")
	}
	b.do(t, "PATCH", path, patch(`[{"op":"replace","path":"active","value":"False"}]`)).want(t, http.StatusOK, nil)
	if get().Active {
		t.Errorf(`"False" did not deactivate`)
	}

	b.do(t, "PATCH", path, patch(`[
		{"op":"replace","path":"name.givenName","value":"Augusta"},
		{"op":"replace","path":"emails[type eq \"work\"].value","value":"augusta@example.com"},
		{"op":"add","value":{"title":"Countess","name":{"familyName":"King"},
			"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Maths","manager":{"value":"M2"}}}},
		{"op":"replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber","value":"E9"},
		{"op":"remove","path":"locale"}]`)).want(t, http.StatusOK, nil)
	want := connector.Profile{Email: "augusta@example.com", GivenName: "Augusta", FamilyName: "King", EmployeeNumber: "E9",
		OrgUnit: "Maths", JobTitle: "Countess", ManagerID: "M2"}
	if got := get(); got.Profile != want || got.Active {
		t.Errorf("profile patch: %+v active %v, want %+v inactive", got.Profile, got.Active, want)
	}

	cur := get().Version
	b.do(t, "PATCH", path, patch(`[{"op":"replace","path":"active","value":true}]`), "If-Match", `W/"1"`).wantError(t, http.StatusPreconditionFailed, "")
	b.do(t, "PATCH", path, patch(`[{"op":"replace","path":"active","value":true}]`), "If-Match", cur).want(t, http.StatusOK, nil)

	for _, tc := range []struct{ body, scimType string }{
		{patch(`[{"op":"replace","path":"password","value":"x"}]`), scim.ErrInvalidPath},
		{patch(`[{"op":"replace","path":"active","value":3}]`), scim.ErrInvalidValue},
		{patch(`[{"op":"remove","path":"userName"}]`), scim.ErrInvalidValue},
		{patch(`[{"op":"remove"}]`), scim.ErrNoTarget},
		{patch(`[{"op":"move","path":"title"}]`), scim.ErrInvalidSyntax},
		{patch(`[{"op":"replace","value":"x"}]`), scim.ErrInvalidValue},
		{patch(`[]`), scim.ErrInvalidValue},
		{`{"Operations":[{"op":"replace","path":"active","value":false}]}`, scim.ErrInvalidSyntax},
		{`{"schemas":[`, scim.ErrInvalidSyntax},
	} {
		b.do(t, "PATCH", path, tc.body).wantError(t, http.StatusBadRequest, tc.scimType)
	}
	if !get().Active {
		t.Errorf("a failed PATCH changed the account")
	}
	// A PATCH that fails halfway changes nothing.
	b.do(t, "PATCH", path, patch(`[{"op":"replace","path":"title","value":"Half"},{"op":"replace","path":"nope","value":1}]`)).
		wantError(t, http.StatusBadRequest, scim.ErrInvalidPath)
	if get().Profile.JobTitle != "Countess" {
		t.Errorf("half a PATCH was applied")
	}
	b.create(t, "bob@example.com", "hr:2")
	b.do(t, "PATCH", path, patch(`[{"op":"replace","path":"externalId","value":"hr:2"}]`)).wantError(t, http.StatusConflict, scim.ErrUniqueness)
	b.do(t, "PATCH", "/scim/v2/Users/nope", patch(`[{"op":"replace","path":"active","value":true}]`)).wantError(t, http.StatusNotFound, "")

	var kinds []sandbox.OpKind
	for _, op := range b.lms.Ops() {
		if op.AccountID == ada.ID {
			kinds = append(kinds, op.Kind)
		}
	}
	wantKinds := []sandbox.OpKind{sandbox.OpCreate, sandbox.OpDeactivate, sandbox.OpActivate, sandbox.OpDeactivate, sandbox.OpUpdate, sandbox.OpActivate}
	if fmt.Sprint(kinds) != fmt.Sprint(wantKinds) {
		t.Errorf("ops %v, want %v", kinds, wantKinds)
	}
}

func TestHandlerPut(t *testing.T) {
	t.Parallel()
	b := setupHTTP(t)
	ada := b.createAda(t)
	path := "/scim/v2/Users/" + ada.ID
	if _, err := b.lms.SetActive(t.Context(), ada.ID, false); err != nil {
		t.Fatal(err)
	}
	body := `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"ada2","externalId":"hr:9","title":"Lead"}`
	b.do(t, "PUT", path, body, "If-Match", ada.Meta.Version).wantError(t, http.StatusPreconditionFailed, "")
	var u scim.User
	r := b.do(t, "PUT", path, body).want(t, http.StatusOK, &u)
	want := connector.Profile{JobTitle: "Lead"} // what the body leaves out is cleared
	if got := scim.ToAccount(u); got.Profile != want || got.UserName != "ada2" || got.ExternalID != "hr:9" || got.Active {
		t.Errorf("PUT: %+v", got)
	}
	// With the current ETag, and with active in the body.
	b.do(t, "PUT", path, `{"userName":"ada3","active":true}`, "If-Match", r.header.Get("ETag")).want(t, http.StatusOK, &u)
	if !*u.Active || u.UserName != "ada3" {
		t.Errorf("PUT with active: %+v", u)
	}
	b.do(t, "PUT", "/scim/v2/Users/nope", body).wantError(t, http.StatusNotFound, "")
	b.do(t, "PUT", path, `{"userName":`).wantError(t, http.StatusBadRequest, scim.ErrInvalidSyntax)
	b.do(t, "PUT", path, `{"userName":"a"} {"userName":"b"}`).wantError(t, http.StatusBadRequest, scim.ErrInvalidSyntax)
}

func TestHandlerDelete(t *testing.T) {
	t.Parallel()
	b := setupHTTP(t)
	ada := b.createAda(t)
	path := "/scim/v2/Users/" + ada.ID
	b.do(t, "DELETE", path, "", "If-Match", `W/"99"`).wantError(t, http.StatusPreconditionFailed, "")
	if r := b.do(t, "DELETE", path, ""); r.status != http.StatusNoContent || len(r.body) != 0 {
		t.Errorf("DELETE: %d %s", r.status, r.body)
	}
	b.do(t, "DELETE", path, "").wantError(t, http.StatusNotFound, "")
	b.do(t, "GET", path, "").wantError(t, http.StatusNotFound, "")
}

func TestHandlerLimits(t *testing.T) {
	t.Parallel()
	b := setupHTTP(t)
	big := `{"userName":"` + strings.Repeat("x", 2<<20) + `"}`
	b.do(t, "POST", "/scim/v2/Users", big).wantError(t, http.StatusRequestEntityTooLarge, "")
	b.do(t, "POST", "/scim/v2/Users", `not json`).wantError(t, http.StatusBadRequest, scim.ErrInvalidSyntax)
	b.do(t, "GET", "/scim/v2/Groups", "").wantError(t, http.StatusNotFound, "")
	b.do(t, "PATCH", "/scim/v2/Users", "").wantError(t, http.StatusMethodNotAllowed, "")
	if r := b.do(t, "POST", "/scim/v2/Users/u-1", "{}"); r.header.Get("Allow") != "GET, PUT, PATCH, DELETE" {
		t.Errorf("Allow %q", r.header.Get("Allow"))
	}
	if b.lms.Count() != 0 {
		t.Errorf("%d accounts", b.lms.Count())
	}
}

func TestHandlerTraining(t *testing.T) {
	t.Parallel()
	b := setupHTTP(t)
	ada := b.createAda(t)
	path := "/hrsync/v1/accounts/" + url.PathEscape(ada.ID) + "/training"
	var tr sandbox.Training
	b.do(t, "GET", path, "").want(t, http.StatusOK, &tr)
	if tr.HasActivity() || tr.Enrollments == nil || tr.Completions == nil {
		t.Errorf("fresh training %+v", tr)
	}
	b.do(t, "POST", path, `{"enrollments":[{"course":"c1","enrolled_at":"2026-01-01T00:00:00Z"}],"last_login":"2026-01-02T00:00:00Z"}`).want(t, http.StatusOK, &tr)
	b.do(t, "POST", path, `{"completions":[{"course":"c1","completed_at":"2026-01-03T00:00:00Z"}]}`).want(t, http.StatusOK, &tr)
	if len(tr.Enrollments) != 1 || len(tr.Completions) != 1 || tr.LastLogin == nil {
		t.Errorf("after two POSTs: %+v", tr)
	}
	var u scim.User
	b.do(t, "GET", "/scim/v2/Users/"+ada.ID, "").want(t, http.StatusOK, &u)
	if u.Training == nil || len(u.Training.Completions) != 1 || u.Training.Completions[0].Course != "c1" || u.Meta.Version != ada.Meta.Version {
		t.Errorf("extension %+v; version %q, was %q (training does not move it)", u.Training, u.Meta.Version, ada.Meta.Version)
	}
	b.do(t, "POST", path, `{"completions":[{"course":""}]}`).wantError(t, http.StatusBadRequest, scim.ErrInvalidValue)
	b.do(t, "POST", path, `{"last_login":"yesterday"}`).wantError(t, http.StatusBadRequest, scim.ErrInvalidSyntax)
	b.do(t, "GET", "/hrsync/v1/accounts/nope/training", "").wantError(t, http.StatusNotFound, "")

	// The extension is read-only: writes that carry it change nothing.
	withTraining := `{"userName":"Ada@Example.com","` + scim.SchemaTrainingUser + `":{"completions":[]}}`
	b.do(t, "PUT", "/scim/v2/Users/"+ada.ID, withTraining).want(t, http.StatusOK, nil)
	if got, _ := b.lms.Training(ada.ID); len(got.Completions) != 1 {
		t.Errorf("PUT erased training: %+v", got)
	}
}
