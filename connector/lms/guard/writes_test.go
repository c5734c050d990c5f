package guard_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/guard"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
)

// lossy is a sandbox whose first batch write of each kind is applied and then
// answered 503, as when the answer is lost on the way back.
type lossy struct {
	*sandbox.LMS
	creates, sets, updates atomic.Int32
}

func (l *lossy) CreateAccounts(ctx context.Context, accs []connector.Account) ([]connector.ItemResult, error) {
	res, err := l.LMS.CreateAccounts(ctx, accs)
	if l.creates.Add(1) == 1 && err == nil {
		return nil, unavailable(503)
	}
	return res, err
}

func (l *lossy) SetActiveMany(ctx context.Context, ids []string, active bool) ([]connector.ItemResult, error) {
	res, err := l.LMS.SetActiveMany(ctx, ids, active)
	if l.sets.Add(1) == 1 && err == nil {
		return nil, unavailable(503)
	}
	return res, err
}

func (l *lossy) UpdateAccounts(ctx context.Context, accs []connector.Account) ([]connector.ItemResult, error) {
	res, err := l.LMS.UpdateAccounts(ctx, accs)
	if l.updates.Add(1) == 1 && err == nil {
		return nil, unavailable(503)
	}
	return res, err
}

// TestBatchWritesLostAnswer: a batch create whose answer was lost is not sent
// again (a second send would create every account twice, or fail them all as
// conflicts): the call fails as a whole with a temporary error. Setting active
// is resent, and an update that the lost attempt applied is found applied.
// Each attempt is one guarded call, whatever its size.
func TestBatchWritesLostAnswer(t *testing.T) {
	t.Parallel()
	inner := &lossy{LMS: sandbox.New()}
	var calls callCounter
	cfg := fastRetries()
	cfg.Hooks.Call = calls.hook
	g := guard.New(inner, cfg)
	ctx := t.Context()
	accs := []connector.Account{acct("a"), acct("b"), acct("c")}
	res, err := g.CreateAccounts(ctx, accs)
	if err == nil || !connector.IsTemporary(err) || res != nil {
		t.Fatalf("CreateAccounts after a lost answer: %v, %v; want a temporary whole-call error", res, err)
	}
	if n := inner.creates.Load(); n != 1 || inner.Count() != 3 || calls.get("CreateAccounts unavailable") != 1 {
		t.Fatalf("%d create calls, %d accounts; want 1 call (not resent) and 3 accounts", n, inner.Count())
	}

	as := inner.Snapshot()
	ids := []string{as[0].Account.ID, as[1].Account.ID, "u-nope"}
	set, err := g.SetActiveMany(ctx, ids, false)
	if err != nil || set[0].Err != nil || set[1].Err != nil || !errors.Is(set[2].Err, connector.ErrNotFound) {
		t.Fatalf("SetActiveMany: %+v, %v", set, err)
	}
	if n := inner.sets.Load(); n != 2 || calls.get("SetActiveMany ok") != 1 || calls.get("SetActiveMany unavailable") != 1 {
		t.Errorf("%d set-active calls, want 2 (resent once)", n)
	}

	cur, _ := inner.GetAccount(ctx, as[2].Account.ID)
	cur.Profile.JobTitle = "Cook"
	up, err := g.UpdateAccounts(ctx, []connector.Account{cur})
	if err != nil || up[0].Err != nil || up[0].Account.Profile.JobTitle != "Cook" {
		t.Fatalf("UpdateAccounts after a lost answer: %+v, %v; want done (the retry's 412 is our own update)", up, err)
	}
}

// TestBatchWritesFallback: an LMS without batch writes gets one guarded single
// call per item, each item its own result.
func TestBatchWritesFallback(t *testing.T) {
	t.Parallel()
	inner := sandbox.New(sandbox.WithMaxBulk(0))
	var calls callCounter
	cfg := fastRetries()
	cfg.Hooks.Call = calls.hook
	g := guard.New(inner, cfg)
	if g.MaxCreateBatch(t.Context()) != 0 || g.MaxSetActiveBatch(t.Context()) != 0 || g.MaxUpdateBatch(t.Context()) != 0 {
		t.Fatal("Max... not 0 without bulk")
	}
	res, err := g.CreateAccounts(t.Context(), []connector.Account{acct("a"), acct("a"), acct("b")})
	if err != nil || res[0].Err != nil || !errors.Is(res[1].Err, connector.ErrConflict) || res[2].Err != nil {
		t.Fatalf("CreateAccounts: %+v, %v", res, err)
	}
	if n := calls.get("CreateAccount ok") + calls.get("CreateAccount conflict"); n != 3 || calls.get("CreateAccounts ok") != 0 {
		t.Errorf("%d single creates, want 3", n)
	}
}
