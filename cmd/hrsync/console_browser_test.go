package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go"
	"golang.org/x/crypto/bcrypt"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/console/oidctest"
	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
	"github.com/hrsync/hrsync/store/pgtest"
)

// updateScreenshots writes the console's screenshots into docs/console; without
// it they go to the test's temporary directory (taken all the same).
var updateScreenshots = flag.Bool("update-screenshots", false, "write the console's screenshots to docs/console")

// chromiumPath returns Debian's chromium (or another Chrome), skipping t with a
// loud message when there is none, unless HRSYNC_REQUIRE_BROWSER=1 (CI), which
// makes that a failure.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("HRSYNC_REQUIRE_BROWSER") == "1" {
		t.Fatal("no chromium on PATH (HRSYNC_REQUIRE_BROWSER=1, so this is a failure): apt-get install chromium")
	}
	t.Skip("SKIPPING: no chromium on PATH; apt-get install chromium to run the console's browser tests (HRSYNC_REQUIRE_BROWSER=1 makes this fail)")
	return ""
}

// consoleDB is a fresh PostgreSQL schema, or, when PostgreSQL is unreachable
// and not required (HRSYNC_REQUIRE_POSTGRES unset), a SQLite file, so that the
// browser test runs wherever chromium does.
func consoleDB(t *testing.T) string {
	t.Helper()
	if os.Getenv("HRSYNC_REQUIRE_POSTGRES") != "1" {
		db, err := sql.Open("postgres", pgtest.ServerURL())
		if err == nil {
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
			err = db.PingContext(ctx)
			cancel()
			db.Close()
		}
		if err != nil {
			t.Logf("PostgreSQL unreachable (%v): the console test runs on SQLite", err)
			return "sqlite://" + filepath.Join(t.TempDir(), "hrsync.db")
		}
	}
	return pgtest.URL(t)
}

// consolePassword is every console user's password in the test.
const consolePassword = "correct horse battery"

// The console in a real browser against a real hrsync run, the sandbox LMS
// (over SCIM) and PostgreSQL: a truncated roster is held; its uploader cannot
// approve it (no button, and a forged sample batch is refused); a viewer sees
// no button and a forged POST is refused; a partner's power user sees only
// their feed and gives the first of the two approvals its offboarding needs; a
// second approver approves a sample batch of the roster, whose two leavers
// alone are deactivated in the LMS, then the rest, which are deactivated too;
// the audit page shows who approved; people sign in through OIDC, by their
// email or by a group.
func TestConsoleInBrowser(t *testing.T) {
	t.Parallel()
	chrome := chromiumPath(t)
	natsURL, dbURL, lms := startNATS(t), consoleDB(t), startLMS(t, nil)
	dir := t.TempDir()
	shots := dir
	if *updateScreenshots {
		shots = filepath.Join("..", "..", "docs", "console")
		if err := os.MkdirAll(shots, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(consolePassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	// A webhook receiver: the daemon tells it of each hold that opens.
	hooked := make(chan map[string]any, 16)
	rx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		if err := json.NewDecoder(r.Body).Decode(&m); err == nil {
			select {
			case hooked <- m:
			default:
			}
		}
	}))
	t.Cleanup(rx.Close)
	consoleAddr := freeLoopbackAddr(t)
	idp := oidctest.New(t)
	idp.SignInAs("olga@example.com", true)
	cfg := filepath.Join(dir, "hrsync.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`feeds:
  - name: hr
    roster:
      mode: snapshot
  - name: partner-acme
    kind: partner
    roster:
      mode: snapshot
    retention:
      keep_learning_records: false
safeguard:
  percent: 20
  min_removals: 2
  settle: 0s
holds:
  approvals:
    offboard: 2
notify:
  every: 100ms
  webhooks:
    - {name: ops, url: %[2]q, events: [hold_opened, drift]}
console:
  logins_per_minute: 20   # six people sign in from one address within the minute
  users:
    - {name: ursula, role: approver, password_hash: %[1]q}
    - {name: alice, role: approver, password_hash: %[1]q}
    - {name: victor, role: viewer, password_hash: %[1]q}
    - {name: pat, role: approver, feeds: [partner-acme], password_hash: %[1]q}
    - {name: olga@example.com, role: admin}
  oidc:
    issuer: %[3]q
    client_id: hrsync-console
    redirect_url: http://%[4]s/login/callback
    name: Example SSO
    roles:
      - {claim: groups, value: lms-viewers, role: viewer, feeds: [hr]}
`, hash, rx.URL, idp.Issuer, consoleAddr)), 0o600); err != nil {
		t.Fatal(err)
	}

	runTestDaemon(t, "--config", cfg, "--lms-url", lms.url, "--lms-token", lms.token,
		"--nats-url", natsURL, "--db", dbURL, "--admin-addr", "", "--console-addr", consoleAddr, "--poll-interval", "50ms",
		"--reconcile-every", "1s")
	base := "http://" + consoleAddr
	waitFor(t, 30*time.Second, "the console answers", func() (bool, string) {
		resp, err := http.Get(base + "/login")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})

	// Rosters: ten people at hr and four at acme, uploaded by ursula.
	upload := func(feed string, n int, wantHeld bool) {
		t.Helper()
		var b strings.Builder
		b.WriteString("worker_id,email,given_name,family_name\n")
		for i := range n {
			fmt.Fprintf(&b, "%s%02d,%s%02d@%s.example,Person,%s %02d\n", feed[:1], i, feed[:1], i, feed, strings.ToUpper(feed[:1])+feed[1:], i)
		}
		file := filepath.Join(dir, fmt.Sprintf("%s-%d.csv", feed, n))
		if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		out, stderr, err := runCLI(t, nil, "roster", "upload", "--db", dbURL, "--config", cfg, "--nats-url", natsURL,
			"--feed", feed, "--by", "ursula", file)
		if held := needsPerson(err); held != wantHeld || (err != nil && !held) {
			t.Fatalf("roster upload %s of %d: held %v, err %v; want held %v\n%s%s", feed, n, held, err, wantHeld, out, stderr)
		}
	}
	accounts := func(prefix string) (active, inactive int) {
		for _, r := range lms.sb.Snapshot() {
			if strings.HasPrefix(r.Account.ExternalID, prefix) {
				if r.Account.Active {
					active++
				} else {
					inactive++
				}
			}
		}
		return active, inactive
	}
	upload("hr", 10, false)
	upload("partner-acme", 4, false)
	waitFor(t, 60*time.Second, "14 accounts created", func() (bool, string) {
		h, _ := accounts("hr:")
		p, _ := accounts("partner-acme:")
		return h == 10 && p == 4, fmt.Sprintf("hr %d, partner-acme %d active", h, p)
	})
	upload("hr", 3, true) // truncated: 7 leavers of 10
	out, stderr, err := runCLI(t, nil, "feed", "offboard", "partner-acme", "--by", "ursula", "--reason", "contract ended",
		"--config", cfg, "--db", dbURL, "--lms-url", lms.url, "--lms-token", lms.token, "--out", filepath.Join(dir, "off"))
	if !needsPerson(err) {
		t.Fatalf("feed offboard: %v\n%s%s", err, out, stderr)
	}
	// The webhook heard of the held roster (and of the offboarding, maybe first:
	// both can open between two looks of the notifier).
	for heard, deadline := false, time.After(30*time.Second); !heard; {
		select {
		case m := <-hooked:
			heard = m["event"] == "hold_opened" && m["feed"] == "hr" && m["kind"] == "upload"
		case <-deadline:
			t.Fatal("no webhook for the held roster")
		}
	}
	db, err := store.Open(t.Context(), dbURL, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	holds, err := db.ListHolds(t.Context(), store.HoldFilter{Status: connector.HoldOpen})
	if err != nil || len(holds) != 2 {
		t.Fatalf("open holds %+v, %v; want the roster's and the offboarding's", holds, err)
	}
	var roster, offboard int64
	for _, h := range holds {
		switch h.Kind {
		case connector.HoldUpload:
			roster = h.ID
		case connector.HoldOffboard:
			offboard = h.ID
		}
	}
	rosterPath, offboardPath := "/holds/"+strconv.FormatInt(roster, 10), "/holds/"+strconv.FormatInt(offboard, 10)

	br := startBrowser(t, chrome, base, shots)
	statuses := br.statuses
	do, load, text, has, shot, open := br.do, br.load, br.text, br.has, br.shot, br.open
	signIn := func(name string) {
		t.Helper()
		open("/login")
		do("sign in as "+name, chromedp.SendKeys(chromedp.ID("name"), name), chromedp.SendKeys(chromedp.ID("password"), consolePassword))
		load("sign in as "+name, chromedp.Click(chromedp.ID("signin")))
		if h := text("h1"); h != "Overview" {
			t.Fatalf("after signing in as %s the page is %q", name, h)
		}
	}
	signOut := func() {
		t.Helper()
		load("sign out", chromedp.Click(chromedp.CSS("header form button")))
		if !has("#signin") {
			t.Fatal("signed out, but no sign-in form")
		}
	}
	submit := func(what, button string, fields ...string) {
		t.Helper()
		var as []chromedp.Action[chromedp.Void]
		for i := 0; i+1 < len(fields); i += 2 {
			as = append(as, chromedp.SendKeys(chromedp.ID(fields[i]), fields[i+1]))
		}
		do(what, as...)
		load(what, chromedp.Click(chromedp.ID(button)))
	}

	// The uploader sees the held roster and the people in it, but may not approve it.
	signIn("ursula")
	open("/holds")
	shot("holds")
	open(rosterPath)
	if !has("#selfcaused") || has("#approve") {
		t.Fatal("the uploader's view of her held roster: want the four-eyes notice and no approve button")
	}
	if rows := text("#affected tbody"); !strings.Contains(rows, "Hr 09") || !strings.Contains(rows, "h09@hr.example") || !strings.Contains(rows, "u-0000") {
		t.Fatalf("the held roster's people: %q; want names, emails and accounts", rows)
	}
	shot("hold-four-eyes")
	// forge posts a form of the signed-in user's session to path (with its
	// CSRF token, so that only the role or four eyes can refuse it) and returns
	// the status it got.
	forge := func(what, path string, fields ...string) int64 {
		t.Helper()
		for len(statuses) > 0 {
			<-statuses
		}
		pairs := "['csrf', document.querySelector('input[name=csrf]').value]"
		for i := 0; i+1 < len(fields); i += 2 {
			pairs += fmt.Sprintf(", [%q, %q]", fields[i], fields[i+1])
		}
		load(what, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Evaluate[bool](fmt.Sprintf(`(() => {
		const f = document.createElement('form'); f.method = 'post'; f.action = %q;
		for (const [k, v] of [%s]) {
			const i = document.createElement('input'); i.name = k; i.value = v; f.appendChild(i); }
		document.body.appendChild(f); f.submit(); return true; })()`, path, pairs))(ctx, tg)
			return err
		}))
		return lastStatus(statuses)
	}
	// The uploader's own sample batch, forged past the missing button, is refused too.
	if got := forge("the uploader forges a sample batch", rosterPath+"/sample", "n", "2", "reason", "mine"); got != http.StatusForbidden {
		t.Fatalf("the uploader's forged sample batch answered %d, want 403", got)
	}
	if h, err := db.GetHold(t.Context(), roster); err != nil || h.Sample != 0 || h.Status != connector.HoldOpen {
		t.Fatalf("the roster hold after the uploader's forged sample: %+v, %v", h, err)
	}
	open("/")
	signOut()

	// A viewer has no button, and a forged approval is refused.
	signIn("victor")
	open(rosterPath)
	if has("#approve") || has("#reject") || has("#sample") {
		t.Fatal("a viewer sees an approve, sample or reject button")
	}
	if got := forge("forge an approval", rosterPath+"/approve", "reason", "forged"); got != http.StatusForbidden {
		t.Fatalf("a viewer's forged approval answered %d, want 403", got)
	}
	signOut()

	// A partner's power user sees only their feed, and gives the first of the
	// two approvals its offboarding needs.
	signIn("pat")
	if f := text("#feeds tbody"); strings.Contains(f, "hr\t") || !strings.Contains(f, "partner-acme") {
		t.Fatalf("a partner's overview: %q; want only partner-acme", f)
	}
	open("/holds")
	if has(`a[href="`+rosterPath+`"]`) || !has(`a[href="`+offboardPath+`"]`) {
		t.Fatal("a partner's user's hold list: want the partner's offboarding and not the hr roster")
	}
	shot("holds-partner")
	open(offboardPath)
	submit("approve the offboarding (1 of 2)", "approve", "approve-reason", "the contract ended on the 1st")
	if f := text("p.flash"); !strings.Contains(f, "another approver") {
		t.Fatalf("after the first of two approvals: %q", f)
	}
	if !has("#selfcaused") {
		t.Fatal("after approving once, pat may still approve again")
	}
	signOut()

	// A second approver lets a sample batch of the roster run: its first two
	// leavers (h03 and h04, as listed) are deactivated, and nobody else.
	signIn("alice")
	open(rosterPath)
	submit("approve a sample batch of the roster", "sample", "sample-n", "2", "sample-reason", "try two first")
	if f := text("p.flash"); !strings.Contains(f, "sample batch's leavers are published") {
		t.Fatalf("after the sample batch: %q", f)
	}
	inactive := func() []string {
		var out []string
		for _, r := range lms.sb.Snapshot() {
			if strings.HasPrefix(r.Account.ExternalID, "hr:") && !r.Account.Active {
				out = append(out, r.Account.ExternalID)
			}
		}
		slices.Sort(out)
		return out
	}
	waitFor(t, 60*time.Second, "the sample batch deactivated", func() (bool, string) {
		got := inactive()
		return slices.Equal(got, []string{"hr:h03", "hr:h04"}), fmt.Sprintf("inactive: %v", got)
	})
	open(rosterPath)
	if s := text("#sample-size"); !strings.Contains(s, "the first 2 may run; the rest wait") {
		t.Fatalf("the roster hold's sample: %q", s)
	}
	if rows := text("#affected tbody"); strings.Count(rows, "in the sample") != 2 {
		t.Fatalf("the roster hold's people after the sample: %q; want two in the sample", rows)
	}
	shot("hold-sample")
	// ... then approves the rest: the other five are deactivated.
	submit("approve the roster", "approve", "approve-reason", "acme confirmed the leavers")
	if f := text("p.flash"); !strings.Contains(f, "published") {
		t.Fatalf("after approving the roster: %q", f)
	}
	waitFor(t, 60*time.Second, "7 hr accounts deactivated", func() (bool, string) {
		a, i := accounts("hr:")
		return a == 3 && i == 7, fmt.Sprintf("hr: %d active, %d inactive", a, i)
	})
	open(rosterPath)
	if d := text("#decided"); !strings.Contains(d, "approved by alice") {
		t.Fatalf("the roster hold's decision: %q", d)
	}
	shot("hold-approved")
	// ... and the offboarding's second approval, then the rest runs.
	open(offboardPath)
	submit("approve the offboarding (2 of 2)", "approve", "approve-reason", "confirmed with legal")
	if f := text("p.flash"); f != "Approved." {
		t.Fatalf("after the second approval: %q", f)
	}
	submit("run the rest", "run")
	waitFor(t, 60*time.Second, "every partner-acme account deleted", func() (bool, string) {
		a, i := accounts("partner-acme:")
		return a+i == 0, fmt.Sprintf("partner-acme: %d active, %d inactive", a, i)
	})

	// Someone renamed h00 in the LMS: the person's page shows the plan that puts
	// HR's name back, and "sync now" converges them there and then.
	h00 := findAccount(t, lms, "hr:h00")
	h00.Profile.FamilyName = "Renamed By Hand"
	if _, err := lms.sb.UpdateAccount(t.Context(), h00); err != nil {
		t.Fatal(err)
	}
	// The next scheduled reconciliation finds the drift: the webhook hears of
	// it, and the drift page shows it.
	deadline := time.After(60 * time.Second)
	for drift := false; !drift; {
		select {
		case m := <-hooked:
			counts, _ := m["counts"].(map[string]any)
			drift = m["event"] == "drift" && counts["profile_drift"] == float64(1)
		case <-deadline:
			t.Fatal("no drift webhook after an account was renamed in the LMS")
		}
	}
	open("/drift")
	if d := text("#drift"); !strings.Contains(d, "profile_drift") {
		t.Fatalf("the drift page: %q", d)
	}
	shot("drift")
	open("/person")
	do("choose the person", chromedp.SendKeys(chromedp.ID("person-worker"), "h00"))
	load("open the person", chromedp.Click(chromedp.ID("person-open")))
	if p := text("#plan"); !strings.Contains(p, "update") {
		t.Fatalf("the plan of a person renamed by hand: %q, want an update", p)
	}
	load("sync now", chromedp.Click(chromedp.ID("sync")))
	if st := text("#steps"); !strings.Contains(st, "update") || !strings.Contains(st, "ok") {
		t.Fatalf("the steps of sync now: %q, want an update that went ok", st)
	}
	if p := text("#plan"); p != "nothing to do" {
		t.Fatalf("the plan after sync now: %q", p)
	}
	if got := findAccount(t, lms, "hr:h00"); got.Profile.FamilyName != "Hr 00" {
		t.Fatalf("after sync now the LMS says %q", got.Profile.FamilyName)
	}
	shot("person")

	// The audit page says who approved.
	open("/audit")
	if a := text("#audit"); !strings.Contains(a, "approved by alice: acme confirmed the leavers") ||
		!strings.Contains(a, "in a sample batch of 2 of 7 people approved by alice: try two first") ||
		!strings.Contains(a, "approval 1 of 2 by pat") {
		t.Fatalf("the audit page: %q; want alice's sample batch and approval, and pat's approval", a)
	}
	shot("audit")
	// A message that cannot be decoded is dead-lettered; alice reads it decoded
	// and discards it with a reason.
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	bad := nats.NewMsg("hrsync.events.hr.hired")
	bad.Header.Set("ce-id", "bad-1")
	bad.Header.Set("ce-type", "hrsync.worker.hired.v1")
	bad.Header.Set("ce-source", "/feeds/hr")
	bad.Header.Set("ce-specversion", "1.0")
	bad.Data = []byte(`{"worker_id": ""}`)
	if err := nc.PublishMsg(bad); err != nil {
		t.Fatal(err)
	}
	var dead []connector.DeadLetter
	waitFor(t, 30*time.Second, "the bad message dead-lettered", func() (bool, string) {
		dead, err = db.ListDeadLetters(t.Context(), store.DeadLetterFilter{})
		return err == nil && len(dead) == 1, fmt.Sprintf("%d dead letters, %v", len(dead), err)
	})
	open("/dead/" + strconv.FormatInt(dead[0].ID, 10))
	if r := text("#reason"); r == "" {
		t.Fatal("the dead letter's page shows no reason")
	}
	shot("dead-letter")
	submit("discard the dead letter", "discard", "discard-reason", "HR sent it again, fixed")
	if d := text("#discarded"); !strings.Contains(d, "by alice") || !strings.Contains(d, "HR sent it again, fixed") {
		t.Fatalf("the discarded dead letter: %q", d)
	}
	// Two accounts with one email: a new hire with that email is a review item,
	// which alice resolves once she has merged them.
	for _, u := range []string{"dup-a", "dup-b"} {
		if _, err := lms.sb.CreateAccount(t.Context(), connector.Account{UserName: u, Active: true,
			Profile: connector.Profile{Email: "dup@hr.example", GivenName: "Dup", FamilyName: u}}); err != nil {
			t.Fatal(err)
		}
	}
	delta := filepath.Join(dir, "delta.csv")
	if err := os.WriteFile(delta, []byte("worker_id,email,given_name,family_name,action\nh10,dup@hr.example,Dup,Person,add\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, stderr, err := runCLI(t, nil, "roster", "upload", "--db", dbURL, "--config", cfg, "--nats-url", natsURL,
		"--feed", "hr", "--mode", "delta", "--by", "ursula", delta); err != nil {
		t.Fatalf("delta upload: %v\n%s%s", err, out, stderr)
	}
	var reviews []connector.Review
	waitFor(t, 30*time.Second, "a review item for the ambiguous hire", func() (bool, string) {
		reviews, err = db.ListReviews(t.Context(), store.ReviewFilter{Feed: "hr"})
		return err == nil && len(reviews) == 1, fmt.Sprintf("%d review items, %v", len(reviews), err)
	})
	rid := strconv.FormatInt(reviews[0].ID, 10)
	open("/reviews")
	shot("reviews")
	submit("resolve the review item", "resolve-"+rid, "resolve-reason-"+rid, "merged dup-b into dup-a")
	if f := text("p.flash"); !strings.Contains(f, "Resolved") {
		t.Fatalf("after resolving: %q", f)
	}
	if r, err := db.GetReview(t.Context(), reviews[0].ID); err != nil || r.ResolvedBy != "alice" || r.Resolution != "merged dup-b into dup-a" {
		t.Fatalf("the review item after resolving: %+v, %v", r, err)
	}

	open("/")
	if f := text("#feeds tbody"); !strings.Contains(f, "hr") || !strings.Contains(f, "partner-acme") {
		t.Fatalf("alice's overview: %q; want both feeds", f)
	}
	shot("overview")
	signOut()

	// Sign-in through the identity provider: olga is a console user by her
	// verified email, an admin.
	do("sign in through OIDC", chromedp.Click(chromedp.ID("oidc")), chromedp.WaitVisible(chromedp.CSS("#feeds")))
	if who := text("header .who"); !strings.Contains(who, "olga@example.com · admin") {
		t.Fatalf("signed in through OIDC as %q", who)
	}
	signOut()
	// gus is no console user, but the identity provider puts him in the group
	// console.oidc.roles makes hr's viewers.
	idp.SignInWith("gus@example.com", true, map[string]any{"groups": []any{"staff", "lms-viewers"}})
	do("sign in through OIDC by a group", chromedp.Click(chromedp.ID("oidc")), chromedp.WaitVisible(chromedp.CSS("#feeds")))
	if who := text("header .who"); !strings.Contains(who, "gus@example.com · viewer · hr") {
		t.Fatalf("signed in through OIDC by a group as %q", who)
	}
	signOut()
}

// lastStatus is the status of the last document loaded, 0 if none.
func lastStatus(ch chan int64) int64 {
	var s int64
	for {
		select {
		case s = <-ch:
		default:
			return s
		}
	}
}

// findAccount returns the sandbox account with externalId ext.
func findAccount(t *testing.T, lms *testLMS, ext string) connector.Account {
	t.Helper()
	for _, r := range lms.sb.Snapshot() {
		if r.Account.ExternalID == ext {
			return r.Account
		}
	}
	t.Fatalf("no account %s in the LMS", ext)
	return connector.Account{}
}
