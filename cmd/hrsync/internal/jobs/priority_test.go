package jobs

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
)

// classSandbox is the sandbox recording the rate-limit class of each call.
type classSandbox struct {
	*sandbox.LMS
	mu      sync.Mutex
	classes map[string]connector.LMSPriority // op → the class of its last call
	live    []string
}

func (c *classSandbox) saw(ctx context.Context, op string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := connector.LMSPriorityOf(ctx)
	c.classes[op] = p
	if p != connector.LMSBackground {
		c.live = append(c.live, op)
	}
}

func (c *classSandbox) ListAccounts(ctx context.Context, offset, count int) (connector.AccountPage, error) {
	c.saw(ctx, "list_accounts")
	return c.LMS.ListAccounts(ctx, offset, count)
}

func (c *classSandbox) GetAccount(ctx context.Context, id string) (connector.Account, error) {
	c.saw(ctx, "get_account")
	return c.LMS.GetAccount(ctx, id)
}

func (c *classSandbox) DeleteAccount(ctx context.Context, id string) error {
	c.saw(ctx, "delete_account")
	return c.LMS.DeleteAccount(ctx, id)
}

func (c *classSandbox) DeleteAccounts(ctx context.Context, dels []connector.Deletion) ([]error, error) {
	c.saw(ctx, "delete_accounts")
	return c.LMS.DeleteAccounts(ctx, dels)
}

func (c *classSandbox) ActivityOf(ctx context.Context, ids []string) (map[string]connector.AccountActivity, error) {
	c.saw(ctx, "activity_of")
	return c.LMS.ActivityOf(ctx, ids)
}

// TestJobsAreBackground: offboarding's scan and run make every LMS call in the
// background class, so that live changes go first under the LMS's rate limit.
func TestJobsAreBackground(t *testing.T) {
	t.Parallel()
	b := setup(t, connector.DefaultFeed("hr", connector.FeedHR), connector.DefaultFeed("partner-acme", connector.FeedPartner))
	ctx := t.Context()
	lms := &classSandbox{LMS: b.sb, classes: map[string]connector.LMSPriority{}}
	b.env.LMS = lms
	for _, ext := range []string{"partner-acme:p1", "partner-acme:p2", "import:old"} {
		if _, err := b.sb.CreateAccount(ctx, connector.Account{ExternalID: ext, UserName: strings.ReplaceAll(ext, ":", ".") + "@x.example", Active: true}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.env.Dormant(ctx, DormantRequest{Filter: connector.DormantFilter{NoLogin: true}, ReportOnly: true, Dir: b.dir + "/d"}); err != nil {
		t.Fatal(err)
	}
	if held, err := b.env.Offboard(ctx, OffboardRequest{Feed: "partner-acme", By: "ana", Reason: "ended", Dir: b.dir + "/o"}); err != nil || held != 1 {
		t.Fatalf("offboard = %d, %v", held, err)
	}
	if _, err := b.db.DecideHold(ctx, 1, connector.HoldDecision{Approve: true, By: "bob", Reason: "ok"}); err != nil {
		t.Fatal(err)
	}
	if err := b.env.RunHold(ctx, 1, RunOptions{Getenv: func(string) string { return "" }}); err != nil {
		t.Fatalf("run: %v\n%s", err, b.out)
	}
	if n := b.sb.Count(); n != 1 {
		t.Fatalf("%d accounts left, want 1: the run did not delete", n)
	}
	lms.mu.Lock()
	defer lms.mu.Unlock()
	if _, ok := lms.classes["list_accounts"]; !ok {
		t.Fatalf("no scan seen: %v", lms.classes)
	}
	if _, ok := lms.classes["delete_accounts"]; !ok {
		if _, ok := lms.classes["delete_account"]; !ok {
			t.Fatalf("no deletion seen: %v", lms.classes)
		}
	}
	if len(lms.live) > 0 {
		t.Errorf("calls made as live: %v (by op: %v)", lms.live, lms.classes)
	}
}
