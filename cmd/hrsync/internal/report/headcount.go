package report

import (
	"context"
	"slices"
	"time"

	"github.com/hrsync/hrsync/connector"
)

// Headcount is the current headcount per feed and org unit (the org unit of the
// folded profile), reading feed's workers (all feeds if "") page at a time.
//
// A person counts as active when their facts say they are active at now AND the
// last state change hrsync made to their account (audit: create, deactivate or
// reactivate with outcome ok) left it active, so a deactivated account never
// counts. pending_active counts people HR says are active whose account hrsync
// has not set active (not converged yet, held, or deactivated by hand),
// pending_inactive people HR says are not active whose account is still active
// as hrsync last set it. on_leave counts people on a leave of absence, pre_hire
// new hires whose account exists ahead of their start date under their feed's
// pre-hire lead time.
//
// policy gives each feed's policy, for its pre-hire lead time only: whether
// someone is employed is always decided by the default policy.
func Headcount(ctx context.Context, s Store, feed string, page int, now time.Time, policy func(feed string) connector.Policy) (*Table, error) {
	const cols = 5
	c := counter{}
	pol := connector.DefaultPolicy()
	err := EachPage(ctx, s, feed, page, func(ps []Person) error {
		var ids []string
		for _, p := range ps {
			if p.AccountID != "" {
				ids = append(ids, p.AccountID)
			}
		}
		last := map[string]connector.AuditEntry{}
		if len(ids) > 0 {
			var err error
			if last, err = s.LastStateActions(ctx, ids); err != nil {
				return err
			}
		}
		for _, p := range ps {
			if len(p.Facts) == 0 {
				continue
			}
			w, _ := connector.Want(p.Facts, now, pol)
			e, ok := last[p.AccountID]
			lmsActive := p.AccountID != "" && lastSetActive(e, ok)
			// A new hire within the feed's pre-hire lead time: not employed
			// yet, but an account active ahead of the start date is right.
			pre, _ := connector.Want(p.Facts, now, policy(p.Worker.Feed))
			k := groupKey{p.Worker.Feed, w.Profile.OrgUnit}
			if pre.PreHire {
				k[1] = pre.Profile.OrgUnit
				c.add(k, cols, 4)
			}
			switch {
			case w.State == connector.StateActive && lmsActive:
				c.add(k, cols, 0)
			case w.State == connector.StateActive:
				c.add(k, cols, 1)
			case lmsActive && !(pre.PreHire && pre.State == connector.StateActive):
				c.add(k, cols, 2)
			}
			if w.State == connector.StateSuspended {
				c.add(k, cols, 3)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	t := &Table{Name: "headcount", Params: map[string]string{"mode": "current", "at": now.Format(time.RFC3339)},
		Keys: []string{"feed", "org_unit"}, Counts: []string{"active", "pending_active", "pending_inactive", "on_leave", "pre_hire"}}
	t.fill(c)
	return t, nil
}

// FeedPolicies returns each feed's policy (connector.Feed.Policy over the default
// policy), and the default policy for a feed not in feeds: Headcount's policy.
func FeedPolicies(feeds connector.Feeds) func(feed string) connector.Policy {
	return func(feed string) connector.Policy {
		if f, ok := feeds[feed]; ok {
			return f.Policy(connector.DefaultPolicy())
		}
		return connector.DefaultPolicy()
	}
}

// HeadcountPeriod counts everyone whose folded state was active at some instant
// of [from, to) (instants after now are not looked at). The state only changes at
// a fact's effective time, so the instants to look at are from and every
// effective time inside the period. The org unit is the one they had at the last
// instant they were active in the period.
func HeadcountPeriod(ctx context.Context, s Store, feed string, page int, from, to, now time.Time) (*Table, error) {
	c := counter{}
	pol := connector.DefaultPolicy()
	end := to
	if now.Before(end) {
		end = now.Add(time.Microsecond) // now itself is in the period
	}
	err := EachPage(ctx, s, feed, page, func(ps []Person) error {
		for _, p := range ps {
			if !from.Before(end) {
				return nil // the period starts after now
			}
			instants := []time.Time{from}
			for _, f := range p.Facts {
				if f.Effective.After(from) && f.Effective.Before(end) {
					instants = append(instants, f.Effective)
				}
			}
			instants = slices.CompactFunc(instants, func(a, b time.Time) bool { return a.Equal(b) })
			org, active := "", false
			for _, at := range instants {
				if w, _ := connector.Want(p.Facts, at, pol); w.State == connector.StateActive {
					org, active = w.Profile.OrgUnit, true
				}
			}
			if active {
				c.add(groupKey{p.Worker.Feed, org}, 1, 0)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	t := &Table{Name: "headcount", Params: map[string]string{"mode": "period",
		"from": from.Format(time.RFC3339), "to": to.Format(time.RFC3339), "at": now.Format(time.RFC3339)},
		Keys: []string{"feed", "org_unit"}, Counts: []string{"active_in_period"}}
	t.fill(c)
	return t, nil
}
