package guard_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/guard"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
)

// flakyTraining is the sandbox whose DeleteTraining first fails as script says.
type flakyTraining struct {
	*sandbox.LMS
	mu     sync.Mutex
	script []error
	calls  int
}

func (f *flakyTraining) DeleteTraining(ctx context.Context, id string) error {
	f.mu.Lock()
	f.calls++
	var err error
	if len(f.script) > 0 {
		err, f.script = f.script[0], f.script[1:]
	}
	f.mu.Unlock()
	if err != nil {
		return err
	}
	return f.LMS.DeleteTraining(ctx, id)
}

// plainLMS hides every optional capability of the LMS it wraps.
type plainLMS struct{ connector.LMS }

// TestDeleteTrainingPassThrough: the guard passes connector.TrainingDeleter
// through under its retries and quarantine, and says "cannot" for an LMS
// without it.
func TestDeleteTrainingPassThrough(t *testing.T) {
	t.Parallel()
	newTrained := func(t *testing.T) (*sandbox.LMS, connector.Account) {
		sb := sandbox.New()
		a, err := sb.CreateAccount(t.Context(), connector.Account{UserName: "d@example.com", Active: true, Profile: connector.Profile{Email: "d@example.com"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := sb.CompleteCourse(a.ID, "safety-101", time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)); err != nil {
			t.Fatal(err)
		}
		return sb, a
	}
	left := func(t *testing.T, sb *sandbox.LMS, id string) int {
		tr, err := sb.Training(id)
		if err != nil {
			t.Fatal(err)
		}
		return len(tr.Completions)
	}

	t.Run("Retried", func(t *testing.T) {
		t.Parallel()
		sb, a := newTrained(t)
		f := &flakyTraining{LMS: sb, script: []error{unavailable(503), unavailable(0)}}
		var mu sync.Mutex
		var outcomes []string
		cfg := fastRetries()
		cfg.Hooks.Call = func(op, outcome string) {
			mu.Lock()
			defer mu.Unlock()
			outcomes = append(outcomes, op+":"+outcome)
		}
		if err := guard.New(f, cfg).DeleteTraining(t.Context(), a.ID); err != nil {
			t.Fatalf("DeleteTraining through the guard: %v", err)
		}
		if n := left(t, sb, a.ID); n != 0 || f.calls != 3 {
			t.Errorf("%d completions left after %d calls; want 0 after 3", n, f.calls)
		}
		mu.Lock()
		defer mu.Unlock()
		if got := strings.Join(outcomes, " "); got != "DeleteTraining:unavailable DeleteTraining:unavailable DeleteTraining:ok" {
			t.Errorf("outcomes %q", got)
		}
	})

	t.Run("CannotIsNotRetried", func(t *testing.T) {
		t.Parallel()
		sb, a := newTrained(t)
		cannot := &connector.LMSError{Kind: connector.KindInvalid, Op: "PATCH /Users/x", Status: 400, Code: "mutability", Err: connector.ErrTrainingNotDeletable}
		f := &flakyTraining{LMS: sb, script: []error{cannot}}
		g := guard.New(f, fastRetries())
		if err := g.DeleteTraining(t.Context(), a.ID); !errors.Is(err, connector.ErrTrainingNotDeletable) || f.calls != 1 {
			t.Fatalf("DeleteTraining = %v after %d calls; want ErrTrainingNotDeletable after 1", err, f.calls)
		}
		res, err := connector.EraseAccount(t.Context(), g, a, strings.Repeat("ef", 32), false)
		if err != nil || res.Training != connector.TrainingDeleted || left(t, sb, a.ID) != 0 {
			t.Fatalf("EraseAccount after the script = %+v, %v", res, err)
		}
	})

	t.Run("NoCapability", func(t *testing.T) {
		t.Parallel()
		sb, a := newTrained(t)
		g := guard.New(plainLMS{sb}, guard.Config{})
		if err := g.DeleteTraining(t.Context(), a.ID); !errors.Is(err, connector.ErrTrainingNotDeletable) {
			t.Fatalf("DeleteTraining = %v, want ErrTrainingNotDeletable", err)
		}
		res, err := connector.EraseAccount(t.Context(), g, a, strings.Repeat("ef", 32), false)
		if err != nil || res.Training != connector.TrainingUnsupported || left(t, sb, a.ID) != 1 {
			t.Fatalf("EraseAccount = %+v, %v; want the records reported not deleted, and kept", res, err)
		}
	})

	t.Run("Quarantined", func(t *testing.T) {
		t.Parallel()
		sb, a := newTrained(t)
		f := &flakyTraining{LMS: sb, script: []error{unavailable(503)}}
		cfg := guard.Config{MaxAttempts: 1, Quarantine: guard.QuarantineConfig{Consecutive: 1, ProbeInterval: time.Hour}}
		g := guard.New(f, cfg)
		if err := g.DeleteTraining(t.Context(), a.ID); err == nil {
			t.Fatal("DeleteTraining succeeded through a failing LMS")
		}
		err := g.DeleteTraining(t.Context(), a.ID)
		if !errors.Is(err, guard.ErrQuarantined) || f.calls != 1 || left(t, sb, a.ID) != 1 {
			t.Fatalf("DeleteTraining while quarantined = %v after %d calls; want a fast failure", err, f.calls)
		}
	})
}
