package connector_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
)

var erasePII = []string{"kim.vantongeren@example.com", "Kim", "Vantongeren", "EMP-4711", "hr:kv-31", "Finance", "Controller", "mgr-9", "nl-NL"}

func eraseFixture(t *testing.T, opts ...sandbox.Option) (*sandbox.LMS, connector.Account) {
	t.Helper()
	lms := sandbox.New(opts...)
	a, err := lms.CreateAccount(t.Context(), connector.Account{ExternalID: "hr:kv-31", UserName: "kim.vantongeren@example.com", Active: true,
		Profile: connector.Profile{Email: "kim.vantongeren@example.com", GivenName: "Kim", FamilyName: "Vantongeren", EmployeeNumber: "EMP-4711",
			OrgUnit: "Finance", JobTitle: "Controller", ManagerID: "mgr-9", Locale: "nl-NL"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := lms.CompleteCourse(a.ID, "aml-101", time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	if err := lms.RecordLogin(a.ID, time.Date(2026, 1, 4, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	return lms, a
}

// assertNoPII checks that no account of the sandbox carries any of the person's data.
func assertNoPII(t *testing.T, lms *sandbox.LMS) {
	t.Helper()
	for _, r := range lms.Snapshot() {
		s := strings.ToLower(fmt.Sprintf("%+v", r))
		for _, p := range erasePII {
			if strings.Contains(s, strings.ToLower(p)) {
				t.Errorf("account %s still carries %q: %+v", r.Account.ID, p, r)
			}
		}
	}
}

func TestEraseAccountKeepsRecordsPseudonymised(t *testing.T) {
	lms, a := eraseFixture(t)
	hash := connector.ErasureHash([]byte("k"), connector.WorkerKey{Feed: "hr", WorkerID: "kv-31"})
	res, err := connector.EraseAccount(t.Context(), lms, a, hash, true)
	if err != nil {
		t.Fatal(err)
	}
	if res.Training != connector.TrainingKept || res.Account.Active {
		t.Fatalf("EraseAccount = %+v; want kept records and an inactive account", res)
	}
	want := "erased-" + hash[:16] + "@erased.invalid"
	got, err := lms.GetAccount(t.Context(), a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.UserName != want || got.Profile.Email != want || got.ExternalID != "erased:"+hash[:16] ||
		got.Profile.GivenName != "Erased" || got.Profile.FamilyName != "Erased" || got.Active {
		t.Fatalf("account after erasure = %+v", got)
	}
	assertNoPII(t, lms)
	tr, err := lms.Training(a.ID)
	if err != nil || len(tr.Completions) != 1 || tr.Completions[0].Course != "aml-101" {
		t.Fatalf("training = %+v, %v; want the completion kept on the anonymised account", tr, err)
	}
	// Running it again changes nothing.
	ops := len(lms.Ops())
	if _, err := connector.EraseAccount(t.Context(), lms, got, hash, true); err != nil {
		t.Fatal(err)
	}
	if n := len(lms.Ops()); n != ops {
		t.Fatalf("second erasure made %d more LMS calls, want 0", n-ops)
	}
}

func TestEraseAccountDeletesRecords(t *testing.T) {
	lms, a := eraseFixture(t)
	res, err := connector.EraseAccount(t.Context(), lms, a, connector.ErasureHash([]byte("k"), connector.WorkerKey{Feed: "hr", WorkerID: "kv-31"}), false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Training != connector.TrainingDeleted {
		t.Fatalf("Training = %q, want %q", res.Training, connector.TrainingDeleted)
	}
	tr, err := lms.Training(a.ID)
	if err != nil || tr.HasActivity() {
		t.Fatalf("training = %+v, %v; want none", tr, err)
	}
	assertNoPII(t, lms)
}

// plainLMS hides the sandbox's DeleteTraining, as a plain SCIM LMS would.
type plainLMS struct{ connector.LMS }

func TestEraseAccountCannotDeleteRecords(t *testing.T) {
	lms, a := eraseFixture(t)
	res, err := connector.EraseAccount(t.Context(), plainLMS{lms}, a, connector.ErasureHash([]byte("k"), connector.WorkerKey{Feed: "hr", WorkerID: "kv-31"}), false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Training != connector.TrainingUnsupported {
		t.Fatalf("Training = %q, want %q", res.Training, connector.TrainingUnsupported)
	}
	assertNoPII(t, lms)
}

// refusingLMS is the sandbox whose DeleteTraining fails with err.
type refusingLMS struct {
	connector.LMS
	err error
}

func (r refusingLMS) DeleteTraining(context.Context, string) error { return r.err }

// TestEraseAccountLMSCannotDeleteRecords: an LMS that answers it cannot delete
// the records (ErrTrainingNotDeletable, ErrTrainingUnknown) is reported as such;
// any other failure fails the erasure, and neither claims the records deleted.
func TestEraseAccountLMSCannotDeleteRecords(t *testing.T) {
	hash := connector.ErasureHash([]byte("k"), connector.WorkerKey{Feed: "hr", WorkerID: "kv-31"})
	for _, cannot := range []error{
		connector.ErrTrainingNotDeletable,
		fmt.Errorf("no training extension: %w", connector.ErrTrainingUnknown),
		&connector.LMSError{Kind: connector.KindInvalid, Status: 400, Code: "invalidPath", Err: connector.ErrTrainingNotDeletable},
	} {
		lms, a := eraseFixture(t)
		res, err := connector.EraseAccount(t.Context(), refusingLMS{lms, cannot}, a, hash, false)
		if err != nil || res.Training != connector.TrainingUnsupported {
			t.Errorf("EraseAccount with DeleteTraining = %v: %+v, %v; want %q", cannot, res, err, connector.TrainingUnsupported)
		}
		assertNoPII(t, lms)
	}
	lms, a := eraseFixture(t)
	failed := &connector.LMSError{Kind: connector.KindUnavailable, Status: 503}
	res, err := connector.EraseAccount(t.Context(), refusingLMS{lms, failed}, a, hash, false)
	if !errors.Is(err, failed) || res.Training == connector.TrainingDeleted {
		t.Errorf("EraseAccount with a failing DeleteTraining = %+v, %v; want the error", res, err)
	}
}

func TestEraseFindAccount(t *testing.T) {
	w := connector.WorkerKey{Feed: "hr", WorkerID: "kv-31"}
	lms, a := eraseFixture(t)
	// A stale link falls through to the externalId.
	got, ok, err := connector.FindErasureAccount(t.Context(), lms, w, "h", []string{"gone"})
	if err != nil || !ok || got.ID != a.ID {
		t.Fatalf("FindErasureAccount = %+v, %v, %v; want %s", got, ok, err, a.ID)
	}
	if _, ok, err := connector.FindErasureAccount(t.Context(), lms, connector.WorkerKey{Feed: "hr", WorkerID: "nobody"}, "h", nil); ok || err != nil {
		t.Fatalf("FindErasureAccount(nobody) = %v, %v; want none", ok, err)
	}
	dup, _ := eraseFixture(t, sandbox.WithDuplicateExternalIDs())
	if _, err := dup.CreateAccount(t.Context(), connector.Account{ExternalID: "hr:kv-31", UserName: "other@example.com"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := connector.FindErasureAccount(t.Context(), dup, w, "h", nil); err == nil {
		t.Fatal("FindErasureAccount with two candidates did not refuse")
	}
	if _, err := lms.GetAccount(t.Context(), "gone"); !errors.Is(err, connector.ErrNotFound) {
		t.Fatalf("GetAccount(gone) = %v", err)
	}
}

func TestErasureHash(t *testing.T) {
	w := connector.WorkerKey{Feed: "hr", WorkerID: "kv-31"}
	h := connector.ErasureHash([]byte("k1"), w)
	if len(h) != 64 || h != connector.ErasureHash([]byte("k1"), w) {
		t.Fatalf("ErasureHash = %q; want 64 hex digits, stable", h)
	}
	if h == connector.ErasureHash([]byte("k2"), w) || h == connector.ErasureHash([]byte("k1"), connector.WorkerKey{Feed: "hr", WorkerID: "kv-32"}) {
		t.Fatal("ErasureHash does not depend on the key and the worker")
	}
	if id := connector.ErasedID(h); id != "erased:"+h[:16] || strings.Contains(id, "kv-31") {
		t.Fatalf("ErasedID = %q", id)
	}
}
