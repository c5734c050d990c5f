package sandbox_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/lmstest"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	lmstest.Run(t, lmstest.Features{ETags: true, Train: train}, func(t *testing.T) connector.LMS { return sandbox.New() })
}

// train records a login of id in the sandbox lms, for lmstest.
func train(t *testing.T, lms connector.LMS, id string) {
	t.Helper()
	if err := lms.(*sandbox.LMS).RecordLogin(id, time.Time{}); err != nil {
		t.Fatalf("RecordLogin: %v", err)
	}
}

func TestConformanceShared(t *testing.T) {
	t.Parallel()
	// One LMS for every subtest, as a vendor sandbox would be.
	shared := sandbox.New()
	lmstest.Run(t, lmstest.Features{ETags: true, Train: train}, func(t *testing.T) connector.LMS { return shared })
}

func TestConcurrency(t *testing.T) {
	t.Parallel()
	lmstest.RunConcurrency(t, func(t *testing.T) connector.LMS { return sandbox.New() })
}

// fakeClock is a clock that tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

var day0 = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)

type testBundle struct {
	lms   *sandbox.LMS
	clock *fakeClock
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	clock := &fakeClock{now: day0}
	return &testBundle{lms: sandbox.New(sandbox.WithClock(clock.Now)), clock: clock}
}

func (b *testBundle) create(t *testing.T, userName, externalID string) connector.Account {
	t.Helper()
	a, err := b.lms.CreateAccount(t.Context(), connector.Account{
		UserName: userName, ExternalID: externalID, Active: true,
		Profile: connector.Profile{Email: userName, GivenName: "Ada"},
	})
	if err != nil {
		t.Fatalf("CreateAccount: %v", err)
	}
	return a
}

func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// must returns the value of a (value, error) pair, failing the test on error:
// Go cannot spread f() after t in must(t, f()), hence must(f())(t).
func must[T any](v T, err error) func(t *testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		noErr(t, err)
		return v
	}
}

func TestTrainingSurvivesLifecycle(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.create(t, "ada@example.com", "hr:1")
	enrolled, completed, login := day0.Add(time.Hour), day0.Add(48*time.Hour), day0.Add(72*time.Hour)
	noErr(t, b.lms.Enroll(a.ID, "safety-101", enrolled))
	noErr(t, b.lms.CompleteCourse(a.ID, "safety-101", completed))
	noErr(t, b.lms.RecordLogin(a.ID, login))
	noErr(t, b.lms.RecordLogin(a.ID, login.Add(-time.Hour))) // an older login does not win
	want := sandbox.Training{
		LastLogin:   &login,
		Enrollments: []sandbox.Enrollment{{Course: "safety-101", EnrolledAt: enrolled}},
		Completions: []sandbox.Completion{{Course: "safety-101", CompletedAt: completed}},
	}

	must(b.lms.SetActive(t.Context(), a.ID, false))(t)
	upd := must(b.lms.GetAccount(t.Context(), a.ID))(t)
	upd.Profile.JobTitle, upd.UserName, upd.ExternalID = "Engineer", "ada.l@example.com", "hr:2"
	must(b.lms.UpdateAccount(t.Context(), upd))(t)
	must(b.lms.SetActive(t.Context(), a.ID, true))(t)

	got := must(b.lms.Training(a.ID))(t)
	if !trainingEqual(got, want) {
		t.Errorf("Training = %+v, want %+v", got, want)
	}
	if !got.HasActivity() {
		t.Errorf("HasActivity = false")
	}
	snap := b.lms.Snapshot()
	if len(snap) != 1 || !trainingEqual(snap[0].Training, want) || snap[0].Account.Profile.JobTitle != "Engineer" {
		t.Errorf("Snapshot = %+v", snap)
	}
	// The copy handed out is not the stored record.
	got.Completions[0].Course = "changed"
	if again := must(b.lms.Training(a.ID))(t); again.Completions[0].Course != "safety-101" {
		t.Errorf("Training returned shared memory")
	}
}

func trainingEqual(a, b sandbox.Training) bool {
	if (a.LastLogin == nil) != (b.LastLogin == nil) || a.LastLogin != nil && !a.LastLogin.Equal(*b.LastLogin) {
		return false
	}
	return slices.Equal(a.Enrollments, b.Enrollments) && slices.Equal(a.Completions, b.Completions)
}

func TestTrainingErrors(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.create(t, "ada@example.com", "")
	for name, err := range map[string]error{
		"Enroll":         b.lms.Enroll("nope", "c", day0),
		"CompleteCourse": b.lms.CompleteCourse("nope", "c", day0),
		"RecordLogin":    b.lms.RecordLogin("nope", day0),
		"Training":       func() error { _, err := b.lms.Training("nope"); return err }(),
		"AddTraining":    func() error { _, err := b.lms.AddTraining("nope", sandbox.Training{}); return err }(),
	} {
		if !errors.Is(err, connector.ErrNotFound) {
			t.Errorf("%s of a missing account: %v, want ErrNotFound", name, err)
		}
	}
	if err := b.lms.Enroll(a.ID, "", day0); err == nil {
		t.Errorf("Enroll without a course: no error")
	}
	// AddTraining is all or nothing.
	_, err := b.lms.AddTraining(a.ID, sandbox.Training{
		Enrollments: []sandbox.Enrollment{{Course: "ok", EnrolledAt: day0}},
		Completions: []sandbox.Completion{{Course: "missing time"}},
	})
	var le *connector.LMSError
	if !errors.As(err, &le) || le.Kind != connector.KindInvalid {
		t.Errorf("AddTraining with a bad completion: %v, want KindInvalid", err)
	}
	if tr := must(b.lms.Training(a.ID))(t); tr.HasActivity() {
		t.Errorf("a failed AddTraining left %+v", tr)
	}
	// A zero time means now.
	noErr(t, b.lms.Enroll(a.ID, "c", time.Time{}))
	if tr := must(b.lms.Training(a.ID))(t); !tr.Enrollments[0].EnrolledAt.Equal(day0) {
		t.Errorf("EnrolledAt = %v, want the clock's %v", tr.Enrollments[0].EnrolledAt, day0)
	}
}

func TestOps(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	a := b.create(t, "ada@example.com", "hr:1")
	b.clock.Add(time.Minute)
	upd := a
	upd.Profile.JobTitle = "Engineer"
	must(b.lms.UpdateAccount(ctx, upd))(t)
	b.clock.Add(time.Minute)
	must(b.lms.SetActive(ctx, a.ID, false))(t)
	must(b.lms.SetActive(ctx, a.ID, true))(t)
	noErr(t, b.lms.Enroll(a.ID, "c", day0)) // training is not an op

	// Failed calls are not ops.
	if _, err := b.lms.UpdateAccount(ctx, upd); !errors.Is(err, connector.ErrPrecondition) {
		t.Errorf("stale update: %v, want ErrPrecondition", err)
	}
	if _, err := b.lms.CreateAccount(ctx, connector.Account{UserName: "ADA@example.com"}); !errors.Is(err, connector.ErrConflict) {
		t.Errorf("duplicate create: %v, want ErrConflict", err)
	}
	if _, err := b.lms.CreateAccount(ctx, connector.Account{}); err == nil {
		t.Errorf("create without userName: no error")
	}
	noErr(t, b.lms.DeleteAccount(ctx, a.ID))

	m1, m2 := day0.Add(time.Minute), day0.Add(2*time.Minute)
	want := []sandbox.Op{
		{Kind: sandbox.OpCreate, AccountID: a.ID, At: day0},
		{Kind: sandbox.OpUpdate, AccountID: a.ID, At: m1},
		{Kind: sandbox.OpDeactivate, AccountID: a.ID, At: m2},
		{Kind: sandbox.OpActivate, AccountID: a.ID, At: m2},
		{Kind: sandbox.OpDelete, AccountID: a.ID, At: m2},
	}
	if got := b.lms.Ops(); !slices.Equal(got, want) {
		t.Errorf("Ops =\n%+v\nwant\n%+v", got, want)
	}
	if b.lms.Count() != 0 {
		t.Errorf("Count = %d after delete", b.lms.Count())
	}
}

func TestVersionsAndCreated(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.create(t, "ada@example.com", "")
	if a.Version != `W/"1"` || !a.Created.Equal(day0) {
		t.Errorf("created account: Version %q, Created %v", a.Version, a.Created)
	}
	b.clock.Add(time.Hour)
	off := must(b.lms.SetActive(t.Context(), a.ID, false))(t)
	if off.Version != `W/"2"` || !off.Created.Equal(day0) {
		t.Errorf("after SetActive: Version %q, Created %v", off.Version, off.Created)
	}
	// A strong form of the same ETag matches too.
	upd := off
	upd.Version = `"2"`
	if _, err := b.lms.UpdateAccount(t.Context(), upd); err != nil {
		t.Errorf("UpdateAccount with the strong form of the ETag: %v", err)
	}
}

func TestListAccountsClamps(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, n := range []string{"a", "b", "c"} {
		b.create(t, n, "")
	}
	for _, tc := range []struct {
		start, count, want int
	}{{0, 10, 3}, {-5, 2, 2}, {3, 10, 1}, {4, 10, 0}, {1, 0, 0}, {1, -1, 0}} {
		page := must(b.lms.ListAccounts(t.Context(), tc.start, tc.count))(t)
		if len(page.Accounts) != tc.want || page.TotalResults != 3 {
			t.Errorf("ListAccounts(%d, %d): %d accounts of %d, want %d of 3", tc.start, tc.count, len(page.Accounts), page.TotalResults, tc.want)
		}
	}
}

func TestCancelledContext(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := b.lms.CreateAccount(ctx, connector.Account{UserName: "x"})
	if !errors.Is(err, context.Canceled) || !connector.IsTemporary(err) {
		t.Errorf("CreateAccount with a cancelled context: %v", err)
	}
	if b.lms.Count() != 0 {
		t.Errorf("the account was created anyway")
	}
}

func TestFindAccountsUnknownAttr(t *testing.T) {
	t.Parallel()
	_, err := sandbox.New().FindAccounts(t.Context(), connector.AccountFilter{Attr: "title", Value: "x"})
	var le *connector.LMSError
	if !errors.As(err, &le) || le.Kind != connector.KindInvalid {
		t.Errorf("FindAccounts(title): %v, want KindInvalid", err)
	}
}
