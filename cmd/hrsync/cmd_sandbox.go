package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/hrsync/hrsync/connector/lms/sandbox"
)

func cmdSandboxLMS(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "sandbox-lms", "sandbox-lms [flags]", `
Serve the sandbox LMS: an in-memory LMS with training history (enrollments and
completions), spoken to over SCIM 2.0 at /scim/v2. Training history can be seeded and
read at /hrsync/v1/accounts/{id}/training (see docs/sandbox-lms.md). Point
"hrsync run --lms-url http://ADDR/scim/v2" at it. State lives only in this process.`)
	vars := map[string]string{}
	addr := fs.String("addr", "127.0.0.1:8081", "listen address")
	vars["addr"] = "SANDBOX_LMS_ADDR"
	token := fs.String("token", "", "bearer token clients must send (empty: no authentication)")
	vars["token"] = "SANDBOX_LMS_TOKEN"
	if err := parseFlags(fs, env, args, vars); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", *addr, err)
	}
	srv := &http.Server{Handler: sandbox.New().Handler(*token), ReadHeaderTimeout: 5 * time.Second}
	fmt.Fprintf(env.stdout, "sandbox LMS serving SCIM 2.0 at http://%s/scim/v2\n", ln.Addr())
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
	return nil
}
