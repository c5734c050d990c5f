package guard_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/guard"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
)

// flakyReads is a sandbox whose first batch read answers 503.
type flakyReads struct {
	*sandbox.LMS
	fails atomic.Int32
}

func (f *flakyReads) FindAccountsIn(ctx context.Context, attr connector.FilterAttr, values []string) (map[string][]connector.Account, error) {
	if f.fails.Add(-1) >= 0 {
		return nil, unavailable(http.StatusServiceUnavailable)
	}
	return f.LMS.FindAccountsIn(ctx, attr, values)
}

// TestBatchReadsGuarded: a batch read of up to the LMS's batch size is one
// guarded call, retried like any other; without the capability, the guard
// vouches for no value (the caller looks each up) and reads ids one by one.
func TestBatchReadsGuarded(t *testing.T) {
	t.Parallel()
	inner := &flakyReads{LMS: sandbox.New()}
	inner.fails.Store(1)
	var calls callCounter
	cfg := fastRetries()
	cfg.Hooks.Call = calls.hook
	g := guard.New(inner, cfg)
	as := createN(t, inner, 1500)
	ids := make([]string, 0, len(as)+1)
	values := make([]string, 0, len(as)+1)
	for _, a := range as {
		ids, values = append(ids, a.ID), append(values, a.ExternalID)
	}
	ids, values = append(ids, "nope"), append(values, "hr:nobody")
	if n := g.MaxReadBatch(t.Context()); n != sandbox.MaxResults {
		t.Errorf("MaxReadBatch = %d", n)
	}
	found, err := g.FindAccountsIn(t.Context(), connector.ByExternalID, values)
	if err != nil || len(found) != len(values) || len(found["hr:nobody"]) != 0 || len(found[as[7].ExternalID]) != 1 || found[as[7].ExternalID][0].ID != as[7].ID {
		t.Fatalf("FindAccountsIn: %d values answered, %v", len(found), err)
	}
	got, err := g.GetAccounts(t.Context(), ids)
	if _, gone := got["nope"]; err != nil || len(got) != len(as) || gone {
		t.Fatalf("GetAccounts: %d accounts, %v", len(got), err)
	}
	if f, r, a := calls.get("FindAccountsIn ok"), calls.get("FindAccountsIn unavailable"), calls.get("GetAccounts ok"); f != 2 || a != 2 || r != 1 {
		t.Errorf("%d FindAccountsIn calls (%d retried), %d GetAccounts for 1501 values; want 2 (1 retried) and 2", f, r, a)
	}

	p := guard.New(plain{inner.LMS}, fastRetries())
	if n := p.MaxReadBatch(t.Context()); n != 0 {
		t.Errorf("MaxReadBatch without the capability = %d", n)
	}
	if found, err := p.FindAccountsIn(t.Context(), connector.ByExternalID, values[:2]); err != nil || len(found) != 0 {
		t.Errorf("FindAccountsIn without the capability: %v, %v; want no value vouched for", found, err)
	}
	if got, err := p.GetAccounts(t.Context(), []string{as[0].ID, "nope"}); err != nil || len(got) != 1 || got[as[0].ID].ID != as[0].ID {
		t.Errorf("GetAccounts without the capability: %v, %v", got, err)
	}
}
