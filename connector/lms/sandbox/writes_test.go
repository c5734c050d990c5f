package sandbox_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
)

// TestBatchWritesInProcess: each item of a batch write is its single call, with
// its own outcome and op; more items than the batch size fail the whole call.
func TestBatchWritesInProcess(t *testing.T) {
	t.Parallel()
	l := sandbox.New(sandbox.WithMaxBulk(3))
	ctx := t.Context()
	res, err := l.CreateAccounts(ctx, []connector.Account{
		{ExternalID: "hr:1", UserName: "a@example.com", Active: true},
		{ExternalID: "hr:2", UserName: "A@example.com", Active: true}, // userName taken, case-insensitively
		{ExternalID: "hr:3", UserName: "c@example.com"},
	})
	if err != nil || res[0].Err != nil || !errors.Is(res[1].Err, connector.ErrConflict) || res[2].Err != nil || l.Count() != 2 {
		t.Fatalf("CreateAccounts: %+v, %v; %d accounts", res, err, l.Count())
	}
	a, c := res[0].Account, res[2].Account
	set, err := l.SetActiveMany(ctx, []string{c.ID, "nope"}, true)
	if err != nil || set[0].Err != nil || !set[0].Account.Active || !errors.Is(set[1].Err, connector.ErrNotFound) {
		t.Fatalf("SetActiveMany: %+v, %v", set, err)
	}
	a.Profile.JobTitle, c.Profile.JobTitle = "Nurse", "Cook" // c's Version is stale now
	up, err := l.UpdateAccounts(ctx, []connector.Account{a, c})
	if err != nil || up[0].Err != nil || up[0].Account.Profile.JobTitle != "Nurse" || !errors.Is(up[1].Err, connector.ErrPrecondition) {
		t.Fatalf("UpdateAccounts: %+v, %v", up, err)
	}
	var kinds []sandbox.OpKind
	for _, op := range l.Ops() {
		kinds = append(kinds, op.Kind)
	}
	want := []sandbox.OpKind{sandbox.OpCreate, sandbox.OpCreate, sandbox.OpActivate, sandbox.OpUpdate}
	if !slices.Equal(kinds, want) {
		t.Errorf("ops %v, want %v", kinds, want)
	}
	if _, err := l.SetActiveMany(ctx, []string{"1", "2", "3", "4"}, false); err == nil {
		t.Error("4 items in a batch of at most 3: no error")
	}
}
