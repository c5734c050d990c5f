package connector

import (
	"context"
	"time"
)

// The account mirror (docs/design.md, "The account mirror").
//
// hrsync keeps, in its store, the last it saw of every LMS account it has read or
// written: the account as the LMS answered (id, externalId, userName, email,
// employee number, active, version, organisation, profile) and when. It is
// refreshed by every read the converger makes, by every write's answer and by
// every reconciliation page, and forgotten when the LMS says the account is
// gone or changed under a condition (404, 412).
//
// It saves reads, never changes an outcome. The converger may plan a linked
// worker's first converge from its mirrored account, and carry that plan out
// without reading the account first, only when the plan is one that a stale copy
// cannot make wrong (mirrorServes):
//
//   - it only sets the account active or inactive: a state change is the same
//     write whatever else the account holds, and one that finds the account
//     already in that state changes nothing. A mirrored copy whose state is
//     already what the facts want plans nothing, and "nothing" is never taken
//     from the mirror: the account is read, since the copy may be stale;
//   - or it updates the profile conditionally: the update carries the mirrored
//     version (If-Match), and an account changed since answers 412, after which
//     the copy is forgotten and the worker reads and plans again. Where the LMS has
//     no versions, an update is never planned from the mirror;
//   - and the rules on changes made by hand leave it as it is (a reactivation
//     that the "deactivated by hand" rule would drop makes the worker read);
//   - deletions, creates and erasures are never planned from it: a deletion
//     reads the account and its activity; a create is always preceded by the
//     batch's lookups, so an account made by hand is found, not duplicated.
//
// A state change from the mirror cannot see a profile changed by hand since the
// copy was taken (an email an admin changed), which a read would have put right
// in the same converge. Where the LMS answers the write with the whole account
// (a SCIM PATCH, the sandbox), converge compares that answer with what the facts
// want and converges the worker again at once when they differ, so the outcome
// is the one a read would have given, one converge later. Where the answer is
// only an id and a version (SCIM Bulk, Docebo's change_status, Moodle), such a
// change made by hand stays until the worker's next update or the next
// reconciliation, as one made just after a read would.
//
// An account deleted by hand answers the write with 404: the link is dropped,
// the copy forgotten, and the next converge matches and plans again, exactly as
// when the account vanishes between a read and a write.

// AccountMirror is the store's record of the LMS accounts hrsync has seen.
type AccountMirror interface {
	// MirroredAccounts returns the mirrored copy of each of ids that the mirror
	// holds; an id missing from the map is one it does not know.
	MirroredAccounts(ctx context.Context, ids []string) (map[string]Account, error)
	// RememberAccounts records accs as seen at seen. A copy seen earlier than
	// the one already held does not replace it.
	RememberAccounts(ctx context.Context, seen time.Time, accs []Account) error
	// ForgetAccounts drops the copies of ids.
	ForgetAccounts(ctx context.Context, ids []string) error
	// ForgetAccountsSeenBefore drops the copies last seen before t, and says
	// how many: after a reconciliation pass that listed every account from t
	// on, those are accounts the LMS no longer has.
	ForgetAccountsSeenBefore(ctx context.Context, t time.Time) (int64, error)
}

// MirrorUpdate is one change to the account mirror that a converge commits with
// its outcome: the account as seen at At, or (Gone) forget it.
type MirrorUpdate struct {
	Account Account
	Gone    bool
	At      time.Time
}

// mirrorServes returns the plan for a's mirrored copy when it may be carried
// out without reading the account first (see above), judged by the rules on
// changes made by hand as converge would judge it; nil when the account must be
// read.
func (c *Converger) mirrorServes(ctx context.Context, cl Claim, want Wanted, hist History, a *Account, pol Policy) []Action {
	plan := Plan(want, a, pol)
	if len(plan) == 0 {
		return nil
	}
	for _, act := range plan {
		switch act.Kind {
		case ActionDeactivate, ActionReactivate:
		case ActionUpdate:
			if act.Account.Version == "" {
				return nil // not conditional: only a read makes it safe
			}
		default:
			return nil
		}
	}
	kept, review, err := c.respectManualDeactivation(ctx, cl, want, hist, a, plan, pol)
	if err != nil || review != nil || len(kept) != len(plan) {
		return nil
	}
	return kept
}

// remember adds u to comp's mirror updates, where the converger keeps a mirror.
func (c *Converger) remember(comp *Completion, u MirrorUpdate) {
	if c.cfg.Mirror != nil {
		comp.Mirror = append(comp.Mirror, u)
	}
}

// seen is the mirror update for an account read or written now.
func (c *Converger) seen(a Account) MirrorUpdate {
	return MirrorUpdate{Account: a, At: c.cfg.Now()}
}

// gone is the mirror update that forgets account id.
func (c *Converger) gone(id string) MirrorUpdate {
	return MirrorUpdate{Account: Account{ID: id}, Gone: true, At: c.cfg.Now()}
}

// afterWrite is what the mirror learns from a successful write of a, planned
// against have (nil for a create), that the LMS answered with got; whole says
// the answer was the whole account as it is now (not only its id and version).
func afterWrite(a Action, have *Account, got Account) (acc Account, ok, whole bool) {
	whole = got.ID != "" && (got.UserName != "" || got.ExternalID != "")
	switch a.Kind {
	case ActionCreate, ActionUpdate:
		if got.ID == "" {
			return Account{}, false, false
		}
		if !whole {
			// A partial answer (an id and a version): what was sent, as the LMS
			// took it.
			acc = a.Account
			acc.ID, acc.Version = got.ID, got.Version
			return acc, true, false
		}
		return got, true, true
	case ActionDeactivate, ActionReactivate:
		if have == nil {
			return Account{}, false, false
		}
		acc = *have
		if whole {
			acc = got
		} else {
			// A version the answer does not carry is not known: left empty, so
			// that no update is planned from this copy without a read.
			acc.Version = got.Version
		}
		acc.Active = a.Kind == ActionReactivate
		return acc, true, whole
	}
	return Account{}, false, false
}
