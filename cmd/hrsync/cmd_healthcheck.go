package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/app"
)

func newHealthCheckCmd(env *environment) *cobra.Command {
	cmd := newCmd("healthcheck URL", "check an HTTP endpoint once: exit 0 if it answers 2xx", `
Ask URL once with a GET (a bearer token with --token) and exit 0 if it answers 2xx
within --timeout, else print why and exit 1. It is the container healthcheck of
hrsync's distroless image, which has no curl or wget: hrsync's own /readyz, or the
sandbox LMS (docker-compose.yml). /readyz answers 503 with the reason when hrsync is
not ready, and that reason is printed.`, exactArgs(1, "one URL"))
	fs := cmd.Flags()
	token := fs.String("token", "", "bearer `TOKEN` to send")
	envFlag(fs, "token", "HRSYNC_HEALTHCHECK_TOKEN")
	timeout := fs.Duration("timeout", app.DefaultHealthCheckTimeout, "how long to wait for the answer")
	cmd.Example = "  hrsync healthcheck http://127.0.0.1:9090/readyz"
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if *timeout <= 0 {
			return usagef(cmd, "--timeout %s: must be more than 0", *timeout)
		}
		if err := app.HealthCheck(cmd.Context(), args[0], *token, *timeout); err != nil {
			return err
		}
		fmt.Fprintln(env.stdout, "ok")
		return nil
	}
	return cmd
}
