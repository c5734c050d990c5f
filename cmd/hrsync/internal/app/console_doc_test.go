package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// The configuration docs/console.md shows is one hrsync reads: its console,
// holds and notify sections parse (unknown keys refused) and pass their checks,
// with a real hash where the doc shows "...".
func TestConsoleDocConfig(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "docs", "console.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```yaml\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("docs/console.md has no yaml block")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte("a long enough password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	block = strings.ReplaceAll(block, `"$2a$10$..."`, `"`+string(hash)+`"`)
	path := filepath.Join(t.TempDir(), "hrsync.yaml")
	feeds := "feeds:\n  - name: hr\n  - name: partner-acme\n    kind: partner\n"
	if err := os.WriteFile(path, []byte(feeds+block), 0o600); err != nil {
		t.Fatal(err)
	}
	fc, err := LoadConfigFile(path)
	if err != nil {
		t.Fatal(err)
	}
	set, err := SettingsFor("sqlite://unused", nil, fc)
	if err != nil {
		t.Fatal(err)
	}
	if set.Approvals["offboard"] != 2 || set.Approvals["cleanup"] != 2 {
		t.Errorf("holds.approvals = %v", set.Approvals)
	}
	if err := fc.Console.Check(set.Feeds.Names()); err != nil {
		t.Errorf("console: %v", err)
	}
	if !fc.Console.OIDC.Enabled() || len(fc.Console.Users) != 4 {
		t.Errorf("console: %d users, oidc %v", len(fc.Console.Users), fc.Console.OIDC.Enabled())
	}
	if err := fc.Notify.Check(func(string) string { return "set" }); err != nil || len(fc.Notify.Webhooks) != 2 {
		t.Errorf("notify: %v (%d webhooks)", err, len(fc.Notify.Webhooks))
	}
}
