package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/events"
	"github.com/hrsync/hrsync/store"
	"github.com/hrsync/hrsync/store/pgtest"
)

// runInProcess runs "hrsync run" in process with env as its whole environment,
// and returns the function that stops it and fails t unless it returned nil.
func runInProcess(t *testing.T, env map[string]string) (stop func(), stderr *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	stderr = &syncBuffer{}
	var stdout syncBuffer
	finished := make(chan error, 1)
	go func() {
		finished <- run(ctx, []string{"hrsync", "run", "--poll-interval", "100ms"}, func(k string) string { return env[k] }, &stdout, stderr)
	}()
	stopped := false
	stop = func() {
		t.Helper()
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-finished:
			if err != nil {
				t.Errorf("run returned %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("run did not return within 20s of the cancel")
		}
		if t.Failed() {
			t.Logf("daemon stderr:\n%s", lastLines(stderr.String(), 40))
		}
	}
	t.Cleanup(stop)
	return stop, stderr
}

// TestRunErasureRequested follows one person through the daemon (in process,
// PostgreSQL, embedded JetStream, the sandbox LMS over SCIM): hired, then an
// hrsync.worker.erasure_requested.v1 event. Without the erasure key the request is
// kept and shown as a review item; with the key (after a restart) the LMS account
// is anonymised with its completion kept, nothing personal is left in the store,
// the audit says it happened under the pseudonym, a repeated request is a no-op,
// a request for an unknown worker and a later hire of the erased worker are
// dead-lettered with their reasons.
func TestRunErasureRequested(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	natsURL := startNATS(t)
	dbURL := pgtest.URL(t)
	lms := startLMS(t, nil)
	js := connectJS(t, natsURL)
	db := openStore(t, dbURL)
	env := map[string]string{
		"DATABASE_URL": dbURL, "NATS_URL": natsURL, "LMS_URL": lms.url, "LMS_TOKEN": lms.token,
		"HRSYNC_ADMIN_ADDR": "127.0.0.1:0", "HRSYNC_LOG_FORMAT": "json", "HRSYNC_LOG_LEVEL": "info", "HRSYNC_CONFIG": settleAtOnceConfig(t),
	}
	const secret = "erasure-event-key"
	w := connector.WorkerKey{Feed: "hr", WorkerID: "gl-4711"}
	pii := []string{"greta.lindqvist@example.com", "Greta", "Lindqvist", "EMP-90417", "hr:gl-4711", `"gl-4711"`}
	seq := 0
	send := func(k connector.Kind, d events.Data) {
		t.Helper()
		seq++
		e := events.Event{Feed: "hr", Kind: k, ID: fmt.Sprintf("er-%d", seq), Source: "/feeds/hr", Time: time.Now().UTC(), Data: d}
		if _, err := events.Publish(ctx, js, e, events.Structured); err != nil {
			t.Fatal(err)
		}
	}
	hire := events.Data{WorkerID: w.WorkerID, Email: "greta.lindqvist@example.com", GivenName: "Greta", FamilyName: "Lindqvist",
		EmployeeNumber: "EMP-90417", Effective: "2026-01-05"}
	request := events.Data{WorkerID: w.WorkerID, Reason: "DSR-2026-0099", RequestedBy: "privacy-office"}
	account := func() (sandbox.AccountRecord, string) {
		recs := lms.sb.Snapshot()
		if len(recs) != 1 {
			return sandbox.AccountRecord{}, fmt.Sprintf("%d accounts, want 1", len(recs))
		}
		return recs[0], fmt.Sprintf("%+v", recs[0].Account)
	}

	// Without the key: hired, then the request is kept, pending, and says why.
	stop, _ := runInProcess(t, env)
	send(connector.KindHired, hire)
	var acctID string
	waitFor(t, 30*time.Second, "account created", func() (bool, string) {
		r, why := account()
		acctID = r.Account.ID
		return r.Account.Active, why
	})
	if err := lms.sb.CompleteCourse(acctID, "safety-101", time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	send(connector.KindErasureRequested, request)
	waitFor(t, 30*time.Second, "the pending erasure raised a review", func() (bool, string) {
		rs, err := db.ListReviews(ctx, store.ReviewFilter{Feed: "hr"})
		if err != nil || len(rs) == 0 {
			return false, fmt.Sprintf("reviews %v, %v", rs, err)
		}
		return strings.Contains(rs[0].Reason, "GDPR erasure requested by event /feeds/hr#er-2 is pending") &&
			strings.Contains(rs[0].Reason, erasureKeyEnv), rs[0].Reason
	})
	stop()
	if r, _ := account(); !r.Account.Active || r.Account.UserName != hire.Email {
		t.Fatalf("account changed without the erasure key: %+v", r.Account)
	}
	if facts, err := db.Facts(ctx, w); err != nil || len(facts) != 2 || facts[1].Kind != connector.KindErasureRequested {
		t.Fatalf("facts = %+v, %v; want the hire and the kept request", facts, err)
	}

	// With the key: the request is carried out.
	env[erasureKeyEnv] = secret
	runInProcess(t, env)
	hash := connector.ErasureHash([]byte(secret), w)
	waitFor(t, 60*time.Second, "account anonymised", func() (bool, string) {
		r, why := account()
		return r.Account.ExternalID == connector.ErasedID(hash) && !r.Account.Active, why
	})
	waitFor(t, 30*time.Second, "worker erased from the store", func() (bool, string) {
		facts, err := db.Facts(ctx, w)
		return err == nil && len(facts) == 0, fmt.Sprintf("facts %v, %v", facts, err)
	})
	r, _ := account()
	if r.Account.ID != acctID || len(r.Training.Completions) != 1 {
		t.Fatalf("account after the erasure: %+v; want the same account with its completion (kept, pseudonymised)", r)
	}
	s := strings.ToLower(fmt.Sprintf("%+v", r))
	for _, p := range pii {
		if strings.Contains(s, strings.ToLower(strings.Trim(p, `"`))) {
			t.Errorf("the LMS account still carries %q: %+v", p, r)
		}
	}
	// Nothing remains in the store: the same check as hrsync erase --verify.
	if res, err := db.FindResidue(ctx, pii); err != nil || len(res) > 0 {
		t.Fatalf("personal data left in the store: %v, %v", res, err)
	}
	audit := func() []connector.AuditEntry {
		rows, err := db.ListAudit(ctx, store.AuditFilter{Feed: "hr", Action: connector.ActionAnonymise})
		if err != nil {
			t.Fatal(err)
		}
		return rows
	}
	rows := audit()
	if len(rows) != 1 || rows[0].WorkerID != connector.ErasedID(hash) || rows[0].Outcome != connector.OutcomeOK || rows[0].AccountID != acctID ||
		!strings.Contains(rows[0].Detail, "DSR-2026-0099") || !strings.Contains(rows[0].Detail, "privacy-office (event /feeds/hr#er-2)") {
		t.Fatalf("erasure audit = %+v; want one row under the pseudonym with the reason and requester", rows)
	}
	if rs, _ := db.ListReviews(ctx, store.ReviewFilter{Feed: "hr"}); len(rs) != 0 {
		t.Fatalf("reviews after the erasure = %+v; want none", rs)
	}

	// The request again (HR sent it twice): nothing to do, audited, not dead-lettered.
	send(connector.KindErasureRequested, request)
	waitFor(t, 30*time.Second, "the repeated request audited", func() (bool, string) {
		rows := audit()
		return len(rows) == 2, fmt.Sprintf("%d anonymise audit rows", len(rows))
	})
	for _, r := range audit() {
		if r.WorkerID != connector.ErasedID(hash) || (r.Outcome != connector.OutcomeOK && r.Outcome != connector.OutcomeSkipped) {
			t.Fatalf("audit row %+v; want the erasure and the skipped repeat, both under the pseudonym", r)
		}
	}
	if res, err := db.FindResidue(ctx, pii); err != nil || len(res) > 0 {
		t.Fatalf("the repeated request left personal data: %v, %v", res, err)
	}

	// A request for a worker hrsync never saw, then a later hire of the erased
	// worker: both dead-lettered, each with its reason.
	send(connector.KindErasureRequested, events.Data{WorkerID: "nobody-1", Reason: "DSR-2026-0100"})
	hire.Effective = "2027-01-04"
	send(connector.KindHired, hire)
	var dls []connector.DeadLetter
	waitFor(t, 30*time.Second, "two dead letters", func() (bool, string) {
		var err error
		dls, err = db.ListDeadLetters(ctx, store.DeadLetterFilter{})
		return err == nil && len(dls) == 2, fmt.Sprintf("dead letters %d, %v", len(dls), err)
	})
	reasons := map[string]string{}
	for _, d := range dls {
		reasons[d.Subject] = d.Reason
	}
	if r := reasons["hrsync.events.hr.erasure_requested"]; !strings.Contains(r, "erasure requested for a worker hrsync has no record of") {
		t.Errorf("dead letter of the unknown worker's request: %q", r)
	}
	if r := reasons["hrsync.events.hr.hired"]; !strings.Contains(r, "worker was erased on "+time.Now().UTC().Format(time.DateOnly)) {
		t.Errorf("dead letter of the later hire: %q; want it refused as erased", r)
	}
	if n := len(lms.sb.Snapshot()); n != 1 {
		t.Fatalf("%d LMS accounts; the erased person must not come back", n)
	}
}

// TestPublishErasureRequested: hrsync publish speaks the new type, with no
// effective date, and refuses a request without a reason before sending.
func TestPublishErasureRequested(t *testing.T) {
	t.Parallel()
	out, stderr, err := runCLI(t, nil, "publish", "--type", "erasure_requested", "--worker", "w-1001", "--reason", "DSR-2026-0042",
		"--requested-by", "privacy-office", "--content-mode", "structured", "--dry-run")
	if err != nil || !strings.Contains(out, "would publish to hrsync.events.hr.erasure_requested") ||
		!strings.Contains(out, `"requested_by":"privacy-office"`) || strings.Contains(out, "effective") {
		t.Fatalf("publish --dry-run: %v\n%s\n%s", err, out, stderr)
	}
	_, _, err = runCLI(t, nil, "publish", "--type", "erasure_requested", "--worker", "w-1001", "--dry-run")
	if err == nil || !strings.Contains(err.Error(), "data.reason") {
		t.Fatalf("publish without a reason: %v; want a refusal naming data.reason", err)
	}
}
