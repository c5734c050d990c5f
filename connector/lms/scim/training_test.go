package scim_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/connector/lms/scim"
)

// TestTrainingSurvivesRehire is the point of the product: a leaver is
// deactivated, not deleted, so that when they are rehired and reactivated their
// completed training is still there. Driven through the SCIM client; training is
// seeded and read over the side endpoint and read in the extension schema.
func TestTrainingSurvivesRehire(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	a, err := b.client.CreateAccount(ctx, connector.Account{
		ExternalID: "hr:42", UserName: "ada@example.com", Active: true,
		Profile: connector.Profile{Email: "ada@example.com", GivenName: "Ada", EmployeeNumber: "42"},
	})
	if err != nil {
		t.Fatal(err)
	}

	enrolled := time.Date(2026, 1, 10, 8, 0, 0, 0, time.UTC)
	completed := time.Date(2026, 2, 1, 16, 30, 0, 0, time.UTC)
	login := time.Date(2026, 2, 2, 9, 0, 0, 0, time.UTC)
	seed := `{"enrollments":[{"course":"safety-101","enrolled_at":"2026-01-10T08:00:00Z"}],
		"completions":[{"course":"safety-101","completed_at":"2026-02-01T16:30:00Z"}],
		"last_login":"2026-02-02T09:00:00Z"}`
	trainingURL := b.srv.URL + strings.Replace(sandbox.TrainingPath, "{id}", a.ID, 1)
	var seeded sandbox.Training
	b.httpJSON(t, http.MethodPost, trainingURL, seed, http.StatusOK, &seeded)

	// Leave, then rehire with a new title and email.
	if _, err := b.client.SetActive(ctx, a.ID, false); err != nil {
		t.Fatal(err)
	}
	cur, err := b.client.GetAccount(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	cur.Profile.JobTitle, cur.Profile.Email, cur.UserName = "Lead", "ada.l@example.com", "ada.l@example.com"
	if _, err := b.client.UpdateAccount(ctx, cur); err != nil {
		t.Fatal(err)
	}
	back, err := b.client.SetActive(ctx, a.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	if back.ID != a.ID || !back.Active || back.Profile.JobTitle != "Lead" {
		t.Fatalf("after rehire: %+v", back)
	}

	// The extension schema, through the client.
	u, err := b.client.GetUser(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	tr := u.Training
	if tr == nil || tr.LastLogin == nil || !tr.LastLogin.Equal(login) ||
		len(tr.Enrollments) != 1 || tr.Enrollments[0] != (scim.TrainingEnrollment{Course: "safety-101", EnrolledAt: enrolled}) ||
		len(tr.Completions) != 1 || tr.Completions[0] != (scim.TrainingCompletion{Course: "safety-101", CompletedAt: completed}) {
		t.Errorf("training extension after rehire: %+v", tr)
	}
	if !slices.Contains(u.Schemas, scim.SchemaTrainingUser) {
		t.Errorf("schemas %q lack the training extension", u.Schemas)
	}

	// The side endpoint.
	var got sandbox.Training
	b.httpJSON(t, http.MethodGet, trainingURL, "", http.StatusOK, &got)
	if got.LastLogin == nil || !got.LastLogin.Equal(login) || len(got.Enrollments) != 1 || len(got.Completions) != 1 ||
		got.Completions[0].Course != "safety-101" || !got.Completions[0].CompletedAt.Equal(completed) {
		t.Errorf("side endpoint after rehire: %+v", got)
	}

	// A client write never carries training, and cannot erase it.
	if _, err := b.client.UpdateAccount(ctx, back); err != nil {
		t.Fatal(err)
	}
	if tr, _ := b.lms.Training(a.ID); len(tr.Completions) != 1 {
		t.Errorf("UpdateAccount erased training: %+v", tr)
	}
}

// httpJSON sends body with the bearer token and decodes the answer into out.
func (b *testBundle) httpJSON(t *testing.T, method, url, body string, wantStatus int, out any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != wantStatus {
		t.Fatalf("%s %s: status %d, want %d", method, url, resp.StatusCode, wantStatus)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
}

// TestCompletionsOf: the rehire report's batch read is one id query (POST
// /Users/.search, or GET chunks of 50 without it) whose users' training
// extension gives the completions; an id that is gone is left out.
func TestCompletionsOf(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		q           sandbox.Quirks
		search, get int
	}{
		{"Search", sandbox.Quirks{}, 1, 0},
		{"NoSearch", sandbox.Quirks{NoSearch: true}, 1, 3}, // the refused .search, once
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setupQuirks(t, tc.q)
			ctx := t.Context()
			as := people(t, b.lms, 120)
			done := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
			if err := b.lms.CompleteCourse(as[7].ID, "safety-101", done); err != nil {
				t.Fatal(err)
			}
			if n := b.client.MaxTrainingBatch(ctx); n <= 0 {
				t.Fatalf("MaxTrainingBatch = %d", n)
			}
			var ids []string
			for _, a := range as {
				ids = append(ids, a.ID)
			}
			got, err := b.client.CompletionsOf(ctx, append(ids, "u-999999"))
			if err != nil || len(got) != 120 || len(got[as[0].ID]) != 0 {
				t.Fatalf("CompletionsOf: %d ids, %v; want 120, no completions for most", len(got), err)
			}
			if c := got[as[7].ID]; len(c) != 1 || c[0].Course != "safety-101" || !c[0].CompletedAt.Equal(done) {
				t.Errorf("CompletionsOf[%s] = %+v, want safety-101", as[7].ID, c)
			}
			if _, gone := got["u-999999"]; gone {
				t.Errorf("CompletionsOf answered for an id that does not exist")
			}
			// One query (and the GET of the id it did not return, so that only a
			// 404 makes it gone).
			gets := b.count("GET", "/Users") - b.count("GET", "/Users/")
			if s, one := b.count("POST", "/Users/.search"), b.count("GET", "/Users/"); s != tc.search || gets != tc.get || one != 1 {
				t.Errorf("%d POST /Users/.search, %d filtered GETs, %d GETs of one user; want %d, %d and 1", s, gets, one, tc.search, tc.get)
			}
		})
	}
}
