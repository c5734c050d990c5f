package guard_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/guard"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/connector/lms/scim"
)

// callCounter counts the guard's attempts per op and outcome.
type callCounter struct {
	mu sync.Mutex
	n  map[string]int // "op outcome"
}

func (c *callCounter) hook(op, outcome string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[op+" "+outcome]++
}

func (c *callCounter) get(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[key]
}

func createN(t *testing.T, l connector.LMS, n int) []connector.Account {
	t.Helper()
	out := make([]connector.Account, 0, n)
	for i := range n {
		a, err := l.CreateAccount(t.Context(), acct(fmt.Sprintf("u%05d", i)))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

// TestBulkOneCallPerBatch: a bulk delete or activity read of up to the LMS's
// batch size is one guarded call (one rate-limit token), however many accounts.
func TestBulkOneCallPerBatch(t *testing.T) {
	t.Parallel()
	inner := sandbox.New()
	var calls callCounter
	cfg := fastRetries()
	cfg.Hooks.Call = calls.hook
	g := guard.New(inner, cfg)
	as := createN(t, inner, 2500)
	ids := make([]string, len(as))
	dels := make([]connector.Deletion, len(as))
	for i, a := range as {
		ids[i], dels[i] = a.ID, connector.Deletion{ID: a.ID, Version: a.Version}
	}
	if n, m := g.MaxBulkDeletes(t.Context()), g.MaxActivityBatch(t.Context()); n != sandbox.DefaultMaxBulk || m != sandbox.MaxResults {
		t.Errorf("MaxBulkDeletes %d, MaxActivityBatch %d", n, m)
	}
	got, err := g.ActivityOf(t.Context(), ids)
	if err != nil || len(got) != len(ids) {
		t.Fatalf("ActivityOf: %d accounts, %v", len(got), err)
	}
	errs, err := g.DeleteAccounts(t.Context(), dels)
	if err != nil {
		t.Fatal(err)
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("deletion %d: %v", i, err)
		}
	}
	if inner.Count() != 0 {
		t.Errorf("%d accounts left", inner.Count())
	}
	if d, a := calls.get("DeleteAccounts ok"), calls.get("ActivityOf ok"); d != 3 || a != 3 {
		t.Errorf("%d DeleteAccounts and %d ActivityOf calls for 2500 accounts, want 3 each", d, a)
	}
}

// bulkScript is a BulkDeleter over a sandbox whose calls go wrong as told.
type bulkScript struct {
	*sandbox.LMS
	mu    sync.Mutex
	sizes []int // deletions per call
	// lose makes the next call apply the deletions and then fail as a lost answer.
	lose int
	// busy makes the next call answer 503 for this id without deleting it.
	busy string
}

func (b *bulkScript) DeleteAccounts(ctx context.Context, dels []connector.Deletion) ([]error, error) {
	b.mu.Lock()
	b.sizes = append(b.sizes, len(dels))
	lose, busy := b.lose > 0, b.busy
	b.lose, b.busy = max(b.lose-1, 0), ""
	b.mu.Unlock()
	var keep []connector.Deletion
	for _, d := range dels {
		if d.ID != busy {
			keep = append(keep, d)
		}
	}
	res, err := b.LMS.DeleteAccounts(ctx, keep)
	if err != nil {
		return nil, err
	}
	if lose {
		return nil, unavailable(http.StatusGatewayTimeout)
	}
	out := make([]error, 0, len(dels))
	for _, d := range dels {
		if d.ID == busy {
			out = append(out, unavailable(http.StatusServiceUnavailable))
			continue
		}
		out, res = append(out, res[0]), res[1:]
	}
	return out, nil
}

func (b *bulkScript) calls() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]int(nil), b.sizes...)
}

// TestBulkRetries: after a lost answer, the retry's "not found" means deleted;
// a deletion that failed for a while is sent again alone; a "not found" on a
// first answer stays.
func TestBulkRetries(t *testing.T) {
	t.Parallel()
	t.Run("LostAnswer", func(t *testing.T) {
		t.Parallel()
		inner := &bulkScript{LMS: sandbox.New(), lose: 1}
		g := guard.New(inner, fastRetries())
		as := createN(t, inner, 3)
		errs, err := g.DeleteAccounts(t.Context(), []connector.Deletion{{ID: as[0].ID}, {ID: as[1].ID, Version: as[1].Version}, {ID: as[2].ID}})
		if err != nil || len(errs) != 3 || errs[0] != nil || errs[1] != nil || errs[2] != nil {
			t.Errorf("DeleteAccounts after a lost answer: %v, %v; want every deletion done", errs, err)
		}
		if got := inner.calls(); len(got) != 2 || inner.Count() != 0 {
			t.Errorf("calls %v, %d accounts left", got, inner.Count())
		}
	})
	t.Run("ItemBusy", func(t *testing.T) {
		t.Parallel()
		inner := &bulkScript{LMS: sandbox.New()}
		g := guard.New(inner, fastRetries())
		as := createN(t, inner, 3)
		inner.busy = as[1].ID
		errs, err := g.DeleteAccounts(t.Context(), []connector.Deletion{{ID: as[0].ID}, {ID: as[1].ID}, {ID: "nope"}, {ID: as[2].ID}})
		if err != nil || errs[0] != nil || errs[1] != nil || !errors.Is(errs[2], connector.ErrNotFound) || errs[3] != nil {
			t.Errorf("DeleteAccounts: %v, %v", errs, err)
		}
		if got := inner.calls(); len(got) != 2 || got[0] != 4 || got[1] != 1 {
			t.Errorf("calls of %v deletions, want 4 then the busy one alone", got)
		}
	})
	t.Run("GivesUp", func(t *testing.T) {
		t.Parallel()
		inner := &bulkScript{LMS: sandbox.New(), lose: 100}
		cfg := fastRetries()
		cfg.MaxAttempts = 3
		g := guard.New(inner, cfg)
		as := createN(t, inner, 1)
		errs, err := g.DeleteAccounts(t.Context(), []connector.Deletion{{ID: as[0].ID}})
		if errs != nil || !connector.IsTemporary(err) {
			t.Errorf("DeleteAccounts that never got an answer: %v, %v; want no results and a temporary error", errs, err)
		}
	})
}

// plain hides every optional capability of the LMS it wraps.
type plain struct{ connector.LMS }

// TestBulkWithoutBulk: without bulk each deletion is a read and a delete, and
// the read checks the version; without batched reads, ActivityOf reads each.
func TestBulkWithoutBulk(t *testing.T) {
	t.Parallel()
	for name, wrap := range map[string]func(*sandbox.LMS) connector.LMS{
		"MaxZero": func(l *sandbox.LMS) connector.LMS { return l },
		"Plain":   func(l *sandbox.LMS) connector.LMS { return plain{l} },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			l := sandbox.New(sandbox.WithMaxBulk(0))
			var calls callCounter
			cfg := fastRetries()
			cfg.Hooks.Call = calls.hook
			g := guard.New(wrap(l), cfg)
			as := createN(t, l, 3)
			if _, err := l.SetActive(t.Context(), as[1].ID, false); err != nil {
				t.Fatal(err)
			}
			if n := g.MaxBulkDeletes(t.Context()); n != 0 {
				t.Errorf("MaxBulkDeletes = %d", n)
			}
			got, err := g.ActivityOf(t.Context(), []string{as[0].ID, "nope"})
			if err != nil || len(got) != 1 || got[as[0].ID].Account.ID != as[0].ID || got[as[0].ID].Activity.Known != (name == "MaxZero") {
				t.Errorf("ActivityOf: %+v, %v", got, err)
			}
			errs, err := g.DeleteAccounts(t.Context(), []connector.Deletion{
				{ID: as[0].ID, Version: as[0].Version}, {ID: as[1].ID, Version: as[1].Version}, {ID: "nope"}, {ID: as[2].ID},
			})
			if err != nil || errs[0] != nil || !errors.Is(errs[1], connector.ErrPrecondition) ||
				!errors.Is(errs[2], connector.ErrNotFound) || errs[3] != nil {
				t.Errorf("DeleteAccounts: %v, %v", errs, err)
			}
			if n := calls.get("DeleteAccount ok"); n != 2 || calls.get("DeleteAccounts ok") != 0 || l.Count() != 1 {
				t.Errorf("%d single deletes, %d bulk; %d accounts left", n, calls.get("DeleteAccounts ok"), l.Count())
			}
		})
	}
}

// TestBulkDiscoveryRetried: a failed read of the SCIM server's configuration is
// retried, so that a passing 503 does not make MaxBulkDeletes 0.
func TestBulkDiscoveryRetried(t *testing.T) {
	t.Parallel()
	l := sandbox.New()
	inner := l.Handler("")
	var failed atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/ServiceProviderConfig") && failed.Add(1) <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c, err := scim.New(srv.URL+sandbox.BasePath, scim.WithHTTPClient(srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	g := guard.New(c, fastRetries())
	if n := g.MaxBulkDeletes(t.Context()); n != sandbox.DefaultMaxBulk {
		t.Errorf("MaxBulkDeletes = %d after two failed discoveries, want %d", n, sandbox.DefaultMaxBulk)
	}
	if n := g.MaxActivityBatch(t.Context()); n != scim.DefaultSearchBatch {
		t.Errorf("MaxActivityBatch = %d, want %d (POST /Users/.search)", n, scim.DefaultSearchBatch)
	}
}
