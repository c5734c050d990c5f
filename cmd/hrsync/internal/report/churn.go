package report

import (
	"context"
	"time"

	"github.com/hrsync/hrsync/connector"
)

// Churn counts hires, leavers and rehires per month of [first, last] (month
// starts in their location) and feed, from the facts' effective dates.
//
// Each person's facts are folded with the same Want as the converger, at every
// effective time, and a change of state counts once: a hire or rehire that makes
// the person active after they were never hired or had left (a second hire of
// someone already active does not count; nor does a return from a leave of
// absence), a leave that ends their employment (from active, or from a leave of
// absence). A leave cancelled by a later rehire (Want's rule) is neither a
// leaver nor a rehire. Changes after now are not counted yet. Every month of the
// range gets a row per feed, zeros included.
func Churn(ctx context.Context, s Store, feed string, page int, first, last, now time.Time) (*Table, error) {
	const cols = 3 // hires, leavers, rehires
	loc := first.Location()
	from, to := first, last.AddDate(0, 1, 0)
	c := counter{}
	feeds := map[string]bool{}
	pol := connector.DefaultPolicy()
	err := EachPage(ctx, s, feed, page, func(ps []Person) error {
		for _, p := range ps {
			feeds[p.Worker.Feed] = true
			byID := make(map[string]connector.Fact, len(p.Facts))
			for _, f := range p.Facts {
				byID[f.Source+"#"+f.ID] = f
			}
			prev := connector.StateAbsent
			for i, f := range p.Facts {
				at := f.Effective
				if at.After(now) || !at.Before(to) {
					break
				}
				if i+1 < len(p.Facts) && p.Facts[i+1].Effective.Equal(at) {
					continue // fold every fact of this instant first
				}
				w, _ := connector.Want(p.Facts, at, pol)
				// The facts of this instant that are in force, and what they say.
				var up connector.Kind
				left := false
				for _, id := range w.FactIDs {
					g := byID[id]
					if !g.Effective.Equal(at) {
						continue
					}
					switch g.Kind {
					case connector.KindHired, connector.KindRehired:
						up = g.Kind
					case connector.KindLeft:
						left = true
					}
				}
				// Not employed before: never hired, or left. Any other state
				// (active, or on a leave of absence) is employed.
				out := prev == connector.StateAbsent || prev == connector.StateInactive
				col := -1
				switch {
				case out && w.State == connector.StateActive && up == connector.KindHired:
					col = 0
				case out && w.State == connector.StateActive && up == connector.KindRehired:
					col = 2
				case !out && w.State == connector.StateInactive && left:
					col = 1
				}
				prev = w.State
				if col >= 0 && !at.Before(from) {
					c.add(groupKey{at.In(loc).Format("2006-01"), p.Worker.Feed}, cols, col)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if feed != "" {
		feeds[feed] = true
	}
	for m := first; m.Before(to); m = m.AddDate(0, 1, 0) {
		for fd := range feeds {
			k := groupKey{m.Format("2006-01"), fd}
			if c[k] == nil {
				c[k] = make([]int, cols)
			}
		}
	}
	t := &Table{Name: "churn", Params: map[string]string{"from": first.Format("2006-01"), "to": last.Format("2006-01"),
		"tz": loc.String(), "at": now.Format(time.RFC3339)},
		Keys: []string{"month", "feed"}, Counts: []string{"hires", "leavers", "rehires"}}
	t.fill(c)
	return t, nil
}
