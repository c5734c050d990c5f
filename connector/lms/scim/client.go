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
// urn:hrsync:params:scim:schemas:extension:training:1.0:User (see Training); the
// client deletes them, for GDPR erasure, with a PATCH that removes the extension
// (see DeleteTraining).
//
// The client is a connector.BulkDeleter (POST /Bulk, RFC 7644 §3.7, where the
// server has it; one DELETE per account otherwise) and a connector.ActivityLister
// (one query `id eq "a" or id eq "b" ...` per batch, see IDFilter).
package scim

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	// maxScan bounds the users a client-side filter reads.
	maxScan = 1_000_000
	// maxPages bounds the requests one paged call makes, whatever the server says.
	maxPages = 20_000
	// maxBody bounds a response body the client reads.
	maxBody = 8 << 20
	// reasonUndecodable is the Reason of a 2xx answer the client cannot decode.
	reasonUndecodable = "undecodable response body"
)

var _ connector.LMS = (*Client)(nil)

// Client talks SCIM 2.0 to an LMS. It is safe for concurrent use.
//
// It learns what the server supports from /ServiceProviderConfig (see
// Capabilities) and from the server's answers: a PATCH refused with 405 or 501
// switches SetActive and UpdateAccount to PUT for good, and the filter form that found an account
// is tried first from then on (see FindAccounts).
type Client struct {
	base      string // the SCIM root, without a trailing slash
	hc        *http.Client
	timeout   time.Duration
	userAgent string
	auth      func(*http.Request)
	now       func() time.Time
	rootCAs   *x509.CertPool
	// wrap wraps the transport (WithTransportWrapper); nil: as it is.
	wrap      func(http.RoundTripper) http.RoundTripper
	scanAttrs map[connector.FilterAttr]bool
	optErr    error

	noDiscovery bool
	noPatch     atomic.Bool // the server refused PATCH with 405 or 501
	// noPatchUpdate: the server refused UpdateAccount's PATCH with a 400 that
	// says it cannot apply it, and took the PUT (see UpdateAccount).
	noPatchUpdate atomic.Bool
	noBulk        atomic.Bool // the server answered POST /Bulk with 404, 405 or 501
	noIDFilter    atomic.Bool // the server does not evaluate OR'ed id filters (see ActivityOf)
	noOrFilter    atomic.Bool // the server does not evaluate OR'ed attribute filters (see FindAccountsIn)
	// searchBatch is the most values of one POST /Users/.search; <= 0: never.
	searchBatch int
	searchState atomic.Int32 // searchUnknown, searchWorks, searchOff (search.go)
	searchProbe sync.Mutex   // held by the .search that finds out whether there is one
	orBound     atomic.Int32 // after a 400 tooMany: the most values of one query; 0: none
	log         *slog.Logger

	mu         sync.Mutex
	discovered bool
	caps       Capabilities
	filterForm map[string]int // learned: filter key → index of the form that found accounts
	// probes are, per attribute, a value an account on this server is known to
	// have (it was created with it, or a lookup found it): a batch lookup whose
	// filter form is not learned yet asks for it too, so that the form is
	// proven by a hit and the other forms need not be asked (reads.go).
	probes map[connector.FilterAttr]string
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (transport, TLS, proxies). The default is a
// new http.Client; timeouts come from WithTimeout, not from hc.Timeout.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithRootCAs makes the client trust servers whose certificate chains to pool
// (and only those), e.g. an LMS behind a company CA. It applies to the HTTP
// client's *http.Transport, cloned so that the caller's is not changed.
func WithRootCAs(pool *x509.CertPool) Option { return func(c *Client) { c.rootCAs = pool } }

// WithCACertFile is WithRootCAs with the PEM certificates in the file at path.
// New fails if the file cannot be read or holds no certificate.
func WithCACertFile(path string) Option {
	return func(c *Client) {
		pem, err := os.ReadFile(path)
		if err != nil {
			c.optErr = fmt.Errorf("scim: CA file: %w", err)
			return
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			c.optErr = fmt.Errorf("scim: CA file %s: no PEM certificate in it", path)
			return
		}
		c.rootCAs = pool
	}
}

// WithClientSideFilter makes FindAccounts page through every user and filter
// client-side for the given attributes, for servers that accept a filter on them
// but cannot evaluate it (they answer no match). It costs a full read per lookup.
func WithClientSideFilter(attrs ...connector.FilterAttr) Option {
	return func(c *Client) {
		for _, a := range attrs {
			c.scanAttrs[a] = true
		}
	}
}

// WithoutDiscovery skips /ServiceProviderConfig and assumes the conservative
// defaults (see Capabilities).
func WithoutDiscovery() Option { return func(c *Client) { c.noDiscovery = true } }

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

// WithTransportWrapper wraps the HTTP client's transport, after every other
// option (WithRootCAs needs the bare *http.Transport): for instrumentation such
// as OpenTelemetry's otelhttp.NewTransport, which makes a client span of every
// request and propagates the trace to the LMS. The caller's client is not changed.
func WithTransportWrapper(wrap func(http.RoundTripper) http.RoundTripper) Option {
	return func(c *Client) { c.wrap = wrap }
}

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// New returns a client for the SCIM root baseURL, e.g.
// "https://lms.example.com/scim/v2".
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("scim: base URL: %w", redactURLError(err))
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("scim: base URL %q: want http(s)://host/path", RedactURL(baseURL))
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("scim: base URL %q: must not have a query or fragment", RedactURL(baseURL))
	}
	c := &Client{
		base:        strings.TrimRight(baseURL, "/"),
		hc:          &http.Client{},
		timeout:     DefaultTimeout,
		userAgent:   "hrsync-scim/1",
		auth:        func(*http.Request) {},
		now:         time.Now,
		scanAttrs:   map[connector.FilterAttr]bool{},
		filterForm:  map[string]int{},
		probes:      map[connector.FilterAttr]string{},
		searchBatch: DefaultSearchBatch,
		log:         slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		o(c)
	}
	if c.optErr != nil {
		return nil, c.optErr
	}
	if c.rootCAs != nil {
		if err := c.trust(c.rootCAs); err != nil {
			return nil, err
		}
	}
	if c.wrap != nil {
		hc := *c.hc
		rt := hc.Transport
		if rt == nil {
			rt = http.DefaultTransport
		}
		hc.Transport = c.wrap(rt)
		c.hc = &hc
	}
	return c, nil
}

// trust replaces c.hc by a copy whose transport trusts only pool.
func (c *Client) trust(pool *x509.CertPool) error {
	var t *http.Transport
	switch rt := c.hc.Transport.(type) {
	case nil:
		t = http.DefaultTransport.(*http.Transport).Clone()
	case *http.Transport:
		t = rt.Clone()
	default:
		return fmt.Errorf("scim: WithRootCAs needs an *http.Transport, the HTTP client has a %T", rt)
	}
	if t.TLSClientConfig == nil {
		t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	} else {
		t.TLSClientConfig = t.TLSClientConfig.Clone()
	}
	t.TLSClientConfig.RootCAs = pool
	hc := *c.hc
	hc.Transport = t
	c.hc = &hc
	return nil
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
	h, err := c.do(ctx, http.MethodGet, userPath(id), nil, nil, nil, &u)
	if err == nil && u.ID == "" {
		u.ID = id
	}
	if err == nil && (u.Meta == nil || u.Meta.Version == "") && h.Get("ETag") != "" {
		if u.Meta == nil {
			u.Meta = &Meta{}
		}
		u.Meta.Version = h.Get("ETag")
	}
	return u, err
}

// FindAccounts returns every account that matches f, following pages until all
// are read. It filters the server's answer again with f.Matches, so that a server
// that ignores or loosens the filter cannot make hrsync act on the wrong account.
// Several accounts may match (say, two with one externalId): all are returned,
// and the caller decides; the client never picks one.
//
// Servers differ in the filter forms they evaluate, so the client has a short
// list of equivalent forms per attribute (emails.value eq, then emails[value eq];
// the enterprise URN-qualified employeeNumber, then the bare name; for a value
// with a quote or backslash, which some servers do not unescape, a starts-with
// on the part before it). It tries them in order until one finds an account,
// skipping forms the server rejects with 400 or 501, and tries the form that
// found one first from then on; once a form has found an account, a miss is a
// miss after one request. Without filter support (ServiceProviderConfig), or for
// the attributes of WithClientSideFilter, it reads every user instead.
func (c *Client) FindAccounts(ctx context.Context, f connector.AccountFilter) ([]connector.Account, error) {
	forms, err := filterForms(f)
	if err != nil {
		return nil, &connector.LMSError{Kind: connector.KindInvalid, Op: "GET /Users", Reason: err.Error()}
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	caps := c.Capabilities(ctx)
	if !caps.Filter || c.scanAttrs[f.Attr] {
		return c.query(ctx, "", f, caps, maxScan)
	}
	key := string(f.Attr)
	if needsEscape(f.Value) {
		key += "/escaped"
	}
	c.mu.Lock()
	learned, known := c.filterForm[key]
	c.mu.Unlock()
	order := make([]int, 0, len(forms))
	if known && learned < len(forms) {
		order = append(order, learned)
	}
	for i := range forms {
		if !known || i != learned {
			order = append(order, i)
		}
	}
	var rejected error
	tried := 0
	for _, i := range order {
		out, err := c.query(ctx, forms[i], f, caps, maxFindResults)
		if le, ok := errors.AsType[*connector.LMSError](err); ok &&
			(le.Status == http.StatusBadRequest || le.Status == http.StatusNotImplemented) {
			rejected = err
			continue
		}
		if err != nil {
			return nil, err
		}
		tried++
		if len(out) > 0 {
			c.mu.Lock()
			c.filterForm[key] = i
			c.mu.Unlock()
			return out, nil
		}
		if known && i == learned {
			break // this form has found accounts on this server: a real miss
		}
	}
	if tried == 0 {
		return nil, rejected
	}
	return []connector.Account{}, nil
}

// needsEscape reports whether a filter value has characters that need escaping
// in a SCIM string literal.
func needsEscape(v string) bool { return strings.ContainsAny(v, `"\`) }

// query pages through GET /Users with the filter expr (none if empty) and returns
// the accounts that pass f.Matches. It advances by the number of resources each
// page had, not by the count asked, until totalResults, and stops on a page that
// repeats earlier ids or is empty. More than limit users read is an error.
func (c *Client) query(ctx context.Context, expr string, f connector.AccountFilter, caps Capabilities, limit int) ([]connector.Account, error) {
	size := pageSize
	if caps.MaxResults > 0 {
		size = min(size, caps.MaxResults)
	}
	out := []connector.Account{}
	seen := map[string]bool{}
	for start, pages := 1, 0; pages < maxPages; pages++ {
		q := url.Values{"startIndex": {strconv.Itoa(start)}, "count": {strconv.Itoa(size)}}
		if expr != "" {
			q.Set("filter", expr)
		}
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
		case len(seen) > limit:
			return nil, &connector.LMSError{Kind: connector.KindInvalid, Op: "GET /Users",
				Reason: fmt.Sprintf("a lookup by %s reads more than %d accounts", f.Attr, limit)}
		case fresh == 0 || start > lr.TotalResults:
			// Done, or a server that repeats pages: stop rather than loop.
			return out, nil
		}
	}
	return out, nil
}

// ListAccounts returns up to count accounts from the 1-based startIndex. A server
// that answers with fewer than count before the end (its own page cap) is asked
// again from where it stopped, so that only the last page is short.
func (c *Client) ListAccounts(ctx context.Context, startIndex, count int) (connector.AccountPage, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	startIndex, count = max(startIndex, 1), max(count, 0)
	page := connector.AccountPage{StartIndex: startIndex, Accounts: []connector.Account{}}
	next := startIndex
	for pages := 0; pages < maxPages; pages++ {
		want := count - len(page.Accounts)
		q := url.Values{"startIndex": {strconv.Itoa(next)}, "count": {strconv.Itoa(want)}}
		lr, err := c.list(ctx, q)
		if err != nil {
			return connector.AccountPage{}, err
		}
		page.TotalResults = lr.TotalResults
		got := lr.Resources[:min(len(lr.Resources), want)]
		for _, u := range got {
			page.Accounts = append(page.Accounts, ToAccount(u))
		}
		next += len(got)
		if len(got) == 0 || len(page.Accounts) >= count || next > lr.TotalResults {
			break
		}
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
// userName or externalId is taken. A server that answers 201 without the user in
// the body is asked for it: at its Location if it gave one, else by externalId
// (or userName).
func (c *Client) CreateAccount(ctx context.Context, a connector.Account) (connector.Account, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	a.ID, a.Version, a.Created = "", "", time.Time{}
	var u User
	h, err := c.do(ctx, http.MethodPost, "/Users", nil, FromAccount(a), nil, &u)
	if err != nil {
		return connector.Account{}, err
	}
	if u.ID != "" {
		c.noteProbes(a)
		return withETag(ToAccount(u), h), nil
	}
	if id := idFromLocation(h.Get("Location")); id != "" {
		return c.GetAccount(ctx, id)
	}
	f := connector.AccountFilter{Attr: connector.ByExternalID, Value: a.ExternalID}
	if a.ExternalID == "" {
		f = connector.AccountFilter{Attr: connector.ByUserName, Value: a.UserName}
	}
	found, err := c.FindAccounts(ctx, f)
	if err != nil {
		return connector.Account{}, err
	}
	if len(found) != 1 {
		return connector.Account{}, &connector.LMSError{Kind: connector.KindUnavailable, Op: "POST /Users",
			Reason: fmt.Sprintf("created, but the answer has no id and %d accounts have its %s", len(found), f.Attr)}
	}
	return found[0], nil
}

// idFromLocation returns the unescaped last path segment of a Location header
// that points at a user ("…/Users/{id}"), or "".
func idFromLocation(loc string) string {
	u, err := url.Parse(loc)
	if err != nil {
		return ""
	}
	_, rest, ok := strings.Cut(u.EscapedPath(), "/Users/")
	if !ok || rest == "" || strings.Contains(rest, "/") {
		return ""
	}
	id, err := url.PathUnescape(rest)
	if err != nil {
		return ""
	}
	return id
}

// UpdateAccount replaces the externalId, userName and profile of a.ID: with one
// PATCH (RFC 7644 §3.5.2) where the server has PATCH, else with a read and a PUT.
//
// The PATCH (see patchOps) changes exactly what the PUT would: each managed
// attribute is replaced, or removed when the account's field is empty; name and
// the enterprise manager are replaced whole; every other attribute, active, the
// enterprise extension's other fields (organization included, which an update
// does not move) and the training extension are left as they are. Where the
// server has ETags and a.Version is set, it is conditional on a.Version (a server
// with a newer version answers 412, connector.ErrPrecondition). Without a.Version
// it is unconditional: there is no read to take a version from, so a caller that
// wants a conditional write passes Version. A 200 carries the user as stored; a
// 204 costs one GET.
//
// A server that refuses the PATCH as unsupported gets the read and PUT instead:
// 405 or 501 turns PATCH off for the client (as for SetActive); a 400 that names
// the path, the syntax or the target (invalidPath, invalidSyntax, noTarget,
// mutability, or no scimType) turns it off for updates only, once the PUT has
// succeeded where the PATCH did not.
//
// The PUT replaces the whole resource, so the client first reads the user and
// sends back what it does not manage (other attributes and extension fields, and
// active: activation changes only through SetActive) unchanged. Where the server
// has ETags, the PUT is conditional: on a.Version if set, else on the version
// just read.
func (c *Client) UpdateAccount(ctx context.Context, a connector.Account) (connector.Account, error) {
	if a.ID == "" {
		return connector.Account{}, &connector.LMSError{Kind: connector.KindInvalid, Op: "PUT /Users/", Reason: "account id is empty"}
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	caps := c.Capabilities(ctx)
	if !caps.Patch || c.noPatchUpdate.Load() {
		return c.putAccount(ctx, a, caps)
	}
	out, err := c.patchAccount(ctx, a, caps)
	le, ok := errors.AsType[*connector.LMSError](err)
	if !ok || !patchUnsupported(le) {
		return out, err
	}
	if le.Status == http.StatusMethodNotAllowed || le.Status == http.StatusNotImplemented {
		c.noPatch.Store(true)
	}
	out, err = c.putAccount(ctx, a, caps)
	if err == nil && le.Status == http.StatusBadRequest {
		c.noPatchUpdate.Store(true)
	}
	return out, err
}

// patchUnsupported reports whether the answer to a PATCH says the server cannot
// apply it as sent (rather than that the values are wrong or the user is gone).
func patchUnsupported(le *connector.LMSError) bool {
	switch le.Status {
	case http.StatusMethodNotAllowed, http.StatusNotImplemented:
		return true
	case http.StatusBadRequest:
		switch le.Code {
		case "", ErrInvalidPath, ErrInvalidSyntax, ErrNoTarget, ErrMutability:
			return true
		}
	}
	return false
}

// patchAccount sends the one PATCH of UpdateAccount.
func (c *Client) patchAccount(ctx context.Context, a connector.Account, caps Capabilities) (connector.Account, error) {
	ops, err := patchOps(a)
	if err != nil {
		return connector.Account{}, &connector.LMSError{Kind: connector.KindInvalid, Op: "PATCH " + userPath(a.ID), Err: err}
	}
	var hdr http.Header
	if caps.ETag && a.Version != "" {
		hdr = http.Header{"If-Match": {a.Version}}
	}
	var u User
	h, err := c.do(ctx, http.MethodPatch, userPath(a.ID), nil, PatchOp{Schemas: []string{MessagePatchOp}, Operations: ops}, hdr, &u)
	if err != nil {
		if le, ok := errors.AsType[*connector.LMSError](err); ok && patchUnsupported(le) {
			return connector.Account{}, err
		}
		return connector.Account{}, c.gone(ctx, a.ID, err)
	}
	if u.ID == "" {
		// 204 No Content is allowed (RFC 7644 §3.5.2); read the result back.
		return c.GetAccount(ctx, a.ID)
	}
	return withETag(ToAccount(u), h), nil
}

// putAccount is UpdateAccount without PATCH: GET, then PUT of replaceManaged.
func (c *Client) putAccount(ctx context.Context, a connector.Account, caps Capabilities) (connector.Account, error) {
	raw, cur, err := c.getRaw(ctx, a.ID)
	if err != nil {
		return connector.Account{}, err
	}
	body, err := replaceManaged(raw, FromAccount(a))
	if err != nil {
		return connector.Account{}, &connector.LMSError{Kind: connector.KindInvalid, Op: "PUT " + userPath(a.ID), Err: err}
	}
	ifMatch := a.Version
	if ifMatch == "" {
		ifMatch = cur.Version
	}
	return c.put(ctx, a.ID, body, ifMatch, caps)
}

// put sends body as PUT /Users/{id}, with If-Match when the server has ETags,
// and returns the account as stored.
func (c *Client) put(ctx context.Context, id string, body map[string]json.RawMessage, ifMatch string, caps Capabilities) (connector.Account, error) {
	var hdr http.Header
	if caps.ETag && ifMatch != "" {
		hdr = http.Header{"If-Match": {ifMatch}}
	}
	var out User
	h, err := c.do(ctx, http.MethodPut, userPath(id), nil, body, hdr, &out)
	if err != nil {
		return connector.Account{}, c.gone(ctx, id, err)
	}
	if out.ID == "" {
		return c.GetAccount(ctx, id)
	}
	return withETag(ToAccount(out), h), nil
}

// getRaw reads the user id both as raw attributes and as an account.
func (c *Client) getRaw(ctx context.Context, id string) (map[string]json.RawMessage, connector.Account, error) {
	var raw map[string]json.RawMessage
	h, err := c.do(ctx, http.MethodGet, userPath(id), nil, nil, nil, &raw)
	if err != nil {
		return nil, connector.Account{}, err
	}
	b, _ := json.Marshal(raw)
	var u User
	if err := json.Unmarshal(b, &u); err != nil {
		return nil, connector.Account{}, &connector.LMSError{Kind: connector.KindUnavailable, Op: "GET " + userPath(id),
			Reason: reasonUndecodable, Err: err}
	}
	return raw, withETag(ToAccount(u), h), nil
}

// SetActive sets active with a PATCH replace (RFC 7644 §3.5.2.3). A server
// without PATCH (its ServiceProviderConfig says so, or it answers 405 or 501,
// which the client remembers) gets a PUT of the user as just read, with active
// changed, conditional on its version where the server has ETags.
func (c *Client) SetActive(ctx context.Context, id string, active bool) (connector.Account, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	caps := c.Capabilities(ctx)
	if caps.Patch {
		a, err := c.patchActive(ctx, id, active)
		le, ok := errors.AsType[*connector.LMSError](err)
		if !ok || (le.Status != http.StatusMethodNotAllowed && le.Status != http.StatusNotImplemented) {
			return a, err
		}
		c.noPatch.Store(true)
	}
	// The PUT is conditional on the version just read; when another write got
	// in between (412), read again: active=X does not depend on what changed.
	var err error
	for range putAttempts {
		var raw map[string]json.RawMessage
		var cur connector.Account
		raw, cur, err = c.getRaw(ctx, id)
		if err != nil {
			return connector.Account{}, err
		}
		delete(raw, "meta")
		for k := range raw {
			if strings.EqualFold(k, "active") {
				delete(raw, k)
			}
		}
		raw["active"] = json.RawMessage(strconv.FormatBool(active))
		var a connector.Account
		a, err = c.put(ctx, id, raw, cur.Version, caps)
		if !errors.Is(err, connector.ErrPrecondition) {
			return a, err
		}
	}
	return connector.Account{}, err
}

// putAttempts bounds the read-and-PUT rounds of SetActive without PATCH.
const putAttempts = 5

func (c *Client) patchActive(ctx context.Context, id string, active bool) (connector.Account, error) {
	body := PatchOp{
		Schemas:    []string{MessagePatchOp},
		Operations: []PatchOperation{{Op: "replace", Path: "active", Value: json.RawMessage(strconv.FormatBool(active))}},
	}
	var u User
	h, err := c.do(ctx, http.MethodPatch, userPath(id), nil, body, nil, &u)
	if err != nil {
		if le, ok := errors.AsType[*connector.LMSError](err); ok &&
			(le.Status == http.StatusMethodNotAllowed || le.Status == http.StatusNotImplemented) {
			return connector.Account{}, err
		}
		return connector.Account{}, c.gone(ctx, id, err)
	}
	if u.ID == "" {
		// 204 No Content is allowed (RFC 7644 §3.5.2); read the result back.
		return c.GetAccount(ctx, id)
	}
	return withETag(ToAccount(u), h), nil
}

// DeleteAccount deletes the account id. Returns an error matching
// connector.ErrNotFound if there is none.
func (c *Client) DeleteAccount(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	_, err := c.do(ctx, http.MethodDelete, userPath(id), nil, nil, nil, nil)
	return c.gone(ctx, id, err)
}

// gone turns a 500 to a write on id into not-found when GET says the user does
// not exist: some servers answer 500 for PUT, PATCH or DELETE of a missing user.
// Any other error, or a GET that finds the user or fails, leaves err as it is.
func (c *Client) gone(ctx context.Context, id string, err error) error {
	le, ok := errors.AsType[*connector.LMSError](err)
	if !ok || le.Status != http.StatusInternalServerError {
		return err
	}
	if _, gerr := c.do(ctx, http.MethodGet, userPath(id), nil, nil, nil, nil); errors.Is(gerr, connector.ErrNotFound) {
		return &connector.LMSError{Kind: connector.KindNotFound, Op: le.Op, Status: le.Status,
			Reason: "the server answered 500 and GET says the user does not exist", Err: err}
	}
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
		// The error names the URL, whose query may hold a filter value such as an
		// email: redact it here, so that no consumer of the error sees it.
		return nil, &connector.LMSError{Kind: connector.KindUnavailable, Op: op, Err: redactURLError(err)}
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
				Reason: reasonUndecodable, Err: err}
		}
	}
	return resp.Header, nil
}

// noteProbes remembers a's email and employee number as values an account on
// this server has, for the batch lookups whose filter form is not learned yet
// (reads.go).
func (c *Client) noteProbes(a connector.Account) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v := a.Profile.Email; v != "" {
		c.probes[connector.ByEmail] = v
	}
	if v := a.Profile.EmployeeNumber; v != "" {
		c.probes[connector.ByEmployeeNumber] = v
	}
}
