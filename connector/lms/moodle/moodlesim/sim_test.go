package moodlesim

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
)

// TestUsersTheSimulatorNeverDescribed: an account put into the sandbox
// directly (a user the site had before hrsync) is answered for by its id from
// the first call, as a site answers for every user it has, not only once a
// listing has described it.
func TestUsersTheSimulatorNeverDescribed(t *testing.T) {
	t.Parallel()
	sb := sandbox.New(SandboxOptions()...)
	a, err := sb.CreateAccount(t.Context(), connector.Account{ExternalID: "legacy:1", UserName: "kim@old.example", Active: true,
		Profile: connector.Profile{Email: "kim@old.example", GivenName: "Kim", FamilyName: "Lang"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := sb.CompleteCourse(a.ID, "safety-101", time.Date(2022, 2, 2, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	sim := New(sb, Config{})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	call := func(fn string, params url.Values) string {
		t.Helper()
		params.Set("wstoken", "t")
		params.Set("wsfunction", fn)
		params.Set("moodlewsrestformat", "json")
		resp, err := http.PostForm(srv.URL+EndpointPath, params)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return string(body)
	}
	var users []struct {
		ID       int64  `json:"id"`
		Username string `json:"username"`
	}
	body := call("core_user_get_users_by_field", url.Values{"field": {"id"}, "values[0]": {a.ID}})
	if err := json.Unmarshal([]byte(body), &users); err != nil || len(users) != 1 || users[0].Username != "kim@old.example" {
		t.Fatalf("core_user_get_users_by_field id %s = %s (%v), want kim@old.example", a.ID, body, err)
	}
	var courses []struct {
		ShortName string `json:"shortname"`
		Completed bool   `json:"completed"`
	}
	body = call("core_enrol_get_users_courses", url.Values{"userid": {a.ID}})
	if err := json.Unmarshal([]byte(body), &courses); err != nil || len(courses) != 1 || !courses[0].Completed {
		t.Fatalf("core_enrol_get_users_courses %s = %s (%v), want safety-101 completed", a.ID, body, err)
	}
	if got := sim.SandboxID(users[0].ID); got != a.ID {
		t.Errorf("SandboxID(%d) = %q, want %q", users[0].ID, got, a.ID)
	}
	// An id no account has is still nobody's.
	if body := call("core_user_get_users_by_field", url.Values{"field": {"id"}, "values[0]": {"999"}}); body != "[]" {
		t.Errorf("core_user_get_users_by_field id 999 = %s, want []", body)
	}
}
