package demo

import (
	"context"
	"strings"
	"testing"
)

// TestPlayDocebo plays a short season against the Docebo simulator through the
// Docebo adapter over HTTP, with the same expectations as TestPlay: leavers
// deactivated and rehires reactivated with their completions intact.
func TestPlayDocebo(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	open := func(ctx context.Context, p Parts) (Runtime, error) { return openTestRuntime(t, ctx, p) }
	res, err := Play(t.Context(), Config{Out: &out, People: 60, Seed: 7, Open: open, LMS: "docebo"})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !res.OK || res.Hired != 60 || res.DuplicateAccounts != 0 || res.Rehired == 0 || res.RehiresHistoryIntact != res.Rehired {
		t.Fatalf("%+v\n%s", res, out.String())
	}
	if !strings.Contains(out.String(), "sandbox LMS (docebo)") {
		t.Errorf("output does not name the docebo flavor:\n%s", out.String())
	}
}
