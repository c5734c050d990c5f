package console

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/deadletter"
	"github.com/hrsync/hrsync/cmd/hrsync/internal/review"
	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
)

// Dead letters and review items: the same use cases as hrsync dead and hrsync
// review (packages deadletter and review), with the signed-in user as who acts.

// listLimit bounds the dead letters and review items a page lists.
const listLimit = 500

// oneFeed is the feed to filter by for u: their only feed, or none.
func oneFeed(u User) string {
	if len(u.Feeds) == 1 {
		return u.Feeds[0]
	}
	return ""
}

// deadRow is a dead letter as the list shows it.
type deadRow struct {
	connector.DeadLetter
	Type string
}

func (s *Server) deadLetters(w http.ResponseWriter, r *http.Request, u User, ss *session) {
	ds, err := s.d.Store.ListDeadLetters(r.Context(), store.DeadLetterFilter{Feed: oneFeed(u), Limit: listLimit})
	if err != nil {
		s.internal(w, r, ss, err)
		return
	}
	var rows []deadRow
	for _, d := range ds {
		if u.SeesFeed(d.Feed) {
			typ, _ := deadletter.Decode(d).Attributes["type"].(string)
			rows = append(rows, deadRow{DeadLetter: d, Type: typ})
		}
	}
	v := s.viewFor(ss, "Dead letters", rows)
	v.Flash = flashes[r.URL.Query().Get("done")]
	s.render(w, http.StatusOK, "dead", v)
}

// deadPage is one dead letter, decoded.
type deadPage struct {
	deadletter.Shown
	MayAct bool
	// Attributes and Headers are the message's, as sorted lines.
	Data string
}

// loadDead returns dead letter id if u may see it; otherwise it has answered.
func (s *Server) loadDead(w http.ResponseWriter, r *http.Request, u User, ss *session) (deadletter.Shown, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		s.fail(w, r, ss, http.StatusNotFound, "No such dead letter.")
		return deadletter.Shown{}, false
	}
	sh, err := deadletter.Show(r.Context(), s.d.Store, id)
	switch {
	case errors.Is(err, connector.ErrNotFound):
		s.fail(w, r, ss, http.StatusNotFound, "No such dead letter.")
		return sh, false
	case err != nil:
		s.internal(w, r, ss, err)
		return sh, false
	case !u.SeesFeed(sh.Feed):
		s.fail(w, r, ss, http.StatusForbidden, "This dead letter is of a feed you may not see.")
		return sh, false
	}
	return sh, true
}

func (s *Server) deadLetter(w http.ResponseWriter, r *http.Request, u User, ss *session) {
	sh, ok := s.loadDead(w, r, u, ss)
	if !ok {
		return
	}
	p := deadPage{Shown: sh, MayAct: u.MayDecide(sh.Feed) && sh.Status == connector.DeadLetterOpen}
	switch m := sh.Message; {
	case len(m.Data) > 0:
		p.Data = string(m.Data)
	case m.Text != "":
		p.Data = m.Text
	default:
		p.Data = m.Hex
	}
	v := s.viewFor(ss, fmt.Sprintf("Dead letter %d", sh.ID), p)
	v.Flash = flashes[r.URL.Query().Get("done")]
	s.render(w, http.StatusOK, "deadletter", v)
}

// endError answers a dead letter or review item the use case refused.
func (s *Server) endError(w http.ResponseWriter, r *http.Request, ss *session, err error) {
	switch {
	case errors.Is(err, connector.ErrConflict):
		s.fail(w, r, ss, http.StatusConflict, err.Error())
	case errors.Is(err, connector.ErrNotFound):
		s.fail(w, r, ss, http.StatusNotFound, err.Error())
	default:
		// The use cases' own words: why a replay failed (it is kept in the
		// dead letter's history too).
		s.log.Warn("console: refused", "path", r.URL.Path, "user", ss.user.Name, "err", err)
		s.fail(w, r, ss, http.StatusUnprocessableEntity, err.Error())
	}
}

func (s *Server) replayDeadLetter(w http.ResponseWriter, r *http.Request, u User, ss *session) {
	sh, ok := s.loadDead(w, r, u, ss)
	if !ok || !s.authoriseFeed(w, r, u, ss, sh.Feed) {
		return
	}
	if _, err := deadletter.Replay(r.Context(), s.d.Store, s.d.Feeds, sh.ID, u.Name); err != nil {
		s.endError(w, r, ss, err)
		return
	}
	s.log.Info("console: dead letter replayed", "dead_letter_id", sh.ID, "user", u.Name)
	http.Redirect(w, r, fmt.Sprintf("/dead/%d?done=replayed", sh.ID), http.StatusSeeOther)
}

func (s *Server) discardDeadLetter(w http.ResponseWriter, r *http.Request, u User, ss *session) {
	sh, ok := s.loadDead(w, r, u, ss)
	if !ok || !s.authoriseFeed(w, r, u, ss, sh.Feed) {
		return
	}
	reason, ok := s.reasonOf(w, r, ss)
	if !ok {
		return
	}
	if _, err := deadletter.Discard(r.Context(), s.d.Store, sh.ID, u.Name, reason); err != nil {
		s.endError(w, r, ss, err)
		return
	}
	s.log.Info("console: dead letter discarded", "dead_letter_id", sh.ID, "user", u.Name)
	http.Redirect(w, r, fmt.Sprintf("/dead/%d?done=discarded", sh.ID), http.StatusSeeOther)
}

// reviewRow is an open review item as the list shows it.
type reviewRow struct {
	connector.Review
	MayAct bool
}

func (s *Server) reviews(w http.ResponseWriter, r *http.Request, u User, ss *session) {
	rs, err := s.d.Store.ListReviews(r.Context(), store.ReviewFilter{Feed: oneFeed(u), Limit: listLimit})
	if err != nil {
		s.internal(w, r, ss, err)
		return
	}
	var rows []reviewRow
	for _, rv := range rs {
		if u.SeesFeed(rv.Feed) {
			rows = append(rows, reviewRow{Review: rv, MayAct: u.MayDecide(rv.Feed)})
		}
	}
	v := s.viewFor(ss, "Review items", rows)
	v.Flash = flashes[r.URL.Query().Get("done")]
	s.render(w, http.StatusOK, "reviews", v)
}

func (s *Server) resolveReview(w http.ResponseWriter, r *http.Request, u User, ss *session) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		s.fail(w, r, ss, http.StatusNotFound, "No such review item.")
		return
	}
	rv, err := s.d.Store.GetReview(r.Context(), id)
	switch {
	case errors.Is(err, connector.ErrNotFound):
		s.fail(w, r, ss, http.StatusNotFound, "No such review item.")
		return
	case err != nil:
		s.internal(w, r, ss, err)
		return
	case !u.SeesFeed(rv.Feed) || !s.authoriseFeed(w, r, u, ss, rv.Feed):
		if !u.SeesFeed(rv.Feed) {
			s.fail(w, r, ss, http.StatusForbidden, "This review item is of a feed you may not see.")
		}
		return
	}
	reason, ok := s.reasonOf(w, r, ss)
	if !ok {
		return
	}
	if _, err := review.Resolve(r.Context(), s.d.Store, id, u.Name, reason); err != nil {
		s.endError(w, r, ss, err)
		return
	}
	s.log.Info("console: review item resolved", "review_id", id, "user", u.Name)
	http.Redirect(w, r, "/reviews?done=resolved", http.StatusSeeOther)
}
