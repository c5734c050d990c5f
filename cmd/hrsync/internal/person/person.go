// Package person tells one worker's story: their facts in time order, what
// hrsync wants for them, their LMS account as it is now, the match and the
// plan against it, and their audit trail. The console's person page and
// "hrsync explain" both show it, so that the two never disagree.
package person

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
)

// Store is what a story reads from the store. Implemented by *store.DB.
type Store interface {
	LoadHistory(ctx context.Context, w connector.WorkerKey) (connector.History, error)
	ListAudit(ctx context.Context, f store.AuditFilter) ([]connector.AuditEntry, error)
	connector.LinkReader
	connector.StateActionReader
}

var _ Store = (*store.DB)(nil)

// Sources are the parts of the app a story is read from.
type Sources struct {
	Store Store
	Feeds connector.Feeds
	// LMS is the guarded LMS (the app's): nil tells the story without an account.
	LMS connector.LMS
	// Policy is a feed's policy as the converger applies it; nil: DefaultPolicy.
	Policy func(feed string) connector.Policy
}

// Story is one worker's story.
type Story struct {
	Worker connector.WorkerKey `json:"worker"`
	// Facts are in the order Want folds them (effective time, event time, id).
	Facts   []connector.Fact   `json:"facts"`
	Want    connector.Wanted   `json:"want"`
	Next    time.Time          `json:"next,omitzero"` // when Want's answer changes (a future-dated fact)
	Account *connector.Account `json:"account,omitempty"`
	// Match says how the account was found: the link, or a rule of the matcher.
	Match string `json:"match,omitempty"`
	// Plan is what the converger's Plan would do to Account now; empty when
	// the LMS could not be read (LMSErr).
	Plan []connector.Action `json:"plan"`
	// Kept says why the plan leaves out a reactivation (an account deactivated
	// outside hrsync, policy reactivate_manual off); the converger raises a
	// review item with it.
	Kept   string                 `json:"kept,omitempty"`
	Audit  []connector.AuditEntry `json:"audit"`
	LMSErr string                 `json:"lms_error,omitempty"`
}

// ErrUnknownFeed: the story names a feed that is not configured.
var ErrUnknownFeed = errors.New("no such feed is configured")

// Tell reads wk's story at now, with at most auditLimit audit rows (newest
// first). It returns an error matching connector.ErrNotFound when the store has
// no facts about wk, and ErrUnknownFeed for a feed not configured. An LMS that
// cannot be read is not an error: the story says so (LMSErr) and has no plan.
func Tell(ctx context.Context, src Sources, wk connector.WorkerKey, now time.Time, auditLimit int) (Story, error) {
	s := Story{Worker: wk}
	feed, ok := src.Feeds[wk.Feed]
	if !ok {
		return s, fmt.Errorf("feed %q: %w", wk.Feed, ErrUnknownFeed)
	}
	hist, err := src.Store.LoadHistory(ctx, wk)
	if err != nil {
		return s, err
	}
	policy := connector.DefaultPolicy()
	if src.Policy != nil {
		policy = src.Policy(wk.Feed)
	}
	s.Facts = connector.SortFacts(hist.Facts)
	s.Want, s.Next = connector.Want(s.Facts, now, policy)
	if s.Audit, err = src.Store.ListAudit(ctx, store.AuditFilter{Feed: wk.Feed, WorkerID: wk.WorkerID, Limit: auditLimit}); err != nil {
		return s, err
	}
	if src.LMS == nil {
		s.LMSErr = "no LMS to read"
		return s, nil
	}
	if hist.SupersededBy != nil {
		// The converger does nothing for a superseded worker: its successor
		// (rehired under a new id) owns the account and folds these facts too.
		s.Match = fmt.Sprintf("superseded by %s, which owns the account now", *hist.SupersededBy)
		return s, nil
	}
	// The account as it is now, found as the converger finds it (read-only).
	s.Want.Worker = wk
	m, err := connector.FindAccount(ctx, src.LMS, src.Store, feed, s.Want, hist)
	switch {
	case err != nil:
		s.LMSErr = err.Error()
	case len(m.Ambiguous) > 0:
		// The converger raises a review item and plans nothing.
		s.Match = fmt.Sprintf("%d accounts match (%s): a person must decide", len(m.Ambiguous), m.By)
		return s, nil
	case m.Unlink && m.Account == nil:
		s.Match = "linked to an account the LMS no longer has; " + m.By
	default:
		s.Account, s.Match = m.Account, m.By
	}
	if s.LMSErr != "" {
		return s, nil
	}
	// The converger's Plan, and what it drops before it runs it.
	s.Plan, s.Kept, err = connector.RespectManualDeactivation(ctx, src.Store, s.Want, s.Facts, s.Account, connector.Plan(s.Want, s.Account, policy), policy)
	return s, err
}
