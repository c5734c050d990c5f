package app

import (
	"strings"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
)

func TestLeaverPolicyConfig(t *testing.T) {
	t.Parallel()
	feeds, err := BuildFeeds([]FeedConfig{{Name: "hr"}}, nil)
	if err != nil || feeds["hr"].Policy(connector.DefaultPolicy()).Leaver != connector.LeaverDeactivate {
		t.Fatalf("default: %v %v", feeds, err)
	}
	fc := FeedConfig{Name: "partner-acme", Kind: "partner"}
	fc.Leaver.Policy, fc.Leaver.DeleteAfter = "delete-if-no-activity", 720*time.Hour
	feeds, err = BuildFeeds([]FeedConfig{fc}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p := feeds["partner-acme"].Policy(connector.DefaultPolicy()); p.Leaver != connector.LeaverDeleteIfNoActivity || p.DeleteAfter != 720*time.Hour {
		t.Fatalf("policy = %+v", p)
	}
	fc.Leaver.Policy = "shred"
	if _, err := BuildFeeds([]FeedConfig{fc}, nil); err == nil || !strings.Contains(err.Error(), "shred") {
		t.Fatalf("an unknown leaver policy: %v", err)
	}
	fc.Leaver.Policy, fc.Leaver.DeleteAfter = "deactivate-then-delete-after", 0
	if _, err := BuildFeeds([]FeedConfig{fc}, nil); err == nil || !strings.Contains(err.Error(), "delete_after") {
		t.Fatalf("a delete policy without delete_after: %v", err)
	}
}

// A new LMS type is one registration: a test double is registered with
// RegisterLMS and chosen by lms.type; an unknown type is refused with the known
// ones named.
func TestLMSRegistry(t *testing.T) {
	t.Parallel()
	double := &registryDouble{LMS: sandbox.New()}
	RegisterLMS("registry-double", func(s LMSSettings) (connector.LMS, error) { return double, nil })
	got, err := openLMS(LMSSettings{Type: "registry-double"})
	if err != nil || got != double {
		t.Fatalf("openLMS(registry-double) = %v, %v", got, err)
	}
	_, err = openLMS(LMSSettings{Type: "moodle-9000"})
	if err == nil || !strings.Contains(err.Error(), `"moodle-9000"`) || !strings.Contains(err.Error(), "scim") {
		t.Errorf("unknown type: %v", err)
	}
}

// TestLMSSecretsFromInjectedEnv: lms.token_env and lms.client_secret_env are
// read from the command's environment (run's getenv), not the process's: a
// variable set only in the process is not seen, one set only in getenv is; a
// flag still wins. (Not parallel: t.Setenv.)
func TestLMSSecretsFromInjectedEnv(t *testing.T) {
	t.Setenv("HRSYNC_TEST_PROCESS_TOKEN", "from-the-process")
	t.Setenv("HRSYNC_TEST_PROCESS_SECRET", "from-the-process")
	env := map[string]string{"MOODLE_TOKEN": "from-getenv", "DOCEBO_SECRET": "from-getenv-too"}
	getenv := func(k string) string { return env[k] }

	file := LMSConfig{Type: "docebo", TokenEnv: "MOODLE_TOKEN", ClientSecretEnv: "DOCEBO_SECRET"}
	if got := file.Over(LMSSettings{}, getenv); got.Token != "from-getenv" || got.ClientSecret != "from-getenv-too" {
		t.Errorf("token %q, secret %q; want both from getenv", got.Token, got.ClientSecret)
	}
	if got := file.Over(LMSSettings{Token: "flag", ClientSecret: "flag-secret"}, getenv); got.Token != "flag" || got.ClientSecret != "flag-secret" {
		t.Errorf("token %q, secret %q; want the flags'", got.Token, got.ClientSecret)
	}
	inProcess := LMSConfig{TokenEnv: "HRSYNC_TEST_PROCESS_TOKEN", ClientSecretEnv: "HRSYNC_TEST_PROCESS_SECRET"}
	for name, ge := range map[string]func(string) string{"getenv": getenv, "nil": nil} {
		if got := inProcess.Over(LMSSettings{}, ge); got.Token != "" || got.ClientSecret != "" {
			t.Errorf("%s: token %q, secret %q from the process's environment; want none", name, got.Token, got.ClientSecret)
		}
	}
	set, err := FromFile(FileConfig{LMS: file}, "sqlite://x.db", nil, LMSSettings{}, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if set.LMS.Token != "from-getenv" || set.LMS.ClientSecret != "from-getenv-too" {
		t.Errorf("FromFile: token %q, secret %q; want both from getenv", set.LMS.Token, set.LMS.ClientSecret)
	}
}

// registryDouble is an LMS registered under a type of its own.
type registryDouble struct{ connector.LMS }

// The --lms-* flags lay over lms: in the configuration file; secrets come only
// from the flags; without either, the defaults.
func TestLMSSettingsOverFile(t *testing.T) {
	t.Parallel()
	file := LMSConfig{Type: "scim", URL: "https://file.invalid/scim/v2", Rate: "10/s", Timeout: 5 * time.Second,
		CAFile: "file-ca.pem", ClientFilter: "employeeNumber"}
	if got, want := (LMSConfig{}).Over(LMSSettings{}, nil), (LMSSettings{Type: "scim", Timeout: 15 * time.Second, Rate: "unlimited"}); got != want {
		t.Errorf("defaults = %+v; want %+v", got, want)
	}
	if got := file.Over(LMSSettings{}, nil); got.URL != file.URL || got.Rate != "10/s" || got.Timeout != 5*time.Second ||
		got.CAFile != "file-ca.pem" || got.ClientFilter != "employeeNumber" || got.Token != "" {
		t.Errorf("file only = %+v", got)
	}
	flags := LMSSettings{Type: "ignored", URL: "https://flag.invalid/scim/v2", Token: "t", Rate: "1/s", Timeout: time.Second,
		CAFile: "flag-ca.pem", ClientFilter: "emails.value"}
	want := flags
	want.Type = "scim"
	if got := file.Over(flags, nil); got != want {
		t.Errorf("flags over file = %+v; want %+v", got, want)
	}
	set, err := FromFile(FileConfig{LMS: file}, "sqlite://x.db", []FeedConfig{{Name: "partner-acme", Kind: "partner"}}, LMSSettings{User: "u", Password: "p"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if set.LMS.URL != file.URL || set.LMS.User != "u" || set.LMS.Password != "p" || set.DB != "sqlite://x.db" {
		t.Errorf("FromFile LMS = %+v, db %s", set.LMS, set.DB)
	}
	if _, ok := set.Feeds["partner-acme"]; !ok || len(set.Feeds) != 1 {
		t.Errorf("FromFile feeds = %v; want the --feed one", set.Feeds.Names())
	}
}
