package app

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
)

// TestOpenMigratesOnlyWhenAsked checks that the zero Options are the safe ones:
// an app on a missing database fails with the reason and the fix, and creates
// no file; only Options.Migrate creates and migrates it (issue #11).
func TestOpenMigratesOnlyWhenAsked(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "typo.db")
	feeds, err := connector.NewFeeds(connector.DefaultFeed("hr", connector.FeedHR))
	if err != nil {
		t.Fatal(err)
	}
	set := testSettings(t, "sqlite://"+file, feeds)
	if a, err := Open(t.Context(), set, Options{}); err == nil {
		a.Close()
		t.Fatal("Open with zero Options created a database")
	} else if !errors.Is(err, store.ErrNoDatabase) || !strings.Contains(err.Error(), "hrsync migrate --db sqlite://"+file) {
		t.Fatalf("Open: %v; want store.ErrNoDatabase naming the fix", err)
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat %s: %v; want no file", file, err)
	}
	a, err := Open(t.Context(), set, Options{Migrate: true})
	if err != nil {
		t.Fatalf("Open with Migrate: %v", err)
	}
	a.Close()
	a, err = Open(t.Context(), set, Options{})
	if err != nil {
		t.Fatalf("Open of the migrated database: %v", err)
	}
	a.Close()
}
