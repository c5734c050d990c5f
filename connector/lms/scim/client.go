// Package scim is the SCIM 2.0 (RFC 7643/7644) adapter of the connector.LMS port,
// and the one definition of the SCIM wire format in hrsync: the sandbox LMS serves
// the same types.
//
// Accounts map to SCIM Users as follows:
//
//	Account.ID                 id
//	Account.ExternalID         externalId
//	Account.UserName           userName
//	Account.Active             active
//	Account.Version            meta.version (the ETag)
//	Account.Created            meta.created
//	Profile.Email              emails[{value, type: "work", primary: true}]
//	Profile.GivenName          name.givenName
//	Profile.FamilyName         name.familyName
//	Profile.JobTitle           title
//	Profile.Locale             locale
//	Profile.EmployeeNumber     urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber
//	Profile.OrgUnit            urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department
//	Profile.ManagerID          urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value
//
// Servers that keep learning records may report them in the read-only extension
// urn:hrsync:params:scim:schemas:extension:training:1.0:User (see Training).
package scim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hrsync/hrsync/connector"
)

const (
	// DefaultTimeout bounds every call unless WithTimeout says otherwise.
	DefaultTimeout = 15 * time.Second
	// pageSize is the count the client asks for when it pages.
	pageSize = 100
	// maxFindResults bounds FindAccounts: a lookup that matches more accounts than
	// this is a broken filter, not a match.
	maxFindResults = 10000
	// maxBody bounds a response body the client reads.
	maxBody = 8 << 20
)

var _ connector.LMS = (*Client)(nil)

// Client talks SCIM 2.0 to an LMS. It is safe for concurrent use.
type Client struct {
	base      string // the SCIM root, without a trailing slash
	hc        *http.Client
	timeout   time.Duration
	userAgent string
	auth      func(*http.Request)
	now       func() time.Time
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (transport, TLS, proxies). The default is a
// new http.Client; timeouts come from WithTimeout, not from hc.Timeout.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithBearerToken authenticates every request with "Authorization: Bearer token".
func WithBearerToken(token string) Option {
	return func(c *Client) {
		c.auth = func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }
	}
}

// WithBasicAuth authenticates every request with HTTP basic authentication.
func WithBasicAuth(user, pass string) Option {
	return func(c *Client) { c.auth = func(r *http.Request) { r.SetBasicAuth(user, pass) } }
}

// WithTimeout bounds each call (all of its requests, for a paged FindAccounts).
// The default is DefaultTimeout; d <= 0 keeps it.
func WithTimeout(d time.Duration) Option {
	return func(c *Client) {
		if d > 0 {
			c.timeout = d
		}
	}
}

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// New returns a client for the SCIM root baseURL, e.g.
// "https://lms.example.com/scim/v2".
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("scim: base URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("scim: base URL %q: want http(s)://host/path", baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("scim: base URL %q: must not have a query or fragment", baseURL)
	}
	c := &Client{
		base:      strings.TrimRight(baseURL, "/"),
		hc:        &http.Client{},
		timeout:   DefaultTimeout,
		userAgent: "hrsync-scim/1",
		auth:      func(*http.Request) {},
		now:       time.Now,
	}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// GetAccount returns the account id. Returns an error matching
// connector.ErrNotFound if there is none.
func (c *Client) GetAccount(ctx context.Context, id string) (connector.Account, error) {
	u, err := c.GetUser(ctx, id)
	if err != nil {
		return connector.Account{}, err
	}
	return ToAccount(u), nil
}

// GetUser returns the SCIM user id as the server sent it, including extensions
// such as Training that an Account does not carry.
func (c *Client) GetUser(ctx context.Context, id string) (User, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var u User
	_, err := c.do(ctx, http.MethodGet, userPath(id), nil, nil, nil, &u)
	return u, err
}

// FindAccounts returns every account that matches f, following pages until all
// are read. It filters the server's answer again with f.Matches, so that a server
// that ignores or loosens the filter cannot make hrsync act on the wrong account.
func (c *Client) FindAccounts(ctx context.Context, f connector.AccountFilter) ([]connector.Account, error) {
	expr, err := Filter(f)
	if err != nil {
		return nil, &connector.LMSError{Kind: connector.KindInvalid, Op: "GET /Users", Reason: err.Error()}
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	out := []connector.Account{}
	seen := map[string]bool{}
	for start := 1; ; {
		q := url.Values{"filter": {expr}, "startIndex": {strconv.Itoa(start)}, "count": {strconv.Itoa(pageSize)}}
		lr, err := c.list(ctx, q)
		if err != nil {
			return nil, err
		}
		fresh := 0
		for _, u := range lr.Resources {
			if seen[u.ID] {
				continue
			}
			seen[u.ID] = true
			fresh++
			if a := ToAccount(u); f.Matches(a) {
				out = append(out, a)
			}
		}
		start += len(lr.Resources)
		switch {
		case len(seen) > maxFindResults:
			return nil, &connector.LMSError{Kind: connector.KindInvalid, Op: "GET /Users",
				Reason: fmt.Sprintf("filter %s matches more than %d accounts", expr, maxFindResults)}
		case fresh == 0 || start > lr.TotalResults:
			// Done, or a server that repeats pages: stop rather than loop.
			return out, nil
		}
	}
}

// ListAccounts returns up to count accounts from the 1-based startIndex.
func (c *Client) ListAccounts(ctx context.Context, startIndex, count int) (connector.AccountPage, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	startIndex = max(startIndex, 1)
	q := url.Values{"startIndex": {strconv.Itoa(startIndex)}, "count": {strconv.Itoa(max(count, 0))}}
	lr, err := c.list(ctx, q)
	if err != nil {
		return connector.AccountPage{}, err
	}
	page := connector.AccountPage{
		Accounts:     make([]connector.Account, 0, len(lr.Resources)),
		StartIndex:   lr.StartIndex,
		TotalResults: lr.TotalResults,
	}
	if page.StartIndex == 0 {
		page.StartIndex = startIndex
	}
	for _, u := range lr.Resources {
		page.Accounts = append(page.Accounts, ToAccount(u))
	}
	return page, nil
}

func (c *Client) list(ctx context.Context, q url.Values) (ListResponse, error) {
	var lr ListResponse
	_, err := c.do(ctx, http.MethodGet, "/Users", q, nil, nil, &lr)
	return lr, err
}

// CreateAccount creates a (its ID and Version are ignored) and returns it as the
// server stored it. Returns an error matching connector.ErrConflict if the
// userName or externalId is taken.
func (c *Client) CreateAccount(ctx context.Context, a connector.Account) (connector.Account, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	a.ID, a.Version, a.Created = "", "", time.Time{}
	var u User
	h, err := c.do(ctx, http.MethodPost, "/Users", nil, FromAccount(a), nil, &u)
	if err != nil {
		return connector.Account{}, err
	}
	return withETag(ToAccount(u), h), nil
}

// UpdateAccount replaces the externalId, userName and profile of a.ID with PUT.
// It leaves active out of the body: activation changes only through SetActive.
// When a.Version is set it is sent as If-Match, and a server that has a newer
// version answers 412 (connector.ErrPrecondition).
func (c *Client) UpdateAccount(ctx context.Context, a connector.Account) (connector.Account, error) {
	if a.ID == "" {
		return connector.Account{}, &connector.LMSError{Kind: connector.KindInvalid, Op: "PUT /Users/", Reason: "account id is empty"}
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	u := FromAccount(a)
	u.Active, u.Meta = nil, nil
	var hdr http.Header
	if a.Version != "" {
		hdr = http.Header{"If-Match": {a.Version}}
	}
	var out User
	h, err := c.do(ctx, http.MethodPut, userPath(a.ID), nil, u, hdr, &out)
	if err != nil {
		return connector.Account{}, err
	}
	return withETag(ToAccount(out), h), nil
}

// SetActive sets active with a PATCH replace (RFC 7644 §3.5.2.3).
func (c *Client) SetActive(ctx context.Context, id string, active bool) (connector.Account, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	body := PatchOp{
		Schemas:    []string{MessagePatchOp},
		Operations: []PatchOperation{{Op: "replace", Path: "active", Value: json.RawMessage(strconv.FormatBool(active))}},
	}
	var u User
	h, err := c.do(ctx, http.MethodPatch, userPath(id), nil, body, nil, &u)
	if err != nil {
		return connector.Account{}, err
	}
	if u.ID == "" {
		// 204 No Content is allowed (RFC 7644 §3.5.2); read the result back.
		if _, err := c.do(ctx, http.MethodGet, userPath(id), nil, nil, nil, &u); err != nil {
			return connector.Account{}, err
		}
	}
	return withETag(ToAccount(u), h), nil
}

// DeleteAccount deletes the account id. Returns an error matching
// connector.ErrNotFound if there is none.
func (c *Client) DeleteAccount(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	_, err := c.do(ctx, http.MethodDelete, userPath(id), nil, nil, nil, nil)
	return err
}

func userPath(id string) string { return "/Users/" + url.PathEscape(id) }

// withETag fills a.Version from the ETag header when the body had no meta.version.
func withETag(a connector.Account, h http.Header) connector.Account {
	if a.Version == "" && h != nil {
		a.Version = h.Get("ETag")
	}
	return a
}

// do sends one request to c.base+path and decodes a 2xx body into out (if not nil).
// Every failure is an *connector.LMSError whose Op is "METHOD path".
func (c *Client) do(ctx context.Context, method, path string, q url.Values, in any, hdr http.Header, out any) (http.Header, error) {
	op := method + " " + path
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, &connector.LMSError{Kind: connector.KindInvalid, Op: op, Err: err}
		}
		body = bytes.NewReader(b)
	}
	target := c.base + path
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, &connector.LMSError{Kind: connector.KindInvalid, Op: op, Err: err}
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	req.Header.Set("Accept", MediaType+", application/json")
	if in != nil {
		req.Header.Set("Content-Type", MediaType)
	}
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	c.auth(req)

	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, &connector.LMSError{Kind: connector.KindUnavailable, Op: op, Err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, &connector.LMSError{Kind: connector.KindUnavailable, Op: op, Status: resp.StatusCode, Err: err}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, statusError(op, resp, b, c.now())
	}
	if out != nil && len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			// The server said yes but we cannot read what it did: retry later
			// (the converger reads the account again first).
			return nil, &connector.LMSError{Kind: connector.KindUnavailable, Op: op, Status: resp.StatusCode,
				Reason: "undecodable response body", Err: err}
		}
	}
	return resp.Header, nil
}
