package console

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
)

// testProvider is a small OIDC provider on loopback: discovery, an authorize
// endpoint that signs in whoever the test says at once, the token endpoint
// (checking the PKCE verifier) and the key set, with ID tokens signed RS256.
type testProvider struct {
	srv      *httptest.Server
	key      *rsa.PrivateKey
	mu       sync.Mutex
	email    string                       // who signs in next
	verified bool                         // email_verified of the next token
	codes    map[string]map[string]string // code -> nonce, challenge, client
}

func newTestProvider(t *testing.T) *testProvider {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p := &testProvider{key: key, codes: map[string]map[string]string{}, verified: true}
	mux := http.NewServeMux()
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	iss := p.srv.URL
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": iss, "authorization_endpoint": iss + "/authorize",
			"token_endpoint": iss + "/token", "jwks_uri": iss + "/jwks", "id_token_signing_alg_values_supported": []string{"RS256"},
			"response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"}})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		b64 := base64.RawURLEncoding.EncodeToString
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
			"n": b64(key.N.Bytes()), "e": b64(big.NewInt(int64(key.E)).Bytes())}}})
	})
	mux.HandleFunc("GET /authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" {
			http.Error(w, "want the code flow with PKCE S256", http.StatusBadRequest)
			return
		}
		code := randomToken()
		p.mu.Lock()
		p.codes[code] = map[string]string{"nonce": q.Get("nonce"), "challenge": q.Get("code_challenge"), "client": q.Get("client_id")}
		p.mu.Unlock()
		http.Redirect(w, r, q.Get("redirect_uri")+"?code="+code+"&state="+url.QueryEscape(q.Get("state")), http.StatusFound)
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		c, ok := p.codes[r.PostFormValue("code")]
		delete(p.codes, r.PostFormValue("code"))
		email, verified := p.email, p.verified
		p.mu.Unlock()
		sum := sha256.Sum256([]byte(r.PostFormValue("code_verifier")))
		if !ok || base64.RawURLEncoding.EncodeToString(sum[:]) != c["challenge"] {
			http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
			return
		}
		now := time.Now()
		idt := p.sign(t, map[string]any{"iss": iss, "sub": "sub-" + email, "aud": c["client"], "iat": now.Unix(),
			"exp": now.Add(5 * time.Minute).Unix(), "nonce": c["nonce"], "email": email, "email_verified": verified})
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "at", "token_type": "Bearer", "expires_in": 300, "id_token": idt})
	})
	return p
}

func (p *testProvider) sign(t *testing.T, claims map[string]any) string {
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Error(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	in := enc(map[string]string{"alg": "RS256", "kid": "k1", "typ": "JWT"}) + "." + enc(claims)
	sum := sha256.Sum256([]byte(in))
	sig, err := rsa.SignPKCS1v15(rand.Reader, p.key, crypto.SHA256, sum[:])
	if err != nil {
		t.Error(err)
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// Sign-in through OIDC: the configured user the verified email names is signed
// in with their role and feeds; an unknown or unverified email, and a callback
// whose state is not the browser's, are refused.
func TestOIDCSignIn(t *testing.T) {
	t.Parallel()
	idp := newTestProvider(t)
	db, err := store.Open(t.Context(), "sqlite://"+filepath.Join(t.TempDir(), "hrsync.db"), slog.New(slog.DiscardHandler), store.Migrate(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	feeds, _ := connector.NewFeeds(connector.DefaultFeed("hr", connector.FeedHR), connector.DefaultFeed("partner-acme", connector.FeedPartner))
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	cfg := Config{Users: []UserConfig{{Name: "olga@example.com", Role: RoleViewer, Feeds: []string{"partner-acme"}}},
		OIDC: OIDCConfig{Issuer: idp.srv.URL, ClientID: "hrsync-console", ClientSecretEnv: "SECRET", RedirectURL: base + "/login/callback", Name: "Test IdP"}}
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
		idp.mu.Lock()
		idp.email, idp.verified = email, verified
		idp.mu.Unlock()
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
