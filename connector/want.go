package connector

import (
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
	StateAnonymised State = "anonymised" // erased under GDPR
)

// LeaverAction is what happens to a leaver's account.
type LeaverAction string

// Leaver actions. Only deactivate exists so far: deleting an account loses learning
// history, certifications, uploaded content and rewards.
const (
	LeaverDeactivate LeaverAction = "deactivate"
)

// Policy holds the per-feed rules Want and Plan apply.
type Policy struct {
	Leaver LeaverAction
	// ReactivateManual lets hrsync reactivate an account that someone deactivated
	// outside hrsync (an admin, by hand) while HR still says the person works
	// there. Default false: such an account stays inactive and a review item says
	// why. A hire or rehire recorded after hrsync last set the account's state
	// always reactivates it.
	ReactivateManual bool
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
	// FactIDs are "source#id" of the facts in force, in fold order.
	FactIDs []string
}

// Want folds facts (in any order, duplicates allowed) into the account state they
// imply at now. It performs no I/O. next is the earliest effective time after now
// at which the answer changes, or zero if no fact is pending.
//
// Facts are folded in CompareFacts order. A hire or rehire makes the account
// active, a leave makes it inactive, an update only changes the profile. One rule
// looks beyond order: a rehire recorded after a leave, and effective no later than
// that leave, cancels it. HR sends that when someone who gave notice stays on, and
// the person must never be deactivated in between.
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

	for _, f := range facts {
		if f.Effective.After(now) {
			if next.IsZero() || f.Effective.Before(next) {
				next = f.Effective
			}
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
			w.EverHired = true
			w.LeftReason = ""
		case KindLeft:
			w.State = StateInactive
			w.LeftReason = f.Reason
		case KindUpdated:
		}
	}
	return w, next
}

// cancelled reports whether leave l is cancelled by a rehire that was recorded
// after it and takes effect no later than it.
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
