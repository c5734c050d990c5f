package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/person"
	"github.com/hrsync/hrsync/connector"
)

// A person's page: their facts in time order, what hrsync wants for them, the
// plan against their LMS account as it is now, and their audit trail; "sync
// now" converges them there and then through the daemon's converger
// (person.Apply, as "hrsync explain --apply" does) and shows each step: the
// match, the plan, the LMS calls and the result. The page is reached by a POST
// form, so that the worker id is in no URL.

// syncWait bounds "sync now": the LMS calls, and a removal's burst settle
// (safeguard.settle, 30 s by default) that person.Apply waits for.
const syncWait = time.Minute

// personPage is one person's story (shared with "hrsync explain") and what
// the page does with it.
type personPage struct {
	person.Story
	MayAct bool
	Feeds  []string
	// Sync is what "sync now" did, with the match and plan it started from;
	// nil before.
	Sync *syncResult
}

// syncResult is "sync now": the story before (its match and plan), and what
// converging did, or why it did not.
type syncResult struct {
	Match   string
	Account *connector.Account
	Plan    []connector.Action
	Done    *person.Applied
	// Err says why the converge did not happen or failed (retried at Done.NextDue).
	Err string
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

// sources are what a person's story is read from.
func (s *Server) sources() person.Sources {
	return person.Sources{Store: s.d.Store, Feeds: s.d.Feeds, LMS: s.d.LMS, Policy: s.d.Policy}
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
	story, err := person.Tell(r.Context(), s.sources(), wk, s.now(), auditLimit)
	if errors.Is(err, connector.ErrNotFound) {
		s.fail(w, r, ss, http.StatusNotFound, "hrsync has no facts about this worker of this feed.")
		return p, false
	}
	if err != nil {
		s.internal(w, r, ss, err)
		return p, false
	}
	p.Story = story
	p.MayAct = u.MayDecide(wk.Feed) && s.d.Converger != nil
	if s.d.LMS == nil {
		p.LMSErr = "this console has no LMS to read"
	}
	return p, true
}

// syncNow converges the person now through the daemon's converger (match,
// plan, safeguard, LMS calls, audit, as it converges anyone) and shows each
// step: the match and plan it started from, the audit rows it wrote (one per
// LMS call, or the hold or review that stopped it) and the account after.
func (s *Server) syncNow(w http.ResponseWriter, r *http.Request, u User, ss *session) {
	wk := personForm(r)
	if _, ok := s.d.Feeds[wk.Feed]; !ok || wk.WorkerID == "" {
		s.fail(w, r, ss, http.StatusBadRequest, "Name a configured feed and a worker id.")
		return
	}
	if !u.SeesFeed(wk.Feed) {
		s.fail(w, r, ss, http.StatusForbidden, "This person is of a feed you may not see.")
		return
	}
	if !s.authoriseFeed(w, r, u, ss, wk.Feed) {
		return
	}
	if s.d.Converger == nil {
		s.fail(w, r, ss, http.StatusServiceUnavailable, "This console cannot reach a converger.")
		return
	}
	before, ok := s.loadPerson(w, r, u, ss, wk)
	if !ok {
		return
	}
	res := &syncResult{Match: before.Match, Account: before.Account, Plan: before.Plan}
	ctx, cancel := context.WithTimeout(r.Context(), syncWait)
	defer cancel()
	s.log.Info("console: sync now", "user", u.Name, "feed", wk.Feed)
	done, err := person.Apply(ctx, s.d.Converger, s.sources(), before.Story, s.d.Settle, s.now, auditLimit, nil)
	switch {
	case errors.Is(err, connector.ErrWorkerBusy):
		res.Err = "The daemon is converging this person right now (or they were rehired under a new id); reload in a moment."
	case errors.Is(err, context.DeadlineExceeded):
		res.Err = fmt.Sprintf("Sync now stopped waiting after %s (the LMS may be slow or rate-limited); the daemon finishes it.", syncWait)
	case err != nil:
		// A failed converge is committed as a failed attempt and retried.
		// The converger logged the failure with the worker; the console's log
		// names no worker.
		s.log.Warn("console: sync now failed", "user", u.Name, "feed", wk.Feed)
		res.Err = "The converge failed and is retried: " + err.Error()
	}
	res.Done = done
	p, ok := s.loadPerson(w, r, u, ss, wk)
	if !ok {
		return
	}
	p.Sync = res
	s.render(w, http.StatusOK, "person", s.viewFor(ss, "A person", p))
}
