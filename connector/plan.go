package connector

import (
	"fmt"
	"strings"
	"time"
)

// ActionKind is one kind of LMS change.
type ActionKind string

// The actions a plan can hold.
const (
	ActionCreate     ActionKind = "create"
	ActionUpdate     ActionKind = "update"
	ActionDeactivate ActionKind = "deactivate"
	ActionReactivate ActionKind = "reactivate"
	ActionDelete     ActionKind = "delete"
	ActionAnonymise  ActionKind = "anonymise"
	// ActionNone is used in the audit for decisions that changed nothing.
	ActionNone ActionKind = "none"
)

// ActionKinds lists the kinds that change the LMS.
var ActionKinds = []ActionKind{ActionCreate, ActionUpdate, ActionDeactivate, ActionReactivate, ActionDelete, ActionAnonymise}

// Action is one step of a plan.
type Action struct {
	Kind ActionKind
	// AccountID is the account acted on; empty for create.
	AccountID string
	// Account is the desired account, for create and update.
	Account Account
	// Reason says why, in words for the audit trail.
	Reason string
	// HoldID is the hold whose approval lets this removal run (set by the
	// safeguard); zero for none.
	HoldID int64

	// setsActive, on an update, makes the same call set the account's state
	// to Account.Active: the update and the plan's next action, a state
	// change, in one call (ActiveUpdater; converge fuses them).
	setsActive bool
}

func (a Action) String() string {
	if a.AccountID == "" {
		return string(a.Kind)
	}
	return string(a.Kind) + " " + a.AccountID
}

// Desired returns the account that w implies, for create and for comparing profiles.
// The userName is the email, the externalId "<feed>:<worker id>".
func Desired(w Wanted) Account {
	return Account{
		ExternalID: w.Worker.ExternalID(),
		UserName:   w.Profile.Email,
		Active:     w.State == StateActive,
		Profile:    w.Profile,
	}
}

// Plan returns the actions that turn have (nil: no account) into w. It performs no
// I/O. An absent want never touches an account: hrsync deletes only by policy, and
// an anonymised want (an erasure request) is no plan at all.
func Plan(w Wanted, have *Account, p Policy) []Action {
	if w.State == StateAnonymised {
		return nil // an erasure is not a plan: the converger runs it (ErasureRequest)
	}
	want := Desired(w)
	want.Profile = writable(want.Profile, p.Attributes) // ignored fields: neither sent nor compared
	if have == nil {
		switch {
		case w.DeleteDue:
			return nil // deleted (or never made) by the leaver policy: not brought back
		case w.PreHire && w.State == StateActive:
			return []Action{{Kind: ActionCreate, Account: want, Reason: "pre-hire: created active ahead of the start date " + startDate(w)}}
		case w.PreHire && !w.EverHired:
			return []Action{{Kind: ActionCreate, Account: want, Reason: "pre-hire: created inactive ahead of the start date " + startDate(w)}}
		case w.State == StateActive:
			return []Action{{Kind: ActionCreate, Account: want, Reason: "hired, no account"}}
		case w.State == StateInactive && w.EverHired:
			return []Action{{Kind: ActionCreate, Account: want, Reason: "left before an account existed; created inactive to keep the record"}}
		case w.State == StateSuspended && w.EverHired:
			return []Action{{Kind: ActionCreate, Account: want, Reason: suspendedReason(w) + " before an account existed; created inactive"}}
		}
		return nil
	}
	if w.State == StateAbsent {
		return nil
	}

	var plan []Action
	// A field the LMS does not keep is still sent with an update made for
	// another reason, but is no reason for one (docs/reconcile.md).
	if drift := ProfileDriftOf(want, *have, p.Attributes); len(drift) > 0 {
		upd := *have
		upd.ExternalID = want.ExternalID
		if want.UserName != "" {
			upd.UserName = want.UserName
		}
		upd.Profile = have.Profile.Merge(want.Profile)
		plan = append(plan, Action{Kind: ActionUpdate, AccountID: have.ID, Account: upd,
			Reason: "profile drift: " + strings.Join(drift, ", ")})
	}
	switch {
	case w.State == StateActive && !have.Active && w.PreHire:
		plan = append(plan, Action{Kind: ActionReactivate, AccountID: have.ID, Reason: "pre-hire: active ahead of the start date " + startDate(w)})
	case w.State == StateActive && !have.Active && w.Resumed:
		plan = append(plan, Action{Kind: ActionReactivate, AccountID: have.ID, Reason: "resumed after a leave of absence"})
	case w.State == StateActive && !have.Active:
		plan = append(plan, Action{Kind: ActionReactivate, AccountID: have.ID, Reason: ReasonEmployedAgain})
	case w.State == StateSuspended && have.Active:
		plan = append(plan, Action{Kind: ActionDeactivate, AccountID: have.ID, Reason: suspendedReason(w)})
	case w.State == StateInactive && have.Active && w.PreHire && !w.EverHired:
		// An account that is active before a first start date (adopted, or made by
		// hand) is left alone: pre-hire never deactivates.
	case w.State == StateInactive && have.Active:
		reason := "left"
		if w.LeftReason != "" {
			reason = fmt.Sprintf("left (%s)", w.LeftReason)
		}
		plan = append(plan, Action{Kind: ActionDeactivate, AccountID: have.ID, Reason: reason})
	}
	if w.State == StateInactive && w.DeleteDue {
		// The converger deletes only if the account shows no activity at all.
		plan = append(plan, Action{Kind: ActionDelete, AccountID: have.ID,
			Reason: fmt.Sprintf("leaver policy %s: inactive past %s and no activity", p.Leaver, p.DeleteAfter)})
	}
	return plan
}

// ReasonEmployedAgain is the reason of the reactivation of a rehire's account.
const ReasonEmployedAgain = "employed again"

// SuspendedReason is how the audit names a deactivation for a leave of absence, so
// that reports can tell it from a leave: it starts every such Action.Reason.
const SuspendedReason = "suspended (leave of absence)"

func suspendedReason(w Wanted) string {
	if w.SuspendReason != "" {
		return SuspendedReason + ": " + w.SuspendReason
	}
	return SuspendedReason
}

func startDate(w Wanted) string { return w.StartsAt.UTC().Format(time.RFC3339) }

// PlanString describes a plan in one line for the audit trail, e.g.
// "update u-1; reactivate u-1", or "none".
func PlanString(plan []Action) string {
	if len(plan) == 0 {
		return "none"
	}
	parts := make([]string, len(plan))
	for i, a := range plan {
		parts[i] = a.String()
	}
	return strings.Join(parts, "; ")
}

// ProfileDrift lists the managed fields in which have differs from want. Fields
// that want leaves empty are not managed and never count. Email and userName compare
// case-insensitively, as LMSs do.
func ProfileDrift(want, have Account) []string { return ProfileDriftOf(want, have, nil) }

// ProfileDriftOf is ProfileDrift leaving out the fields that k (nil: none) says
// the LMS does not keep: they would differ after every write.
func ProfileDriftOf(want, have Account, k AttributeKeeper) []string {
	var drift []string
	check := func(name, w, h string, fold bool) {
		if w == "" || !kept(k, name) {
			return
		}
		if (fold && !strings.EqualFold(w, h)) || (!fold && w != h) {
			drift = append(drift, name)
		}
	}
	check("externalId", want.ExternalID, have.ExternalID, false)
	check("userName", want.UserName, have.UserName, true)
	check("email", want.Profile.Email, have.Profile.Email, true)
	check("given_name", want.Profile.GivenName, have.Profile.GivenName, false)
	check("family_name", want.Profile.FamilyName, have.Profile.FamilyName, false)
	check("employee_number", want.Profile.EmployeeNumber, have.Profile.EmployeeNumber, false)
	check("org_unit", want.Profile.OrgUnit, have.Profile.OrgUnit, false)
	check("job_title", want.Profile.JobTitle, have.Profile.JobTitle, false)
	check("manager_id", want.Profile.ManagerID, have.Profile.ManagerID, false)
	check("locale", want.Profile.Locale, have.Profile.Locale, false)
	return drift
}
