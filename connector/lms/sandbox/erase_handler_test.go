package sandbox_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/connector/lms/scim"
)

// TestHandlerPatchRemovesTraining: a PATCH that removes the training extension
// as a whole deletes the account's learning records and keeps the account; it
// is conditional like any PATCH, and every other write to the extension is
// refused as read-only.
func TestHandlerPatchRemovesTraining(t *testing.T) {
	t.Parallel()
	b := setupHTTP(t)
	ada := b.createAda(t)
	path := "/scim/v2/Users/" + ada.ID
	patch := func(ops string) string {
		return `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":` + ops + `}`
	}
	at := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	if _, err := b.lms.AddTraining(ada.ID, sandbox.Training{LastLogin: &at, Uploads: 1,
		Completions: []sandbox.Completion{{Course: "c1", CompletedAt: at}}}); err != nil {
		t.Fatal(err)
	}
	remove := patch(`[{"op":"remove","path":"` + scim.SchemaTrainingUser + `"}]`)

	for _, tc := range []struct{ body, scimType string }{
		{patch(`[{"op":"replace","path":"` + scim.SchemaTrainingUser + `","value":{"completions":[]}}]`), scim.ErrMutability},
		{patch(`[{"op":"remove","path":"` + scim.SchemaTrainingUser + `:completions"}]`), scim.ErrMutability},
		{patch(`[{"op":"add","value":{"` + scim.SchemaTrainingUser + `":{"completions":[]}}}]`), scim.ErrMutability},
		// A PATCH that fails in another operation removes nothing either.
		{patch(`[{"op":"remove","path":"` + scim.SchemaTrainingUser + `"},{"op":"replace","path":"nope","value":1}]`), scim.ErrInvalidPath},
	} {
		b.do(t, "PATCH", path, tc.body).wantError(t, http.StatusBadRequest, tc.scimType)
	}
	b.do(t, "PATCH", path, remove, "If-Match", `W/"999"`).wantError(t, http.StatusPreconditionFailed, "")
	if tr, _ := b.lms.Training(ada.ID); !tr.HasActivity() {
		t.Fatalf("a refused PATCH deleted training: %+v", tr)
	}

	var u scim.User
	r := b.do(t, "PATCH", path, remove, "If-Match", ada.Meta.Version).want(t, http.StatusOK, &u)
	if tr, _ := b.lms.Training(ada.ID); tr.HasActivity() {
		t.Errorf("training after the removal: %+v", tr)
	}
	if u.Training == nil || len(u.Training.Completions) != 0 || u.Training.LastLogin != nil || u.Training.Uploads != 0 {
		t.Errorf("answer's training extension %+v, want an empty one", u.Training)
	}
	if u.UserName != ada.UserName || u.ExternalID != ada.ExternalID || *u.Active != *ada.Active || u.Name.GivenName != "Ada" {
		t.Errorf("account after the removal: %+v", u)
	}
	if r.header.Get("ETag") == ada.Meta.Version {
		t.Errorf("the removal did not move the version on (%s)", ada.Meta.Version)
	}
	for _, op := range b.lms.Ops() {
		if op.AccountID == ada.ID && op.Kind != sandbox.OpCreate && op.Kind != sandbox.OpUpdate {
			t.Errorf("op %v logged for the removal", op)
		}
	}
	// Removing it again is fine: there is nothing left.
	b.do(t, "PATCH", path, remove).want(t, http.StatusOK, nil)
	b.do(t, "PATCH", "/scim/v2/Users/nope", remove).wantError(t, http.StatusNotFound, "")
}
