package console

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// OIDCConfig is console.oidc: sign-in through the company's identity provider
// (authorization code flow with PKCE, github.com/coreos/go-oidc). Who signs in
// is the value of Claim in the verified ID token; that name must be one of
// console.users, which gives the role and the feeds (a user there without a
// password_hash signs in only through OIDC).
type OIDCConfig struct {
	// Issuer is the provider's issuer URL (its discovery document is read at
	// the first sign-in, so that the daemon starts when the provider is away).
	Issuer   string `yaml:"issuer"`
	ClientID string `yaml:"client_id"`
	// ClientSecretEnv names the environment variable that holds the client
	// secret; the secret is never in the file.
	ClientSecretEnv string `yaml:"client_secret_env"`
	// RedirectURL is the console's callback as the provider knows it:
	// https://console.example/login/callback.
	RedirectURL string `yaml:"redirect_url"`
	// Claim names the user; default email. A claim email is taken only when
	// the token says email_verified.
	Claim string `yaml:"claim"`
	// Name is the provider's name on the sign-in page; default "your identity provider".
	Name string `yaml:"name"`
	// Scopes are asked for besides openid, email and profile: the scope some
	// providers need to put groups in the ID token, for example.
	Scopes []string `yaml:"scopes"`
	// Roles give a role and feeds to people the identity provider vouches for
	// who are not in console.users, by a claim of their ID token (their groups,
	// say). A user in console.users keeps the role and feeds written there.
	Roles []OIDCRole `yaml:"roles"`
}

// OIDCRole is one rule of console.oidc.roles: whoever's ID token has Claim
// equal to Value (a string claim), or containing it (a list of strings, such
// as groups), signs in with Role on Feeds (empty: every feed). The rules are
// tried in order and the first that matches decides, so list the wider roles
// first.
type OIDCRole struct {
	Claim string   `yaml:"claim"`
	Value string   `yaml:"value"`
	Role  Role     `yaml:"role"`
	Feeds []string `yaml:"feeds"`
}

// matches reports whether claims satisfy r.
func (r OIDCRole) matches(claims map[string]any) bool {
	switch v := claims[r.Claim].(type) {
	case string:
		return v == r.Value
	case []any:
		for _, e := range v {
			if s, ok := e.(string); ok && s == r.Value {
				return true
			}
		}
	}
	return false
}

// userFor returns the user that claims make of name by the first matching
// rule of c.Roles; ok is false if none matches.
func (c OIDCConfig) userFor(name string, claims map[string]any) (User, bool) {
	for _, r := range c.Roles {
		if r.matches(claims) {
			return User{Name: name, Role: r.Role, Feeds: r.Feeds}, true
		}
	}
	return User{}, false
}

// Enabled reports whether OIDC sign-in is configured.
func (c OIDCConfig) Enabled() bool { return c.Issuer != "" }

func (c OIDCConfig) check(feeds []string) error {
	if !c.Enabled() {
		if len(c.Roles) > 0 {
			return errors.New("console.oidc.roles: set, but console.oidc.issuer is not: roles are given by the identity provider's claims")
		}
		return nil
	}
	var errs []error
	for i, r := range c.Roles {
		where := fmt.Sprintf("console.oidc.roles[%d]", i)
		if strings.TrimSpace(r.Claim) == "" || r.Value == "" {
			errs = append(errs, fmt.Errorf("%s: claim and value are required (e.g. claim: groups, value: lms-approvers)", where))
		}
		if r.Role.rank() == 0 {
			errs = append(errs, fmt.Errorf("%s.role %q: want viewer, approver or admin", where, r.Role))
		}
		for _, f := range r.Feeds {
			if !slices.Contains(feeds, f) {
				errs = append(errs, fmt.Errorf("%s.feeds: %q is not a configured feed (configured: %s)", where, f, strings.Join(feeds, ", ")))
			}
		}
	}
	if c.ClientID == "" {
		errs = append(errs, errors.New("console.oidc.client_id: required"))
	}
	if c.RedirectURL == "" || !strings.HasSuffix(c.RedirectURL, "/login/callback") {
		errs = append(errs, fmt.Errorf("console.oidc.redirect_url %q: required, the console's /login/callback as the provider knows it", c.RedirectURL))
	}
	return errors.Join(errs...)
}

// oidcCookie keeps a sign-in's state, nonce and PKCE verifier between the
// redirect to the provider and its callback. It is SameSite=Lax: the callback
// is a navigation from the provider's site, on which a Strict cookie is not sent.
const oidcCookie = "hrsync_console_oidc"

// oidcLogin is the OIDC sign-in, set up at its first use.
type oidcLogin struct {
	cfg    OIDCConfig
	secret string

	mu       sync.Mutex
	provider *oidc.Provider
}

func newOIDCLogin(cfg OIDCConfig, getenv func(string) string) *oidcLogin {
	if !cfg.Enabled() {
		return nil
	}
	if getenv == nil {
		getenv = os.Getenv
	}
	l := &oidcLogin{cfg: cfg}
	if cfg.ClientSecretEnv != "" {
		l.secret = getenv(cfg.ClientSecretEnv)
	}
	return l
}

// setup reads the provider's discovery document once it is reachable.
func (l *oidcLogin) setup(ctx context.Context) (*oauth2.Config, *oidc.IDTokenVerifier, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.provider == nil {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		p, err := oidc.NewProvider(ctx, l.cfg.Issuer)
		if err != nil {
			return nil, nil, fmt.Errorf("oidc provider %s: %w", l.cfg.Issuer, err)
		}
		l.provider = p
	}
	oc := &oauth2.Config{ClientID: l.cfg.ClientID, ClientSecret: l.secret, RedirectURL: l.cfg.RedirectURL,
		Endpoint: l.provider.Endpoint(), Scopes: append([]string{oidc.ScopeOpenID, "email", "profile"}, l.cfg.Scopes...)}
	return oc, l.provider.Verifier(&oidc.Config{ClientID: l.cfg.ClientID}), nil
}

// oidcStart redirects to the provider with a fresh state, nonce and PKCE verifier.
func (s *Server) oidcStart(w http.ResponseWriter, r *http.Request) {
	if s.oidc == nil {
		s.fail(w, r, nil, http.StatusNotFound, "OIDC sign-in is not configured.")
		return
	}
	oc, _, err := s.oidc.setup(r.Context())
	if err != nil {
		s.log.Error("console: oidc", "err", err)
		s.fail(w, r, nil, http.StatusBadGateway, "The identity provider cannot be reached; try again later.")
		return
	}
	state, nonce, verifier := randomToken(), randomToken(), oauth2.GenerateVerifier()
	http.SetCookie(w, &http.Cookie{Name: oidcCookie, Value: state + "." + nonce + "." + verifier, Path: "/login/", MaxAge: 600,
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, oc.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), http.StatusFound)
}

// oidcCallback checks the state, exchanges the code, verifies the ID token and
// its nonce, and signs in the configured user the claim names.
func (s *Server) oidcCallback(w http.ResponseWriter, r *http.Request) {
	if s.oidc == nil {
		s.fail(w, r, nil, http.StatusNotFound, "OIDC sign-in is not configured.")
		return
	}
	refuse := func(why string, args ...any) {
		s.log.Warn("console: oidc sign-in refused", append([]any{"why", why}, args...)...)
		s.fail(w, r, nil, http.StatusForbidden, "Sign-in refused. Start again from the sign-in page.")
	}
	c, err := r.Cookie(oidcCookie)
	parts := strings.Split(func() string {
		if err != nil {
			return ""
		}
		return c.Value
	}(), ".")
	if len(parts) != 3 || subtle.ConstantTimeCompare([]byte(parts[0]), []byte(r.URL.Query().Get("state"))) != 1 {
		refuse("state")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: oidcCookie, Value: "", Path: "/login/", MaxAge: -1, HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode})
	if e := r.URL.Query().Get("error"); e != "" {
		refuse("provider error", "error", e)
		return
	}
	if !s.logins.allow(s.now(), "addr:"+clientAddr(r)) {
		s.fail(w, r, nil, http.StatusTooManyRequests, "Too many attempts. Wait a minute and try again.")
		return
	}
	oc, verifier, err := s.oidc.setup(r.Context())
	if err != nil {
		s.log.Error("console: oidc", "err", err)
		s.fail(w, r, nil, http.StatusBadGateway, "The identity provider cannot be reached; try again later.")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	tok, err := oc.Exchange(ctx, r.URL.Query().Get("code"), oauth2.VerifierOption(parts[2]))
	if err != nil {
		refuse("code exchange", "err", err)
		return
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok {
		refuse("no id_token")
		return
	}
	idt, err := verifier.Verify(ctx, raw)
	if err != nil {
		refuse("id token", "err", err)
		return
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(parts[1])) != 1 {
		refuse("nonce")
		return
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		refuse("claims", "err", err)
		return
	}
	claim := s.oidc.cfg.Claim
	if claim == "" {
		claim = "email"
	}
	name, _ := claims[claim].(string)
	if claim == "email" {
		if v, _ := claims["email_verified"].(bool); !v {
			refuse("email not verified")
			return
		}
	}
	u, ok := s.users.byClaim(name)
	if !ok && name != "" {
		u, ok = s.oidc.cfg.userFor(name, claims)
	}
	if !ok {
		refuse("not a console user, and no console.oidc.roles rule matches")
		return
	}
	id, _, err := s.sessions.create(r.Context(), u)
	if err != nil {
		s.internal(w, r, nil, err)
		return
	}
	s.setCookie(w, sessionCookie, id, int(s.sessions.ttl/time.Second))
	s.log.Info("console: signed in through oidc", "user", u.Name, "role", u.Role)
	// A page of our own continues to the console: a redirect would still be
	// part of the navigation from the provider's site, on which the browser
	// does not send the SameSite=Strict session cookie.
	w.Header().Set("Refresh", "0; url=/")
	s.render(w, http.StatusOK, "continue", view{Title: "Signed in"})
}
