package console

import (
	"encoding/csv"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
)

// auditLimit bounds a page of the audit trail; the CSV has up to auditCSVLimit.
const (
	auditLimit    = 200
	auditCSVLimit = 100000
)

// auditPage is the audit trail, searched.
type auditPage struct {
	Query   auditQuery
	Feeds   []string
	Entries []connector.AuditEntry
}

// auditQuery is the search form. It is sent by POST, so that a worker id never
// lands in a URL, a proxy's log or the browser's history.
type auditQuery struct {
	Feed, Worker, Action, Since, Until string
}

func (s *Server) audit(w http.ResponseWriter, r *http.Request, u User, ss *session) {
	s.showAudit(w, r, u, ss, auditQuery{}, false)
}

func (s *Server) auditSearch(w http.ResponseWriter, r *http.Request, u User, ss *session) {
	q := auditQuery{Feed: r.PostFormValue("feed"), Worker: strings.TrimSpace(r.PostFormValue("worker")),
		Action: r.PostFormValue("action"), Since: r.PostFormValue("since"), Until: r.PostFormValue("until")}
	s.showAudit(w, r, u, ss, q, r.PostFormValue("format") == "csv")
}

// visibleFeeds are the feeds u may see, of those configured.
func (s *Server) visibleFeeds(u User) []string {
	var out []string
	for _, f := range s.d.Feeds.Names() {
		if u.SeesFeed(f) {
			out = append(out, f)
		}
	}
	return out
}

func parseDay(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.DateOnly, v)
}

func (s *Server) showAudit(w http.ResponseWriter, r *http.Request, u User, ss *session, q auditQuery, asCSV bool) {
	limit := auditLimit
	if asCSV {
		limit = auditCSVLimit
	}
	f := store.AuditFilter{WorkerID: q.Worker, Action: connector.ActionKind(q.Action), Limit: limit}
	var err error
	if f.Since, err = parseDay(q.Since); err != nil {
		s.fail(w, r, ss, http.StatusBadRequest, "From: want a date, YYYY-MM-DD.")
		return
	}
	if f.Until, err = parseDay(q.Until); err != nil {
		s.fail(w, r, ss, http.StatusBadRequest, "To: want a date, YYYY-MM-DD.")
		return
	}
	if !f.Until.IsZero() {
		f.Until = f.Until.AddDate(0, 0, 1) // the whole day named
	}
	feeds := s.visibleFeeds(u)
	if q.Feed != "" {
		if !slices.Contains(feeds, q.Feed) {
			s.fail(w, r, ss, http.StatusForbidden, "You may not see this feed's audit trail.")
			return
		}
		feeds = []string{q.Feed}
	}
	var entries []connector.AuditEntry
	if len(feeds) == len(s.d.Feeds) && len(u.Feeds) == 0 {
		// Every feed: one query, with the rows of no single feed (clean-ups).
		entries, err = s.d.Store.ListAudit(r.Context(), f)
	} else {
		for _, feed := range feeds {
			f.Feed = feed
			var es []connector.AuditEntry
			if es, err = s.d.Store.ListAudit(r.Context(), f); err != nil {
				break
			}
			entries = append(entries, es...)
		}
		slices.SortFunc(entries, func(a, b connector.AuditEntry) int {
			if c := b.At.Compare(a.At); c != 0 {
				return c
			}
			return int(b.ID - a.ID)
		})
		entries = entries[:min(len(entries), limit)]
	}
	if err != nil {
		s.internal(w, r, ss, err)
		return
	}
	if asCSV {
		writeAuditCSV(w, entries)
		return
	}
	s.render(w, http.StatusOK, "audit", s.viewFor(ss, "Audit", auditPage{Query: q, Feeds: s.visibleFeeds(u), Entries: entries}))
}

// writeAuditCSV writes entries as CSV, every cell escaped against formula
// injection (connector.EscapeCSVCell), as the CLI's exports are.
func writeAuditCSV(w http.ResponseWriter, entries []connector.AuditEntry) {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="audit.csv"`)
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"id", "at", "feed", "worker_id", "account_id", "action", "outcome", "hold_id", "detail"})
	for _, e := range entries {
		row := []string{strconv.FormatInt(e.ID, 10), e.At.UTC().Format(time.RFC3339), e.Feed, e.WorkerID, e.AccountID,
			string(e.Action), string(e.Outcome), strconv.FormatInt(e.HoldID, 10), e.Detail}
		for i := range row {
			row[i] = connector.EscapeCSVCell(row[i])
		}
		_ = cw.Write(row)
	}
	cw.Flush()
}
