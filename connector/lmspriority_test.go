package connector_test

import (
	"context"
	"sync"
	"testing"

	"github.com/hrsync/hrsync/connector"
)

// classLMS records the rate-limit class of every call's context.
type classLMS struct {
	connector.LMS
	mu      sync.Mutex
	classes map[connector.LMSPriority]int
}

func (c *classLMS) saw(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.classes == nil {
		c.classes = map[connector.LMSPriority]int{}
	}
	c.classes[connector.LMSPriorityOf(ctx)]++
}

func (c *classLMS) ListAccounts(ctx context.Context, offset, count int) (connector.AccountPage, error) {
	c.saw(ctx)
	return c.LMS.ListAccounts(ctx, offset, count)
}

func (c *classLMS) FindAccounts(ctx context.Context, f connector.AccountFilter) ([]connector.Account, error) {
	c.saw(ctx)
	return c.LMS.FindAccounts(ctx, f)
}

func (c *classLMS) GetAccount(ctx context.Context, id string) (connector.Account, error) {
	c.saw(ctx)
	return c.LMS.GetAccount(ctx, id)
}

func TestLMSPriorityDefault(t *testing.T) {
	t.Parallel()
	if p := connector.LMSPriorityOf(t.Context()); p != connector.LMSLive || p.String() != "live" {
		t.Errorf("default class %v, want live", p)
	}
	if p := connector.LMSPriorityOf(connector.WithLMSPriority(t.Context(), connector.LMSBackground)); p != connector.LMSBackground || p.String() != "background" {
		t.Errorf("class %v, want background", p)
	}
}

// TestReconcileIsBackground: every LMS call of a reconciliation pass is made in
// the background class, so that live changes go first under the LMS's rate limit.
func TestReconcileIsBackground(t *testing.T) {
	t.Parallel()
	b := reconSetup(t)
	b.fact(t, "hr", "w1", connector.KindHired, rDay1, person("a@example.com"))
	b.converge(t)
	b.create(t, connector.Account{ExternalID: "hr:stray", UserName: "stray@example.com", Active: true})
	lms := &classLMS{LMS: b.lms}
	r, err := connector.NewReconciler(connector.ReconcilerConfig{Store: b.db, LMS: lms, Feeds: b.feeds, PageSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reconcile(b.ctx, func(connector.Finding) error { return nil }); err != nil {
		t.Fatal(err)
	}
	lms.mu.Lock()
	defer lms.mu.Unlock()
	if lms.classes[connector.LMSBackground] == 0 || lms.classes[connector.LMSLive] != 0 {
		t.Errorf("calls by class %v, want all background", lms.classes)
	}
}
