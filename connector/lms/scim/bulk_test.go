package scim_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/connector/lms/scim"
)

// sandboxes maps each client that setup and setupQuirks made to the sandbox
// behind it, so that lmstest can record training there (train).
var sandboxes sync.Map // *scim.Client → *sandbox.LMS

// train records a login of id in the sandbox behind the client lms.
func train(t *testing.T, lms connector.LMS, id string) {
	t.Helper()
	sb, ok := sandboxes.Load(lms)
	if !ok {
		t.Fatalf("no sandbox behind %T", lms)
	}
	if err := sb.(*sandbox.LMS).RecordLogin(id, time.Time{}); err != nil {
		t.Fatalf("RecordLogin: %v", err)
	}
}

// accounts creates n accounts in l.
func accounts(t *testing.T, l *sandbox.LMS, n int) []connector.Account {
	t.Helper()
	var out []connector.Account
	for i := range n {
		a, err := l.CreateAccount(t.Context(), connector.Account{UserName: fmt.Sprintf("u%d@example.com", i), Active: true})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

// deletions deletes as with their versions, carol (as[1]) after a change, plus
// one account that does not exist; it returns them and what each must answer.
func deletions(t *testing.T, l *sandbox.LMS, as []connector.Account) ([]connector.Deletion, []error) {
	t.Helper()
	if _, err := l.SetActive(t.Context(), as[1].ID, false); err != nil {
		t.Fatal(err)
	}
	var dels []connector.Deletion
	var want []error
	for i, a := range as {
		dels = append(dels, connector.Deletion{ID: a.ID, Version: a.Version})
		want = append(want, map[bool]error{true: connector.ErrPrecondition, false: nil}[i == 1])
	}
	dels = append(dels, connector.Deletion{ID: "u-999999"})
	want = append(want, connector.ErrNotFound)
	return dels, want
}

func checkDeletions(t *testing.T, l *sandbox.LMS, dels []connector.Deletion, got, want []error) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d results for %d deletions", len(got), len(want))
	}
	for i := range want {
		if (want[i] == nil) != (got[i] == nil) || (want[i] != nil && !errors.Is(got[i], want[i])) {
			t.Errorf("deletion %d (%s): %v, want %v", i, dels[i].ID, got[i], want[i])
		}
		_, err := l.GetAccount(t.Context(), dels[i].ID)
		if gone := errors.Is(err, connector.ErrNotFound); gone != (want[i] != connector.ErrPrecondition) {
			t.Errorf("deletion %d (%s): after it, GetAccount says %v", i, dels[i].ID, err)
		}
	}
}

// TestDeleteAccountsBulk: deletions go in bulk requests of at most maxOperations,
// each result mapped to the error the single DELETE would have had.
func TestDeleteAccountsBulk(t *testing.T) {
	t.Parallel()
	b := setupQuirks(t, sandbox.Quirks{}, sandbox.WithMaxBulk(3))
	if n := b.client.MaxBulkDeletes(t.Context()); n != 3 {
		t.Fatalf("MaxBulkDeletes = %d, want the server's maxOperations 3", n)
	}
	dels, want := deletions(t, b.lms, accounts(t, b.lms, 7))
	got, err := b.client.DeleteAccounts(t.Context(), dels)
	if err != nil {
		t.Fatal(err)
	}
	checkDeletions(t, b.lms, dels, got, want)
	if posts, deletes := b.count("POST", "/Bulk"), b.count("DELETE", "/Users"); posts != 3 || deletes != 0 {
		t.Errorf("%d bulk requests and %d DELETEs for 8 deletions, want 3 and 0", posts, deletes)
	}
	if n := setupQuirks(t, sandbox.Quirks{}).client.MaxBulkDeletes(t.Context()); n != sandbox.DefaultMaxBulk {
		t.Errorf("MaxBulkDeletes = %d, want %d", n, sandbox.DefaultMaxBulk)
	}
}

// TestDeleteAccountsWithoutBulk: without bulk, one conditional DELETE each.
func TestDeleteAccountsWithoutBulk(t *testing.T) {
	t.Parallel()
	for name, q := range map[string]sandbox.Quirks{
		"NoBulk":                  {NoBulk: true},
		"NoServiceProviderConfig": {NoServiceProviderConfig: true},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setupQuirks(t, q)
			if n := b.client.MaxBulkDeletes(t.Context()); n != 0 {
				t.Errorf("MaxBulkDeletes = %d, want 0", n)
			}
			dels, want := deletions(t, b.lms, accounts(t, b.lms, 3))
			if q.NoServiceProviderConfig {
				want[1] = nil // no ETags known: the deletion is unconditional
			}
			got, err := b.client.DeleteAccounts(t.Context(), dels)
			if err != nil {
				t.Fatal(err)
			}
			checkDeletions(t, b.lms, dels, got, want)
			if posts, deletes := b.count("POST", "/Bulk"), b.count("DELETE", "/Users"); posts != 0 || deletes != 4 {
				t.Errorf("%d bulk requests and %d DELETEs, want 0 and 4", posts, deletes)
			}
		})
	}
}

// TestDeleteAccountsBulkAbsent: a server that offers bulk but answers 404 fails
// that call (nothing was deleted), and the client deletes one by one from then on.
func TestDeleteAccountsBulkAbsent(t *testing.T) {
	t.Parallel()
	l := sandbox.New()
	inner := l.Handler(token)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/Bulk") {
			http.NotFound(w, r)
			return
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c := mustNew(t, srv.URL+sandbox.BasePath, scim.WithBearerToken(token))
	as := accounts(t, l, 2)
	dels := []connector.Deletion{{ID: as[0].ID}, {ID: as[1].ID}}
	if errs, err := c.DeleteAccounts(t.Context(), dels); err == nil || !connector.IsTemporary(err) {
		t.Fatalf("DeleteAccounts: %v, %v; want a temporary error", errs, err)
	}
	if l.Count() != 2 || c.MaxBulkDeletes(t.Context()) != 0 {
		t.Fatalf("%d accounts, MaxBulkDeletes %d; want 2 and 0", l.Count(), c.MaxBulkDeletes(t.Context()))
	}
	errs, err := c.DeleteAccounts(t.Context(), dels)
	if err != nil || errs[0] != nil || errs[1] != nil || l.Count() != 0 {
		t.Errorf("DeleteAccounts one by one: %v, %v; %d accounts left", errs, err, l.Count())
	}
}

// TestDeleteAccountsBulkWire: requests stay within maxPayloadSize, and results
// are matched by location when the server sends no bulkId, in any order, with
// numeric statuses; an operation the answer leaves out is temporary.
func TestDeleteAccountsBulkWire(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var sizes []int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", scim.MediaType)
		if strings.HasSuffix(r.URL.Path, "/ServiceProviderConfig") {
			fmt.Fprintf(w, `{"schemas":[%q],"bulk":{"supported":true,"maxOperations":100,"maxPayloadSize":500},"etag":{"supported":true}}`,
				scim.SchemaServiceProviderConfig)
			return
		}
		body, _ := io.ReadAll(r.Body)
		var req scim.BulkRequest
		if err := json.Unmarshal(body, &req); err != nil || len(body) > 500 {
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			return
		}
		mu.Lock()
		sizes = append(sizes, len(req.Operations))
		mu.Unlock()
		var out []string
		for _, op := range slices.Backward(req.Operations) {
			id := strings.TrimPrefix(op.Path, "/Users/")
			switch {
			case id == "skip":
				continue
			case id == "gone":
				out = append(out, `{"location":"http://x/v2/Users/gone","method":"DELETE","status":404,"response":{"detail":"no such user","status":404}}`)
			case op.Version == `W/"old"`:
				out = append(out, fmt.Sprintf(`{"location":"http://x/v2/Users/%s","method":"DELETE","status":"412"}`, id))
			default:
				out = append(out, fmt.Sprintf(`{"location":"http://x/v2/Users/%s","method":"DELETE","status":"204"}`, id))
			}
		}
		fmt.Fprintf(w, `{"schemas":[%q],"Operations":[%s]}`, scim.MessageBulkResponse, strings.Join(out, ","))
	}))
	t.Cleanup(srv.Close)
	c := mustNew(t, srv.URL+"/v2")
	dels := []connector.Deletion{{ID: "gone"}, {ID: "skip"}, {ID: "stale", Version: `W/"old"`}}
	for i := range 7 {
		dels = append(dels, connector.Deletion{ID: fmt.Sprintf("user-%d", i), Version: `W/"1"`})
	}
	errs, err := c.DeleteAccounts(t.Context(), dels)
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(errs[0], connector.ErrNotFound) || !errors.Is(errs[2], connector.ErrPrecondition) {
		t.Errorf("gone: %v; stale: %v", errs[0], errs[2])
	}
	if le, ok := errors.AsType[*connector.LMSError](errs[1]); !ok || le.Kind != connector.KindUnavailable {
		t.Errorf("left out of the answer: %v, want unavailable", errs[1])
	}
	for i, err := range errs[3:] {
		if err != nil {
			t.Errorf("user-%d: %v", i, err)
		}
	}
	total := 0
	for _, n := range sizes {
		total += n
	}
	if len(sizes) < 2 || total != len(dels) {
		t.Errorf("requests of %v operations, want several adding up to %d", sizes, len(dels))
	}
}

// TestActivityOfOneQuery: a batch is one filtered query; an id it does not
// return is read with GET, and gone only on 404.
func TestActivityOfOneQuery(t *testing.T) {
	t.Parallel()
	b := setupQuirks(t, sandbox.Quirks{})
	as := accounts(t, b.lms, 3)
	if err := b.lms.Enroll(as[2].ID, "c1", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if n := b.client.MaxActivityBatch(t.Context()); n != scim.DefaultSearchBatch {
		t.Errorf("MaxActivityBatch = %d, want %d", n, scim.DefaultSearchBatch)
	}
	got, err := b.client.ActivityOf(t.Context(), []string{as[0].ID, "u-999999", as[2].ID, as[0].ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got[as[0].ID].Activity.Known || got[as[0].ID].Activity.Any() ||
		got[as[2].ID].Activity.Enrollments != 1 || got[as[2].ID].Account.Version != as[2].Version {
		t.Errorf("ActivityOf: %+v", got)
	}
	singles := b.count("GET", "/Users/")
	if lists := b.count("GET", "/Users") - singles + b.count("POST", "/Users/.search"); lists != 1 || singles != 1 {
		t.Errorf("%d queries and %d GETs of one user, want 1 and 1 (the missing one)", lists, singles)
	}
	if b.client.MaxActivityBatch(t.Context()) != scim.DefaultSearchBatch {
		t.Errorf("a missing account turned the id filter off")
	}
}

// TestActivityOfFilterIgnored: a server that answers the id filter with every
// user is not trusted with it again; each user is read with GET. (Over GET: the
// client has no .search here; TestSearchNotEvaluated does it over .search.)
func TestActivityOfFilterIgnored(t *testing.T) {
	t.Parallel()
	l := sandbox.New()
	inner := l.Handler(token)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		q.Del("filter")
		r.URL.RawQuery = q.Encode()
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c := mustNew(t, srv.URL+sandbox.BasePath, scim.WithBearerToken(token), scim.WithSearchBatch(0))
	as := accounts(t, l, 4)
	got, err := c.ActivityOf(t.Context(), []string{as[1].ID, as[3].ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[as[1].ID].Account.ID != as[1].ID || got[as[3].ID].Account.ID != as[3].ID {
		t.Errorf("ActivityOf: %+v", got)
	}
	if n := c.MaxActivityBatch(t.Context()); n != 0 {
		t.Errorf("MaxActivityBatch = %d after the server ignored the filter, want 0", n)
	}
}

// TestElimityBulkFallback: elimity-com/scim has no bulk and does not filter on
// id, and its users carry no training: the client deletes one by one, reads each
// user, and reports the activity as unknown.
func TestElimityBulkFallback(t *testing.T) {
	t.Parallel()
	c := newElimityClient(t)
	a, err := c.CreateAccount(t.Context(), connector.Account{UserName: "ada@example.com", Active: true})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.ActivityOf(t.Context(), []string{a.ID, "00000000-0000-4000-8000-000000000000"})
	if err != nil || len(got) != 1 || got[a.ID].Account.ID != a.ID || got[a.ID].Activity.Known {
		t.Errorf("ActivityOf: %+v, %v; want the account with unknown activity", got, err)
	}
	if n := c.MaxBulkDeletes(t.Context()); n != 0 {
		t.Errorf("MaxBulkDeletes = %d, want 0", n)
	}
	errs, err := c.DeleteAccounts(t.Context(), []connector.Deletion{{ID: a.ID}, {ID: a.ID}})
	if err != nil || errs[0] != nil || !errors.Is(errs[1], connector.ErrNotFound) {
		t.Errorf("DeleteAccounts: %v, %v", errs, err)
	}
}
