package connector

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Kind is what a fact says happened to a worker.
type Kind string

// The kinds of contract v1. Each maps to the CloudEvents type hrsync.worker.<kind>.v1.
const (
	KindHired   Kind = "hired"
	KindLeft    Kind = "left"
	KindRehired Kind = "rehired"
	KindUpdated Kind = "updated"
	// KindSuspended starts a leave of absence: the account is deactivated for a
	// while, and KindResumed (or a rehire) brings it back.
	KindSuspended Kind = "suspended"
	KindResumed   Kind = "resumed"
	// KindErasureRequested asks for the worker's GDPR erasure (docs/erasure.md). It
	// states no profile and takes effect when it is recorded: the converger erases
	// the person instead of converging the account.
	KindErasureRequested Kind = "erasure_requested"
)

// Kinds lists every known kind, in contract order.
var Kinds = []Kind{KindHired, KindLeft, KindRehired, KindUpdated, KindSuspended, KindResumed, KindErasureRequested}

// Valid reports whether k is a kind of the contract.
func (k Kind) Valid() bool { return slices.Contains(Kinds, k) }

// feedNameRE is the grammar of a feed name: it becomes a NATS subject token.
var feedNameRE = regexp.MustCompile(`^[a-z0-9-]+$`)

// ValidFeedName reports whether name may be used as a feed name.
func ValidFeedName(name string) bool { return len(name) <= 64 && feedNameRE.MatchString(name) }

// WorkerKey identifies a person as one feed knows them.
type WorkerKey struct {
	Feed     string `json:"feed"`
	WorkerID string `json:"worker_id"`
}

// String returns "feed:worker_id", which is also the externalId hrsync gives the account.
func (k WorkerKey) String() string { return k.Feed + ":" + k.WorkerID }

// ExternalID returns the externalId that an account managed for this worker carries.
func (k WorkerKey) ExternalID() string { return k.String() }

// Profile is the personal data hrsync manages on an account. An empty field in a fact
// means "not stated", never "clear it".
type Profile struct {
	Email          string `json:"email,omitempty"`
	GivenName      string `json:"given_name,omitempty"`
	FamilyName     string `json:"family_name,omitempty"`
	EmployeeNumber string `json:"employee_number,omitempty"`
	OrgUnit        string `json:"org_unit,omitempty"`
	JobTitle       string `json:"job_title,omitempty"`
	ManagerID      string `json:"manager_id,omitempty"`
	Locale         string `json:"locale,omitempty"`
}

// Merge returns p with every non-empty field of q laid over it.
func (p Profile) Merge(q Profile) Profile {
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&p.Email, q.Email)
	set(&p.GivenName, q.GivenName)
	set(&p.FamilyName, q.FamilyName)
	set(&p.EmployeeNumber, q.EmployeeNumber)
	set(&p.OrgUnit, q.OrgUnit)
	set(&p.JobTitle, q.JobTitle)
	set(&p.ManagerID, q.ManagerID)
	set(&p.Locale, q.Locale)
	return p
}

// Fact is one validated HR event, stored once per (Source, ID).
type Fact struct {
	Feed     string `json:"feed"`
	WorkerID string `json:"worker_id"`
	Source   string `json:"source"`
	ID       string `json:"id"`
	Kind     Kind   `json:"kind"`
	// Effective is the instant the fact takes effect, in UTC.
	Effective time.Time `json:"effective"`
	// Time is when the source says the event happened (the CloudEvents time attribute).
	Time    time.Time `json:"time"`
	Profile Profile   `json:"profile"`
	// Reason is why the worker left (left), is away (suspended), or is to be
	// erased (erasure_requested, required there).
	Reason string `json:"reason,omitempty"`
	// RequestedBy is who asked for an erasure (erasure_requested only, optional).
	RequestedBy string `json:"requested_by,omitempty"`
	// PreviousWorkerID is the id HR used for this person before (rehired only).
	PreviousWorkerID string `json:"previous_worker_id,omitempty"`
	// Recorded is when hrsync's store recorded the fact (its recorded_at, by the
	// store clock of the process that recorded it), in UTC. The store sets it and
	// returns it with the fact; a fact on its way in has none, and a value given
	// to RecordFacts is ignored. Want never reads it: arrival order must not
	// change what the facts imply. It only tells what HR said after hrsync last
	// set an account's state (see KeepsManualDeactivation).
	Recorded time.Time `json:"recorded,omitzero"`
}

// Key returns the worker the fact is about.
func (f Fact) Key() WorkerKey { return WorkerKey{Feed: f.Feed, WorkerID: f.WorkerID} }

// Validate checks the invariants a Fact must hold before it is recorded. The events
// package checks the wire contract; this is the last line before the store.
func (f Fact) Validate() error {
	switch {
	case !ValidFeedName(f.Feed):
		return fmt.Errorf("feed %q: must match [a-z0-9-]+", f.Feed)
	case f.WorkerID == "":
		return fmt.Errorf("worker_id: required")
	case f.Source == "":
		return fmt.Errorf("source: required")
	case f.ID == "":
		return fmt.Errorf("id: required")
	case !f.Kind.Valid():
		return fmt.Errorf("kind %q: unknown", f.Kind)
	case f.Effective.IsZero():
		return fmt.Errorf("effective: required")
	case f.Time.IsZero():
		return fmt.Errorf("time: required")
	case f.Kind == KindErasureRequested && strings.TrimSpace(f.Reason) == "":
		return fmt.Errorf("reason: required for an erasure request")
	}
	return nil
}

// CompareFacts orders facts the way Want folds them: effective time, then event time,
// then source and id. The order is total, so arrival order never matters.
func CompareFacts(a, b Fact) int {
	if c := a.Effective.Compare(b.Effective); c != 0 {
		return c
	}
	if c := a.Time.Compare(b.Time); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Source, b.Source); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

// SortFacts sorts facts in fold order and drops duplicates of (Source, ID).
func SortFacts(facts []Fact) []Fact {
	out := slices.Clone(facts)
	slices.SortFunc(out, CompareFacts)
	return slices.CompactFunc(out, func(a, b Fact) bool { return a.Source == b.Source && a.ID == b.ID })
}
