package main

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/hrsync/hrsync/connector/lms/sandbox"
)

// requestCounter counts the requests to the sandbox's SCIM server by kind, as an
// LMS's rate limit counts them (sandbox-lms --count-requests, and the exact
// counts of TestLMSCallsPerChange*).
type requestCounter struct {
	mu    sync.Mutex
	calls map[string]int
}

func newRequestCounter() *requestCounter { return &requestCounter{calls: map[string]int{}} }

// wrap counts each request to h, then serves it.
func (c *requestCounter) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.add(requestKind(r))
		h.ServeHTTP(w, r)
	})
}

func (c *requestCounter) add(kind string) {
	c.mu.Lock()
	c.calls[kind]++
	c.mu.Unlock()
}

// requestKind names a SCIM request: "GET /Users?filter", "POST /Users/.search",
// "GET /Users/{id}", "POST /Users", "PATCH /Users/{id}", "POST /Bulk", ...;
// discovery (/ServiceProviderConfig, /Schemas, /ResourceTypes) is "discovery".
func requestKind(r *http.Request) string {
	p := strings.TrimPrefix(r.URL.Path, sandbox.BasePath)
	switch {
	case p == "/Users/.search":
		return r.Method + " " + p
	case strings.HasPrefix(p, "/Users/"):
		return r.Method + " /Users/{id}"
	case p == "/Users" && r.URL.Query().Has("filter"):
		return r.Method + " /Users?filter"
	case p == "/Users" || p == "/Bulk":
		return r.Method + " " + p
	}
	return "discovery"
}

// take returns the requests counted since the last take, discovery left out
// (one client makes it once), as "N KIND + N KIND", and resets the count.
func (c *requestCounter) take() (int, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, parts := 0, []string{}
	kinds := make([]string, 0, len(c.calls))
	for k := range c.calls {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		if k == "discovery" {
			continue
		}
		n += c.calls[k]
		parts = append(parts, fmt.Sprintf("%d %s", c.calls[k], k))
	}
	clear(c.calls)
	return n, strings.Join(parts, " + ")
}
