package scim_test

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
)

// TestCompletions reads an account's completions through the SCIM client's
// training extension: the connector.TrainingReader capability.
func TestCompletions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	a, err := b.client.CreateAccount(ctx, connector.Account{ExternalID: "hr:43", UserName: "bo@example.com", Active: true,
		Profile: connector.Profile{Email: "bo@example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.client.Completions(ctx, a.ID)
	if err != nil || len(got) != 0 {
		t.Fatalf("Completions of a new account = %v, %v", got, err)
	}
	seed := `{"enrollments":[],"completions":[{"course":"safety-101","completed_at":"2025-02-01T16:30:00Z"}]}`
	trainingURL := b.srv.URL + strings.Replace(sandbox.TrainingPath, "{id}", a.ID, 1)
	var seeded sandbox.Training
	b.httpJSON(t, http.MethodPost, trainingURL, seed, http.StatusOK, &seeded)
	got, err = b.client.Completions(ctx, a.ID)
	want := []connector.CompletionRecord{{Course: "safety-101", CompletedAt: time.Date(2025, 2, 1, 16, 30, 0, 0, time.UTC)}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Completions = %v, %v; want %v", got, err, want)
	}
}
