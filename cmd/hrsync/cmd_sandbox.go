package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/hrsync/hrsync/connector/lms/sandbox"
)

func newSandboxLMSCmd(env *environment) *cobra.Command {
	cmd := newCmd("sandbox-lms", "serve the sandbox LMS over SCIM 2.0", `
Serve the sandbox LMS: an in-memory LMS with training history (enrollments and
completions), spoken to over SCIM 2.0 at /scim/v2. Training history can be seeded and
read at /hrsync/v1/accounts/{id}/training (see docs/sandbox-lms.md). Point
"hrsync run --lms-url http://ADDR/scim/v2" at it. State lives only in this process.
Like the daemon, it logs JSON at level info unless --log-format and --log-level say otherwise.`, noArgs)
	fs := cmd.Flags()
	addr := fs.String("addr", "127.0.0.1:8081", "listen address")
	envFlag(fs, "addr", "SANDBOX_LMS_ADDR")
	token := fs.String("token", "", "bearer token clients must send (empty: no authentication)")
	envFlag(fs, "token", "SANDBOX_LMS_TOKEN")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error { return serveSandboxLMS(cmd.Context(), env, *addr, *token) }
	return cmd
}

// serveSandboxLMS serves a new sandbox LMS on addr until ctx is done.
func serveSandboxLMS(ctx context.Context, env *environment, addr, token string) error {
	log := env.logger(daemonLog)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: sandbox.New().Handler(token), ReadHeaderTimeout: 5 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	fmt.Fprintf(env.stdout, "sandbox LMS serving SCIM 2.0 at http://%s/scim/v2\n", ln.Addr())
	log.Info("sandbox LMS listening", "addr", ln.Addr().String(), "auth", token != "")
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
	log.Info("sandbox LMS stopped")
	return nil
}
