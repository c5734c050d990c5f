package moodle_test

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/moodle"
	"github.com/hrsync/hrsync/connector/lms/moodle/moodlesim"
)

// TestActivityAndCompletions reads lastaccess, enrolled courses and course
// completions through the web services, and checks that suspension keeps them
// and deletion destroys them.
func TestActivityAndCompletions(t *testing.T) {
	t.Parallel()
	b := setup(t, moodlesim.Config{Token: testToken})
	ctx := t.Context()
	used, err := b.client.CreateAccount(ctx, hire(1))
	if err != nil {
		t.Fatal(err)
	}
	unused, err := b.client.CreateAccount(ctx, hire(2))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.ParseInt(used.ID, 10, 64)
	sbID := b.sim.SandboxID(n)
	login := time.Date(2026, 5, 3, 8, 0, 0, 0, time.UTC)
	done := time.Date(2026, 5, 2, 16, 0, 0, 0, time.UTC)
	for _, err := range []error{
		b.sb.Enroll(sbID, "safety-101", time.Date(2026, 4, 10, 9, 0, 0, 0, time.UTC)),
		b.sb.Enroll(sbID, "guest-service-201", time.Date(2026, 4, 10, 9, 0, 0, 0, time.UTC)),
		b.sb.CompleteCourse(sbID, "safety-101", done),
		b.sb.RecordLogin(sbID, login),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	before := b.sim.Calls("")
	act, err := b.client.Activity(ctx, used.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !act.Known || act.LastLogin == nil || !act.LastLogin.Equal(login) || act.Enrollments != 2 || act.Completions != 1 {
		t.Errorf("Activity = %+v", act)
	}
	if calls := b.sim.Calls("") - before; calls != 2 {
		t.Errorf("Activity: %d calls, want 2", calls)
	}
	if act, err := b.client.Activity(ctx, unused.ID); err != nil || !act.Known || act.Any() {
		t.Errorf("Activity of an unused account = %+v, %v; want known and none", act, err)
	}
	check := func(when string) {
		t.Helper()
		comps, err := b.client.Completions(ctx, used.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(comps) != 1 || comps[0].Course != "safety-101" || !comps[0].CompletedAt.Equal(done) {
			t.Errorf("Completions %s = %+v", when, comps)
		}
	}
	check("while active")
	if _, err := b.client.SetActive(ctx, used.ID, false); err != nil {
		t.Fatal(err)
	}
	check("while suspended")
	if b.sim.Calls(moodle.FnCourseCompletion) != 2 {
		t.Errorf("%d completion status calls, want one per completed course and read", b.sim.Calls(moodle.FnCourseCompletion))
	}
	if err := b.client.DeleteAccount(ctx, used.ID); err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{
		func() error { _, err := b.client.Activity(ctx, used.ID); return err }(),
		func() error { _, err := b.client.Completions(ctx, used.ID); return err }(),
		func() error { _, err := b.client.Activity(ctx, "not-an-id"); return err }(),
	} {
		if !errors.Is(err, connector.ErrNotFound) {
			t.Errorf("after deletion: %v, want not found", err)
		}
	}
	if _, err := b.sb.Training(sbID); !errors.Is(err, connector.ErrNotFound) {
		t.Errorf("the deleted user's training survived: %v", err)
	}
}
