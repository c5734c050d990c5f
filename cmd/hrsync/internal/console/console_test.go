package console

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/store"
)

// testPassword is every test user's password.
const testPassword = "correct horse battery"

// testUsers are the console users of the tests: an uploader and an approver of
// every feed, a viewer, and a partner's power user who sees only their feed.
func testUsers(t testing.TB) []UserConfig {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return []UserConfig{
		{Name: "ursula", PasswordHash: string(h), Role: RoleApprover},
		{Name: "alice", PasswordHash: string(h), Role: RoleApprover},
		{Name: "victor", PasswordHash: string(h), Role: RoleViewer},
		{Name: "pat", PasswordHash: string(h), Role: RoleApprover, Feeds: []string{"partner-acme"}},
	}
}

type testBundle struct {
	c      *Server
	db     *store.DB
	srv    *httptest.Server
	hrHold int64
	pHold  int64
	// published are the holds whose sample batch the console published.
	published chan int64
	// lms is the sandbox LMS behind the console's converger (sync now).
	lms   *sandbox.LMS
	feeds connector.Feeds
	cfg   Config
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	ctx := t.Context()
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	db, err := store.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "hrsync.db"), log, store.Migrate(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	b := &testBundle{db: db, published: make(chan int64, 8)}
	for _, f := range []string{"hr", "partner-acme"} {
		id, err := db.CreateHold(ctx, connector.Hold{Feed: f, Kind: connector.HoldUpload, CausedBy: "ursula",
			Reason: "roster upload by ursula: 9 of 10", Counts: connector.HoldCounts{Active: 10}, Payload: []byte(`[]`),
			Workers: []connector.HeldWorker{{Worker: connector.WorkerKey{Feed: f, WorkerID: "w1"}, Name: "Ann Example",
				Email: "ann@example.com", Action: connector.ActionDeactivate}}})
		if err != nil {
			t.Fatal(err)
		}
		if f == "hr" {
			b.hrHold = id
		} else {
			b.pHold = id
		}
	}
	cfg := Config{Addr: "127.0.0.1:0", Users: testUsers(t)}
	if err := cfg.Check([]string{"hr", "partner-acme"}); err != nil {
		t.Fatal(err)
	}
	feeds, err := connector.NewFeeds(connector.DefaultFeed("hr", connector.FeedHR), connector.DefaultFeed("partner-acme", connector.FeedPartner))
	if err != nil {
		t.Fatal(err)
	}
	b.lms, b.feeds, b.cfg = sandbox.New(), feeds, cfg
	conv, err := connector.NewConverger(connector.ConvergerConfig{Store: db, LMS: b.lms, Feeds: feeds, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(cfg, Deps{Store: db, Feeds: feeds, Log: log, LMS: b.lms, Converger: conv,
		PublishUpload: func(context.Context, int64) (int, error) { return 0, nil },
		PublishSample: func(_ context.Context, id int64) (int, error) { b.published <- id; return 1, nil }})
	if err != nil {
		t.Fatal(err)
	}
	b.c = c
	b.srv = httptest.NewServer(c.Handler())
	t.Cleanup(b.srv.Close)
	return b
}

// browser is a client with its own cookies, as one browser is.
type browser struct {
	t    *testing.T
	c    *http.Client
	base string
	csrf string
}

func (b *testBundle) browser(t *testing.T) *browser {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: b.srv.URL, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// get returns the status and body of GET path, keeping the page's CSRF token.
func (br *browser) get(path string) (int, string) {
	br.t.Helper()
	resp, err := br.c.Get(br.base + path)
	if err != nil {
		br.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if m := csrfField.FindSubmatch(body); m != nil {
		br.csrf = string(m[1])
	}
	return resp.StatusCode, string(body)
}

// post sends a form; headers are set on the request as given.
func (br *browser) post(path string, form url.Values, headers ...string) int {
	br.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, br.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := br.c.Do(req)
	if err != nil {
		br.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (br *browser) signIn(name string) {
	br.t.Helper()
	br.get("/login")
	if code := br.post("/login", url.Values{"csrf": {br.csrf}, "name": {name}, "password": {testPassword}}); code != http.StatusSeeOther {
		br.t.Fatalf("sign in as %s: %d, want 303", name, code)
	}
	if code, _ := br.get("/holds"); code != http.StatusOK {
		br.t.Fatalf("holds after signing in as %s: %d", name, code)
	}
}

func (b *testBundle) status(t *testing.T, id int64) connector.HoldStatus {
	t.Helper()
	h, err := b.db.GetHold(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return h.Status
}

// Every state-changing request is authenticated, authorised by role and feed,
// and CSRF-protected: each forgery is refused with 403 and changes nothing.
func TestForgedRequestsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	approve := func(br *browser, id int64, csrf string, headers ...string) int {
		return br.post("/holds/"+itoa(id)+"/approve", url.Values{"csrf": {csrf}, "reason": {"looks right"}}, headers...)
	}
	anon := b.browser(t)
	if code := approve(anon, b.hrHold, "x"); code != http.StatusForbidden {
		t.Errorf("approve without a session: %d, want 403", code)
	}
	alice := b.browser(t)
	alice.signIn("alice")
	if code := approve(alice, b.hrHold, ""); code != http.StatusForbidden {
		t.Errorf("approve without a CSRF token: %d, want 403", code)
	}
	if code := approve(alice, b.hrHold, alice.csrf+"x"); code != http.StatusForbidden {
		t.Errorf("approve with a wrong CSRF token: %d, want 403", code)
	}
	if code := approve(alice, b.hrHold, alice.csrf, "Sec-Fetch-Site", "cross-site"); code != http.StatusForbidden {
		t.Errorf("approve from another site, with the token: %d, want 403", code)
	}
	// Another session's token is not this one's.
	other := b.browser(t)
	other.signIn("alice")
	if code := approve(alice, b.hrHold, other.csrf); code != http.StatusForbidden {
		t.Errorf("approve with another session's token: %d, want 403", code)
	}
	victor := b.browser(t)
	victor.signIn("victor")
	if _, page := victor.get("/holds/" + itoa(b.hrHold)); strings.Contains(page, `id="approve"`) || !strings.Contains(page, "Ann Example") {
		t.Errorf("a viewer's hold page: want the people and no approve button")
	}
	if code := approve(victor, b.hrHold, victor.csrf); code != http.StatusForbidden {
		t.Errorf("a viewer approving with a valid token: %d, want 403", code)
	}
	if code := victor.post("/person/sync", url.Values{"csrf": {victor.csrf}, "feed": {"hr"}, "worker": {"w1"}}); code != http.StatusForbidden {
		t.Errorf("a viewer's sync now: %d, want 403", code)
	}
	pat := b.browser(t)
	pat.signIn("pat")
	if code := pat.post("/person", url.Values{"csrf": {pat.csrf}, "feed": {"hr"}, "worker": {"w1"}}); code != http.StatusForbidden {
		t.Errorf("a partner's user opening an hr person: %d, want 403", code)
	}
	if code := approve(pat, b.hrHold, pat.csrf); code != http.StatusForbidden {
		t.Errorf("a partner's user approving an hr hold: %d, want 403", code)
	}
	if code, _ := pat.get("/holds/" + itoa(b.hrHold)); code != http.StatusForbidden {
		t.Errorf("a partner's user reading an hr hold: %d, want 403", code)
	}
	if _, page := pat.get("/holds"); strings.Contains(page, "/holds/"+itoa(b.hrHold)+`"`) || !strings.Contains(page, "/holds/"+itoa(b.pHold)+`"`) {
		t.Errorf("a partner's user's hold list: want only their feed's hold")
	}
	ursula := b.browser(t)
	ursula.signIn("ursula")
	if _, page := ursula.get("/holds/" + itoa(b.hrHold)); !strings.Contains(page, `id="selfcaused"`) || strings.Contains(page, `id="approve"`) {
		t.Errorf("the uploader's hold page: want the four-eyes notice and no approve button")
	}
	if code := approve(ursula, b.hrHold, ursula.csrf); code != http.StatusForbidden {
		t.Errorf("the uploader approving her own upload: %d, want 403", code)
	}
	if s := b.status(t, b.hrHold); s != connector.HoldOpen {
		t.Fatalf("after the forgeries the hold is %s, want open", s)
	}
	// Signing out needs the token too.
	if code := alice.post("/logout", url.Values{}); code != http.StatusForbidden {
		t.Errorf("sign out without a token: %d, want 403", code)
	}
	// The real thing works.
	if code := approve(alice, b.hrHold, alice.csrf); code != http.StatusSeeOther {
		t.Fatalf("alice approving: %d, want 303", code)
	}
	if s := b.status(t, b.hrHold); s != connector.HoldApproved {
		t.Fatalf("after alice's approval the hold is %s", s)
	}
}

// A sample batch of a held roster: refused to its uploader and to another
// feed's user; a second approver's marks the first people and publishes their
// leavers, and the hold stays open for the rest.
func TestSampleBatchOfUpload(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sample := func(br *browser) int {
		return br.post("/holds/"+itoa(b.hrHold)+"/sample", url.Values{"csrf": {br.csrf}, "n": {"1"}, "reason": {"one first"}})
	}
	ursula := b.browser(t)
	ursula.signIn("ursula")
	if _, page := ursula.get("/holds/" + itoa(b.hrHold)); strings.Contains(page, `id="sample"`) {
		t.Error("the uploader's hold page offers her a sample batch")
	}
	if code := sample(ursula); code != http.StatusForbidden {
		t.Errorf("the uploader's sample batch: %d, want 403", code)
	}
	pat := b.browser(t)
	pat.signIn("pat")
	if code := sample(pat); code != http.StatusForbidden {
		t.Errorf("a partner's user's sample batch of an hr hold: %d, want 403", code)
	}
	if h, err := b.db.GetHold(t.Context(), b.hrHold); err != nil || h.Sample != 0 || len(b.published) != 0 {
		t.Fatalf("after the refused samples: %+v, %v, %d published", h, err, len(b.published))
	}
	alice := b.browser(t)
	alice.signIn("alice")
	if _, page := alice.get("/holds/" + itoa(b.hrHold)); !strings.Contains(page, `id="sample"`) {
		t.Fatal("alice's hold page offers no sample batch of the roster")
	}
	req, _ := http.NewRequest(http.MethodPost, alice.base+"/holds/"+itoa(b.hrHold)+"/sample",
		strings.NewReader(url.Values{"csrf": {alice.csrf}, "n": {"1"}, "reason": {"one first"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := alice.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasSuffix(resp.Header.Get("Location"), "done=sampled-published") {
		t.Fatalf("alice's sample batch: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if len(b.published) != 1 || <-b.published != b.hrHold {
		t.Fatal("the sample batch's leavers were not published")
	}
	h, err := b.db.GetHold(t.Context(), b.hrHold)
	if err != nil || h.Sample != 1 || h.Status != connector.HoldOpen {
		t.Fatalf("the hold after the sample: %+v, %v; want a sample of 1, open", h, err)
	}
	if _, page := alice.get("/holds/" + itoa(b.hrHold) + "?done=sampled-published"); !strings.Contains(page, "in the sample") ||
		!strings.Contains(page, "the rest wait for the decision") || !strings.Contains(page, "Approve the rest") {
		t.Errorf("the hold page after the sample lacks who is in it:\n%s", page)
	}
}

// Sync now converges the person there and then through the converger (no
// daemon runs here to wake) and shows each step: the match and the plan it
// started from, the LMS call with its outcome, and the account after.
func TestSyncNowConverges(t *testing.T) {
	t.Parallel()
	b := setup(t)
	now := time.Now().UTC()
	if _, err := b.db.RecordFacts(t.Context(), []connector.Fact{{Source: b.feeds["hr"].Source, ID: "e9", Feed: "hr", WorkerID: "w9",
		Kind: connector.KindHired, Effective: now, Time: now,
		Profile: connector.Profile{Email: "nia@example.com", GivenName: "Nia", FamilyName: "Okafor", EmployeeNumber: "E9"}}}); err != nil {
		t.Fatal(err)
	}
	alice := b.browser(t)
	alice.signIn("alice")
	form := url.Values{"feed": {"hr"}, "worker": {"w9"}}
	req := func(path string) (int, string) {
		t.Helper()
		form.Set("csrf", alice.csrf)
		resp, err := alice.c.PostForm(alice.base+path, form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, page := req("/person"); code != http.StatusOK || !strings.Contains(page, `id="sync"`) || !strings.Contains(page, "create") {
		t.Fatalf("the person page before: %d, want a sync button and a plan to create\n%s", code, page)
	}
	code, page := req("/person/sync")
	if code != http.StatusOK {
		t.Fatalf("sync now: %d\n%s", code, page)
	}
	steps := page[strings.Index(page, `id="steps"`):]
	steps = steps[:strings.Index(steps, "</div>")]
	for _, want := range []string{"Match:</b> no account", "Plan:</b> create", `<span class="badge ok">ok</span> create of account`,
		"Result:</b> account ", "is active: Nia Okafor, nia@example.com"} {
		if !strings.Contains(steps, want) {
			t.Errorf("the steps of sync now lack %q:\n%s", want, steps)
		}
	}
	if n := b.lms.Count(); n != 1 {
		t.Fatalf("the LMS has %d accounts after sync now, want the one created", n)
	}
	if !strings.Contains(page, `<dd id="plan">nothing to do</dd>`) {
		t.Errorf("the plan after sync now is not empty")
	}
	// A second sync now has nothing to do, and says so.
	if _, page := req("/person/sync"); !strings.Contains(page, "none: no LMS call, no hold, no review was needed") {
		t.Errorf("a second sync now:\n%s", page)
	}
}

// A sign-in form from elsewhere is refused, and guessing is slowed down.
func TestSignIn(t *testing.T) {
	t.Parallel()
	b := setup(t)
	br := b.browser(t)
	if code := br.post("/login", url.Values{"name": {"alice"}, "password": {testPassword}}); code != http.StatusForbidden {
		t.Errorf("sign-in without the form's token: %d, want 403", code)
	}
	br.get("/login")
	codes := []int{}
	for range 7 {
		codes = append(codes, br.post("/login", url.Values{"csrf": {br.csrf}, "name": {"alice"}, "password": {"wrong password!"}}))
	}
	if codes[0] != http.StatusUnauthorized || codes[6] != http.StatusTooManyRequests {
		t.Errorf("wrong passwords answered %v; want 401 first, 429 once limited", codes)
	}
	// Limited, the right password is refused too until the limit refills.
	if code := br.post("/login", url.Values{"csrf": {br.csrf}, "name": {"alice"}, "password": {testPassword}}); code != http.StatusTooManyRequests {
		t.Errorf("right password while limited: %d, want 429", code)
	}
	if code, _ := b.browser(t).get("/holds"); code != http.StatusSeeOther {
		t.Errorf("holds without signing in: %d, want a redirect to sign in", code)
	}
}

// The session cookie is HttpOnly and SameSite, and Secure when configured.
func TestSessionCookie(t *testing.T) {
	t.Parallel()
	secure := true
	for _, tc := range []struct {
		name   string
		secure *bool
		want   bool
	}{{"Plain", nil, false}, {"Secure", &secure, true}} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(Config{Users: testUsers(t), SecureCookies: tc.secure}, Deps{Store: &store.DB{}})
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			c.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/login", nil))
			cs := rec.Result().Cookies()
			if len(cs) != 1 || !cs[0].HttpOnly || cs[0].SameSite != http.SameSiteStrictMode || cs[0].Secure != tc.want {
				t.Fatalf("cookies %+v; want one HttpOnly, SameSite=Strict, Secure=%v", cs, tc.want)
			}
			if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
				t.Errorf("Content-Security-Policy %q", csp)
			}
		})
	}
}

func TestConfigCheck(t *testing.T) {
	t.Parallel()
	err := Config{Addr: ":1", TLSCert: "c", Users: []UserConfig{{Name: "a", PasswordHash: "x", Role: "boss", Feeds: []string{"nope"}}}}.Check([]string{"hr"})
	for _, want := range []string{"tls_key", "password_hash", `role "boss"`, `"nope" is not a configured feed`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Check: %v; want it to name %s", err, want)
		}
	}
	if _, err := HashPassword("short"); err == nil {
		t.Error("HashPassword took a 5-character password")
	}
}

func itoa(id int64) string { return strconv.FormatInt(id, 10) }

// postBody is post that returns the response's content type and body.
func (br *browser) postBody(path string, form url.Values) (int, string, string) {
	br.t.Helper()
	resp, err := br.c.PostForm(br.base+path, form)
	if err != nil {
		br.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(body)
}

// The audit trail is searched by POST (no worker id in a URL), per feed the
// user may see, and exported as CSV.
func TestAuditSearch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, id := range []int64{b.hrHold, b.pHold} {
		if _, err := b.db.DecideHold(t.Context(), id, connector.HoldDecision{Approve: true, By: "bob", Reason: "checked"}); err != nil {
			t.Fatal(err)
		}
	}
	pat := b.browser(t)
	pat.signIn("pat")
	if _, page := pat.get("/audit"); !strings.Contains(page, "hold "+itoa(b.pHold)+" approved by bob") || strings.Contains(page, "hold "+itoa(b.hrHold)+" approved") {
		t.Errorf("a partner's audit page: want only the partner's rows")
	}
	if code, _, _ := pat.postBody("/audit", url.Values{"csrf": {pat.csrf}, "feed": {"hr"}}); code != http.StatusForbidden {
		t.Errorf("a partner's search of the hr feed: %d, want 403", code)
	}
	alice := b.browser(t)
	alice.signIn("alice")
	alice.get("/audit")
	code, ctype, body := alice.postBody("/audit", url.Values{"csrf": {alice.csrf}, "feed": {"hr"}, "worker": {"w1"}, "format": {"csv"}})
	if code != http.StatusOK || !strings.HasPrefix(ctype, "text/csv") {
		t.Fatalf("CSV export: %d %s", code, ctype)
	}
	lines := strings.Split(strings.TrimSpace(body), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], ",hr,w1,") || !strings.Contains(lines[1], "hold "+itoa(b.hrHold)+" approved by bob") {
		t.Fatalf("CSV export of hr/w1:\n%s", body)
	}
	if code, _, _ := alice.postBody("/audit", url.Values{"feed": {"hr"}, "format": {"csv"}}); code != http.StatusForbidden {
		t.Errorf("an export without the token: %d, want 403", code)
	}
}

// A dead letter is shown decoded and discarded with a reason by the signed-in
// user; a review item is resolved; a partner's user can do neither for hr, and
// neither works without the form's token.
func TestDeadLettersAndReviews(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	dl, err := b.db.DeadLetter(ctx, connector.DeadLetter{Feed: "hr", Subject: "hrsync.events.hr.hired",
		Headers: []byte(`{"Ce-Id":["e1"],"Ce-Type":["hrsync.worker.hired.v1"],"Ce-Source":["/feeds/hr"],"Ce-Specversion":["1.0"]}`),
		Data:    []byte(`{"worker_id":""}`), Reason: "data.worker_id: required"})
	if err != nil {
		t.Fatal(err)
	}
	w := connector.WorkerKey{Feed: "hr", WorkerID: "w7"}
	if _, err := b.db.RecordFacts(ctx, []connector.Fact{{Feed: "hr", WorkerID: "w7", Source: "/feeds/hr", ID: "f1", Kind: connector.KindHired,
		Effective: time.Now().Add(-time.Hour), Time: time.Now().Add(-time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	cs, err := b.db.ClaimDue(ctx, "test", time.Now().Add(time.Minute), time.Minute, 10)
	if err != nil || len(cs) != 1 || cs[0].Worker != w {
		t.Fatalf("claim: %v, %v", cs, err)
	}
	if err := b.db.Complete(ctx, connector.Completion{Claim: cs[0], Owner: "test",
		Review: &connector.Review{Reason: "ambiguous match", Candidates: []string{"a1", "a2"}}}); err != nil {
		t.Fatal(err)
	}
	rs, err := b.db.ListReviews(ctx, store.ReviewFilter{})
	if err != nil || len(rs) != 1 {
		t.Fatalf("reviews %v, %v", rs, err)
	}

	pat := b.browser(t)
	pat.signIn("pat")
	if code, _ := pat.get("/dead/" + itoa(dl)); code != http.StatusForbidden {
		t.Errorf("a partner's user reading an hr dead letter: %d, want 403", code)
	}
	pat.get("/reviews")
	if code := pat.post("/reviews/"+itoa(rs[0].ID)+"/resolve", url.Values{"csrf": {pat.csrf}, "reason": {"x"}}); code != http.StatusForbidden {
		t.Errorf("a partner's user resolving an hr review item: %d, want 403", code)
	}
	alice := b.browser(t)
	alice.signIn("alice")
	_, page := alice.get("/dead/" + itoa(dl))
	if !strings.Contains(page, "data.worker_id: required") || !strings.Contains(page, "hrsync.worker.hired.v1") || !strings.Contains(page, `id="discard"`) {
		t.Fatalf("the dead letter's page: want its reason, its decoded type and a discard button:\n%s", page)
	}
	if code := alice.post("/dead/"+itoa(dl)+"/discard", url.Values{"reason": {"sent again fixed"}}); code != http.StatusForbidden {
		t.Errorf("discard without the token: %d, want 403", code)
	}
	if code := alice.post("/dead/"+itoa(dl)+"/discard", url.Values{"csrf": {alice.csrf}, "reason": {"sent again fixed"}}); code != http.StatusSeeOther {
		t.Fatalf("discard: %d", code)
	}
	d, err := b.db.GetDeadLetter(ctx, dl)
	if err != nil || d.DiscardedBy != "alice" || d.DiscardReason != "sent again fixed" {
		t.Fatalf("after discarding: %+v, %v", d, err)
	}
	alice.get("/reviews")
	if code := alice.post("/reviews/"+itoa(rs[0].ID)+"/resolve", url.Values{"csrf": {alice.csrf}, "reason": {"merged a2 into a1"}}); code != http.StatusSeeOther {
		t.Fatalf("resolve: %d", code)
	}
	r, err := b.db.GetReview(ctx, rs[0].ID)
	if err != nil || r.ResolvedBy != "alice" || r.Resolution != "merged a2 into a1" {
		t.Fatalf("after resolving: %+v, %v", r, err)
	}
}

// The overview shows the feeds a user may see, with their open holds, and
// draws its charts as SVG.
func TestOverview(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pat := b.browser(t)
	pat.signIn("pat")
	code, page := pat.get("/")
	if code != http.StatusOK || !strings.Contains(page, "<td>partner-acme</td>") || strings.Contains(page, "<td>hr</td>") {
		t.Fatalf("a partner's overview (%d): want only partner-acme:\n%s", code, page)
	}
	if !strings.Contains(page, "<svg") || strings.Count(page, "<polyline") != 9 {
		t.Errorf("the overview's charts: want two SVG charts with 3 + 6 lines")
	}
	alice := b.browser(t)
	alice.signIn("alice")
	if _, page := alice.get("/"); !strings.Contains(page, "<td>hr</td>") || !strings.Contains(page, `<a href="/holds">1</a>`) {
		t.Errorf("alice's overview: want hr with its open hold")
	}
}

// The drift page shows the latest reconciliation by class and feed, limited to
// a user's feeds, and its counts as CSV.
func TestDrift(t *testing.T) {
	t.Parallel()
	b := setup(t)
	alice := b.browser(t)
	alice.signIn("alice")
	if _, page := alice.get("/drift"); !strings.Contains(page, "No reconciliation has run") {
		t.Errorf("drift before any reconciliation:\n%s", page)
	}
	b.c.Reconciled(connector.ReconcileSummary{Finished: time.Now(), Counts: map[connector.DriftClass]int{connector.ClassProfileDrift: 3, connector.ClassOrphan: 1},
		ByFeed: map[string]map[connector.DriftClass]int{"hr": {connector.ClassProfileDrift: 2}, "partner-acme": {connector.ClassProfileDrift: 1},
			"": {connector.ClassOrphan: 1}}}, nil)
	if _, page := alice.get("/"); !strings.Contains(page, ": 4 accounts out of step") {
		t.Errorf("the overview names no last reconciliation:\n%s", page)
	}
	if _, page := alice.get("/drift"); !strings.Contains(page, "<td>profile_drift</td><td class=\"num\">3</td>") || !strings.Contains(page, "orphan") {
		t.Errorf("alice's drift page:\n%s", page)
	}
	pat := b.browser(t)
	pat.signIn("pat")
	if _, page := pat.get("/drift"); !strings.Contains(page, "<td>profile_drift</td><td class=\"num\">1</td>") || strings.Contains(page, "orphan") {
		t.Errorf("a partner's drift page: want only partner-acme's count:\n%s", page)
	}
	resp, err := alice.c.Get(alice.base + "/drift?format=csv")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if got := string(body); got != "class,feed,count\norphan,,1\nprofile_drift,hr,2\nprofile_drift,partner-acme,1\n" {
		t.Errorf("drift CSV:\n%s", got)
	}
}

// Sessions are kept in the database: a sign-in survives a restart and works on
// another replica with the same token, signing out on one ends it on all, and
// the database holds a hash of the cookie, never the cookie.
func TestSessionsSurviveARestart(t *testing.T) {
	t.Parallel()
	b := setup(t)
	alice := b.browser(t)
	alice.signIn("alice")
	// Another replica (or this one, restarted) on the same database.
	other, err := New(b.cfg, Deps{Store: b.db, Feeds: b.feeds})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(other.Handler())
	t.Cleanup(srv.Close)
	b.srv.Close() // the first one is gone
	alice.base = srv.URL
	if code, page := alice.get("/"); code != http.StatusOK || !strings.Contains(page, "alice · approver") {
		t.Fatalf("the other replica's overview: %d, want alice signed in\n%s", code, page)
	}
	u, _ := url.Parse(srv.URL)
	var cookie string
	for _, c := range alice.c.Jar.Cookies(u) {
		if c.Name == sessionCookie {
			cookie = c.Value
		}
	}
	if _, err := b.db.GetConsoleSession(t.Context(), cookie, time.Now()); err == nil {
		t.Fatal("the database holds the session cookie's value")
	}
	if st, err := b.db.GetConsoleSession(t.Context(), sessionKey(cookie), time.Now()); err != nil || st.User != "alice" {
		t.Fatalf("the session in the database: %+v, %v", st, err)
	}
	// A form of the session is accepted by the other replica: its token is the session's.
	alice.get("/holds/" + itoa(b.hrHold))
	if code := alice.post("/holds/"+itoa(b.hrHold)+"/reject", url.Values{"csrf": {alice.csrf}, "reason": {"wrong file"}}); code != http.StatusSeeOther {
		t.Fatalf("rejecting on the other replica: %d, want 303", code)
	}
	if code := alice.post("/logout", url.Values{"csrf": {alice.csrf}}); code != http.StatusSeeOther {
		t.Fatalf("signing out: %d, want 303", code)
	}
	if _, err := b.db.GetConsoleSession(t.Context(), sessionKey(cookie), time.Now()); err == nil {
		t.Fatal("the session outlived signing out")
	}
	// The cookie, replayed after signing out, signs nobody in.
	alice.c.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: cookie, Path: "/"}})
	if code, _ := alice.get("/"); code != http.StatusSeeOther {
		t.Fatalf("a replayed cookie after signing out: %d, want 303 to sign in", code)
	}
}

// A session already open gets the role console.users gives now: after the file
// demoted alice (and the daemon restarted), her session is a viewer's; after it
// removed her, with no OIDC, her session signs nobody in.
func TestSessionsTakeTheConfiguredRole(t *testing.T) {
	t.Parallel()
	b := setup(t)
	alice := b.browser(t)
	alice.signIn("alice")
	restart := func(users []UserConfig) {
		t.Helper()
		cfg := b.cfg
		cfg.Users = users
		s, err := New(cfg, Deps{Store: b.db, Feeds: b.feeds})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(s.Handler())
		t.Cleanup(srv.Close)
		u, _ := url.Parse(alice.base)
		cookies := alice.c.Jar.Cookies(u)
		alice.base = srv.URL
		nu, _ := url.Parse(srv.URL)
		alice.c.Jar.SetCookies(nu, cookies)
	}
	var demoted []UserConfig
	for _, u := range b.cfg.Users {
		if u.Name == "alice" {
			u.Role = RoleViewer
		}
		demoted = append(demoted, u)
	}
	restart(demoted)
	if code, page := alice.get("/"); code != http.StatusOK || !strings.Contains(page, "alice · viewer") {
		t.Fatalf("after the demotion: %d, want alice signed in as a viewer\n%s", code, page)
	}
	alice.get("/holds/" + itoa(b.hrHold))
	if code := alice.post("/holds/"+itoa(b.hrHold)+"/approve", url.Values{"csrf": {alice.csrf}, "reason": {"looks right"}}); code != http.StatusForbidden {
		t.Fatalf("a demoted approver's approval: %d, want 403", code)
	}
	var without []UserConfig
	for _, u := range b.cfg.Users {
		if u.Name != "alice" {
			without = append(without, u)
		}
	}
	restart(without)
	if code, _ := alice.get("/"); code != http.StatusSeeOther {
		t.Fatalf("after alice was removed: %d, want 303 to sign in", code)
	}
}
