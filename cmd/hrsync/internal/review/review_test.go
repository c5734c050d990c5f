package review_test

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/app"
	"github.com/hrsync/hrsync/cmd/hrsync/internal/review"
	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/store"
	"github.com/hrsync/hrsync/store/pgtest"
)

// open opens the assembly on url with the feeds declared, as the daemon does
// with its configuration.
func open(t *testing.T, url string, lms *sandbox.LMS, feeds ...string) *app.App {
	t.Helper()
	var fs []connector.Feed
	for _, f := range feeds {
		fs = append(fs, connector.DefaultFeed(f, connector.FeedHR))
	}
	declared, err := connector.NewFeeds(fs...)
	if err != nil {
		t.Fatal(err)
	}
	set, err := app.SettingsFor(url, declared, app.FileConfig{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.Open(t.Context(), set, app.Options{LMS: lms, Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return a
}

func drain(t *testing.T, a *app.App) {
	t.Helper()
	conv, err := a.Converger(connector.ConvergerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conv.Drain(t.Context(), 5); err != nil {
		t.Fatal(err)
	}
}

// TestResolveConvergesWithoutReconcile: a daemon that did not know the feed yet
// raised a review item for its worker and left it; after the fix (the feed
// declared) a person resolves the item, and the daemon's converger creates the
// account at its next pass, with no reconcile (issue #11).
func TestResolveConvergesWithoutReconcile(t *testing.T) {
	t.Parallel()
	for name, url := range map[string]func(t *testing.T) string{
		"SQLite":     func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "hrsync.db") },
		"PostgreSQL": func(t *testing.T) string { return pgtest.URL(t) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			url, lms := url(t), sandbox.New()
			before := open(t, url, lms, "hr")
			db := before.Store()
			at := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
			if _, err := db.RecordFacts(ctx, []connector.Fact{{Feed: "acme", WorkerID: "w1", Source: "/feeds/acme", ID: "e1",
				Kind: connector.KindHired, Effective: at, Time: at, Profile: connector.Profile{Email: "w1@acme.example"}}}); err != nil {
				t.Fatal(err)
			}
			drain(t, before)
			items, err := db.ListReviews(ctx, store.ReviewFilter{})
			if err != nil || len(items) != 1 || !strings.Contains(items[0].Reason, `feed "acme" is not configured`) {
				t.Fatalf("review items = %+v, %v; want the unconfigured feed", items, err)
			}
			id := items[0].ID

			after := open(t, url, lms, "hr", "acme")
			drain(t, after) // nothing due: without a resolution the fix is not seen
			if lms.Count() != 0 {
				t.Fatalf("the LMS has %d accounts before the resolution; want none", lms.Count())
			}
			if _, err := review.Resolve(ctx, after.Store(), id, "alice", ""); err == nil || !strings.Contains(err.Error(), "--reason is required") {
				t.Fatalf("resolve without a reason: %v; want an error naming --reason", err)
			}
			if _, err := review.Resolve(ctx, after.Store(), id, "", "x"); err == nil || !strings.Contains(err.Error(), "--by is required") {
				t.Fatalf("resolve without --by: %v; want an error naming --by", err)
			}
			r, err := review.Resolve(ctx, after.Store(), id, "alice", "declared the feed acme in the configuration")
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := review.WriteResolved(&out, r); err != nil || !strings.Contains(out.String(), "review 1 resolved by alice; acme:w1 is due now") {
				t.Fatalf("WriteResolved = %q, %v", out.String(), err)
			}
			drain(t, after)
			accts, err := lms.FindAccounts(ctx, connector.AccountFilter{Attr: connector.ByExternalID, Value: "acme:w1"})
			if err != nil || len(accts) != 1 || !accts[0].Active {
				t.Fatalf("accounts of acme:w1 = %+v, %v; want one, active", accts, err)
			}
			if open, _ := db.ListReviews(ctx, store.ReviewFilter{}); len(open) != 0 {
				t.Fatalf("open items = %+v; want none", open)
			}

			if _, err := review.Resolve(ctx, after.Store(), id, "bob", "again"); !errors.Is(err, connector.ErrConflict) || !strings.Contains(err.Error(), "already resolved by alice") {
				t.Fatalf("resolve twice: %v; want connector.ErrConflict naming alice", err)
			}
			if _, err := review.Resolve(ctx, after.Store(), 999, "bob", "x"); !errors.Is(err, connector.ErrNotFound) || !strings.Contains(err.Error(), "review 999") {
				t.Fatalf("resolve an unknown item: %v; want connector.ErrNotFound naming it", err)
			}
			audit, err := db.ListAudit(ctx, store.AuditFilter{Feed: "acme", WorkerID: "w1"})
			if err != nil {
				t.Fatal(err)
			}
			var resolved bool
			for _, a := range audit {
				resolved = resolved || (a.Plan == store.PlanReviewResolved && strings.Contains(a.Detail, "alice"))
			}
			if !resolved {
				t.Fatalf("audit = %+v; want the resolution", audit)
			}
		})
	}
}
