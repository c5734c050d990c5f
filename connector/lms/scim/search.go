package scim

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/hrsync/hrsync/connector"
)

// Batch reads in the request body: POST /Users/.search (RFC 7644 §3.4.3).
//
// ActivityOf, GetAccounts, CompletionsOf and FindAccountsIn read many users with
// one OR'ed filter (`id eq "a" or id eq "b" ...`). In a GET the filter is in the URL, which
// servers and proxies cap at a few KiB (8 KiB is common), so a GET carries at most
// 50 values (maxIDFilter). RFC 7644 §3.4.3 lets a client send the same query as
// POST {endpoint}/.search, a SearchRequest body whose parameters are those of the
// GET (filter, startIndex, count, attributes), answered with the same
// ListResponse. There the filter is bounded only by what the server accepts in a
// body, so the client sends up to the read batch in one request. (Servers agree
// on the form: PingDirectory documents POST /scim/v2/Users/.search answered 200
// with a list response "even if no matching resources are found"; Oracle's
// identity domains require the SearchRequest URN in schemas and take attributes
// as a list; elimity-com/scim routes it and answers 501 where the handler has no
// search, docs/lms-compat.md.) The bounds:
//
//   - at most DefaultSearchBatch values (or WithSearchBatch's), and at most the
//     server's filter.maxResults (RFC 7643 §5) when it states one: the values of
//     one query are lookups of (usually) one user each, and a server that returns
//     at most maxResults users a response would need a page per maxResults;
//   - at most maxSearchFilter bytes of filter, and at most half the server's
//     bulk.maxPayloadSize when it states one (the size of body it accepts);
//   - fewer, once the server answers 400 tooMany (RFC 7644 §3.12: "the specified
//     filter yields many more results than the server is willing to calculate or
//     process"): the client halves the number of values a query carries, for
//     GET and .search alike, and keeps the lower bound.
//
// Not every server has .search (it is a MAY; some answer it as /Users/{id}), and
// ServiceProviderConfig does not say. So the client tries it on the first batch
// read and remembers the answer: 404, 405 or 501, or, before a .search has ever
// succeeded, a 400 (invalidSyntax or any other: a server that takes ".search"
// for an id may answer as to a bad create) or a 2xx that is not a ListResponse,
// turn .search off for the client's lifetime (logged once, at INFO), and the
// query is sent again as GET chunks. A 400 invalidFilter before a .search has
// succeeded is ambiguous (RFC 7644 §3.12: "the specified filter syntax was
// invalid, or the specified attribute and filter comparison combination is not
// supported"): the client asks GET the same filter (where it fits a URL); if GET
// takes it, .search is off; if GET refuses it too, it is the filter the server
// cannot evaluate (an id filter, on some servers), and .search stays. A longer
// filter refused so turns .search off, and GET judges the filter in its chunks.
// After a .search has succeeded, a 400 is the filter's, as for GET.
//
// MaxReadBatch and MaxActivityBatch answer the .search bound until the server
// has shown it has none, so the first batch read of a client on such a server
// is cut into GETs inside one call: the guard counts that call once, for the
// few requests it makes, once in the client's lifetime.

const (
	// DefaultSearchBatch is the most values (ids, or one attribute's values) one
	// POST /Users/.search carries unless WithSearchBatch says otherwise: the
	// converger's claimed batch (256) in one request, and a clean-up batch.
	DefaultSearchBatch = 1000
	// maxSearchFilter bounds the filter of one .search, in bytes: 1,000 values
	// of the longest form (the enterprise URN's employeeNumber, about 100 bytes)
	// fit, well below the request bodies servers commonly accept (1 MiB).
	maxSearchFilter = 128 << 10
)

// The client's knowledge of POST /Users/.search.
const (
	searchUnknown int32 = iota // not tried yet
	searchWorks                // a .search has been answered with a ListResponse
	searchOff                  // the server does not support it: GET only
)

// errRechunk says a query was not made with the limits it was cut for: .search
// turned out unsupported, or the server answered tooMany and the bound was
// lowered. The caller cuts its values again (orLimits) and asks again; each
// happens a bounded number of times (once, and log2 of the bound).
var errRechunk = errors.New("scim: query limits changed; cut the values again")

// WithSearchBatch sets the most values one POST /Users/.search carries (see
// DefaultSearchBatch); n <= 0 never uses .search, for a server that mishandles it.
func WithSearchBatch(n int) Option {
	return func(c *Client) { c.searchBatch = n }
}

// WithLogger sets where the client logs what it learns about the server (such
// as that it has no POST /Users/.search). The default discards.
func WithLogger(log *slog.Logger) Option {
	return func(c *Client) {
		if log != nil {
			c.log = log
		}
	}
}

// orLimits are the most values and filter bytes one OR'ed query may carry now,
// and whether it goes as POST /Users/.search; n is 0 when the server does not
// filter.
type orLimits struct {
	n, bytes int
	search   bool
}

func (c *Client) orLimits(ctx context.Context) orLimits {
	caps := c.Capabilities(ctx)
	if !caps.Filter {
		return orLimits{}
	}
	l := orLimits{n: activityBatch, bytes: maxIDFilter}
	if c.searchBatch > 0 && c.searchState.Load() != searchOff {
		l = orLimits{n: c.searchBatch, bytes: maxSearchFilter, search: true}
		if caps.BulkMaxPayload > 0 {
			l.bytes = max(min(l.bytes, caps.BulkMaxPayload/2), maxIDFilter)
		}
	}
	if caps.MaxResults > 0 {
		l.n = min(l.n, caps.MaxResults)
	}
	if b := int(c.orBound.Load()); b > 0 {
		l.n = min(l.n, b)
	}
	return l
}

// tooMany lowers the bound on values per query after the server answered a
// query of n values with 400 tooMany, and reports whether it could (n > 1).
func (c *Client) tooMany(n int) bool {
	if n <= 1 {
		return false
	}
	for {
		cur := c.orBound.Load()
		next := int32(n / 2)
		if cur > 0 && cur <= next {
			return true // lowered already, by a concurrent query
		}
		if c.orBound.CompareAndSwap(cur, next) {
			c.log.Info("the SCIM server refuses filters of this many values (tooMany); sending fewer per query",
				"values", n, "now", next)
			return true
		}
	}
}

// filteredPage reads one page of the users matching filter, from the 1-based
// start, at most count: with POST /Users/.search when search is set, else with
// GET /Users?filter=. values is how many comparisons filter ORs (for tooMany).
// It returns errRechunk when the limits the filter was cut for no longer hold.
func (c *Client) filteredPage(ctx context.Context, filter string, values, start, count int, search bool) (ListResponse, error) {
	var lr ListResponse
	var err error
	if search {
		lr, err = c.search(ctx, filter, start, count)
	} else {
		q := url.Values{"filter": {filter}, "startIndex": {strconv.Itoa(start)}, "count": {strconv.Itoa(count)}}
		lr, err = c.list(ctx, q)
	}
	if le, ok := errors.AsType[*connector.LMSError](err); ok && le.Status == http.StatusBadRequest && le.Code == ErrTooMany && c.tooMany(values) {
		return ListResponse{}, errRechunk
	}
	return lr, err
}

// search sends one POST /Users/.search and returns its ListResponse, or
// errRechunk when it finds that the server has no .search (then turned off).
// Until a .search has worked, one is sent at a time.
func (c *Client) search(ctx context.Context, filter string, start, count int) (ListResponse, error) {
	switch c.searchState.Load() {
	case searchOff:
		return ListResponse{}, errRechunk // found out since the caller cut its values
	case searchUnknown:
		// The first .search finds out whether the server has it; concurrent
		// batch reads wait for its answer rather than each asking a server
		// that may not have it.
		c.searchProbe.Lock()
		defer c.searchProbe.Unlock()
		if c.searchState.Load() == searchOff {
			return ListResponse{}, errRechunk
		}
	}
	req := SearchRequest{Schemas: []string{MessageSearchRequest}, Filter: filter, StartIndex: start, Count: &count}
	var lr ListResponse
	_, err := c.do(ctx, http.MethodPost, "/Users/.search", nil, req, nil, &lr)
	proven := c.searchState.Load() == searchWorks
	if le, ok := errors.AsType[*connector.LMSError](err); ok {
		if !proven && le.Status == http.StatusBadRequest && le.Code == ErrInvalidFilter && len(filter) <= maxIDFilter {
			// A server with .search that cannot evaluate this filter answers
			// so too (elimity-com/scim on id filters): ask GET the same. If
			// GET takes it, the server's .search is what fails; if GET refuses
			// it too, the refusal is the filter's, as for GET.
			q := url.Values{"filter": {filter}, "startIndex": {"1"}, "count": {"1"}}
			_, gerr := c.list(ctx, q)
			if gerr == nil {
				c.noSearch("POST /Users/.search answered 400 invalidFilter to a filter GET takes")
				return ListResponse{}, errRechunk
			}
			if ge, ok := errors.AsType[*connector.LMSError](gerr); !ok || ge.Status != http.StatusBadRequest {
				return ListResponse{}, gerr
			}
			return ListResponse{}, err
		}
		switch {
		case le.Status == http.StatusNotFound, le.Status == http.StatusMethodNotAllowed, le.Status == http.StatusNotImplemented,
			!proven && le.Status == http.StatusBadRequest && le.Code != ErrTooMany,
			!proven && le.Reason == reasonUndecodable:
			c.noSearch(le.Op + " answered " + strconv.Itoa(le.Status) + " " + le.Code)
			return ListResponse{}, errRechunk
		}
		return ListResponse{}, err
	}
	if err != nil {
		return ListResponse{}, err
	}
	if !slices.ContainsFunc(lr.Schemas, func(s string) bool { return strings.EqualFold(s, MessageListResponse) }) {
		if !proven {
			c.noSearch("POST /Users/.search answered with something other than a ListResponse")
			return ListResponse{}, errRechunk
		}
	}
	c.searchState.CompareAndSwap(searchUnknown, searchWorks)
	return lr, nil
}

// noSearch turns .search off for the client's lifetime, and logs it once.
func (c *Client) noSearch(why string) {
	if c.searchState.Swap(searchOff) != searchOff {
		c.log.Info("the SCIM server has no POST /Users/.search (RFC 7644 §3.4.3); batch reads go as GET /Users?filter=, at most 50 values a request",
			"reason", why)
	}
}
