package console

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/roster"
	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/events"
)

// A roster upload from the console is two requests: the file, which is read
// as a stream into a temporary file and run as a dry run (roster.Uploader, the
// same use case as the CLI and the admin API), and the confirmation, which
// uploads that same file for real, by the signed-in user. Between the two the
// file waits on the server, one per session, for at most pendingTTL.

// pendingTTL is how long a dry run's file waits for its confirmation.
const pendingTTL = time.Hour

// maxListed is how many people of each kind a dry run's page names; the rest
// are counted.
const maxListed = 200

// pendingUpload is a dry run's file, waiting to be confirmed.
type pendingUpload struct {
	id, feed, mode, filename, path string
	at                             time.Time
}

// uploads are the pending uploads, by session (its key). The file is kept by
// the process that made the dry run: behind several replicas, its confirmation
// must reach the same one (docs/console.md).
type uploads struct {
	mu sync.Mutex
	m  map[string]*pendingUpload
}

// put keeps p as ss's pending upload, removing the one it replaces and any
// that waited longer than pendingTTL.
func (us *uploads) put(ss *session, p *pendingUpload, now time.Time) {
	us.mu.Lock()
	defer us.mu.Unlock()
	if us.m == nil {
		us.m = map[string]*pendingUpload{}
	}
	for k, v := range us.m {
		if k == ss.key || now.Sub(v.at) > pendingTTL {
			_ = os.Remove(v.path)
			delete(us.m, k)
		}
	}
	us.m[ss.key] = p
}

// take removes and returns ss's pending upload if its id is id.
func (us *uploads) take(ss *session, id string, now time.Time) (*pendingUpload, bool) {
	us.mu.Lock()
	defer us.mu.Unlock()
	p, ok := us.m[ss.key]
	if !ok || !tokensEqual(id, p.id) {
		return nil, false
	}
	delete(us.m, ss.key)
	if now.Sub(p.at) > pendingTTL {
		_ = os.Remove(p.path)
		return nil, false
	}
	return p, true
}

// uploadFeeds are the feeds u may upload to: those whose holds they decide.
func (s *Server) uploadFeeds(u User) []string {
	var out []string
	for _, f := range s.d.Feeds.Names() {
		if u.MayDecide(f) {
			out = append(out, f)
		}
	}
	return out
}

type uploadForm struct {
	Feeds []string
}

func (s *Server) uploadPage(w http.ResponseWriter, r *http.Request, u User, ss *session) {
	if s.d.Uploader == nil {
		s.fail(w, r, ss, http.StatusNotFound, "Roster uploads are not enabled in this console.")
		return
	}
	s.render(w, http.StatusOK, "upload", s.viewFor(ss, "Upload a roster", uploadForm{Feeds: s.uploadFeeds(u)}))
}

// dryRun is what the dry run's page shows.
type dryRun struct {
	Feed, Filename, Mode, Pending string
	Summary                       events.RosterSummary
	Sentence                      string
	Joiners, Leavers, Changes     []events.Data
	Rehires                       []events.Data
	More                          int // people not named (maxListed of each kind)
	Problems                      []events.RosterError
	ProblemsMore                  int
	Error                         string
	Rows                          []events.RosterError // a refused file's errors
}

// uploadDryRun reads a multipart form whose parts come in the order the page
// sends them (csrf, feed, mode, file), so that the token, the role and the feed
// are checked before a byte of the file is read, and the file is streamed to a
// temporary file, cut off at the admin API's upload limit.
func (s *Server) uploadDryRun(w http.ResponseWriter, r *http.Request) {
	ss, ok, answered := s.signedIn(w, r)
	if answered {
		return
	}
	if !ok {
		s.fail(w, r, nil, http.StatusForbidden, "Sign in first.")
		return
	}
	if s.d.Uploader == nil {
		s.fail(w, r, ss, http.StatusNotFound, "Roster uploads are not enabled in this console.")
		return
	}
	refuse := func(status int, msg string) {
		w.Header().Set("Connection", "close")
		s.fail(w, r, ss, status, msg)
	}
	limit := roster.Limits{MaxUpload: s.d.MaxUpload}.OrDefaults().MaxUpload
	r.Body = http.MaxBytesReader(w, r.Body, limit+64<<10)
	mr, err := r.MultipartReader()
	if err != nil {
		refuse(http.StatusBadRequest, "The upload is not a form with a file.")
		return
	}
	field := func(name string, max int64) (string, bool) {
		p, err := mr.NextPart()
		if err != nil || p.FormName() != name {
			return "", false
		}
		b, err := io.ReadAll(io.LimitReader(p, max+1))
		if err != nil || int64(len(b)) > max {
			return "", false
		}
		return string(b), true
	}
	tok, ok := field("csrf", 256)
	if !ok || !tokensEqual(tok, ss.csrf) {
		s.log.Warn("console: upload without a valid CSRF token refused", "user", ss.user.Name)
		refuse(http.StatusForbidden, "This form has expired or did not come from the console. Reload the page and try again.")
		return
	}
	u := ss.user
	feed, ok := field("feed", 256)
	if !ok || !u.MayDecide(feed) {
		s.log.Warn("console: upload refused for the role or the feed", "user", u.Name, "feed", feed)
		refuse(http.StatusForbidden, fmt.Sprintf("You (%s) may not upload a roster to feed %q.", u.Role, feed))
		return
	}
	if _, known := s.d.Feeds[feed]; !known {
		refuse(http.StatusNotFound, "Feed "+feed+" is not configured.")
		return
	}
	mode, ok := field("mode", 64)
	if !ok {
		refuse(http.StatusBadRequest, "The form has no mode.")
		return
	}
	p, err := mr.NextPart()
	if err != nil || p.FormName() != "file" {
		refuse(http.StatusBadRequest, "Choose a file to upload.")
		return
	}
	filename := p.FileName()
	f, err := os.CreateTemp("", "hrsync-console-roster-*")
	if err != nil {
		s.internal(w, r, ss, err)
		return
	}
	keep := false
	defer func() {
		if !keep {
			f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if _, err := io.Copy(f, io.LimitReader(p, limit+1)); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			refuse(http.StatusRequestEntityTooLarge, fmt.Sprintf("The file is larger than the upload limit of %d bytes.", limit))
			return
		}
		refuse(http.StatusBadRequest, "The file was not received whole: "+err.Error())
		return
	}
	if n, _ := f.Seek(0, io.SeekCurrent); n > limit {
		refuse(http.StatusRequestEntityTooLarge, fmt.Sprintf("The file is larger than the upload limit of %d bytes.", limit))
		return
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		s.internal(w, r, ss, err)
		return
	}
	res, err := s.d.Uploader.Upload(r.Context(), roster.Request{Feed: feed, Mode: mode, Body: f, Filename: filename,
		By: u.Name, Via: "console", DryRun: true})
	defer res.Close()
	d := dryRun{Feed: feed, Filename: filename, Mode: mode}
	if err != nil {
		d.Error = err.Error()
		var re *events.RosterErrors
		if errors.As(err, &re) {
			d.Error, d.Rows = "The file was refused: nothing of it can be applied. Fix the problems below and choose the file again.", re.Errors
		}
		s.render(w, http.StatusUnprocessableEntity, "dryrun", s.viewFor(ss, "Dry run", d))
		return
	}
	d.Summary = res.Summary
	rep := roster.ResultReport(&res, filename)
	d.Sentence, d.Problems, d.ProblemsMore = rep.Summary(), rep.Problems, rep.Total-len(rep.Problems)
	if err := res.EachEvent(func(e events.Event) error {
		var list *[]events.Data
		switch e.Kind {
		case connector.KindHired:
			list = &d.Joiners
		case connector.KindRehired:
			list = &d.Rehires
		case connector.KindLeft:
			list = &d.Leavers
		case connector.KindUpdated:
			list = &d.Changes
		default:
			return nil
		}
		if len(*list) < maxListed {
			*list = append(*list, e.Data)
		} else {
			d.More++
		}
		return nil
	}); err != nil {
		s.internal(w, r, ss, err)
		return
	}
	if err := f.Close(); err != nil {
		s.internal(w, r, ss, err)
		return
	}
	d.Pending, keep = randomToken(), true
	s.pending.put(ss, &pendingUpload{id: d.Pending, feed: feed, mode: mode, filename: filename, path: f.Name(), at: s.now()}, s.now())
	s.log.Info("console: roster dry run", "user", u.Name, "feed", feed, "rows", res.Summary.Rows, "invalid", res.Summary.Invalid)
	s.render(w, http.StatusOK, "dryrun", s.viewFor(ss, "Dry run", d))
}

// uploaded is what the confirmation's page shows.
type uploaded struct {
	Feed, Filename string
	Result         roster.Result
	Sentence       string
}

// uploadConfirm uploads the file of the session's dry run for real.
func (s *Server) uploadConfirm(w http.ResponseWriter, r *http.Request, u User, ss *session) {
	if s.d.Uploader == nil {
		s.fail(w, r, ss, http.StatusNotFound, "Roster uploads are not enabled in this console.")
		return
	}
	p, ok := s.pending.take(ss, r.PostFormValue("pending"), s.now())
	if !ok {
		s.fail(w, r, ss, http.StatusConflict, "This dry run is no longer waiting (confirmed already, replaced by another, older than an hour, or made on another replica of the console). Upload the file again.")
		return
	}
	defer os.Remove(p.path)
	if !u.MayDecide(p.feed) {
		s.fail(w, r, ss, http.StatusForbidden, fmt.Sprintf("You may not upload a roster to feed %q.", p.feed))
		return
	}
	f, err := os.Open(p.path)
	if err != nil {
		s.internal(w, r, ss, err)
		return
	}
	defer f.Close()
	res, err := s.d.Uploader.Upload(r.Context(), roster.Request{Feed: p.feed, Mode: p.mode, Body: f, Filename: p.filename,
		By: u.Name, Via: "console"})
	defer res.Close()
	if err != nil {
		s.log.Warn("console: roster upload failed", "user", u.Name, "feed", p.feed, "upload_id", res.UploadID, "err", err)
		v := s.viewFor(ss, "Upload refused", nil)
		v.Error = err.Error()
		s.render(w, http.StatusUnprocessableEntity, "error", v)
		return
	}
	s.log.Info("console: roster uploaded", "user", u.Name, "feed", p.feed, "upload_id", res.UploadID, "outcome", res.Outcome,
		"hold_id", res.HoldID)
	rep := roster.ResultReport(&res, p.filename)
	s.render(w, http.StatusOK, "uploaded", s.viewFor(ss, "Roster uploaded", uploaded{Feed: p.feed, Filename: p.filename,
		Result: res, Sentence: rep.Summary()}))
}

// displayName is a person's name as a page shows it.
func displayName(d events.Data) string {
	return strings.TrimSpace(d.GivenName + " " + d.FamilyName)
}
