package docebo_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/docebo"
	"github.com/hrsync/hrsync/connector/lms/docebo/docebosim"
)

// clock is a settable clock for the simulator.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

func lmsError(t *testing.T, err error) *connector.LMSError {
	t.Helper()
	var le *connector.LMSError
	if !errors.As(err, &le) {
		t.Fatalf("error %v (%T), want a *connector.LMSError", err, err)
	}
	return le
}

func TestToken(t *testing.T) {
	t.Parallel()
	t.Run("CachedAcrossCalls", func(t *testing.T) {
		t.Parallel()
		b := setup(t, docebosim.Config{})
		ids := createN(t, b, 3)
		for _, id := range ids {
			if _, err := b.client.GetAccount(t.Context(), id); err != nil {
				t.Fatal(err)
			}
		}
		if n := b.sim.TokenRequests(); n != 1 {
			t.Errorf("%d token requests for 3 calls, want 1", n)
		}
	})
	t.Run("RefreshedOn401", func(t *testing.T) {
		t.Parallel()
		b := setup(t, docebosim.Config{})
		id := createN(t, b, 1)[0]
		if _, err := b.client.GetAccount(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		b.sim.ExpireTokens() // revoked server-side: the client's copy still looks valid
		if _, err := b.client.SetActive(t.Context(), id, false); err != nil {
			t.Fatalf("SetActive after the token was revoked: %v", err)
		}
		if n := b.sim.TokenRequests(); n != 2 {
			t.Errorf("%d token requests, want 2 (one fresh token after the 401)", n)
		}
		if a, _ := b.sb.GetAccount(t.Context(), id); a.Active {
			t.Error("the retried change_status was not applied")
		}
	})
	t.Run("ExpiredByTheServersClock", func(t *testing.T) {
		t.Parallel()
		clk := &clock{t: time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)}
		b := setup(t, docebosim.Config{Now: clk.Now, TokenTTL: time.Hour})
		id := createN(t, b, 1)[0]
		if _, err := b.client.GetAccount(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		clk.Add(2 * time.Hour)
		if _, err := b.client.GetAccount(t.Context(), id); err != nil {
			t.Fatalf("GetAccount with an expired token: %v", err)
		}
		if n := b.sim.TokenRequests(); n != 2 {
			t.Errorf("%d token requests, want 2", n)
		}
	})
	t.Run("OneRetryOnly", func(t *testing.T) {
		t.Parallel()
		clk := &clock{t: time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)}
		// Two hours pass between any two looks at the clock: every token has
		// expired by its first use, so every call is 401, even with a fresh token.
		racing := func() time.Time { clk.Add(2 * time.Hour); return clk.Now() }
		b := setup(t, docebosim.Config{Now: racing, TokenTTL: time.Hour})
		_, err := b.client.GetAccount(t.Context(), "1")
		if le := lmsError(t, err); le.Kind != connector.KindAuth || le.Status != 401 || le.Temporary() {
			t.Errorf("error %v, want a permanent auth error (HTTP 401)", err)
		}
		if n := b.sim.TokenRequests(); n != 2 {
			t.Errorf("%d token requests, want 2: one retry with a fresh token, no more", n)
		}
	})
	t.Run("WrongSecret", func(t *testing.T) {
		t.Parallel()
		b := setup(t, docebosim.Config{})
		c, err := docebo.New(b.client.BaseURL(), clientID, "wrong")
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.GetAccount(t.Context(), "1")
		if le := lmsError(t, err); le.Kind != connector.KindAuth || le.Temporary() {
			t.Errorf("error %v, want a permanent auth error", err)
		}
		if n := b.sim.Calls(""); n != 0 {
			t.Errorf("%d API calls without a token, want 0", n)
		}
	})
}

func TestRateLimitAndOverload(t *testing.T) {
	t.Parallel()
	t.Run("429WithRetryAfter", func(t *testing.T) {
		t.Parallel()
		clk := &clock{t: time.Date(2026, 5, 1, 10, 59, 30, 0, time.UTC)}
		b := setup(t, docebosim.Config{Now: clk.Now, HourlyLimit: 3}, docebo.WithClock(clk.Now))
		for i := range 3 {
			if _, err := b.client.ListAccounts(t.Context(), 1, 10); err != nil {
				t.Fatalf("call %d: %v", i+1, err)
			}
		}
		_, err := b.client.ListAccounts(t.Context(), 1, 10)
		le := lmsError(t, err)
		if le.Kind != connector.KindRateLimited || le.Status != 429 || !le.Temporary() || le.RetryAfter != 30*time.Second {
			t.Errorf("error %+v, want rate_limited (HTTP 429), temporary, Retry-After 30s (the next hour)", le)
		}
		clk.Add(31 * time.Second)
		if _, err := b.client.ListAccounts(t.Context(), 1, 10); err != nil {
			t.Errorf("in the next hour: %v", err)
		}
	})
	t.Run("503IsTemporary", func(t *testing.T) {
		t.Parallel()
		b := setup(t, docebosim.Config{})
		// A read tries three times before it gives up (one lost page must not
		// throw away a long walk); a write does not retry by itself.
		b.sim.Fail503(3)
		_, err := b.client.ListAccounts(t.Context(), 1, 10)
		if le := lmsError(t, err); le.Kind != connector.KindUnavailable || le.Status != 503 || !le.Temporary() {
			t.Errorf("error %+v, want unavailable (HTTP 503), temporary", le)
		}
		if n := b.sim.Calls("GET /manage/v1/user"); n != 3 {
			t.Errorf("%d list calls, want 3", n)
		}
		b.sim.Fail503(1)
		if _, err := b.client.ListAccounts(t.Context(), 1, 10); err != nil {
			t.Errorf("a read after one 503: %v, want it retried", err)
		}
		b.sim.Fail503(1)
		_, err = b.client.SetActiveMany(t.Context(), []string{"1"}, false)
		if le := lmsError(t, err); le.Status != 503 {
			t.Errorf("change_status during an overload: %v, want the 503 (no retry of writes here)", err)
		}
	})
}

// TestSetActiveManyBatching deactivates 2,000 leavers: change_status carries a
// list of user_ids, so it takes at most 0.02 calls per change.
func TestSetActiveManyBatching(t *testing.T) {
	t.Parallel()
	b := setup(t, docebosim.Config{})
	ids := createN(t, b, 2000)
	ctx := t.Context()
	n := b.client.MaxSetActiveBatch(ctx)
	before := b.sim.Calls("")
	for from := 0; from < len(ids); from += n {
		chunk := ids[from:min(from+n, len(ids))]
		rs, err := b.client.SetActiveMany(ctx, chunk, false)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range rs {
			if r.Err != nil || r.Account.ID != chunk[i] || r.Account.Active {
				t.Fatalf("item %d: %+v", i, r)
			}
		}
	}
	calls := b.sim.Calls("") - before
	if perChange := float64(calls) / float64(len(ids)); perChange > 0.02 {
		t.Errorf("%d calls for %d deactivations: %.4f per change, want at most 0.02", calls, len(ids), perChange)
	}
	t.Logf("%d calls for %d deactivations (%d change_status)", calls, len(ids), b.sim.Calls("PUT /manage/v1/user/change_status"))
	for _, rec := range b.sb.Snapshot() {
		if rec.Account.Active {
			t.Fatalf("%s is still active", rec.Account.ID)
		}
	}
}

func TestSetActiveManyPerItem(t *testing.T) {
	t.Parallel()
	b := setup(t, docebosim.Config{})
	ids := createN(t, b, 2)
	gone := createN(t, b, 3)[2]
	if err := b.sb.DeleteAccount(t.Context(), gone); err != nil {
		t.Fatal(err)
	}
	rs, err := b.client.SetActiveMany(t.Context(), []string{ids[0], gone, "not-a-number", ids[1]}, false)
	if err != nil {
		t.Fatal(err)
	}
	if rs[0].Err != nil || rs[3].Err != nil {
		t.Errorf("existing users: %v, %v", rs[0].Err, rs[3].Err)
	}
	for _, i := range []int{1, 2} {
		if !errors.Is(rs[i].Err, connector.ErrNotFound) {
			t.Errorf("item %d: %v, want not found", i, rs[i].Err)
		}
	}
	if n := b.sim.Calls("PUT /manage/v1/user/change_status"); n != 1 {
		t.Errorf("%d change_status calls, want 1", n)
	}
}

// TestBranches puts accounts in branches concurrently: the adapter must never
// have two branch calls in flight (the simulator holds each a while, so that
// overlapping calls would meet).
func TestBranches(t *testing.T) {
	t.Parallel()
	b := setup(t, docebosim.Config{BranchHold: 2 * time.Millisecond})
	ctx := t.Context()
	var wg sync.WaitGroup
	created := make([]connector.Account, 12)
	errs := make([]error, len(created))
	for i := range created {
		wg.Go(func() {
			created[i], errs[i] = b.client.CreateAccount(ctx, connector.Account{UserName: fmt.Sprintf("p%02d@acme.example", i),
				ExternalID: fmt.Sprintf("partner-acme:%02d", i), Active: true, Organization: []string{"ACME", "Beta"}[i%2]})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
	}
	if n := b.sim.BranchOverlaps(); n != 0 {
		t.Errorf("%d branch calls overlapped another", n)
	}
	got, err := b.client.GetAccount(ctx, created[0].ID)
	if err != nil || got.Organization != "ACME" {
		t.Errorf("GetAccount: organization %q, error %v; want ACME", got.Organization, err)
	}
	found, err := b.client.FindAccounts(ctx, connector.AccountFilter{Attr: connector.ByExternalID, Value: "partner-acme:01"})
	if err != nil || len(found) != 1 || found[0].Organization != "Beta" {
		t.Errorf("FindAccounts: %+v, %v; want one account in Beta", found, err)
	}
	// Moving to another branch: out of the old one, into the new.
	upd := got
	upd.Organization = "Beta"
	if moved, err := b.client.UpdateAccount(ctx, upd); err != nil || moved.Organization != "Beta" {
		t.Errorf("UpdateAccount: %+v, %v", moved, err)
	}
	if got, _ := b.client.GetAccount(ctx, created[0].ID); got.Organization != "Beta" {
		t.Errorf("after the move: organization %q, want Beta", got.Organization)
	}
	// Two branches made, once each, though twelve accounts asked for them.
	if n := b.sim.Calls("POST /manage/v1/orgchart"); n != 2 {
		t.Errorf("%d branches created, want 2", n)
	}
}

func TestActivityAndCompletions(t *testing.T) {
	t.Parallel()
	b := setup(t, docebosim.Config{})
	ctx := t.Context()
	ids := createN(t, b, 3)
	day := func(d int) time.Time { return time.Date(2026, 4, d, 9, 0, 0, 0, time.UTC) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(b.sb.Enroll(ids[0], "safety-101", day(1)))
	must(b.sb.CompleteCourse(ids[0], "safety-101", day(2)))
	must(b.sb.CompleteCourse(ids[0], "safety-101", day(9)))
	must(b.sb.Enroll(ids[0], "guest-201", day(3)))
	must(b.sb.RecordLogin(ids[0], day(10)))
	must(b.sb.Enroll(ids[1], "guest-201", day(3)))

	act, err := b.client.Activity(ctx, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if !act.Known || act.LastLogin == nil || !act.LastLogin.Equal(day(10)) || act.Enrollments != 2 || act.Completions != 1 {
		t.Errorf("Activity = %+v, want known, last login %v, 2 enrollments, 1 completion", act, day(10))
	}
	if _, err := b.client.SetActive(ctx, ids[0], false); err != nil {
		t.Fatal(err)
	}
	if _, err := b.client.SetActive(ctx, ids[0], true); err != nil {
		t.Fatal(err)
	}
	comps, err := b.client.Completions(ctx, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(comps) != 1 || comps[0].Course != "safety-101" || !comps[0].CompletedAt.Equal(day(9)) {
		t.Errorf("Completions after deactivation and reactivation = %+v, want safety-101 at %v", comps, day(9))
	}

	before := b.sim.Calls("GET /learn/v1/enrollments")
	all, err := b.client.ActivityOf(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if n := b.sim.Calls("GET /learn/v1/enrollments") - before; n != 1 {
		t.Errorf("ActivityOf(3 ids): %d enrollment calls, want 1", n)
	}
	if a := all[ids[1]].Activity; !a.Known || a.LastLogin != nil || a.Enrollments != 1 || a.Completions != 0 {
		t.Errorf("ActivityOf[%s] = %+v, want one enrollment", ids[1], a)
	}
	if a := all[ids[2]].Activity; !a.Known || a.Any() {
		t.Errorf("ActivityOf[%s] = %+v, want known and none", ids[2], a)
	}
	if _, err := b.client.Activity(ctx, "999999"); !errors.Is(err, connector.ErrNotFound) {
		t.Errorf("Activity of a missing user: %v, want not found", err)
	}
}

// TestExternalIDInUserName keeps the externalId in the username (the default
// Fields): a lookup by externalId is then one search_text query.
func TestExternalIDInUserName(t *testing.T) {
	t.Parallel()
	b := setup(t, docebosim.Config{}, docebo.WithFields(docebo.Fields{}))
	ctx := t.Context()
	a, err := b.client.CreateAccount(ctx, connector.Account{ExternalID: "hr:w-0001", UserName: "anna@example.com", Active: true,
		Profile: connector.Profile{Email: "anna@example.com", GivenName: "Anna", JobTitle: "not kept"}})
	if err != nil {
		t.Fatal(err)
	}
	if a.UserName != "hr:w-0001" || a.ExternalID != "hr:w-0001" || a.Profile.JobTitle != "" {
		t.Errorf("created %+v: want the externalId as username, and the job title not kept", a)
	}
	createN(t, b, 450) // three pages of users that a full walk would read
	before := b.sim.Calls("GET /manage/v1/user")
	found, err := b.client.FindAccounts(ctx, connector.AccountFilter{Attr: connector.ByExternalID, Value: "hr:w-0001"})
	if err != nil || len(found) != 1 || found[0].ID != a.ID {
		t.Fatalf("FindAccounts: %+v, %v", found, err)
	}
	if n := b.sim.Calls("GET /manage/v1/user") - before; n != 1 {
		t.Errorf("%d list calls for a lookup by externalId in the username, want 1", n)
	}
	// The creation date is read (clean-up selects by it).
	if found[0].Created.IsZero() {
		t.Error("Created is zero: the creation_date was not read")
	}
	page, err := b.client.ListAccounts(ctx, 1, 1)
	if err != nil || len(page.Accounts) != 1 || page.Accounts[0].Created.IsZero() {
		t.Errorf("ListAccounts: %+v, %v; want a creation date", page, err)
	}
}

func TestParseFields(t *testing.T) {
	t.Parallel()
	f, err := docebo.ParseFields("external_id=field_12, employee_number=13")
	if err != nil || f.ExternalID != "12" || f.EmployeeNumber != "13" {
		t.Errorf("ParseFields = %+v, %v", f, err)
	}
	for _, bad := range []string{"external_id=x", "color=3", "external_id=3,locale=3", "job_title"} {
		if _, err := docebo.ParseFields(bad); err == nil {
			t.Errorf("ParseFields(%q): no error", bad)
		}
	}
	if f, err := docebo.ParseFields(""); err != nil || f.ExternalID != docebo.UserNameField {
		t.Errorf("ParseFields(\"\") = %+v, %v; want the externalId in the username", f, err)
	}
}

// TestFindAccountsIn looks up many employee numbers with one walk through the
// users, where one FindAccounts per value would walk once each.
func TestFindAccountsIn(t *testing.T) {
	t.Parallel()
	b := setup(t, docebosim.Config{})
	ctx := t.Context()
	createN(t, b, 450) // three pages
	var made []connector.Account
	for i := range 3 {
		a, err := b.client.CreateAccount(ctx, connector.Account{UserName: fmt.Sprintf("e%d@example.com", i), Active: true,
			ExternalID: fmt.Sprintf("hr:e%d", i), Profile: connector.Profile{EmployeeNumber: fmt.Sprintf("E-%d", i),
				Email: fmt.Sprintf("E%d@Example.com", i)}})
		if err != nil {
			t.Fatal(err)
		}
		made = append(made, a)
	}
	before := b.sim.Calls("GET /manage/v1/user")
	got, err := b.client.FindAccountsIn(ctx, connector.ByEmployeeNumber, []string{"E-0", "E-2", "E-9", "E-0"})
	if err != nil {
		t.Fatal(err)
	}
	if n := b.sim.Calls("GET /manage/v1/user") - before; n != 3 {
		t.Errorf("%d list calls for 3 values over 453 users, want 3 (one walk)", n)
	}
	if len(got) != 3 || len(got["E-0"]) != 1 || got["E-0"][0].ID != made[0].ID || len(got["E-2"]) != 1 ||
		got["E-2"][0].ID != made[2].ID || len(got["E-9"]) != 0 {
		t.Errorf("FindAccountsIn = %+v", got)
	}
	if _, vouched := got["E-9"]; !vouched {
		t.Error("E-9 (no account) is not vouched for")
	}
	byMail, err := b.client.FindAccountsIn(ctx, connector.ByEmail, []string{"e1@example.COM"})
	if err != nil || len(byMail["e1@example.COM"]) != 1 || byMail["e1@example.COM"][0].ID != made[1].ID {
		t.Errorf("FindAccountsIn by email in other case = %+v, %v", byMail, err)
	}
	accs, err := b.client.GetAccounts(ctx, []string{made[0].ID, "999999", "x"})
	if err != nil || len(accs) != 1 || accs[made[0].ID].ExternalID != "hr:e0" {
		t.Errorf("GetAccounts = %+v, %v", accs, err)
	}
	// Many ids: one walk (3 pages) instead of one read each.
	var ids []string
	for _, rec := range b.sb.Snapshot()[:100] {
		ids = append(ids, rec.Account.ID)
	}
	lists, views := b.sim.Calls("GET /manage/v1/user"), b.sim.Calls("GET /manage/v1/user/{id}")
	accs, err = b.client.GetAccounts(ctx, append(ids, "999999"))
	if err != nil || len(accs) != 100 || accs[ids[7]].ID != ids[7] {
		t.Errorf("GetAccounts(101 ids): %d accounts, %v", len(accs), err)
	}
	if l, v := b.sim.Calls("GET /manage/v1/user")-lists, b.sim.Calls("GET /manage/v1/user/{id}")-views; l != 3 || v != 0 {
		t.Errorf("GetAccounts(101 ids) on 453 users: %d list and %d user calls, want 3 and 0", l, v)
	}
}

// TestCreateAccountsBatch onboards 150 hires with one batch import: the new
// ids are read back with one walk, and the branches assigned one call each.
func TestCreateAccountsBatch(t *testing.T) {
	t.Parallel()
	b := setup(t, docebosim.Config{})
	ctx := t.Context()
	createN(t, b, 1) // user00001@example.com exists
	var accs []connector.Account
	for i := range 150 {
		accs = append(accs, connector.Account{UserName: fmt.Sprintf("hire%03d@example.com", i), ExternalID: fmt.Sprintf("hr:h%03d", i),
			Active: i != 7, Organization: []string{"", "ACME", "Beta"}[i%3],
			Profile: connector.Profile{Email: fmt.Sprintf("hire%03d@example.com", i), GivenName: "Hire", EmployeeNumber: fmt.Sprintf("H%03d", i)}})
	}
	accs[42].UserName = "USER00001@example.com" // taken
	before := b.sim.Calls("")
	rs, err := b.client.CreateAccounts(ctx, accs)
	if err != nil {
		t.Fatal(err)
	}
	calls := b.sim.Calls("") - before
	if n := b.sim.Calls("POST /manage/v1/user/batch"); n != 1 {
		t.Errorf("%d batch imports, want 1", n)
	}
	if n := b.sim.Calls("POST /manage/v1/user"); n != 0 {
		t.Errorf("%d single creates, want 0", n)
	}
	// 1 count + 1 import + 1 walk page + branches (2 searches, 2 creates, 2 assigns)
	if calls > 9 {
		t.Errorf("%d calls for 150 creates, want at most 9", calls)
	}
	t.Logf("%d calls for %d creates", calls, len(accs))
	if !errors.Is(rs[42].Err, connector.ErrConflict) {
		t.Errorf("the taken username: %v, want a conflict", rs[42].Err)
	}
	for i, r := range rs {
		if i == 42 {
			continue
		}
		if r.Err != nil || r.Account.ID == "" {
			t.Fatalf("item %d: %+v", i, r)
		}
		got, err := b.client.GetAccount(ctx, r.Account.ID)
		if err != nil || got.ExternalID != accs[i].ExternalID || got.Active != accs[i].Active || got.Organization != accs[i].Organization ||
			got.Profile.EmployeeNumber != accs[i].Profile.EmployeeNumber {
			t.Fatalf("item %d: read back %+v, %v; want %+v", i, got, err, accs[i])
		}
	}
	// Two hires gain nothing from the import: they are made one by one.
	two := []connector.Account{{UserName: "x1@example.com", Active: true}, {UserName: "x2@example.com", Active: true}}
	imports := b.sim.Calls("POST /manage/v1/user/batch")
	if rs, err := b.client.CreateAccounts(ctx, two); err != nil || rs[0].Err != nil || rs[1].Err != nil {
		t.Errorf("CreateAccounts(two) = %+v, %v", rs, err)
	}
	if n := b.sim.Calls("POST /manage/v1/user/batch"); n != imports {
		t.Error("two creates went through the batch import")
	}
}

// TestTokenEndpointOverloaded classifies a refused token request like any
// other call: 429 with its Retry-After and 503 are temporary.
func TestTokenEndpointOverloaded(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status int
		kind   connector.ErrorKind
		after  time.Duration
	}{{http.StatusTooManyRequests, connector.KindRateLimited, 7 * time.Second}, {http.StatusServiceUnavailable, connector.KindUnavailable, 0}} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if tc.after > 0 {
				w.Header().Set("Retry-After", "7")
			}
			http.Error(w, `{"error":"temporarily_unavailable"}`, tc.status)
		}))
		t.Cleanup(srv.Close)
		c, err := docebo.New(srv.URL, clientID, secret, docebo.WithHTTPClient(srv.Client()))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.GetAccount(t.Context(), "1")
		if le := lmsError(t, err); le.Kind != tc.kind || !le.Temporary() || le.RetryAfter != tc.after || le.Status != tc.status {
			t.Errorf("token answered %d: %+v, want %s, temporary, Retry-After %v", tc.status, le, tc.kind, tc.after)
		}
	}
}
