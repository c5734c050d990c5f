package connector

import (
	"fmt"
	"slices"
	"time"
)

// State is the account state a worker's facts imply.
type State string

// The states of an account.
const (
	StateAbsent     State = "absent"     // no account is wanted (never hired, or not yet due)
	StateActive     State = "active"     // employed now
	StateInactive   State = "inactive"   // was employed, is not now
	StateSuspended  State = "suspended"  // employed, on a leave of absence: inactive for now
	StateAnonymised State = "anonymised" // erased under GDPR
)

// LeaverAction is what happens to a leaver's account.
type LeaverAction string

// Leaver actions. Only deactivate exists so far: deleting an account loses learning
// history, certifications, uploaded content and rewards.
const (
	LeaverDeactivate LeaverAction = "deactivate"
	// LeaverDeleteIfNoActivity deactivates a leaver, and deletes the account after
	// the grace period Policy.DeleteAfter if it shows no activity at all.
	LeaverDeleteIfNoActivity LeaverAction = "delete-if-no-activity"
	// LeaverDeactivateThenDelete deactivates a leaver, and deletes the account once
	// it has been inactive for Policy.DeleteAfter, only if there is still no
	// activity.
	LeaverDeactivateThenDelete LeaverAction = "deactivate-then-delete-after"
)

// Policy holds the per-feed rules Want and Plan apply.
type Policy struct {
	Leaver LeaverAction
	// ReactivateManual lets hrsync reactivate an account that someone deactivated
	// outside hrsync (an admin, by hand) while HR still says the person works
	// there. Default false: such an account stays inactive and a review item says
	// why. A hire, rehire or resume recorded (by the store) after hrsync last set
	// the account's state always reactivates it (KeepsManualDeactivation).
	ReactivateManual bool
	// DeleteAfter is the grace period (delete-if-no-activity) or the time inactive
	// (deactivate-then-delete-after) after which a leaver's account without any
	// activity is deleted. Deletion always passes the safeguards and is audited.
	DeleteAfter time.Duration
	// PreHireLead creates a new hire's account this long before the start date
	// (the effective time of the hire or rehire), so that the person can be
	// enrolled before day one. Zero: the account appears on the start date.
	PreHireLead time.Duration
	// PreHireActive makes the account active during the lead time; by default it
	// is created inactive and activated on the start date.
	PreHireActive bool
	// CourseValidity is how long a completion of each course counts. When the
	// converger reactivates a rehire's account on an LMS that reports learning
	// records (TrainingReader), the audit row of the reactivation lists the
	// person's prior courses and the expired ones (see RehireTraining).
	CourseValidity map[string]time.Duration
	// Attributes says which profile fields the LMS keeps (and which are never
	// written); nil: every field is kept. Not a feed setting: the converger and
	// the reconciler set it from their config (ConvergerConfig.Attributes), so
	// that both leave the same fields out of drift and plans.
	Attributes AttributeKeeper
}

// Deletes reports whether the leaver action ever deletes an account.
func (l LeaverAction) Deletes() bool {
	return l == LeaverDeleteIfNoActivity || l == LeaverDeactivateThenDelete
}

// ParseLeaverAction reads a leaver policy name.
func ParseLeaverAction(s string) (LeaverAction, error) {
	switch l := LeaverAction(s); l {
	case LeaverDeactivate, LeaverDeleteIfNoActivity, LeaverDeactivateThenDelete:
		return l, nil
	case "":
		return LeaverDeactivate, nil
	}
	return "", fmt.Errorf("leaver policy %q: want deactivate, delete-if-no-activity or deactivate-then-delete-after", s)
}

// DefaultPolicy is the policy of a feed that configures none.
func DefaultPolicy() Policy { return Policy{Leaver: LeaverDeactivate} }

// Wanted is the account state a worker's facts imply at one instant.
type Wanted struct {
	// Worker is the worker that owns the account now: the last of a chain of
	// rehires under new worker ids.
	Worker WorkerKey
	State  State
	// Profile is the folded profile: every stated field, latest wins.
	Profile Profile
	// EverHired is true when a hire or rehire has taken effect. A leaver who was
	// never seen with an account still gets one (inactive), so that the LMS ends
	// the same whatever order the facts arrived in.
	EverHired bool
	// PreviousWorkerIDs are the earlier ids of this person (rehired.previous_worker_id).
	PreviousWorkerIDs []string
	// Emails and EmployeeNumbers are every value the facts ever stated, newest
	// first, for matching an account that has no link yet.
	Emails          []string
	EmployeeNumbers []string
	// LeftReason is the reason of the leave in force, if inactive.
	LeftReason string
	// Resumed is set when the last change of state was a return from a leave of
	// absence.
	Resumed bool
	// SuspendReason is the reason of the leave of absence in force, if suspended.
	SuspendReason string
	// PreHire is set while a hire or rehire is within the policy's PreHireLead of
	// its start date: State is then StateActive (PreHireActive) or the state
	// before the hire, and Plan creates the account ahead of time.
	PreHire bool
	// StartsAt is the start date of the pending hire, when PreHire is set.
	StartsAt time.Time
	// DeleteDue is set when the leaver policy wants the account deleted now (if it
	// shows no activity): the leave in force is older than Policy.DeleteAfter.
	DeleteDue bool
	// FactIDs are "source#id" of the facts in force, in fold order.
	FactIDs []string
	// Erasure is the first erasure request among the facts (KindErasureRequested),
	// if any; State is then StateAnonymised, and the converger erases the person
	// instead of planning (see ErasureRequest).
	Erasure *Fact
}

// Want folds facts (in any order, duplicates allowed) into the account state they
// imply at now. It performs no I/O. next is the earliest effective time after now
// at which the answer changes, or zero if no fact is pending.
//
// Facts are folded in CompareFacts order. A hire or rehire makes the account
// active, a leave makes it inactive, an update only changes the profile. One rule
// looks beyond order: a rehire sent after a leave (its event Time is strictly
// later) and effective no later than that leave withdraws it (docs/events.md,
// "How facts are ordered"). HR sends that when someone who gave notice stays on,
// and the person must never be deactivated in between. Fact.Recorded is never
// read: when hrsync recorded a fact does not change what the facts imply.
//
// A suspension (leave of absence) makes an active account StateSuspended; a
// resume or a rehire makes it active again, and a leave makes it inactive. A
// suspension of someone who is not active, and a resume of someone who is not
// suspended, change only the profile.
//
// With p.PreHireLead, a hire or rehire that is the next pending change of state
// takes partial effect PreHireLead before its start date (see Wanted.PreHire);
// next then wakes at both instants.
func Want(facts []Fact, now time.Time, p Policy) (w Wanted, next time.Time) {
	facts = SortFacts(facts)
	w.State = StateAbsent

	prev := map[string]bool{}
	for _, f := range facts {
		if f.PreviousWorkerID != "" && f.PreviousWorkerID != f.WorkerID {
			prev[f.PreviousWorkerID] = true
		}
	}
	for i := len(facts) - 1; i >= 0; i-- {
		if !prev[facts[i].WorkerID] {
			w.Worker = facts[i].Key()
			break
		}
	}
	for id := range prev {
		if id != w.Worker.WorkerID {
			w.PreviousWorkerIDs = append(w.PreviousWorkerIDs, id)
		}
	}
	slices.Sort(w.PreviousWorkerIDs)

	wake := func(t time.Time) {
		if t.After(now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	var pending []Fact // in fold order
	var leftAt time.Time
	for _, f := range facts {
		if f.Kind == KindErasureRequested {
			// In force once recorded, whatever its time: erasure is not dated.
			if w.Erasure == nil {
				e := f
				w.Erasure = &e
			}
			continue
		}
		if f.Effective.After(now) {
			wake(f.Effective)
			if (f.Kind == KindHired || f.Kind == KindRehired) && p.PreHireLead > 0 {
				wake(f.Effective.Add(-p.PreHireLead))
			}
			pending = append(pending, f)
			continue
		}
		if f.Kind == KindLeft && cancelled(f, facts) {
			continue
		}
		w.FactIDs = append(w.FactIDs, f.Source+"#"+f.ID)
		w.Profile = w.Profile.Merge(f.Profile)
		addFront(&w.Emails, f.Profile.Email)
		addFront(&w.EmployeeNumbers, f.Profile.EmployeeNumber)
		switch f.Kind {
		case KindHired, KindRehired:
			w.State = StateActive
			w.EverHired, w.Resumed = true, false
			w.LeftReason, w.SuspendReason = "", ""
		case KindLeft:
			w.State = StateInactive
			w.LeftReason, w.SuspendReason, w.Resumed = f.Reason, "", false
			leftAt = f.Effective
		case KindSuspended:
			if w.State == StateActive {
				w.State = StateSuspended
				w.SuspendReason, w.Resumed = f.Reason, false
			}
		case KindResumed:
			if w.State == StateSuspended {
				w.State = StateActive
				w.SuspendReason, w.Resumed = "", true
			}
		case KindUpdated:
		}
	}
	if p.PreHireLead > 0 && w.State != StateActive {
		preHire(&w, pending, facts, now, p)
	}
	if w.State == StateInactive && !w.PreHire && p.Leaver.Deletes() {
		deleteAt := leftAt.Add(p.DeleteAfter)
		w.DeleteDue = !deleteAt.After(now)
		wake(deleteAt)
	}
	if w.Erasure != nil {
		w.State, w.DeleteDue, w.PreHire = StateAnonymised, false, false
	}
	return w, next
}

// preHire applies the policy's lead time: when the next pending change of state
// (in fold order) is a hire or rehire whose lead time has begun, the account is
// wanted now, active or not as the policy says, with that fact's profile.
func preHire(w *Wanted, pending, facts []Fact, now time.Time, p Policy) {
	for _, f := range pending {
		switch f.Kind {
		case KindUpdated:
			continue
		case KindLeft:
			if cancelled(f, facts) {
				continue
			}
			return
		case KindHired, KindRehired:
		default:
			return
		}
		if f.Effective.Add(-p.PreHireLead).After(now) {
			return
		}
		w.PreHire, w.StartsAt = true, f.Effective
		w.FactIDs = append(w.FactIDs, f.Source+"#"+f.ID)
		w.Profile = w.Profile.Merge(f.Profile)
		addFront(&w.Emails, f.Profile.Email)
		addFront(&w.EmployeeNumbers, f.Profile.EmployeeNumber)
		switch {
		case p.PreHireActive:
			w.State = StateActive
		case w.State == StateAbsent:
			w.State = StateInactive
		}
		return
	}
}

// cancelled reports whether leave l is withdrawn by a rehire that was sent after
// it (event Time strictly later) and takes effect no later than it.
func cancelled(l Fact, facts []Fact) bool {
	for _, f := range facts {
		if f.Kind == KindRehired && f.Time.After(l.Time) && !f.Effective.After(l.Effective) {
			return true
		}
	}
	return false
}

// addFront puts v first in *list, moving it if it is already there.
func addFront(list *[]string, v string) {
	if v == "" {
		return
	}
	*list = slices.DeleteFunc(*list, func(s string) bool { return s == v })
	*list = slices.Insert(*list, 0, v)
}
