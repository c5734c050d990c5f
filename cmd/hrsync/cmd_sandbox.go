package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/flavor"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
)

func newSandboxLMSCmd(env *environment) *cobra.Command {
	cmd := newCmd("sandbox-lms", "serve the sandbox LMS over SCIM 2.0 or a vendor's API", `
Serve the sandbox LMS: an in-memory LMS with training history (enrollments and
completions), spoken to over SCIM 2.0 at /scim/v2. Training history can be seeded and
read at /hrsync/v1/accounts/{id}/training (see docs/sandbox-lms.md). Point
"hrsync run --lms-url http://ADDR/scim/v2" at it. State lives only in this process.

With --flavor, the same sandbox is served through a simulator of a vendor's API
instead (see docs/lms-compat.md); the line it prints says where.
Like the daemon, it logs JSON at level info unless --log-format and --log-level say otherwise.`, noArgs)
	fs := cmd.Flags()
	addr := fs.String("addr", "127.0.0.1:8081", "listen address")
	envFlag(fs, "addr", "SANDBOX_LMS_ADDR")
	token := fs.String("token", "", "bearer token clients must send (empty: no authentication)")
	envFlag(fs, "token", "SANDBOX_LMS_TOKEN")
	fl := fs.String("flavor", "scim", "the API to serve: "+strings.Join(flavor.Names(), ", "))
	envFlag(fs, "flavor", "SANDBOX_LMS_FLAVOR")
	count := fs.Bool("count-requests", false, "count the SCIM requests served by kind, and print the counts when stopped (docs/lms-calls.md)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		f, err := flavor.Get(*fl)
		if err != nil {
			return usagef(cmd, "--flavor: %v", err)
		}
		var counter *requestCounter
		if *count {
			counter = newRequestCounter()
		}
		return serveSandboxLMS(cmd.Context(), env, *addr, *token, f, counter)
	}
	return cmd
}

// serveSandboxLMS serves a new sandbox LMS on addr until ctx is done. With a
// counter, it counts the requests and prints the counts when it stops.
func serveSandboxLMS(ctx context.Context, env *environment, addr, token string, f flavor.Flavor, counter *requestCounter) error {
	log := env.logger(daemonLog)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	h := f.Handler(sandbox.New(f.Sandbox...), token)
	if counter != nil {
		h = counter.wrap(h)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	if f.Name == "scim" {
		fmt.Fprintf(env.stdout, "sandbox LMS serving SCIM 2.0 at http://%s%s\n", ln.Addr(), f.Path)
	} else {
		fmt.Fprintf(env.stdout, "sandbox LMS serving the %s simulator at http://%s%s\n", f.Name, ln.Addr(), f.Path)
	}
	log.Info("sandbox LMS listening", "addr", ln.Addr().String(), "flavor", f.Name, "auth", token != "")
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	if counter != nil {
		n, how := counter.take()
		fmt.Fprintf(env.stdout, "sandbox LMS served %d requests (discovery left out): %s\n", n, how)
	}
	log.Info("sandbox LMS stopped")
	return nil
}
