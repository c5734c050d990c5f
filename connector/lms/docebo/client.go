package docebo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/lmshttp"
)

// Client is a connector.LMS that speaks Docebo's REST API. It is safe for
// concurrent use, except that branch calls are serialised (see branches.go).
type Client struct {
	base   *url.URL
	http   *http.Client
	oauth  clientcredentials.Config
	fields Fields
	now    func() time.Time
	// maxBatch bounds change_status, delete and enrollment reads per call.
	maxBatch int

	// lastTotal is how many users the last unfiltered list reported: what a
	// walk through every user costs (GetAccounts chooses by it).
	lastTotal atomic.Int64

	tokMu sync.Mutex
	tok   *oauth2.Token

	// branchMu serialises every branch call: Docebo warns that concurrent
	// branch calls can corrupt the branch tree.
	branchMu sync.Mutex
	branches map[string]int // branch code (folded) -> branch id, under branchMu
}

var (
	_ connector.LMS            = (*Client)(nil)
	_ connector.ActiveSetter   = (*Client)(nil)
	_ connector.BulkDeleter    = (*Client)(nil)
	_ connector.ActivityReader = (*Client)(nil)
	_ connector.ActivityLister = (*Client)(nil)
	_ connector.TrainingReader = (*Client)(nil)
)

// DefaultMaxBatch is how many user ids one change_status, delete or
// enrollment read carries by default. Docebo documents no cap for these calls;
// its community guides cap other bulk calls at 250 and 1,000 users, so 200 (its
// page size) stays clear of both.
const DefaultMaxBatch = 200

// PageSize is the most users Docebo returns per page of GET /manage/v1/user.
const PageSize = 200

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client for API and token calls.
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithFields says where the externalId and the profile fields live (see Fields).
func WithFields(f Fields) Option { return func(c *Client) { c.fields = f } }

// WithMaxBatch sets how many ids one batch call carries (default DefaultMaxBatch).
func WithMaxBatch(n int) Option { return func(c *Client) { c.maxBatch = n } }

// WithClock sets the clock that reads Retry-After dates.
func WithClock(now func() time.Time) Option { return func(c *Client) { c.now = now } }

// New returns a client for the Docebo platform at baseURL (e.g.
// https://acme.docebosaas.com), authenticating with OAuth2 client credentials
// at baseURL/oauth2/token.
func New(baseURL, clientID, clientSecret string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("docebo: url %q: want http(s)://host[/path]", baseURL)
	}
	if clientID == "" || clientSecret == "" {
		return nil, errors.New("docebo: client id and client secret are required (OAuth2 client credentials)")
	}
	c := &Client{base: u, http: &http.Client{Timeout: 30 * time.Second}, now: time.Now, maxBatch: DefaultMaxBatch,
		fields: Fields{ExternalID: UserNameField}, branches: map[string]int{}}
	for _, o := range opts {
		o(c)
	}
	if err := c.fields.validate(); err != nil {
		return nil, err
	}
	if c.maxBatch <= 0 {
		c.maxBatch = DefaultMaxBatch
	}
	c.oauth = clientcredentials.Config{
		ClientID: clientID, ClientSecret: clientSecret,
		TokenURL: u.String() + "/oauth2/token", Scopes: []string{"api"},
		// Docebo reads the credentials from the form body, not Basic auth.
		AuthStyle: oauth2.AuthStyleInParams,
	}
	return c, nil
}

// token returns the cached access token, fetching a new one when there is none
// or it expired.
func (c *Client) token(ctx context.Context) (*oauth2.Token, error) {
	c.tokMu.Lock()
	defer c.tokMu.Unlock()
	if c.tok.Valid() {
		return c.tok, nil
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, c.http)
	t, err := c.oauth.Token(ctx)
	if err != nil {
		return nil, tokenError(err, c.now())
	}
	c.tok = t
	return t, nil
}

// dropToken forgets t if it is still the cached token, so that the next call
// fetches a fresh one.
func (c *Client) dropToken(t *oauth2.Token) {
	c.tokMu.Lock()
	defer c.tokMu.Unlock()
	if c.tok == t {
		c.tok = nil
	}
}

// tokenError classifies a failed token request like any other call.
func tokenError(err error, now time.Time) error {
	const op = "POST /oauth2/token"
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		e := &connector.LMSError{Kind: lmshttp.KindOf(re.Response.StatusCode), Op: op, Status: re.Response.StatusCode,
			Reason: cmpOr(re.ErrorCode, http.StatusText(re.Response.StatusCode)), Code: re.ErrorCode,
			RetryAfter: lmshttp.RetryAfter(re.Response.Header.Get("Retry-After"), now)}
		if e.Kind == connector.KindInvalid {
			e.Kind = connector.KindAuth // a refused client is a credentials problem
		}
		return e
	}
	return &connector.LMSError{Kind: connector.KindUnavailable, Op: op, Err: err}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// call sends one API request with the cached token, and once more with a fresh
// token if the answer is 401 (the token expired or was revoked). A 2xx answer's
// body is decoded into out (if not nil) as Docebo's envelope {"data": ...}.
func (c *Client) call(ctx context.Context, method, path string, q url.Values, body, out any) error {
	op := method + " " + path
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return &connector.LMSError{Kind: connector.KindInvalid, Op: op, Err: err}
		}
	}
	for attempt := 0; ; attempt++ {
		tok, err := c.token(ctx)
		if err != nil {
			return err
		}
		status, hdr, data, err := c.send(ctx, method, path, q, payload, tok)
		if err != nil {
			return &connector.LMSError{Kind: connector.KindUnavailable, Op: op, Err: err}
		}
		if status == http.StatusUnauthorized && attempt == 0 {
			c.dropToken(tok)
			continue
		}
		if status < 200 || status > 299 {
			return statusError(op, status, hdr, data, c.now())
		}
		if out == nil {
			return nil
		}
		var env struct {
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(data, &env); err != nil || len(env.Data) == 0 {
			return &connector.LMSError{Kind: connector.KindUnavailable, Op: op, Status: status,
				Reason: "answer is not Docebo's {\"data\": ...} envelope"}
		}
		if err := json.Unmarshal(env.Data, out); err != nil {
			return &connector.LMSError{Kind: connector.KindUnavailable, Op: op, Status: status, Reason: "unexpected answer", Err: err}
		}
		return nil
	}
}

// maxBody bounds what is read of one answer (a page of 200 users is far less).
const maxBody = 16 << 20

func (c *Client) send(ctx context.Context, method, path string, q url.Values, payload []byte, tok *oauth2.Token) (int, http.Header, []byte, error) {
	u := *c.base
	u.Path += path
	u.RawQuery = q.Encode()
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Accept", "application/json")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	tok.SetAuthHeader(req)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return 0, nil, nil, err
	}
	return resp.StatusCode, resp.Header, data, nil
}

// maxReason bounds how much of Docebo's message ends up in an error.
const maxReason = 200

// statusError turns a non-2xx answer into a *connector.LMSError. Docebo's error
// body carries a "message" (a string or a list of strings); a 400 whose message
// says the username is taken is a conflict (see isTaken).
func statusError(op string, status int, hdr http.Header, body []byte, now time.Time) *connector.LMSError {
	e := &connector.LMSError{Kind: lmshttp.KindOf(status), Op: op, Status: status, Reason: http.StatusText(status),
		RetryAfter: lmshttp.RetryAfter(hdr.Get("Retry-After"), now)}
	if msg := errorMessage(body); msg != "" {
		e.Reason = lmshttp.Truncate(msg, maxReason)
		if status == http.StatusBadRequest && isTaken(msg) {
			e.Kind = connector.KindConflict
		}
	}
	return e
}

// errorMessage reads Docebo's error message: {"message": "..."} or
// {"message": ["...", ...]}, or the same inside "data".
func errorMessage(body []byte) string {
	var e struct {
		Message json.RawMessage `json:"message"`
		Data    struct {
			Message json.RawMessage `json:"message"`
		} `json:"data"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	raw := e.Message
	if len(raw) == 0 {
		raw = e.Data.Message
	}
	return messageText(raw)
}

func messageText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) == nil {
		var parts []string
		for _, m := range list {
			if t := messageText(m); t != "" {
				parts = append(parts, t)
			}
		}
		return strings.Join(parts, "; ")
	}
	var obj struct {
		Message json.RawMessage `json:"message"`
	}
	if json.Unmarshal(raw, &obj) == nil && len(obj.Message) > 0 {
		return messageText(obj.Message)
	}
	return ""
}

// isTaken reports whether Docebo's message says that a username is already
// used. Docebo documents no error code for it, so this reads the words
// (docs/lms-compat-docebo.md lists it as unconfirmed).
func isTaken(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "already") || strings.Contains(m, "taken") || strings.Contains(m, "in use") ||
		strings.Contains(m, "exists")
}

// BaseURL returns the platform root the client was made for.
func (c *Client) BaseURL() string { return c.base.String() }

// readAttempts bounds the tries of one GET inside a compound operation.
const readAttempts = 3

// read is call for a GET that is one of many in a compound operation (a walk
// through pages, a user per id): it tries again, up to readAttempts times, on a
// temporary failure whose server asks for no more than a second's wait, so that
// one lost answer does not throw away the calls already made. Longer waits are
// left to the caller (the guard), which knows the call budget.
func (c *Client) read(ctx context.Context, path string, q url.Values, out any) error {
	var err error
	for attempt := range readAttempts {
		if err = c.call(ctx, "GET", path, q, nil, out); err == nil || !retryable(err) || attempt == readAttempts-1 {
			return err
		}
		wait := 20 * time.Millisecond << attempt
		var le *connector.LMSError
		if errors.As(err, &le) && le.RetryAfter > wait {
			wait = le.RetryAfter
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
	return err
}

// retryable reports whether a compound read should try a GET again at once.
func retryable(err error) bool {
	var le *connector.LMSError
	return errors.As(err, &le) && le.Temporary() && le.RetryAfter <= time.Second
}
