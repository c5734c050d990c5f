package roster

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/events"
)

// Limits bound what the admin API lets one client cost: the size of an upload,
// how many uploads a token has in flight, and how long a connection may take at
// each stage. docs/admin-api.md is the user's view.
type Limits struct {
	// MaxUpload is the largest roster body, in bytes: larger answers 413.
	MaxUpload int64
	// UploadsPerToken is how many uploads one token may have in flight; one more
	// answers 429, so one feed cannot tie up the API for the others.
	UploadsPerToken int
	// The http.Server timeouts: ReadHeaderTimeout for the request line and
	// headers, ReadTimeout for the whole request with its body, WriteTimeout from
	// the end of the headers to the end of the response, IdleTimeout between
	// requests on a kept-alive connection.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
}

// DefaultLimits are the limits when nothing is configured.
func DefaultLimits() Limits {
	return Limits{MaxUpload: 64 << 20, UploadsPerToken: 2, ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 5 * time.Minute, WriteTimeout: 10 * time.Minute, IdleTimeout: time.Minute}
}

// OrDefaults fills the zero fields of l from DefaultLimits.
func (l Limits) OrDefaults() Limits {
	d := DefaultLimits()
	if l.MaxUpload <= 0 {
		l.MaxUpload = d.MaxUpload
	}
	if l.UploadsPerToken <= 0 {
		l.UploadsPerToken = d.UploadsPerToken
	}
	for _, p := range []struct {
		v *time.Duration
		d time.Duration
	}{{&l.ReadHeaderTimeout, d.ReadHeaderTimeout},
		{&l.ReadTimeout, d.ReadTimeout}, {&l.WriteTimeout, d.WriteTimeout}, {&l.IdleTimeout, d.IdleTimeout}} {
		if *p.v <= 0 {
			*p.v = p.d
		}
	}
	return l
}

// NewAdminServer is the admin port's server, serving h, with every timeout of l
// set: without them a client that sends its headers or its body a byte at a time
// holds a connection (and a goroutine) for as long as it likes, with or without
// a token.
func NewAdminServer(h http.Handler, l Limits) *http.Server {
	l = l.OrDefaults()
	return &http.Server{Handler: h, ReadHeaderTimeout: l.ReadHeaderTimeout, ReadTimeout: l.ReadTimeout,
		WriteTimeout: l.WriteTimeout, IdleTimeout: l.IdleTimeout, MaxHeaderBytes: 64 << 10}
}

// API serves POST /v1/feeds/{feed}/rosters on the admin port.
//
// Every request needs "Authorization: Bearer TOKEN" (the scheme in any case). The
// admin token may upload to any feed; a feed's upload token (configured as
// roster.upload_token_sha256) only to that feed. Tokens are compared in constant
// time, by their SHA-256, and never logged; neither is personal data at info
// level.
//
// A request is checked (token, feed, declared size, uploads in flight) before a
// byte of its body is read, and a refusal closes the connection, so that nobody
// without a token can make the server read a body. The body is read as a stream
// (see Uploader.Upload) and cut off at Limits.MaxUpload.
type API struct {
	Uploader *Uploader
	// AdminToken may upload to any feed; empty: no admin token.
	AdminToken string
	Log        *slog.Logger
	// Limits bound each request; zero fields: DefaultLimits.
	Limits Limits

	mu       sync.Mutex
	inFlight map[string]int // uploads in flight by caller
}

// caller is who a token belongs to: "admin" or "feed:<name>".
func (a *API) caller(r *http.Request) (string, bool) {
	return Tokens{Admin: a.AdminToken, Feeds: a.Uploader.Feeds, Rosters: a.Uploader.Rosters}.Caller(r)
}

// Tokens are the admin API's bearer tokens: the admin token, for every feed,
// and each feed's own token (its SHA-256 is roster.upload_token_sha256), for
// that feed only. The roster uploads and the HTTP door for events
// (docs/http-door.md) share them.
type Tokens struct {
	// Admin may act for any feed; empty: no admin token.
	Admin string
	Feeds connector.Feeds
	// Rosters hold the feeds' token hashes.
	Rosters map[string]Config
}

// Caller returns who r's bearer token belongs to: "admin" or "feed:<name>";
// false if r has none, or one nobody has. Tokens are compared in constant time,
// by their SHA-256, and every feed's hash is checked whether or not an earlier
// one matched, so the time taken does not say which feed a token belongs to.
func (t Tokens) Caller(r *http.Request) (string, bool) {
	// RFC 7235 §2.1: the scheme is case-insensitive; credentials follow 1*SP.
	scheme, tok, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	tok = strings.TrimLeft(tok, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", false
	}
	if t.Admin != "" {
		got, want := sha256.Sum256([]byte(tok)), sha256.Sum256([]byte(t.Admin))
		if subtle.ConstantTimeCompare(got[:], want[:]) == 1 {
			return "admin", true
		}
	}
	who := ""
	for _, name := range t.Feeds.Names() {
		if tokenMatches(tok, t.Rosters[name].UploadTokenSHA256) && who == "" {
			who = "feed:" + name
		}
	}
	return who, who != ""
}

// acquire takes one of who's upload slots; false if they are all in use.
func (a *API) acquire(who string, max int) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.inFlight[who] >= max {
		return false
	}
	if a.inFlight == nil {
		a.inFlight = map[string]int{}
	}
	a.inFlight[who]++
	return true
}

func (a *API) release(who string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.inFlight[who]--; a.inFlight[who] <= 0 {
		delete(a.inFlight, who)
	}
}

// uploadRetryAfter is the Retry-After of a 429: about what an upload takes.
const uploadRetryAfter = "30"

// authorize checks the caller's token for feed and answers the refusal; ok is
// false when it did.
func (a *API) authorize(w http.ResponseWriter, r *http.Request, feed string) (who string, ok bool) {
	fail := func(status int, msg string) {
		hangUp(w)
		apiError(w, status, msg)
	}
	who, ok = a.caller(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="hrsync"`)
		fail(http.StatusUnauthorized, "a valid bearer token is required")
		return "", false
	}
	if who != "admin" && who != "feed:"+feed {
		a.Log.Warn("roster request refused: token of another feed", "caller", who, "feed", feed, "path", r.URL.Path)
		fail(http.StatusForbidden, "this token may not upload to feed "+feed)
		return "", false
	}
	if _, known := a.Uploader.Feeds[feed]; !known {
		fail(http.StatusNotFound, "feed "+feed+" is not configured")
		return "", false
	}
	return who, true
}

// ReportHandler serves GET /v1/feeds/{feed}/rosters/{id}/report: the report
// of an upload (the line, column, problem, fix and effect of each row not
// applied), as ?format=json (default), csv or xlsx, to the admin token or the
// feed's own.
func (a *API) ReportHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		feed := r.PathValue("feed")
		if _, ok := a.authorize(w, r, feed); !ok {
			return
		}
		format := r.URL.Query().Get("format")
		if format == "" {
			format = "json"
		}
		if format != "json" && format != "csv" && format != "xlsx" {
			apiError(w, http.StatusBadRequest, fmt.Sprintf("format %q: want json, csv or xlsx", format))
			return
		}
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil {
			apiError(w, http.StatusNotFound, "no upload "+r.PathValue("id"))
			return
		}
		u, err := a.Uploader.Store.GetUpload(r.Context(), feed, id)
		if errors.Is(err, connector.ErrNotFound) {
			apiError(w, http.StatusNotFound, fmt.Sprintf("feed %s has no upload %d", feed, id))
			return
		}
		if err != nil {
			a.Log.Error("roster report", "feed", feed, "upload_id", id, "err", err)
			apiError(w, http.StatusInternalServerError, "the report cannot be read")
			return
		}
		rep, err := UploadReport(u)
		if err != nil {
			apiError(w, http.StatusInternalServerError, err.Error())
			return
		}
		w.Header().Set("Content-Type", ReportContentType(format))
		if format != "json" {
			w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="upload-%d-report.%s"`, id, format))
		}
		if err := WriteReport(w, rep, format); err != nil {
			a.Log.Warn("roster report: the answer was cut short", "feed", feed, "upload_id", id, "err", err)
		}
	})
}

// ReportPath is where the admin API serves the report of upload id of feed.
func ReportPath(feed string, id int64) string {
	return fmt.Sprintf("/v1/feeds/%s/rosters/%d/report", feed, id)
}

func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	lim := a.Limits.OrDefaults()
	feed := r.PathValue("feed")
	fail := func(status int, msg string) {
		hangUp(w)
		apiError(w, status, msg)
	}
	who, ok := a.authorize(w, r, feed)
	if !ok {
		return
	}
	tooBig := func() {
		hangUp(w)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": fmt.Sprintf("the roster is larger than the upload limit of %s (%d bytes; --admin-max-upload)",
			humanize.IBytes(uint64(lim.MaxUpload)), lim.MaxUpload), "limit_bytes": lim.MaxUpload})
	}
	if r.ContentLength > lim.MaxUpload {
		tooBig()
		return
	}
	if !a.acquire(who, lim.UploadsPerToken) {
		a.Log.Warn("roster upload refused: too many uploads in flight", "caller", who, "feed", feed, "limit", lim.UploadsPerToken)
		w.Header().Set("Retry-After", uploadRetryAfter)
		fail(http.StatusTooManyRequests, fmt.Sprintf("this token has %d uploads in flight, the limit: retry when one has finished", lim.UploadsPerToken))
		return
	}
	defer a.release(who)
	by := who
	if u := strings.TrimSpace(r.Header.Get("X-Hrsync-Uploaded-By")); u != "" {
		by += " (" + clipDetail(u) + ")"
	}
	q := r.URL.Query()
	res, err := a.Uploader.Upload(r.Context(), Request{Feed: feed, Mode: q.Get("mode"), Body: http.MaxBytesReader(w, r.Body, lim.MaxUpload),
		Filename: q.Get("filename"), By: by, Via: "http", DryRun: q.Get("dry_run") == "true"})
	defer res.Close()
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		tooBig()
		return
	case errors.Is(err, os.ErrDeadlineExceeded):
		fail(http.StatusRequestTimeout, fmt.Sprintf("the roster was not received within %s (--admin-read-timeout)", lim.ReadTimeout))
		return
	case errors.Is(err, errFeedClosed):
		a.Log.Warn("roster upload refused: feed closed", "feed", feed, "caller", who)
		fail(http.StatusForbidden, err.Error())
		return
	case errors.Is(err, errRosterInvalid):
		hangUp(w)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnprocessableEntity)
		out := map[string]any{"error": err.Error(), "rows": rosterErrors(err)}
		if res.UploadID != 0 {
			out["upload_id"], out["report"] = res.UploadID, ReportPath(feed, res.UploadID)
		}
		_ = json.NewEncoder(w).Encode(out)
		return
	case err != nil:
		a.Log.Error("roster upload failed", "feed", feed, "caller", who, "err", err)
		fail(http.StatusBadRequest, err.Error())
		return
	}
	status := http.StatusOK
	if res.Outcome == "held" {
		status = http.StatusAccepted
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if res.Outcome != "dry-run" {
		out := map[string]any{"result": res}
		if res.UploadID != 0 {
			out["report"] = ReportPath(feed, res.UploadID)
		}
		_ = json.NewEncoder(w).Encode(out)
		return
	}
	// A dry run answers with every event; they are read from the spool and
	// written one at a time, as {"events":[...],"result":{...}}.
	if err := writeDryRun(w, &res); err != nil {
		a.Log.Warn("roster dry run: the response was cut short", "feed", feed, "caller", who, "err", err)
	}
}

// hangUp makes a refusal the connection's last answer, and reads no more of the
// request: net/http would otherwise read (and discard) up to 256 KiB of a body
// nobody asked for, for keep-alive's sake, after the answer, as slowly as the
// client likes to send it. Call it before writing the answer.
func hangUp(w http.ResponseWriter) {
	w.Header().Set("Connection", "close")
	_ = http.NewResponseController(w).SetReadDeadline(time.Now())
}

// writeDryRun writes a dry run's answer without holding its events.
func writeDryRun(w io.Writer, res *Result) error {
	rb, err := json.Marshal(res)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	_, _ = bw.WriteString(`{"events":`)
	if err := writeEventsJSON(bw, res.EachEvent); err != nil {
		return err
	}
	_, _ = bw.WriteString(`,"result":`)
	_, _ = bw.Write(rb)
	_, _ = bw.WriteString("}\n")
	return bw.Flush()
}

// rosterErrors lists the line-by-line errors of an invalid roster.
func rosterErrors(err error) []events.RosterError {
	var re *events.RosterErrors
	if errors.As(err, &re) {
		return re.Errors
	}
	return nil
}

func apiError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
