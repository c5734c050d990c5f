package scim_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
)

// TestBulkWrites: creates, updates and activation go as SCIM Bulk requests of
// at most maxOperations, each item answered as its single request would be: a
// taken userName is a conflict, a stale version a precondition failure, a
// missing account not found, and the others are done.
func TestBulkWrites(t *testing.T) {
	t.Parallel()
	b := setupQuirks(t, sandbox.Quirks{}, sandbox.WithMaxBulk(2))
	ctx := t.Context()
	for name, got := range map[string]int{"create": b.client.MaxCreateBatch(ctx),
		"set active": b.client.MaxSetActiveBatch(ctx), "update": b.client.MaxUpdateBatch(ctx)} {
		if got != 2 {
			t.Errorf("Max %s batch = %d, want the server's maxOperations 2", name, got)
		}
	}
	taken := accounts(t, b.lms, 1)[0]
	var accs []connector.Account
	for i := range 3 {
		accs = append(accs, connector.Account{ExternalID: fmt.Sprintf("hr:%d", i), UserName: fmt.Sprintf("n%d@example.com", i),
			Active: true, Profile: connector.Profile{Email: fmt.Sprintf("n%d@example.com", i), GivenName: "N", FamilyName: fmt.Sprint(i)}})
	}
	accs[1].UserName = taken.UserName
	res, err := b.client.CreateAccounts(ctx, accs)
	if err != nil || len(res) != 3 {
		t.Fatalf("CreateAccounts: %v, %v", res, err)
	}
	if res[0].Err != nil || !errors.Is(res[1].Err, connector.ErrConflict) || res[2].Err != nil {
		t.Fatalf("CreateAccounts: %+v", res)
	}
	for _, i := range []int{0, 2} {
		got, err := b.lms.GetAccount(ctx, res[i].Account.ID)
		if err != nil || got.ExternalID != accs[i].ExternalID || got.Profile != accs[i].Profile || got.Version != res[i].Account.Version {
			t.Errorf("created %d: %+v (%v), answered %+v", i, got, err, res[i].Account)
		}
	}
	if posts, users := b.count("POST", "/Bulk"), b.count("POST", "/Users"); posts != 2 || users != 0 {
		t.Errorf("%d bulk requests and %d POST /Users for 3 creates at 2 a request, want 2 and 0", posts, users)
	}

	a, c := res[0].Account, res[2].Account
	if _, err := b.lms.SetActive(ctx, c.ID, true); err != nil { // moves c's version on
		t.Fatal(err)
	}
	a.Profile.JobTitle, c.Profile.JobTitle = "Nurse", "Cook"
	up, err := b.client.UpdateAccounts(ctx, []connector.Account{a, c})
	if err != nil || up[0].Err != nil || !errors.Is(up[1].Err, connector.ErrPrecondition) {
		t.Fatalf("UpdateAccounts: %+v, %v", up, err)
	}
	if got, _ := b.lms.GetAccount(ctx, a.ID); got.Profile.JobTitle != "Nurse" || up[0].Account.Profile.JobTitle != "Nurse" {
		t.Errorf("updated: %+v, answered %+v", got, up[0].Account)
	}
	if got, _ := b.lms.GetAccount(ctx, c.ID); got.Profile.JobTitle != "" {
		t.Errorf("stale update applied: %+v", got)
	}

	set, err := b.client.SetActiveMany(ctx, []string{a.ID, "u-999999"}, false)
	if err != nil || set[0].Err != nil || !errors.Is(set[1].Err, connector.ErrNotFound) || set[0].Account.ID != a.ID {
		t.Fatalf("SetActiveMany: %+v, %v", set, err)
	}
	if got, _ := b.lms.GetAccount(ctx, a.ID); got.Active {
		t.Errorf("%s still active", a.ID)
	}
	if posts, patches := b.count("POST", "/Bulk"), b.count("PATCH", "/Users"); posts != 4 || patches != 0 {
		t.Errorf("%d bulk requests and %d PATCH /Users in all, want 4 and 0", posts, patches)
	}
}

// TestBulkWritesWithout: a server without bulk (or without PATCH, for updates
// and activation) gets Max... 0, and the batch calls make one request per item.
func TestBulkWritesWithout(t *testing.T) {
	t.Parallel()
	b := setupQuirks(t, sandbox.Quirks{NoPatch: true})
	ctx := t.Context()
	if b.client.MaxCreateBatch(ctx) <= 0 || b.client.MaxUpdateBatch(ctx) != 0 || b.client.MaxSetActiveBatch(ctx) != 0 {
		t.Errorf("without PATCH: Max create %d, update %d, set active %d; want >0, 0, 0",
			b.client.MaxCreateBatch(ctx), b.client.MaxUpdateBatch(ctx), b.client.MaxSetActiveBatch(ctx))
	}
	nb := setupQuirks(t, sandbox.Quirks{NoBulk: true})
	if nb.client.MaxCreateBatch(ctx) != 0 {
		t.Errorf("without bulk: MaxCreateBatch %d", nb.client.MaxCreateBatch(ctx))
	}
	res, err := nb.client.CreateAccounts(ctx, []connector.Account{{UserName: "x@example.com", Active: true}, {UserName: "y@example.com", Active: true}})
	if err != nil || res[0].Err != nil || res[1].Err != nil || nb.lms.Count() != 2 || nb.count("POST", "/Users") != 2 {
		t.Errorf("CreateAccounts without bulk: %+v, %v; %d accounts, %d POST /Users", res, err, nb.lms.Count(), nb.count("POST", "/Users"))
	}
	set, err := b.client.SetActiveMany(ctx, []string{accounts(t, b.lms, 1)[0].ID}, false)
	if err != nil || set[0].Err != nil || b.count("POST", "/Bulk") != 0 || b.count("PUT", "/Users") != 1 {
		t.Errorf("SetActiveMany without PATCH: %+v, %v; want one read and PUT", set, err)
	}
}
