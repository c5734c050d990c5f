package app

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultHealthCheckTimeout bounds one HealthCheck unless the caller says otherwise.
const DefaultHealthCheckTimeout = 3 * time.Second

// HealthCheck asks target (hrsync's /readyz or /healthz, the sandbox LMS, any
// HTTP endpoint) once with a GET, sending token as a bearer token if it is not
// empty, and returns nil if it answers 2xx within timeout (0: the default). It
// is the healthcheck of hrsync's distroless container, which has no curl or
// wget: "hrsync healthcheck URL" in docker-compose.yml. The error says what
// went wrong, with the first line of the answer (/readyz says why it is not
// ready).
func HealthCheck(ctx context.Context, target, token string, timeout time.Duration) error {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("healthcheck: %q is not an http:// or https:// URL", target)
	}
	if timeout <= 0 {
		timeout = DefaultHealthCheckTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("healthcheck %s: %w", u.Redacted(), err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	// No redirects, no proxy from the environment: the answer of this one URL counts.
	client := &http.Client{Transport: &http.Transport{}, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck %s: %w", u.Redacted(), err)
	}
	defer resp.Body.Close()
	line, _ := bufio.NewReader(io.LimitReader(resp.Body, 512)).ReadString('\n')
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("healthcheck %s: %s: %s", u.Redacted(), resp.Status, strings.TrimSpace(line))
	}
	return nil
}
