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

// Sign-in through OIDC: the configured user the verified email names is signed
// in with their role and feeds; an unknown or unverified email, and a callback
// whose state is not the browser's, are refused.
func TestOIDCSignIn(t *testing.T) {
	t.Parallel()
	idp := oidctest.New(t)
	db, err := store.Open(t.Context(), "sqlite://"+filepath.Join(t.TempDir(), "hrsync.db"), slog.New(slog.DiscardHandler), store.Migrate(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	feeds, _ := connector.NewFeeds(connector.DefaultFeed("hr", connector.FeedHR), connector.DefaultFeed("partner-acme", connector.FeedPartner))
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	cfg := Config{Users: []UserConfig{{Name: "olga@example.com", Role: RoleViewer, Feeds: []string{"partner-acme"}}},
		OIDC: OIDCConfig{Issuer: idp.Issuer, ClientID: "hrsync-console", ClientSecretEnv: "SECRET", RedirectURL: base + "/login/callback", Name: "Test IdP"}}
	if err := cfg.Check(feeds.Names()); err != nil {
		t.Fatal(err)
	}
	c, err := New(cfg, Deps{Store: db, Feeds: feeds, Getenv: func(string) string { return "s3cret" }})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = c.Handler()
	srv.Start()
	t.Cleanup(srv.Close)

	signIn := func(email string, verified bool) (*http.Client, int, string) {
		t.Helper()
		idp.SignInAs(email, verified)
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
		code, page := (&browser{t: t, c: cl, base: base}).get("/")
		return cl, code, page
	}
	_, code, page := signIn("Olga@example.com", true)
	if code != http.StatusOK || !strings.Contains(page, "olga@example.com · viewer · partner-acme") {
		t.Fatalf("after signing in through OIDC (%d):\n%s", code, page)
	}
	if _, _, page := signIn("mallory@example.com", true); strings.Contains(page, "Overview") {
		t.Error("an email that is no console user was signed in")
	}
	if _, _, page := signIn("olga@example.com", false); strings.Contains(page, "Overview") {
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
