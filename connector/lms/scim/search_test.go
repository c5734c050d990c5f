package scim_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/connector/lms/scim"
)

// searchSpy serves a sandbox and records each POST /Users/.search body.
type searchSpy struct {
	*quirkBundle
	mu     sync.Mutex
	bodies []scim.SearchRequest
}

func setupSearch(t *testing.T, q sandbox.Quirks, opts ...scim.Option) *searchSpy {
	t.Helper()
	s := &searchSpy{quirkBundle: &quirkBundle{lms: sandbox.New()}}
	inner := s.lms.HandlerWith(token, q)
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.quirkBundle.mu.Lock()
		s.seen = append(s.seen, r.Method+" "+strings.TrimPrefix(r.URL.Path, sandbox.BasePath))
		s.quirkBundle.mu.Unlock()
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/Users/.search") {
			b, _ := io.ReadAll(r.Body)
			var req scim.SearchRequest
			if err := json.Unmarshal(b, &req); err != nil {
				t.Errorf("POST /Users/.search body %s: %v", b, err)
			}
			s.mu.Lock()
			s.bodies = append(s.bodies, req)
			s.mu.Unlock()
			r.Body = io.NopCloser(bytes.NewReader(b))
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(s.srv.Close)
	s.client = mustNew(t, s.srv.URL+sandbox.BasePath, append([]scim.Option{scim.WithBearerToken(token)}, opts...)...)
	return s
}

// gets counts the filtered GET /Users queries.
func (s *searchSpy) gets() int { return s.count("GET", "/Users") - s.count("GET", "/Users/") }

// TestSearchOneRequest: a converger's batch of 256 lookups, or of 256 linked
// accounts, is one POST /Users/.search (where GET takes 6 of at most 50), with the
// SearchRequest of RFC 7644 §3.4.3 in the body; the answers are those of GET.
func TestSearchOneRequest(t *testing.T) {
	t.Parallel()
	s := setupSearch(t, sandbox.Quirks{})
	as := people(t, s.lms, 256)
	ext := make([]string, len(as))
	ids := make([]string, len(as))
	for i, a := range as {
		ext[i], ids[i] = a.ExternalID, a.ID
	}
	found, err := s.client.FindAccountsIn(t.Context(), connector.ByExternalID, append(ext, "hr:nobody"))
	if err != nil || len(found) != len(ext)+1 || len(found["hr:nobody"]) != 0 {
		t.Fatalf("FindAccountsIn: %d values answered, %v; want %d", len(found), err, len(ext)+1)
	}
	got, err := s.client.GetAccounts(t.Context(), append(ids, "u-999999"))
	if err != nil || len(got) != len(ids) {
		t.Fatalf("GetAccounts: %d accounts, %v; want %d", len(got), err, len(ids))
	}
	for i, a := range as {
		if f := found[a.ExternalID]; len(f) != 1 || f[0].ID != a.ID {
			t.Errorf("FindAccountsIn[%s] = %+v, want %s", a.ExternalID, f, a.ID)
		}
		if got[ids[i]].ExternalID != a.ExternalID || got[ids[i]].Version != a.Version {
			t.Errorf("GetAccounts[%s] = %+v, want %+v", ids[i], got[ids[i]], a)
		}
	}
	// One .search each, and one GET /Users/{id}: the id the query did not
	// return, read so that only a 404 makes it gone.
	if n, g, one := s.count("POST", "/Users/.search"), s.gets(), s.count("GET", "/Users/"); n != 2 || g != 0 || one != 1 {
		t.Errorf("%d POST /Users/.search, %d filtered GETs, %d GETs of one user; want 2, 0 and 1", n, g, one)
	}
	for _, req := range s.bodies {
		if len(req.Schemas) != 1 || req.Schemas[0] != scim.MessageSearchRequest || req.StartIndex != 1 ||
			req.Count == nil || *req.Count < 257 || strings.Count(req.Filter, " or ") != 256 {
			t.Errorf("SearchRequest: schemas %v, startIndex %d, count %v, %d or's; want the SearchRequest URN, 1, >= 257, 256",
				req.Schemas, req.StartIndex, req.Count, strings.Count(req.Filter, " or "))
		}
	}

	// Without .search, the same batch is GETs of at most 50 values.
	g := setupSearch(t, sandbox.Quirks{}, scim.WithSearchBatch(0))
	people(t, g.lms, 256)
	if _, err := g.client.FindAccountsIn(t.Context(), connector.ByExternalID, ext); err != nil {
		t.Fatal(err)
	}
	if n, gets := g.count("POST", "/Users/.search"), g.gets(); n != 0 || gets != 6 {
		t.Errorf("WithSearchBatch(0): %d POST /Users/.search and %d GETs, want 0 and 6", n, gets)
	}
}

// TestSearchFallback: a server without .search (404, 405, 501, or a 400 that
// says it cannot read the request, before any .search worked) is asked once;
// the client says so once, at INFO, and reads with GET chunks from then on,
// with the same answers.
func TestSearchFallback(t *testing.T) {
	t.Parallel()
	for name, q := range map[string]sandbox.Quirks{
		"405":           {NoSearch: true},
		"404":           {NoSearch: true, NoSearchStatus: http.StatusNotFound},
		"501":           {NoSearch: true, NoSearchStatus: http.StatusNotImplemented},
		"InvalidFilter": {NoSearch: true, NoSearchStatus: http.StatusBadRequest, NoSearchType: scim.ErrInvalidFilter},
		"InvalidSyntax": {NoSearch: true, NoSearchStatus: http.StatusBadRequest, NoSearchType: scim.ErrInvalidSyntax},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			var logMu sync.Mutex
			log := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, nil))
			s := setupSearch(t, q, scim.WithLogger(log))
			as := people(t, s.lms, 120)
			var ext, ids []string
			for _, a := range as {
				ext, ids = append(ext, a.ExternalID), append(ids, a.ID)
			}
			for range 2 {
				found, err := s.client.FindAccountsIn(t.Context(), connector.ByExternalID, ext)
				if err != nil || len(found) != len(ext) || found[ext[77]][0].ID != ids[77] {
					t.Fatalf("FindAccountsIn: %d of %d, %v", len(found), len(ext), err)
				}
				got, err := s.client.GetAccounts(t.Context(), ids)
				if err != nil || len(got) != len(ids) {
					t.Fatalf("GetAccounts: %d of %d, %v", len(got), len(ids), err)
				}
			}
			if n := s.count("POST", "/Users/.search"); n != 1 {
				t.Errorf("%d POST /Users/.search, want 1: the answer is remembered", n)
			}
			if n := s.gets(); n != 4*3 {
				t.Errorf("%d filtered GETs, want 12 (120 values in chunks of 50, four times)", n)
			}
			if n := s.client.MaxReadBatch(t.Context()); n != 50 {
				t.Errorf("MaxReadBatch = %d, want 50", n)
			}
			logMu.Lock()
			defer logMu.Unlock()
			if n := strings.Count(logs.String(), "has no POST /Users/.search"); n != 1 || !strings.Contains(logs.String(), "level=INFO") {
				t.Errorf("logged %d times, want once at INFO:\n%s", n, logs.String())
			}
		})
	}
	// A server that takes .search for a create (201 and a User) is not asked
	// again either.
	t.Run("NotAListResponse", func(t *testing.T) {
		t.Parallel()
		var posts atomic.Int32
		l, c := serveMangled(t, func(w http.ResponseWriter, r *http.Request) bool {
			if !isSearch(r) {
				return false
			}
			posts.Add(1)
			w.Header().Set("Content-Type", scim.MediaType)
			w.WriteHeader(http.StatusCreated)
			fmt.Fprint(w, `{"schemas":["`+scim.SchemaUser+`"],"id":"x","userName":"x"}`)
			return true
		})
		as := people(t, l, 3)
		for range 2 {
			got, err := c.GetAccounts(t.Context(), []string{as[0].ID, as[2].ID})
			if err != nil || len(got) != 2 {
				t.Fatalf("GetAccounts: %+v, %v", got, err)
			}
		}
		if n := posts.Load(); n != 1 {
			t.Errorf("%d POST /Users/.search, want 1", n)
		}
	})
}

// serveMangled serves a new sandbox behind mangle, which sees each request
// first and answers it itself when it returns true, and returns the sandbox and
// a client of it with opts.
func serveMangled(t *testing.T, mangle func(w http.ResponseWriter, r *http.Request) bool, opts ...scim.Option) (*sandbox.LMS, *scim.Client) {
	t.Helper()
	l := sandbox.New()
	inner := l.Handler(token)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !mangle(w, r) {
			inner.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return l, mustNew(t, srv.URL+sandbox.BasePath, append([]scim.Option{scim.WithBearerToken(token)}, opts...)...)
}

// isSearch reports whether r is a POST .../.search.
func isSearch(r *http.Request) bool {
	return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/.search")
}

// searchFilter returns the filter of r's SearchRequest, and leaves the body to
// be read again.
func searchFilter(r *http.Request) string {
	b, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(b))
	var req scim.SearchRequest
	_ = json.Unmarshal(b, &req)
	return req.Filter
}

// refuseFilter answers 400 invalidFilter.
func refuseFilter(w http.ResponseWriter) {
	w.WriteHeader(http.StatusBadRequest)
	fmt.Fprint(w, `{"schemas":["`+scim.MessageError+`"],"status":"400","scimType":"invalidFilter"}`)
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestSearchPaging: a server that answers fewer users a page than asked (its
// own cap) is asked for the next pages, with startIndex in the body, until
// totalResults.
func TestSearchPaging(t *testing.T) {
	t.Parallel()
	s := setupSearch(t, sandbox.Quirks{MaxPageSize: 7})
	as := people(t, s.lms, 30)
	var ext, ids []string
	for _, a := range as {
		ext, ids = append(ext, a.ExternalID), append(ids, a.ID)
	}
	found, err := s.client.FindAccountsIn(t.Context(), connector.ByExternalID, ext)
	if err != nil || len(found) != 30 || found[ext[29]][0].ID != ids[29] {
		t.Fatalf("FindAccountsIn: %d of 30, %v", len(found), err)
	}
	got, err := s.client.ActivityOf(t.Context(), ids)
	if err != nil || len(got) != 30 {
		t.Fatalf("ActivityOf: %d of 30, %v", len(got), err)
	}
	if n, one := s.count("POST", "/Users/.search"), s.count("GET", "/Users/"); n != 2*5 || one != 0 {
		t.Errorf("%d POST /Users/.search and %d GETs of one user, want 10 (5 pages of 7, twice) and 0", n, one)
	}
	var starts []int
	for _, req := range s.bodies[:5] {
		starts = append(starts, req.StartIndex)
	}
	if fmt.Sprint(starts) != "[1 8 15 22 29]" {
		t.Errorf("startIndex of the pages: %v, want [1 8 15 22 29]", starts)
	}
}

// TestSearchTooMany: a server that bounds a filter's comparisons answers 400
// tooMany; the client halves the values a query carries until the server takes
// them, keeps that bound, and still reads everything.
func TestSearchTooMany(t *testing.T) {
	t.Parallel()
	for name, opts := range map[string][]scim.Option{"Search": nil, "GET": {scim.WithSearchBatch(0)}} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := setupSearch(t, sandbox.Quirks{MaxFilterTerms: 20}, opts...)
			as := people(t, s.lms, 100)
			var ids, ext []string
			for _, a := range as {
				ids, ext = append(ids, a.ID), append(ext, a.ExternalID)
			}
			got, err := s.client.GetAccounts(t.Context(), ids)
			if err != nil || len(got) != 100 {
				t.Fatalf("GetAccounts: %d of 100, %v", len(got), err)
			}
			found, err := s.client.FindAccountsIn(t.Context(), connector.ByExternalID, ext)
			if err != nil || len(found) != 100 {
				t.Fatalf("FindAccountsIn: %d of 100, %v", len(found), err)
			}
			if s.count("GET", "/Users/") != 0 {
				t.Errorf("%d GETs of one user, want 0: every id is read by a query", s.count("GET", "/Users/"))
			}
			if n := s.client.MaxReadBatch(t.Context()); n > 20 || n < 10 {
				t.Errorf("MaxReadBatch = %d, want the halved bound the server takes (10 to 20)", n)
			}
		})
	}
}

// TestSearchNotEvaluated: a .search that ignores the filter (answers every
// user) is not trusted with it, as a GET that does.
func TestSearchNotEvaluated(t *testing.T) {
	t.Parallel()
	l, c := serveMangled(t, func(_ http.ResponseWriter, r *http.Request) bool {
		if isSearch(r) {
			r.Body = io.NopCloser(strings.NewReader(`{"schemas":["` + scim.MessageSearchRequest + `"]}`))
		}
		return false
	})
	as := people(t, l, 4)
	found, err := c.FindAccountsIn(t.Context(), connector.ByExternalID, []string{as[1].ExternalID, as[3].ExternalID})
	if err != nil || len(found) != 0 {
		t.Errorf("FindAccountsIn: %+v, %v; want nothing vouched for", found, err)
	}
	got, err := c.ActivityOf(t.Context(), []string{as[1].ID, as[3].ID})
	if err != nil || len(got) != 2 || got[as[1].ID].Account.ID != as[1].ID {
		t.Errorf("ActivityOf: %+v, %v", got, err)
	}
	if n := c.MaxReadBatch(t.Context()); n != 0 {
		t.Errorf("MaxReadBatch = %d, want 0", n)
	}
}

// TestSearchRejectsFilter: once a .search has worked, a 400 to a later one is
// the filter's, as for GET: the values are not vouched for, OR'ed filters are
// off (MaxReadBatch 0), and .search is not given up for GET.
func TestSearchRejectsFilter(t *testing.T) {
	t.Parallel()
	var gets atomic.Int32
	l, c := serveMangled(t, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/Users") {
			gets.Add(1)
		}
		if isSearch(r) && strings.Contains(searchFilter(r), "emails") {
			refuseFilter(w)
			return true
		}
		return false
	})
	as := people(t, l, 2)
	if got, err := c.GetAccounts(t.Context(), []string{as[0].ID, as[1].ID}); err != nil || len(got) != 2 {
		t.Fatalf("GetAccounts: %+v, %v", got, err)
	}
	found, err := c.FindAccountsIn(t.Context(), connector.ByEmail, []string{as[0].Profile.Email})
	if err != nil || len(found) != 0 {
		t.Errorf("FindAccountsIn by email: %+v, %v; want nothing vouched for", found, err)
	}
	if n, g := c.MaxReadBatch(t.Context()), gets.Load(); n != 0 || g != 0 {
		t.Errorf("MaxReadBatch = %d and %d filtered GETs, want 0 and 0", n, g)
	}
}

// TestSearchInvalidFilter: a 400 invalidFilter to the first .search is judged
// by GET of the same filter. Where GET takes it, the server lacks .search (off,
// logged once); where GET refuses it too, the filter is what the server cannot
// evaluate: .search stays, and nothing is logged.
func TestSearchInvalidFilter(t *testing.T) {
	t.Parallel()
	t.Run("GETTakesIt", func(t *testing.T) {
		t.Parallel()
		var logs bytes.Buffer
		var logMu sync.Mutex
		s := setupSearch(t, sandbox.Quirks{NoSearch: true, NoSearchStatus: http.StatusBadRequest, NoSearchType: scim.ErrInvalidFilter},
			scim.WithLogger(slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, nil))))
		as := people(t, s.lms, 2)
		found, err := s.client.FindAccountsIn(t.Context(), connector.ByExternalID, []string{as[0].ExternalID, as[1].ExternalID})
		if err != nil || len(found) != 2 || found[as[1].ExternalID][0].ID != as[1].ID {
			t.Fatalf("FindAccountsIn: %+v, %v", found, err)
		}
		if n, g := s.count("POST", "/Users/.search"), s.gets(); n != 1 || g != 2 {
			t.Errorf("%d POST /Users/.search and %d filtered GETs, want 1 and 2 (the GET that judged, the query)", n, g)
		}
		logMu.Lock()
		defer logMu.Unlock()
		if n := strings.Count(logs.String(), "has no POST /Users/.search"); n != 1 {
			t.Errorf("logged %d times, want once:\n%s", n, logs.String())
		}
	})
	t.Run("GETRefusesIt", func(t *testing.T) {
		t.Parallel()
		var logs bytes.Buffer
		var logMu sync.Mutex
		var posts, gets atomic.Int32
		l, c := serveMangled(t, func(w http.ResponseWriter, r *http.Request) bool {
			filter := r.URL.Query().Get("filter")
			switch {
			case isSearch(r):
				posts.Add(1)
				filter = searchFilter(r)
			case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/Users"):
				gets.Add(1)
			}
			if strings.HasPrefix(filter, "id eq") {
				refuseFilter(w)
				return true
			}
			return false
		}, scim.WithLogger(slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, nil))))
		as := people(t, l, 2)
		got, err := c.ActivityOf(t.Context(), []string{as[0].ID, as[1].ID})
		if err != nil || len(got) != 2 {
			t.Fatalf("ActivityOf: %+v, %v", got, err)
		}
		if p, g := posts.Load(), gets.Load(); p != 1 || g != 1 || scim.SearchOff(c) {
			t.Errorf("%d POST /Users/.search, %d filtered GETs, .search off %v; want 1, 1 (the GET that judged) and on", p, g, scim.SearchOff(c))
		}
		logMu.Lock()
		defer logMu.Unlock()
		if strings.Contains(logs.String(), "has no POST /Users/.search") {
			t.Errorf("logged that the server has no .search:\n%s", logs.String())
		}
	})
}
