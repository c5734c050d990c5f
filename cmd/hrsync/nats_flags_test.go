package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsserver "github.com/nats-io/nats-server/v2/test"
)

// TestNATSFlagsAuthenticate: publish reaches a NATS server that wants a user and
// password with exactly the --nats-user/--nats-password flags, or NATS_USER and
// NATS_PASSWORD_FILE, and a wrong password is refused with the setting named.
func TestNATSFlagsAuthenticate(t *testing.T) {
	t.Parallel()
	opts := natsserver.DefaultTestOptions
	opts.Port, opts.JetStream, opts.StoreDir = -1, true, t.TempDir()
	opts.Users = []*server.User{{Username: "hrsync", Password: "s3cret-pw"}}
	ns := natsserver.RunServer(&opts)
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	url := ns.ClientURL()

	publish := []string{"publish", "--type", "hired", "--worker", "w-1", "--email", "a@example.com", "--effective", "2026-12-01", "--nats-url", url}
	// The daemon, authenticated by the same flags, makes the feed's stream.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	lms := startLMS(t, nil)
	go func() {
		done <- run(ctx, []string{"hrsync", "run", "--db", "sqlite://" + filepath.Join(t.TempDir(), "d.db"), "--nats-url", url,
			"--lms-url", lms.url, "--lms-token", lms.token,
			"--nats-user", "hrsync", "--nats-password", "s3cret-pw", "--admin-addr=", "--log-level", "error"}, func(string) string { return "" }, &syncBuffer{}, &syncBuffer{})
	}()
	waitFor(t, 15*time.Second, "the daemon's stream", func() (bool, string) {
		select {
		case err := <-done:
			t.Fatalf("the daemon stopped: %v", err)
		default:
		}
		_, _, code := runCode(t, nil, append(publish, "--nats-user", "hrsync", "--nats-password", "s3cret-pw")...)
		return code == exitOK, "publish with the right password"
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("daemon: %v", err)
	}

	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("s3cret-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := runCode(t, map[string]string{"NATS_USER": "hrsync", "NATS_PASSWORD_FILE": pwFile}, publish...); code != exitOK {
		t.Fatalf("publish with NATS_USER and NATS_PASSWORD_FILE: exit %d\n%s%s", code, out, errOut)
	}
	_, _, err := runCLI(t, nil, append(publish, "--nats-user", "hrsync", "--nats-password", "wrong")...)
	if exitCode(err) != exitFailed || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("publish with a wrong password: %v; want exit 1 and an authorization error", err)
	}
	if _, _, err := runCLI(t, nil, append(publish, "--nats-user", "hrsync", "--nats-password", "x", "--nats-creds", pwFile)...); err == nil ||
		!strings.Contains(err.Error(), "--nats-creds") {
		t.Fatalf("two ways to authenticate: %v; want an error naming both", err)
	}
}

// TestEmbeddedNATSAddr: run --embedded-nats listens where --embedded-nats-addr
// says, prints the URL to use, and removes its temporary directory on exit.
func TestEmbeddedNATSAddr(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var errOut syncBuffer
	done := make(chan error, 1)
	lms := startLMS(t, nil)
	go func() {
		done <- run(ctx, []string{"hrsync", "run", "--embedded-nats", "--embedded-nats-addr", addr, "--admin-addr=",
			"--lms-url", lms.url, "--lms-token", lms.token,
			"--db", "sqlite://" + filepath.Join(t.TempDir(), "d.db")}, func(string) string { return "" }, &syncBuffer{}, &errOut)
	}()
	waitFor(t, 15*time.Second, "the embedded server's address in the log", func() (bool, string) {
		select {
		case err := <-done:
			t.Fatalf("run stopped: %v\n%s", err, errOut.String())
		default:
		}
		return strings.Contains(errOut.String(), "nats://"+addr) && strings.Contains(errOut.String(), "consuming"), errOut.String()
	})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("nothing listens on %s: %v", addr, err)
	}
	c.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	// The log names the server's directory (store_dir): gone after exit.
	m := regexp.MustCompile(`"store_dir":"([^"]+)"`).FindStringSubmatch(errOut.String())
	if m == nil || !strings.Contains(m[1], "hrsync-nats-") {
		t.Fatalf("the log does not name the embedded server's temporary directory:\n%s", errOut.String())
	}
	if _, err := os.Stat(m[1]); !os.IsNotExist(err) {
		t.Errorf("the embedded server's directory %s is left behind (%v)", m[1], err)
	}
}

// TestHealthCheckCommand: 2xx exits 0; a 503 exits 1 with its reason.
func TestHealthCheckCommand(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" && r.Header.Get("Authorization") == "Bearer tok" {
			w.Write([]byte("ok\n"))
			return
		}
		http.Error(w, "not ready: nats: connection closed", http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	if out, errOut, code := runCode(t, nil, "healthcheck", srv.URL+"/readyz", "--token", "tok"); code != exitOK || !strings.Contains(out, "ok") {
		t.Fatalf("healthy: exit %d %q %q", code, out, errOut)
	}
	_, _, err := runCLI(t, nil, "healthcheck", srv.URL+"/readyz")
	if exitCode(err) != exitFailed || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "nats: connection closed") {
		t.Fatalf("unhealthy: %v; want exit 1 with the status and the reason", err)
	}
	if _, _, code := runCode(t, nil, "healthcheck"); code != exitUsage {
		t.Fatalf("healthcheck without a URL: exit %d, want %d", code, exitUsage)
	}
}
