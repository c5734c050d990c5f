package console

import (
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/console/oidctest"
	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
)

// oidcConsole serves a console whose configuration cfg makes, given its base
// URL and the provider idp's issuer, and returns that base URL.
func oidcConsole(t *testing.T, idp *oidctest.Provider, cfg func(base string) Config) string {
	t.Helper()
	db, err := store.Open(t.Context(), "sqlite://"+filepath.Join(t.TempDir(), "hrsync.db"), slog.New(slog.DiscardHandler), store.Migrate(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	feeds, _ := connector.NewFeeds(connector.DefaultFeed("hr", connector.FeedHR), connector.DefaultFeed("partner-acme", connector.FeedPartner))
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	c := cfg(base)
	if err := c.Check(feeds.Names()); err != nil {
		t.Fatal(err)
	}
	s, err := New(c, Deps{Store: db, Feeds: feeds, Getenv: func(string) string { return "s3cret" }})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = s.Handler()
	srv.Start()
	t.Cleanup(srv.Close)
	return base
}

// oidcSignIn signs in at base through idp as email (verified or not, with the
// claims extra) in a fresh browser, and returns the status and page of the
// overview after.
func oidcSignIn(t *testing.T, idp *oidctest.Provider, base, email string, verified bool, extra map[string]any) (int, string) {
	t.Helper()
	idp.SignInWith(email, verified, extra)
	jar, _ := cookiejar.New(nil)
	cl := &http.Client{Jar: jar}
	if _, page := (&browser{t: t, c: cl, base: base}).get("/login"); !strings.Contains(page, "Sign in with Test IdP") {
		t.Fatalf("the sign-in page names no identity provider")
	}
	resp, err := cl.Get(base + "/login/oidc")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return (&browser{t: t, c: cl, base: base}).get("/")
}

// Sign-in through OIDC: the configured user the verified email names is signed
// in with their role and feeds; an unknown or unverified email, and a callback
// whose state is not the browser's, are refused.
func TestOIDCSignIn(t *testing.T) {
	t.Parallel()
	idp := oidctest.New(t)
	base := oidcConsole(t, idp, func(base string) Config {
		return Config{Users: []UserConfig{{Name: "olga@example.com", Role: RoleViewer, Feeds: []string{"partner-acme"}}},
			OIDC: OIDCConfig{Issuer: idp.Issuer, ClientID: "hrsync-console", ClientSecretEnv: "SECRET", RedirectURL: base + "/login/callback", Name: "Test IdP"}}
	})
	code, page := oidcSignIn(t, idp, base, "Olga@example.com", true, nil)
	if code != http.StatusOK || !strings.Contains(page, "olga@example.com · viewer · partner-acme") {
		t.Fatalf("after signing in through OIDC (%d):\n%s", code, page)
	}
	if _, page := oidcSignIn(t, idp, base, "mallory@example.com", true, nil); strings.Contains(page, "Overview") {
		t.Error("an email that is no console user was signed in")
	}
	if _, page := oidcSignIn(t, idp, base, "olga@example.com", false, nil); strings.Contains(page, "Overview") {
		t.Error("an unverified email was signed in")
	}
	// A callback the browser did not start (login CSRF) is refused.
	jar, _ := cookiejar.New(nil)
	cl := &http.Client{Jar: jar}
	resp, err := cl.Get(base + "/login/callback?code=x&state=forged")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("a forged callback: %d, want 403", resp.StatusCode)
	}
}

// console.oidc.roles: people who are not in console.users sign in with the
// role and feeds of the first rule their ID token's claims match (a group in
// a list, or a string claim); nobody else does; a user in console.users keeps
// the role written there.
func TestOIDCRolesFromClaims(t *testing.T) {
	t.Parallel()
	idp := oidctest.New(t)
	base := oidcConsole(t, idp, func(base string) Config {
		// Seven sign-ins from one address: more than the default five a minute.
		return Config{Users: []UserConfig{{Name: "olga@example.com", Role: RoleViewer, Feeds: []string{"partner-acme"}}}, LoginsPerMinute: 20,
			OIDC: OIDCConfig{Issuer: idp.Issuer, ClientID: "hrsync-console", RedirectURL: base + "/login/callback", Name: "Test IdP",
				Scopes: []string{"groups"},
				Roles: []OIDCRole{
					{Claim: "groups", Value: "lms-admins", Role: RoleAdmin},
					{Claim: "groups", Value: "lms-approvers", Role: RoleApprover, Feeds: []string{"hr"}},
					{Claim: "department", Value: "Learning", Role: RoleViewer},
				}}}
	})
	for _, tc := range []struct {
		name   string
		email  string
		claims map[string]any
		want   string // the header's "who", or "" for refused
	}{
		{"GroupGivesApprover", "gina@example.com", map[string]any{"groups": []any{"staff", "lms-approvers"}}, "gina@example.com · approver · hr"},
		{"FirstRuleWins", "ada@example.com", map[string]any{"groups": []any{"lms-approvers", "lms-admins"}}, "ada@example.com · admin"},
		{"StringClaim", "lee@example.com", map[string]any{"department": "Learning"}, "lee@example.com · viewer"},
		{"NoRuleMatches", "sam@example.com", map[string]any{"groups": []any{"staff"}, "department": "Sales"}, ""},
		{"NoClaims", "tom@example.com", nil, ""},
		{"ConsoleUserKeepsTheirRole", "olga@example.com", map[string]any{"groups": []any{"lms-admins"}}, "olga@example.com · viewer · partner-acme"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, page := oidcSignIn(t, idp, base, tc.email, true, tc.claims)
			if tc.want == "" {
				if strings.Contains(page, "Overview") {
					t.Fatalf("%s was signed in (%d)", tc.email, code)
				}
				return
			}
			if code != http.StatusOK || !strings.Contains(page, tc.want) {
				t.Fatalf("after signing in (%d), want %q:\n%s", code, tc.want, page)
			}
		})
	}
	// An unverified email is refused whatever its groups.
	if _, page := oidcSignIn(t, idp, base, "gina@example.com", false, map[string]any{"groups": []any{"lms-admins"}}); strings.Contains(page, "Overview") {
		t.Error("an unverified email was signed in by its groups")
	}
}

// console.oidc.roles is checked: each rule names a claim, a value, a role and
// configured feeds, and needs an issuer.
func TestOIDCRolesCheck(t *testing.T) {
	t.Parallel()
	oidc := OIDCConfig{Issuer: "https://idp.example", ClientID: "c", RedirectURL: "https://c.example/login/callback"}
	for _, tc := range []struct {
		name  string
		roles []OIDCRole
		issue string
		want  string
	}{
		{"NoClaim", []OIDCRole{{Value: "x", Role: RoleViewer}}, oidc.Issuer, "console.oidc.roles[0]: claim and value are required"},
		{"NoValue", []OIDCRole{{Claim: "groups", Role: RoleViewer}}, oidc.Issuer, "console.oidc.roles[0]: claim and value are required"},
		{"BadRole", []OIDCRole{{Claim: "groups", Value: "x", Role: "root"}}, oidc.Issuer, `console.oidc.roles[0].role "root"`},
		{"UnknownFeed", []OIDCRole{{Claim: "groups", Value: "x", Role: RoleViewer, Feeds: []string{"nope"}}}, oidc.Issuer, `console.oidc.roles[0].feeds: "nope"`},
		{"NoIssuer", []OIDCRole{{Claim: "groups", Value: "x", Role: RoleViewer}}, "", "console.oidc.roles: set, but console.oidc.issuer is not"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := oidc
			o.Issuer, o.Roles = tc.issue, tc.roles
			err := Config{Addr: "127.0.0.1:0", OIDC: o}.Check([]string{"hr"})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check = %v, want %q", err, tc.want)
			}
		})
	}
	o := oidc
	o.Roles = []OIDCRole{{Claim: "groups", Value: "lms-viewers", Role: RoleViewer}}
	if err := (Config{Addr: "127.0.0.1:0", OIDC: o}).Check([]string{"hr"}); err != nil {
		t.Fatalf("a console with OIDC roles and no users: %v", err)
	}
}
