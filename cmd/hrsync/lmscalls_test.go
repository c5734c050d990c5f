package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/app"
	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
)

// callCounter is a counting proxy in front of the sandbox's SCIM server: it counts
// each request by method and kind of resource (requestKind), as an LMS's rate
// limit counts them.
type callCounter struct {
	*requestCounter
	// noSearch answers POST /Users/.search with 405, as a SCIM server without
	// it (RFC 7644 §3.4.3 is optional) does.
	noSearch bool
}

func (c *callCounter) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		kind := requestKind(r)
		c.add(kind)
		if c.noSearch && kind == "POST /Users/.search" {
			http.Error(w, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"405"}`, http.StatusMethodNotAllowed)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// callsApp is the daemon's path (the store, the converger, the guard and the
// SCIM client) to a sandbox over HTTP behind a counting proxy, with the
// safeguard judging each removal at once and holding none. batch is the
// converger's claim (0: its default, 64); noSearch hides the sandbox's POST
// /Users/.search.
func callsApp(t *testing.T, batch int, noSearch bool) (*callCounter, *testLMS, *app.App, *connector.Converger) {
	t.Helper()
	counter := &callCounter{requestCounter: newRequestCounter(), noSearch: noSearch}
	lms := startLMS(t, counter.wrap)
	feeds, err := connector.NewFeeds(connector.DefaultFeed("hr", connector.FeedHR))
	if err != nil {
		t.Fatal(err)
	}
	set := testSettings(t, "sqlite://"+filepath.Join(t.TempDir(), "calls.db"), feeds)
	set.LMS = app.LMSConfig{}.Over(app.LMSSettings{URL: lms.url, Token: lms.token}, nil)
	set.Safeguard.Settle = 0 // a single leave is judged at once
	never := connector.Thresholds{Percent: 100, Count: 1 << 30, MinRemovals: 1 << 30}
	set.Safeguard.Default, set.Safeguard.Overall = never, never // the counts, not the safeguard, are tested here
	a, err := app.Open(context.Background(), set, app.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	conv, err := a.Converger(connector.ConvergerConfig{Batch: batch})
	if err != nil {
		t.Fatal(err)
	}
	return counter, lms, a, conv
}

// TestLMSCallsPerChange runs each kind of change through the daemon's path (the
// store, the converger, the guard and the SCIM client, to the sandbox over HTTP)
// and counts the LMS calls each one takes, with a counting proxy. These are
// today's figures, before the batch-first path of issue 12: the test guards them
// against regressions, and the batch-first work lowers them (and this table).
func TestLMSCallsPerChange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	counter, lms, a, conv := callsApp(t, 0, false)
	t0 := time.Now().UTC().Add(-10 * 24 * time.Hour)
	seq := 0
	fact := func(k connector.Kind, worker string, day int, p connector.Profile) connector.Fact {
		seq++
		at := t0.Add(time.Duration(day) * 24 * time.Hour)
		return connector.Fact{Feed: "hr", WorkerID: worker, Source: "/feeds/hr", ID: fmt.Sprintf("f%03d", seq), Kind: k,
			Effective: at, Time: at, Profile: p}
	}
	person := func(w string) connector.Profile {
		return connector.Profile{Email: w + "@example.com", GivenName: "Given", FamilyName: "Family " + w,
			EmployeeNumber: "E-" + w, OrgUnit: "ops", JobTitle: "Associate"}
	}
	left := func(w string, day int) connector.Fact {
		f := fact(connector.KindLeft, w, day, connector.Profile{})
		f.Reason = "resigned"
		return f
	}
	rehiredAs := func(w, prev string, day int) connector.Fact {
		f := fact(connector.KindRehired, w, day, person(prev))
		f.PreviousWorkerID = prev
		return f
	}
	// The changes in order, each converged alone; want is today's count. A hire
	// looks its person up by externalId (one form), employee number and email (two
	// forms each on a fresh server: the client learns a server's form only from a
	// lookup that finds an account, and a new hire's find nothing), then creates
	// the account. Once an account exists, the client asks for its email and
	// employee number too (a probe), whose hit proves the form: w2's hire is 3
	// lookups, not 5. A
	// change of a linked account is one PATCH with no read before it: hrsync
	// knows the account from its create's answer (the account mirror,
	// connector/mirror.go; an update is conditional on the mirrored version, and
	// the SCIM client reads before a write only on a server without PATCH, for
	// its PUT). A rehire's reactivation is
	// followed by the rehire training report, which reads the batch's rehires in
	// one `id eq ...` query whose users carry the training extension. The batch
	// reads are POST /Users/.search (RFC 7644 §3.4.3), which the sandbox serves.
	const (
		hire   = "1 POST /Users + 5 POST /Users/.search"
		leave  = "1 PATCH /Users/{id}"
		rehire = "1 PATCH /Users/{id} + 1 POST /Users/.search"
	)
	steps := []struct {
		name string
		fact connector.Fact
		want int
		how  string
	}{
		{"hire (no account yet)", fact(connector.KindHired, "w1", 0, person("w1")), 6, hire},
		{"leave", left("w1", 1), 1, leave},
		{"rehire, same id", fact(connector.KindRehired, "w1", 2, person("w1")), 2, rehire},
		{"profile update", fact(connector.KindUpdated, "w1", 3, connector.Profile{FamilyName: "Renamed", JobTitle: "Lead"}), 1,
			"1 PATCH /Users/{id}"},
		{"hire of w2 (no account yet)", fact(connector.KindHired, "w2", 0, person("w2")), 4, "1 POST /Users + 3 POST /Users/.search"},
		{"leave of w2", left("w2", 1), 1, leave},
		{"rehire under a new id (w2 as w3)", rehiredAs("w3", "w2", 4), 2, "1 PATCH /Users/{id} + 1 POST /Users/.search"},
	}
	_, _ = counter.take() // nothing yet
	for _, st := range steps {
		if _, err := a.Store().RecordFacts(ctx, []connector.Fact{st.fact}); err != nil {
			t.Fatal(err)
		}
		if _, err := conv.Drain(ctx, 10); err != nil {
			t.Fatal(err)
		}
		n, how := counter.take()
		t.Logf("%-34s %d LMS calls: %s", st.name, n, how)
		if n != st.want || how != st.how {
			t.Errorf("%s: %d LMS calls (%s), want %d (%s)", st.name, n, how, st.want, st.how)
		}
	}
	// The changes were made, not just counted.
	for ext, family := range map[string]string{"hr:w1": "Renamed", "hr:w3": "Family w2"} {
		got, err := lms.sb.FindAccounts(ctx, connector.AccountFilter{Attr: connector.ByExternalID, Value: ext})
		if err != nil || len(got) != 1 || !got[0].Active || got[0].Profile.FamilyName != family {
			t.Errorf("%s in the LMS: %+v (%v), want one active account of %s", ext, got, err, family)
		}
	}
	if n := lms.sb.Count(); n != 2 {
		t.Errorf("the LMS holds %d accounts, want 2 (w1's, and w2's now w3's)", n)
	}
}

// TestLMSCallsPerChangeBulk counts the LMS calls of changes that come in one
// claimed batch, over SCIM Bulk (the sandbox's maxOperations is 1,000): 50 hires,
// then their 50 leaves, 50 rehires under the same ids, 50 profile updates, and
// 50 rehires under new ids. Each kind costs its batch's shared reads (one
// POST /Users/.search per rule and filter form, or per batch of linked
// accounts) and one POST /Bulk per round of writes, however many changes: the
// per-change figure falls with the batch's size (docs/lms-calls.md).
func TestLMSCallsPerChangeBulk(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	counter, lms, a, conv := callsApp(t, 0, false)
	const n = 50
	t0 := time.Now().UTC().Add(-10 * 24 * time.Hour)
	seq := 0
	batch := func(k connector.Kind, day int, worker func(i int) string, prev func(i int) string, p func(i int) connector.Profile) []connector.Fact {
		var out []connector.Fact
		at := t0.Add(time.Duration(day) * 24 * time.Hour)
		for i := range n {
			seq++
			f := connector.Fact{Feed: "hr", WorkerID: worker(i), Source: "/feeds/hr", ID: fmt.Sprintf("f%04d", seq), Kind: k,
				Effective: at, Time: at, Profile: p(i)}
			if prev != nil {
				f.PreviousWorkerID = prev(i)
			}
			if k == connector.KindLeft {
				f.Reason = "resigned"
			}
			out = append(out, f)
		}
		return out
	}
	w := func(i int) string { return fmt.Sprintf("w%02d", i) }
	nw := func(i int) string { return fmt.Sprintf("n%02d", i) }
	person := func(i int) connector.Profile {
		return connector.Profile{Email: w(i) + "@example.com", GivenName: "Given", FamilyName: "Family " + w(i),
			EmployeeNumber: "E-" + w(i), OrgUnit: "ops", JobTitle: "Associate"}
	}
	none := func(int) connector.Profile { return connector.Profile{} }
	renamed := func(int) connector.Profile { return connector.Profile{FamilyName: "Renamed", JobTitle: "Lead"} }
	// want is the exact count per kind. Hires: the batch's lookups, one POST
	// /Users/.search per rule and filter form (externalId; employee number and
	// email, each in two forms until a lookup finds an account), then one bulk
	// POST of the 50 creates. A change of accounts hrsync knows (the account
	// mirror): one bulk request per round of writes, no read (a rehire under a
	// new id re-keys and reactivates in one PATCH each: connector.ActiveUpdater).
	// The rehires' training reports (connector/training.go) read the batch's
	// accounts in one .search of their ids, whose users carry the training
	// extension.
	steps := []struct {
		name  string
		facts []connector.Fact
		want  string
	}{
		{"hires", batch(connector.KindHired, 0, w, nil, person), "1 POST /Bulk + 5 POST /Users/.search"},
		{"leaves", batch(connector.KindLeft, 1, w, nil, none), "1 POST /Bulk"},
		{"rehires, same id", batch(connector.KindRehired, 2, w, nil, person), "1 POST /Bulk + 1 POST /Users/.search"},
		{"profile updates", batch(connector.KindUpdated, 3, w, nil, renamed), "1 POST /Bulk"},
		{"leaves again", batch(connector.KindLeft, 4, w, nil, none), "1 POST /Bulk"},
		{"rehires under new ids", batch(connector.KindRehired, 5, nw, w, person), "1 POST /Bulk + 1 POST /Users/.search"},
	}
	_, _ = counter.take()
	for _, st := range steps {
		if st.name == "rehires, same id" {
			// w00 and w01 took a course before they left: their reports list it.
			for _, i := range []int{0, 1} {
				got, err := lms.sb.FindAccounts(ctx, connector.AccountFilter{Attr: connector.ByExternalID, Value: "hr:" + w(i)})
				if err != nil || len(got) != 1 {
					t.Fatalf("hr:%s in the LMS: %+v, %v", w(i), got, err)
				}
				if err := lms.sb.CompleteCourse(got[0].ID, "safety-101", t0); err != nil {
					t.Fatal(err)
				}
			}
		}
		if _, err := a.Store().RecordFacts(ctx, st.facts); err != nil {
			t.Fatal(err)
		}
		if _, err := conv.Drain(ctx, 10); err != nil {
			t.Fatal(err)
		}
		got, how := counter.take()
		t.Logf("%-24s %d changes, %d LMS calls (%.3f a change): %s", st.name, n, got, float64(got)/n, how)
		if how != st.want {
			t.Errorf("%s: %d LMS calls (%s), want %s", st.name, got, how, st.want)
		}
	}
	if c := lms.sb.Count(); c != n {
		t.Errorf("the LMS holds %d accounts, want %d", c, n)
	}
	for i := range n {
		got, err := lms.sb.FindAccounts(ctx, connector.AccountFilter{Attr: connector.ByExternalID, Value: "hr:" + nw(i)})
		if err != nil || len(got) != 1 || !got[0].Active || got[0].Profile.FamilyName != "Family "+w(i) {
			t.Fatalf("hr:%s in the LMS: %+v (%v), want one active account of %s", nw(i), got, err, w(i))
		}
	}
	// The rehire reports, read in one query a batch, are those a read of each
	// account would make.
	rows, err := a.Store().ListAudit(ctx, store.AuditFilter{Feed: "hr", Action: connector.ActionReactivate})
	if err != nil {
		t.Fatal(err)
	}
	reports := map[string]int{}
	for _, r := range rows {
		if r.WorkerID[0] != 'w' {
			continue // the rehires under new ids, reported the same way
		}
		_, note, _ := strings.Cut(r.Detail, "; ")
		reports[note]++
		if want := "rehire training: 0 courses, 0 expired"; r.WorkerID == w(0) || r.WorkerID == w(1) {
			want = "rehire training: 1 courses, 0 expired"
			if note != want {
				t.Errorf("%s's reactivation: %q, want the note %q", r.WorkerID, r.Detail, want)
			}
		} else if note != want {
			t.Errorf("%s's reactivation: %q, want the note %q", r.WorkerID, r.Detail, want)
		}
	}
	if len(rows) != 2*n || reports["rehire training: 1 courses, 0 expired"] != 2 {
		t.Errorf("%d reactivations (%v), want %d with two reporting one course", len(rows), reports, 2*n)
	}
}

// TestLMSCallsPerChangeSearch counts the lookups of one claimed batch of 256
// hires (the daemon's --converge-batch) with and without POST /Users/.search: a
// SCIM server that has it takes each rule and filter form in one request; one
// without it (405, asked once) takes GETs of at most 50 values, or fewer where
// the URL would grow too long (the employee number's URN form).
func TestLMSCallsPerChangeSearch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		noSearch bool
		want     string
	}{
		{"Search", false, "1 POST /Bulk + 5 POST /Users/.search"},
		// Once the client knows the server has no .search, a batch's reads
		// are cut in chunks of 50 (MaxReadBatch), each sent in GETs whose
		// filter fits a URL: 6 by externalId; 11 by employee number in each of
		// its two forms (the URN-qualified one fits 33 values); 6 by email in
		// each of its two forms.
		{"NoSearch", true, "40 GET /Users?filter + 1 POST /Bulk"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			counter, lms, a, conv := callsApp(t, 256, tc.noSearch)
			at := time.Now().UTC().Add(-24 * time.Hour)
			var facts []connector.Fact
			for i := range 256 {
				w := fmt.Sprintf("w%03d", i)
				facts = append(facts, connector.Fact{Feed: "hr", WorkerID: w, Source: "/feeds/hr", ID: "f" + w, Kind: connector.KindHired,
					Effective: at, Time: at, Profile: connector.Profile{Email: w + "@example.com", GivenName: "Given", FamilyName: "Family",
						EmployeeNumber: "E-" + w, OrgUnit: "ops", JobTitle: "Associate"}})
			}
			if tc.noSearch {
				// The client finds out once that the server has no .search, and
				// then reads in GET chunks of 50. Found out here, before the
				// count: whether the converger's batch asked before or after
				// that would otherwise decide how its reads are cut (a timing
				// the count must not depend on).
				l, err := a.LMS()
				if err != nil {
					t.Fatal(err)
				}
				if _, err := l.(connector.AccountBatchReader).FindAccountsIn(ctx, connector.ByExternalID, []string{"hr:nobody"}); err != nil {
					t.Fatal(err)
				}
			}
			_, _ = counter.take()
			if _, err := a.Store().RecordFacts(ctx, facts); err != nil {
				t.Fatal(err)
			}
			if _, err := conv.Drain(ctx, 10); err != nil {
				t.Fatal(err)
			}
			got, how := counter.take()
			t.Logf("256 hires in one batch: %d LMS calls (%.4f a change): %s", got, float64(got)/256, how)
			if how != tc.want {
				t.Errorf("%d LMS calls (%s), want %s", got, how, tc.want)
			}
			if c := lms.sb.Count(); c != 256 {
				t.Errorf("the LMS holds %d accounts, want 256", c)
			}
		})
	}
}

// TestSandboxLMSCountsRequests: "sandbox-lms --count-requests" prints, when it
// stops, the SCIM requests it served by kind, as docs/lms-calls.md measures the
// bench's requests over SCIM.
func TestSandboxLMSCountsRequests(t *testing.T) {
	t.Parallel()
	addr := freeLoopbackAddr(t)
	ctx, cancel := context.WithCancel(t.Context())
	var out, errOut bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"hrsync", "sandbox-lms", "--addr", addr, "--count-requests", "--log-level", "warn"},
			func(string) string { return "" }, &out, &errOut)
	}()
	base := "http://" + addr + "/scim/v2"
	waitFor(t, 10*time.Second, "the sandbox listening", func() (bool, string) {
		resp, err := http.Get(base + "/ServiceProviderConfig")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	for _, r := range []struct{ method, path, body string }{
		{"POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"ada","externalId":"hr:1"}`},
		{"POST", "/Users/.search", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],"filter":"externalId eq \"hr:1\""}`},
		{"POST", "/Users/.search", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]}`},
		{"GET", "/Users?filter=" + url.QueryEscape(`userName eq "ada"`), ""},
	} {
		req, _ := http.NewRequestWithContext(t.Context(), r.method, base+r.path, strings.NewReader(r.body))
		req.Header.Set("Content-Type", "application/scim+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("sandbox-lms: %v\n%s", err, errOut.String())
	}
	want := "sandbox LMS served 4 requests (discovery left out): 1 GET /Users?filter + 1 POST /Users + 2 POST /Users/.search"
	if !strings.Contains(out.String(), want) {
		t.Errorf("output:\n%s\nwant the line %q", out.String(), want)
	}
}
