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
// turns Patch off for the client's lifetime; a 400 to an update's PATCH turns it
// off for updates only, see Client.UpdateAccount).
type Capabilities struct {
	// Discovered says the values come from the server's ServiceProviderConfig.
	Discovered bool
	// Patch: SetActive and UpdateAccount use PATCH; otherwise they read the user
	// and PUT it back.
	Patch bool
	// ETag: the client sends If-Match with a known version on updates.
	ETag bool
	// Bulk: DeleteAccounts sends POST /Bulk (RFC 7644 §3.7) of at most
	// BulkMaxOperations deletions and BulkMaxPayload bytes; otherwise it sends one
	// DELETE per account. A server that answers /Bulk with 404, 405 or 501 turns
	// Bulk off for the client's lifetime.
	Bulk              bool
	BulkMaxOperations int
	BulkMaxPayload    int
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
	caps, _ := c.capabilities(ctx)
	return caps
}

// Discover reads /ServiceProviderConfig unless the client already knows what the
// server supports, and returns the error of a transient failure, after which
// Capabilities gives the defaults until a later call succeeds. A server without a
// ServiceProviderConfig is not an error. guard calls it, with retries, before it
// asks for MaxBulkDeletes or MaxActivityBatch, so that a passing failure does not
// turn a clean-up into one call per account.
func (c *Client) Discover(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	_, err := c.capabilities(ctx)
	return err
}

func (c *Client) capabilities(ctx context.Context) (Capabilities, error) {
	c.mu.Lock()
	done, caps := c.discovered, c.caps
	c.mu.Unlock()
	var err error
	if !done {
		caps, err = c.discover(ctx)
		c.mu.Lock()
		if !c.discovered && err == nil {
			c.discovered, c.caps = true, caps
		}
		c.mu.Unlock()
	}
	if c.noPatch.Load() {
		caps.Patch = false
	}
	if c.noBulk.Load() {
		caps.Bulk = false
	}
	return caps, err
}

// discover reads /ServiceProviderConfig; an error is a transient failure, and
// the defaults that come with it are not to be kept.
func (c *Client) discover(ctx context.Context) (Capabilities, error) {
	if c.noDiscovery {
		return defaultCapabilities, nil
	}
	var spc ServiceProviderConfig
	_, err := c.do(ctx, http.MethodGet, "/ServiceProviderConfig", nil, nil, nil, &spc)
	if le, ok := errors.AsType[*connector.LMSError](err); ok {
		switch le.Status {
		case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented, http.StatusBadRequest:
			return defaultCapabilities, nil
		}
		if le.Reason == reasonUndecodable {
			return defaultCapabilities, nil
		}
		return defaultCapabilities, err
	}
	if err != nil {
		return defaultCapabilities, err
	}
	if !slices.ContainsFunc(spc.Schemas, func(s string) bool { return strings.EqualFold(s, SchemaServiceProviderConfig) }) {
		return defaultCapabilities, nil
	}
	return Capabilities{
		Discovered:        true,
		Patch:             spc.Patch.Supported,
		ETag:              spc.ETag.Supported,
		Bulk:              spc.Bulk.Supported,
		BulkMaxOperations: max(spc.Bulk.MaxOperations, 0),
		BulkMaxPayload:    max(spc.Bulk.MaxPayloadSize, 0),
		Filter:            spc.Filter.Supported,
		MaxResults:        max(spc.Filter.MaxResults, 0),
	}, nil
}
