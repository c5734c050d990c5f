package main

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/hrsync/hrsync/events"
)

// maxRosterBytes bounds one uploaded roster file (a million rows fit).
const maxRosterBytes = 256 << 20

// adminAPI serves POST /v1/feeds/{feed}/rosters on the admin port.
//
// Every request needs "Authorization: Bearer TOKEN". The admin token may upload to
// any feed; a feed's upload token (configured as roster.upload_token_sha256) only
// to that feed. Tokens are compared in constant time, by their SHA-256, and never
// logged; neither is personal data at info level.
type adminAPI struct {
	up         *uploader
	adminToken string // empty: no admin token
	log        *slog.Logger
}

// caller is who a token belongs to: "admin" or "feed:<name>".
func (a *adminAPI) caller(r *http.Request) (string, bool) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return "", false
	}
	if a.adminToken != "" {
		got, want := sha256.Sum256([]byte(tok)), sha256.Sum256([]byte(a.adminToken))
		if subtle.ConstantTimeCompare(got[:], want[:]) == 1 {
			return "admin", true
		}
	}
	// Check every feed, matched or not, so the time taken says nothing about
	// which feed a token belongs to.
	who := ""
	for _, name := range a.up.feeds.Names() {
		if tokenMatches(tok, a.up.rosters[name].UploadTokenSHA256) && who == "" {
			who = "feed:" + name
		}
	}
	return who, who != ""
}

func (a *adminAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	feed := r.PathValue("feed")
	who, ok := a.caller(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="hrsync"`)
		apiError(w, http.StatusUnauthorized, "a valid bearer token is required")
		return
	}
	if who != "admin" && who != "feed:"+feed {
		a.log.Warn("roster upload refused: token of another feed", "caller", who, "feed", feed)
		apiError(w, http.StatusForbidden, "this token may not upload to feed "+feed)
		return
	}
	if _, known := a.up.feeds[feed]; !known {
		apiError(w, http.StatusNotFound, "feed "+feed+" is not configured")
		return
	}
	by := who
	if u := strings.TrimSpace(r.Header.Get("X-Hrsync-Uploaded-By")); u != "" {
		by += " (" + clipDetail(u) + ")"
	}
	q := r.URL.Query()
	res, err := a.up.upload(r.Context(), uploadRequest{Feed: feed, Mode: q.Get("mode"), Body: http.MaxBytesReader(w, r.Body, maxRosterBytes),
		Filename: q.Get("filename"), By: by, Via: "http", DryRun: q.Get("dry_run") == "true"})
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		apiError(w, http.StatusRequestEntityTooLarge, "the roster is larger than 256 MiB")
		return
	case errors.Is(err, errFeedClosed):
		a.log.Warn("roster upload refused: feed closed", "feed", feed, "caller", who)
		apiError(w, http.StatusForbidden, err.Error())
		return
	case errors.Is(err, errRosterInvalid):
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnprocessableEntity)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": err.Error(), "rows": rosterErrors(err)})
		return
	case err != nil:
		a.log.Error("roster upload failed", "feed", feed, "caller", who, "err", err)
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	status := http.StatusOK
	if res.Outcome == "held" {
		status = http.StatusAccepted
	}
	body := map[string]any{"result": res}
	if res.Outcome == "dry-run" {
		body["events"] = res.Events
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
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
