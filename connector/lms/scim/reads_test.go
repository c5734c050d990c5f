package scim_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/connector/lms/scim"
)

// TestFindAccountsInOneQuery: a batch of lookups is one OR'ed query per filter
// form that FindAccounts would try: a miss is vouched for once every such form
// missed it (externalId has one form; email two, until one has found accounts on
// this server, then only that one). The query is POST /Users/.search where the
// server has it; a server without it costs one refused .search, once, and the
// queries are GETs.
func TestFindAccountsInOneQuery(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		q       sandbox.Quirks
		batch   int // MaxReadBatch
		refused int // POST /Users/.search refused, once
		posts   int // POST /Users/.search in all
	}{
		{"Search", sandbox.Quirks{}, scim.DefaultSearchBatch, 0, 6},
		{"NoSearch", sandbox.Quirks{NoSearch: true}, 50, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setupQuirks(t, tc.q)
			as := people(t, b.lms, 3)
			queries := func() int {
				return b.count("GET", "/Users") - b.count("GET", "/Users/") + b.count("POST", "/Users/.search")
			}
			values := []string{as[0].ExternalID, "hr:nobody", as[2].ExternalID, as[0].ExternalID}
			got, err := b.client.FindAccountsIn(t.Context(), connector.ByExternalID, values)
			if miss, ok := got["hr:nobody"]; err != nil || !ok || len(miss) != 0 || len(got) != 3 ||
				len(got[as[0].ExternalID]) != 1 || got[as[2].ExternalID][0].ID != as[2].ID {
				t.Errorf("FindAccountsIn by externalId: %+v, %v; want the two found and the miss vouched for", got, err)
			}
			if n := queries(); n != 1+tc.refused {
				t.Errorf("%d queries for one batch by externalId, want %d", n, 1+tc.refused)
			}
			if n := b.client.MaxReadBatch(t.Context()); n != tc.batch {
				t.Errorf("MaxReadBatch = %d, want %d", n, tc.batch)
			}

			// Email: nothing found yet on this server, so a miss is tried in both forms.
			got, err = b.client.FindAccountsIn(t.Context(), connector.ByEmail, []string{"nobody@example.com"})
			if miss, ok := got["nobody@example.com"]; err != nil || !ok || len(miss) != 0 {
				t.Errorf("FindAccountsIn by email: %+v, %v; want the miss vouched for", got, err)
			}
			if n := queries(); n != tc.refused+1+2 {
				t.Errorf("%d queries, want %d (the email miss in both forms)", n, tc.refused+3)
			}
			// Compared case-insensitively, as FindAccounts does; a quoted value is left
			// to FindAccounts. The first form found: from now on it alone is asked.
			upper := strings.ToUpper(as[1].Profile.Email)
			got, err = b.client.FindAccountsIn(t.Context(), connector.ByEmail, []string{upper, `a"b@example.com`})
			if _, quoted := got[`a"b@example.com`]; err != nil || len(got) != 1 || got[upper][0].ID != as[1].ID || quoted {
				t.Errorf("FindAccountsIn by email: %+v, %v", got, err)
			}
			got, err = b.client.FindAccountsIn(t.Context(), connector.ByEmail, []string{"nobody@example.com"})
			if miss, ok := got["nobody@example.com"]; err != nil || !ok || len(miss) != 0 {
				t.Errorf("FindAccountsIn by email: %+v, %v; want the miss vouched for", got, err)
			}
			if n := queries(); n != tc.refused+3+1+1 {
				t.Errorf("%d queries, want %d (one each once a form has found)", n, tc.refused+5)
			}

			ids, err := b.client.GetAccounts(t.Context(), []string{as[1].ID, "u-999999"})
			if _, gone := ids["u-999999"]; err != nil || len(ids) != 1 || ids[as[1].ID].ExternalID != as[1].ExternalID || gone {
				t.Errorf("GetAccounts: %+v, %v", ids, err)
			}
			if n := b.count("POST", "/Users/.search"); n != tc.posts {
				t.Errorf("%d POST /Users/.search, want %d", n, tc.posts)
			}
		})
	}
}

// TestFindAccountsInNotEvaluated: a server that ignores the filter, or rejects
// an OR'ed one, is not trusted with it: nothing is vouched for and MaxReadBatch
// is 0, so callers look up one by one. A client-side-filtered attribute is never
// batched. The server mangles GET queries and has no .search here
// (WithSearchBatch(0)); TestSearchNotEvaluated does the same over .search.
func TestFindAccountsInNotEvaluated(t *testing.T) {
	t.Parallel()
	for name, mangle := range map[string]func(w http.ResponseWriter, r *http.Request) bool{
		"Ignored": func(_ http.ResponseWriter, r *http.Request) bool {
			q := r.URL.Query()
			q.Del("filter")
			r.URL.RawQuery = q.Encode()
			return false
		},
		"Rejected": func(w http.ResponseWriter, r *http.Request) bool {
			if strings.Contains(r.URL.Query().Get("filter"), " or ") {
				http.Error(w, `{"status":"400","scimType":"invalidFilter"}`, http.StatusBadRequest)
				return true
			}
			return false
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			l := sandbox.New()
			inner := l.Handler(token)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/Users") && mangle(w, r) {
					return
				}
				inner.ServeHTTP(w, r)
			}))
			t.Cleanup(srv.Close)
			c := mustNew(t, srv.URL+sandbox.BasePath, scim.WithBearerToken(token), scim.WithSearchBatch(0))
			as := people(t, l, 4)
			got, err := c.FindAccountsIn(t.Context(), connector.ByExternalID, []string{as[1].ExternalID, as[3].ExternalID})
			if err != nil || len(got) != 0 {
				t.Errorf("FindAccountsIn: %+v, %v; want nothing vouched for", got, err)
			}
			if n := c.MaxReadBatch(t.Context()); n != 0 {
				t.Errorf("MaxReadBatch = %d, want 0", n)
			}
		})
	}
	t.Run("ClientSideFilter", func(t *testing.T) {
		t.Parallel()
		b := setupQuirks(t, sandbox.Quirks{})
		c := mustNew(t, b.srv.URL+sandbox.BasePath, scim.WithBearerToken(token), scim.WithClientSideFilter(connector.ByEmployeeNumber))
		before := b.count("GET", "/Users")
		got, err := c.FindAccountsIn(t.Context(), connector.ByEmployeeNumber, []string{"E1", "E2"})
		if err != nil || len(got) != 0 || b.count("GET", "/Users") != before {
			t.Errorf("FindAccountsIn on a client-side attribute: %+v, %v; want no query and nothing vouched for", got, err)
		}
	})
}

// people creates n accounts with an externalId, an email and an employee number.
func people(t *testing.T, l *sandbox.LMS, n int) []connector.Account {
	t.Helper()
	var out []connector.Account
	for i := range n {
		email := fmt.Sprintf("p%d@example.com", i)
		a, err := l.CreateAccount(t.Context(), connector.Account{ExternalID: fmt.Sprintf("hr:p%d", i), UserName: email, Active: true,
			Profile: connector.Profile{Email: email, EmployeeNumber: fmt.Sprintf("E%d", i)}})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}
