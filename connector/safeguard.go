package connector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Safeguards against a bad feed (DESIGN.md, "Safeguard"): when a burst of a feed's
// removals (deactivations and deletions) would, with the removals that already ran
// within the window, cross its thresholds, the whole burst is held for a person to
// approve or reject, and none of it runs meanwhile.
//
// For live events the window is sliding (default one hour). The converger asks the
// Safeguard before it runs a plan that removes an account; the store decides in one
// transaction, serialised with every other removal decision, so replicas and the
// concurrent workers of one batch never race past a threshold:
//
//   - a removal already decided for the same worker at the same fact version (a
//     retry after a failed LMS call, a crash) gets the same answer, and counts once;
//   - a worker in an approved hold may go (its removal does not count against the
//     window: a person has looked at it); a worker in a rejected hold is kept as is
//     until a new fact arrives for it; a worker in a burst that passed may go;
//   - otherwise the removal joins the feed's settling burst, or starts one, and
//     waits (RemovalVerdict.Wait) until the burst's settle period is over. Then the
//     burst is judged whole, once: its removals plus those that ran in the window
//     (each person once, however often they came and went), against the feed's
//     thresholds and all feeds' together. Under them the burst passes and every
//     removal in it runs; over them it is held whole, in the feed's open hold if
//     it has one. The safeguard never splits a burst: 10 leavers sent together
//     all run, or all wait. Only a person splits a held one, explicitly: a
//     sample batch (AllowSample, with four eyes) lets the first N of the hold's
//     people, in key order, run before the decision on the rest, which stay held;
//     a sampled removal runs only at the fact version the person saw, and does
//     not count against the window (a person looked at it);
//   - held removals do not count against the window, so a later burst of ordinary
//     leavers is judged on its own and runs while an earlier one waits for a
//     person; a truncated feed still stops at the threshold, since every removal
//     that ran stays in the window.
//
// With no settle period each removal is a burst of one, judged at once.
// Removals that ran before the threshold was crossed are not undone, as Entra's and
// Okta's thresholds behave: up to the threshold's worth of a bad feed does run.
// Uploads (a whole roster at once) are checked before anything is published, with
// Thresholds.Exceeded and HoldStore-style CreateHold, so that a held upload runs
// nothing at all.
//
// The feed's "active accounts" are the accounts linked to its workers that hrsync
// last saw active: whose latest successful create, reactivate, deactivate or
// delete in the audit trail is a create or reactivate (or that have none). An
// account deactivated by hand in the LMS still counts as active. The count is
// taken when a feed's window starts, plus the removals already in the window, so
// it is the number of active accounts before the window's removals. Before a
// removal is held, the count is taken again: a feed that grew since the window
// started (a bulk import) is measured as it is now, so its removals are not held
// against the smaller base.

// The outcomes the safeguard adds to the audit trail.
const (
	// OutcomeHeld: the plan did not run; it waits in a hold for a person.
	OutcomeHeld Outcome = "held"
	// OutcomeApproved and OutcomeRejected record a person's decision on a hold, one
	// audit row per held worker.
	OutcomeApproved Outcome = "approved"
	OutcomeRejected Outcome = "rejected"
)

// Removes reports whether an action removes an account from use: a deactivation,
// a deletion or an anonymisation. These are what safeguards count.
func (k ActionKind) Removes() bool {
	return k == ActionDeactivate || k == ActionDelete || k == ActionAnonymise
}

// Thresholds bound the removals of one window. Zero fields do not limit.
type Thresholds struct {
	// Percent of the active accounts: more than this many percent is held.
	Percent float64 `json:"percent" yaml:"percent"`
	// Count: more than this many removals is held, whatever the percentage.
	Count int `json:"count" yaml:"count"`
	// MinRemovals: a window of at most this many removals is never held for its
	// percentage, so that a partner with four people can lose one. The Count
	// limit applies regardless.
	MinRemovals int `json:"min_removals" yaml:"min_removals"`
}

// DefaultThresholds are 20% of the active accounts or 500 accounts, with the
// percentage applying from the 6th removal of a window on.
func DefaultThresholds() Thresholds { return Thresholds{Percent: 20, Count: 500, MinRemovals: 5} }

// Exceeded reports whether removals out of active accounts cross t, and if so
// which limit, in words for the hold's reason. It performs no I/O; uploads use it
// on the removals a roster implies before they publish anything.
func (t Thresholds) Exceeded(removals, active int) (bool, string) {
	if removals <= 0 {
		return false, ""
	}
	if t.Count > 0 && removals > t.Count {
		return true, fmt.Sprintf("%d removals is more than %d accounts", removals, t.Count)
	}
	if t.Percent > 0 && removals > t.MinRemovals && float64(removals)*100 > t.Percent*float64(active) {
		pct := 100.0
		if active > 0 {
			pct = float64(removals) * 100 / float64(active)
		}
		return true, fmt.Sprintf("%d removals of %d active accounts (%.1f%%) is more than %g%%", removals, active, pct, t.Percent)
	}
	return false, ""
}

// HoldKind says where a hold came from.
type HoldKind string

// The kinds of hold.
const (
	HoldLive   HoldKind = "live"   // removals of live events within a window
	HoldUpload HoldKind = "upload" // a roster upload, held before it was published
)

// HoldStatus is where a hold stands.
type HoldStatus string

// The states of a hold. Only an open hold can be decided, once.
const (
	HoldOpen     HoldStatus = "open"
	HoldApproved HoldStatus = "approved"
	HoldRejected HoldStatus = "rejected"
	// HoldSettling is a burst of live removals that waits for its settle period
	// to end before it is judged; HoldPassed is a burst judged under the
	// thresholds, whose removals all run. Neither waits for a person.
	HoldSettling HoldStatus = "settling"
	HoldPassed   HoldStatus = "passed"
)

// HoldCounts are the numbers a person decides on.
type HoldCounts struct {
	// Removals is the number of workers held; Deactivations and Deletions split it.
	Removals      int `json:"removals"`
	Deactivations int `json:"deactivations"`
	Deletions     int `json:"deletions"`
	// Active is the feed's active accounts the threshold was measured against.
	Active int `json:"active"`
}

// HeldWorker is one person whose removal waits in a hold.
type HeldWorker struct {
	Worker    WorkerKey  `json:"worker"`
	AccountID string     `json:"account_id,omitempty"`
	Action    ActionKind `json:"action"`
	// Version is the worker's fact version the hold is about (Claim.Version). A
	// rejection keeps the account as it is until a fact arrives past it. Zero
	// (uploads, whose facts are not recorded yet): an approval lets the worker's
	// next removal go, and a rejection binds nothing.
	Version int64     `json:"version,omitempty"`
	Name    string    `json:"name,omitempty"`
	Email   string    `json:"email,omitempty"`
	At      time.Time `json:"at"`
	// Sampled: a person let this removal run in a sample batch before the
	// decision on the rest of the hold (hrsync holds approve --sample-batch).
	Sampled bool `json:"sampled,omitempty"`
}

// Hold is a set of removals that waits for a person's decision.
type Hold struct {
	ID        int64      `json:"id"`
	Feed      string     `json:"feed"`
	Kind      HoldKind   `json:"kind"`
	Status    HoldStatus `json:"status"`
	Reason    string     `json:"reason"`
	Counts    HoldCounts `json:"counts"`
	CreatedAt time.Time  `json:"created_at"`
	// DecidedAt, DecidedBy and Decision (the reason given) are set once decided.
	DecidedAt *time.Time `json:"decided_at,omitempty"`
	DecidedBy string     `json:"decided_by,omitempty"`
	Decision  string     `json:"decision,omitempty"`
	// Workers are the held workers, when creating a hold (CreateHold); reads
	// return them separately, by page.
	Workers []HeldWorker `json:"workers,omitempty"`
	// Sample is, for a hold that is still open, how many of its first items (a
	// job's) or people (a live or upload hold's, in key order) a person let run as
	// a test before deciding the rest (hrsync holds approve --sample-batch N);
	// zero: none.
	Sample int `json:"sample,omitempty"`
	// Payload is opaque to the safeguard: what an upload publishes once approved,
	// or a job's report summary.
	Payload []byte `json:"-"`
	// CausedBy is who caused the hold: the uploader of a held roster, the person
	// who started a clean-up or offboarding; empty for live holds (events cause
	// them, not a person). Four eyes: they may not approve it (CheckApprover).
	CausedBy string `json:"caused_by,omitempty"`
	// ApprovalsNeeded is how many different people must approve before the hold
	// is approved (holds.approvals in the configuration file; 0 reads as 1).
	ApprovalsNeeded int `json:"approvals_needed,omitempty"`
	// Approvals are who approved so far, in order, while more are needed; once
	// approved, the last of them is DecidedBy.
	Approvals []string `json:"approvals,omitempty"`
}

// ErrFourEyes is returned when a person may not approve a hold: they caused it,
// or approved it already and another approver is needed.
var ErrFourEyes = errors.New("four eyes: another approver is needed")

// CheckApprover says whether by may approve h (or let a sample of it run): not
// the person who caused it, and not one who approved it already. It performs no
// I/O; the store calls it inside the decision's transaction, so that the CLI and
// the console share the rule.
func (h Hold) CheckApprover(by string) error {
	if h.CausedBy != "" && strings.EqualFold(strings.TrimSpace(by), strings.TrimSpace(h.CausedBy)) {
		return fmt.Errorf("hold %d was caused by %s, who may not approve it: %w", h.ID, h.CausedBy, ErrFourEyes)
	}
	for _, a := range h.Approvals {
		if strings.EqualFold(strings.TrimSpace(by), a) {
			return fmt.Errorf("hold %d was approved by %s already and needs %d different approvers: %w", h.ID, a, h.Needed(), ErrFourEyes)
		}
	}
	return nil
}

// Needed is how many different approvers h needs, at least one.
func (h Hold) Needed() int { return max(h.ApprovalsNeeded, 1) }

// HoldDecision is a person's decision on an open hold. By and Reason are required.
type HoldDecision struct {
	Approve bool
	By      string
	Reason  string
}

// WindowCounts are the removals of the current window, this one included, and the
// active accounts they are measured against, for one feed and for all feeds.
type WindowCounts struct {
	Feed         string
	FeedRemovals int
	FeedActive   int
	AllRemovals  int
	AllActive    int
}

// RemovalRequest asks the store whether a worker's account may be removed now.
type RemovalRequest struct {
	Worker    WorkerKey
	Version   int64
	AccountID string
	Action    ActionKind
	// Name and Email describe the person in hold listings.
	Name, Email string
	Now         time.Time
	Window      time.Duration
	// Settle is how long a burst of the feed's removals gathers before it is
	// judged whole; zero judges each removal at once.
	Settle time.Duration
	// Decide says whether the window's removals cross the thresholds, and why. The
	// store calls it inside its transaction, possibly more than once.
	Decide func(WindowCounts) (hold bool, reason string)
}

// RemovalVerdict is the store's answer to a RemovalRequest.
type RemovalVerdict struct {
	// Allow: run the plan. Otherwise it is held (Status open) or was rejected.
	Allow bool
	// HoldID and Status name the hold behind the answer, if any: open (held now),
	// approved (allowed by a person), rejected (kept as is).
	HoldID int64
	Status HoldStatus
	// Reason is the hold's reason, or the decision's.
	Reason string
	// Wait, when set, means the removal is in a burst that settles until Wait: ask
	// again then (Status settling). Nothing is decided yet.
	Wait time.Time
}

// HoldStore is what the safeguard needs from the store. Implemented by package
// store; store/storetest checks it.
type HoldStore interface {
	// ReserveRemoval decides a RemovalRequest in one transaction serialised with
	// every other: see the package's safeguard notes for the order of the rules.
	ReserveRemoval(ctx context.Context, r RemovalRequest) (RemovalVerdict, error)
}

// Removal is a plan the converger is about to run that removes an account.
type Removal struct {
	Claim  Claim
	Want   Wanted
	Action Action
}

// Safeguard decides whether a removal may run now. Converger.Safeguard is
// optional: nil runs every plan.
type Safeguard interface {
	CheckRemoval(ctx context.Context, r Removal) (RemovalVerdict, error)
}

// SafeguardConfig configures NewSafeguard. Zero values get the defaults listed.
type SafeguardConfig struct {
	Store HoldStore
	// Default applies to every feed not in Feeds; zero: DefaultThresholds.
	Default Thresholds
	// Feeds overrides the thresholds of single feeds.
	Feeds map[string]Thresholds
	// Overall bounds the removals of all feeds together; zero: DefaultThresholds.
	Overall Thresholds
	// Window is how far back removals count; default one hour.
	Window time.Duration
	// Settle is how long removals gather into one burst before it is judged whole;
	// zero judges each removal at once (a burst could then be split: avoid).
	Settle time.Duration
	// Now is the clock; default time.Now. Use the converger's.
	Now    func() time.Time
	Logger *slog.Logger
}

// WindowSafeguard holds the removals that cross thresholds within a sliding window.
type WindowSafeguard struct{ cfg SafeguardConfig }

var _ Safeguard = (*WindowSafeguard)(nil)

// NewSafeguard checks cfg and fills in defaults.
func NewSafeguard(cfg SafeguardConfig) (*WindowSafeguard, error) {
	if cfg.Store == nil {
		return nil, fmt.Errorf("safeguard: Store is required")
	}
	if cfg.Default == (Thresholds{}) {
		cfg.Default = DefaultThresholds()
	}
	if cfg.Overall == (Thresholds{}) {
		cfg.Overall = DefaultThresholds()
	}
	for _, t := range append([]Thresholds{cfg.Default, cfg.Overall}, mapValues(cfg.Feeds)...) {
		if t.Percent < 0 || t.Count < 0 || t.MinRemovals < 0 {
			return nil, fmt.Errorf("safeguard: thresholds %+v: negative values", t)
		}
	}
	if cfg.Window <= 0 {
		cfg.Window = time.Hour
	}
	if cfg.Settle < 0 || cfg.Settle >= cfg.Window {
		return nil, fmt.Errorf("safeguard: settle %s: must be at least 0 and shorter than the window %s", cfg.Settle, cfg.Window)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &WindowSafeguard{cfg: cfg}, nil
}

func mapValues(m map[string]Thresholds) []Thresholds {
	out := make([]Thresholds, 0, len(m))
	for _, t := range m {
		out = append(out, t)
	}
	return out
}

// Thresholds returns the thresholds of a feed.
func (s *WindowSafeguard) Thresholds(feed string) Thresholds {
	if t, ok := s.cfg.Feeds[feed]; ok {
		return t
	}
	return s.cfg.Default
}

// CheckRemoval asks the store, which counts the window in one transaction.
func (s *WindowSafeguard) CheckRemoval(ctx context.Context, r Removal) (RemovalVerdict, error) {
	feed := r.Claim.Worker.Feed
	t := s.Thresholds(feed)
	name := strings.TrimSpace(r.Want.Profile.GivenName + " " + r.Want.Profile.FamilyName)
	v, err := s.cfg.Store.ReserveRemoval(ctx, RemovalRequest{
		Worker: r.Claim.Worker, Version: r.Claim.Version, AccountID: r.Action.AccountID, Action: r.Action.Kind,
		Name: name, Email: r.Want.Profile.Email, Now: s.cfg.Now(), Window: s.cfg.Window, Settle: s.cfg.Settle,
		Decide: func(c WindowCounts) (bool, string) {
			if hit, why := t.Exceeded(c.FeedRemovals, c.FeedActive); hit {
				return true, fmt.Sprintf("feed %s: %s within %s", feed, why, s.cfg.Window)
			}
			if hit, why := s.cfg.Overall.Exceeded(c.AllRemovals, c.AllActive); hit {
				return true, fmt.Sprintf("all feeds: %s within %s", why, s.cfg.Window)
			}
			return false, ""
		},
	})
	if err != nil {
		return v, fmt.Errorf("safeguard: %w", err)
	}
	if !v.Allow && v.Status == HoldOpen {
		s.cfg.Logger.Warn("removal held for approval", "feed", feed, "worker_id", r.Claim.Worker.WorkerID,
			"action", r.Action.Kind, "hold_id", v.HoldID, "reason", v.Reason)
	}
	return v, nil
}

// safeguard asks cfg.Safeguard about a plan that removes an account, before any of
// the plan runs. If the plan must not run, done is true and held is the completion
// to commit: comp's link changes, an audit row (held, or skipped after a
// rejection), and no due time but next (only a new fact, or an approval, makes the
// worker due again). A plan allowed by an approval gets the hold named in its
// actions' reasons.
func (c *Converger) safeguard(ctx context.Context, cl Claim, want Wanted, plan []Action, next time.Time, comp Completion) (held Completion, done bool, err error) {
	if c.cfg.Safeguard == nil {
		return comp, false, nil
	}
	i := -1
	for j, a := range plan {
		if a.Kind.Removes() {
			i = j
			break
		}
	}
	if i < 0 {
		return comp, false, nil
	}
	a := plan[i]
	v, err := c.cfg.Safeguard.CheckRemoval(ctx, Removal{Claim: cl, Want: want, Action: a})
	if err != nil {
		return comp, true, err
	}
	if !v.Wait.IsZero() {
		// The burst settles: nothing runs and nothing is audited yet; the worker
		// comes back when its burst is judged (or earlier, for a new fact).
		comp.NextDue = v.Wait
		if !next.IsZero() && next.Before(v.Wait) {
			comp.NextDue = next
		}
		return comp, true, nil
	}
	if v.Allow {
		if v.HoldID != 0 {
			plan[i].Reason = fmt.Sprintf("%s; approved in hold %d", a.Reason, v.HoldID)
			plan[i].HoldID = v.HoldID
		}
		return comp, false, nil
	}
	entry := AuditEntry{At: c.cfg.Now(), Feed: cl.Worker.Feed, WorkerID: cl.Worker.WorkerID,
		AccountID: a.AccountID, Action: a.Kind, FactIDs: want.FactIDs, HoldID: v.HoldID, Cause: a.Reason}
	if v.Status == HoldRejected {
		entry.Outcome = OutcomeSkipped
		entry.Detail = fmt.Sprintf("%s: not done, rejected in hold %d (%s); kept until a new fact arrives", a.Reason, v.HoldID, v.Reason)
	} else {
		entry.Outcome = OutcomeHeld
		entry.Detail = fmt.Sprintf("%s: held in hold %d: %s", a.Reason, v.HoldID, v.Reason)
	}
	c.hookAction(a.Kind, entry.Outcome)
	comp.Audit = append(comp.Audit, entry)
	comp.NextDue = next
	return comp, true, nil
}
