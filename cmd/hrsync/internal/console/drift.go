package console

import (
	"encoding/csv"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/hrsync/hrsync/connector"
)

// The drift page: the latest scheduled reconciliation (hrsync run
// --reconcile-every) by class and feed, as this process saw it, with its
// counts as CSV. The per-account report is in --reconcile-out's directory.

// Reconciled is the reconciler's hook: it keeps the latest pass's summary.
func (s *Server) Reconciled(sum connector.ReconcileSummary, err error) {
	s.recMu.Lock()
	defer s.recMu.Unlock()
	s.lastRec, s.lastRecErr, s.haveRec = sum, err, true
}

// driftRow is one class's counts, in total and per feed.
type driftRow struct {
	Class  connector.DriftClass
	Total  int
	ByFeed []int
}

type driftPage struct {
	Have     bool
	Err      string
	Finished time.Time
	Duration time.Duration
	Apply    bool
	Workers  int
	Accounts int
	Feeds    []string
	Rows     []driftRow
}

func (s *Server) drift(w http.ResponseWriter, r *http.Request, u User, ss *session) {
	p := s.driftPage(u)
	if r.URL.Query().Get("format") == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="drift.csv"`)
		cw := csv.NewWriter(w)
		_ = cw.Write([]string{"class", "feed", "count"})
		for _, row := range p.Rows {
			for i, f := range p.Feeds {
				if row.ByFeed[i] > 0 {
					_ = cw.Write([]string{string(row.Class), f, strconv.Itoa(row.ByFeed[i])})
				}
			}
		}
		cw.Flush()
		return
	}
	s.render(w, http.StatusOK, "drift", s.viewFor(ss, "Drift", p))
}

// driftPage is the latest summary, limited to the feeds u may see.
func (s *Server) driftPage(u User) driftPage {
	s.recMu.Lock()
	sum, err, have := s.lastRec, s.lastRecErr, s.haveRec
	s.recMu.Unlock()
	p := driftPage{Have: have, Finished: sum.Finished, Duration: sum.Duration.Round(time.Millisecond), Apply: sum.Apply, Feeds: s.visibleFeeds(u)}
	if err != nil {
		p.Err = err.Error()
	}
	if len(u.Feeds) == 0 {
		// Orphans that name no configured feed are for users of every feed.
		p.Feeds = append(p.Feeds, "")
		p.Workers, p.Accounts = sum.Workers, sum.Accounts
	}
	var classes []connector.DriftClass
	for _, f := range p.Feeds {
		for c := range sum.ByFeed[f] {
			if !slices.Contains(classes, c) {
				classes = append(classes, c)
			}
		}
	}
	slices.Sort(classes)
	for _, c := range classes {
		row := driftRow{Class: c}
		for _, f := range p.Feeds {
			n := sum.ByFeed[f][c]
			row.ByFeed = append(row.ByFeed, n)
			row.Total += n
		}
		p.Rows = append(p.Rows, row)
	}
	return p
}
