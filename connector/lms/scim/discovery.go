package scim

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/hrsync/hrsync/connector"
)

// Capabilities is what the client believes the server supports: read from
// /ServiceProviderConfig (RFC 7643 §5), or conservative defaults when the server
// offers none, then corrected by what the server answers (a 405 or 501 to PATCH
// turns Patch off for the client's lifetime).
type Capabilities struct {
	// Discovered says the values come from the server's ServiceProviderConfig.
	Discovered bool
	// Patch: SetActive uses PATCH; otherwise it reads the user and PUTs it back.
	Patch bool
	// ETag: the client sends If-Match with a known version on updates.
	ETag bool
	// Bulk is reported for information; the client does not use bulk requests.
	Bulk bool
	// Filter: FindAccounts asks the server to filter; otherwise it pages through
	// every user and filters client-side.
	Filter bool
	// MaxResults caps a page, if the server says so (0: no cap known).
	MaxResults int
}

// defaultCapabilities are assumed for a server without ServiceProviderConfig:
// try PATCH (and remember a refusal), no If-Match, filter on the server.
var defaultCapabilities = Capabilities{Patch: true, Filter: true}

// Capabilities returns what the client knows about the server, reading
// /ServiceProviderConfig on first use. A server that has none (404, 405, 501, or
// a body that is not a ServiceProviderConfig) gets the conservative defaults,
// and that answer is kept. A transient failure (network, 5xx, 429, 401/403) also
// yields the defaults but is not kept: the next call asks again.
func (c *Client) Capabilities(ctx context.Context) Capabilities {
	c.mu.Lock()
	done, caps := c.discovered, c.caps
	c.mu.Unlock()
	if !done {
		var keep bool
		caps, keep = c.discover(ctx)
		c.mu.Lock()
		if !c.discovered && keep {
			c.discovered, c.caps = true, caps
		}
		c.mu.Unlock()
	}
	if c.noPatch.Load() {
		caps.Patch = false
	}
	return caps
}

func (c *Client) discover(ctx context.Context) (Capabilities, bool) {
	if c.noDiscovery {
		return defaultCapabilities, true
	}
	var spc ServiceProviderConfig
	_, err := c.do(ctx, http.MethodGet, "/ServiceProviderConfig", nil, nil, nil, &spc)
	if le, ok := errors.AsType[*connector.LMSError](err); ok {
		switch le.Status {
		case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented, http.StatusBadRequest:
			return defaultCapabilities, true
		}
		if le.Reason == reasonUndecodable {
			return defaultCapabilities, true
		}
		return defaultCapabilities, false
	}
	if !slices.ContainsFunc(spc.Schemas, func(s string) bool { return strings.EqualFold(s, SchemaServiceProviderConfig) }) {
		return defaultCapabilities, true
	}
	return Capabilities{
		Discovered: true,
		Patch:      spc.Patch.Supported,
		ETag:       spc.ETag.Supported,
		Bulk:       spc.Bulk.Supported,
		Filter:     spc.Filter.Supported,
		MaxResults: max(spc.Filter.MaxResults, 0),
	}, true
}
