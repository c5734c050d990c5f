package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
)

// TestConsoleRosterUpload: a partner's power user uploads a roster in the
// console. The dry run names who joins, who leaves, who changes and the row
// that is wrong (its line and column); confirmed, the good rows reach the LMS
// and the person whose row is wrong is kept. A second file would remove too
// many: it is held, waiting for the company's approval, caused by the power
// user. A forged upload to another feed, and one without the form's token,
// are refused with 403.
func TestConsoleRosterUpload(t *testing.T) {
	t.Parallel()
	chrome := chromiumPath(t)
	natsURL, dbURL, lms := startNATS(t), consoleDB(t), startLMS(t, nil)
	dir := t.TempDir()
	shots := dir
	if *updateScreenshots {
		shots = filepath.Join("..", "..", "docs", "console")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(consolePassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	consoleAddr := freeLoopbackAddr(t)
	cfg := filepath.Join(dir, "hrsync.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`feeds:
  - name: hr
    roster:
      mode: snapshot
  - name: partner-acme
    kind: partner
    roster:
      mode: snapshot
safeguard:
  percent: 40
  min_removals: 2
  settle: 0s
console:
  users:
    - {name: pat, role: approver, feeds: [partner-acme], password_hash: %[1]q}
`, hash)), 0o600); err != nil {
		t.Fatal(err)
	}
	runTestDaemon(t, "--config", cfg, "--lms-url", lms.url, "--lms-token", lms.token,
		"--nats-url", natsURL, "--db", dbURL, "--admin-addr", "", "--console-addr", consoleAddr, "--poll-interval", "50ms")
	base := "http://" + consoleAddr
	waitFor(t, 30*time.Second, "the console answers", func() (bool, string) {
		resp, err := http.Get(base + "/login")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	write := func(name, body string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Five people at acme, from the CLI.
	first := write("acme-5.csv", "worker_id,email,given_name,family_name\n"+
		"p00,p00@acme.example,Paula,Acme\np01,p01@acme.example,Piet,Acme\np02,p02@acme.example,Pia,Acme\n"+
		"p03,p03@acme.example,Paul,Acme\np04,p04@acme.example,Petra,Acme\n")
	if out, stderr, err := runCLI(t, nil, "roster", "upload", "--db", dbURL, "--config", cfg, "--nats-url", natsURL,
		"--feed", "partner-acme", "--by", "ursula", first); err != nil {
		t.Fatalf("roster upload: %v\n%s%s", err, out, stderr)
	}
	account := func(ext string) (connector.Account, bool) {
		for _, r := range lms.sb.Snapshot() {
			if r.Account.ExternalID == ext {
				return r.Account, true
			}
		}
		return connector.Account{}, false
	}
	waitFor(t, 60*time.Second, "5 accounts created", func() (bool, string) {
		n := 0
		for _, r := range lms.sb.Snapshot() {
			if strings.HasPrefix(r.Account.ExternalID, "partner-acme:") && r.Account.Active {
				n++
			}
		}
		return n == 5, fmt.Sprintf("%d active", n)
	})
	// The power user's file: Paula renamed, Pia gone, Quentin new, and Paul's
	// row (line 4) with an email that is no address: Paul is kept.
	second := write("acme-march.csv", "worker_id,email,given_name,family_name\n"+
		"p00,p00@acme.example,Paula,Acme-Schmidt\np01,p01@acme.example,Piet,Acme\n"+
		"p03,paul-at-acme,Paul,Acme\np04,p04@acme.example,Petra,Acme\np05,p05@acme.example,Quentin,Acme\n")

	br := startBrowser(t, chrome, base, shots)
	statuses := br.statuses
	do, load, text, has, shot, open := br.do, br.load, br.text, br.has, br.shot, br.open
	// forge submits a form made in the page (csrf: the page's token, or
	// another) and returns the status of what it loads.
	forge := func(what, csrf string, fields ...string) int64 {
		t.Helper()
		for len(statuses) > 0 {
			<-statuses
		}
		js := fmt.Sprintf(`(() => {
		const f = document.createElement('form'); f.method = 'post'; f.action = '/upload'; f.enctype = 'multipart/form-data';
		const tok = %q || document.querySelector('input[name=csrf]').value;
		const kv = [['csrf', tok]].concat(%s);
		for (const [k, v] of kv) { const i = document.createElement('input'); i.name = k; i.value = v; f.appendChild(i); }
		document.body.appendChild(f); f.submit(); return true; })()`, csrf, "["+strings.Join(fields, ",")+"]")
		load(what, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Evaluate[bool](js)(ctx, tg)
			return err
		}))
		return lastStatus(statuses)
	}
	uploadFile := func(file string) {
		t.Helper()
		open("/upload")
		do("choose "+file, chromedp.SetUploadFiles(chromedp.ID("upload-file"), []string{file}))
		load("dry run of "+file, chromedp.Click(chromedp.ID("dryrun")))
	}

	open("/login")
	do("sign in", chromedp.SendKeys(chromedp.ID("name"), "pat"), chromedp.SendKeys(chromedp.ID("password"), consolePassword))
	load("sign in", chromedp.Click(chromedp.ID("signin")))
	open("/upload")
	if f := text("#upload-feed"); f != "partner-acme" {
		t.Fatalf("the feeds pat may upload to: %q, want partner-acme only", f)
	}
	// A forged upload to another feed, with pat's own token, and one without
	// the form's token, are refused.
	if got := forge("forge an upload to hr", "", `['feed', 'hr']`, `['mode', 'snapshot']`); got != http.StatusForbidden {
		t.Fatalf("pat's upload to feed hr answered %d, want 403", got)
	}
	open("/upload")
	if got := forge("forge an upload without the token", "not-the-token", `['feed', 'partner-acme']`, `['mode', 'snapshot']`); got != http.StatusForbidden {
		t.Fatalf("an upload without the form's token answered %d, want 403", got)
	}

	uploadFile(second)
	if j := text("#joiners tbody"); !strings.Contains(j, "p05") || !strings.Contains(j, "Quentin Acme") {
		t.Fatalf("the dry run's joiners: %q, want Quentin (p05)", j)
	}
	if l := text("#leavers tbody"); !strings.Contains(l, "p02") || strings.Contains(l, "p03") {
		t.Fatalf("the dry run's leavers: %q, want Pia (p02) and not Paul, whose row is wrong", l)
	}
	if c := text("#changes tbody"); !strings.Contains(c, "Acme-Schmidt") {
		t.Fatalf("the dry run's changes: %q, want Paula's new name", c)
	}
	if p := text("#problems tbody"); !strings.Contains(p, "4\temail") || !strings.Contains(p, "p03") {
		t.Fatalf("the dry run's problems: %q, want line 4, column email, worker p03", p)
	}
	if s := text("#dry-sentence"); !strings.Contains(s, "4 of 5 rows") {
		t.Fatalf("the dry run's sentence: %q", s)
	}
	shot("upload-dry-run")
	if _, ok := account("partner-acme:p05"); ok {
		t.Fatal("the dry run created an account")
	}
	load("confirm", chromedp.Click(chromedp.ID("confirm")))
	if o := text("#outcome"); o != "published" {
		t.Fatalf("the confirmed upload's outcome: %q, want published", o)
	}
	waitFor(t, 60*time.Second, "the upload reached the LMS", func() (bool, string) {
		q, okQ := account("partner-acme:p05")
		pia, _ := account("partner-acme:p02")
		paul, _ := account("partner-acme:p03")
		paula, _ := account("partner-acme:p00")
		return okQ && q.Active && !pia.Active && paul.Active && paula.Profile.FamilyName == "Acme-Schmidt",
			fmt.Sprintf("Quentin %v %v, Pia active %v, Paul active %v, Paula %q", okQ, q.Active, pia.Active, paul.Active, paula.Profile.FamilyName)
	})
	db, err := store.Open(t.Context(), dbURL, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ups, err := db.ListUploads(t.Context(), store.UploadFilter{Feed: "partner-acme", Limit: 1})
	if err != nil || len(ups) != 1 || ups[0].By != "pat" || ups[0].Via != "console" || ups[0].Outcome != "published" ||
		ups[0].Invalid != 1 || ups[0].Kept != 1 {
		t.Fatalf("the recorded upload: %+v, %v; want pat's, via the console, published, 1 invalid row, 1 kept", ups, err)
	}

	// Only Paula left in the file: four leavers of five, held.
	third := write("acme-april.csv", "worker_id,email,given_name,family_name\np00,p00@acme.example,Paula,Acme-Schmidt\n")
	uploadFile(third)
	if l := text("#leavers tbody"); !strings.Contains(l, "p05") {
		t.Fatalf("the second dry run's leavers: %q", l)
	}
	load("confirm the second", chromedp.Click(chromedp.ID("confirm")))
	if !has("#held") || !strings.Contains(text("#held"), "waiting for the company's approval") {
		t.Fatal("a held upload: want the notice that it waits for the company's approval")
	}
	holds, err := db.ListHolds(t.Context(), store.HoldFilter{Feed: "partner-acme", Status: connector.HoldOpen})
	if err != nil || len(holds) != 1 || holds[0].CausedBy != "pat" || holds[0].Kind != connector.HoldUpload {
		t.Fatalf("open holds of partner-acme: %+v, %v; want pat's upload", holds, err)
	}
	shot("upload-held")
	if q, _ := account("partner-acme:p05"); !q.Active {
		t.Fatal("the held upload deactivated Quentin")
	}
}
