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

// TestCompletionsFromBatchRead: right after GetAccounts read a user, its
// training answers Completions once without another request; a second question,
// one asked later than the memo's 30 s, and one after the training was deleted
// read the user again.
func TestCompletionsFromBatchRead(t *testing.T) {
	t.Parallel()
	b := setupQuirks(t, sandbox.Quirks{})
	ctx := t.Context()
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	scim.SetNow(b.client, func() time.Time { return now })
	as := people(t, b.lms, 4)
	for _, a := range as[:3] {
		if _, err := b.lms.SetActive(ctx, a.ID, false); err != nil { // leavers, about to be rehired
			t.Fatal(err)
		}
	}
	done := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	if err := b.lms.CompleteCourse(as[0].ID, "safety-101", done); err != nil {
		t.Fatal(err)
	}
	gets := func() int { return b.count("GET", "/Users/") }
	if _, err := b.client.GetAccounts(ctx, []string{as[0].ID, as[1].ID, as[2].ID}); err != nil {
		t.Fatal(err)
	}
	// A completion recorded after the read is seen by the reads that follow the
	// memo's one answer.
	if err := b.lms.CompleteCourse(as[0].ID, "forklift", done); err != nil {
		t.Fatal(err)
	}
	before := gets()
	comps, err := b.client.Completions(ctx, as[0].ID)
	if err != nil || len(comps) != 1 || comps[0].Course != "safety-101" || !comps[0].CompletedAt.Equal(done) || gets() != before {
		t.Errorf("Completions after GetAccounts: %+v, %v, %d GETs; want safety-101 from the batch read, no GET", comps, err, gets()-before)
	}
	comps, err = b.client.Completions(ctx, as[0].ID)
	if err != nil || len(comps) != 2 || gets() != before+1 {
		t.Errorf("Completions asked again: %+v, %v, %d GETs; want both courses, read", comps, err, gets()-before)
	}
	now = now.Add(31 * time.Second)
	if _, err := b.client.Completions(ctx, as[1].ID); err != nil || gets() != before+2 {
		t.Errorf("Completions 31 s after the batch read: %v, %d GETs; want a read", err, gets()-before)
	}
	// The training deleted through the client is not answered from the memo.
	if _, err := b.client.GetAccounts(ctx, []string{as[0].ID}); err != nil {
		t.Fatal(err)
	}
	if err := b.client.DeleteTraining(ctx, as[0].ID); err != nil {
		t.Fatal(err)
	}
	if comps, err := b.client.Completions(ctx, as[0].ID); err != nil || len(comps) != 0 {
		t.Errorf("Completions after DeleteTraining: %+v, %v; want none", comps, err)
	}
	// ActivityOf (clean-up) keeps nothing; nor does GetAccounts of an active
	// account (a leaver's or an update's: no report follows).
	if _, err := b.client.ActivityOf(ctx, []string{as[2].ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.client.GetAccounts(ctx, []string{as[3].ID}); err != nil {
		t.Fatal(err)
	}
	before = gets()
	if _, err := b.client.Completions(ctx, as[2].ID); err != nil || gets() != before+1 {
		t.Errorf("Completions after ActivityOf: %v, %d GETs; want a read", err, gets()-before)
	}
	if _, err := b.client.Completions(ctx, as[3].ID); err != nil || gets() != before+2 {
		t.Errorf("Completions of an active account after GetAccounts: %v, %d GETs; want a read", err, gets()-before)
	}
}
