package scim_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/lmstest"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/connector/lms/scim"
)

const token = "s3cret-token"

type testBundle struct {
	lms    *sandbox.LMS
	srv    *httptest.Server
	client *scim.Client
}

// setup serves a fresh sandbox over HTTP and returns a SCIM client for it.
func setup(t *testing.T, opts ...sandbox.Option) *testBundle {
	t.Helper()
	lms := sandbox.New(opts...)
	srv := httptest.NewServer(lms.Handler(token))
	t.Cleanup(srv.Close)
	c, err := scim.New(srv.URL+sandbox.BasePath, scim.WithBearerToken(token), scim.WithHTTPClient(srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	sandboxes.Store(c, lms)
	return &testBundle{lms: lms, srv: srv, client: c}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	lmstest.Run(t, lmstest.Features{ETags: true, Train: train}, func(t *testing.T) connector.LMS { return setup(t).client })
}

// TestConformanceOddIDs runs the suite on ids that must be escaped in a URL path.
func TestConformanceOddIDs(t *testing.T) {
	t.Parallel()
	odd := sandbox.WithIDs(func(n int) string { return fmt.Sprintf(`u/%d ?#%%2F+é"`, n) })
	lmstest.Run(t, lmstest.Features{ETags: true, Train: train}, func(t *testing.T) connector.LMS { return setup(t, odd).client })
}

func TestConcurrency(t *testing.T) {
	t.Parallel()
	lmstest.RunConcurrency(t, func(t *testing.T) connector.LMS { return setup(t).client })
}

func asLMSError(t *testing.T, err error) *connector.LMSError {
	t.Helper()
	var le *connector.LMSError
	if !errors.As(err, &le) {
		t.Fatalf("error %v (%T) is not an *LMSError", err, err)
	}
	return le
}

// statusServer answers every request with status, header and body, and records
// the requests it saw.
type statusServer struct {
	mu   sync.Mutex
	reqs []*http.Request
	srv  *httptest.Server
}

func newStatusServer(t *testing.T, status int, header http.Header, body string) *statusServer {
	t.Helper()
	s := &statusServer{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.reqs = append(s.reqs, r.Clone(r.Context()))
		s.mu.Unlock()
		for k, vs := range header {
			w.Header()[k] = vs
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *statusServer) client(t *testing.T, opts ...scim.Option) *scim.Client {
	t.Helper()
	c, err := scim.New(s.srv.URL+"/scim/v2/", append([]scim.Option{scim.WithHTTPClient(s.srv.Client())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (s *statusServer) requests() []*http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reqs
}

func TestErrorTable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status int
		kind   connector.ErrorKind
		target error
	}{
		{400, connector.KindInvalid, nil},
		{401, connector.KindAuth, nil},
		{403, connector.KindAuth, nil},
		{404, connector.KindNotFound, connector.ErrNotFound},
		{405, connector.KindInvalid, nil},
		{408, connector.KindUnavailable, nil},
		{409, connector.KindConflict, connector.ErrConflict},
		{412, connector.KindPrecondition, connector.ErrPrecondition},
		{413, connector.KindInvalid, nil},
		{429, connector.KindRateLimited, nil},
		{422, connector.KindInvalid, nil},
		{500, connector.KindUnavailable, nil},
		{501, connector.KindUnavailable, nil},
		{502, connector.KindUnavailable, nil},
		{503, connector.KindUnavailable, nil},
		{504, connector.KindUnavailable, nil},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			t.Parallel()
			body := fmt.Sprintf(`{"schemas":[%q],"status":"%d","detail":"detail of %d"}`, scim.MessageError, tc.status, tc.status)
			s := newStatusServer(t, tc.status, nil, body)
			_, err := s.client(t).GetAccount(t.Context(), "a/1")
			le := asLMSError(t, err)
			if le.Kind != tc.kind || le.Status != tc.status {
				t.Errorf("kind %s status %d, want %s %d", le.Kind, le.Status, tc.kind, tc.status)
			}
			if want := fmt.Sprintf("detail of %d", tc.status); le.Reason != want {
				t.Errorf("Reason = %q, want %q", le.Reason, want)
			}
			if le.Op != "GET /Users/a%2F1" {
				t.Errorf("Op = %q", le.Op)
			}
			if tc.target != nil && !errors.Is(err, tc.target) {
				t.Errorf("errors.Is(%v, %v) = false", err, tc.target)
			}
			if got := s.requests()[0].URL.EscapedPath(); got != "/scim/v2/Users/a%2F1" {
				t.Errorf("request path %q", got)
			}
		})
	}
}

func TestErrorReason(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct{ body, want string }{
		"NotSCIM":       {"<html>oops</html>", "Service Unavailable"},
		"Empty":         {"", "Service Unavailable"},
		"NumericStatus": {`{"status":503,"detail":"maintenance"}`, "maintenance"},
		"Long":          {`{"detail":"` + strings.Repeat("x", 500) + `"}`, strings.Repeat("x", 200) + "…"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := newStatusServer(t, 503, nil, tc.body).client(t).GetAccount(t.Context(), "1")
			if le := asLMSError(t, err); le.Reason != tc.want {
				t.Errorf("Reason = %q, want %q", le.Reason, tc.want)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	in90s := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	for name, tc := range map[string]struct {
		status   int
		header   string
		min, max time.Duration
	}{
		"Seconds":      {429, "120", 120 * time.Second, 120 * time.Second},
		"HTTPDate":     {429, in90s, 80 * time.Second, 90 * time.Second},
		"PastDate":     {429, "Mon, 02 Jan 2006 15:04:05 GMT", 0, 0},
		"Garbage":      {429, "soon", 0, 0},
		"Missing":      {429, "", 0, 0},
		"Negative":     {429, "-5", 0, 0},
		"Unavailable":  {503, "7", 7 * time.Second, 7 * time.Second},
		"LeadingSpace": {429, " 3 ", 3 * time.Second, 3 * time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := http.Header{}
			if tc.header != "" {
				h.Set("Retry-After", tc.header)
			}
			_, err := newStatusServer(t, tc.status, h, "").client(t).ListAccounts(t.Context(), 1, 10)
			le := asLMSError(t, err)
			if le.RetryAfter < tc.min || le.RetryAfter > tc.max {
				t.Errorf("RetryAfter = %v, want in [%v, %v]", le.RetryAfter, tc.min, tc.max)
			}
			if !le.Temporary() {
				t.Errorf("%d is not temporary", tc.status)
			}
		})
	}
}

func TestAuthHeaders(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		opt  scim.Option
		want string
	}{
		"Bearer": {scim.WithBearerToken("tok"), "Bearer tok"},
		"Basic":  {scim.WithBasicAuth("user", "p:ss"), "Basic dXNlcjpwOnNz"},
		"None":   {scim.WithUserAgent("x"), ""},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := newStatusServer(t, 204, nil, "")
			c := s.client(t, tc.opt, scim.WithUserAgent("hrsync-test/1"))
			if err := c.DeleteAccount(t.Context(), "1"); err != nil {
				t.Fatal(err)
			}
			r := s.requests()[0]
			if got := r.Header.Get("Authorization"); got != tc.want {
				t.Errorf("Authorization = %q, want %q", got, tc.want)
			}
			if got := r.Header.Get("User-Agent"); got != "hrsync-test/1" {
				t.Errorf("User-Agent = %q", got)
			}
		})
	}
}

func TestWrongToken(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for name, opt := range map[string]scim.Option{
		"Wrong": scim.WithBearerToken("wrong"),
		"Basic": scim.WithBasicAuth("user", token),
		"None":  scim.WithUserAgent("anonymous"),
	} {
		c, err := scim.New(b.srv.URL+sandbox.BasePath, opt, scim.WithHTTPClient(b.srv.Client()))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.CreateAccount(t.Context(), connector.Account{UserName: "x"})
		le := asLMSError(t, err)
		if le.Kind != connector.KindAuth || le.Status != 401 || connector.IsTemporary(err) {
			t.Errorf("%s: %v, want a permanent auth error", name, err)
		}
	}
	if n := b.lms.Count(); n != 0 {
		t.Errorf("%d accounts created without a valid token", n)
	}
}

func TestNetworkErrors(t *testing.T) {
	t.Parallel()
	t.Run("ConnectionRefused", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		c, err := scim.New(url + "/scim/v2")
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.GetAccount(t.Context(), "1")
		if le := asLMSError(t, err); le.Kind != connector.KindUnavailable || !connector.IsTemporary(err) {
			t.Errorf("%v, want a temporary unavailable error", err)
		}
	})
	t.Run("Timeout", func(t *testing.T) {
		t.Parallel()
		// The server answers only once the client has given up.
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
		t.Cleanup(srv.Close)
		c, err := scim.New(srv.URL+"/scim/v2", scim.WithHTTPClient(srv.Client()), scim.WithTimeout(50*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.FindAccounts(t.Context(), connector.AccountFilter{Attr: connector.ByUserName, Value: "x"})
		le := asLMSError(t, err)
		if le.Kind != connector.KindUnavailable || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%v, want unavailable wrapping a deadline", err)
		}
	})
	t.Run("UndecodableBody", func(t *testing.T) {
		t.Parallel()
		_, err := newStatusServer(t, 200, nil, "{not json").client(t).GetAccount(t.Context(), "1")
		if le := asLMSError(t, err); le.Kind != connector.KindUnavailable {
			t.Errorf("%v, want unavailable", err)
		}
	})
}

func TestNewValidatesURL(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"", "127.0.0.1:8081", "ftp://x/scim", "http://", "http://x/scim?x=1", "://bad"} {
		if _, err := scim.New(u); err == nil {
			t.Errorf("New(%q): no error", u)
		}
	}
}

func TestFilterEscaping(t *testing.T) {
	t.Parallel()
	s := newStatusServer(t, 200, nil, `{"schemas":["`+scim.MessageListResponse+`"],"totalResults":0,"startIndex":1,"itemsPerPage":0,"Resources":[]}`)
	c := s.client(t)
	for _, tc := range []struct {
		f    connector.AccountFilter
		want string
	}{
		{connector.AccountFilter{Attr: connector.ByUserName, Value: `a"b\c`}, `userName eq "a\"b\\c"`},
		{connector.AccountFilter{Attr: connector.ByExternalID, Value: `hr:w 1&x=2`}, `externalId eq "hr:w 1&x=2"`},
		{connector.AccountFilter{Attr: connector.ByEmail, Value: `A@x.com`}, `emails.value eq "A@x.com"`},
		{connector.AccountFilter{Attr: connector.ByEmployeeNumber, Value: `7`}, `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "7"`},
	} {
		got, err := scim.Filter(tc.f)
		if err != nil || got != tc.want {
			t.Errorf("Filter(%+v) = %q, %v; want %q", tc.f, got, err, tc.want)
		}
		back, err := scim.ParseFilter(got)
		if err != nil || back != tc.f {
			t.Errorf("ParseFilter(%q) = %+v, %v; want %+v", got, back, err, tc.f)
		}
		before := len(s.requests())
		if _, err := c.FindAccounts(t.Context(), tc.f); err != nil {
			t.Fatal(err)
		}
		// The canonical form goes first; others follow only on a miss.
		var first string
		for _, r := range s.requests()[before:] {
			if r.URL.Path == "/scim/v2/Users" {
				first = r.URL.Query().Get("filter")
				break
			}
		}
		if first != tc.want {
			t.Errorf("filter sent first %q, want %q", first, tc.want)
		}
	}
	if _, err := c.FindAccounts(t.Context(), connector.AccountFilter{Attr: "title", Value: "x"}); asLMSError(t, err).Kind != connector.KindInvalid {
		t.Errorf("FindAccounts(title): %v, want invalid", err)
	}
}

func TestParseFilter(t *testing.T) {
	t.Parallel()
	ok := map[string]connector.AccountFilter{
		`userName eq "Ada"`:                 {Attr: connector.ByUserName, Value: "Ada"},
		`  USERNAME   EQ   "Ada"  `:         {Attr: connector.ByUserName, Value: "Ada"},
		`emails[value eq "a@x"]`:            {Attr: connector.ByEmail, Value: "a@x"},
		`Emails[ Value EQ "a@x" ]`:          {Attr: connector.ByEmail, Value: "a@x"},
		`emails eq "a@x"`:                   {Attr: connector.ByEmail, Value: "a@x"},
		`employeeNumber eq "7"`:             {Attr: connector.ByEmployeeNumber, Value: "7"},
		`externalid eq "hr:\u0031"`:         {Attr: connector.ByExternalID, Value: "hr:1"},
		scim.SchemaUser + `:userName eq ""`: {Attr: connector.ByUserName, Value: ""},
		`urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:EMPLOYEENUMBER eq "7"`: {Attr: connector.ByEmployeeNumber, Value: "7"},
	}
	for in, want := range ok {
		if got, err := scim.ParseFilter(in); err != nil || got != want {
			t.Errorf("ParseFilter(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{
		``, `userName`, `userName eq`, `userName eq Ada`, `userName co "Ada"`, `userName eq "Ada" and active eq true`,
		`title eq "x"`, `userName eq "unterminated`, `emails[type eq "work"]`, `name[value eq "x"]`, `(userName eq "x")`,
		`emails[value eq "x"`, `active eq true`,
	} {
		if got, err := scim.ParseFilter(in); err == nil {
			t.Errorf("ParseFilter(%q) = %+v, want an error", in, got)
		}
	}
}

// TestFindAccountsPaging: FindAccounts reads every page.
func TestFindAccountsPaging(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const n = 250
	for i := range n {
		if _, err := b.lms.CreateAccount(t.Context(), connector.Account{
			UserName: fmt.Sprintf("u%03d", i), Profile: connector.Profile{EmployeeNumber: "shared"},
		}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := b.client.FindAccounts(t.Context(), connector.AccountFilter{Attr: connector.ByEmployeeNumber, Value: "shared"})
	if err != nil || len(got) != n {
		t.Fatalf("FindAccounts: %d accounts, %v; want %d", len(got), err, n)
	}
	for i, a := range got {
		if want := fmt.Sprintf("u%03d", i); a.UserName != want {
			t.Fatalf("account %d is %q, want %q", i, a.UserName, want)
		}
	}
}

// TestFindAccountsDistrustsServer: a server that ignores the filter and repeats
// its pages cannot make FindAccounts return the wrong accounts or loop.
func TestFindAccountsDistrustsServer(t *testing.T) {
	t.Parallel()
	lr := scim.ListResponse{
		Schemas: []string{scim.MessageListResponse}, TotalResults: 1000, StartIndex: 1, ItemsPerPage: 2,
		Resources: []scim.User{
			scim.FromAccount(connector.Account{ID: "1", UserName: "ada@x.com"}),
			scim.FromAccount(connector.Account{ID: "2", UserName: "bob@x.com"}),
		},
	}
	body, _ := json.Marshal(lr)
	s := newStatusServer(t, 200, nil, string(body))
	got, err := s.client(t).FindAccounts(t.Context(), connector.AccountFilter{Attr: connector.ByUserName, Value: "ADA@x.com"})
	if err != nil || len(got) != 1 || got[0].ID != "1" {
		t.Errorf("FindAccounts = %+v, %v; want only account 1", got, err)
	}
	n := 0
	for _, r := range s.requests() {
		if r.URL.Path == "/scim/v2/Users" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d requests to /Users, want 2 (the second page repeats the first)", n)
	}
}

// TestSetActiveNoContent: a server may answer PATCH with 204; the client reads
// the account back.
func TestSetActiveNoContent(t *testing.T) {
	t.Parallel()
	lms := sandbox.New()
	a, err := lms.CreateAccount(t.Context(), connector.Account{UserName: "ada"})
	if err != nil {
		t.Fatal(err)
	}
	inner := lms.Handler("")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPatch {
			inner.ServeHTTP(httptest.NewRecorder(), r)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c, err := scim.New(srv.URL+sandbox.BasePath, scim.WithHTTPClient(srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.SetActive(t.Context(), a.ID, false)
	if err != nil || got.Active || got.ID != a.ID || got.UserName != "ada" {
		t.Errorf("SetActive = %+v, %v", got, err)
	}
}

// TestWireRequests pins what the client sends: PATCH of active; an update as one
// PATCH with If-Match, or (without PATCH) a PUT without active and with
// If-Match; POST with the SCIM media type.
func TestWireRequests(t *testing.T) {
	t.Parallel()
	var (
		mu     sync.Mutex
		bodies = map[string][]string{}
		ifm    = map[string][]string{}
	)
	b := setup(t)
	spy := func(inner http.Handler) *scim.Client {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			mu.Lock()
			bodies[r.Method] = append(bodies[r.Method], string(body))
			ifm[r.Method] = append(ifm[r.Method], r.Header.Get("If-Match"))
			if r.Method != http.MethodGet && r.Method != http.MethodDelete && r.Header.Get("Content-Type") != scim.MediaType {
				t.Errorf("%s Content-Type %q", r.Method, r.Header.Get("Content-Type"))
			}
			mu.Unlock()
			r.Body = io.NopCloser(strings.NewReader(string(body)))
			inner.ServeHTTP(w, r)
		}))
		t.Cleanup(srv.Close)
		c, err := scim.New(srv.URL+sandbox.BasePath, scim.WithBearerToken(token), scim.WithHTTPClient(srv.Client()))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := spy(b.lms.Handler(token))
	a, err := c.CreateAccount(t.Context(), connector.Account{UserName: "ada", Active: true, Profile: connector.Profile{Email: "ada@x.com", EmployeeNumber: "7"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetActive(t.Context(), a.ID, false); err != nil {
		t.Fatal(err)
	}
	a.Version = `W/"2"`
	if _, err := c.UpdateAccount(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	// The same update without PATCH: GET and PUT.
	a.Version = `W/"3"`
	if _, err := spy(b.lms.HandlerWith(token, sandbox.Quirks{NoPatch: true})).UpdateAccount(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bodies["PATCH"]) != 2 || len(bodies["PUT"]) != 1 {
		t.Fatalf("%d PATCH and %d PUT requests, want 2 and 1", len(bodies["PATCH"]), len(bodies["PUT"]))
	}
	var patch scim.PatchOp
	if err := json.Unmarshal([]byte(bodies["PATCH"][0]), &patch); err != nil {
		t.Fatal(err)
	}
	if len(patch.Schemas) != 1 || patch.Schemas[0] != scim.MessagePatchOp || len(patch.Operations) != 1 ||
		patch.Operations[0].Op != "replace" || patch.Operations[0].Path != "active" || string(patch.Operations[0].Value) != "false" {
		t.Errorf("PATCH body %s", bodies["PATCH"][0])
	}
	if ifm["PATCH"][0] != "" {
		t.Errorf("SetActive's PATCH If-Match %q, want none", ifm["PATCH"][0])
	}
	// The update's PATCH: each managed attribute replaced, or removed where the
	// account has none; never active.
	var upd scim.PatchOp
	if err := json.Unmarshal([]byte(bodies["PATCH"][1]), &upd); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, op := range upd.Operations {
		if op.Path == "active" {
			t.Errorf("update PATCH touches active: %s", bodies["PATCH"][1])
		}
		got[op.Op+" "+op.Path] += string(op.Value)
	}
	const ent = scim.SchemaEnterpriseUser + ":"
	for k, v := range map[string]string{
		"replace userName": `"ada"`, "remove externalId": "", "remove title": "", "remove name": "",
		"replace emails":                    `[{"value":"ada@x.com","type":"work","primary":true}]`,
		"replace " + ent + "employeeNumber": `"7"`, "remove " + ent + "department": "", "remove " + ent + "manager": "",
	} {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("update PATCH: %s %q (present %v), want %q: %s", k, g, ok, v, bodies["PATCH"][1])
		}
	}
	if ifm["PATCH"][1] != `W/"2"` {
		t.Errorf("update PATCH If-Match %q", ifm["PATCH"][1])
	}
	var put map[string]any
	if err := json.Unmarshal([]byte(bodies["PUT"][0]), &put); err != nil {
		t.Fatal(err)
	}
	// A PUT replaces the whole user, so it carries active as the server has it
	// (false since the PATCH), never the caller's Account.Active.
	if active, has := put["active"]; !has || active != false {
		t.Errorf("PUT body active %v, want false as read: %s", active, bodies["PUT"][0])
	}
	if ifm["PUT"][0] != `W/"3"` {
		t.Errorf("PUT If-Match %q", ifm["PUT"][0])
	}
	for _, want := range []string{scim.SchemaUser, scim.SchemaEnterpriseUser, `"employeeNumber":"7"`, `"primary":true`} {
		if !strings.Contains(bodies["POST"][0], want) {
			t.Errorf("POST body lacks %s: %s", want, bodies["POST"][0])
		}
	}
}

// TestOrganizationRoundTrip: the account's organisation travels as the enterprise
// extension's organization, and survives a profile update.
func TestOrganizationRoundTrip(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	a, err := b.client.CreateAccount(ctx, connector.Account{UserName: "org@example.com", ExternalID: "partner-acme:o1", Active: true,
		Organization: "Acme GmbH", Profile: connector.Profile{Email: "org@example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	a.Profile.JobTitle = "Chef"
	if _, err := b.client.UpdateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	got, err := b.client.GetAccount(ctx, a.ID)
	if err != nil || got.Organization != "Acme GmbH" || got.Profile.JobTitle != "Chef" {
		t.Fatalf("GetAccount = %+v, %v", got, err)
	}
}
