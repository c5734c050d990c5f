package scim_test

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/connector/lms/scim"
)

type countingTransport struct {
	next http.RoundTripper
	n    *atomic.Int64
}

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(r)
}

// WithTransportWrapper wraps the transport after WithCACertFile has set the
// CA on the bare one: every request goes through the wrapper, over TLS.
func TestWithTransportWrapper(t *testing.T) {
	srv := httptest.NewTLSServer(sandbox.New().Handler("tok"))
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	c, err := scim.New(srv.URL+sandbox.BasePath, scim.WithBearerToken("tok"), scim.WithCACertFile(ca),
		scim.WithTransportWrapper(func(rt http.RoundTripper) http.RoundTripper { return countingTransport{rt, &n} }))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.FindAccounts(t.Context(), connector.AccountFilter{Attr: connector.ByEmail, Value: "nobody@example.com"}); err != nil {
		t.Fatal(err)
	}
	if n.Load() == 0 {
		t.Error("no request went through the wrapper")
	}
}
