// Package roster turns partner roster files into events: "hrsync roster upload"
// and the admin API's POST /v1/feeds/{feed}/rosters share its Uploader, so that
// both validate, guard and record alike. An upload whose leavers cross the feed's
// safeguard thresholds becomes a hold, published only once a person approves it
// (docs/rosters.md, docs/admin-api.md).
//
// It is the use case only: it takes the store methods it needs (Store), a
// jetstream.JetStream to publish on, the feeds, the thresholds, a clock and a
// logger; cmd/hrsync parses the flags and opens the app.
package roster

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/report"
	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/events"
	"github.com/hrsync/hrsync/store"
)

// Config is a feed's roster settings in the configuration file.
type Config struct {
	// Mode is the default upload mode: snapshot or delta.
	Mode string `yaml:"mode"`
	// Columns maps the file's header names to contract fields.
	Columns map[string]string `yaml:"columns"`
	// UploadTokenSHA256 is the hex SHA-256 of the token that may upload to this
	// feed (and only this feed) over HTTP. The token itself is never configured.
	UploadTokenSHA256 string `yaml:"upload_token_sha256"`
	// Format is auto (default), csv or xlsx; Sheet the worksheet of an XLSX
	// file (default: the first).
	Format string `yaml:"format"`
	Sheet  string `yaml:"sheet"`
	// Encoding is the text encoding of a CSV file: auto (default), utf-8,
	// utf-16 (utf-16le, utf-16be) or windows-1252.
	Encoding string `yaml:"encoding"`
	// Delimiter is "," ";" or "tab"; default: detected from the header line.
	Delimiter string `yaml:"delimiter"`
	// DateFormats are Go layouts the effective column may use besides ISO
	// dates, e.g. ["02.01.2006"] for 31.12.2026.
	DateFormats []string `yaml:"date_formats"`
}

// Check validates the settings and names the first bad one.
func (c Config) Check() error {
	if len(c.Columns) > 0 {
		if err := (events.RosterMapping{Columns: c.Columns}).Validate(); err != nil {
			return fmt.Errorf("roster.columns: %w", err)
		}
	}
	if c.Mode != "" {
		if _, err := events.ParseRosterMode(c.Mode); err != nil {
			return fmt.Errorf("roster.mode: %w", err)
		}
	}
	if c.UploadTokenSHA256 != "" && len(c.UploadTokenSHA256) != 64 {
		return errors.New("roster.upload_token_sha256 must be 64 hex digits (hrsync roster token prints one)")
	}
	if _, err := c.options(); err != nil {
		return err
	}
	return nil
}

// options are the reading settings of the feed's files.
func (c Config) options() (events.RosterOptions, error) {
	var o events.RosterOptions
	var err error
	if o.Format, err = events.ParseRosterFormat(c.Format); err != nil {
		return o, fmt.Errorf("roster.format: %w", err)
	}
	if o.Encoding, err = events.ParseRosterEncoding(c.Encoding); err != nil {
		return o, fmt.Errorf("roster.encoding: %w", err)
	}
	if o.Delimiter, err = events.ParseRosterDelimiter(c.Delimiter); err != nil {
		return o, fmt.Errorf("roster.delimiter: %w", err)
	}
	if err := events.CheckDateFormats(c.DateFormats); err != nil {
		return o, fmt.Errorf("roster.date_formats: %w", err)
	}
	o.Sheet, o.DateFormats = c.Sheet, c.DateFormats
	return o, nil
}

// MaxReportProblems is how many problems the report of one upload lists; the
// rest are counted.
const MaxReportProblems = 1000

// Store is what an upload needs of the store. Implemented by *store.DB.
type Store interface {
	// PageStore pages through the feed's workers (report.EachPage), to know who
	// the feed has before the file is read.
	report.PageStore
	// FeedClosed reports whether feed was closed (offboarded), and when and by whom.
	FeedClosed(ctx context.Context, feed string) (c store.ClosedFeed, ok bool, err error)
	// CreateHold records a hold (held, or passed under the thresholds) and returns its id.
	CreateHold(ctx context.Context, h connector.Hold) (int64, error)
	// RecordUpload keeps the record of an upload and returns its id.
	RecordUpload(ctx context.Context, u store.Upload) (int64, error)
	// GetUpload returns an upload of feed with its report; an error matching
	// connector.ErrNotFound if the feed has no such upload.
	GetUpload(ctx context.Context, feed string, id int64) (store.Upload, error)
}

var _ Store = (*store.DB)(nil)

// Uploader turns a roster file into published events, or into a hold when the
// removals it implies cross the feed's threshold. The CLI and the admin HTTP API
// share it, so that both validate, guard and record alike.
type Uploader struct {
	// Store knows the feeds' workers and keeps the holds and the uploads.
	Store Store
	// JS publishes the events; nil: dry runs only.
	JS jetstream.JetStream
	// Feeds are the configured feeds; an upload to another is refused.
	Feeds connector.Feeds
	// Rosters are the feeds' roster settings (mode, columns, upload token).
	Rosters map[string]Config
	// ThresholdsFunc returns the safeguard's thresholds of a feed; an upload is
	// judged by them whole, once.
	ThresholdsFunc func(feed string) connector.Thresholds
	// ApprovalsNeeded is how many different people approve a held upload
	// (holds.approvals.upload); 0 reads as one.
	ApprovalsNeeded int
	// Now is the clock; Log gets what an upload did (never a token).
	Now func() time.Time
	Log *slog.Logger
}

// Request is one upload.
type Request struct {
	Feed     string
	Mode     string // empty: the feed's configured mode
	Body     io.Reader
	Filename string
	By       string
	Via      string // cli or http
	DryRun   bool
	Progress func(rows int)
}

// Result is what an upload did.
type Result struct {
	UploadID  int64                `json:"upload_id,omitempty"`
	Feed      string               `json:"feed"`
	Outcome   string               `json:"outcome"` // dry-run, published, held, unchanged
	Summary   events.RosterSummary `json:"summary"`
	Published int                  `json:"published"`
	HoldID    int64                `json:"hold_id,omitempty"`
	Reason    string               `json:"reason,omitempty"`

	// spool holds the uploaded file, replay reads it again for its events (see
	// EachEvent); a dry run's caller calls Close when done with them.
	spool  *os.File
	replay func(emit func(events.Event) error) error
}

// errRosterInvalid marks an upload refused for its content: the caller shows the
// line-by-line errors, and the HTTP API answers 422.
var errRosterInvalid = errors.New("roster invalid")

// errFeedClosed marks an upload to an offboarded feed: the HTTP API answers 403,
// whatever the token.
var errFeedClosed = errors.New("the feed is closed; its uploads and tokens are refused")

// Upload reads req.Body, validates every row, and then, unless it is a dry run,
// holds the upload, records it as unchanged, or publishes its events. A file
// refused for its content is an error that names its lines; an upload to a
// closed feed is refused whatever it holds.
func (u *Uploader) Upload(ctx context.Context, req Request) (Result, error) {
	res := Result{Feed: req.Feed}
	feed, ok := u.Feeds[req.Feed]
	if !ok {
		return res, fmt.Errorf("feed %q is not configured (configured: %v)", req.Feed, u.Feeds.Names())
	}
	if c, closed, err := u.Store.FeedClosed(ctx, req.Feed); err != nil {
		return res, err
	} else if closed {
		return res, fmt.Errorf("feed %s was closed on %s by %s (offboarded in hold %d): %w", req.Feed,
			c.ClosedAt.UTC().Format(time.DateOnly), c.ClosedBy, c.HoldID, errFeedClosed)
	}
	rc := u.Rosters[req.Feed]
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
	now := u.Now()
	members, err := feedMembers(ctx, u.Store, req.Feed, now)
	if err != nil {
		return res, err
	}
	// Two passes, so that memory does not grow with the file: the first reads the
	// body, validates every row and counts what the upload does, keeping nothing
	// but the bytes it spools to a temporary file; the second (replay) reads the
	// spool again and hands each event on, to the response, to JetStream or to a
	// hold, only once the whole file is known to be valid.
	opts, err := rc.options()
	if err != nil {
		return res, fmt.Errorf("feed %s: %w", req.Feed, err)
	}
	opts.Mode, opts.Progress, opts.SkipInvalid, opts.MaxErrors = mode, req.Progress, true, MaxReportProblems
	spool, err := os.CreateTemp("", "hrsync-roster-*")
	if err != nil {
		return res, fmt.Errorf("roster spool: %w", err)
	}
	keep := false // a dry run's caller reads the events after upload returns
	defer func() {
		if !keep {
			spool.Close()
			_ = os.Remove(spool.Name())
		}
	}()
	info := events.UploadInfo{Time: now}
	// An XLSX file is a zip archive, whose directory is at its end: it is
	// spooled whole first, and read from the spool.
	body := bufio.NewReaderSize(req.Body, 64<<10)
	var first io.Reader = io.TeeReader(body, spool)
	if magic, _ := body.Peek(4); string(magic) == "PK\x03\x04" {
		if _, err := io.Copy(spool, body); err != nil {
			return res, err
		}
		if _, err := spool.Seek(0, io.SeekStart); err != nil {
			return res, fmt.Errorf("roster spool: %w", err)
		}
		first = spool
	}
	roster, sum, err := events.StreamRoster(first, mapping, opts, feed, members, info,
		func(events.Event) error { return nil })
	if err != nil {
		var re *events.RosterErrors
		if !req.DryRun && errors.As(err, &re) {
			res.UploadID = u.record(ctx, req, store.Upload{Mode: string(mode), Outcome: "rejected", Detail: clipDetail(err.Error()),
				Report: reportJSON(re.Errors, re.Total)})
		}
		return res, fmt.Errorf("%w: %w", errRosterInvalid, err)
	}
	res.Summary = sum
	opts.Progress = nil
	replay := func(emit func(events.Event) error) error {
		if _, err := spool.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("roster spool: %w", err)
		}
		_, again, err := events.StreamRoster(spool, mapping, opts, feed, members, info, emit)
		if err == nil && !reflect.DeepEqual(again, sum) {
			err = fmt.Errorf("roster spool: the second read counted %+v, the first %+v", again, sum)
		}
		return err
	}
	rec := store.Upload{Mode: string(mode), SHA256: roster.SHA256, Rows: sum.Rows, Active: sum.Active, Hires: sum.Hires,
		Rehires: sum.Rehires, Leavers: sum.Leavers, Updates: sum.Updates, Unchanged: sum.Unchanged,
		Invalid: sum.Invalid, Kept: sum.Kept, Withheld: sum.Withheld, Report: reportJSON(sum.Problems, sum.ProblemsTotal)}

	if req.DryRun {
		res.Outcome, res.spool, res.replay, keep = "dry-run", spool, replay, true
		return res, nil
	}
	// The leavers of the upload, named, for the hold an approver decides on or,
	// under the thresholds, for the record that lets the live removals run
	// without being judged again piecemeal (docs/rosters.md).
	profiles := make(map[string]connector.Profile, len(members))
	for _, m := range members {
		profiles[m.WorkerID] = m.Profile
	}
	leavers := func() ([]connector.HeldWorker, error) {
		var ws []connector.HeldWorker
		err := replay(func(e events.Event) error {
			if e.Kind == connector.KindLeft {
				p := profiles[e.Data.WorkerID]
				ws = append(ws, connector.HeldWorker{Worker: connector.WorkerKey{Feed: req.Feed, WorkerID: e.Data.WorkerID},
					Action: connector.ActionDeactivate, At: now, Email: p.Email,
					Name: strings.TrimSpace(p.GivenName + " " + p.FamilyName)})
			}
			return nil
		})
		return ws, err
	}
	if held, reason := u.ThresholdsFunc(req.Feed).Exceeded(sum.Leavers, sum.Active); held {
		// Held whole: nothing of it is published until a person approves.
		var payload bytes.Buffer
		h := connector.Hold{Feed: req.Feed, Kind: connector.HoldUpload, CausedBy: req.By, ApprovalsNeeded: u.ApprovalsNeeded,
			Reason: fmt.Sprintf("roster upload %s by %s: %s", orDash(req.Filename), orDash(req.By), reason),
			Counts: connector.HoldCounts{Removals: sum.Leavers, Deactivations: sum.Leavers, Active: sum.Active}}
		var err error
		if h.Workers, err = leavers(); err != nil {
			return res, err
		}
		if err := writeEventsJSON(&payload, replay); err != nil {
			return res, err
		}
		h.Payload = payload.Bytes()
		id, err := u.Store.CreateHold(ctx, h)
		if err != nil {
			return res, err
		}
		res.Outcome, res.HoldID, res.Reason = "held", id, reason
		rec.Outcome, rec.HoldID, rec.Detail = "held", &id, reason
		res.UploadID = u.record(ctx, req, rec)
		u.Log.Warn("roster upload held", "feed", req.Feed, "hold_id", id, "upload_id", res.UploadID, "reason", reason)
		return res, nil
	}
	total := sum.Hires + sum.Rehires + sum.Leavers + sum.Updates
	if total == 0 {
		res.Outcome, rec.Outcome = "unchanged", "unchanged"
		res.UploadID = u.record(ctx, req, rec)
		return res, nil
	}
	if sum.Leavers > 0 {
		// Judged whole, under the thresholds: recorded as passed, so that the
		// daemon's live window lets these removals run instead of judging them
		// again as they arrive.
		ws, err := leavers()
		if err != nil {
			return res, err
		}
		if _, err := u.Store.CreateHold(ctx, connector.Hold{Feed: req.Feed, Kind: connector.HoldUpload, Status: connector.HoldPassed,
			Reason:  fmt.Sprintf("roster upload %s by %s: %d leavers of %d active", orDash(req.Filename), orDash(req.By), sum.Leavers, sum.Active),
			Counts:  connector.HoldCounts{Removals: sum.Leavers, Deactivations: sum.Leavers, Active: sum.Active},
			Workers: ws}); err != nil {
			return res, err
		}
	}
	n, err := PublishEach(ctx, u.JS, replay)
	res.Published = n
	if err != nil {
		rec.Outcome, rec.Detail = "failed", clipDetail(fmt.Sprintf("published %d of %d events: %v", n, total, err))
		res.UploadID = u.record(ctx, req, rec)
		return res, fmt.Errorf("published %d of %d events (uploading the same file again is safe: event ids are deterministic): %w", n, total, err)
	}
	res.Outcome, rec.Outcome = "published", "published"
	res.UploadID = u.record(ctx, req, rec)
	u.Log.Info("roster upload published", "feed", req.Feed, "upload_id", res.UploadID, "events", n,
		"hires", sum.Hires, "rehires", sum.Rehires, "leavers", sum.Leavers, "updates", sum.Updates)
	return res, nil
}

// EachEvent calls emit with each event of a dry run, in order, reading the
// spooled file again. It is an error after Close.
func (r *Result) EachEvent(emit func(events.Event) error) error {
	if r.replay == nil || r.spool == nil {
		return errors.New("roster upload: its events are no longer kept")
	}
	return r.replay(emit)
}

// writeEventsJSON writes the events each hands on as a JSON array, one event at
// a time: the same bytes as json.Marshal of the slice.
func writeEventsJSON(w io.Writer, each func(emit func(events.Event) error) error) error {
	bw := bufio.NewWriter(w)
	sep := byte('[')
	err := each(func(e events.Event) error {
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		_ = bw.WriteByte(sep)
		_, err = bw.Write(b)
		sep = ','
		return err
	})
	if err != nil {
		return err
	}
	if sep == '[' {
		_ = bw.WriteByte('[')
	}
	_ = bw.WriteByte(']')
	return bw.Flush()
}

// Close removes the spooled file of a dry run (upload removes it otherwise).
// Safe to call twice, and on a result with no spool.
func (r *Result) Close() {
	if r.spool == nil {
		return
	}
	r.spool.Close()
	_ = os.Remove(r.spool.Name())
	r.spool = nil
}

// record keeps the upload; a failure to record is logged, not fatal: the events
// (or the hold) are what matters, and they are durable already.
func (u *Uploader) record(ctx context.Context, req Request, rec store.Upload) int64 {
	rec.Feed, rec.Filename, rec.By, rec.Via = req.Feed, req.Filename, req.By, req.Via
	id, err := u.Store.RecordUpload(ctx, rec)
	if err != nil {
		u.Log.Error("could not record the upload", "feed", req.Feed, "err", err)
	}
	return id
}

// PublishEvents publishes evs to JetStream and waits for every ack. It returns
// how many were acknowledged.
func PublishEvents(ctx context.Context, js jetstream.JetStream, evs []events.Event) (int, error) {
	return PublishEach(ctx, js, func(emit func(events.Event) error) error {
		for _, e := range evs {
			if err := emit(e); err != nil {
				return err
			}
		}
		return nil
	})
}

// PublishEach publishes the events each hands on, in windows of 512 whose acks
// it waits for before the next, so that it holds at most one window. It returns
// how many were acknowledged.
func PublishEach(ctx context.Context, js jetstream.JetStream, each func(emit func(events.Event) error) error) (int, error) {
	if js == nil {
		return 0, errors.New("no NATS connection")
	}
	acked := 0
	const window = 512
	futures := make([]jetstream.PubAckFuture, 0, window)
	wait := func() error {
		defer func() { futures = futures[:0] }()
		for _, f := range futures {
			select {
			case <-f.Ok():
				acked++
			case err := <-f.Err():
				return err
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(30 * time.Second):
				return errors.New("no ack from JetStream within 30s")
			}
		}
		return nil
	}
	err := each(func(e events.Event) error {
		msg, err := events.Encode(e, events.Binary)
		if err != nil {
			return err
		}
		f, err := js.PublishMsgAsync(msg)
		if err != nil {
			return err
		}
		if futures = append(futures, f); len(futures) == window {
			return wait()
		}
		return nil
	})
	if err == nil {
		err = wait()
	}
	return acked, err
}

// feedMembers returns every worker of feed with whether they count as active for
// a roster: active now, or hired and not yet due, or leaving but not yet gone.
func feedMembers(ctx context.Context, db report.PageStore, feed string, now time.Time) ([]events.Member, error) {
	var out []events.Member
	far := now.AddDate(100, 0, 0)
	err := report.EachPage(ctx, db, feed, 500, func(people []report.Person) error {
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

// HoldEvents returns the events of an upload hold: the payload Upload wrote
// when it held the upload.
func HoldEvents(h connector.Hold) ([]events.Event, error) {
	var evs []events.Event
	if err := json.Unmarshal(h.Payload, &evs); err != nil {
		return nil, fmt.Errorf("hold %d: its upload cannot be read: %w", h.ID, err)
	}
	return evs, nil
}

// PublishApprovedHold publishes the events of the approved upload hold id, read
// from db: the CLI (hrsync holds approve) and the console both call it. Event ids
// are deterministic, so publishing again after a failure records nothing twice.
func PublishApprovedHold(ctx context.Context, db interface {
	ApprovedHold(ctx context.Context, id int64) (connector.Hold, error)
}, js jetstream.JetStream, id int64) (int, error) {
	h, err := db.ApprovedHold(ctx, id)
	if err != nil {
		return 0, err
	}
	evs, err := HoldEvents(h)
	if err != nil {
		return 0, err
	}
	return PublishEvents(ctx, js, evs)
}

// PublishSample publishes, of the open upload hold id, the leaving events of
// the people a person let run in a sample batch (store's AllowSample): only
// their removals run, which the safeguard allows as sampled; the rest of the
// upload (its other leavers, its hires and changes) stays unpublished until the
// hold is approved, when PublishApprovedHold publishes it all (event ids are
// deterministic, so the sample is not recorded twice). The CLI (hrsync holds
// approve --sample-batch) and the console both call it. It returns how many
// events it published.
func PublishSample(ctx context.Context, db interface {
	GetHold(ctx context.Context, id int64) (connector.Hold, error)
	HoldWorkers(ctx context.Context, id int64, after connector.WorkerKey, limit int) ([]connector.HeldWorker, error)
}, js jetstream.JetStream, id int64) (int, error) {
	h, err := db.GetHold(ctx, id)
	if err != nil {
		return 0, err
	}
	if h.Kind != connector.HoldUpload || h.Status != connector.HoldOpen || h.Sample == 0 {
		return 0, fmt.Errorf("hold %d is a %s hold, %s, with a sample of %d: only an open upload hold's sample batch is published alone",
			id, h.Kind, h.Status, h.Sample)
	}
	ws, err := db.HoldWorkers(ctx, id, connector.WorkerKey{}, 0)
	if err != nil {
		return 0, err
	}
	sampled := map[string]bool{}
	for _, w := range ws {
		if w.Sampled {
			sampled[w.Worker.WorkerID] = true
		}
	}
	evs, err := HoldEvents(h)
	if err != nil {
		return 0, err
	}
	var out []events.Event
	for _, e := range evs {
		if e.Kind == connector.KindLeft && sampled[e.Data.WorkerID] {
			out = append(out, e)
		}
	}
	return PublishEvents(ctx, js, out)
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
