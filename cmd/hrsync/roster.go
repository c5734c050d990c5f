package main

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/events"
	"github.com/hrsync/hrsync/store"
)

// rosterConfig is a feed's roster settings in the configuration file.
type rosterConfig struct {
	// Mode is the default upload mode: snapshot or delta.
	Mode string `yaml:"mode"`
	// Columns maps the file's header names to contract fields.
	Columns map[string]string `yaml:"columns"`
	// UploadTokenSHA256 is the hex SHA-256 of the token that may upload to this
	// feed (and only this feed) over HTTP. The token itself is never configured.
	UploadTokenSHA256 string `yaml:"upload_token_sha256"`
}

// uploader turns a roster file into published events, or into a hold when the
// removals it implies cross the feed's threshold. The CLI and the admin HTTP API
// share it, so that both validate, guard and record alike.
type uploader struct {
	db         *store.DB
	js         jetstream.JetStream // nil: dry runs only
	feeds      connector.Feeds
	rosters    map[string]rosterConfig
	thresholds func(feed string) connector.Thresholds
	now        func() time.Time
	log        *slog.Logger
}

// uploadRequest is one upload.
type uploadRequest struct {
	Feed     string
	Mode     string // empty: the feed's configured mode
	Body     io.Reader
	Filename string
	By       string
	Via      string // cli or http
	DryRun   bool
	Progress func(rows int)
}

// uploadResult is what an upload did.
type uploadResult struct {
	UploadID  int64                `json:"upload_id,omitempty"`
	Feed      string               `json:"feed"`
	Outcome   string               `json:"outcome"` // dry-run, published, held, unchanged
	Summary   events.RosterSummary `json:"summary"`
	Published int                  `json:"published"`
	HoldID    int64                `json:"hold_id,omitempty"`
	Reason    string               `json:"reason,omitempty"`
	Events    []events.Event       `json:"-"`
}

// errRosterInvalid marks an upload refused for its content: the caller shows the
// line-by-line errors, and the HTTP API answers 422.
var errRosterInvalid = errors.New("roster invalid")

// errFeedClosed marks an upload to an offboarded feed: the HTTP API answers 403,
// whatever the token.
var errFeedClosed = errors.New("the feed is closed; its uploads and tokens are refused")

func (u *uploader) upload(ctx context.Context, req uploadRequest) (uploadResult, error) {
	res := uploadResult{Feed: req.Feed}
	feed, ok := u.feeds[req.Feed]
	if !ok {
		return res, fmt.Errorf("feed %q is not configured (configured: %v)", req.Feed, u.feeds.Names())
	}
	if c, closed, err := u.db.FeedClosed(ctx, req.Feed); err != nil {
		return res, err
	} else if closed {
		return res, fmt.Errorf("feed %s was closed on %s by %s (offboarded in hold %d): %w", req.Feed,
			c.ClosedAt.UTC().Format(time.DateOnly), c.ClosedBy, c.HoldID, errFeedClosed)
	}
	rc := u.rosters[req.Feed]
	modeName := req.Mode
	if modeName == "" {
		modeName = rc.Mode
	}
	if modeName == "" {
		return res, fmt.Errorf("the upload mode is required: snapshot (the file is the whole roster) or delta (an action column of add or remove)")
	}
	mode, err := events.ParseRosterMode(modeName)
	if err != nil {
		return res, err
	}
	mapping := events.DefaultRosterMapping()
	if len(rc.Columns) > 0 {
		mapping = events.RosterMapping{Columns: rc.Columns}
	}
	roster, err := events.ParseRoster(req.Body, mapping, events.RosterOptions{Mode: mode, Progress: req.Progress})
	if err != nil {
		if !req.DryRun {
			u.record(ctx, req, store.Upload{Mode: string(mode), Outcome: "rejected", Detail: clipDetail(err.Error())})
		}
		return res, fmt.Errorf("%w: %w", errRosterInvalid, err)
	}
	now := u.now()
	members, err := feedMembers(ctx, u.db, req.Feed, now)
	if err != nil {
		return res, err
	}
	evs, sum, err := roster.Events(feed, members, events.UploadInfo{SHA256: roster.SHA256, Time: now})
	if err != nil {
		return res, fmt.Errorf("%w: %w", errRosterInvalid, err)
	}
	res.Summary, res.Events = sum, evs
	rec := store.Upload{Mode: string(mode), SHA256: roster.SHA256, Rows: sum.Rows, Active: sum.Active, Hires: sum.Hires,
		Rehires: sum.Rehires, Leavers: sum.Leavers, Updates: sum.Updates, Unchanged: sum.Unchanged}

	if req.DryRun {
		res.Outcome = "dry-run"
		return res, nil
	}
	if held, reason := u.thresholds(req.Feed).Exceeded(sum.Leavers, sum.Active); held {
		// Held whole: nothing of it is published until a person approves.
		payload, err := json.Marshal(evs)
		if err != nil {
			return res, err
		}
		h := connector.Hold{Feed: req.Feed, Kind: connector.HoldUpload,
			Reason:  fmt.Sprintf("roster upload %s by %s: %s", orDash(req.Filename), orDash(req.By), reason),
			Counts:  connector.HoldCounts{Removals: sum.Leavers, Deactivations: sum.Leavers, Active: sum.Active},
			Payload: payload}
		for _, e := range evs {
			if e.Kind == connector.KindLeft {
				h.Workers = append(h.Workers, connector.HeldWorker{Worker: connector.WorkerKey{Feed: req.Feed, WorkerID: e.Data.WorkerID},
					Action: connector.ActionDeactivate, At: now})
			}
		}
		id, err := u.db.CreateHold(ctx, h)
		if err != nil {
			return res, err
		}
		res.Outcome, res.HoldID, res.Reason = "held", id, reason
		rec.Outcome, rec.HoldID, rec.Detail = "held", &id, reason
		res.UploadID = u.record(ctx, req, rec)
		u.log.Warn("roster upload held", "feed", req.Feed, "hold_id", id, "upload_id", res.UploadID, "reason", reason)
		return res, nil
	}
	if len(evs) == 0 {
		res.Outcome, rec.Outcome = "unchanged", "unchanged"
		res.UploadID = u.record(ctx, req, rec)
		return res, nil
	}
	n, err := publishEvents(ctx, u.js, evs)
	res.Published = n
	if err != nil {
		rec.Outcome, rec.Detail = "failed", clipDetail(fmt.Sprintf("published %d of %d events: %v", n, len(evs), err))
		res.UploadID = u.record(ctx, req, rec)
		return res, fmt.Errorf("published %d of %d events (uploading the same file again is safe: event ids are deterministic): %w", n, len(evs), err)
	}
	res.Outcome, rec.Outcome = "published", "published"
	res.UploadID = u.record(ctx, req, rec)
	u.log.Info("roster upload published", "feed", req.Feed, "upload_id", res.UploadID, "events", n,
		"hires", sum.Hires, "rehires", sum.Rehires, "leavers", sum.Leavers, "updates", sum.Updates)
	return res, nil
}

// record keeps the upload; a failure to record is logged, not fatal: the events
// (or the hold) are what matters, and they are durable already.
func (u *uploader) record(ctx context.Context, req uploadRequest, rec store.Upload) int64 {
	rec.Feed, rec.Filename, rec.By, rec.Via = req.Feed, req.Filename, req.By, req.Via
	id, err := u.db.RecordUpload(ctx, rec)
	if err != nil {
		u.log.Error("could not record the upload", "feed", req.Feed, "err", err)
	}
	return id
}

// publishEvents publishes evs to JetStream and waits for every ack. It returns
// how many were acknowledged.
func publishEvents(ctx context.Context, js jetstream.JetStream, evs []events.Event) (int, error) {
	if js == nil {
		return 0, errors.New("no NATS connection")
	}
	acked := 0
	const window = 512
	for start := 0; start < len(evs); start += window {
		var futures []jetstream.PubAckFuture
		for _, e := range evs[start:min(start+window, len(evs))] {
			msg, err := events.Encode(e, events.Binary)
			if err != nil {
				return acked, err
			}
			f, err := js.PublishMsgAsync(msg)
			if err != nil {
				return acked, err
			}
			futures = append(futures, f)
		}
		for _, f := range futures {
			select {
			case <-f.Ok():
				acked++
			case err := <-f.Err():
				return acked, err
			case <-ctx.Done():
				return acked, ctx.Err()
			case <-time.After(30 * time.Second):
				return acked, errors.New("no ack from JetStream within 30s")
			}
		}
	}
	return acked, nil
}

// feedMembers returns every worker of feed with whether they count as active for
// a roster: active now, or hired and not yet due, or leaving but not yet gone.
func feedMembers(ctx context.Context, db *store.DB, feed string, now time.Time) ([]events.Member, error) {
	var out []events.Member
	far := now.AddDate(100, 0, 0)
	err := eachPage(ctx, db, feed, 500, func(people []reportPerson) error {
		for _, p := range people {
			w, _ := connector.Want(p.Facts, now, connector.DefaultPolicy())
			later, _ := connector.Want(p.Facts, far, connector.DefaultPolicy())
			if w.State == connector.StateAbsent && later.State == connector.StateAbsent && !later.EverHired {
				continue // only updates: the feed never hired them
			}
			out = append(out, events.Member{WorkerID: p.Worker.WorkerID, Profile: w.Profile.Merge(later.Profile),
				Active: w.State == connector.StateActive || later.State == connector.StateActive})
		}
		return nil
	})
	return out, err
}

// publishUploadHold publishes the events of an approved upload hold.
func publishUploadHold(ctx context.Context, c connFlags, db *store.DB, id int64) (int, error) {
	h, err := db.ApprovedHold(ctx, id)
	if err != nil {
		return 0, err
	}
	var evs []events.Event
	if err := json.Unmarshal(h.Payload, &evs); err != nil {
		return 0, fmt.Errorf("hold %d: its upload cannot be read: %w", id, err)
	}
	nc, err := natsConnect(c, h.Feed)
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, err
	}
	return publishEvents(ctx, js, evs)
}

// uploadThresholds are the thresholds a roster upload is held at: the safeguard's,
// or none when the safeguard is off.
func uploadThresholds(sg *connector.SafeguardConfig) func(feed string) connector.Thresholds {
	return func(feed string) connector.Thresholds {
		switch {
		case sg == nil:
			return connector.Thresholds{}
		case sg.Feeds[feed] != (connector.Thresholds{}):
			return sg.Feeds[feed]
		case sg.Default != (connector.Thresholds{}):
			return sg.Default
		}
		return connector.DefaultThresholds()
	}
}

// tokenMatches compares a presented token with a configured SHA-256 in constant time.
func tokenMatches(token, wantSHA256 string) bool {
	want, err := hex.DecodeString(wantSHA256)
	if err != nil || len(want) != sha256.Size || token == "" {
		return false
	}
	got := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(got[:], want) == 1
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func clipDetail(s string) string {
	if len(s) > 2000 {
		return s[:2000] + "…"
	}
	return s
}
