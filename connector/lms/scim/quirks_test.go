package scim_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/lmstest"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/connector/lms/scim"
)

// quirkBundle is a sandbox served with quirks, behind a spy that records the
// method and path of every request.
type quirkBundle struct {
	lms    *sandbox.LMS
	srv    *httptest.Server
	client *scim.Client

	mu   sync.Mutex
	seen []string // "METHOD /path"
}

func setupQuirks(t *testing.T, q sandbox.Quirks, opts ...sandbox.Option) *quirkBundle {
	t.Helper()
	b := &quirkBundle{lms: sandbox.New(opts...)}
	inner := b.lms.HandlerWith(token, q)
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.seen = append(b.seen, r.Method+" "+strings.TrimPrefix(r.URL.Path, sandbox.BasePath))
		b.mu.Unlock()
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(b.srv.Close)
	c, err := scim.New(b.srv.URL+sandbox.BasePath, scim.WithBearerToken(token), scim.WithHTTPClient(b.srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	b.client = c
	sandboxes.Store(c, b.lms)
	return b
}

// count returns how many requests had method and a path starting with prefix.
func (b *quirkBundle) count(method, prefix string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, s := range b.seen {
		m, p, _ := strings.Cut(s, " ")
		if m == method && strings.HasPrefix(p, prefix) {
			n++
		}
	}
	return n
}

// TestConformanceQuirks runs the whole suite on the client against the sandbox
// served with each quirk of real servers, and with all of them at once.
func TestConformanceQuirks(t *testing.T) {
	t.Parallel()
	emailIDs := sandbox.WithIDs(func(n int) string { return fmt.Sprintf("user.%d+x@example.com", n) })
	all := sandbox.Quirks{
		NoServiceProviderConfig: true, NoPatch: true, NoETags: true, NoLocation: true, CreateEmptyBody: true,
		GoneIs500: true, FilterFoldsCase: true, CaseSensitiveNames: true, MaxPageSize: 3, PutResetsActive: true,
	}
	allNoSearch := all
	allNoSearch.NoSearch = true
	for _, tc := range []struct {
		name string
		q    sandbox.Quirks
		f    lmstest.Features
		opts []sandbox.Option
	}{
		{name: "EmailAsID", f: lmstest.Features{ETags: true}, opts: []sandbox.Option{emailIDs}},
		{name: "NoServiceProviderConfig", q: sandbox.Quirks{NoServiceProviderConfig: true}},
		{name: "NoPatchDiscovered", q: sandbox.Quirks{NoPatch: true}, f: lmstest.Features{ETags: true}},
		{name: "NoPatch405", q: sandbox.Quirks{NoPatch: true, NoServiceProviderConfig: true}},
		{name: "NoPatch501", q: sandbox.Quirks{NoPatch: true, NoPatchStatus: 501, NoServiceProviderConfig: true}},
		{name: "PatchNoContent", q: sandbox.Quirks{PatchNoContent: true}, f: lmstest.Features{ETags: true}},
		{name: "NoETags", q: sandbox.Quirks{NoETags: true}},
		{name: "NoLocation", q: sandbox.Quirks{NoLocation: true}, f: lmstest.Features{ETags: true}},
		{name: "CreateEmptyBody", q: sandbox.Quirks{CreateEmptyBody: true}, f: lmstest.Features{ETags: true}},
		{name: "CreateEmptyBodyNoLocation", q: sandbox.Quirks{CreateEmptyBody: true, NoLocation: true}, f: lmstest.Features{ETags: true}},
		{name: "GoneIs500", q: sandbox.Quirks{GoneIs500: true}, f: lmstest.Features{ETags: true}},
		{name: "FilterFoldsCase", q: sandbox.Quirks{FilterFoldsCase: true}, f: lmstest.Features{ETags: true}},
		{name: "CaseSensitiveNames", q: sandbox.Quirks{CaseSensitiveNames: true}, f: lmstest.Features{ETags: true}},
		{name: "ShortPages", q: sandbox.Quirks{MaxPageSize: 3}, f: lmstest.Features{ETags: true}},
		{name: "PutResetsActive", q: sandbox.Quirks{PutResetsActive: true}, f: lmstest.Features{ETags: true}},
		{name: "DuplicateExternalIDs", f: lmstest.Features{ETags: true, DuplicateExternalIDs: true},
			opts: []sandbox.Option{sandbox.WithDuplicateExternalIDs()}},
		{name: "NoSearch", q: sandbox.Quirks{NoSearch: true}, f: lmstest.Features{ETags: true}},
		{name: "NoSearch404", q: sandbox.Quirks{NoSearch: true, NoSearchStatus: http.StatusNotFound}, f: lmstest.Features{ETags: true}},
		{name: "NoSearchInvalidSyntax", q: sandbox.Quirks{NoSearch: true, NoSearchStatus: http.StatusBadRequest,
			NoSearchType: scim.ErrInvalidSyntax}, f: lmstest.Features{ETags: true}},
		{name: "FewFilterTerms", q: sandbox.Quirks{MaxFilterTerms: 3}, f: lmstest.Features{ETags: true}},
		{name: "All", q: all, opts: []sandbox.Option{emailIDs}},
		{name: "AllNoSearch", q: allNoSearch, opts: []sandbox.Option{emailIDs}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.f.Train = train
			lmstest.Run(t, tc.f, func(t *testing.T) connector.LMS { return setupQuirks(t, tc.q, tc.opts...).client })
		})
	}
	// Without PATCH, SetActive reads and PUTs the user; with ETags each PUT is
	// conditional and retried a bounded number of times, which twenty writers
	// on one account can exhaust, so this run has no ETags.
	t.Run("ConcurrencyNoPatch", func(t *testing.T) {
		t.Parallel()
		lmstest.RunConcurrency(t, func(t *testing.T) connector.LMS {
			return setupQuirks(t, sandbox.Quirks{NoPatch: true, NoETags: true}).client
		})
	})
}

// TestDiscoveryOnce: /ServiceProviderConfig is read once, lazily, and kept.
func TestDiscoveryOnce(t *testing.T) {
	t.Parallel()
	for name, q := range map[string]sandbox.Quirks{"Offered": {}, "Absent": {NoServiceProviderConfig: true}} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setupQuirks(t, q)
			if _, err := b.client.CreateAccount(t.Context(), connector.Account{UserName: "ada"}); err != nil {
				t.Fatal(err)
			}
			if n := b.count("GET", "/ServiceProviderConfig"); n != 0 {
				t.Errorf("CreateAccount read the ServiceProviderConfig %d times, want lazily: 0", n)
			}
			for range 3 {
				if _, err := b.client.FindAccounts(t.Context(), connector.AccountFilter{Attr: connector.ByUserName, Value: "ada"}); err != nil {
					t.Fatal(err)
				}
			}
			if n := b.count("GET", "/ServiceProviderConfig"); n != 1 {
				t.Errorf("%d reads of the ServiceProviderConfig, want 1", n)
			}
			caps := b.client.Capabilities(t.Context())
			want := scim.Capabilities{Discovered: true, Patch: true, ETag: true, Filter: true, MaxResults: sandbox.MaxResults,
				Bulk: true, BulkMaxOperations: sandbox.DefaultMaxBulk, BulkMaxPayload: 1 << 20}
			if q.NoServiceProviderConfig {
				want = scim.Capabilities{Patch: true, Filter: true}
			}
			if caps != want {
				t.Errorf("Capabilities = %+v, want %+v", caps, want)
			}
		})
	}
}

// TestDiscoveryRetriedAfterOutage: a failed read of the configuration is not kept.
func TestDiscoveryRetriedAfterOutage(t *testing.T) {
	t.Parallel()
	lms := sandbox.New()
	inner := lms.Handler("")
	var mu sync.Mutex
	fails := 1
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		fail := strings.HasSuffix(r.URL.Path, "/ServiceProviderConfig") && fails > 0
		if fail {
			fails--
		}
		mu.Unlock()
		if fail {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c, err := scim.New(srv.URL+sandbox.BasePath, scim.WithHTTPClient(srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	if caps := c.Capabilities(t.Context()); caps.Discovered || caps.ETag {
		t.Errorf("during the outage: %+v, want the defaults", caps)
	}
	if caps := c.Capabilities(t.Context()); !caps.Discovered || !caps.ETag {
		t.Errorf("after the outage: %+v, want discovered", caps)
	}
}

// TestPatchFallback: a server without PATCH gets PUT; a refusal is remembered,
// and a ServiceProviderConfig that says so means PATCH is never tried.
func TestPatchFallback(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		q         sandbox.Quirks
		wantPatch int
	}{
		"Discovered": {sandbox.Quirks{NoPatch: true}, 0},
		"Learned405": {sandbox.Quirks{NoPatch: true, NoServiceProviderConfig: true}, 1},
		"Learned501": {sandbox.Quirks{NoPatch: true, NoPatchStatus: 501, NoServiceProviderConfig: true}, 1},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setupQuirks(t, tc.q)
			a, err := b.lms.CreateAccount(t.Context(), connector.Account{UserName: "ada", Active: true, Profile: connector.Profile{JobTitle: "Eng"}})
			if err != nil {
				t.Fatal(err)
			}
			for _, active := range []bool{false, true, false} {
				got, err := b.client.SetActive(t.Context(), a.ID, active)
				if err != nil || got.Active != active || got.Profile.JobTitle != "Eng" {
					t.Fatalf("SetActive(%v) = %+v, %v", active, got, err)
				}
			}
			if n := b.count("PATCH", "/Users/"); n != tc.wantPatch {
				t.Errorf("%d PATCH requests, want %d", n, tc.wantPatch)
			}
			if n := b.count("PUT", "/Users/"); n != 3 {
				t.Errorf("%d PUT requests, want 3", n)
			}
			if b.client.Capabilities(t.Context()).Patch {
				t.Errorf("Capabilities().Patch = true after the server refused PATCH")
			}
		})
	}
}

// TestIfMatchOnlyWithETags: If-Match goes out only where the server has ETags
// (an update with Version set; it is one PATCH).
func TestIfMatchOnlyWithETags(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		q    sandbox.Quirks
		want bool
	}{"ETags": {sandbox.Quirks{}, true}, "NoETags": {sandbox.Quirks{NoETags: true}, false}} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			lms := sandbox.New()
			inner := lms.HandlerWith("", tc.q)
			var mu sync.Mutex
			var ifMatch []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodPut || r.Method == http.MethodPatch {
					mu.Lock()
					ifMatch = append(ifMatch, r.Header.Get("If-Match"))
					mu.Unlock()
				}
				inner.ServeHTTP(w, r)
			}))
			t.Cleanup(srv.Close)
			c, err := scim.New(srv.URL+sandbox.BasePath, scim.WithHTTPClient(srv.Client()))
			if err != nil {
				t.Fatal(err)
			}
			a, err := c.CreateAccount(t.Context(), connector.Account{UserName: "ada"})
			if err != nil {
				t.Fatal(err)
			}
			a.Profile.JobTitle = "Eng"
			if _, err := c.UpdateAccount(t.Context(), a); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(ifMatch) != 1 || (ifMatch[0] != "") == !tc.want {
				t.Errorf("If-Match on the update: %q, want one that is set: %v", ifMatch, tc.want)
			}
		})
	}
}

// TestGoneIs500: a 500 on a write becomes not-found only when GET says 404.
func TestGoneIs500(t *testing.T) {
	t.Parallel()
	b := setupQuirks(t, sandbox.Quirks{GoneIs500: true})
	err := b.client.DeleteAccount(t.Context(), "nobody")
	if !errors.Is(err, connector.ErrNotFound) || connector.IsTemporary(err) {
		t.Errorf("DeleteAccount of a missing user: %v, want not found", err)
	}
	// A 500 for a user that exists is an outage, not a missing user.
	a, err := b.lms.CreateAccount(t.Context(), connector.Account{UserName: "ada"})
	if err != nil {
		t.Fatal(err)
	}
	s := newStatusServer(t, 500, nil, "")
	inner := b.lms.Handler("")
	mux := http.NewServeMux()
	mux.Handle("GET /", inner)
	mux.Handle("/", s.srv.Config.Handler)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c, err := scim.New(srv.URL+sandbox.BasePath, scim.WithHTTPClient(srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	err = c.DeleteAccount(t.Context(), a.ID)
	if errors.Is(err, connector.ErrNotFound) || !connector.IsTemporary(err) {
		t.Errorf("DeleteAccount answered 500 for an existing user: %v, want a temporary error", err)
	}
}

// TestListAccountsFillsShortPages: a server that caps its pages below count is
// asked again, so that ListAccounts returns full pages until the end.
func TestListAccountsFillsShortPages(t *testing.T) {
	t.Parallel()
	b := setupQuirks(t, sandbox.Quirks{MaxPageSize: 3})
	for i := range 25 {
		if _, err := b.lms.CreateAccount(t.Context(), connector.Account{UserName: fmt.Sprintf("u%02d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	for start := 1; start <= 25; start += 10 {
		page, err := b.client.ListAccounts(t.Context(), start, 10)
		if err != nil {
			t.Fatal(err)
		}
		if want := min(10, 26-start); len(page.Accounts) != want || page.TotalResults != 25 || page.StartIndex != start {
			t.Fatalf("ListAccounts(%d, 10): %d accounts, total %d, start %d; want %d, 25, %d",
				start, len(page.Accounts), page.TotalResults, page.StartIndex, want, start)
		}
		for _, a := range page.Accounts {
			names = append(names, a.UserName)
		}
	}
	for i, n := range names {
		if want := fmt.Sprintf("u%02d", i); n != want {
			t.Fatalf("account %d is %s, want %s", i, n, want)
		}
	}
}

// TestFindAccountsReturnsEveryCandidate: two accounts with one externalId both
// come back, in order; the client never picks one (the converger makes a review
// item of two candidates).
func TestFindAccountsReturnsEveryCandidate(t *testing.T) {
	t.Parallel()
	b := setupQuirks(t, sandbox.Quirks{MaxPageSize: 1}, sandbox.WithDuplicateExternalIDs())
	var want []string
	for _, name := range []string{"ada", "ada.lovelace"} {
		a, err := b.lms.CreateAccount(t.Context(), connector.Account{UserName: name, ExternalID: "hr:42"})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, a.ID)
	}
	got, err := b.client.FindAccounts(t.Context(), connector.AccountFilter{Attr: connector.ByExternalID, Value: "hr:42"})
	if err != nil || len(got) != 2 || got[0].ID != want[0] || got[1].ID != want[1] {
		t.Errorf("FindAccounts = %+v, %v; want both %q", got, err, want)
	}
}

// TestCaseSensitiveNamesCanonical: the client spells attribute names as RFC 7643
// does, so a server that is strict about case still answers.
func TestCaseSensitiveNamesCanonical(t *testing.T) {
	t.Parallel()
	b := setupQuirks(t, sandbox.Quirks{CaseSensitiveNames: true})
	a, err := b.client.CreateAccount(t.Context(), connector.Account{UserName: "ada", ExternalID: "hr:1",
		Profile: connector.Profile{Email: "ada@x.com", EmployeeNumber: "7"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []connector.AccountFilter{
		{Attr: connector.ByExternalID, Value: "hr:1"}, {Attr: connector.ByUserName, Value: "ADA"},
		{Attr: connector.ByEmail, Value: "Ada@X.com"}, {Attr: connector.ByEmployeeNumber, Value: "7"},
	} {
		got, err := b.client.FindAccounts(t.Context(), f)
		if err != nil || len(got) != 1 || got[0].ID != a.ID {
			t.Errorf("FindAccounts(%+v) = %+v, %v", f, got, err)
		}
	}
	if n := b.count("GET", "/Users") - b.count("GET", "/Users/"); n != 4 {
		t.Errorf("%d queries, want 4: the first filter form of each works", n)
	}
}

// TestFilterFoldsCaseRechecked: a server that matches externalId regardless of
// case cannot make the client return the wrong account.
func TestFilterFoldsCaseRechecked(t *testing.T) {
	t.Parallel()
	b := setupQuirks(t, sandbox.Quirks{FilterFoldsCase: true})
	if _, err := b.lms.CreateAccount(t.Context(), connector.Account{UserName: "ada", ExternalID: "hr:Ab"}); err != nil {
		t.Fatal(err)
	}
	got, err := b.client.FindAccounts(t.Context(), connector.AccountFilter{Attr: connector.ByExternalID, Value: "hr:aB"})
	if err != nil || len(got) != 0 {
		t.Errorf("FindAccounts(externalId in other case) = %+v, %v; want none", got, err)
	}
}

// writeCA writes the certificate of a TLS test server as PEM and returns the path.
func writeCA(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestTLSCustomCA: the client trusts an LMS whose certificate chains to a CA
// given as a file or a pool, and no other.
func TestTLSCustomCA(t *testing.T) {
	t.Parallel()
	newTLS := func(t *testing.T) *httptest.Server {
		srv := httptest.NewTLSServer(sandbox.New().Handler(token))
		t.Cleanup(srv.Close)
		return srv
	}
	for name, opt := range map[string]func(srv *httptest.Server) scim.Option{
		"CACertFile": func(srv *httptest.Server) scim.Option { return scim.WithCACertFile(writeCA(t, srv)) },
		"RootCAs": func(srv *httptest.Server) scim.Option {
			pool := x509.NewCertPool()
			pool.AddCert(srv.Certificate())
			return scim.WithRootCAs(pool)
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			lmstest.Run(t, lmstest.Features{ETags: true}, func(t *testing.T) connector.LMS {
				srv := newTLS(t)
				return mustNew(t, srv.URL+sandbox.BasePath, scim.WithBearerToken(token), opt(srv))
			})
		})
	}
	srv := newTLS(t)
	base := srv.URL + sandbox.BasePath
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	t.Run("UnknownCA", func(t *testing.T) {
		t.Parallel()
		otherCA := filepath.Join(t.TempDir(), "other.pem")
		if err := os.WriteFile(otherCA, selfSigned(t), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, c := range []*scim.Client{
			mustNew(t, base, scim.WithBearerToken(token)),
			mustNew(t, base, scim.WithBearerToken(token), scim.WithCACertFile(otherCA)),
		} {
			_, err := c.ListAccounts(t.Context(), 1, 1)
			if le := asLMSError(t, err); le.Kind != connector.KindUnavailable || !strings.Contains(err.Error(), "certificate") {
				t.Errorf("untrusted server: %v, want a certificate error", err)
			}
		}
	})
	t.Run("BadCAFile", func(t *testing.T) {
		t.Parallel()
		empty := filepath.Join(t.TempDir(), "empty.pem")
		if err := os.WriteFile(empty, []byte("not a certificate"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, path := range []string{empty, filepath.Join(t.TempDir(), "missing.pem")} {
			if _, err := scim.New(base, scim.WithCACertFile(path)); err == nil {
				t.Errorf("New with CA file %s: no error", path)
			}
		}
	})
	t.Run("KeepsCallerTransport", func(t *testing.T) {
		t.Parallel()
		hc := &http.Client{Transport: &http.Transport{}}
		c := mustNew(t, base, scim.WithBearerToken(token), scim.WithHTTPClient(hc), scim.WithRootCAs(pool))
		if _, err := c.ListAccounts(t.Context(), 1, 1); err != nil {
			t.Errorf("ListAccounts: %v", err)
		}
		if cfg := hc.Transport.(*http.Transport).TLSClientConfig; cfg != nil && cfg.RootCAs != nil {
			t.Errorf("the caller's transport was changed")
		}
	})
}

// selfSigned returns a new self-signed CA certificate as PEM.
func selfSigned(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func mustNew(t *testing.T, base string, opts ...scim.Option) *scim.Client {
	t.Helper()
	c, err := scim.New(base, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestUpdateKeepsUnmanagedAttributes: against a server whose PUT replaces the
// whole user (elimity-com/scim), UpdateAccount keeps what hrsync does not manage.
func TestUpdateKeepsUnmanagedAttributes(t *testing.T) {
	t.Parallel()
	hs, base := newElimityServer(t)
	body := `{"schemas":["` + scim.SchemaUser + `","` + scim.SchemaEnterpriseUser + `"],"userName":"ada","active":false,
		"nickName":"Countess","phoneNumbers":[{"value":"+44 1","type":"work"}],
		"` + scim.SchemaEnterpriseUser + `":{"employeeNumber":"7","costCenter":"CC-1"}}`
	resp, err := hs.Client().Post(base+"/Users", scim.MediaType, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var created map[string]any
	err = json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("create: %d %v", resp.StatusCode, err)
	}
	id := created["id"].(string)
	c := mustNew(t, base, scim.WithHTTPClient(hs.Client()))
	a, err := c.GetAccount(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	a.Active = true // must not be applied
	a.Profile.JobTitle = "Mathematician"
	a.Profile.EmployeeNumber = "8"
	if _, err := c.UpdateAccount(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	resp, err = hs.Client().Get(base + "/Users/" + id)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`"nickName":"Countess"`, `"+44 1"`, `"costCenter":"CC-1"`, `"employeeNumber":"8"`, `"title":"Mathematician"`, `"active":false`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("after UpdateAccount the user lacks %s: %s", want, raw)
		}
	}
}
