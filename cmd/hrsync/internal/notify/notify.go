// Package notify tells people, by webhook, what waits for them or went wrong:
// a hold opened, the LMS quarantined or recovered, dead letters in a burst, a
// reconciliation that found drift above a threshold (docs/console.md). Each
// webhook gets a generic JSON payload or one Slack accepts; deliveries are
// retried with exponential backoff, and a payload carries ids, counts and
// reasons, never a secret or a worker's personal data.
//
// The daemon runs a Notifier: it watches the store and the LMS guard on a tick
// (so that holds made by CLI commands in other processes are seen too) and is
// told of each reconciliation's summary.
package notify

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
)

// The events a webhook may subscribe to.
const (
	HoldOpened      = "hold_opened"
	LMSQuarantined  = "lms_quarantined"
	LMSRecovered    = "lms_recovered"
	DeadLetterBurst = "dead_letter_burst"
	Drift           = "drift"
)

// Events are every event, for configuration checks and help.
var Events = []string{HoldOpened, LMSQuarantined, LMSRecovered, DeadLetterBurst, Drift}

// Config is notify: in the configuration file.
type Config struct {
	Webhooks []WebhookConfig `yaml:"webhooks"`
	// Every is how often the store and the LMS are looked at; default 15s.
	Every time.Duration `yaml:"every"`
	// DeadLetterBurst is how many new dead letters within one tick make a
	// burst; default 10.
	DeadLetterBurst int `yaml:"dead_letter_burst"`
	// DriftThreshold is how many drifted pairs (any class but in_sync) a
	// reconciliation may find before it notifies; default 0: any drift.
	DriftThreshold int `yaml:"drift_threshold"`
	// ConsoleURL, if set, is the console's address, for links in messages.
	ConsoleURL string `yaml:"console_url"`
}

// WebhookConfig is one webhook.
type WebhookConfig struct {
	Name string `yaml:"name"`
	// URLEnv names the environment variable that holds the URL (a Slack
	// webhook URL is a secret); URL is for URLs that are not.
	URL    string `yaml:"url"`
	URLEnv string `yaml:"url_env"`
	// Format is json (default) or slack.
	Format string `yaml:"format"`
	// Events are the events sent; empty: all.
	Events []string `yaml:"events"`
	// SecretEnv names the variable with a key that signs each JSON body:
	// X-Hrsync-Signature: sha256=<hex HMAC-SHA256 of the body>.
	SecretEnv string `yaml:"secret_env"`
}

// Enabled reports whether any webhook is configured.
func (c Config) Enabled() bool { return len(c.Webhooks) > 0 }

// Check says what is wrong with c, naming each field; getenv reads the URLs
// and secrets.
func (c Config) Check(getenv func(string) string) error {
	var errs []error
	for i, w := range c.Webhooks {
		where := fmt.Sprintf("notify.webhooks[%d]", i)
		switch {
		case w.URL != "" && w.URLEnv != "":
			errs = append(errs, fmt.Errorf("%s: url and url_env: give one", where))
		case w.URL == "" && w.URLEnv == "":
			errs = append(errs, fmt.Errorf("%s: url or url_env is required", where))
		case w.URLEnv != "" && getenv(w.URLEnv) == "":
			errs = append(errs, fmt.Errorf("%s.url_env: the variable %s is empty", where, w.URLEnv))
		}
		if f := cmp.Or(w.Format, "json"); f != "json" && f != "slack" {
			errs = append(errs, fmt.Errorf("%s.format %q: want json or slack", where, w.Format))
		}
		for _, e := range w.Events {
			if !slices.Contains(Events, e) {
				errs = append(errs, fmt.Errorf("%s.events: %q is not one of %s", where, e, strings.Join(Events, ", ")))
			}
		}
		if w.SecretEnv != "" && getenv(w.SecretEnv) == "" {
			errs = append(errs, fmt.Errorf("%s.secret_env: the variable %s is empty", where, w.SecretEnv))
		}
	}
	if c.Every < 0 || c.DeadLetterBurst < 0 || c.DriftThreshold < 0 {
		errs = append(errs, errors.New("notify: every, dead_letter_burst and drift_threshold must not be negative"))
	}
	return errors.Join(errs...)
}

// Event is one notification. Its fields are ids, counts and reasons: nothing
// secret, and no worker's name or email.
type Event struct {
	Event string    `json:"event"`
	At    time.Time `json:"at"`
	Feed  string    `json:"feed,omitempty"`
	// Text says what happened, for a person.
	Text string `json:"text"`
	// HoldID, Counts: a hold; Reason: a hold's or the quarantine's reason.
	HoldID int64          `json:"hold_id,omitempty"`
	Kind   string         `json:"kind,omitempty"`
	Counts map[string]int `json:"counts,omitempty"`
	Reason string         `json:"reason,omitempty"`
	Link   string         `json:"link,omitempty"`
}

// Source is what the notifier watches. The daemon's store and LMS guard.
type Source interface {
	ListHolds(ctx context.Context, f store.HoldFilter) ([]connector.Hold, error)
	ListDeadLetters(ctx context.Context, f store.DeadLetterFilter) ([]connector.DeadLetter, error)
}

// LMSStatus is the guard's quarantine state.
type LMSStatus struct {
	Quarantined bool
	Reason      string
}

// Notifier watches and sends.
type Notifier struct {
	cfg    Config
	hooks  []hook
	src    Source
	lms    func() LMSStatus
	log    *slog.Logger
	now    func() time.Time
	client *http.Client
	// backoff is the wait before the first retry, doubled after each; tests
	// shorten it.
	backoff  time.Duration
	attempts int

	queue  chan Event
	wg     sync.WaitGroup
	mu     sync.Mutex // guards closed, and sending on queue
	closed bool

	// What was seen, so that each thing is told once.
	holdsSeen   map[int64]bool
	deadSeen    int64
	quarantined bool
	started     bool
}

type hook struct {
	WebhookConfig
	url, secret string
}

// Options are what the daemon gives the notifier.
type Options struct {
	Source Source
	// LMS returns the guard's state; nil: no quarantine events.
	LMS    func() LMSStatus
	Getenv func(string) string
	Log    *slog.Logger
	Now    func() time.Time
	Client *http.Client
	// Backoff is the first retry's wait (default 2s), doubled each time, over
	// Attempts tries in all (default 6).
	Backoff  time.Duration
	Attempts int
}

// New builds the notifier of cfg, which must have passed Check.
func New(cfg Config, o Options) *Notifier {
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	n := &Notifier{cfg: cfg, src: o.Source, lms: o.LMS, log: cmp.Or(o.Log, slog.New(slog.DiscardHandler)), now: o.Now,
		client: o.Client, backoff: cmp.Or(o.Backoff, 2*time.Second), attempts: cmp.Or(o.Attempts, 6),
		queue: make(chan Event, 256), holdsSeen: map[int64]bool{}}
	if n.now == nil {
		n.now = time.Now
	}
	if n.client == nil {
		n.client = &http.Client{Timeout: 10 * time.Second}
	}
	for _, w := range cfg.Webhooks {
		h := hook{WebhookConfig: w, url: w.URL}
		if w.URLEnv != "" {
			h.url = getenv(w.URLEnv)
		}
		if w.SecretEnv != "" {
			h.secret = getenv(w.SecretEnv)
		}
		n.hooks = append(n.hooks, h)
	}
	return n
}

// Run watches until ctx is done, then sends what is queued (bounded by its
// retries) and returns.
func (n *Notifier) Run(ctx context.Context) {
	stop := n.start(ctx)
	defer stop()
	tick := time.NewTicker(cmp.Or(n.cfg.Every, 15*time.Second))
	defer tick.Stop()
	for {
		n.Check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// start starts delivering; stop closes the queue and waits for what is queued.
func (n *Notifier) start(ctx context.Context) (stop func()) {
	n.wg.Go(func() { n.deliver(ctx) })
	return func() {
		n.mu.Lock()
		n.closed = true
		close(n.queue)
		n.mu.Unlock()
		n.wg.Wait()
	}
}

// Check looks once at the holds, the dead letters and the LMS, and queues what
// changed since the last look. The first look takes what is there as known:
// the holds open at start were told of before (or are on the console).
func (n *Notifier) Check(ctx context.Context) {
	first := !n.started
	n.started = true
	if hs, err := n.src.ListHolds(ctx, store.HoldFilter{Status: connector.HoldOpen}); err != nil {
		n.log.Warn("notify: list holds", "err", err)
	} else {
		slices.SortFunc(hs, func(a, b connector.Hold) int { return cmp.Compare(a.ID, b.ID) }) // oldest first
		for _, h := range hs {
			if n.holdsSeen[h.ID] {
				continue
			}
			n.holdsSeen[h.ID] = true
			if !first {
				n.Send(n.holdEvent(h))
			}
		}
	}
	if ds, err := n.src.ListDeadLetters(ctx, store.DeadLetterFilter{}); err != nil {
		n.log.Warn("notify: list dead letters", "err", err)
	} else {
		var fresh []connector.DeadLetter
		maxID := n.deadSeen
		for _, d := range ds {
			if d.ID > n.deadSeen {
				fresh = append(fresh, d)
				maxID = max(maxID, d.ID)
			}
		}
		n.deadSeen = maxID
		if !first && len(fresh) >= cmp.Or(n.cfg.DeadLetterBurst, 10) {
			n.Send(n.deadEvent(fresh))
		}
	}
	if n.lms != nil {
		st := n.lms()
		switch {
		case st.Quarantined && !n.quarantined:
			n.Send(Event{Event: LMSQuarantined, At: n.now(), Reason: st.Reason, Link: n.link("/"),
				Text: "The LMS is quarantined: hrsync stopped calling it and probes it until it answers. " + st.Reason})
		case !st.Quarantined && n.quarantined:
			n.Send(Event{Event: LMSRecovered, At: n.now(), Link: n.link("/"),
				Text: "The LMS answers again: hrsync resumed converging."})
		}
		n.quarantined = st.Quarantined
	}
}

// Reconciled is the reconciler's hook: a pass that found more drift than the
// threshold is told.
func (n *Notifier) Reconciled(s connector.ReconcileSummary, err error) {
	if err != nil {
		return
	}
	counts := map[string]int{}
	total := 0
	for c, k := range s.Counts {
		if c != connector.ClassInSync && k > 0 {
			counts[string(c)] = k
			total += k
		}
	}
	if total == 0 || total <= n.cfg.DriftThreshold {
		return
	}
	classes := make([]string, 0, len(counts))
	for c := range counts {
		classes = append(classes, fmt.Sprintf("%s %d", c, counts[c]))
	}
	sort.Strings(classes)
	n.Send(Event{Event: Drift, At: n.now(), Counts: counts,
		Text: fmt.Sprintf("A reconciliation found %d accounts out of step with HR (%s).", total, strings.Join(classes, ", "))})
}

func (n *Notifier) link(path string) string {
	if n.cfg.ConsoleURL == "" {
		return ""
	}
	return strings.TrimSuffix(n.cfg.ConsoleURL, "/") + path
}

func (n *Notifier) holdEvent(h connector.Hold) Event {
	return Event{Event: HoldOpened, At: n.now(), Feed: h.Feed, HoldID: h.ID, Kind: string(h.Kind), Reason: h.Reason,
		Counts: map[string]int{"removals": h.Counts.Removals, "active": h.Counts.Active}, Link: n.link(fmt.Sprintf("/holds/%d", h.ID)),
		Text: fmt.Sprintf("Hold %d of feed %s waits for a decision: %d removals held (%s).", h.ID, h.Feed, h.Counts.Removals, h.Reason)}
}

func (n *Notifier) deadEvent(ds []connector.DeadLetter) Event {
	byFeed := map[string]int{}
	for _, d := range ds {
		byFeed[cmp.Or(d.Feed, "(unknown)")]++
	}
	return Event{Event: DeadLetterBurst, At: n.now(), Counts: byFeed, Link: n.link("/dead"),
		Text: fmt.Sprintf("%d messages were dead-lettered since the last look; the first says: %s", len(ds), ds[0].Reason)}
}

// Send queues e for the webhooks that subscribe to it; a full queue drops it,
// saying so in the log.
func (n *Notifier) Send(e Event) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		n.log.Warn("notify: stopped, notification dropped", "event", e.Event)
		return
	}
	select {
	case n.queue <- e:
	default:
		n.log.Error("notify: queue full, notification dropped", "event", e.Event)
	}
}

func (n *Notifier) deliver(ctx context.Context) {
	for e := range n.queue {
		for _, h := range n.hooks {
			if len(h.Events) > 0 && !slices.Contains(h.Events, e.Event) {
				continue
			}
			n.post(ctx, h, e)
		}
	}
}

// post sends e to h, retrying failures (network errors, 429, 5xx) with
// exponential backoff; a 4xx other than 429 is not retried. Once ctx is done
// (the daemon stops), each queued notification gets one more try, no retry.
func (n *Notifier) post(ctx context.Context, h hook, e Event) {
	body, err := payload(h, e)
	if err != nil {
		n.log.Error("notify: payload", "webhook", h.Name, "err", err)
		return
	}
	wait := n.backoff
	for attempt := 1; attempt <= n.attempts; attempt++ {
		status, err := n.postOnce(context.WithoutCancel(ctx), h, body)
		switch {
		case err == nil && status < 300:
			n.log.Info("notify: sent", "webhook", h.Name, "event", e.Event, "attempt", attempt)
			return
		case err == nil && status < 500 && status != http.StatusTooManyRequests:
			n.log.Error("notify: refused, not retried", "webhook", h.Name, "event", e.Event, "status", status)
			return
		}
		n.log.Warn("notify: failed, retrying", "webhook", h.Name, "event", e.Event, "attempt", attempt, "status", status, "err", err, "retry_in", wait)
		if attempt == n.attempts {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait *= 2
	}
	n.log.Error("notify: gave up", "webhook", h.Name, "event", e.Event, "attempts", n.attempts)
}

func (n *Notifier) postOnce(ctx context.Context, h hook, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "hrsync-notify")
	if h.secret != "" {
		mac := hmac.New(sha256.New, []byte(h.secret))
		mac.Write(body)
		req.Header.Set("X-Hrsync-Signature", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	}
	resp, err := n.client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// payload is e as h's format wants it: the event itself, or Slack's
// {"text": ...} with the link.
func payload(h hook, e Event) ([]byte, error) {
	if h.Format == "slack" {
		text := "*hrsync*: " + e.Text
		if e.Link != "" {
			text += " <" + e.Link + "|Open the console>"
		}
		return json.Marshal(map[string]string{"text": text})
	}
	return json.Marshal(e)
}
