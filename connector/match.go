package connector

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// Matcher applies the matching rules for a worker that has no link to an LMS
// account (docs/design.md, "Matching a worker with no link"). The converger and the
// reconciler both use it, so that what the report says the converger would match
// is what it matches.
type Matcher struct {
	// LMS is searched with FindAccounts (email compares case-insensitively there).
	LMS interface {
		FindAccounts(ctx context.Context, f AccountFilter) ([]Account, error)
	}
	// Links tells which worker an account is linked to (ErrNotFound for none).
	Links LinkReader
	// reads, if set, answers the lookups its batch prefetched (prefetch.go);
	// the others go to LMS.
	reads *batchReads
}

// Match is what the rules found for a worker: one account, two or more
// (Ambiguous), or none (both empty). Attr and Value name the rule and value that
// decided; both are empty when nothing matched.
type Match struct {
	Account   *Account
	Attr      FilterAttr
	Value     string
	Ambiguous []Account
}

// By says in words which rule decided, for logs, reviews and reports.
func (m Match) By() string {
	if m.Attr == "" {
		return "none of externalId, employee number, email"
	}
	return fmt.Sprintf("%s %q", m.Attr, m.Value)
}

// Match tries, in order: externalId "<feed>:<id>" of w's worker and of each of
// its predecessors (a rehire under a new id finds the old account), then every
// employee number, then every email w's facts stated (newest first). Candidates
// are confined to feed's scope and to accounts that no other worker is linked to
// (an account linked to w's worker or a predecessor stays a candidate). The first
// value with a candidate decides: one is the match, two or more are ambiguous and
// a person must decide. It never guesses.
func (m Matcher) Match(ctx context.Context, feed Feed, w Wanted) (Match, error) {
	chain := append([]string{w.Worker.WorkerID}, w.PreviousWorkerIDs...)
	extIDs := make([]string, 0, len(chain))
	for _, id := range chain {
		extIDs = append(extIDs, WorkerKey{Feed: w.Worker.Feed, WorkerID: id}.ExternalID())
	}
	rules := []struct {
		attr   FilterAttr
		values []string
	}{{ByExternalID, extIDs}, {ByEmployeeNumber, w.EmployeeNumbers}, {ByEmail, w.Emails}}
	for _, r := range rules {
		for _, v := range r.values {
			found, ok := m.reads.find(r.attr, v)
			if !ok {
				var err error
				found, err = m.LMS.FindAccounts(ctx, AccountFilter{Attr: r.attr, Value: v})
				if err != nil {
					return Match{}, fmt.Errorf("find account by %s: %w", r.attr, err)
				}
			}
			var cands []Account
			for _, a := range found {
				if !feed.InScope(a) {
					continue
				}
				other, err := m.Links.LinkedWorker(ctx, a.ID)
				switch {
				case errors.Is(err, ErrNotFound):
				case err != nil:
					return Match{}, fmt.Errorf("check link of account %s: %w", a.ID, err)
				case other.Feed != w.Worker.Feed || !slices.Contains(chain, other.WorkerID):
					continue // someone else's account
				}
				cands = append(cands, a)
			}
			switch len(cands) {
			case 0:
				continue
			case 1:
				return Match{Account: &cands[0], Attr: r.attr, Value: v}, nil
			default:
				return Match{Ambiguous: cands, Attr: r.attr, Value: v}, nil
			}
		}
	}
	return Match{}, nil
}
