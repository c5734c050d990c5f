package docebosim_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/docebo/docebosim"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
)

// do sends one request and returns the status and the decoded body.
func do(t *testing.T, srv *httptest.Server, method, path, token, body string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("%s %s: not JSON: %v", method, path, err)
	}
	return resp.StatusCode, m
}

func token(t *testing.T, srv *httptest.Server, id, secret string) (int, string) {
	t.Helper()
	resp, err := srv.Client().PostForm(srv.URL+"/oauth2/token", url.Values{"grant_type": {"client_credentials"},
		"client_id": {id}, "client_secret": {secret}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m.AccessToken
}

// TestWire checks the simulator's answers as Docebo documents them: the token
// endpoint, the envelopes, the page size cap, change_status's lists.
func TestWire(t *testing.T) {
	t.Parallel()
	sb := sandbox.New(docebosim.SandboxOptions()...)
	srv := httptest.NewServer(docebosim.New(sb, docebosim.Config{ClientSecret: "s"}))
	t.Cleanup(srv.Close)
	for _, name := range []string{"bob", "alice", "carol"} {
		if _, err := sb.CreateAccount(context.Background(), connector.Account{UserName: name, Active: true,
			Profile: connector.Profile{GivenName: strings.ToUpper(name[:1]) + name[1:]}}); err != nil {
			t.Fatal(err)
		}
	}
	if st, _ := token(t, srv, docebosim.DefaultClientID, "wrong"); st != http.StatusUnauthorized {
		t.Errorf("token with a wrong secret: %d, want 401", st)
	}
	st, tok := token(t, srv, docebosim.DefaultClientID, "s")
	if st != http.StatusOK || tok == "" {
		t.Fatalf("token: %d %q", st, tok)
	}
	if st, m := do(t, srv, "GET", "/manage/v1/user", "", ""); st != http.StatusUnauthorized || m["status"] != float64(401) {
		t.Errorf("no token: %d %v", st, m)
	}
	st, m := do(t, srv, "GET", "/manage/v1/user?page_size=2&get_total_count=1", tok, "")
	data, _ := m["data"].(map[string]any)
	items, _ := data["items"].([]any)
	if st != http.StatusOK || len(items) != 2 || data["has_more_data"] != true || data["total_count"] != float64(3) ||
		data["current_page"] != float64(1) {
		t.Fatalf("list: %d %v", st, m)
	}
	// Docebo's default order is first_name, descending.
	if first := items[0].(map[string]any); first["first_name"] != "Carol" || first["status"] != "1" {
		t.Errorf("first item %v, want Carol, active", first)
	}
	if st, _ := do(t, srv, "GET", "/manage/v1/user?page_size=201", tok, ""); st != http.StatusBadRequest {
		t.Errorf("page_size 201: %d, want 400", st)
	}
	st, m = do(t, srv, "PUT", "/manage/v1/user/change_status", tok, `{"user_ids": ["1", 2, "99"], "status": 0}`)
	data, _ = m["data"].(map[string]any)
	if st != http.StatusOK || len(data["updated_ids"].([]any)) != 2 || len(data["not_updated_ids"].([]any)) != 1 {
		t.Errorf("change_status: %d %v", st, m)
	}
	if a, _ := sb.GetAccount(context.Background(), "2"); a.Active {
		t.Error("user 2 is still active")
	}
	if st, m := do(t, srv, "POST", "/manage/v1/user", tok, `{"userid": "ALICE", "password": "x"}`); st != http.StatusBadRequest ||
		!strings.Contains(m["message"].(string), "already exists") {
		t.Errorf("create a taken username: %d %v", st, m)
	}
	if st, _ := do(t, srv, "GET", "/manage/v1/user/99", tok, ""); st != http.StatusNotFound {
		t.Errorf("view a missing user: %d, want 404", st)
	}
}
