package report_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/report"
	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
)

// classSandbox records the rate-limit class of the calls Rehire makes.
type classSandbox struct {
	*sandbox.LMS
	mu      sync.Mutex
	classes []connector.LMSPriority
}

func (c *classSandbox) saw(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.classes = append(c.classes, connector.LMSPriorityOf(ctx))
}

func (c *classSandbox) FindAccounts(ctx context.Context, f connector.AccountFilter) ([]connector.Account, error) {
	c.saw(ctx)
	return c.LMS.FindAccounts(ctx, f)
}

func (c *classSandbox) Completions(ctx context.Context, id string) ([]connector.CompletionRecord, error) {
	c.saw(ctx)
	return c.LMS.Completions(ctx, id)
}

// TestRehireIsBackground: the rehire report's LMS reads wait behind live changes
// under the LMS's rate limit.
func TestRehireIsBackground(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	sb := &classSandbox{LMS: sandbox.New()}
	if _, err := sb.CreateAccount(ctx, connector.Account{ExternalID: "hr:w7", UserName: "kai@example.com", Active: true}); err != nil {
		t.Fatal(err)
	}
	q := report.RehireQuery{Worker: connector.WorkerKey{Feed: "hr", WorkerID: "w7"}, Now: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}
	if _, err := report.Rehire(ctx, sb, q); err != nil {
		t.Fatal(err)
	}
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if len(sb.classes) < 2 {
		t.Fatalf("%d LMS calls seen, want the lookup and the learning records", len(sb.classes))
	}
	for i, p := range sb.classes {
		if p != connector.LMSBackground {
			t.Errorf("call %d made as %v, want background", i, p)
		}
	}
}
