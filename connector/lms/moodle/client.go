package moodle

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

	"github.com/hrsync/hrsync/connector"
)

// EndpointPath is where Moodle serves its web services over REST, under the
// site's root.
const EndpointPath = "/webservice/rest/server.php"

// DefaultMaxInputVars is PHP's default max_input_vars: the most form fields
// PHP reads from one request. It drops the rest silently, so a call that
// carries more would lose users from its end; the batch sizes are derived from
// it (see WithMaxInputVars).
const DefaultMaxInputVars = 1000

// maxBody bounds an answer; a listing of every user of a large site is the
// largest one.
const maxBody = 256 << 20

// Client is a connector.LMS over Moodle's web services (REST protocol). It is
// safe for concurrent use.
type Client struct {
	endpoint  string
	token     string
	hc        *http.Client
	fields    Fields
	maxVars   int
	userAgent string
	now       func() time.Time

	calls atomic.Int64

	// listing is the snapshot of every user that ListAccounts pages through.
	listMu  sync.Mutex
	listing []connector.Account
	listAt  time.Time
}

var (
	_ connector.LMS                = (*Client)(nil)
	_ connector.AccountBatchReader = (*Client)(nil)
	_ connector.AccountCreator     = (*Client)(nil)
	_ connector.AccountUpdater     = (*Client)(nil)
	_ connector.ActiveSetter       = (*Client)(nil)
	_ connector.BulkDeleter        = (*Client)(nil)
	_ connector.ActivityReader     = (*Client)(nil)
	_ connector.TrainingReader     = (*Client)(nil)
)

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (its transport, TLS settings and timeout).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithTimeout bounds each call; the default is 30s.
func WithTimeout(d time.Duration) Option {
	return func(c *Client) {
		if d > 0 {
			hc := *c.hc
			hc.Timeout = d
			c.hc = &hc
		}
	}
}

// WithFields says where the profile fields Moodle has no field for are kept;
// the default is DefaultFields.
func WithFields(f Fields) Option { return func(c *Client) { c.fields = f } }

// WithMaxInputVars sets the site's PHP max_input_vars when it is not the
// default 1000; batch sizes follow from it.
func WithMaxInputVars(n int) Option { return func(c *Client) { c.maxVars = n } }

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// New returns a client of the Moodle site at siteURL (its root, e.g.
// https://moodle.example.com; a URL that already ends in EndpointPath is taken
// as it is), calling with the web service token.
func New(siteURL, token string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimSpace(siteURL))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("moodle: site URL %q: want http(s)://host[/path], the site's root", siteURL)
	}
	if token == "" {
		return nil, errors.New("moodle: a web service token is required (Site administration > Server > Web services > Manage tokens)")
	}
	ep := strings.TrimSuffix(u.String(), "/")
	if !strings.HasSuffix(ep, EndpointPath) {
		ep += EndpointPath
	}
	c := &Client{endpoint: ep, token: token, hc: &http.Client{Timeout: 30 * time.Second}, fields: DefaultFields,
		maxVars: DefaultMaxInputVars, userAgent: "hrsync", now: time.Now}
	for _, o := range opts {
		o(c)
	}
	if err := c.fields.validate(); err != nil {
		return nil, err
	}
	if c.maxVars < 100 {
		return nil, fmt.Errorf("moodle: max_input_vars %d: want at least 100", c.maxVars)
	}
	return c, nil
}

// Calls returns how many web service calls the client has made.
func (c *Client) Calls() int64 { return c.calls.Load() }

// call runs the web service function fn with the parameters in fm and decodes
// its answer into out (nil: ignore it). A Moodle exception, whatever the HTTP
// status, is an *connector.LMSError classified by kindOfException.
func (c *Client) call(ctx context.Context, fn string, fm *form, out any) error {
	body := form{}
	body.set(c.token, "wstoken")
	body.set(fn, "wsfunction")
	body.set("json", "moodlewsrestformat")
	if fm != nil {
		body.keys = append(body.keys, fm.keys...)
		body.vals = append(body.vals, fm.vals...)
	}
	if n := body.len(); n > c.maxVars {
		// PHP would drop the fields beyond max_input_vars without a word.
		return &connector.LMSError{Kind: connector.KindInvalid, Op: fn,
			Reason: fmt.Sprintf("%d form fields, more than the site's max_input_vars %d", n, c.maxVars)}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, strings.NewReader(body.encode()))
	if err != nil {
		return &connector.LMSError{Kind: connector.KindInvalid, Op: fn, Err: err}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	c.calls.Add(1)
	resp, err := c.hc.Do(req)
	if err != nil {
		return &connector.LMSError{Kind: connector.KindUnavailable, Op: fn, Err: redactURL(err, c.token)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return &connector.LMSError{Kind: connector.KindUnavailable, Op: fn, Status: resp.StatusCode, Err: err}
	}
	if len(b) > maxBody {
		return &connector.LMSError{Kind: connector.KindUnavailable, Op: fn, Reason: "answer larger than 256 MiB"}
	}
	if e, ok := parseException(b); ok {
		return exceptionError(fn, resp.StatusCode, e)
	}
	if resp.StatusCode != http.StatusOK {
		return statusError(fn, resp, c.now())
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(bytes.TrimSpace(b), out); err != nil {
		return &connector.LMSError{Kind: connector.KindUnavailable, Op: fn,
			Reason: "the answer is not the JSON the function describes (is moodlewsrestformat=json honoured?)", Err: err}
	}
	return nil
}

// redactURL keeps the token out of a transport error (it is in the body, never
// in the URL, but a proxy may echo anything).
func redactURL(err error, token string) error {
	if token != "" && strings.Contains(err.Error(), token) {
		return errors.New(strings.ReplaceAll(err.Error(), token, "<token>"))
	}
	return err
}
