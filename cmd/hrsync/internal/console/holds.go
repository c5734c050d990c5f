package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
)

// maxShown bounds the people a hold's page lists; the CLI's CSV has them all.
const maxShown = 1000

// holdRow is a hold as the list shows it.
type holdRow struct {
	connector.Hold
	MayDecide bool
}

func (s *Server) holds(w http.ResponseWriter, r *http.Request, u User, ss *session) {
	filter := store.HoldFilter{Limit: 200}
	if len(u.Feeds) == 1 {
		filter.Feed = u.Feeds[0]
	}
	hs, err := s.d.Store.ListHolds(r.Context(), filter)
	if err != nil {
		s.internal(w, r, ss, err)
		return
	}
	var rows []holdRow
	for _, h := range hs {
		if u.SeesFeed(h.Feed) {
			rows = append(rows, holdRow{Hold: h, MayDecide: u.MayDecide(h.Feed)})
		}
	}
	s.render(w, http.StatusOK, "holds", s.viewFor(ss, "Holds", rows))
}

// holdPage is one hold with the people or accounts it affects.
type holdPage struct {
	Hold      connector.Hold
	Workers   []connector.HeldWorker
	Items     []connector.JobItem
	Counts    map[connector.JobItemStatus]int
	Shown     int
	MayDecide bool
	// SelfCaused says why the signed-in user may not approve the hold (they
	// caused it, or approved it already); empty if they may.
	SelfCaused string
	IsJob      bool
	CanRun     bool
	Running    bool
}

// loadHold returns hold id if u may see it; otherwise it has answered.
func (s *Server) loadHold(w http.ResponseWriter, r *http.Request, u User, ss *session) (connector.Hold, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		s.fail(w, r, ss, http.StatusNotFound, "No such hold.")
		return connector.Hold{}, false
	}
	h, err := s.d.Store.GetHold(r.Context(), id)
	if errors.Is(err, connector.ErrNotFound) {
		s.fail(w, r, ss, http.StatusNotFound, "No such hold.")
		return connector.Hold{}, false
	}
	if err == nil && !u.SeesFeed(h.Feed) {
		s.log.Warn("console: hold of another feed refused", "path", r.URL.Path, "user", u.Name)
		s.fail(w, r, ss, http.StatusForbidden, "This hold is of a feed you may not see.")
		return connector.Hold{}, false
	}
	if err != nil {
		s.internal(w, r, ss, err)
		return connector.Hold{}, false
	}
	return h, true
}

func (s *Server) hold(w http.ResponseWriter, r *http.Request, u User, ss *session) {
	h, ok := s.loadHold(w, r, u, ss)
	if !ok {
		return
	}
	p := holdPage{Hold: h, MayDecide: u.MayDecide(h.Feed) && h.Status == connector.HoldOpen, IsJob: h.Kind.IsJob()}
	if err := h.CheckApprover(u.Name); err != nil {
		p.SelfCaused = fourEyesReason(err)
		if i := strings.Index(p.SelfCaused, ": four eyes"); i >= 0 {
			p.SelfCaused = p.SelfCaused[:i]
		}
	}
	var err error
	if p.IsJob {
		if p.Items, err = s.d.Store.JobItems(r.Context(), h.ID, 0, maxShown); err == nil {
			p.Counts, err = s.d.Store.JobCounts(r.Context(), h.ID)
		}
		p.Shown = len(p.Items)
		p.CanRun = s.d.RunJob != nil && u.MayDecide(h.Feed) && (h.Status == connector.HoldApproved || (h.Status == connector.HoldOpen && h.Sample > 0))
		s.runMu.Lock()
		p.Running = s.runs[h.ID]
		s.runMu.Unlock()
	} else {
		p.Workers, err = s.d.Store.HoldWorkers(r.Context(), h.ID, connector.WorkerKey{}, maxShown)
		p.Shown = len(p.Workers)
		if err == nil {
			err = s.fillAccounts(r.Context(), p.Workers)
		}
	}
	if err != nil {
		s.internal(w, r, ss, err)
		return
	}
	v := s.viewFor(ss, fmt.Sprintf("Hold %d", h.ID), p)
	v.Flash = flashes[r.URL.Query().Get("done")]
	s.render(w, http.StatusOK, "hold", v)
}

// flashes are the messages after a decision, named by a code in the URL (no
// personal data goes into a URL).
var flashes = map[string]string{
	"approved":          "Approved.",
	"published":         "Approved; the roster upload's events are published.",
	"approval":          "Your approval is recorded; the hold needs another approver.",
	"rejected":          "Rejected: the accounts stay as they are.",
	"sampled":           "The sample batch may run.",
	"sampled-live":      "The sample batch is due now: the daemon converges those people; the rest stay held.",
	"sampled-published": "The sample batch's leavers are published: the daemon deactivates them; the rest of the upload stays held.",
	"running":           "Running: this page shows the progress when reloaded.",
	"replayed":          "Replayed: its fact is recorded, and a running daemon converges the person.",
	"discarded":         "Discarded: it will never be replayed; it is kept for the record.",
	"resolved":          "Resolved: the person is due again, and the daemon converges them with the fix.",
}

// reasonOf returns the form's reason, or answers 400 without one.
func (s *Server) reasonOf(w http.ResponseWriter, r *http.Request, ss *session) (string, bool) {
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if reason == "" || len(reason) > 1000 {
		s.fail(w, r, ss, http.StatusBadRequest, "A reason (up to 1000 characters) is required: the decision is audited.")
		return "", false
	}
	return reason, true
}

// decideError answers a decision the store refused.
func (s *Server) decideError(w http.ResponseWriter, r *http.Request, ss *session, err error) {
	switch {
	case errors.Is(err, connector.ErrFourEyes):
		s.log.Warn("console: four eyes refused a decision", "path", r.URL.Path, "user", ss.user.Name)
		s.fail(w, r, ss, http.StatusForbidden, "Four eyes: "+fourEyesReason(err))
	case errors.Is(err, connector.ErrConflict):
		s.fail(w, r, ss, http.StatusConflict, "This hold was decided already; reload it.")
	default:
		s.internal(w, r, ss, err)
	}
}

// fourEyesReason is the store's reason, without the "store: ...:" prefixes.
func fourEyesReason(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "hold "); i >= 0 {
		msg = msg[i:]
	}
	return msg
}

// authorise answers 403 unless u may decide h.
func (s *Server) authorise(w http.ResponseWriter, r *http.Request, u User, ss *session, h connector.Hold) bool {
	return s.authoriseFeed(w, r, u, ss, h.Feed)
}

// authoriseFeed answers 403 unless u may act on feed.
func (s *Server) authoriseFeed(w http.ResponseWriter, r *http.Request, u User, ss *session, feed string) bool {
	if !u.MayDecide(feed) {
		s.log.Warn("console: action refused for the feed", "path", r.URL.Path, "user", u.Name, "feed", feed)
		s.fail(w, r, ss, http.StatusForbidden, "You may not act on this feed.")
		return false
	}
	return true
}

func (s *Server) decide(approve bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, u User, ss *session) {
		h, ok := s.loadHold(w, r, u, ss)
		if !ok || !s.authorise(w, r, u, ss, h) {
			return
		}
		reason, ok := s.reasonOf(w, r, ss)
		if !ok {
			return
		}
		h, err := s.d.Store.DecideHold(r.Context(), h.ID, connector.HoldDecision{Approve: approve, By: u.Name, Reason: reason})
		if err != nil {
			s.decideError(w, r, ss, err)
			return
		}
		s.log.Info("console: hold decided", "hold_id", h.ID, "status", h.Status, "user", u.Name)
		done := "rejected"
		switch {
		case h.Status == connector.HoldOpen:
			done = "approval"
		case h.Status == connector.HoldApproved && h.Kind == connector.HoldUpload:
			if s.d.PublishUpload == nil {
				s.fail(w, r, ss, http.StatusServiceUnavailable, fmt.Sprintf("Hold %d is approved, but this console cannot publish; run hrsync holds approve %d from the CLI to publish it.", h.ID, h.ID))
				return
			}
			if _, err := s.d.PublishUpload(r.Context(), h.ID); err != nil {
				s.internal(w, r, ss, fmt.Errorf("hold %d is approved, but publishing its upload failed (hrsync holds approve %d publishes it again): %w", h.ID, h.ID, err))
				return
			}
			done = "published"
		case h.Status == connector.HoldApproved:
			done = "approved"
		}
		http.Redirect(w, r, fmt.Sprintf("/holds/%d?done=%s", h.ID, done), http.StatusSeeOther)
	}
}

func (s *Server) sample(w http.ResponseWriter, r *http.Request, u User, ss *session) {
	h, ok := s.loadHold(w, r, u, ss)
	if !ok || !s.authorise(w, r, u, ss, h) {
		return
	}
	n, err := strconv.Atoi(strings.TrimSpace(r.PostFormValue("n")))
	if err != nil || n <= 0 {
		s.fail(w, r, ss, http.StatusBadRequest, "The sample size must be a positive number.")
		return
	}
	reason, ok := s.reasonOf(w, r, ss)
	if !ok {
		return
	}
	h, err = s.d.Store.AllowSample(r.Context(), h.ID, n, u.Name, reason)
	if err != nil {
		if errors.Is(err, connector.ErrFourEyes) || errors.Is(err, connector.ErrConflict) {
			s.decideError(w, r, ss, err)
			return
		}
		s.fail(w, r, ss, http.StatusBadRequest, fourEyesReason(err))
		return
	}
	s.log.Info("console: sample allowed", "hold_id", h.ID, "n", h.Sample, "user", u.Name)
	done := "sampled"
	switch h.Kind {
	case connector.HoldLive:
		done = "sampled-live"
	case connector.HoldUpload:
		// Only the sampled leavers' events are published; the rest of the upload
		// waits for the decision.
		if s.d.PublishSample == nil {
			s.fail(w, r, ss, http.StatusServiceUnavailable, fmt.Sprintf("The sample of hold %d is approved, but this console cannot publish; run hrsync holds approve %d --sample-batch %d from the CLI to publish it.", h.ID, h.ID, h.Sample))
			return
		}
		if _, err := s.d.PublishSample(r.Context(), h.ID); err != nil {
			s.internal(w, r, ss, fmt.Errorf("the sample of hold %d is approved, but publishing its leavers failed (hrsync holds approve %d --sample-batch %d publishes them again): %w", h.ID, h.ID, h.Sample, err))
			return
		}
		done = "sampled-published"
	}
	http.Redirect(w, r, fmt.Sprintf("/holds/%d?done=%s", h.ID, done), http.StatusSeeOther)
}

// run starts the approved part of a job hold in the background, once at a time
// per hold in this process; the hold's page shows its progress.
func (s *Server) run(w http.ResponseWriter, r *http.Request, u User, ss *session) {
	h, ok := s.loadHold(w, r, u, ss)
	if !ok || !s.authorise(w, r, u, ss, h) {
		return
	}
	if s.d.RunJob == nil || !h.Kind.IsJob() || !(h.Status == connector.HoldApproved || (h.Status == connector.HoldOpen && h.Sample > 0)) {
		s.fail(w, r, ss, http.StatusConflict, "Nothing of this hold may run: approve it, or a sample batch, first.")
		return
	}
	s.runMu.Lock()
	if s.runs[h.ID] {
		s.runMu.Unlock()
		http.Redirect(w, r, fmt.Sprintf("/holds/%d?done=running", h.ID), http.StatusSeeOther)
		return
	}
	s.runs[h.ID] = true
	s.runMu.Unlock()
	s.log.Info("console: hold run started", "hold_id", h.ID, "user", u.Name)
	go func(id int64) {
		defer func() {
			s.runMu.Lock()
			delete(s.runs, id)
			s.runMu.Unlock()
		}()
		if err := s.d.RunJob(s.ctx, id); err != nil && !errors.Is(err, context.Canceled) {
			s.log.Error("console: hold run failed", "hold_id", id, "err", err)
		}
	}(h.ID)
	http.Redirect(w, r, fmt.Sprintf("/holds/%d?done=running", h.ID), http.StatusSeeOther)
}

// Running reports whether a run of hold id, started here, is in progress.
func (s *Server) Running(id int64) bool {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	return s.runs[id]
}

// fillAccounts names the LMS account of each held person the hold does not
// name (an upload is held before its facts are recorded): their link's.
func (s *Server) fillAccounts(ctx context.Context, ws []connector.HeldWorker) error {
	var keys []connector.WorkerKey
	for _, w := range ws {
		if w.AccountID == "" {
			keys = append(keys, w.Worker)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	links, err := s.d.Store.LinksOf(ctx, keys)
	if err != nil {
		return err
	}
	for i := range ws {
		if ws[i].AccountID == "" {
			ws[i].AccountID = links[ws[i].Worker]
		}
	}
	return nil
}
