package app

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/hrsync/hrsync/connector"
)

// lms.ignore_attributes is checked when the app opens, naming the setting.
func TestIgnoreAttributesConfig(t *testing.T) {
	t.Parallel()
	feeds, err := connector.NewFeeds(connector.DefaultFeed("hr", connector.FeedHR))
	if err != nil {
		t.Fatal(err)
	}
	set := testSettings(t, "sqlite://"+filepath.Join(t.TempDir(), "a.db"), feeds)
	set.File.LMS.IgnoreAttributes = []string{"employeeNumber", "shoeSize"}
	if a, err := Open(t.Context(), set, Options{Migrate: true}); err == nil {
		a.Close()
		t.Fatal("an unknown attribute was accepted")
	} else if !strings.Contains(err.Error(), `lms.ignore_attributes: attribute "shoeSize"`) {
		t.Fatalf("Open: %v", err)
	}
	set.File.LMS.IgnoreAttributes = []string{"employeeNumber", "department"}
	a, err := Open(t.Context(), set, Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if got := a.attrs.Dropped(); strings.Join(got, ",") != "employee_number,org_unit" {
		t.Errorf("Dropped() = %v", got)
	}
}
