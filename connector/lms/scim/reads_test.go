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

// TestFindAccountsInOneQuery: a batch of lookups is one OR'ed query. Before the
// filter form has found an account on this server, only the values it found are
// vouched for; after, a miss is a miss, as FindAccounts takes it.
func TestFindAccountsInOneQuery(t *testing.T) {
	t.Parallel()
	b := setupQuirks(t, sandbox.Quirks{})
	as := people(t, b.lms, 3)
	if n := b.client.MaxReadBatch(t.Context()); n != 50 {
		t.Errorf("MaxReadBatch = %d, want 50", n)
	}
	values := []string{as[0].ExternalID, "hr:nobody", as[2].ExternalID, as[0].ExternalID}
	got, err := b.client.FindAccountsIn(t.Context(), connector.ByExternalID, values)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got["hr:nobody"]; ok || len(got) != 2 || len(got[as[0].ExternalID]) != 1 || got[as[2].ExternalID][0].ID != as[2].ID {
		t.Errorf("first FindAccountsIn: %+v; want the two found and the miss not vouched for", got)
	}
	got, err = b.client.FindAccountsIn(t.Context(), connector.ByExternalID, values)
	if miss, ok := got["hr:nobody"]; err != nil || !ok || len(miss) != 0 || len(got) != 2+1 {
		t.Errorf("second FindAccountsIn: %+v, %v; want the miss vouched for", got, err)
	}
	if lists := b.count("GET", "/Users") - b.count("GET", "/Users/"); lists != 2 {
		t.Errorf("%d queries for two batches, want 2", lists)
	}
	// Email compares case-insensitively, as FindAccounts does; a quoted value is
	// left to FindAccounts.
	got, err = b.client.FindAccountsIn(t.Context(), connector.ByEmail, []string{strings.ToUpper(as[1].Profile.Email), `a"b@example.com`})
	if err != nil || len(got) != 1 || got[strings.ToUpper(as[1].Profile.Email)][0].ID != as[1].ID {
		t.Errorf("FindAccountsIn by email: %+v, %v", got, err)
	}
	ids, err := b.client.GetAccounts(t.Context(), []string{as[1].ID, "u-999999"})
	if _, gone := ids["u-999999"]; err != nil || len(ids) != 1 || ids[as[1].ID].ExternalID != as[1].ExternalID || gone {
		t.Errorf("GetAccounts: %+v, %v", ids, err)
	}
}

// TestFindAccountsInNotEvaluated: a server that ignores the filter, or rejects
// an OR'ed one, is not trusted with it: nothing is vouched for and MaxReadBatch
// is 0, so callers look up one by one. A client-side-filtered attribute is never
// batched.
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
			c := mustNew(t, srv.URL+sandbox.BasePath, scim.WithBearerToken(token))
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
