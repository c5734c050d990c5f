package scim_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/connector/lms/scim"
)

// TestErrorsCarryNoPersonalDataOrSecrets: whatever goes wrong, an error of the
// client names neither the filter value it looked up (an email), nor the
// password of the base URL, nor a value the server echoed; it still says what
// went wrong.
func TestErrorsCarryNoPersonalDataOrSecrets(t *testing.T) {
	t.Parallel()
	const email, pass = "jane.private@home.example", "lms-pa55word"
	lookup := connector.AccountFilter{Attr: connector.ByEmail, Value: email}
	assertClean := func(t *testing.T, err error, want string) {
		t.Helper()
		if err == nil {
			t.Fatal("no error")
		}
		msg := err.Error()
		for _, bad := range []string{email, "jane.private%40home.example", "jane.private", pass} {
			if strings.Contains(msg, bad) {
				t.Errorf("error %q contains %q", msg, bad)
			}
		}
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}

	t.Run("Refused", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		c, err := scim.New("http://hrsync:"+pass+"@"+addr+sandbox.BasePath, scim.WithoutDiscovery())
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.FindAccounts(t.Context(), lookup)
		assertClean(t, err, "/scim/v2/Users?…")
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("error %v: the cause is lost, want connection refused", err)
		}
	})
	t.Run("Timeout", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
		t.Cleanup(srv.Close)
		c, err := scim.New(strings.Replace(srv.URL, "http://", "http://hrsync:"+pass+"@", 1)+sandbox.BasePath,
			scim.WithoutDiscovery(), scim.WithTimeout(50*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.FindAccounts(t.Context(), lookup)
		assertClean(t, err, "?…")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error %v: the cause is lost, want a deadline", err)
		}
	})
	t.Run("ServerEchoes", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		a := connector.Account{ExternalID: "hr:w1", UserName: email, Profile: connector.Profile{Email: email}}
		if _, err := b.client.CreateAccount(t.Context(), a); err != nil {
			t.Fatal(err)
		}
		a.ExternalID = "hr:w2"
		_, err := b.client.CreateAccount(t.Context(), a)
		assertClean(t, err, "already taken")
		if !errors.Is(err, connector.ErrConflict) {
			t.Errorf("error %v: want a conflict", err)
		}
	})
	t.Run("BadBaseURL", func(t *testing.T) {
		t.Parallel()
		_, err := scim.New("ftp://hrsync:" + pass + "@lms.example/scim/v2")
		assertClean(t, err, "want http(s)://host/path")
	})
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		`https://user:pass@lms.example/scim/v2/Users?filter=emails.value+eq+%22j%40x%22`: "https://lms.example/scim/v2/Users?…",
		"https://token@lms.example/scim/v2/Users/42":                                     "https://lms.example/scim/v2/Users/42",
		"https://lms.example/scim/v2#frag":                                               "https://lms.example/scim/v2",
		"http://[::1:bad":                                                                "(unparseable URL)",
	} {
		if got := scim.RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
