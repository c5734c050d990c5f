package console

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/person"
	"github.com/hrsync/hrsync/connector"
)

// A person's page: their facts in time order, what hrsync wants for them, the
// plan against their LMS account as it is now, and their audit trail; "sync
// now" wakes the daemon's own converger for them and shows what it did. The
// page is reached by a POST form, so that the worker id is in no URL.

// syncWait bounds how long "sync now" waits for the converger.
const syncWait = 20 * time.Second

// personPage is one person's story (shared with "hrsync explain") and what
// the page does with it.
type personPage struct {
	person.Story
	MayAct  bool
	Synced  bool
	Steps   []connector.AuditEntry
	Pending bool // still due or leased when "sync now" stopped waiting
	Feeds   []string
}

// personForm is the feed and worker a form names.
func personForm(r *http.Request) connector.WorkerKey {
	return connector.WorkerKey{Feed: strings.TrimSpace(r.PostFormValue("feed")), WorkerID: strings.TrimSpace(r.PostFormValue("worker"))}
}

func (s *Server) personSearch(w http.ResponseWriter, r *http.Request, u User, ss *session) {
	s.render(w, http.StatusOK, "person", s.viewFor(ss, "A person", personPage{Feeds: s.visibleFeeds(u)}))
}

// person shows the person the form names.
func (s *Server) person(w http.ResponseWriter, r *http.Request, u User, ss *session) {
	wk := personForm(r)
	p, ok := s.loadPerson(w, r, u, ss, wk)
	if !ok {
		return
	}
	s.render(w, http.StatusOK, "person", s.viewFor(ss, "A person", p))
}

// loadPerson builds wk's page if u may see it; otherwise it has answered.
func (s *Server) loadPerson(w http.ResponseWriter, r *http.Request, u User, ss *session, wk connector.WorkerKey) (personPage, bool) {
	p := personPage{Story: person.Story{Worker: wk}, Feeds: s.visibleFeeds(u)}
	if _, ok := s.d.Feeds[wk.Feed]; !ok || wk.WorkerID == "" {
		s.fail(w, r, ss, http.StatusBadRequest, "Name a configured feed and a worker id.")
		return p, false
	}
	if !u.SeesFeed(wk.Feed) {
		s.fail(w, r, ss, http.StatusForbidden, "This person is of a feed you may not see.")
		return p, false
	}
	story, err := person.Tell(r.Context(), person.Sources{Store: s.d.Store, Feeds: s.d.Feeds, LMS: s.d.LMS, Policy: s.d.Policy}, wk, s.now(), auditLimit)
	if errors.Is(err, connector.ErrNotFound) {
		s.fail(w, r, ss, http.StatusNotFound, "hrsync has no facts about this worker of this feed.")
		return p, false
	}
	if err != nil {
		s.internal(w, r, ss, err)
		return p, false
	}
	p.Story = story
	p.MayAct = u.MayDecide(wk.Feed) && s.d.Wake != nil
	if s.d.LMS == nil {
		p.LMSErr = "this console has no LMS to read"
	}
	return p, true
}

// syncNow makes the person due now and wakes the daemon's converger, which
// converges them as it converges anyone (match, plan, safeguard, LMS calls,
// audit); then it shows the audit rows the converger wrote, step by step.
func (s *Server) syncNow(w http.ResponseWriter, r *http.Request, u User, ss *session) {
	wk := personForm(r)
	if _, ok := s.d.Feeds[wk.Feed]; !ok || wk.WorkerID == "" {
		s.fail(w, r, ss, http.StatusBadRequest, "Name a configured feed and a worker id.")
		return
	}
	if !u.SeesFeed(wk.Feed) || !s.authoriseFeed(w, r, u, ss, wk.Feed) {
		if !u.SeesFeed(wk.Feed) {
			s.fail(w, r, ss, http.StatusForbidden, "This person is of a feed you may not see.")
		}
		return
	}
	if s.d.Wake == nil {
		s.fail(w, r, ss, http.StatusServiceUnavailable, "This console cannot reach a converger.")
		return
	}
	ctx := r.Context()
	start := s.now().Add(-time.Second) // the store's clock may round
	n, err := s.d.Store.MarkDue(ctx, []connector.WorkerKey{wk}, s.now())
	if err != nil {
		s.internal(w, r, ss, err)
		return
	}
	if n == 0 {
		s.fail(w, r, ss, http.StatusNotFound, "hrsync has no facts about this worker of this feed.")
		return
	}
	s.log.Info("console: sync now", "user", u.Name, "feed", wk.Feed)
	s.d.Wake()
	pending := !s.waitConverged(ctx, wk)
	p, ok := s.loadPerson(w, r, u, ss, wk)
	if !ok {
		return
	}
	p.Synced, p.Pending = true, pending
	for _, e := range p.Audit {
		if !e.At.Before(start) {
			p.Steps = append([]connector.AuditEntry{e}, p.Steps...)
		}
	}
	s.render(w, http.StatusOK, "person", s.viewFor(ss, "A person", p))
}

// waitConverged polls, within syncWait, until wk is neither due nor leased:
// the converger has claimed, converged and completed it. It reports whether
// that happened.
func (s *Server) waitConverged(ctx context.Context, wk connector.WorkerKey) bool {
	ctx, cancel := context.WithTimeout(ctx, syncWait)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		due, leased, err := s.d.Store.WorkerSchedule(ctx, wk)
		now := s.now()
		if err == nil && (due == nil || due.After(now)) && (leased == nil || !leased.After(now)) {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
}
