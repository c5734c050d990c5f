package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/app"
	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/connector/lms/scim"
	"github.com/hrsync/hrsync/events"
	"github.com/hrsync/hrsync/store"
)

// TestEraseCommand erases a rehired person end to end (SQLite store, sandbox LMS over
// SCIM) and checks that none of their personal data is left in the store or on the
// LMS account, that the audit says it happened, that a later hire is refused with
// the reason, and that the daemon does not start without the key.
func TestEraseCommand(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	dbURL := "sqlite://" + filepath.Join(dir, "h.db")
	// refuseTraining makes the LMS answer a removal of the training extension
	// with 400 invalidPath, as a SCIM server without the extension does.
	var refuseTraining atomic.Bool
	lms := startLMS(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPatch && refuseTraining.Load() {
				body, _ := io.ReadAll(r.Body)
				if bytes.Contains(body, []byte(scim.SchemaTrainingUser)) {
					w.Header().Set("Content-Type", scim.MediaType)
					w.WriteHeader(http.StatusBadRequest)
					_ = json.NewEncoder(w).Encode(scim.NewError(http.StatusBadRequest, scim.ErrInvalidPath, "no such attribute"))
					return
				}
				r.Body = io.NopCloser(bytes.NewReader(body))
			}
			h.ServeHTTP(w, r)
		})
	})
	db := openStore(t, dbURL)

	pii := []string{"ines.marchetti@example.com", "Ines", "Marchetti", "EMP-55021", "im-100", "im-200", "Legal", "Paralegal", "it-IT"}
	old, cur := connector.WorkerKey{Feed: "hr", WorkerID: "im-100"}, connector.WorkerKey{Feed: "hr", WorkerID: "im-200"}
	t0 := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	prof := connector.Profile{Email: "ines.marchetti@example.com", GivenName: "Ines", FamilyName: "Marchetti", EmployeeNumber: "EMP-55021",
		OrgUnit: "Legal", JobTitle: "Paralegal", Locale: "it-IT"}
	facts := []connector.Fact{
		{Feed: "hr", WorkerID: old.WorkerID, Source: "/feeds/hr", ID: "h1", Kind: connector.KindHired, Effective: t0, Time: t0, Profile: prof},
		{Feed: "hr", WorkerID: old.WorkerID, Source: "/feeds/hr", ID: "h2", Kind: connector.KindLeft, Effective: t0.AddDate(0, 2, 0), Time: t0.AddDate(0, 2, 0)},
		{Feed: "hr", WorkerID: cur.WorkerID, Source: "/feeds/hr", ID: "h3", Kind: connector.KindRehired, Effective: t0.AddDate(0, 5, 0), Time: t0.AddDate(0, 5, 0),
			PreviousWorkerID: old.WorkerID, Profile: prof},
	}
	if _, err := db.RecordFacts(ctx, facts); err != nil {
		t.Fatal(err)
	}
	acct, err := lms.sb.CreateAccount(ctx, connector.Account{ExternalID: "hr:im-200", UserName: prof.Email, Active: true, Profile: prof})
	if err != nil {
		t.Fatal(err)
	}
	if err := lms.sb.CompleteCourse(acct.ID, "privacy-201", t0.AddDate(0, 1, 0)); err != nil {
		t.Fatal(err)
	}
	cs, err := db.ClaimDue(ctx, "test", time.Now().Add(time.Hour), time.Minute, 10)
	if err != nil || len(cs) != 1 || cs[0].Worker != cur {
		t.Fatalf("ClaimDue = %+v, %v; want %s", cs, err, cur)
	}
	if err := db.Complete(ctx, connector.Completion{Claim: cs[0], Owner: "test", AccountID: acct.ID, ReleasePredecessors: []string{old.WorkerID},
		Audit: []connector.AuditEntry{{At: t0, Feed: "hr", WorkerID: cur.WorkerID, AccountID: acct.ID, Action: connector.ActionReactivate,
			Outcome: connector.OutcomeOK, Detail: "reactivated ines.marchetti@example.com", FactIDs: []string{"/feeds/hr#h3"}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.DeadLetter(ctx, connector.DeadLetter{Feed: "hr", Subject: "hrsync.events.hr.updated",
		Data: []byte(`{"data":{"worker_id":"im-200","email":"ines.marchetti@example.com","locale":"xx"}}`), Reason: "data.locale: invalid"}); err != nil {
		t.Fatal(err)
	}

	args := []string{"erase", "--db", dbURL, "--lms-url", lms.url, "--lms-token", lms.token, "--worker", "hr:im-100",
		"--reason", "DSR-2026-0042", "--by", "dpo@corp", "--log-level", "warn"}
	const secret = "s3cret-erasure-key"
	keyEnv := map[string]string{erasureKeyEnv: secret}

	if _, _, err := runCLI(t, nil, args...); err == nil || !strings.Contains(err.Error(), erasureKeyEnv) {
		t.Fatalf("erase without a key: %v; want a refusal naming %s", err, erasureKeyEnv)
	}
	if _, _, err := runCLI(t, keyEnv, "erase", "--worker", "hr:im-100", "--by", "dpo"); err == nil || !strings.Contains(err.Error(), "--reason") {
		t.Fatalf("erase without a reason: %v", err)
	}
	out, stderr, err := runCLI(t, keyEnv, append(args, "--dry-run")...)
	if err != nil || !strings.Contains(out, "dry run") || !strings.Contains(out, "anonymise and deactivate LMS account "+acct.ID) {
		t.Fatalf("dry run: %v\n%s\n%s", err, out, stderr)
	}
	if got, _ := db.Facts(ctx, cur); len(got) != 1 {
		t.Fatalf("the dry run changed the store: facts of %s = %v", cur, got)
	}

	out, stderr, err = runCLI(t, keyEnv, args...)
	if err != nil {
		t.Fatalf("erase: %v\n%s\n%s", err, out, stderr)
	}
	hash := connector.ErasureHash([]byte(secret), old)
	for _, want := range []string{"LMS account " + acct.ID + ": anonymised and deactivated; learning records kept pseudonymised",
		"removed 3 facts of 2 workers, 1 links, 0 reviews, 1 dead letters", connector.ErasedID(hash),
		"verify: none of the person's identifiers is left in the store"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out+stderr, secret) {
		t.Error("the erasure key was printed")
	}

	// Nothing personal is left in the store...
	res, err := db.FindResidue(ctx, pii)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) > 0 {
		t.Errorf("personal data left in the store: %v", res)
	}
	// ... nor on the LMS account, which keeps its (pseudonymised) completion.
	for _, r := range lms.sb.Snapshot() {
		s := strings.ToLower(fmt.Sprintf("%+v", r))
		for _, p := range pii {
			if strings.Contains(s, strings.ToLower(p)) {
				t.Errorf("LMS account %s still carries %q: %+v", r.Account.ID, p, r)
			}
		}
		if r.Account.Active || len(r.Training.Completions) != 1 {
			t.Errorf("LMS account after erasure: %+v; want inactive with its completion", r)
		}
	}
	rows, err := db.ListAudit(ctx, store.AuditFilter{Feed: "hr", Action: connector.ActionAnonymise})
	if err != nil || len(rows) != 1 || rows[0].WorkerID != connector.ErasedID(hash) || rows[0].Outcome != connector.OutcomeOK ||
		!strings.Contains(rows[0].Detail, "DSR-2026-0042") || !strings.Contains(rows[0].Detail, "dpo@corp") {
		t.Fatalf("erase audit = %+v, %v", rows, err)
	}

	// The daemon does not start without the key (it could not refuse the person).
	if _, err := app.NewStack(ctx, testSettings(t, dbURL, nil), app.Options{}, app.StackConfig{}); err == nil || !strings.Contains(err.Error(), erasureKeyEnv) {
		t.Fatalf("OpenStack without the erasure key: %v; want a refusal", err)
	}
	// A later hire of the same worker id is refused with the reason.
	db2 := openStore(t, dbURL)
	if err := db2.UseErasureKey(ctx, []byte(secret)); err != nil {
		t.Fatal(err)
	}
	_, err = db2.RecordFacts(ctx, []connector.Fact{{Feed: "hr", WorkerID: "im-100", Source: "/feeds/hr", ID: "h9", Kind: connector.KindHired,
		Effective: t0.AddDate(1, 0, 0), Time: t0.AddDate(1, 0, 0), Profile: prof}})
	var ee *store.ErasedError
	if !errors.As(err, &ee) || !connector.IsPermanent(err) || !strings.Contains(err.Error(), "worker was erased on "+time.Now().UTC().Format(time.DateOnly)) {
		t.Fatalf("RecordFacts of a new hire for an erased worker = %v; want a permanent refusal with the date", err)
	}

	// Erasing again is harmless: it finds the anonymised account again. With a
	// retention policy that deletes learning records, an LMS that refuses to
	// remove the training extension (400 invalidPath, as a server without it
	// answers) is reported in the output and the audit; records are not touched.
	cfg := filepath.Join(dir, "hrsync.yaml")
	if err := os.WriteFile(cfg, []byte("feeds:\n  - name: hr\n    retention:\n      keep_learning_records: false\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	refuseTraining.Store(true)
	out, stderr, err = runCLI(t, keyEnv, append(args, "--config", cfg)...)
	if err != nil || !strings.Contains(out, "LMS account "+acct.ID+": anonymised") || !strings.Contains(out, "warning: the LMS cannot delete learning records") {
		t.Fatalf("second erase with keep_learning_records: false: %v\n%s\n%s", err, out, stderr)
	}
	if tr, err := lms.sb.Training(acct.ID); err != nil || len(tr.Completions) != 1 {
		t.Fatalf("training after a refused deletion = %+v, %v; want it untouched", tr, err)
	}
	rows, err = db.ListAudit(ctx, store.AuditFilter{Feed: "hr", Action: connector.ActionAnonymise})
	if err != nil || len(rows) != 2 || !strings.Contains(rows[0].Detail+rows[1].Detail, connector.TrainingUnsupported) {
		t.Fatalf("audit of the second erasure = %+v, %v; want it to say the records were not deleted", rows, err)
	}

	// Over SCIM to a server that removes the extension, the records are deleted
	// (PATCH remove of the training extension, read back) and the account is kept.
	refuseTraining.Store(false)
	out, stderr, err = runCLI(t, keyEnv, append(args, "--config", cfg)...)
	if err != nil || !strings.Contains(out, "LMS account "+acct.ID+": anonymised and deactivated; learning records "+connector.TrainingDeleted+"\n") ||
		strings.Contains(out, "warning: the LMS cannot delete") {
		t.Fatalf("third erase with keep_learning_records: false: %v\n%s\n%s", err, out, stderr)
	}
	snap := lms.sb.Snapshot()
	if len(snap) != 1 || snap[0].Account.ID != acct.ID || snap[0].Account.Active || snap[0].Training.HasActivity() ||
		snap[0].Account.ExternalID != connector.ErasedID(hash) {
		t.Fatalf("LMS after the deletion of learning records: %+v; want the anonymised, inactive account without records", snap)
	}
	rows, err = db.ListAudit(ctx, store.AuditFilter{Feed: "hr", Action: connector.ActionAnonymise})
	if err != nil || len(rows) != 3 || !strings.Contains(rows[0].Detail+rows[1].Detail+rows[2].Detail, "learning records: "+connector.TrainingDeleted+";") {
		t.Fatalf("audit of the third erasure = %+v, %v; want it to say the records were deleted", rows, err)
	}
}

// TestEraseThenHireIsDeadLettered: through the real consumer (embedded JetStream),
// a hire event for an erased worker is dead-lettered with the reason, and the other
// facts of the batch are recorded.
func TestEraseThenHireIsDeadLettered(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	dbURL := "sqlite://" + filepath.Join(dir, "h.db")
	key := []byte("k-e2e")
	db := openStore(t, dbURL)
	if err := db.UseErasureKey(ctx, key); err != nil {
		t.Fatal(err)
	}
	gone := connector.WorkerKey{Feed: "hr", WorkerID: "gone-7"}
	if _, err := db.Erase(ctx, store.Erasure{Worker: gone, Reason: "DSR-7", By: "dpo"}); err != nil {
		t.Fatal(err)
	}
	feeds, err := connector.NewFeeds(connector.DefaultFeed("hr", connector.FeedHR))
	if err != nil {
		t.Fatal(err)
	}
	// The stack's metrics take the other hooks; AfterCommit is chained.
	committed := make(chan []connector.Fact, 4)
	set := testSettings(t, dbURL, feeds)
	set.ErasureKey = key
	s, err := app.NewStack(ctx, set, app.Options{LMS: sandbox.New(), Log: slog.New(slog.DiscardHandler)}, app.StackConfig{
		EmbeddedNATS: true, EmbeddedDir: filepath.Join(dir, "nats"), ManageStream: true, Durable: "hrsync",
		Hooks:    events.Hooks{AfterCommit: func(fs []connector.Fact) { committed <- fs }},
		Consumer: events.ConsumerConfig{Batch: 16, MaxWait: 20 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cctx, stop := context.WithCancel(ctx)
	consumed := make(chan error, 1)
	go func() { consumed <- s.Consume(cctx) }()
	defer func() { stop(); <-consumed }()

	for i, w := range []string{"gone-7", "fresh-8"} {
		e := events.Event{Feed: "hr", Kind: connector.KindHired, ID: fmt.Sprintf("ev-%d", i), Source: "/feeds/hr", Time: time.Now().UTC(),
			Data: events.Data{WorkerID: w, Email: w + "@example.com", Effective: "2026-12-01"}}
		if _, err := events.Publish(ctx, s.JetStream(), e, events.Structured); err != nil {
			t.Fatal(err)
		}
	}
	// JetStream delivers in order, and the consumer handles a batch's messages in
	// order: once fresh-8 (published second) is committed, gone-7 was dead-lettered.
	timeout := time.After(30 * time.Second)
	for done := false; !done; {
		select {
		case fs := <-committed:
			for _, f := range fs {
				done = done || f.WorkerID == "fresh-8"
			}
		case <-timeout:
			t.Fatal("timed out waiting for fresh-8 to be recorded")
		}
	}
	dls, err := db.ListDeadLetters(ctx, store.DeadLetterFilter{})
	if err != nil || len(dls) != 1 {
		t.Fatalf("dead letters = %+v, %v; want the hire of the erased worker", dls, err)
	}
	reason := dls[0].Reason
	if !strings.Contains(reason, "worker was erased on "+time.Now().UTC().Format(time.DateOnly)) {
		t.Fatalf("dead letter reason = %q; want it to say the worker was erased", reason)
	}
	if got, _ := db.Facts(ctx, gone); len(got) != 0 {
		t.Fatalf("facts of the erased worker = %v; want none", got)
	}
	if got, _ := db.Facts(ctx, connector.WorkerKey{Feed: "hr", WorkerID: "fresh-8"}); len(got) != 1 {
		t.Fatalf("facts of fresh-8 = %v; want the hire", got)
	}
}
