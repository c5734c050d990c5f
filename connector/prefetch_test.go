package connector_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/connector/lms/scim"
	"github.com/hrsync/hrsync/store"
)

// callCounter counts the calls the converger makes, by operation. It has only the
// methods of connector.LMS: it hides every optional capability of the LMS it wraps.
type callCounter struct {
	connector.LMS
	mu    sync.Mutex
	calls map[string]int
}

func (c *callCounter) count(op string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls[op]++
}

// take returns the counts since the last take and resets them.
func (c *callCounter) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.calls
	c.calls = map[string]int{}
	return out
}

func (c *callCounter) GetAccount(ctx context.Context, id string) (connector.Account, error) {
	c.count("GetAccount")
	return c.LMS.GetAccount(ctx, id)
}

func (c *callCounter) FindAccounts(ctx context.Context, f connector.AccountFilter) ([]connector.Account, error) {
	c.count("FindAccounts")
	return c.LMS.FindAccounts(ctx, f)
}

func (c *callCounter) CreateAccount(ctx context.Context, a connector.Account) (connector.Account, error) {
	c.count("CreateAccount")
	return c.LMS.CreateAccount(ctx, a)
}

func (c *callCounter) UpdateAccount(ctx context.Context, a connector.Account) (connector.Account, error) {
	c.count("UpdateAccount")
	return c.LMS.UpdateAccount(ctx, a)
}

func (c *callCounter) SetActive(ctx context.Context, id string, active bool) (connector.Account, error) {
	c.count("SetActive")
	return c.LMS.SetActive(ctx, id, active)
}

func (c *callCounter) DeleteAccount(ctx context.Context, id string) error {
	c.count("DeleteAccount")
	return c.LMS.DeleteAccount(ctx, id)
}

func (c *callCounter) ListAccounts(ctx context.Context, startIndex, count int) (connector.AccountPage, error) {
	c.count("ListAccounts")
	return c.LMS.ListAccounts(ctx, startIndex, count)
}

// callCounterBatch is callCounter with the batch reads of the LMS it wraps.
type callCounterBatch struct {
	*callCounter
	br connector.AccountBatchReader
	// fail, if set, makes every batch read fail with it.
	fail error
}

func (c *callCounterBatch) MaxReadBatch(ctx context.Context) int { return c.br.MaxReadBatch(ctx) }

func (c *callCounterBatch) FindAccountsIn(ctx context.Context, attr connector.FilterAttr, values []string) (map[string][]connector.Account, error) {
	c.count("FindAccountsIn")
	if c.fail != nil {
		return nil, c.fail
	}
	return c.br.FindAccountsIn(ctx, attr, values)
}

func (c *callCounterBatch) GetAccounts(ctx context.Context, ids []string) (map[string]connector.Account, error) {
	c.count("GetAccounts")
	if c.fail != nil {
		return nil, c.fail
	}
	return c.br.GetAccounts(ctx, ids)
}

// countBundle is a testBundle whose converger talks to the sandbox through a
// counting wrapper, with the batch reads (batch) or without.
func countBundle(t *testing.T, start time.Time, batch bool, fail error, concurrency int) (*testBundle, *callCounter) {
	t.Helper()
	b := setup(t, start)
	cl := &callCounter{LMS: b.lms, calls: map[string]int{}}
	var lms connector.LMS = cl
	if batch {
		lms = &callCounterBatch{callCounter: cl, br: b.lms, fail: fail}
	}
	var err error
	b.conv, err = connector.NewConverger(connector.ConvergerConfig{Store: b.db, LMS: lms, Feeds: b.feeds, Now: b.clock,
		Concurrency: concurrency, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return b, cl
}

// outcome is what a run left behind, without the LMS's ids (the order of
// creates within a batch varies): every account by externalId and userName,
// and the review items by worker.
func outcome(t *testing.T, b *testBundle) string {
	t.Helper()
	var lines []string
	for _, r := range b.lms.Snapshot() {
		a := r.Account
		lines = append(lines, fmt.Sprintf("account %s/%s active=%v email=%s emp=%s name=%s %s",
			a.ExternalID, a.UserName, a.Active, a.Profile.Email, a.Profile.EmployeeNumber, a.Profile.GivenName, a.Profile.FamilyName))
	}
	reviews, err := b.db.ListReviews(context.Background(), store.ReviewFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reviews {
		lines = append(lines, fmt.Sprintf("review %s:%s candidates=%d %s", r.Feed, r.WorkerID, len(r.Candidates), r.Reason))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func batchPerson(i int) connector.Profile {
	return connector.Profile{Email: fmt.Sprintf("p%d@example.com", i), GivenName: "P", FamilyName: fmt.Sprint(i),
		EmployeeNumber: fmt.Sprintf("E%d", i)}
}

// lifecycle runs n workers through hire, leave, rehire under the same id,
// update, leave and rehire under a new id, each change kind for all n in one
// claimed batch, and returns the LMS calls of each kind and the outcome after it.
func lifecycle(t *testing.T, batch bool, n int) (map[string]map[string]int, map[string]string) {
	t.Helper()
	day := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	b, cl := countBundle(t, day, batch, nil, 0)
	return lifecycleOn(t, b, cl.take, n)
}

// lifecycleOn runs the lifecycle on b, whose LMS calls take returns.
func lifecycleOn(t *testing.T, b *testBundle, take func() map[string]int, n int) (map[string]map[string]int, map[string]string) {
	t.Helper()
	calls, outs := map[string]map[string]int{}, map[string]string{}
	step := func(kind string, fact func(i int) connector.Fact) {
		b.set(b.clock().Add(24 * time.Hour))
		facts := make([]connector.Fact, n)
		for i := range facts {
			facts[i] = fact(i)
			facts[i].Effective = b.clock()
		}
		take()
		b.recordAll(t, facts...)
		calls[kind], outs[kind] = take(), outcome(t, b)
	}
	w := func(i int) string { return fmt.Sprintf("w%d", i) }
	step("hire", func(i int) connector.Fact {
		return connector.Fact{WorkerID: w(i), Kind: connector.KindHired, Profile: batchPerson(i)}
	})
	step("leave", func(i int) connector.Fact { return connector.Fact{WorkerID: w(i), Kind: connector.KindLeft} })
	step("rehire same id", func(i int) connector.Fact {
		return connector.Fact{WorkerID: w(i), Kind: connector.KindRehired, Profile: batchPerson(i)}
	})
	step("update", func(i int) connector.Fact {
		p := batchPerson(i)
		p.FamilyName += " Jr"
		return connector.Fact{WorkerID: w(i), Kind: connector.KindUpdated, Profile: p}
	})
	step("leave again", func(i int) connector.Fact { return connector.Fact{WorkerID: w(i), Kind: connector.KindLeft} })
	step("rehire new id", func(i int) connector.Fact {
		p := batchPerson(i)
		p.FamilyName += " Jr"
		return connector.Fact{WorkerID: fmt.Sprintf("v%d", i), PreviousWorkerID: w(i), Kind: connector.KindRehired, Profile: p}
	})
	return calls, outs
}

func reads(c map[string]int) int {
	return c["GetAccount"] + c["FindAccounts"] + c["FindAccountsIn"] + c["GetAccounts"] + c["ListAccounts"]
}

func writes(c map[string]int) int {
	return c["CreateAccount"] + c["UpdateAccount"] + c["SetActive"] + c["DeleteAccount"]
}

// TestBatchReadsLifecycle: with batch reads, a claimed batch of 50 workers costs
// at most one read call per attribute (hires) or one GetAccounts (linked workers),
// plus the writes, where one read per lookup was made before; the outcomes are
// those of the LMS without batch reads.
func TestBatchReadsLifecycle(t *testing.T) {
	t.Parallel()
	const n = 50
	before, wantOut := lifecycle(t, false, n)
	after, gotOut := lifecycle(t, true, n)
	kinds := []string{"hire", "leave", "rehire same id", "update", "rehire new id"}
	for _, k := range kinds {
		t.Logf("%-15s without batch reads: %3d reads + %3d writes %v; with: %d reads + %d writes %v",
			k, reads(before[k]), writes(before[k]), before[k], reads(after[k]), writes(after[k]), after[k])
	}
	for _, k := range append(kinds, "leave again") {
		if gotOut[k] != wantOut[k] {
			t.Errorf("after %s the outcome differs with batch reads:\n%s\nwithout:\n%s", k, gotOut[k], wantOut[k])
		}
		if writes(after[k]) != writes(before[k]) {
			t.Errorf("%s: %d writes with batch reads, %d without", k, writes(after[k]), writes(before[k]))
		}
		if after[k]["GetAccount"]+after[k]["FindAccounts"] != 0 {
			t.Errorf("%s: %v: single reads left with batch reads", k, after[k])
		}
	}
	if c := after["hire"]; c["FindAccountsIn"] > 3 || c["CreateAccount"] != n || reads(c) > 3 {
		t.Errorf("hire: %v; want at most 3 reads (one per rule) and %d creates", c, n)
	}
	if c := before["hire"]; c["FindAccounts"] != 3*n {
		t.Errorf("hire without batch reads: %v; want %d lookups (the baseline this test measures against)", c, 3*n)
	}
	for _, k := range []string{"leave", "rehire same id", "update", "rehire new id"} {
		if c := after[k]; c["GetAccounts"] != 1 || reads(c) != 1 {
			t.Errorf("%s: %v; want 1 GetAccounts", k, c)
		}
	}
	if c := after["leave"]; c["SetActive"] != n || writes(c) != n {
		t.Errorf("leave: %v; want %d writes", c, n)
	}
	if c := before["leave"]; c["GetAccount"] != n {
		t.Errorf("leave without batch reads: %v; want %d GETs", c, n)
	}
}

// TestBatchReadsSharedEmail: two hires of one batch with one email are not
// prefetched for that email; they converge as without batch reads (one gets the
// account, the other's create conflicts or both adopt a hand-made one, as today).
func TestBatchReadsSharedEmail(t *testing.T) {
	t.Parallel()
	day := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	run := func(batch bool, handMade bool) (string, map[string]int) {
		b, cl := countBundle(t, day, batch, nil, 1)
		if handMade {
			if _, err := b.lms.CreateAccount(context.Background(), connector.Account{UserName: "Ann@Example.com", Active: true,
				Profile: connector.Profile{Email: "Ann@Example.com"}}); err != nil {
				t.Fatal(err)
			}
		}
		facts := []connector.Fact{
			{WorkerID: "a", Kind: connector.KindHired, Effective: day, Profile: connector.Profile{Email: "ann@example.com", EmployeeNumber: "E1"}},
			{WorkerID: "b", Kind: connector.KindHired, Effective: day, Profile: connector.Profile{Email: "ANN@example.com", EmployeeNumber: "E2"}},
			{WorkerID: "c", Kind: connector.KindHired, Effective: day, Profile: connector.Profile{Email: "cy@example.com", EmployeeNumber: "E3"}},
		}
		cl.take()
		b.recordAll(t, facts...)
		// Which of the two wins the email is not fixed today (when both adopt
		// the hand-made account, the second commit conflicts and is retried):
		// the outcome is compared up to swapping them.
		swap := strings.NewReplacer("hr:a", "hr:a|b", "hr:b", "hr:a|b", "=e1 ", "=e1|2 ", "=e2 ", "=e1|2 ", ":a ", ":a|b ", ":b ", ":a|b ")
		return swap.Replace(strings.ToLower(outcome(t, b))), cl.take()
	}
	for _, handMade := range []bool{false, true} {
		want, _ := run(false, handMade)
		got, calls := run(true, handMade)
		if got != want {
			t.Errorf("hand-made account %v: outcome with batch reads:\n%s\nwithout:\n%s", handMade, got, want)
		}
		// The shared email is looked up live by each of the two; the rest comes
		// from the batch.
		if calls["FindAccounts"] < 2 {
			t.Errorf("hand-made account %v: %v: the shared email was not looked up live", handMade, calls)
		}
	}
}

// TestBatchReadsFailureFallsBack: a failing batch read costs no converge: every
// worker reads live, with the same outcome.
func TestBatchReadsFailureFallsBack(t *testing.T) {
	t.Parallel()
	day := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	b, cl := countBundle(t, day, true, &connector.LMSError{Kind: connector.KindUnavailable, Op: "GET /Users", Status: 503}, 0)
	facts := make([]connector.Fact, 5)
	for i := range facts {
		facts[i] = connector.Fact{WorkerID: fmt.Sprintf("w%d", i), Kind: connector.KindHired, Effective: day, Profile: batchPerson(i)}
	}
	b.recordAll(t, facts...)
	c := cl.take()
	if b.lms.Count() != 5 || c["CreateAccount"] != 5 || c["FindAccounts"] != 15 {
		t.Fatalf("%d accounts, calls %v; want 5 created after 15 live lookups", b.lms.Count(), c)
	}
}

// TestBatchReadsGoneLinkedAccount: an account deleted by hand that the batch's
// GetAccounts does not return is gone, as a 404 of GetAccount says: the worker is
// unlinked and gets a new account.
func TestBatchReadsGoneLinkedAccount(t *testing.T) {
	t.Parallel()
	day := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	b, cl := countBundle(t, day, true, nil, 0)
	b.recordAll(t, []connector.Fact{{WorkerID: "w1", Kind: connector.KindHired, Effective: day, Profile: batchPerson(1)}}...)
	a := b.account(t, "hr:w1")
	if err := b.lms.DeleteAccount(context.Background(), a.ID); err != nil {
		t.Fatal(err)
	}
	cl.take()
	b.set(day.Add(time.Hour))
	p := batchPerson(1)
	p.FamilyName = "Changed"
	b.recordAll(t, []connector.Fact{{WorkerID: "w1", Kind: connector.KindUpdated, Effective: b.clock(), Profile: p}}...)
	c := cl.take()
	// The batch said the account is gone: the worker is unlinked and converged
	// again, which looks up live or from the next batch, and creates it anew.
	if c["GetAccount"] != 0 || c["GetAccounts"] < 1 {
		t.Fatalf("calls %v; want the linked account read in a batch", c)
	}
	if got := b.account(t, "hr:w1"); got.ID == a.ID || got.Profile.FamilyName != "Changed" {
		t.Fatalf("account %+v; want a new one with the update", got)
	}
}

// httpCounter counts the requests a SCIM server answers, by method, with the
// queries (GET /Users?filter=..., and POST /Users/.search, RFC 7644 §3.4.3,
// which the client sends where the server has it) apart from the reads of one
// user and the writes.
type httpCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (h *httpCounter) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op := r.Method
		switch {
		case !strings.Contains(r.URL.Path, "/Users"):
			op = "" // discovery
		case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/Users"),
			r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/Users/.search"):
			op = "query"
		case r.Method == http.MethodGet:
			op = "GET /{id}"
		}
		if op != "" {
			h.mu.Lock()
			h.n[op]++
			h.mu.Unlock()
		}
		next.ServeHTTP(w, r)
	})
}

func (h *httpCounter) take() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.n
	h.n = map[string]int{}
	return out
}

// TestBatchReadsLifecycleSCIM: the lifecycle over SCIM, requests counted at the
// server, with the client's batch reads and with them hidden: the same outcomes,
// and per change kind one query per batch where one GET per worker was made.
func TestBatchReadsLifecycleSCIM(t *testing.T) {
	t.Parallel()
	const n = 50
	run := func(batch bool) (map[string]map[string]int, map[string]string) {
		day := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
		b := setup(t, day)
		hc := &httpCounter{n: map[string]int{}}
		srv := httptest.NewServer(hc.wrap(b.lms.Handler("")))
		t.Cleanup(srv.Close)
		client, err := scim.New(srv.URL+sandbox.BasePath, scim.WithHTTPClient(srv.Client()))
		if err != nil {
			t.Fatal(err)
		}
		// Both runs hide the client's other capabilities (training reads), so
		// that they differ only in the batch reads.
		var lms connector.LMS = struct{ connector.LMS }{client}
		if batch {
			lms = struct {
				connector.LMS
				connector.AccountBatchReader
			}{client, client}
		}
		b.conv, err = connector.NewConverger(connector.ConvergerConfig{Store: b.db, LMS: lms, Feeds: b.feeds, Now: b.clock,
			Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		return lifecycleOn(t, b, hc.take, n)
	}
	before, wantOut := run(false)
	after, gotOut := run(true)
	total := func(c map[string]int) (sum int) {
		for _, v := range c {
			sum += v
		}
		return sum
	}
	for _, k := range []string{"hire", "leave", "rehire same id", "update", "rehire new id"} {
		t.Logf("%-15s SCIM requests for %d workers without batch reads: %3d %v; with: %3d %v",
			k, n, total(before[k]), before[k], total(after[k]), after[k])
		if gotOut[k] != wantOut[k] {
			t.Errorf("after %s the outcome differs with batch reads:\n%s\nwithout:\n%s", k, gotOut[k], wantOut[k])
		}
		for _, m := range []string{"POST", "PUT", "PATCH", "DELETE"} {
			if after[k][m] != before[k][m] {
				t.Errorf("%s: writes differ: %v with batch reads, %v without", k, after[k], before[k])
			}
		}
		if k == "hire" {
			// externalId in one form, email and employee number in two until a
			// form has found accounts (5 POST /Users/.search; over GET, employee
			// numbers in their URN form take two queries of at most ~3,000
			// characters: 7).
			if q := after[k]["query"]; q > 7 || after[k]["GET /{id}"] != 0 {
				t.Errorf("hire: %v; want at most 7 queries, where %d were made one by one", after[k], before[k]["query"])
			}
			continue
		}
		// The converger's GET of each linked account is one query; the GETs
		// that remain are the adapter's own (UpdateAccount reads the user to
		// replace it).
		if q, g := after[k]["query"], after[k]["GET /{id}"]; q != 1 || g != before[k]["GET /{id}"]-n {
			t.Errorf("%s: %v; want 1 query and %d fewer single GETs than %v", k, after[k], n, before[k])
		}
	}
}

// TestBatchReadsOneAccountTwoWorkers: a hand-made account that one hire's email
// and another's employee number both find is read live by both, so that the
// second sees the first's adoption, as without batch reads (which of the two
// adopts it depends on the order; either way each gets an account).
func TestBatchReadsOneAccountTwoWorkers(t *testing.T) {
	t.Parallel()
	day := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	run := func(batch bool) (string, map[string]int) {
		b, cl := countBundle(t, day, batch, nil, 1)
		if _, err := b.lms.CreateAccount(context.Background(), connector.Account{UserName: "old@example.com", Active: true,
			Profile: connector.Profile{Email: "a@example.com", EmployeeNumber: "E2"}}); err != nil {
			t.Fatal(err)
		}
		cl.take()
		b.recordAll(t,
			connector.Fact{WorkerID: "a", Kind: connector.KindHired, Effective: day, Profile: connector.Profile{Email: "a@example.com", EmployeeNumber: "E1"}},
			connector.Fact{WorkerID: "b", Kind: connector.KindHired, Effective: day, Profile: connector.Profile{Email: "b@example.com", EmployeeNumber: "E2"}},
			connector.Fact{WorkerID: "c", Kind: connector.KindHired, Effective: day, Profile: connector.Profile{Email: "c@example.com", EmployeeNumber: "E3"}})
		return outcome(t, b), cl.take()
	}
	want, _ := run(false)
	got, calls := run(true)
	if got != want {
		t.Errorf("outcome with batch reads:\n%s\nwithout:\n%s", got, want)
	}
	if calls["FindAccountsIn"] == 0 || calls["FindAccounts"] < 5 {
		t.Errorf("calls %v; want the batch read, then a and b looking up live", calls)
	}
}
